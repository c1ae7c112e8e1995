//! Administering tags: how many connections carry each one in each
//! environment, renaming, merging one tag into another, and deleting.
//!
//! Tags are shared by every environment, so each change here reaches
//! connections in all of them. The connections themselves are never
//! changed: only their links to tags (`connection_tags`).
//!
//! Every change is one transaction that starts by writing the tag rows it
//! is about (a no-op `UPDATE tags SET name = name`). On PostgreSQL that
//! locks those rows, so a rename, merge and delete of the same tag run one
//! after the other; on SQLite it takes the write lock before anything is
//! read, so the transaction never has to upgrade a read snapshot that
//! another writer (the background checks, say) made stale.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::audit::{self, Action, Actor, Event};
use crate::db::DbConnection;
use crate::db::schema::{connection_tags, tags};
use crate::environment::Environment;
use crate::tags::{Tag, TagId, TagName};

// The links table a second time, for subqueries on the table being read
// or changed.
diesel::alias!(connection_tags as other_links: OtherLinks);

#[derive(Debug, thiserror::Error)]
pub enum TagAdminError {
    #[error("no such tag")]
    NotFound,
    /// The tag chosen to merge into does not exist (any more).
    #[error("the tag to merge into does not exist")]
    TargetNotFound,
    /// Another tag already has this name, ignoring case; it is named here
    /// as stored.
    #[error("another tag is already named {0:?}")]
    NameTaken(String),
    #[error("a tag cannot be merged into itself")]
    SameTag,
    /// What was sent cannot be used; the message says why, for the user.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Database(#[from] DieselError),
}

/// A tag with how many connections carry it in each environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagUsage {
    pub tag: Tag,
    /// In the order of [`Environment::ALL`].
    pub counts: [i64; 3],
}

impl TagUsage {
    fn new(tag: Tag) -> TagUsage {
        TagUsage { tag, counts: [0; 3] }
    }

    fn add(&mut self, environment: &str, n: i64) {
        // Links always name one of the three environments; anything else
        // would be counted nowhere rather than in the wrong column.
        if let Some(i) = Environment::ALL.iter().position(|e| e.as_str() == environment) {
            self.counts[i] += n;
        }
    }

    pub fn count(&self, environment: &Environment) -> i64 {
        Environment::ALL.iter().position(|e| e == environment).map_or(0, |i| self.counts[i])
    }

    pub fn total(&self) -> i64 {
        self.counts.iter().sum()
    }

    /// "2 in Development, 0 in Staging and 1 in Production".
    pub fn breakdown(&self) -> String {
        let parts: Vec<String> =
            Environment::ALL.iter().map(|e| format!("{} in {}", self.count(e), e.label())).collect();
        format!("{}, {} and {}", parts[0], parts[1], parts[2])
    }
}

/// Another tag a tag may be merged into, with how many connections carry
/// it and how many carry both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeChoice {
    pub usage: TagUsage,
    pub shared: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renamed {
    pub before: Tag,
    pub after: Tag,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// The tag merged away, with its counts before the merge.
    pub source: TagUsage,
    pub target: Tag,
    /// Connections that were given the target tag.
    pub moved: i64,
    /// Connections that already had both, which simply lost the source.
    pub already_tagged: i64,
}

/// Every tag, by name, with its counts; tags no connection carries too.
pub fn usage(conn: &mut DbConnection) -> QueryResult<Vec<TagUsage>> {
    let all: Vec<Tag> = tags::table.order(tags::name_key.asc()).select((tags::id, tags::name)).load(conn)?;
    let counts: Vec<(i64, String, i64)> = connection_tags::table
        .group_by((connection_tags::tag_id, connection_tags::environment))
        .select((connection_tags::tag_id, connection_tags::environment, diesel::dsl::count_star()))
        .load(conn)?;
    let mut out: Vec<TagUsage> = all.into_iter().map(TagUsage::new).collect();
    let index: HashMap<i64, usize> = out.iter().enumerate().map(|(i, u)| (u.tag.id.0, i)).collect();
    for (tag, environment, n) in counts {
        if let Some(&i) = index.get(&tag) {
            out[i].add(&environment, n);
        }
    }
    Ok(out)
}

