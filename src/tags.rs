//! Tags: short names shared by every connection, unique ignoring case.

use std::fmt;

use chrono::Utc;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::{connection_tags, tags};
use crate::environment::Environment;

pub const MAX_TAG_CHARS: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TagId(pub i64);

impl fmt::Display for TagId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A valid tag name: trimmed, 1 to 40 characters, no commas (they separate
/// tags in forms) and no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagName(String);

impl TagName {
    pub fn parse(raw: &str) -> Result<TagName, String> {
        let name = raw.trim();
        let chars = name.chars().count();
        if name.is_empty() {
            return Err("A tag needs at least one character.".into());
        }
        if chars > MAX_TAG_CHARS {
            return Err(format!("Tags can be at most {MAX_TAG_CHARS} characters; one has {chars}."));
        }
        if name.contains(',') || name.chars().any(char::is_control) {
            return Err("Tags cannot contain commas or control characters.".into());
        }
        // Runs of spaces inside a name would make look-alike tags.
        Ok(TagName(name.split_whitespace().collect::<Vec<_>>().join(" ")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What uniqueness is decided on.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

impl From<i64> for TagId {
    fn from(id: i64) -> TagId {
        TagId(id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct Tag {
    #[diesel(deserialize_as = i64)]
    pub id: TagId,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagCount {
    pub tag: Tag,
    pub connections: i64,
}

/// The ids of these tags, creating the ones that do not exist yet.
pub fn ensure(conn: &mut DbConnection, names: &[TagName]) -> QueryResult<Vec<TagId>> {
    let mut ids = Vec::with_capacity(names.len());
    for name in names {
        let key = name.key();
        let existing =
            tags::table.filter(tags::name_key.eq(&key)).select(tags::id).first::<i64>(conn).optional()?;
        let id = match existing {
            Some(id) => id,
            None => {
                insert_if_absent(conn, name.as_str(), &key)?;
                tags::table.filter(tags::name_key.eq(&key)).select(tags::id).first::<i64>(conn)?
            }
        };
        ids.push(TagId(id));
    }
    Ok(ids)
}

/// Two saves may create the same new tag at once; the second must find the
/// first's row rather than fail. The SQL differs by backend (diesel's
/// `on_conflict` does not compile over the multi-backend connection).
fn insert_if_absent(conn: &mut DbConnection, name: &str, key: &str) -> QueryResult<()> {
    let row = (tags::name.eq(name), tags::name_key.eq(key), tags::created_at.eq(Utc::now().naive_utc()));
    match conn {
        DbConnection::Postgres(pg) => diesel::insert_into(tags::table)
            .values(row)
            .on_conflict(tags::name_key)
            .do_nothing()
            .execute(pg)?,
        DbConnection::Sqlite(sqlite) => {
            diesel::insert_or_ignore_into(tags::table).values(row).execute(sqlite)?
        }
    };
    Ok(())
}

pub fn find(conn: &mut DbConnection, name: &str) -> QueryResult<Option<Tag>> {
    let Ok(name) = TagName::parse(name) else {
        return Ok(None);
    };
    tags::table.filter(tags::name_key.eq(name.key())).select((tags::id, tags::name)).first(conn).optional()
}

/// Every tag, by name: the choices offered in a form.
pub fn all(conn: &mut DbConnection) -> QueryResult<Vec<Tag>> {
    tags::table.order(tags::name_key.asc()).select((tags::id, tags::name)).load(conn)
}

/// Tags used in an environment, with how many of its connections carry
/// each, by name.
pub fn counts(conn: &mut DbConnection, environment: Environment) -> QueryResult<Vec<TagCount>> {
    // Two small queries: the counts come from one index range, without
    // touching the connections themselves.
    let counts: Vec<(i64, i64)> = connection_tags::table
        .filter(connection_tags::environment.eq(environment.as_str()))
        .group_by(connection_tags::tag_id)
        .select((connection_tags::tag_id, diesel::dsl::count_star()))
        .load(conn)?;
    let names: Vec<(i64, String)> = tags::table
        .filter(tags::id.eq_any(counts.iter().map(|(id, _)| *id)))
        .select((tags::id, tags::name))
        .load(conn)?;
    let names: std::collections::HashMap<i64, String> = names.into_iter().collect();
    let mut out: Vec<TagCount> = counts
        .into_iter()
        .filter_map(|(id, connections)| {
            let name = names.get(&id)?.clone();
            Some(TagCount { tag: Tag { id: TagId(id), name }, connections })
        })
        .collect();
    out.sort_by_key(|t| t.tag.name.to_lowercase());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_checked() {
        assert_eq!(TagName::parse("  Billing   team ").unwrap().as_str(), "Billing team");
        assert_eq!(TagName::parse("Prod").unwrap().key(), "prod");
        assert!(TagName::parse("   ").is_err());
        assert!(TagName::parse("a,b").is_err());
        assert!(TagName::parse(&"x".repeat(41)).is_err());
        assert!(TagName::parse("line\nbreak").is_err());
    }
}
