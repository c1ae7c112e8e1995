//! Input kept across a sign-in (`connections::drafts`): the forms whose
//! save may arrive after the session ended, and the page that opens them
//! again once the person has signed in.

use actix_web::HttpResponse;
use actix_web::dev::ServiceRequest;
use actix_web::http::StatusCode;
use actix_web::http::header::HeaderName;
use chrono::Utc;

use super::form::{self, read_input, unknown_component};
use crate::connections::ConnectionId;
use crate::connections::drafts::{self, Draft, Gone, Target};
use crate::web::context::{UserSession, notice_trigger};
use crate::web::error::AppError;
use crate::web::form::FormData;
use crate::web::middleware::csrf::names_own_origin;
use crate::web::{Ctx, State, db};

/// Where the person lands after signing in with a kept draft.
pub const RESTORE_PATH: &str = "/connections/draft";
/// With JavaScript the list opens the kept form in its dialog when its
/// address ends with this fragment (app.js).
pub const RESTORE_HASH: &str = "restore-draft";

/// What the restored form says, at the top of the page or as a notice.
const RESTORED: &str =
    "Signed in again: what you had typed is back. Enter any secret again; secrets are never kept.";

/// The draft a form's save would make, if `path` is one of the forms
/// that keep input (New Connection and OAuth2 Connect, edit, a row's tag).
fn draft_of(state: &State, path: &str, form: &FormData) -> Option<Draft> {
    let rest = path.strip_prefix("/connections")?;
    let component = || state.catalog.get(&form.text("component"));
    match rest.trim_start_matches('/').split('/').collect::<Vec<_>>().as_slice() {
        [""] | ["oauth2", "connect"] => {
            let component = component()?;
            // A reconnect names the connection: it comes back as its edit.
            let target = match form.get("connection").and_then(|id| id.parse().ok()) {
                Some(id) => Target::Edit { id },
                None => Target::New { component: component.key.clone() },
            };
            Some(Draft::of_form(target, component, &read_input(form)))
        }
        [id] => Some(Draft::of_form(Target::Edit { id: id.parse().ok()? }, component()?, &read_input(form))),
        [id, "tags"] => Some(Draft::of_tag(id.parse().ok()?, form.get("tag")?)),
        _ => None,
    }
}

/// Keeps the non-secret input of a form sent after its session ended,
/// and says whether it did. Whatever fails here only means nothing is
/// kept: the sign-in page then promises nothing.
pub async fn keep(req: &mut ServiceRequest) -> bool {
    if req.method() != actix_web::http::Method::POST || !req.path().starts_with("/connections") {
        return false;
    }
    // Without a session there is no CSRF token to check, so only a form
    // of our own pages may leave a draft: another site must not plant
    // values (a base URL of its own) in the form a person opens after
    // signing in, and then types a secret into.
    if !names_own_origin(req.request()) {
        return false;
    }
    let Some(state) = req.app_data::<State>().cloned() else { return false };
    let Ok(form) = req.extract::<FormData>().await else { return false };
    let Some(draft) = draft_of(&state, req.path(), &form) else { return false };
    let session = UserSession::of(req.request());
    let replacing = session.draft_key();
    let now = Utc::now().naive_utc();
    let kept = db(&state, move |conn, state| {
        Ok(drafts::stash(conn, &state.keyring, &draft, replacing.as_deref(), now)?)
    })
    .await;
    match kept {
        Ok(Some(key)) => {
            session.keep_draft(&key);
            true
        }
        Ok(None) => false,
        // The cause is logged where the error was made.
        Err(e) => {
            tracing::warn!(status = %e.status, "the input of a form sent after its session ended was not kept");
            false
        }
    }
}

fn gone(why: Gone) -> AppError {
    let message = match why {
        Gone::Unknown => {
            "Nothing typed before your sign-in is waiting here: it comes back once, in the browser it was \
             typed in. Open the form again from the list."
        }
        Gone::Expired => {
            "What you had typed before signing in was kept for an hour, and that hour has passed. Open the \
             form again from the list."
        }
        Gone::Unreadable => {
            "What you had typed before signing in can no longer be read (Plugboard's keys changed since). \
             Open the form again from the list."
        }
    };
    AppError::new(StatusCode::GONE, "Nothing to restore", message)
}

/// The form the session's draft came from, filled with it. The draft is
/// taken: a second visit answers 410.
pub(super) async fn restore(state: State, ctx: Ctx) -> Result<HttpResponse, AppError> {
    let key = ctx.session.take_draft_key().ok_or_else(|| gone(Gone::Unknown))?;
    let now = Utc::now().naive_utc();
    let draft = db(&state, move |conn, state| Ok(drafts::take(conn, &state.keyring, &key, now)?))
        .await?
        .map_err(gone)?;
    let ctx = Ctx { notice: Some(RESTORED.to_owned()), ..ctx };
    let mut response = match &draft.target {
        Target::New { component } => {
            let component = state.catalog.get(component).ok_or_else(unknown_component)?;
            form::new_form(&state, &ctx, component, None, Some(&draft)).await?
        }
        Target::Edit { id } | Target::Tag { id } => {
            form::edit_form(&state, &ctx, ConnectionId(*id), None, Some(&draft)).await?
        }
    };
    // A page shows the notice at its top; htmx, in the notice area.
    if ctx.fragment {
        response.headers_mut().insert(HeaderName::from_static("hx-trigger"), notice_trigger(RESTORED));
    }
    Ok(response)
}