/// One tag with its counts.
pub fn usage_of(conn: &mut DbConnection, id: TagId) -> Result<TagUsage, TagAdminError> {
    let tag = find(conn, id)?.ok_or(TagAdminError::NotFound)?;
    let counts: Vec<(String, i64)> = connection_tags::table
        .filter(connection_tags::tag_id.eq(id.0))
        .group_by(connection_tags::environment)
        .select((connection_tags::environment, diesel::dsl::count_star()))
        .load(conn)?;
    let mut usage = TagUsage::new(tag);
    for (environment, n) in counts {
        usage.add(&environment, n);
    }
    Ok(usage)
}

/// What a merge of `source` can go into: every other tag, by name, with
/// how many connections carry it and how many of those carry `source` too.
pub fn merge_choices(conn: &mut DbConnection, source: TagId) -> Result<Vec<MergeChoice>, TagAdminError> {
    let carrying_source = other_links
        .filter(other_links.field(connection_tags::tag_id).eq(source.0))
        .select(other_links.field(connection_tags::connection_id));
    let shared: HashMap<i64, i64> = connection_tags::table
        .filter(connection_tags::connection_id.eq_any(carrying_source))
        .filter(connection_tags::tag_id.ne(source.0))
        .group_by(connection_tags::tag_id)
        .select((connection_tags::tag_id, diesel::dsl::count_star()))
        .load::<(i64, i64)>(conn)?
        .into_iter()
        .collect();
    Ok(usage(conn)?
        .into_iter()
        .filter(|u| u.tag.id != source)
        .map(|usage| {
            let shared = shared.get(&usage.tag.id.0).copied().unwrap_or(0);
            MergeChoice { usage, shared }
        })
        .collect())
}

/// Renames a tag. A name another tag has (ignoring case) is refused: that
/// is a merge. Changing only the case of the tag's own name is a rename.
pub fn rename(
    conn: &mut DbConnection,
    actor: &Actor,
    id: TagId,
    raw_name: &str,
) -> Result<Renamed, TagAdminError> {
    let name = match TagName::parse(raw_name) {
        Ok(name) => name,
        // An unknown tag is the first thing to say, whatever the name.
        Err(message) => {
            find(conn, id)?.ok_or(TagAdminError::NotFound)?;
            return Err(TagAdminError::Invalid(message));
        }
    };
    let key = name.key();
    let result = crate::db::write(conn, |conn| {
        if lock(conn, &[id])? == 0 {
            return Err(TagAdminError::NotFound);
        }
        let (before_id, before_name, before_key): (i64, String, String) = tags::table
            .filter(tags::id.eq(id.0))
            .select((tags::id, tags::name, tags::name_key))
            .first(conn)?;
        if key != before_key {
            let taken: Option<String> = tags::table
                .filter(tags::name_key.eq(&key).and(tags::id.ne(id.0)))
                .select(tags::name)
                .first(conn)
                .optional()?;
            if let Some(other) = taken {
                return Err(TagAdminError::NameTaken(other));
            }
        }
        diesel::update(tags::table.filter(tags::id.eq(id.0)))
            .set((tags::name.eq(name.as_str()), tags::name_key.eq(&key)))
            .execute(conn)?;
        let renamed = Renamed {
            before: Tag { id: TagId(before_id), name: before_name },
            after: Tag { id, name: name.as_str().to_owned() },
        };
        record(
            conn,
            actor,
            Action::TagRename,
            &renamed.after.name,
            serde_json::json!({
                "from": renamed.before.name, "to": renamed.after.name,
            }),
        )?;
        Ok(renamed)
    });
    match result {
        // Another tag took the name between the check and the update.
        Err(TagAdminError::Database(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _))) => {
            Err(TagAdminError::NameTaken(name.as_str().to_owned()))
        }
        other => other,
    }
}

