//! The Connections page's workspace (the list, its sidebar and counts) as
//! last rendered for a list address, kept under the environment's list
//! change number (`connections::changes`). Reading the number is one
//! primary-key lookup; reading and rendering the page was nine tenths of
//! the list's time. Every request still reads the number in the snapshot
//! it would read the page from, so no process shows a page older than the
//! last change it can see, and nothing is kept across processes.
//!
//! The page's forms carry the session's CSRF token, so the workspace is
//! rendered with a stand-in for it: a random value made at start-up, never
//! sent, which each answer replaces with its own session's token. (User
//! text cannot produce it: 256 unknown bits.)
//!
//! The rows also say how long ago things happened ("5 min ago"), so a kept
//! page is shown for at most [`MAX_AGE`] even if nothing changes.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::environment::Environment;

/// How long "5 min ago" may go on being said of something 5 min 10 s ago.
pub const MAX_AGE: Duration = Duration::from_secs(10);

/// At most this many workspaces are kept (each a few hundred KB at most:
/// 200 rows). The oldest goes first.
const KEPT: usize = 32;

/// What a kept workspace was rendered for: the same environment, change,
/// address (filters, sort, page) and the viewer's right to edit, which
/// decides the buttons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub environment: Environment,
    pub change: i64,
    pub url: String,
    pub can_edit: bool,
}

/// A rendered workspace, cut where the CSRF token goes.
pub struct Kept {
    key: Key,
    made: Instant,
    parts: Vec<String>,
    len: usize,
}

impl Kept {
    /// The workspace with `csrf` in each of its forms.
    pub fn with_token(&self, csrf: &str) -> String {
        let mut html = String::with_capacity(self.len + self.parts.len() * csrf.len());
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                html.push_str(csrf);
            }
            html.push_str(part);
        }
        html
    }
}

pub struct ListCache {
    stand_in: String,
    kept: Mutex<VecDeque<Arc<Kept>>>,
}

impl ListCache {
    pub fn new() -> ListCache {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the operating system's random source");
        ListCache { stand_in: hex::encode(bytes), kept: Mutex::new(VecDeque::with_capacity(KEPT)) }
    }

    /// What to render in place of the CSRF token, for [`ListCache::keep`].
    pub fn stand_in(&self) -> &str {
        &self.stand_in
    }

    /// The workspace kept for `key`, if it is still young enough.
    pub fn get(&self, key: &Key) -> Option<Arc<Kept>> {
        let kept = self.kept.lock();
        kept.iter().find(|k| k.key == *key && k.made.elapsed() < MAX_AGE).cloned()
    }

    /// Keeps `html`, rendered with [`ListCache::stand_in`] as the token.
    /// What was kept for an earlier change of the same environment can
    /// never be shown again, and goes.
    pub fn keep(&self, key: Key, html: &str) -> Arc<Kept> {
        let parts: Vec<String> = html.split(self.stand_in.as_str()).map(str::to_owned).collect();
        let len = parts.iter().map(String::len).sum();
        let fresh = Arc::new(Kept { key, made: Instant::now(), parts, len });
        let mut kept = self.kept.lock();
        let key = &fresh.key;
        kept.retain(|k| {
            let superseded = k.key.environment == key.environment && k.key.change < key.change;
            !superseded && k.key != *key && k.made.elapsed() < MAX_AGE
        });
        if kept.len() >= KEPT {
            kept.pop_back();
        }
        kept.push_front(fresh.clone());
        fresh
    }
}

impl Default for ListCache {
    fn default() -> ListCache {
        ListCache::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(change: i64, url: &str) -> Key {
        Key { environment: Environment::Development, change, url: url.to_owned(), can_edit: true }
    }

    #[test]
    fn a_kept_page_gets_each_answers_token_and_goes_with_a_later_change() {
        let cache = ListCache::new();
        let html = format!("<form>{0}</form><form>{0}</form>", cache.stand_in());
        cache.keep(key(1, "/"), &html);
        let kept = cache.get(&key(1, "/")).expect("kept");
        assert_eq!(kept.with_token("abc"), "<form>abc</form><form>abc</form>");
        assert!(cache.get(&key(1, "/?tag=ops")).is_none());
        assert!(cache.get(&Key { can_edit: false, ..key(1, "/") }).is_none());
        cache.keep(key(2, "/?tag=ops"), "<p></p>");
        assert!(cache.get(&key(1, "/")).is_none(), "an earlier change is dropped");
        assert!(cache.get(&key(2, "/?tag=ops")).is_some());
    }

    #[test]
    fn at_most_so_many_pages_are_kept() {
        let cache = ListCache::new();
        for page in 0..(KEPT + 5) {
            cache.keep(key(1, &format!("/?page={page}")), "<p></p>");
        }
        assert_eq!(cache.kept.lock().len(), KEPT);
        assert!(cache.get(&key(1, "/?page=0")).is_none(), "the oldest went first");
        assert!(cache.get(&key(1, &format!("/?page={}", KEPT + 4))).is_some());
    }
}
