//! The connections list: one page of what the rows show, reached by keyset
//! (the page starts after, or ends before, a given row), so its cost does
//! not grow with the page number; the counts come from counters
//! ([`super::counts`]). Every query is filtered by the environment.
//!
//! A numbered page (`?page=40`, a bookmark) is found by skipping rows in
//! an index that holds the sort's columns, never the rows themselves; the
//! Previous and Next links carry the row to start from.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::query_builder::AstPass;
use diesel::sql_types::{BigInt, Text, Timestamp};

use super::ConnectionId;
use super::counts::{self, Counts};
use super::status::{Status, StatusReport};
use super::store::{StoreError, fold, tags_of};
use super::tokens::{self, TokenState};
use crate::db::fixed_sql::{self, Fixed, FixedSql, OrderLimit};
use crate::db::schema::{connection_tags, connection_usage, connections};
use crate::db::{DbConnection, MultiBackend};
use crate::environment::Environment;
use crate::tags::{self as tag_store, Tag, TagId};

/// What a list can be sorted by; the id always breaks ties, so the order
/// is total and a page boundary is one exact place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortColumn {
    Created,
    Name,
    Component,
    Status,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    #[default]
    Newest,
    Oldest,
    NameAsc,
    NameDesc,
    ComponentAsc,
    ComponentDesc,
    StatusAsc,
    StatusDesc,
}

impl Sort {
    pub const ALL: [Sort; 8] = [
        Sort::Newest,
        Sort::Oldest,
        Sort::NameAsc,
        Sort::NameDesc,
        Sort::ComponentAsc,
        Sort::ComponentDesc,
        Sort::StatusAsc,
        Sort::StatusDesc,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Sort::Newest => "newest",
            Sort::Oldest => "oldest",
            Sort::NameAsc => "name",
            Sort::NameDesc => "-name",
            Sort::ComponentAsc => "component",
            Sort::ComponentDesc => "-component",
            Sort::StatusAsc => "status",
            Sort::StatusDesc => "-status",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Sort::Newest => "Newest first",
            Sort::Oldest => "Oldest first",
            Sort::NameAsc => "Name A–Z",
            Sort::NameDesc => "Name Z–A",
            Sort::ComponentAsc => "Component A–Z",
            Sort::ComponentDesc => "Component Z–A",
            Sort::StatusAsc => "Active first",
            Sort::StatusDesc => "Not active first",
        }
    }

    pub fn parse(s: &str) -> Option<Sort> {
        Sort::ALL.into_iter().find(|o| o.as_str() == s)
    }

    pub fn column(self) -> SortColumn {
        match self {
            Sort::Newest | Sort::Oldest => SortColumn::Created,
            Sort::NameAsc | Sort::NameDesc => SortColumn::Name,
            Sort::ComponentAsc | Sort::ComponentDesc => SortColumn::Component,
            Sort::StatusAsc | Sort::StatusDesc => SortColumn::Status,
        }
    }

    /// Whether the rows come in descending order of the column (newest
    /// first is descending by creation time).
    pub fn descending(self) -> bool {
        matches!(self, Sort::Newest | Sort::NameDesc | Sort::ComponentDesc | Sort::StatusDesc)
    }

    /// What a click on a column's header sorts by: the other direction if
    /// the list is sorted by that column already, else the column's usual
    /// first order (newest first for dates, A to Z, active first).
    pub fn toggled(self, column: SortColumn) -> Sort {
        let (usual, other) = match column {
            SortColumn::Created => (Sort::Newest, Sort::Oldest),
            SortColumn::Name => (Sort::NameAsc, Sort::NameDesc),
            SortColumn::Component => (Sort::ComponentAsc, Sort::ComponentDesc),
            SortColumn::Status => (Sort::StatusAsc, Sort::StatusDesc),
        };
        if self == usual { other } else { usual }
    }

    /// The sort's columns, in the order of the index that serves it
    /// (see the migrations).
    fn columns(self) -> &'static str {
        match self.column() {
            SortColumn::Created => "connections.created_at, connections.id",
            SortColumn::Name => "connections.name_key, connections.id",
            SortColumn::Component => "connections.component, connections.name_key, connections.id",
            SortColumn::Status => "connections.status, connections.name_key, connections.id",
        }
    }

    /// ORDER BY for reading forward (`true`) or backward from an anchor:
    /// fixed texts, so the statement stays prepared.
    fn order_by(self, forward: bool) -> &'static str {
        let descending = self.descending() == forward;
        match (self.column(), descending) {
            (SortColumn::Created, true) => "connections.created_at DESC, connections.id DESC",
            (SortColumn::Created, false) => "connections.created_at ASC, connections.id ASC",
            (SortColumn::Name, true) => "connections.name_key DESC, connections.id DESC",
            (SortColumn::Name, false) => "connections.name_key ASC, connections.id ASC",
            (SortColumn::Component, true) => {
                "connections.component DESC, connections.name_key DESC, connections.id DESC"
            }
            (SortColumn::Component, false) => {
                "connections.component ASC, connections.name_key ASC, connections.id ASC"
            }
            (SortColumn::Status, true) => {
                "connections.status DESC, connections.name_key DESC, connections.id DESC"
            }
            (SortColumn::Status, false) => {
                "connections.status ASC, connections.name_key ASC, connections.id ASC"
            }
        }
    }
}

