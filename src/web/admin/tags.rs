//! The tags page: every tag with how many connections carry it in each
//! environment, and renaming, merging and deleting tags.
//!
//! As elsewhere, confirmations open in the dialog for htmx and as pages
//! without JavaScript; a change answers htmx with an empty body and a
//! `tags-changed` trigger (the list refreshes itself on it), and a plain
//! form with a redirect back to /tags.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use crate::audit::Actor;
use crate::environment::Environment;
use crate::tag_admin::{self as store, MergeChoice, TagAdminError, TagUsage};
use crate::tags::{MAX_TAG_CHARS, TagId};
use crate::web::error::AppError;
use crate::web::form::FormData;
use crate::web::{Ctx, State, db};

/// A refused rename, shown beside its row when the page is reloaded
/// without JavaScript.
struct RenameError {
    tag: TagId,
    value: String,
    message: String,
}

#[derive(Template)]
#[template(path = "tags_partial.html")]
struct TagsPage<'a> {
    csrf: &'a str,
    usage: &'a [TagUsage],
    environments: [Environment; 3],
    max_chars: usize,
    error: Option<&'a RenameError>,
}

impl TagsPage<'_> {
    fn has_error(&self, usage: &TagUsage) -> bool {
        self.error.is_some_and(|e| e.tag == usage.tag.id)
    }

    fn rename_value<'b>(&'b self, usage: &'b TagUsage) -> &'b str {
        match self.error {
            Some(e) if e.tag == usage.tag.id => &e.value,
            _ => &usage.tag.name,
        }
    }
}

#[derive(Template)]
#[template(path = "tag_merge_partial.html")]
struct MergeConfirm<'a> {
    csrf: &'a str,
    source: &'a TagUsage,
    choices: &'a [MergeChoice],
}

impl MergeConfirm<'_> {
    fn connections(&self, n: i64) -> String {
        connections(n)
    }
}

#[derive(Template)]
#[template(path = "tag_delete_partial.html")]
struct DeleteConfirm<'a> {
    csrf: &'a str,
    usage: &'a TagUsage,
}

impl DeleteConfirm<'_> {
    fn connections(&self, n: i64) -> String {
        connections(n)
    }
}

/// "1 connection", "3 connections".
fn connections(n: i64) -> String {
    if n == 1 { "1 connection".to_owned() } else { format!("{n} connections") }
}

pub(super) async fn index(state: State, ctx: Ctx) -> Result<HttpResponse, AppError> {
    let usage = db(&state, |conn, _| Ok(store::usage(conn)?)).await?;
    render_list(&ctx, StatusCode::OK, &usage, None)
}

fn render_list(
    ctx: &Ctx,
    status: StatusCode,
    usage: &[TagUsage],
    error: Option<&RenameError>,
) -> Result<HttpResponse, AppError> {
    let page =
        TagsPage { csrf: &ctx.csrf, usage, environments: Environment::ALL, max_chars: MAX_TAG_CHARS, error };
    ctx.respond(status, "Tags", &page)
}

pub(super) async fn rename(
    state: State,
    ctx: Ctx,
    id: web::Path<i64>,
    form: FormData,
) -> Result<HttpResponse, AppError> {
    let id = TagId(id.into_inner());
    let value = form.text("name");
    let raw = value.clone();
    let user = ctx.user()?.clone();
    let result = db(&state, move |conn, _| Ok(store::rename(conn, &Actor::Person(&user), id, &raw))).await?;
    let renamed = match result {
        Ok(renamed) => renamed,
        // Without JavaScript, the page comes back with the name as typed
        // and the reason beside it.
        Err(e @ (TagAdminError::Invalid(_) | TagAdminError::NameTaken(_))) if !ctx.fragment => {
            let error = refusal(e, "Tag not renamed");
            let usage = db(&state, |conn, _| Ok(store::usage(conn)?)).await?;
            let shown = RenameError { tag: id, value, message: error.message };
            return render_list(&ctx, error.status, &usage, Some(&shown));
        }
        Err(e) => return Err(refusal(e, "Tag not renamed")),
    };
    tracing::info!(tag = %id, "tag renamed");
    let notice = if renamed.before.name == renamed.after.name {
        format!("\u{201c}{}\u{201d} already has that name.", renamed.after.name)
    } else {
        format!("Renamed \u{201c}{}\u{201d} to \u{201c}{}\u{201d}.", renamed.before.name, renamed.after.name)
    };
    Ok(changed(&ctx, &notice))
}

