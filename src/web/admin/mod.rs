//! What only admins do: people, tags, API tokens and the audit trail.

mod api_tokens;
mod audit;
mod people;
mod tags;

use actix_web::middleware::from_fn;
use actix_web::web::{self, get, post};

use crate::web::middleware::auth::admins_only;
use crate::web::resource;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin")
            .wrap(from_fn(admins_only))
            .service(resource("/users").route(get().to(people::page)).route(post().to(people::add)))
            .service(resource("/users/{id}/role").route(post().to(people::set_role)))
            .service(
                resource("/users/{id}/disable")
                    .route(get().to(people::confirm_disable))
                    .route(post().to(people::disable)),
            )
            .service(
                resource("/users/{id}/reset-password")
                    .route(get().to(people::confirm_reset))
                    .route(post().to(people::reset_password)),
            )
            .service(resource("/users/{id}/enable").route(post().to(people::enable)))
            .service(resource("/audit").route(get().to(audit::page)))
            .service(
                resource("/api-tokens")
                    .route(get().to(api_tokens::page))
                    .route(post().to(api_tokens::create)),
            )
            .service(resource("/api-tokens/{id}/revoke").route(post().to(api_tokens::revoke))),
    );
    cfg.service(
        web::scope("/tags")
            .wrap(from_fn(admins_only))
            .service(resource("").route(get().to(tags::index)))
            .service(resource("/{id}/rename").route(post().to(tags::rename)))
            .service(
                resource("/{id}/merge").route(get().to(tags::confirm_merge)).route(post().to(tags::merge)),
            )
            .service(
                resource("/{id}/delete").route(get().to(tags::confirm_delete)).route(post().to(tags::delete)),
            ),
    );
}
