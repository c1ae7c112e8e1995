//! The sidebar's and the header's counts: how many connections of an
//! environment have each status, each component and each tag. They are
//! counters kept by database triggers (migration `list_at_scale`) in the
//! same transaction as every change that moves them, so reading them costs
//! the same at 100 connections as at 100,000, and every process sharing
//! the database reads the same committed figures.

use diesel::prelude::*;

use super::status::Status;
use crate::db::DbConnection;
use crate::db::schema::{connection_counts, tag_counts, tags};
use crate::environment::Environment;
use crate::tags::{Tag, TagCount, TagId};

const STATUS: &str = "status";
const COMPONENT: &str = "component";

#[derive(Debug, Clone, Default)]
pub struct Counts {
    pub active: i64,
    pub not_active: i64,
    /// Components with at least one connection, by key.
    pub components: Vec<(String, i64)>,
    /// Tags carried by at least one connection, by name.
    pub tags: Vec<TagCount>,
}

impl Counts {
    /// Every connection of the environment.
    pub fn total(&self) -> i64 {
        self.active + self.not_active
    }

    pub fn of_status(&self, status: Status) -> i64 {
        if status.is_active() { self.active } else { self.not_active }
    }

    pub fn of_component(&self, key: &str) -> i64 {
        self.components.iter().find(|(k, _)| k == key).map_or(0, |(_, n)| *n)
    }

    pub fn of_tag(&self, id: TagId) -> i64 {
        self.tags.iter().find(|t| t.tag.id == id).map_or(0, |t| t.connections)
    }
}

/// The counts of one environment, in two small queries.
pub fn of(conn: &mut DbConnection, environment: Environment) -> QueryResult<Counts> {
    let rows: Vec<(String, String, i64)> = connection_counts::table
        .filter(connection_counts::environment.eq(environment.as_str()))
        .filter(connection_counts::connections.gt(0))
        .select((connection_counts::facet, connection_counts::value, connection_counts::connections))
        .load(conn)?;
    let mut counts = Counts::default();
    for (facet, value, n) in rows {
        match facet.as_str() {
            STATUS => match Status::parse(&value) {
                Some(Status::Active) => counts.active += n,
                // A status this version does not know counts as needing
                // attention, as the rows themselves show it.
                _ => counts.not_active += n,
            },
            COMPONENT => counts.components.push((value, n)),
            _ => {}
        }
    }
    let tag_rows: Vec<(i64, String, i64)> = tag_counts::table
        .inner_join(tags::table)
        .filter(tag_counts::environment.eq(environment.as_str()))
        .filter(tag_counts::connections.gt(0))
        .select((tags::id, tags::name, tag_counts::connections))
        .load(conn)?;
    counts.tags = tag_rows
        .into_iter()
        .map(|(id, name, connections)| TagCount { tag: Tag { id: TagId(id), name }, connections })
        .collect();
    counts.tags.sort_by_cached_key(|t| t.tag.name.to_lowercase());
    Ok(counts)
}
