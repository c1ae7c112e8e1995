//! Connections: a component's credentials and settings in one environment,
//! with a status that says whether they work.

pub mod changes;
pub mod counts;
pub mod drafts;
pub mod input;
pub mod listing;
pub mod operations;
pub mod status;
pub mod store;
pub mod tokens;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::NaiveDateTime;

use crate::environment::Environment;
use crate::tags::Tag;
pub use input::{ConnectionInput, Draft, FieldErrors};
pub use listing::{ListPage, ListQuery, Listed, Sort, SortColumn};
pub use status::{Status, StatusReport};
pub use store::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub i64);

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A connection as pages see it. It holds no secret value, only the names
/// of the secret fields that are set.
#[derive(Debug, Clone)]
pub struct Connection {
    pub id: ConnectionId,
    pub environment: Environment,
    pub component: String,
    pub name: String,
    pub auth_method: String,
    pub parameters: BTreeMap<String, String>,
    pub secret_fields: BTreeSet<String>,
    pub status: StatusReport,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
    pub version: i32,
    pub tags: Vec<Tag>,
}
