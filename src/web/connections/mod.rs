//! The Connections page and everything that changes a connection.

mod check;
mod delete;
pub mod draft;
mod form;
mod list;
pub mod list_cache;
mod oauth;
mod tagging;

use actix_web::http::StatusCode;
use actix_web::middleware::from_fn;
use actix_web::web::{self, get, post};

use crate::environment::Environment;
use crate::web::Ctx;
use crate::web::error::AppError;
use crate::web::form::FormData;

use crate::web::middleware::auth::{members_only, signed_in};
use crate::web::resource;

pub fn routes(cfg: &mut web::ServiceConfig) {
    // Everyone signed in reads the list; changing anything needs a member.
    cfg.service(resource("/").wrap(from_fn(signed_in)).route(get().to(list::index)));
    // Providers send the person back here; the attempt it names must be
    // theirs (see `oauth`), and connecting needs a member.
    cfg.service(
        resource(crate::oauth::CALLBACK_PATH).wrap(from_fn(members_only)).route(get().to(oauth::callback)),
    );
    cfg.service(
        web::scope("/connections")
            .wrap(from_fn(members_only))
            .service(resource("/new").route(get().to(form::new)))
            .service(resource("/oauth2/connect").route(post().to(oauth::connect)))
            .service(resource("").route(post().to(form::create)))
            .service(resource("/draft").route(get().to(draft::restore)))
            .service(resource("/{id}/edit").route(get().to(form::edit)))
            .service(resource("/{id}").route(post().to(form::update)))
            .service(resource("/{id}/check").route(post().to(check::check)))
            .service(
                resource("/{id}/delete").route(get().to(delete::confirm)).route(post().to(delete::delete)),
            )
            .service(resource("/{id}/tags").route(post().to(tagging::add)))
            .service(resource("/{id}/tags/{tag}/delete").route(post().to(tagging::remove))),
    );
}

/// Whether a form was opened in the environment the session shows now.
pub(super) enum EnvironmentCheck {
    Same,
    /// Another tab switched the session since the form was opened.
    Switched {
        opened: Environment,
    },
}

/// Every form that changes a connection says which environment it was
/// opened in (`environment`); a request that does not say (a script, a
/// page from before this field existed) acts on the session's.
pub(super) fn opened_in(ctx: &Ctx, form: &FormData) -> Result<EnvironmentCheck, AppError> {
    let Some(sent) = form.get("environment").map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(EnvironmentCheck::Same);
    };
    let opened = Environment::parse(sent).ok_or_else(|| {
        AppError::bad_request(
            "This form names an environment Plugboard does not have. Reload the page and try again.",
        )
    })?;
    Ok(if opened == ctx.environment { EnvironmentCheck::Same } else { EnvironmentCheck::Switched { opened } })
}

/// The refusal of a change made from a page of another environment.
pub(super) fn switched_environment(opened: Environment, now: Environment) -> AppError {
    AppError::new(
        StatusCode::CONFLICT,
        "Environment switched",
        format!(
            "This was opened in {opened}, but Plugboard now shows {now} (it was switched in another tab or \
             window), so nothing was changed. Switch back to {opened} at the top of the page and try again."
        ),
    )
}

/// Refuses the request unless its form was opened in the session's
/// environment.
pub(super) fn require_same_environment(ctx: &Ctx, form: &FormData) -> Result<(), AppError> {
    match opened_in(ctx, form)? {
        EnvironmentCheck::Same => Ok(()),
        EnvironmentCheck::Switched { opened } => Err(switched_environment(opened, ctx.environment)),
    }
}
