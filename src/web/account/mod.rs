//! One's own account: signing in and out, first-run setup, the password.

mod password;
pub mod sign_in;

use actix_web::middleware::from_fn;
use actix_web::web::{self, get, post};

use crate::web::middleware::auth::{anyone, signed_in};
use crate::web::resource;

/// What a refused (throttled) password check is told: the same words on
/// the sign-in and password pages, as both count on the same counters.
fn try_again_message(until: chrono::NaiveDateTime) -> String {
    let seconds = (until - chrono::Utc::now().naive_utc()).num_seconds();
    // Rounded up: "1 minute" until the lock really ends.
    let minutes = ((seconds + 59) / 60).max(1);
    format!("Too many failed sign-ins. Try again in {minutes} minute{}.", if minutes == 1 { "" } else { "s" })
}

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
