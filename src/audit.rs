//! The audit trail: who did what, when, in which environment, and what
//! changed, by field name only. Rows are only ever inserted.

use chrono::{NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde_json::Value;

use crate::accounts::User;
use crate::connections::ConnectionId;
use crate::db::schema::audit_events;
use crate::db::{DbConnection, MultiBackend};
use crate::environment::Environment;

/// What happened. Stored by [`Action::as_str`]; the names are part of the
/// stored trail, so they never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    SignIn,
    SignInFailed,
    SignOut,
    Setup,
    PasswordChange,
    ConnectionCreate,
    ConnectionEdit,
    ConnectionDelete,
    ConnectionCheck,
    ConnectionTag,
    ConnectionUntag,
    TagRename,
    TagMerge,
    TagDelete,
    UserCreate,
    UserRole,
    UserDisable,
    ConnectionConnect,
    ConnectionReconnect,
    TokenRefresh,
    TokenRefreshFailed,
    UserPasswordReset,
    ApiTokenCreate,
    ApiTokenRevoke,
    ApiCredentialsRead,
}

impl Action {
    pub const ALL: [Action; 25] = [
        Action::SignIn,
        Action::SignInFailed,
        Action::SignOut,
        Action::Setup,
        Action::PasswordChange,
        Action::ConnectionCreate,
        Action::ConnectionEdit,
        Action::ConnectionDelete,
        Action::ConnectionCheck,
        Action::ConnectionTag,
        Action::ConnectionUntag,
        Action::TagRename,
        Action::TagMerge,
        Action::TagDelete,
        Action::UserCreate,
        Action::UserRole,
        Action::UserDisable,
        Action::ConnectionConnect,
        Action::ConnectionReconnect,
        Action::TokenRefresh,
        Action::TokenRefreshFailed,
        Action::UserPasswordReset,
        Action::ApiTokenCreate,
        Action::ApiTokenRevoke,
        Action::ApiCredentialsRead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::SignIn => "sign_in",
            Action::SignInFailed => "sign_in_failed",
            Action::SignOut => "sign_out",
            Action::Setup => "setup",
            Action::PasswordChange => "password_change",
            Action::ConnectionCreate => "connection_create",
            Action::ConnectionEdit => "connection_edit",
            Action::ConnectionDelete => "connection_delete",
            Action::ConnectionCheck => "connection_check",
            Action::ConnectionTag => "connection_tag",
            Action::ConnectionUntag => "connection_untag",
            Action::TagRename => "tag_rename",
            Action::TagMerge => "tag_merge",
            Action::TagDelete => "tag_delete",
            Action::UserCreate => "user_create",
            Action::UserRole => "user_role",
            Action::UserDisable => "user_disable",
            Action::ConnectionConnect => "connection_connect",
            Action::ConnectionReconnect => "connection_reconnect",
            Action::TokenRefresh => "token_refresh",
            Action::TokenRefreshFailed => "token_refresh_failed",
            Action::UserPasswordReset => "user_password_reset",
            Action::ApiTokenCreate => "api_token_create",
            Action::ApiTokenRevoke => "api_token_revoke",
            Action::ApiCredentialsRead => "api_credentials_read",
        }
    }

    /// The action as the audit page's filter names it.
    pub fn label(self) -> &'static str {
        match self {
            Action::SignIn => "Signed in",
            Action::SignInFailed => "Sign-in failed",
            Action::SignOut => "Signed out",
            Action::Setup => "Set up Plugboard",
            Action::PasswordChange => "Changed own password",
            Action::ConnectionCreate => "Created a connection",
            Action::ConnectionEdit => "Edited a connection",
            Action::ConnectionDelete => "Deleted a connection",
            Action::ConnectionCheck => "Checked a connection",
            Action::ConnectionTag => "Tagged a connection",
            Action::ConnectionUntag => "Removed a tag from a connection",
            Action::TagRename => "Renamed a tag",
            Action::TagMerge => "Merged tags",
            Action::TagDelete => "Deleted a tag",
            Action::UserCreate => "Added a person",
            Action::UserRole => "Changed a role",
            Action::UserDisable => "Disabled or enabled a person",
            Action::ConnectionConnect => "Connected with OAuth2",
            Action::ConnectionReconnect => "Reconnected with OAuth2",
            Action::TokenRefresh => "Refreshed an access token",
            Action::TokenRefreshFailed => "Could not refresh an access token",
            Action::UserPasswordReset => "Reset someone's password",
            Action::ApiTokenCreate => "Created an API token",
            Action::ApiTokenRevoke => "Revoked an API token",
            Action::ApiCredentialsRead => "Read credentials through the API",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// Who acted: a person, an API token, or Plugboard itself (the background
/// schedule).
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    Person(&'a User),
    /// Someone not signed in (a failed sign-in), by the address typed.
    Anonymous(&'a str),
    /// An automation calling the API with a token, by the token's name.
    ApiToken(&'a str),
    System,
}

impl Actor<'_> {
    /// How "created by" and "changed by" name the actor.
    pub fn author(&self) -> Option<String> {
        match self {
            Actor::Person(user) => Some(user.display()),
            Actor::ApiToken(name) => Some(format!("API token \u{201c}{name}\u{201d}")),
            Actor::Anonymous(_) | Actor::System => None,
        }
    }

    /// The same actor, owning what it names.
    pub fn owned(&self) -> OwnedActor {
        match *self {
            Actor::Person(user) => OwnedActor::Person(user.clone()),
            Actor::Anonymous(who) => OwnedActor::Anonymous(who.to_owned()),
            Actor::ApiToken(name) => OwnedActor::ApiToken(name.to_owned()),
            Actor::System => OwnedActor::System,
        }
    }
}

/// An [`Actor`] that owns what it names, for work that outlives the
/// request that asked for it or moves to another thread (a check, an
/// OAuth2 refresh), and so cannot borrow.
#[derive(Debug, Clone)]
pub enum OwnedActor {
    Person(User),
    Anonymous(String),
    ApiToken(String),
    System,
}

impl OwnedActor {
    pub fn actor(&self) -> Actor<'_> {
        match self {
            OwnedActor::Person(user) => Actor::Person(user),
            OwnedActor::Anonymous(who) => Actor::Anonymous(who),
            OwnedActor::ApiToken(name) => Actor::ApiToken(name),
            OwnedActor::System => Actor::System,
        }
    }
}

pub struct Event<'a> {
    pub actor: Actor<'a>,
    pub action: Action,
    pub environment: Option<Environment>,
    pub connection: Option<ConnectionId>,
    /// What was acted on, in words: a connection's or tag's name, an email.
    pub subject: &'a str,
    /// Facts that are never secret: field names, old and new roles.
    pub details: Value,
}

