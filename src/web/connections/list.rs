//! The connections list with its sidebar: GET / answers the whole page, or
//! the workspace fragment when htmx applies a filter.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::list_cache::{Key, ListCache};
use crate::catalog::Component;
use crate::connections::tokens::TokenState;
use crate::connections::{
    ConnectionId, ListPage, ListQuery, Listed, Sort, SortColumn, Status, changes, listing,
};
use crate::environment::Environment;
use crate::tags::TagCount;
use crate::web::error::AppError;
use crate::web::{Ctx, State, db, db_read, time};

pub const PER_PAGE: i64 = 50;

/// The `usage` value of the unused filter.
const UNUSED: &str = "unused";

/// The filters as they appear in the URL, so a filtered list can be
/// bookmarked and the back button works. Unreadable values are ignored
/// rather than refused: an old bookmark should still open.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Filter {
    #[serde(default)]
    pub component: Option<String>,
    #[serde(default)]
    pub tag: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub q: Option<String>,
    #[serde(default)]
    pub sort: Option<String>,
    #[serde(default)]
    pub page: Option<String>,
    /// Next and Previous links: the page starts after, or ends before,
    /// this connection (see `connections::listing`).
    #[serde(default)]
    pub after: Option<String>,
    #[serde(default)]
    pub before: Option<String>,
    /// `unused`: only connections whose credentials nobody read through
    /// the API in the last 30 days.
    #[serde(default)]
    pub usage: Option<String>,
}

/// The longest value a filter takes. Names, keys and tags are all shorter,
/// so a longer value could match nothing; refusing it also keeps a
/// pathological pattern away from the database (SQLite refuses LIKE
/// patterns over 50,000 bytes).
pub const MAX_FILTER_CHARS: usize = 100;

impl Filter {
    /// Refuses a filter value too long to match anything, by name.
    fn check_lengths(&self) -> Result<(), AppError> {
        for (what, value) in [("search", &self.q), ("component", &self.component), ("tag", &self.tag)] {
            let chars = value.as_deref().map_or(0, |v| v.chars().count());
            if chars > MAX_FILTER_CHARS {
                return Err(AppError::new(
                    StatusCode::BAD_REQUEST,
                    "Filter too long",
                    format!(
                        "The {what} can be at most {MAX_FILTER_CHARS} characters (no name is longer); this \
                         one has {chars}. Shorten it, or clear the filters."
                    ),
                ));
            }
        }
        Ok(())
    }

    fn clean(mut self) -> Filter {
        // Control characters (a NUL, say) can match no name; PostgreSQL
        // would refuse them outright.
        let keep = |v: Option<String>| {
            v.map(|s| s.chars().filter(|c| !c.is_control()).collect::<String>().trim().to_owned())
                .filter(|s| !s.is_empty())
        };
        self.component = keep(self.component);
        self.tag = keep(self.tag);
        self.status = keep(self.status).filter(|s| Status::parse(s).is_some());
        self.q = keep(self.q);
        self.sort = keep(self.sort).filter(|s| Sort::parse(s).is_some());
        self.page = keep(self.page).filter(|p| p.parse::<i64>().is_ok_and(|p| p > 1));
        let id = |v: Option<String>| keep(v).filter(|p| p.parse::<i64>().is_ok_and(|p| p > 0));
        self.after = id(self.after);
        self.before = id(self.before).filter(|_| self.after.is_none());
        self.usage = keep(self.usage).filter(|u| u == UNUSED);
        self
    }

    fn query(&self) -> ListQuery {
        ListQuery {
            component: self.component.clone(),
            tag: self.tag.clone(),
            status: self.status.as_deref().and_then(Status::parse),
            search: self.q.clone(),
            sort: self.sort.as_deref().and_then(Sort::parse).unwrap_or_default(),
            page: self.page.as_deref().and_then(|p| p.parse().ok()).unwrap_or(1),
            after: self.after.as_deref().and_then(|p| p.parse().ok()).map(ConnectionId),
            before: self.before.as_deref().and_then(|p| p.parse().ok()).map(ConnectionId),
            per_page: PER_PAGE,
            reach: None,
            unused_since: self
                .usage
                .is_some()
                .then(|| crate::api::usage::recent_since(chrono::Utc::now().naive_utc())),
        }
    }

