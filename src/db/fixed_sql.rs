//! SQL fragments that SQLite can keep prepared. diesel caches a statement
//! only if every part of it is known to have a fixed text: `sql()` and a
//! list for `eq_any` mark the whole statement as uncacheable on SQLite, so
//! it is parsed and planned again on every request (a profile of the list
//! at 10,000 connections spent a fifth of its time there). A fragment
//! here writes one of a few fixed texts and binds its values, so diesel
//! keys the prepared statement by that text and reuses it.

use diesel::expression::{AppearsOnTable, Expression, SelectableExpression, ValidGrouping, is_aggregate};
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::sql_types::{BigInt, Bool};

use super::MultiBackend;

/// Writes a fixed SQL text with bound values.
pub trait FixedSql {
    fn walk<'b>(&'b self, out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()>;
}

/// A condition (or an ORDER BY list) of fixed text, usable wherever diesel
/// takes an expression. Like `sql()`, it names its tables itself.
pub struct Fixed<T>(pub T);

impl<T> Expression for Fixed<T> {
    type SqlType = Bool;
}
impl<T, QS> AppearsOnTable<QS> for Fixed<T> {}
impl<T, QS> SelectableExpression<QS> for Fixed<T> {}
impl<T> ValidGrouping<()> for Fixed<T> {
    type IsAggregate = is_aggregate::Never;
}
impl<T> QueryId for Fixed<T> {
    type QueryId = ();
    // Keyed by its text, not by its type.
    const HAS_STATIC_QUERY_ID: bool = false;
}
impl<T: FixedSql> QueryFragment<MultiBackend> for Fixed<T> {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        self.0.walk(out)
    }
}

/// A constant piece of SQL, such as an ORDER BY list.
pub struct Text(pub &'static str);

impl FixedSql for Text {
    fn walk<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        out.push_sql(self.0);
        Ok(())
    }
}

/// An ORDER BY list followed by a LIMIT written into the text. SQLite
/// plans a statement whose LIMIT is a bound value again every time it is
/// bound (measured: it made the signed-in account's lookup cost a quarter
/// of the list query), so a limit that is a constant of the caller is
/// better written out.
pub struct OrderLimit {
    pub order: &'static str,
    pub limit: u16,
}

impl FixedSql for OrderLimit {
    fn walk<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        out.push_sql(self.order);
        out.push_sql(" LIMIT ");
        out.push_sql(&self.limit.to_string());
        Ok(())
    }
}

/// `column IN (?, ?, ...)` over ids, with the list padded (by repeating
/// its first id) to a multiple of [`IdsIn::WIDTH`], so a page of any size
/// up to it uses one prepared statement. A single id is not padded: one
/// connection's lookups (the edit view, a check) are as common as pages,
/// and 64 bound values cost them a tenth of the request.
pub struct IdsIn {
    column: &'static str,
    ids: Vec<i64>,
}

impl IdsIn {
    pub const WIDTH: usize = 64;

    /// `column` is written as given (qualified, as `table.column`). An
    /// empty list matches nothing.
    pub fn new(column: &'static str, ids: impl IntoIterator<Item = i64>) -> Fixed<IdsIn> {
        let mut ids: Vec<i64> = ids.into_iter().collect();
        let first = ids.first().copied();
        if let Some(first) = first {
            let width = if ids.len() == 1 { 1 } else { ids.len().div_ceil(Self::WIDTH) * Self::WIDTH };
            ids.resize(width, first);
        }
        Fixed(IdsIn { column, ids })
    }
}

impl FixedSql for IdsIn {
    fn walk<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        if self.ids.is_empty() {
            out.push_sql("1 = 0");
            return Ok(());
        }
        out.push_sql(self.column);
        out.push_sql(" IN (");
        for (i, id) in self.ids.iter().enumerate() {
            if i > 0 {
                out.push_sql(", ");
            }
            out.push_bind_param::<BigInt, _>(id)?;
        }
        out.push_sql(")");
        Ok(())
    }
}