/// Gives every connection tagged `source` the tag `target` instead (once:
/// a connection that had both keeps one), then deletes `source`.
pub fn merge(
    conn: &mut DbConnection,
    actor: &Actor,
    source: TagId,
    target: TagId,
) -> Result<Merged, TagAdminError> {
    crate::db::write(conn, |conn| {
        lock(conn, &[source, target])?;
        let source_usage = usage_of(conn, source)?;
        if source == target {
            return Err(TagAdminError::SameTag);
        }
        let target_tag = find(conn, target)?.ok_or(TagAdminError::TargetNotFound)?;
        let carrying_target = other_links
            .filter(other_links.field(connection_tags::tag_id).eq(target.0))
            .select(other_links.field(connection_tags::connection_id));
        let moved = diesel::update(
            connection_tags::table
                .filter(connection_tags::tag_id.eq(source.0))
                .filter(connection_tags::connection_id.ne_all(carrying_target)),
        )
        .set(connection_tags::tag_id.eq(target.0))
        .execute(conn)?;
        // What is left of the source's links are on connections that
        // already had the target.
        let already_tagged =
            diesel::delete(connection_tags::table.filter(connection_tags::tag_id.eq(source.0)))
                .execute(conn)?;
        diesel::delete(tags::table.filter(tags::id.eq(source.0))).execute(conn)?;
        let merged = Merged {
            source: source_usage,
            target: target_tag,
            moved: moved as i64,
            already_tagged: already_tagged as i64,
        };
        record(
            conn,
            actor,
            Action::TagMerge,
            &merged.target.name,
            serde_json::json!({
                "from": merged.source.tag.name, "into": merged.target.name, "connections": merged.source.total(),
            }),
        )?;
        Ok(merged)
    })
}

/// Removes a tag from every connection and deletes it. Returns the tag
/// with the counts it had.
pub fn delete(conn: &mut DbConnection, actor: &Actor, id: TagId) -> Result<TagUsage, TagAdminError> {
    crate::db::write(conn, |conn| {
        if lock(conn, &[id])? == 0 {
            return Err(TagAdminError::NotFound);
        }
        let usage = usage_of(conn, id)?;
        diesel::delete(connection_tags::table.filter(connection_tags::tag_id.eq(id.0))).execute(conn)?;
        diesel::delete(tags::table.filter(tags::id.eq(id.0))).execute(conn)?;
        record(
            conn,
            actor,
            Action::TagDelete,
            &usage.tag.name,
            serde_json::json!({
                "connections": usage.total(),
            }),
        )?;
        Ok(usage)
    })
}

/// A tag change's audit row, in the change's transaction. Tags belong to
/// every environment, so the row names none.
fn record(
    conn: &mut DbConnection,
    actor: &Actor,
    action: Action,
    subject: &str,
    details: serde_json::Value,
) -> QueryResult<()> {
    audit::record(
        conn,
        Event { actor: *actor, action, environment: None, connection: None, subject, details },
    )
}

fn find(conn: &mut DbConnection, id: TagId) -> QueryResult<Option<Tag>> {
    tags::table.filter(tags::id.eq(id.0)).select((tags::id, tags::name)).first(conn).optional()
}

/// Writes the tag rows without changing them (see the module comment);
/// returns how many exist.
fn lock(conn: &mut DbConnection, ids: &[TagId]) -> QueryResult<usize> {
    let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
    diesel::update(tags::table.filter(tags::id.eq_any(ids))).set(tags::name.eq(tags::name)).execute(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_counts_by_environment() {
        let mut u = TagUsage::new(Tag { id: TagId(1), name: "ops".into() });
        u.add("development", 2);
        u.add("production", 1);
        u.add("elsewhere", 5);
        assert_eq!(u.count(&Environment::Development), 2);
        assert_eq!(u.count(&Environment::Staging), 0);
        assert_eq!(u.total(), 3);
        assert_eq!(u.breakdown(), "2 in Development, 0 in Staging and 1 in Production");
    }
}
