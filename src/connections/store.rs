//! Connections in the database. Every function takes the environment and
//! filters by it: a connection is never read or changed from another one.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::input::Draft;
use super::status::{Status, StatusReport};
use super::tokens::{Lifetime, TokenState, Tokens};
use super::{Connection, ConnectionId};
use crate::crypto::{CryptoError, Keyring, Sealed};
use crate::db::DbConnection;
use crate::db::fixed_sql::{Fixed, IdsIn, OrderLimit, Text};
use crate::db::schema::{connection_checks, connection_tags, connections, tags};
use crate::environment::Environment;
use crate::tags::{self as tag_store, Tag, TagId, TagName};

/// How names are compared for search and sort: lower case, accents
/// removed, so "émile" finds "Émile" and sorts with the other E's.
pub fn fold(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    use unicode_normalization::char::is_combining_mark;
    text.nfd().filter(|c| !is_combining_mark(*c)).collect::<String>().to_lowercase()
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no such connection in this environment")]
    NotFound,
    #[error("the connection was changed by someone else")]
    Conflict,
    #[error("the connection already has the most tags allowed")]
    TooManyTags,
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("stored parameters are not valid JSON: {0}")]
    Corrupt(#[from] serde_json::Error),
}

/// The columns read for display: everything except the ciphertext.
#[derive(Queryable, Selectable)]
#[diesel(table_name = connections)]
struct Row {
    id: i64,
    environment: String,
    component: String,
    name: String,
    auth_method: String,
    parameters: String,
    secret_fields: String,
    status: String,
    status_reason: String,
    checked_at: Option<NaiveDateTime>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    created_by: Option<String>,
    updated_by: Option<String>,
    version: i32,
}

impl Row {
    fn into_connection(self, tags: Vec<Tag>) -> Result<Connection, StoreError> {
        Ok(Connection {
            id: ConnectionId(self.id),
            environment: Environment::parse(&self.environment).unwrap_or_default(),
            component: self.component,
            name: self.name,
            auth_method: self.auth_method,
            parameters: serde_json::from_str(&self.parameters)?,
            secret_fields: split_list(&self.secret_fields),
            status: StatusReport {
                status: Status::parse(&self.status).unwrap_or(Status::NotActive),
                reason: self.status_reason,
                checked_at: self.checked_at,
            },
            created_at: self.created_at,
            updated_at: self.updated_at,
            created_by: self.created_by,
            updated_by: self.updated_by,
            version: self.version,
            tags,
        })
    }
}

fn split_list(s: &str) -> BTreeSet<String> {
    s.split(',').filter(|k| !k.is_empty()).map(str::to_owned).collect()
}

fn join_list<'a>(keys: impl Iterator<Item = &'a String>) -> String {
    keys.map(String::as_str).collect::<Vec<_>>().join(",")
}

/// What a sealed secret is bound to: moved to another row, environment or
/// component, it no longer opens.
fn associated_data(id: ConnectionId, environment: Environment, component: &str) -> Vec<u8> {
    format!("plugboard/connection/{}/{}/{}", id.0, environment.as_str(), component).into_bytes()
}

fn seal_secrets(
    keyring: &Keyring,
    id: ConnectionId,
    environment: Environment,
    component: &str,
    secrets: &BTreeMap<String, SecretString>,
) -> Option<Sealed> {
    if secrets.is_empty() {
        return None;
    }
    let plain: BTreeMap<&str, &str> = secrets.iter().map(|(k, v)| (k.as_str(), v.expose_secret())).collect();
    let json = Zeroizing::new(serde_json::to_vec(&plain).expect("a map of strings serialises"));
    Some(keyring.seal(&json, &associated_data(id, environment, component)))
}

/// A finished check, to be stored.
pub struct CheckResult<'a> {
    /// The version of the credentials that were checked.
    pub checked_version: i32,
    pub report: &'a StatusReport,
    pub trigger: &'a str,
    pub duration_ms: i32,
    pub unreachable: bool,
    pub next_check_at: NaiveDateTime,
    /// A token the check was issued (client credentials): stored with the
    /// result, while the checked credentials are still the current ones.
    pub issued: Option<(&'a Tokens, &'a Lifetime)>,
}

