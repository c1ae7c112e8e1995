// One schema for both backends; the migrations under migrations/sqlite and
// migrations/postgres create the same tables.

diesel::table! {
    connections (id) {
        id -> BigInt,
        environment -> Text,
        component -> Text,
        name -> Text,
        name_key -> Text,
        auth_method -> Text,
        parameters -> Text,
        secrets -> Nullable<Binary>,
        secrets_key_id -> Nullable<Text>,
        secret_fields -> Text,
        status -> Text,
        status_reason -> Text,
        checked_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        created_by -> Nullable<Text>,
        updated_by -> Nullable<Text>,
        version -> Integer,
        next_check_at -> Nullable<Timestamp>,
        check_failures -> Integer,
    }
}

diesel::table! {
    connection_checks (id) {
        id -> BigInt,
        connection_id -> BigInt,
        checked_at -> Timestamp,
        status -> Text,
        reason -> Text,
        trigger -> Text,
        duration_ms -> Integer,
    }
}

diesel::table! {
    leases (name) {
        name -> Text,
        owner -> Text,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    tags (id) {
        id -> BigInt,
        name -> Text,
        name_key -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    connection_tags (connection_id, tag_id) {
        connection_id -> BigInt,
        tag_id -> BigInt,
        environment -> Text,
    }
}

diesel::table! {
    users (id) {
        id -> BigInt,
        email -> Text,
        name -> Text,
        password_hash -> Text,
        role -> Text,
        disabled -> Bool,
        must_change_password -> Bool,
        session_epoch -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    sign_in_failures (key) {
        key -> Text,
        failures -> Integer,
        last_failure -> Timestamp,
    }
}

diesel::table! {
    audit_events (id) {
        id -> BigInt,
        at -> Timestamp,
        actor_id -> Nullable<BigInt>,
        actor -> Text,
        action -> Text,
        environment -> Nullable<Text>,
        connection_id -> Nullable<BigInt>,
        subject -> Text,
        details -> Text,
    }
}

diesel::table! {
    oauth_attempts (state_hash) {
        state_hash -> Text,
        session_binding -> Text,
        user_id -> BigInt,
        environment -> Text,
        component -> Text,
        auth_method -> Text,
        connection_id -> Nullable<BigInt>,
        redirect_uri -> Text,
        sealed -> Binary,
        key_id -> Text,
        popup -> Bool,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    connection_tokens (connection_id) {
        connection_id -> BigInt,
        sealed -> Binary,
        key_id -> Text,
        has_refresh_token -> Bool,
        expires_at -> Nullable<Timestamp>,
        obtained_at -> Timestamp,
        refreshed_at -> Nullable<Timestamp>,
        refresh_due_at -> Nullable<Timestamp>,
        refresh_failures -> Integer,
        token_version -> Integer,
    }
}

diesel::table! {
    /// One row, updated by the readiness probe to prove that writes work.
    readiness (id) {
        id -> Integer,
        probes -> BigInt,
        probed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    /// How many connections of an environment have each status and each
    /// component, kept by triggers (see the migration list_at_scale).
    connection_counts (environment, facet, value) {
        environment -> Text,
        facet -> Text,
        value -> Text,
        connections -> BigInt,
    }
}

diesel::table! {
    /// How many connections of an environment carry each tag, kept by
    /// triggers.
    tag_counts (environment, tag_id) {
        environment -> Text,
        tag_id -> BigInt,
        connections -> BigInt,
    }
}

diesel::table! {
    /// API tokens, stored as a SHA-256 hash (see `api::tokens`).
    api_tokens (id) {
        id -> BigInt,
        name -> Text,
        environment -> Text,
        token_hash -> Text,
        prefix -> Text,
        permissions -> Text,
        components -> Text,
        tag_ids -> Text,
        expires_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        created_by -> Nullable<Text>,
    }
}

diesel::table! {
    /// Who read each connection's credentials through the API, one row
    /// per consumer (see `api::usage`).
    connection_usage (connection_id, consumer) {
        connection_id -> BigInt,
        consumer -> Text,
        environment -> Text,
        token_id -> Nullable<BigInt>,
        token_name -> Text,
        first_used_at -> Timestamp,
        last_used_at -> Timestamp,
        reads -> BigInt,
    }
}

diesel::table! {
    /// Non-secret form input kept across a sign-in (see
    /// `connections::drafts`).
    sign_in_drafts (key_hash) {
        key_hash -> Text,
        sealed -> Binary,
        key_id -> Text,
        created_at -> Timestamp,
    }
}

diesel::joinable!(tag_counts -> tags (tag_id));
diesel::joinable!(connection_tags -> connections (connection_id));
diesel::joinable!(connection_tags -> tags (tag_id));
diesel::joinable!(connection_checks -> connections (connection_id));
diesel::joinable!(connection_tokens -> connections (connection_id));
diesel::joinable!(connection_usage -> connections (connection_id));
diesel::table! {
    /// Each environment's list change number, moved by triggers with every
    /// change to what the Connections page shows (migration list_changes).
    list_changes (environment) {
        environment -> Text,
        change -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    connections,
    tags,
    connection_tags,
    connection_checks,
    leases,
    users,
    sign_in_failures,
    audit_events,
    oauth_attempts,
    connection_tokens,
    connection_counts,
    tag_counts,
    api_tokens,
    connection_usage,
    sign_in_drafts,
    list_changes
);