    pub fn sort(&self) -> Sort {
        self.sort.as_deref().and_then(Sort::parse).unwrap_or_default()
    }

    pub fn is_filtered(&self) -> bool {
        self.component.is_some()
            || self.tag.is_some()
            || self.status.is_some()
            || self.q.is_some()
            || self.usage.is_some()
    }

    /// The filter's values, borrowed: what a URL is written from.
    fn parts(&self) -> Parts<'_> {
        fn v(o: &Option<String>) -> Option<&str> {
            o.as_deref()
        }
        Parts {
            component: v(&self.component),
            tag: v(&self.tag),
            status: v(&self.status),
            q: v(&self.q),
            sort: v(&self.sort),
            page: v(&self.page),
            after: v(&self.after),
            before: v(&self.before),
            usage: v(&self.usage),
        }
    }

    /// The URL of this filter, with `change` applied. A change leaves
    /// the page's place (its Next or Previous row) behind unless it sets
    /// one itself. (The sidebar writes one per component and tag, so
    /// nothing is cloned.)
    fn url_with<'a>(&'a self, change: impl FnOnce(&mut Parts<'a>)) -> String {
        let mut parts = Parts { after: None, before: None, ..self.parts() };
        change(&mut parts);
        parts.url()
    }

    fn to_url(&self) -> String {
        self.parts().url()
    }

    /// This very list, its place included (htmx reloads it after a change).
    pub fn url(&self) -> String {
        self.to_url()
    }

    pub fn component_url(&self, key: &str) -> String {
        self.url_with(|f| {
            f.component = Some(key);
            f.page = None;
        })
    }

    pub fn all_components_url(&self) -> String {
        self.url_with(|f| {
            f.component = None;
            f.page = None;
        })
    }

    pub fn tag_url(&self, tag: &str) -> String {
        self.url_with(|f| {
            f.tag = Some(tag);
            f.page = None;
        })
    }

    pub fn without_tag_url(&self) -> String {
        self.url_with(|f| {
            f.tag = None;
            f.page = None;
        })
    }

    pub fn status_url(&self, status: &str) -> String {
        self.url_with(|f| {
            f.status = Some(status);
            f.page = None;
        })
    }

    pub fn without_status_url(&self) -> String {
        self.url_with(|f| {
            f.status = None;
            f.page = None;
        })
    }

    /// The unused filter turned on, or off when it is on.
    pub fn toggle_unused_url(&self) -> String {
        self.url_with(|f| {
            f.usage = if f.usage.is_some() { None } else { Some(UNUSED) };
            f.page = None;
        })
    }

    pub fn status_label(&self) -> Option<&'static str> {
        self.status.as_deref().and_then(Status::parse).map(Status::label)
    }

    pub fn without_search_url(&self) -> String {
        self.url_with(|f| {
            f.q = None;
            f.page = None;
        })
    }

    /// A numbered page, as a bookmark has it.
    pub fn page_url(&self, page: i64) -> String {
        let number = page.to_string();
        self.url_with(|f| f.page = (page > 1).then_some(number.as_str()))
    }

    /// The page after `page`, starting after its last row.
    pub fn next_url(&self, page: &ListPage) -> String {
        let (number, after) = ((page.page + 1).to_string(), page.last_id().map(|id| id.to_string()));
        self.url_with(|f| {
            f.page = Some(&number);
            f.after = after.as_deref();
        })
    }

    /// The page before `page`, ending before its first row; the first
    /// page is always plain `/`, as it is linked from everywhere else.
    pub fn previous_url(&self, page: &ListPage) -> String {
        if page.page <= 2 {
            return self.page_url(1);
        }
        let (number, before) = ((page.page - 1).to_string(), page.first_id().map(|id| id.to_string()));
        self.url_with(|f| {
            f.page = Some(&number);
            f.before = before.as_deref();
        })
    }

    /// What a click on a column's header shows: the list sorted by that
    /// column (the other way round if it is already), from the first page.
    pub fn sort_url(&self, column: SortColumn) -> String {
        self.url_with(|f| {
            f.sort = Some(self.sort().toggled(column).as_str());
            f.page = None;
        })
    }

    pub fn clear_url(&self) -> String {
        self.url_with(|f| *f = Parts { sort: f.sort, ..Parts::default() })
    }
}