pub(super) async fn confirm_merge(
    state: State,
    ctx: Ctx,
    id: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    let id = TagId(id.into_inner());
    let (source, choices) = db(&state, move |conn, _| {
        Ok(store::usage_of(conn, id).and_then(|source| Ok((source, store::merge_choices(conn, id)?))))
    })
    .await?
    .map_err(|e| refusal(e, "Tags not merged"))?;
    let page = MergeConfirm { csrf: &ctx.csrf, source: &source, choices: &choices };
    ctx.respond(StatusCode::OK, "Merge tag", &page)
}

pub(super) async fn merge(
    state: State,
    ctx: Ctx,
    id: web::Path<i64>,
    form: FormData,
) -> Result<HttpResponse, AppError> {
    let source = TagId(id.into_inner());
    let into = form.get("into").and_then(|v| v.trim().parse::<i64>().ok()).map(TagId);
    let user = ctx.user()?.clone();
    let merged = db(&state, move |conn, _| {
        Ok(match into {
            Some(target) => store::merge(conn, &Actor::Person(&user), source, target),
            // An unknown tag is the first thing to say; then the choice.
            None => store::usage_of(conn, source).and_then(|usage| {
                Err(TagAdminError::Invalid(format!(
                    "Choose the tag to merge \u{201c}{}\u{201d} into from the list.",
                    usage.tag.name
                )))
            }),
        })
    })
    .await?
    .map_err(|e| refusal(e, "Tags not merged"))?;
    tracing::info!(tag = %source, into = %merged.target.id, moved = merged.moved, "tags merged");
    let notice = format!(
        "Merged \u{201c}{}\u{201d} into \u{201c}{}\u{201d}: {} tagged.",
        merged.source.tag.name,
        merged.target.name,
        connections(merged.source.total())
    );
    Ok(changed(&ctx, &notice))
}

pub(super) async fn confirm_delete(
    state: State,
    ctx: Ctx,
    id: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    let id = TagId(id.into_inner());
    let usage = db(&state, move |conn, _| Ok(store::usage_of(conn, id)))
        .await?
        .map_err(|e| refusal(e, "Tag not deleted"))?;
    let page = DeleteConfirm { csrf: &ctx.csrf, usage: &usage };
    ctx.respond(StatusCode::OK, "Delete tag", &page)
}

pub(super) async fn delete(state: State, ctx: Ctx, id: web::Path<i64>) -> Result<HttpResponse, AppError> {
    let id = TagId(id.into_inner());
    let user = ctx.user()?.clone();
    let usage = db(&state, move |conn, _| Ok(store::delete(conn, &Actor::Person(&user), id)))
        .await?
        .map_err(|e| refusal(e, "Tag not deleted"))?;
    tracing::info!(tag = %id, removed_from = usage.total(), "tag deleted");
    let notice = match usage.total() {
        0 => format!("Deleted the tag \u{201c}{}\u{201d}; no connection had it.", usage.tag.name),
        n => format!("Deleted the tag \u{201c}{}\u{201d} from {}.", usage.tag.name, connections(n)),
    };
    Ok(changed(&ctx, &notice))
}

/// What the user is told when a change is refused; `title` names what did
/// not happen.
fn refusal(error: TagAdminError, title: &'static str) -> AppError {
    match error {
        TagAdminError::NotFound => AppError::not_found(
            "There is no such tag. It may have been renamed, merged or deleted by someone else: \
             reload the tags page.",
        ),
        TagAdminError::TargetNotFound => AppError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            title,
            "The tag chosen to merge into does not exist any more; someone else may have merged \
             or deleted it. Nothing was changed. Reload the tags page and choose again.",
        ),
        TagAdminError::NameTaken(other) => AppError::new(
            StatusCode::CONFLICT,
            title,
            format!(
                "Another tag is already named \u{201c}{other}\u{201d} (tags are unique ignoring case), \
                 so nothing was changed. To combine the two tags, use Merge and choose \
                 \u{201c}{other}\u{201d}."
            ),
        ),
        TagAdminError::SameTag => AppError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            title,
            "A tag cannot be merged into itself. Choose another tag to merge into.",
        ),
        TagAdminError::Invalid(message) => {
            AppError::new(StatusCode::UNPROCESSABLE_ENTITY, title, format!("{message} Nothing was changed."))
        }
        TagAdminError::Database(e) => AppError::internal(e),
    }
}

/// After a change: the tags list refreshes itself; a plain form goes back
/// to the tags page.
fn changed(ctx: &Ctx, notice: &str) -> HttpResponse {
    crate::web::context::after_change_of(ctx, notice, "tags-changed", "/tags")
}
