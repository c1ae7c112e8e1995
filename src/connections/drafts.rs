//! What a person had typed when their session ended, kept until they sign
//! in again.
//!
//! A session can end while a form is open: signed out in another tab, or
//! ended by an admin. The save that follows arrives without an account and
//! goes to sign-in. Rather than losing the input, its non-secret part is
//! kept here, sealed, under a random key that only that browser's session
//! cookie holds; after the sign-in the form opens again with it. The same
//! path serves pages with and without JavaScript.
//!
//! A draft never holds a secret: which fields are secret is the catalog's
//! word, and a field the catalog does not name for the component is
//! dropped. Only the names of the secret fields that had been typed are
//! kept, so the form can say to enter them again.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::catalog::Component;
use crate::connections::StoreError;
use crate::connections::input::ConnectionInput;
use crate::crypto::{Keyring, Sealed};
use crate::db::DbConnection;
use crate::db::schema::sign_in_drafts;

/// Long enough to sign in again after a coffee; short enough that a
/// forgotten draft does not linger.
pub const LIFETIME: TimeDelta = TimeDelta::hours(1);

/// Anyone can send a form without a session, so what is kept is bounded:
/// this many drafts in the table, each at most `MAX_BYTES` of JSON (64 MiB
/// at worst, for an hour). Past either, nothing is kept and the sign-in
/// page says nothing about input. Sessions that end with a form open are
/// rare; a flood only costs the input of those, as before drafts.
pub const MAX_DRAFTS: i64 = 1_000;
pub const MAX_BYTES: usize = 64 * 1024;

const AAD: &[u8] = b"plugboard/sign-in-draft";

/// Which form the input came from, so the same one opens again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// The New Connection form of a component.
    New { component: String },
    /// The edit form of a connection.
    Edit { id: i64 },
    /// A row's inline "+ tag": it comes back as the connection's edit
    /// form with the tag typed in.
    Tag { id: i64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Draft {
    pub target: Target,
    /// The form's input, its `values` holding settings and non-secret
    /// fields only.
    pub input: ConnectionInput,
    /// Secret fields that had a value typed: the form asks for them again.
    pub retype: BTreeSet<String>,
}

impl Draft {
    /// The non-secret part of a connection form's input.
    pub fn of_form(target: Target, component: &Component, input: &ConnectionInput) -> Draft {
        let method = component.auth_method(&input.auth_method);
        let fields: Vec<_> =
            component.settings.iter().chain(method.into_iter().flat_map(|m| &m.fields)).collect();
        let secret = |key: &str| fields.iter().find(|f| f.key == key).map(|f| f.secret);
        let mut values = BTreeMap::new();
        let mut retype = BTreeSet::new();
        for (key, value) in &input.values {
            match secret(key) {
                Some(false) => {
                    values.insert(key.clone(), value.clone());
                }
                Some(true) if !value.is_empty() => {
                    retype.insert(key.clone());
                }
                // Unknown to the catalog: whether it is secret is unknown.
                _ => {}
            }
        }
        Draft { target, input: ConnectionInput { values, ..input.clone() }, retype }
    }

    /// A tag typed into a row's inline form.
    pub fn of_tag(id: i64, tag: &str) -> Draft {
        Draft {
            target: Target::Tag { id },
            input: ConnectionInput { new_tags: tag.to_owned(), ..ConnectionInput::default() },
            retype: BTreeSet::new(),
        }
    }
}

fn key_hash(key: &str) -> String {
    hex::encode(sha2::Sha256::digest(key.as_bytes()))
}

fn aad(key_hash: &str) -> Vec<u8> {
    [AAD, b"/", key_hash.as_bytes()].concat()
}

/// Keeps `draft`, replacing `replacing` (the session's earlier draft, if
/// any), and returns the key the session holds to take it back. `None`
/// when it is too large or the table is full.
pub fn stash(
    conn: &mut DbConnection,
    keyring: &Keyring,
    draft: &Draft,
    replacing: Option<&str>,
    now: NaiveDateTime,
) -> Result<Option<String>, StoreError> {
    let json = serde_json::to_vec(draft)?;
    if json.len() > MAX_BYTES {
        return Ok(None);
    }
    let mut bytes = [0u8; 32];
    // Without randomness there is no key nobody else could guess: keep
    // nothing rather than something weak.
    if getrandom::fill(&mut bytes).is_err() {
        return Ok(None);
    }
    let key = hex::encode(bytes);
    let hash = key_hash(&key);
    let sealed = keyring.seal(&json, &aad(&hash));
    crate::db::write(conn, |conn| {
        // Drafts nobody came back for go as new ones come.
        diesel::delete(sign_in_drafts::table.filter(sign_in_drafts::created_at.lt(now - LIFETIME)))
            .execute(conn)?;
        if let Some(old) = replacing {
            diesel::delete(sign_in_drafts::table.find(key_hash(old))).execute(conn)?;
        }
        let kept: i64 = sign_in_drafts::table.count().get_result(conn)?;
        if kept >= MAX_DRAFTS {
            return Ok(None);
        }
        diesel::insert_into(sign_in_drafts::table)
            .values((
                sign_in_drafts::key_hash.eq(&hash),
                sign_in_drafts::sealed.eq(&sealed.bytes),
                sign_in_drafts::key_id.eq(&sealed.key_id),
                sign_in_drafts::created_at.eq(now),
            ))
            .execute(conn)?;
        Ok(Some(key))
    })
}

/// Why a draft could not be given back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    /// No draft has this key: already restored, or never kept.
    Unknown,
    /// Older than `LIFETIME`.
    Expired,
    /// It no longer opens (the key that sealed it was retired) or reads.
    Unreadable,
}

/// Takes the draft named by `key` out of the database: one delete, so it
/// is given back once.
pub fn take(
    conn: &mut DbConnection,
    keyring: &Keyring,
    key: &str,
    now: NaiveDateTime,
) -> Result<Result<Draft, Gone>, StoreError> {
    let hash = key_hash(key);
    let row: Option<(Vec<u8>, String, NaiveDateTime)> = diesel::delete(sign_in_drafts::table.find(&hash))
        .returning((sign_in_drafts::sealed, sign_in_drafts::key_id, sign_in_drafts::created_at))
        .get_result(conn)
        .optional()?;
    let Some((bytes, key_id, created_at)) = row else {
        return Ok(Err(Gone::Unknown));
    };
    if created_at < now - LIFETIME {
        return Ok(Err(Gone::Expired));
    }
    let Ok(plain) = keyring.open(&Sealed { key_id, bytes }, &aad(&hash)) else {
        return Ok(Err(Gone::Unreadable));
    };
    Ok(serde_json::from_slice(&plain).map_err(|_| Gone::Unreadable))
}