/// A list's address, from borrowed values.
#[derive(Clone, Copy, Default)]
struct Parts<'a> {
    component: Option<&'a str>,
    tag: Option<&'a str>,
    status: Option<&'a str>,
    q: Option<&'a str>,
    sort: Option<&'a str>,
    page: Option<&'a str>,
    after: Option<&'a str>,
    before: Option<&'a str>,
    usage: Option<&'a str>,
}

impl Parts<'_> {
    fn url(&self) -> String {
        let mut out = form_urlencoded::Serializer::for_suffix(String::from("/?"), 2);
        let mut any = false;
        for (name, value) in [
            ("component", self.component),
            ("tag", self.tag),
            ("status", self.status),
            ("q", self.q),
            ("sort", self.sort),
            ("page", self.page),
            ("after", self.after),
            ("before", self.before),
            ("usage", self.usage),
        ] {
            if let Some(v) = value {
                out.append_pair(name, v);
                any = true;
            }
        }
        let url = out.finish();
        if any { url } else { "/".to_owned() }
    }
}

pub struct ComponentCount<'a> {
    pub component: ComponentRef<'a>,
    pub connections: i64,
}

/// A connection's component as the page shows it; a component removed
/// from the catalog still shows, by its key.
pub struct ComponentRef<'a> {
    pub key: &'a str,
    pub name: &'a str,
}

impl<'a> ComponentRef<'a> {
    pub fn of(key: &'a str, component: Option<&'a Component>) -> ComponentRef<'a> {
        ComponentRef { key, name: component.map_or(key, |c| c.name.as_str()) }
    }
}

pub struct Row<'a> {
    pub connection: &'a Listed,
    /// OAuth2 connections: when the access token expires, when refreshed.
    pub token: Option<&'a TokenState>,
    /// Signs in with OAuth2 (authorization code): it can be reconnected.
    pub signs_in: bool,
    pub component: ComponentRef<'a>,
    pub auth_label: &'a str,
}

impl Row<'_> {
    /// "3 days ago"; the exact time is [`Row::created_exact`], on hover.
    pub fn created_ago(&self) -> String {
        time::ago(self.connection.created_at)
    }

    pub fn created_exact(&self) -> String {
        time::exact(self.connection.created_at)
    }

    pub fn created_iso(&self) -> String {
        time::iso(self.connection.created_at)
    }

    /// "checked 5 min ago", shown under the status without hovering.
    pub fn checked_ago(&self) -> String {
        match self.connection.status.checked_at {
            Some(t) => format!("checked {}", time::ago(t)),
            None => "never checked".to_owned(),
        }
    }

    pub fn checked_exact(&self) -> String {
        self.connection.status.checked_at.map(time::exact).unwrap_or_default()
    }

    pub fn checked_iso(&self) -> String {
        self.connection.status.checked_at.map(time::iso).unwrap_or_default()
    }

    /// The badge's hover text: when it was checked, and why if NOT ACTIVE.
    pub fn status_title(&self) -> String {
        let status = &self.connection.status;
        if status.status.is_active() {
            self.checked()
        } else {
            format!("{}; {}", status.reason, self.checked())
        }
    }

    /// "token expires 2026-12-01 14:00 UTC, refreshed 13:00 UTC".
    pub fn token_summary(&self) -> Option<String> {
        let token = self.token?;
        let expires = match token.expires_at {
            Some(at) => format!("token expires {} UTC", at.format("%Y-%m-%d %H:%M")),
            None => "token does not expire".to_owned(),
        };
        Some(match token.refreshed_at {
            Some(at) => format!("{expires}, refreshed {} UTC", at.format("%Y-%m-%d %H:%M")),
            None => expires,
        })
    }

    /// An OAuth2 connection whose sign-in is missing or was refused: the
    /// row offers Reconnect.
    pub fn needs_sign_in(&self) -> bool {
        let status = &self.connection.status;
        self.signs_in
            && !status.status.is_active()
            && (status.reason.starts_with("reconnect needed")
                || status.reason.starts_with("missing: no OAuth2 sign-in"))
    }

    pub fn checked(&self) -> String {
        match self.connection.status.checked_at {
            Some(t) => format!("last checked {} UTC", t.format("%Y-%m-%d %H:%M")),
            None => "never checked".to_owned(),
        }
    }
}

