//! Tags: short names shared by every connection, unique ignoring case.

use std::fmt;

use chrono::Utc;
use diesel::prelude::*;
use unicode_normalization::UnicodeNormalization;

use crate::db::DbConnection;
use crate::db::schema::tags;

pub const MAX_TAG_CHARS: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TagId(pub i64);

impl fmt::Display for TagId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A valid tag name: NFKC-normalised, trimmed, 1 to 40 characters, no
/// commas (they separate tags in forms), no control characters, and none of
/// the invisible or direction-changing characters that make one name look
/// like another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagName(String);

/// Characters that show nothing (or reorder what is shown), so that
/// "o\u{200B}ps" or "ops\u{202E}" would sit beside "ops" looking the same.
/// Refused rather than removed: the person is told what their text held.
const INVISIBLE: &[(char, &str)] = &[
    ('\u{00AD}', "SOFT HYPHEN"),
    ('\u{061C}', "ARABIC LETTER MARK"),
    ('\u{200B}', "ZERO WIDTH SPACE"),
    ('\u{200C}', "ZERO WIDTH NON-JOINER"),
    ('\u{200D}', "ZERO WIDTH JOINER"),
    ('\u{200E}', "LEFT-TO-RIGHT MARK"),
    ('\u{200F}', "RIGHT-TO-LEFT MARK"),
    ('\u{202A}', "LEFT-TO-RIGHT EMBEDDING"),
    ('\u{202B}', "RIGHT-TO-LEFT EMBEDDING"),
    ('\u{202C}', "POP DIRECTIONAL FORMATTING"),
    ('\u{202D}', "LEFT-TO-RIGHT OVERRIDE"),
    ('\u{202E}', "RIGHT-TO-LEFT OVERRIDE"),
    ('\u{2060}', "WORD JOINER"),
    ('\u{2061}', "FUNCTION APPLICATION"),
    ('\u{2062}', "INVISIBLE TIMES"),
    ('\u{2063}', "INVISIBLE SEPARATOR"),
    ('\u{2064}', "INVISIBLE PLUS"),
    ('\u{2066}', "LEFT-TO-RIGHT ISOLATE"),
    ('\u{2067}', "RIGHT-TO-LEFT ISOLATE"),
    ('\u{2068}', "FIRST STRONG ISOLATE"),
    ('\u{2069}', "POP DIRECTIONAL ISOLATE"),
    ('\u{FEFF}', "ZERO WIDTH NO-BREAK SPACE"),
];

impl TagName {
    pub fn parse(raw: &str) -> Result<TagName, String> {
        let mut found: Vec<String> = Vec::new();
        for c in raw.chars() {
            if let Some((_, name)) = INVISIBLE.iter().find(|(i, _)| *i == c) {
                let named = format!("U+{:04X} {name}", c as u32);
                if !found.contains(&named) {
                    found.push(named);
                }
            }
        }
        if !found.is_empty() {
            return Err(format!(
                "Tags cannot contain invisible or text-direction characters; this one has {}. \
                 Type the tag again without them.",
                found.join(", ")
            ));
        }
        // Compatibility forms become the plain ones ("ｏｐｓ" is "ops", "ﬁ"
        // is "fi"), so a tag cannot be made twice by typing it in another
        // width or style. Before the other checks: NFKC can make a comma
        // (from "，") or a space (from U+3000).
        let normalised: String = raw.nfkc().collect();
        let name = normalised.trim();
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

    #[test]
    fn compatibility_forms_become_the_plain_name() {
        assert_eq!(TagName::parse("ｏｐｓ").unwrap().as_str(), "ops");
        assert_eq!(TagName::parse("ＯＰＳ").unwrap().key(), "ops");
        assert_eq!(TagName::parse("\u{FB01}nance").unwrap().as_str(), "finance");
        assert_eq!(TagName::parse("billing\u{3000}\u{3000}team").unwrap().as_str(), "billing team");
        // Decomposed and composed accents are one tag.
        assert_eq!(TagName::parse("e\u{301}quipe").unwrap(), TagName::parse("\u{E9}quipe").unwrap());
        assert!(TagName::parse("a\u{FF0C}b").unwrap_err().contains("commas"));
    }

    #[test]
    fn invisible_and_direction_characters_are_refused_by_name() {
        let error = TagName::parse("o\u{200B}ps").unwrap_err();
        assert!(error.contains("U+200B ZERO WIDTH SPACE"), "{error}");
        let error = TagName::parse("ops\u{202E}").unwrap_err();
        assert!(error.contains("U+202E RIGHT-TO-LEFT OVERRIDE"), "{error}");
        let error = TagName::parse("\u{FEFF}o\u{AD}p\u{AD}s\u{2066}").unwrap_err();
        assert!(
            error.contains(
                "U+FEFF ZERO WIDTH NO-BREAK SPACE, U+00AD SOFT HYPHEN, U+2066 LEFT-TO-RIGHT ISOLATE"
            ),
            "{error}"
        );
        for c in
            ['\u{200C}', '\u{200D}', '\u{2060}', '\u{200E}', '\u{200F}', '\u{061C}', '\u{202A}', '\u{2069}']
        {
            assert!(TagName::parse(&format!("ops{c}")).is_err(), "{:04X}", c as u32);
        }
    }
}