/// The rows after (`forward`) or before the anchor in a sort's order, as
/// one row-value comparison, which both databases answer as a range of the
/// sort's index.
struct Beyond<'a> {
    sort: Sort,
    anchor: &'a Anchor,
    forward: bool,
}

impl FixedSql for Beyond<'_> {
    fn walk<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        out.push_sql("(");
        out.push_sql(self.sort.columns());
        out.push_sql(if self.sort.descending() == self.forward { ") < (" } else { ") > (" });
        let anchor = self.anchor;
        match self.sort.column() {
            SortColumn::Created => out.push_bind_param::<Timestamp, _>(&anchor.created_at)?,
            SortColumn::Name => out.push_bind_param::<Text, _>(&anchor.name_key)?,
            SortColumn::Component | SortColumn::Status => {
                let first = if self.sort.column() == SortColumn::Component {
                    &anchor.component
                } else {
                    &anchor.status
                };
                out.push_bind_param::<Text, _>(first)?;
                out.push_sql(", ");
                out.push_bind_param::<Text, _>(&anchor.name_key)?;
            }
        }
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&anchor.id)?;
        out.push_sql(")");
        Ok(())
    }
}

/// `+connections.environment = ?`: the environment still filters the rows,
/// but SQLite is told not to drive the query from its index. Without
/// statistics SQLite takes an equality on an index to match a few rows, so
/// it walked every connection of the environment and probed the search's
/// matches for each (100 req/s at 100,000), rather than reading the
/// matches and then their rows.
struct InEnvironmentUnindexed<'a>(&'a str);

impl FixedSql for InEnvironmentUnindexed<'_> {
    fn walk<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        out.push_sql("+connections.environment = ");
        out.push_bind_param::<Text, _>(self.0)?;
        Ok(())
    }
}

/// The connections whose folded name holds the phrase, from SQLite's
/// trigram index.
struct NameMatches<'a>(&'a str);

impl FixedSql for NameMatches<'_> {
    fn walk<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        out.push_sql("connections.id IN (SELECT rowid FROM connection_names WHERE connection_names MATCH ");
        out.push_bind_param::<Text, _>(self.0)?;
        out.push_sql(")");
        Ok(())
    }
}

/// Which connections to show: every field narrows the list.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub component: Option<String>,
    pub tag: Option<String>,
    pub status: Option<Status>,
    pub search: Option<String>,
    pub sort: Sort,
    /// Counted from 1. With `after` or `before`, the number the page is
    /// shown as; alone, the page to find.
    pub page: i64,
    /// The page starts after this connection (a Next link).
    pub after: Option<ConnectionId>,
    /// The page ends before this connection (a Previous link).
    pub before: Option<ConnectionId>,
    pub per_page: i64,
    /// An API token's limits (see [`Reach`]); `None` on the page.
    pub reach: Option<Reach>,
    /// Only connections whose credentials nobody read through the API
    /// since then (the unused filter).
    pub unused_since: Option<NaiveDateTime>,
}

/// The connections an API token is limited to: any of `components` (if
/// any), and with any of `tags` (if any).
#[derive(Debug, Clone, Default)]
pub struct Reach {
    pub components: Vec<String>,
    pub tags: Vec<TagId>,
}

/// A connection as a row of the list shows it: no parameters, no
/// ciphertext, nothing the row does not display.
#[derive(Debug, Clone)]
pub struct Listed {
    pub id: ConnectionId,
    pub component: String,
    pub name: String,
    pub auth_method: String,
    pub status: StatusReport,
    pub created_at: NaiveDateTime,
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
    pub version: i32,
    pub tags: Vec<Tag>,
}

#[derive(Queryable)]
struct ListedRow {
    id: i64,
    component: String,
    name: String,
    auth_method: String,
    status: String,
    status_reason: String,
    checked_at: Option<NaiveDateTime>,
    created_at: NaiveDateTime,
    created_by: Option<String>,
    updated_by: Option<String>,
    version: i32,
}