/// A column header that sorts the list.
pub struct Header {
    pub label: &'static str,
    pub url: String,
    /// `aria-sort` of the column the list is sorted by.
    pub aria_sort: Option<&'static str>,
}

impl Header {
    fn new(filter: &Filter, column: SortColumn, label: &'static str) -> Header {
        let sort = filter.sort();
        let aria_sort =
            (sort.column() == column).then_some(if sort.descending() { "descending" } else { "ascending" });
        Header { label, url: filter.sort_url(column), aria_sort }
    }

    /// The arrow beside the sorted column's label.
    pub fn arrow(&self) -> &'static str {
        match self.aria_sort {
            Some("ascending") => " ▲",
            Some(_) => " ▼",
            None => "",
        }
    }
}

/// Filters of the list's template.
mod filters {
    /// A count with its thousands grouped ("100,000"), read at a glance.
    #[askama::filter_fn]
    pub fn thousands(count: impl std::fmt::Display, _: &dyn askama::Values) -> askama::Result<String> {
        Ok(super::thousands(&count.to_string()))
    }
}

/// Groups the digits of a whole number by three; anything else is left
/// as it is.
fn thousands(number: &str) -> String {
    let (sign, digits) = number.split_at(usize::from(number.starts_with('-')));
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return number.to_owned();
    }
    let mut grouped = String::with_capacity(number.len() + digits.len() / 3);
    grouped.push_str(sign);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

#[derive(Template)]
#[template(path = "workspace_partial.html")]
pub struct Workspace<'a> {
    pub environment: Environment,
    pub csrf: &'a str,
    pub filter: &'a Filter,
    pub page: &'a ListPage,
    pub rows: Vec<Row<'a>>,
    pub components: Vec<ComponentCount<'a>>,
    pub tags: &'a [TagCount],
    pub total_in_environment: i64,
    pub filtered_component_name: Option<&'a str>,
    pub sorts: [Sort; 8],
    pub headers: [Header; 4],
    pub active: i64,
    pub not_active: i64,
    /// Members and admins see the buttons that change connections.
    pub can_edit: bool,
}

impl Workspace<'_> {
    pub fn first_shown(&self) -> i64 {
        if self.page.total == 0 || self.rows.is_empty() { 0 } else { (self.page.page - 1) * PER_PAGE + 1 }
    }

    pub fn last_shown(&self) -> i64 {
        self.first_shown() + self.rows.len() as i64 - 1
    }

    pub fn is_current_tag(&self, name: &str) -> bool {
        self.filter.tag.as_deref().is_some_and(|t| t.to_lowercase() == name.to_lowercase())
    }

    pub fn is_status(&self, status: &str) -> bool {
        self.filter.status.as_deref() == Some(status)
    }

    pub fn is_sorted_by(&self, sort: &Sort) -> bool {
        self.filter.sort() == *sort
    }
}