pub fn insert(
    conn: &mut DbConnection,
    keyring: &Keyring,
    environment: Environment,
    component: &str,
    draft: &Draft,
    check: Option<&CheckResult>,
) -> Result<ConnectionId, StoreError> {
    crate::db::write(conn, |conn| {
        let now = Utc::now().naive_utc();
        let unchecked = StatusReport::unchecked();
        let report = check.map_or(&unchecked, |c| c.report);
        let id: i64 = diesel::insert_into(connections::table)
            .values((
                connections::environment.eq(environment.as_str()),
                connections::component.eq(component),
                connections::name.eq(&draft.name),
                connections::name_key.eq(fold(&draft.name)),
                connections::auth_method.eq(&draft.auth_method),
                connections::parameters.eq(serde_json::to_string(&draft.parameters)?),
                connections::secret_fields.eq(join_list(draft.secrets.keys())),
                connections::status.eq(report.status.as_str()),
                connections::status_reason.eq(&report.reason),
                connections::checked_at.eq(report.checked_at),
                connections::check_failures.eq(check.map_or(0, |c| i32::from(c.unreachable))),
                connections::next_check_at.eq(check.map(|c| c.next_check_at)),
                connections::created_at.eq(now),
                connections::updated_at.eq(now),
                connections::created_by.eq(&draft.author),
                connections::updated_by.eq(&draft.author),
                connections::version.eq(1),
            ))
            .returning(connections::id)
            .get_result(conn)?;
        let id = ConnectionId(id);
        // The row's id is part of the associated data, so sealing waits
        // until the insert has produced it.
        if let Some(sealed) = seal_secrets(keyring, id, environment, component, &draft.secrets) {
            diesel::update(connections::table.find(id.0))
                .set((connections::secrets.eq(sealed.bytes), connections::secrets_key_id.eq(sealed.key_id)))
                .execute(conn)?;
        }
        set_tags(conn, environment, id, &draft.tags)?;
        if let Some(check) = check {
            add_to_history(conn, id, check)?;
        }
        Ok(id)
    })
}

