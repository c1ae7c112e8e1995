//! Whether a connection's credentials work: ACTIVE only when the last check
//! proved them, NOT ACTIVE otherwise, always with a reason.

use chrono::NaiveDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Active,
    NotActive,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::NotActive => "not_active",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "active" => Some(Status::Active),
            "not_active" => Some(Status::NotActive),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Status::Active => "ACTIVE",
            Status::NotActive => "NOT ACTIVE",
        }
    }

    pub fn is_active(self) -> bool {
        self == Status::Active
    }
}

/// The outcome of the most recent check, as stored with the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    pub status: Status,
    pub reason: String,
    pub checked_at: Option<NaiveDateTime>,
}

impl StatusReport {
    /// A connection nobody has checked yet: saving alone proves nothing.
    pub fn unchecked() -> StatusReport {
        StatusReport { status: Status::NotActive, reason: "not checked yet".to_owned(), checked_at: None }
    }
}