type ListedColumns = (
    connections::id,
    connections::component,
    connections::name,
    connections::auth_method,
    connections::status,
    connections::status_reason,
    connections::checked_at,
    connections::created_at,
    connections::created_by,
    connections::updated_by,
    connections::version,
);

const LISTED_COLUMNS: ListedColumns = (
    connections::id,
    connections::component,
    connections::name,
    connections::auth_method,
    connections::status,
    connections::status_reason,
    connections::checked_at,
    connections::created_at,
    connections::created_by,
    connections::updated_by,
    connections::version,
);

impl ListedRow {
    fn into_listed(self, tags: Vec<Tag>) -> Listed {
        Listed {
            id: ConnectionId(self.id),
            component: self.component,
            name: self.name,
            auth_method: self.auth_method,
            status: StatusReport {
                status: Status::parse(&self.status).unwrap_or(Status::NotActive),
                reason: self.status_reason,
                checked_at: self.checked_at,
            },
            created_at: self.created_at,
            created_by: self.created_by,
            updated_by: self.updated_by,
            version: self.version,
            tags,
        }
    }
}

/// Where a page starts: the values of the sort columns of one row.
#[derive(Queryable)]
struct Anchor {
    id: i64,
    created_at: NaiveDateTime,
    name_key: String,
    component: String,
    status: String,
}

#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub connections: Vec<Listed>,
    /// How many connections match the filters.
    pub total: i64,
    pub page: i64,
    pub pages: i64,
    pub has_previous: bool,
    pub has_next: bool,
    /// A page past the end was asked for (its number): this is the last
    /// page instead.
    pub past_end: Option<i64>,
}

impl ListPage {
    fn empty() -> ListPage {
        ListPage { page: 1, pages: 1, ..ListPage::default() }
    }

    pub fn first_id(&self) -> Option<ConnectionId> {
        self.connections.first().map(|c| c.id)
    }

    pub fn last_id(&self) -> Option<ConnectionId> {
        self.connections.last().map(|c| c.id)
    }
}

/// How a name search is answered.
enum NameSearch {
    /// SQLite's trigram index (FTS5), with the folded text as one phrase:
    /// its trigrams in a row, which is the text as a substring.
    Trigrams(String),
    /// `name_key LIKE '%text%'`: on PostgreSQL served by the pg_trgm index;
    /// on SQLite for searches under three characters, which have no
    /// trigram (it then reads the environment's names from an index).
    Like(String),
}

impl NameSearch {
    fn of(conn: &DbConnection, text: &str) -> Option<NameSearch> {
        let folded = fold(text.trim());
        if folded.is_empty() {
            return None;
        }
        if matches!(conn, DbConnection::Sqlite(_)) && folded.chars().count() >= 3 {
            return Some(NameSearch::Trigrams(format!("\"{}\"", folded.replace('"', "\"\""))));
        }
        let escaped = folded.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        Some(NameSearch::Like(format!("%{escaped}%")))
    }
}

/// A tag filter, and how it is best answered. A tag most connections
/// carry is checked row by row while the sort's index is walked, which
/// stops once the page is full; a rare one is read from the tag's own
/// index, which holds few rows. (Reading a common tag's links first made
/// the page's cost grow with the environment: 600 req/s at 100,000.)
#[derive(Clone, Copy)]
struct TagFilter {
    tag: TagId,
    common: bool,
}

impl TagFilter {
    fn of(tag: TagId, counts: &Counts) -> TagFilter {
        // One connection in twenty: walking the index then reads about
        // twenty rows per row shown.
        TagFilter { tag, common: counts.of_tag(tag) * 20 >= counts.total() }
    }
}

/// The connection carries the tag (a probe of the links' primary key).
struct Tagged(TagId);

impl FixedSql for Tagged {
    fn walk<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        out.push_sql(
            "EXISTS (SELECT 1 FROM connection_tags WHERE connection_tags.connection_id = connections.id \
             AND connection_tags.tag_id = ",
        );
        out.push_bind_param::<BigInt, _>(&self.0.0)?;
        out.push_sql(")");
        Ok(())
    }
}

/// The filters, resolved: the tag by id, the search by how it is served.
struct Filters<'a> {
    environment: Environment,
    component: Option<&'a str>,
    tag: Option<TagFilter>,
    status: Option<Status>,
    search: Option<NameSearch>,
    reach: Option<&'a Reach>,
    unused_since: Option<NaiveDateTime>,
}