pub fn record(conn: &mut DbConnection, event: Event) -> QueryResult<()> {
    let (actor_id, actor) = match event.actor {
        Actor::Person(user) => (Some(user.id.0), user.display()),
        Actor::Anonymous(who) => (None, format!("(not signed in) {who}")),
        Actor::ApiToken(name) => (None, format!("API token \u{201c}{name}\u{201d}")),
        Actor::System => (None, "Plugboard (schedule)".to_owned()),
    };
    diesel::insert_into(audit_events::table)
        .values((
            audit_events::at.eq(Utc::now().naive_utc()),
            audit_events::actor_id.eq(actor_id),
            audit_events::actor.eq(actor),
            audit_events::action.eq(event.action.as_str()),
            audit_events::environment.eq(event.environment.map(Environment::as_str)),
            audit_events::connection_id.eq(event.connection.map(|c| c.0)),
            audit_events::subject.eq(event.subject),
            audit_events::details.eq(event.details.to_string()),
        ))
        .execute(conn)?;
    Ok(())
}

#[derive(Debug, Clone, Queryable)]
pub struct Entry {
    pub id: i64,
    pub at: NaiveDateTime,
    pub actor_id: Option<i64>,
    pub actor: String,
    pub action: String,
    pub environment: Option<String>,
    pub connection_id: Option<i64>,
    pub subject: String,
    pub details: String,
}

#[derive(Debug, Clone, Default)]
pub struct Query {
    pub actor_id: Option<i64>,
    pub connection_id: Option<i64>,
    pub action: Option<Action>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

pub const PAGE: i64 = 100;

/// The newest entries matching, newest first.
pub fn list(conn: &mut DbConnection, query: &Query, page: i64) -> QueryResult<Vec<Entry>> {
    let mut q = audit_events::table.into_boxed::<MultiBackend>();
    if let Some(id) = query.actor_id {
        q = q.filter(audit_events::actor_id.eq(id));
    }
    if let Some(id) = query.connection_id {
        q = q.filter(audit_events::connection_id.eq(id));
    }
    if let Some(action) = query.action {
        q = q.filter(audit_events::action.eq(action.as_str()));
    }
    if let Some(from) = query.from {
        q = q.filter(audit_events::at.ge(from.and_hms_opt(0, 0, 0).unwrap_or_default()));
    }
    if let Some(to) = query.to {
        let end = to.succ_opt().unwrap_or(to).and_hms_opt(0, 0, 0).unwrap_or_default();
        q = q.filter(audit_events::at.lt(end));
    }
    q.order(audit_events::id.desc()).limit(PAGE).offset((page.max(1) - 1) * PAGE).load(conn)
}