pub(super) async fn index(
    state: State,
    cache: web::Data<ListCache>,
    ctx: Ctx,
    filter: web::Query<Filter>,
) -> Result<HttpResponse, AppError> {
    let filter = filter.into_inner();
    filter.check_lengths()?;
    let filter = filter.clean();
    let url = filter.url();
    ctx.session.remember_list(&url);
    let query = filter.query();
    let environment = ctx.environment;
    let can_edit = ctx.can_edit();
    // Who used what lately changes with the clock and every API read, not
    // with the change number: that filter is read each time.
    let keep = filter.usage.is_none();
    let mut key = Key { environment, change: 0, url, can_edit };
    let lookup = keep.then(|| (cache.clone(), key.clone()));
    // Whether the page kept is current: a lookup by key, on this thread.
    let kept = match lookup {
        Some((cache, mut key)) => {
            db_read(&state, move |conn, _| {
                key.change = changes::of(conn, environment)?;
                Ok(cache.get(&key))
            })
            .await?
        }
        None => None,
    };
    if let Some(kept) = kept {
        return ctx.respond_html(StatusCode::OK, "Connections", kept.with_token(&ctx.csrf));
    }
    // Reading the page costs more, and grows with a search's matches: on
    // the blocking threads, so that a slow page holds up no other request.
    // The number and the page come from one snapshot on SQLite; on
    // PostgreSQL the number is read first, so a page is never older than
    // the number it is kept under.
    let (change, loaded) = db(&state, move |conn, _| {
        crate::db::snapshot(conn, |conn| {
            let change = changes::of(conn, environment)?;
            Ok((change, listing::overview(conn, environment, &query)?))
        })
    })
    .await?;
    if loaded.page.past_end.is_some() {
        // A bookmark past the end (the list has shrunk): the last page,
        // under its own address, so the URL and the heading agree.
        return Ok(HttpResponse::SeeOther()
            .insert_header((actix_web::http::header::LOCATION, filter.page_url(loaded.page.pages)))
            .finish());
    }
    let csrf = if keep { cache.stand_in() } else { ctx.csrf.as_str() };
    let html = workspace(&state, &ctx, &filter, &loaded, csrf).render().map_err(AppError::internal)?;
    let html = if keep {
        key.change = change;
        cache.keep(key, &html).with_token(&ctx.csrf)
    } else {
        html
    };
    ctx.respond_html(StatusCode::OK, "Connections", html)
}

fn workspace<'a>(
    state: &'a State,
    ctx: &Ctx,
    filter: &'a Filter,
    loaded: &'a listing::Overview,
    csrf: &'a str,
) -> Workspace<'a> {
    let catalog = &state.catalog;
    let counts = &loaded.counts;
    let mut components: Vec<ComponentCount> = counts
        .components
        .iter()
        .map(|(key, n)| ComponentCount {
            component: ComponentRef::of(key, catalog.get(key)),
            connections: *n,
        })
        .collect();
    components.sort_by_cached_key(|c| c.component.name.to_lowercase());
    let rows = loaded
        .page
        .connections
        .iter()
        .map(|connection| {
            let component = catalog.get(&connection.component);
            let method = component.and_then(|c| c.auth_method(&connection.auth_method));
            Row {
                connection,
                token: loaded.tokens.get(&connection.id),
                signs_in: method.is_some_and(|m| {
                    matches!(m.kind, crate::catalog::AuthKind::Oauth2AuthorizationCode { .. })
                }),
                component: ComponentRef::of(&connection.component, component),
                auth_label: method.map_or(connection.auth_method.as_str(), |m| m.label.as_str()),
            }
        })
        .collect();
    Workspace {
        environment: ctx.environment,
        csrf,
        filter,
        page: &loaded.page,
        rows,
        total_in_environment: counts.total(),
        filtered_component_name: filter
            .component
            .as_deref()
            .map(|key| catalog.get(key).map_or(key, |c| c.name.as_str())),
        components,
        tags: &counts.tags,
        sorts: Sort::ALL,
        headers: [
            Header::new(filter, SortColumn::Component, "Component"),
            Header::new(filter, SortColumn::Name, "Name"),
            Header::new(filter, SortColumn::Status, "Status"),
            Header::new(filter, SortColumn::Created, "Created"),
        ],
        active: counts.active,
        not_active: counts.not_active,
        can_edit: ctx.can_edit(),
    }
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn counts_group_their_thousands() {
        assert_eq!(thousands("0"), "0");
        assert_eq!(thousands("999"), "999");
        assert_eq!(thousands("1000"), "1,000");
        assert_eq!(thousands("100000"), "100,000");
        assert_eq!(thousands("-1234567"), "-1,234,567");
        assert_eq!(thousands("12.5"), "12.5");
    }
}