impl Filters<'_> {
    fn query(&self) -> connections::BoxedQuery<'_, MultiBackend> {
        let environment = self.environment.as_str();
        let mut q = if matches!(self.search, Some(NameSearch::Trigrams(_))) {
            connections::table.filter(Fixed(InEnvironmentUnindexed(environment))).into_boxed()
        } else {
            connections::table.filter(connections::environment.eq(environment)).into_boxed()
        };
        if let Some(component) = self.component {
            q = q.filter(connections::component.eq(component));
        }
        match self.tag {
            Some(TagFilter { tag, common: false }) => {
                q = q.filter(
                    connections::id.eq_any(
                        connection_tags::table
                            .filter(connection_tags::environment.eq(environment))
                            .filter(connection_tags::tag_id.eq(tag.0))
                            .select(connection_tags::connection_id),
                    ),
                );
            }
            Some(TagFilter { tag, common: true }) => q = q.filter(Fixed(Tagged(tag))),
            None => {}
        }
        if let Some(status) = self.status {
            q = q.filter(connections::status.eq(status.as_str()));
        }
        match &self.search {
            Some(NameSearch::Trigrams(phrase)) => {
                q = q.filter(Fixed(NameMatches(phrase)));
            }
            Some(NameSearch::Like(pattern)) => {
                q = q.filter(connections::name_key.like(pattern.clone()).escape('\\'));
            }
            None => {}
        }
        if let Some(reach) = self.reach {
            if !reach.components.is_empty() {
                q = q.filter(connections::component.eq_any(&reach.components));
            }
            if !reach.tags.is_empty() {
                q = q.filter(
                    connections::id.eq_any(
                        connection_tags::table
                            .filter(connection_tags::environment.eq(environment))
                            .filter(
                                connection_tags::tag_id
                                    .eq_any(reach.tags.iter().map(|t| t.0).collect::<Vec<_>>()),
                            )
                            .select(connection_tags::connection_id),
                    ),
                );
            }
        }
        if let Some(since) = self.unused_since {
            // NOT EXISTS, which both databases answer as an anti-join over
            // the usage table's indexes. (`id <> ALL (subquery)`, diesel's
            // `ne_all`, is never hashed by PostgreSQL: it compared every
            // row of the environment with every recent use.)
            q = q.filter(diesel::dsl::not(diesel::dsl::exists(
                connection_usage::table
                    .filter(connection_usage::connection_id.eq(connections::id))
                    .filter(connection_usage::environment.eq(environment))
                    .filter(connection_usage::last_used_at.ge(since)),
            )));
        }
        q
    }

    /// How many connections match: from the counters when one filter (or
    /// none) is set, else counted over the filters' index. No counter
    /// knows a token's limits or who used what lately: those are counted.
    fn total(&self, conn: &mut DbConnection, counts: &Counts) -> QueryResult<i64> {
        if self.search.is_none() && self.reach.is_none() && self.unused_since.is_none() {
            match (self.component, self.tag, self.status) {
                (None, None, None) => return Ok(counts.total()),
                (Some(component), None, None) => return Ok(counts.of_component(component)),
                (None, Some(tag), None) => return Ok(counts.of_tag(tag.tag)),
                (None, None, Some(status)) => return Ok(counts.of_status(status)),
                _ => {}
            }
        }
        self.query().count().get_result(conn)
    }

    /// Up to `limit` rows in `sort` order, after or before `from`.
    fn rows(
        &self,
        conn: &mut DbConnection,
        sort: Sort,
        from: Option<(&Anchor, bool)>,
        limit: u16,
    ) -> QueryResult<Vec<ListedRow>> {
        let forward = from.is_none_or(|(_, forward)| forward);
        let mut q = self.query().select(LISTED_COLUMNS);
        if let Some((anchor, forward)) = from {
            q = q.filter(Fixed(Beyond { sort, anchor, forward }));
        }
        q.order(Fixed(OrderLimit { order: sort.order_by(forward), limit })).load(conn)
    }

    /// The sort values of one connection of the environment, if it still
    /// exists.
    fn anchor(&self, conn: &mut DbConnection, id: ConnectionId) -> QueryResult<Option<Anchor>> {
        connections::table
            .filter(connections::id.eq(id.0))
            .filter(connections::environment.eq(self.environment.as_str()))
            .select((
                connections::id,
                connections::created_at,
                connections::name_key,
                connections::component,
                connections::status,
            ))
            .first(conn)
            .optional()
    }

    /// The connection just before the numbered page, found by skipping
    /// entries of the sort's index (only the id is read, which the index
    /// holds).
    fn before_page(
        &self,
        conn: &mut DbConnection,
        sort: Sort,
        page: i64,
        per_page: i64,
    ) -> QueryResult<Option<ConnectionId>> {
        let id: Option<i64> = self
            .query()
            .select(connections::id)
            .order(Fixed(fixed_sql::Text(sort.order_by(true))))
            .offset((page - 1) * per_page - 1)
            .first(conn)
            .optional()?;
        Ok(id.map(ConnectionId))
    }
}

