//! One's own account: signing in and out, first-run setup, the password.

mod password;
mod sign_in;

use actix_web::middleware::from_fn;
use actix_web::web::{self, get, post};

use crate::web::middleware::auth::{anyone, signed_in};
use crate::web::resource;

pub fn routes(cfg: &mut web::ServiceConfig) {
    // Open to anyone: the handlers send a signed-in person on.
    cfg.service(
        resource("/sign-in")
            .wrap(from_fn(anyone))
            .route(get().to(sign_in::sign_in_page))
            .route(post().to(sign_in::sign_in)),
    )
    .service(
        resource("/setup")
            .wrap(from_fn(anyone))
            .route(get().to(sign_in::setup_page))
            .route(post().to(sign_in::setup)),
    );
    cfg.service(resource("/sign-out").wrap(from_fn(signed_in)).route(post().to(sign_in::sign_out)));
    cfg.service(
        resource("/account/password")
            .wrap(from_fn(signed_in))
            .route(get().to(password::password_page))
            .route(post().to(password::change_password)),
    );
}