/// Saves an edit made from `expected_version`. If anyone saved in between,
/// nothing changes and the result is [`StoreError::Conflict`].
pub fn update(
    conn: &mut DbConnection,
    keyring: &Keyring,
    environment: Environment,
    id: ConnectionId,
    expected_version: i32,
    draft: &Draft,
) -> Result<(), StoreError> {
    crate::db::write(conn, |conn| {
        lock_row(conn, id)?;
        let (component, version) = connections::table
            .filter(connections::id.eq(id.0).and(connections::environment.eq(environment.as_str())))
            .select((connections::component, connections::version))
            .load::<(String, i32)>(conn)?
            .pop()
            .ok_or(StoreError::NotFound)?;
        if version != expected_version {
            return Err(StoreError::Conflict);
        }
        let mut secrets: BTreeMap<String, SecretString> = BTreeMap::new();
        if !draft.kept_secrets.is_empty() {
            let stored = open_secrets(conn, keyring, environment, id)?;
            secrets.extend(stored.into_iter().filter(|(k, _)| draft.kept_secrets.contains(k)));
        }
        secrets.extend(draft.secrets.iter().map(|(k, v)| (k.clone(), v.clone())));
        let sealed = seal_secrets(keyring, id, environment, &component, &secrets);
        let (bytes, key_id) = match sealed {
            Some(s) => (Some(s.bytes), Some(s.key_id)),
            None => (None, None),
        };
        let changed = diesel::update(
            connections::table.filter(
                connections::id
                    .eq(id.0)
                    .and(connections::environment.eq(environment.as_str()))
                    .and(connections::version.eq(expected_version)),
            ),
        )
        .set((
            connections::name.eq(&draft.name),
            connections::name_key.eq(fold(&draft.name)),
            connections::auth_method.eq(&draft.auth_method),
            connections::parameters.eq(serde_json::to_string(&draft.parameters)?),
            connections::secrets.eq(bytes),
            connections::secrets_key_id.eq(key_id),
            connections::secret_fields.eq(join_list(secrets.keys())),
            connections::updated_at.eq(Utc::now().naive_utc()),
            connections::updated_by.eq(&draft.author),
            connections::version.eq(expected_version + 1),
            // New credentials have not been proven yet.
            connections::status.eq(Status::NotActive.as_str()),
            connections::status_reason.eq(StatusReport::unchecked().reason),
            connections::checked_at.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)?;
        if changed == 0 {
            return Err(StoreError::Conflict);
        }
        set_tags(conn, environment, id, &draft.tags)
    })
}

pub fn delete(conn: &mut DbConnection, environment: Environment, id: ConnectionId) -> Result<(), StoreError> {
    let deleted = diesel::delete(
        connections::table
            .filter(connections::id.eq(id.0).and(connections::environment.eq(environment.as_str()))),
    )
    .execute(conn)?;
    if deleted == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

pub fn get(
    conn: &mut DbConnection,
    environment: Environment,
    id: ConnectionId,
) -> Result<Connection, StoreError> {
    let row: Row = connections::table
        .filter(connections::id.eq(id.0).and(connections::environment.eq(environment.as_str())))
        .select(Row::as_select())
        // By primary key, so without `.first()`: SQLite plans a statement
        // with a bound LIMIT again on every use (see db::fixed_sql).
        .load(conn)?
        .pop()
        .ok_or(StoreError::NotFound)?;
    let mut tags = tags_of(conn, &[id])?;
    row.into_connection(tags.remove(&id).unwrap_or_default())
}

/// The full metadata (settings, which secret fields are set, times) of a
/// page of the list, in the page's order, in one query: the API's list
/// answers with what one connection's answer has, which the list's own
/// projection leaves out. A connection deleted since the page was read is
/// left out.
pub fn details(
    conn: &mut DbConnection,
    environment: Environment,
    listed: Vec<super::Listed>,
) -> Result<Vec<Connection>, StoreError> {
    if listed.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = listed.iter().map(|c| c.id.0).collect();
    let rows: Vec<Row> = connections::table
        .filter(connections::environment.eq(environment.as_str()))
        .filter(connections::id.eq_any(ids))
        .select(Row::as_select())
        .load(conn)?;
    let mut rows: HashMap<i64, Row> = rows.into_iter().map(|r| (r.id, r)).collect();
    listed.into_iter().filter_map(|c| rows.remove(&c.id.0).map(|row| row.into_connection(c.tags))).collect()
}

/// The decrypted secret values of a connection. Only the code that talks to
/// the service should call this; nothing it returns may reach a page.
pub fn open_secrets(
    conn: &mut DbConnection,
    keyring: &Keyring,
    environment: Environment,
    id: ConnectionId,
) -> Result<BTreeMap<String, SecretString>, StoreError> {
    let (component, secrets, key_id) = connections::table
        .filter(connections::id.eq(id.0).and(connections::environment.eq(environment.as_str())))
        .select((connections::component, connections::secrets, connections::secrets_key_id))
        .load::<(String, Option<Vec<u8>>, Option<String>)>(conn)?
        .pop()
        .ok_or(StoreError::NotFound)?;
    let (Some(bytes), Some(key_id)) = (secrets, key_id) else {
        return Ok(BTreeMap::new());
    };
    let plain = keyring.open(&Sealed { key_id, bytes }, &associated_data(id, environment, &component))?;
    let map: BTreeMap<String, String> = serde_json::from_slice(&plain)?;
    Ok(map.into_iter().map(|(k, v)| (k, SecretString::from(v))).collect())
}

/// Adds a tag (created if new). Returns the tag as stored and whether the
/// connection did not have it yet.
pub fn add_tag(
    conn: &mut DbConnection,
    environment: Environment,
    id: ConnectionId,
    name: &TagName,
) -> Result<(Tag, bool), StoreError> {
    crate::db::write(conn, |conn| {
        lock_row(conn, id)?;
        ensure_exists(conn, environment, id)?;
        let tag_id = tag_store::ensure(conn, std::slice::from_ref(name))?[0];
        let stored: String = tags::table.find(tag_id.0).select(tags::name).first(conn)?;
        let tag = Tag { id: tag_id, name: stored };
        let already: i64 = connection_tags::table
            .filter(connection_tags::connection_id.eq(id.0).and(connection_tags::tag_id.eq(tag_id.0)))
            .count()
            .get_result(conn)?;
        if already > 0 {
            return Ok((tag, false));
        }
        let count: i64 = connection_tags::table
            .filter(connection_tags::connection_id.eq(id.0))
            .count()
            .get_result(conn)?;
        if count >= super::input::MAX_TAGS as i64 {
            return Err(StoreError::TooManyTags);
        }
        diesel::insert_into(connection_tags::table)
            .values((
                connection_tags::connection_id.eq(id.0),
                connection_tags::tag_id.eq(tag_id.0),
                connection_tags::environment.eq(environment.as_str()),
            ))
            .execute(conn)?;
        Ok((tag, true))
    })
}

pub fn remove_tag(
    conn: &mut DbConnection,
    environment: Environment,
    id: ConnectionId,
    tag: TagId,
) -> Result<(), StoreError> {
    crate::db::write(conn, |conn| {
        lock_row(conn, id)?;
        ensure_exists(conn, environment, id)?;
        diesel::delete(
            connection_tags::table
                .filter(connection_tags::connection_id.eq(id.0).and(connection_tags::tag_id.eq(tag.0))),
        )
        .execute(conn)?;
        Ok(())
    })
}

/// Takes the write lock before a transaction reads what it will change: a
/// row lock on PostgreSQL, the database's write lock on SQLite (whose
/// deferred transactions would otherwise fail with "database is locked"
/// when two of them try to upgrade from reading to writing at once).
pub fn lock_row(conn: &mut DbConnection, id: ConnectionId) -> QueryResult<usize> {
    diesel::update(connections::table.find(id.0))
        .set(connections::version.eq(connections::version))
        .execute(conn)
}

fn ensure_exists(
    conn: &mut DbConnection,
    environment: Environment,
    id: ConnectionId,
) -> Result<(), StoreError> {
    let found: i64 = connections::table
        .filter(connections::id.eq(id.0).and(connections::environment.eq(environment.as_str())))
        .count()
        .get_result(conn)?;
    if found == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

fn set_tags(
    conn: &mut DbConnection,
    environment: Environment,
    id: ConnectionId,
    names: &[TagName],
) -> Result<(), StoreError> {
    let ids = tag_store::ensure(conn, names)?;
    diesel::delete(connection_tags::table.filter(connection_tags::connection_id.eq(id.0))).execute(conn)?;
    for tag in ids {
        diesel::insert_into(connection_tags::table)
            .values((
                connection_tags::connection_id.eq(id.0),
                connection_tags::tag_id.eq(tag.0),
                connection_tags::environment.eq(environment.as_str()),
            ))
            .execute(conn)?;
    }
    Ok(())
}

pub(super) fn tags_of(
    conn: &mut DbConnection,
    ids: &[ConnectionId],
) -> QueryResult<HashMap<ConnectionId, Vec<Tag>>> {
    let rows: Vec<(i64, i64, String)> = connection_tags::table
        .inner_join(tags::table)
        .filter(IdsIn::new("connection_tags.connection_id", ids.iter().map(|id| id.0)))
        .order(tags::name_key.asc())
        .select((connection_tags::connection_id, tags::id, tags::name))
        .load(conn)?;
    let mut map: HashMap<ConnectionId, Vec<Tag>> = HashMap::new();
    for (connection, tag, name) in rows {
        map.entry(ConnectionId(connection)).or_default().push(Tag { id: TagId(tag), name });
    }
    Ok(map)
}

// ---- checks ----

/// One check, as the edit view lists them.
#[derive(Debug, Clone, Queryable)]
pub struct CheckRecord {
    pub checked_at: NaiveDateTime,
    pub status: String,
    pub reason: String,
    pub trigger: String,
    pub duration_ms: i32,
}

impl CheckRecord {
    pub fn status(&self) -> Status {
        Status::parse(&self.status).unwrap_or(Status::NotActive)
    }
}

/// How many history rows each connection keeps.
pub const CHECKS_KEPT: i64 = 20;

/// What a check needs: the connection as it was when the check began, and
/// its secrets, an OAuth2 access token among them (as `access_token`).
pub struct ForCheck {
    pub connection: Connection,
    pub secrets: BTreeMap<String, SecretString>,
    /// Its tokens' state, if it has tokens: whether they are due for renewal.
    pub tokens: Option<TokenState>,
}

pub fn for_check(
    conn: &mut DbConnection,
    keyring: &Keyring,
    environment: Environment,
    id: ConnectionId,
) -> Result<ForCheck, StoreError> {
    let connection = get(conn, environment, id)?;
    let mut secrets = open_secrets(conn, keyring, environment, id)?;
    let tokens = super::tokens::get(conn, keyring, environment, id)?.map(|(tokens, state)| {
        secrets.insert("access_token".to_owned(), tokens.access_token);
        state
    });
    Ok(ForCheck { connection, secrets, tokens })
}

/// Merges provider-issued values into a connection's parameters (a
/// reconnect's token fields); an edit like any other, so the version moves.
pub fn merge_parameters(
    conn: &mut DbConnection,
    environment: Environment,
    id: ConnectionId,
    values: &BTreeMap<String, String>,
    author: Option<&str>,
) -> Result<(), StoreError> {
    let mut connection = get(conn, environment, id)?;
    connection.parameters.extend(values.iter().map(|(k, v)| (k.clone(), v.clone())));
    diesel::update(
        connections::table
            .filter(connections::id.eq(id.0).and(connections::environment.eq(environment.as_str()))),
    )
    .set((
        connections::parameters.eq(serde_json::to_string(&connection.parameters)?),
        connections::updated_at.eq(Utc::now().naive_utc()),
        connections::updated_by.eq(author),
        connections::version.eq(connections::version + 1),
    ))
    .execute(conn)?;
    Ok(())
}

/// Sets the status without a check (a refresh the provider refused).
pub fn set_status(
    conn: &mut DbConnection,
    environment: Environment,
    id: ConnectionId,
    report: &StatusReport,
) -> Result<(), StoreError> {
    diesel::update(
        connections::table
            .filter(connections::id.eq(id.0).and(connections::environment.eq(environment.as_str()))),
    )
    .set((
        connections::status.eq(report.status.as_str()),
        connections::status_reason.eq(&report.reason),
        connections::checked_at.eq(report.checked_at),
    ))
    .execute(conn)?;
    Ok(())
}

/// Stores a check's result. The history always gets the row; the
/// connection's status changes only if its credentials are still those
/// that were checked (`checked_version`), so a slow check never overwrites
/// the status of newer credentials.
#[allow(clippy::too_many_arguments)]
pub fn record_check(
    conn: &mut DbConnection,
    environment: Environment,
    id: ConnectionId,
    check: &CheckResult,
) -> Result<bool, StoreError> {
    let report = check.report;
    crate::db::write(conn, |conn| {
        lock_row(conn, id)?;
        ensure_exists(conn, environment, id)?;
        add_to_history(conn, id, check)?;
        // One statement of fixed text: a list of the ids kept, or a bound
        // LIMIT, would make SQLite prepare or plan it anew on every check.
        const _: () = assert!(CHECKS_KEPT == 20, "the text below keeps 20");
        let older = Text(
            "connection_checks.id NOT IN (SELECT kept.id FROM connection_checks AS kept \
             WHERE kept.connection_id = connection_checks.connection_id ORDER BY kept.id DESC LIMIT 20)",
        );
        diesel::delete(
            connection_checks::table.filter(connection_checks::connection_id.eq(id.0)).filter(Fixed(older)),
        )
        .execute(conn)?;
        // Counting up while unreachable, back to zero otherwise, in one expression.
        let step = i32::from(check.unreachable);
        let failures = connections::check_failures * step + step;
        let updated = diesel::update(
            connections::table
                .filter(connections::id.eq(id.0))
                .filter(connections::environment.eq(environment.as_str()))
                .filter(connections::version.eq(check.checked_version)),
        )
        .set((
            connections::status.eq(report.status.as_str()),
            connections::status_reason.eq(&report.reason),
            connections::checked_at.eq(checked_at(check)),
            connections::check_failures.eq(failures),
            connections::next_check_at.eq(check.next_check_at),
        ))
        .execute(conn)?;
        Ok(updated == 1)
    })
}

fn checked_at(check: &CheckResult) -> NaiveDateTime {
    check.report.checked_at.unwrap_or_else(|| Utc::now().naive_utc())
}

/// The check's row in the connection's history.
fn add_to_history(conn: &mut DbConnection, id: ConnectionId, check: &CheckResult) -> Result<(), StoreError> {
    diesel::insert_into(connection_checks::table)
        .values((
            connection_checks::connection_id.eq(id.0),
            connection_checks::checked_at.eq(checked_at(check)),
            connection_checks::status.eq(check.report.status.as_str()),
            connection_checks::reason.eq(&check.report.reason),
            connection_checks::trigger.eq(check.trigger),
            connection_checks::duration_ms.eq(check.duration_ms),
        ))
        .execute(conn)?;
    Ok(())
}

/// The newest checks of a connection, newest first.
pub fn recent_checks(
    conn: &mut DbConnection,
    environment: Environment,
    id: ConnectionId,
) -> Result<Vec<CheckRecord>, StoreError> {
    ensure_exists(conn, environment, id)?;
    Ok(connection_checks::table
        .filter(connection_checks::connection_id.eq(id.0))
        .order(Fixed(OrderLimit { order: "connection_checks.id DESC", limit: CHECKS_KEPT as u16 }))
        .select((
            connection_checks::checked_at,
            connection_checks::status,
            connection_checks::reason,
            connection_checks::trigger,
            connection_checks::duration_ms,
        ))
        .load(conn)?)
}

/// A connection the schedule should check now.
pub struct Due {
    pub environment: Environment,
    pub id: ConnectionId,
    pub failures: i32,
}

/// Connections whose next check is due, oldest first.
pub fn due_for_check(conn: &mut DbConnection, now: NaiveDateTime, limit: i64) -> QueryResult<Vec<Due>> {
    let rows: Vec<(String, i64, i32)> = connections::table
        .filter(connections::next_check_at.le(now))
        .order(connections::next_check_at.asc())
        .limit(limit)
        .select((connections::environment, connections::id, connections::check_failures))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(env, id, failures)| {
            Some(Due { environment: Environment::parse(&env)?, id: ConnectionId(id), failures })
        })
        .collect())
}

pub fn is_due(conn: &mut DbConnection, id: ConnectionId, now: NaiveDateTime) -> QueryResult<bool> {
    let due: i64 = connections::table
        .filter(connections::id.eq(id.0))
        .filter(connections::next_check_at.le(now))
        .count()
        .get_result(conn)?;
    Ok(due == 1)
}

/// Connections never scheduled (saved before the schedule existed, or
/// imported): at most `limit` of them, lowest id first.
pub fn unscheduled(conn: &mut DbConnection, limit: i64) -> QueryResult<Vec<ConnectionId>> {
    let ids: Vec<i64> = connections::table
        .filter(connections::next_check_at.is_null())
        .order(connections::id)
        .select(connections::id)
        .limit(limit)
        .load(conn)?;
    Ok(ids.into_iter().map(ConnectionId).collect())
}

/// Gives each of `ids` that still has no check time one from `at`. In the
/// order given (lowest id first, from [`unscheduled`]), so that two
/// processes doing it at once take the rows' locks in the same order.
pub fn schedule(
    conn: &mut DbConnection,
    ids: &[ConnectionId],
    mut at: impl FnMut() -> NaiveDateTime,
) -> QueryResult<usize> {
    let mut scheduled = 0;
    for id in ids {
        scheduled +=
            diesel::update(connections::table.find(id.0).filter(connections::next_check_at.is_null()))
                .set(connections::next_check_at.eq(at()))
                .execute(conn)?;
    }
    Ok(scheduled)
}