pub fn list(
    conn: &mut DbConnection,
    environment: Environment,
    query: &ListQuery,
    counts: &Counts,
) -> Result<ListPage, StoreError> {
    let per_page = query.per_page.clamp(1, 200);
    let tag = match &query.tag {
        Some(name) => match tag_store::find(conn, name)? {
            Some(tag) => Some(TagFilter::of(tag.id, counts)),
            // An unknown tag matches nothing, rather than everything.
            None => return Ok(ListPage::empty()),
        },
        None => None,
    };
    let filters = Filters {
        environment,
        component: query.component.as_deref(),
        tag,
        status: query.status,
        search: query.search.as_deref().and_then(|s| NameSearch::of(conn, s)),
        reach: query.reach.as_ref(),
        unused_since: query.unused_since,
    };
    let total = filters.total(conn, counts)?;
    let pages = ((total + per_page - 1) / per_page).max(1);
    let sort = query.sort;
    // One row more than the page shows: whether there is a next page.
    let limit = u16::try_from(per_page + 1).unwrap_or(201);

    // A Next or Previous link whose row still exists.
    let cursor = match (query.after, query.before) {
        (Some(id), _) => filters.anchor(conn, id)?.map(|a| (a, true)),
        (None, Some(id)) => filters.anchor(conn, id)?.map(|a| (a, false)),
        (None, None) => None,
    };
    let mut page = ListPage { total, pages, ..ListPage::default() };
    let mut rows = match cursor {
        Some((anchor, true)) => {
            let mut rows = filters.rows(conn, sort, Some((&anchor, true)), limit)?;
            page.has_next = rows.len() as i64 > per_page;
            rows.truncate(per_page as usize);
            page.has_previous = true;
            page.page = query.page.clamp(2, pages.max(2));
            rows
        }
        Some((anchor, false)) => {
            let mut rows = filters.rows(conn, sort, Some((&anchor, false)), limit)?;
            page.has_previous = rows.len() as i64 > per_page;
            rows.truncate(per_page as usize);
            rows.reverse();
            page.has_next = true;
            page.page = if page.has_previous { query.page.clamp(2, pages.max(2)) } else { 1 };
            rows
        }
        // A numbered page, or a link whose row was deleted meanwhile.
        None => {
            let requested = query.page.max(1);
            page.page = requested.min(pages);
            page.past_end = (requested > pages).then_some(requested);
            let before = match page.page {
                1 => None,
                n => filters.before_page(conn, sort, n, per_page)?,
            };
            let anchor = match before {
                Some(id) => filters.anchor(conn, id)?,
                None => None,
            };
            let mut rows = filters.rows(conn, sort, anchor.as_ref().map(|a| (a, true)), limit)?;
            page.has_next = rows.len() as i64 > per_page;
            rows.truncate(per_page as usize);
            page.has_previous = page.page > 1;
            rows
        }
    };
    let ids: Vec<ConnectionId> = rows.iter().map(|r| ConnectionId(r.id)).collect();
    let mut tags = if ids.is_empty() { HashMap::new() } else { tags_of(conn, &ids)? };
    page.connections = rows
        .drain(..)
        .map(|row| {
            let tags = tags.remove(&ConnectionId(row.id)).unwrap_or_default();
            row.into_listed(tags)
        })
        .collect();
    Ok(page)
}

/// Everything the Connections page shows for one request: the page of
/// connections and the sidebar's counts.
#[derive(Debug, Clone)]
pub struct Overview {
    pub page: ListPage,
    pub counts: Counts,
    /// The OAuth2 tokens' state of the page's connections that have them.
    pub tokens: HashMap<ConnectionId, TokenState>,
}

/// What the list page reads, in the queries it sends (`tests/query_plans.rs`
/// checks that each is served by an index).
pub fn overview(
    conn: &mut DbConnection,
    environment: Environment,
    query: &ListQuery,
) -> Result<Overview, StoreError> {
    let counts = counts::of(conn, environment)?;
    let page = list(conn, environment, query, &counts)?;
    let ids: Vec<ConnectionId> = page.connections.iter().map(|c| c.id).collect();
    let tokens = if ids.is_empty() { HashMap::new() } else { tokens::states(conn, &ids)? };
    Ok(Overview { page, counts, tokens })
}
