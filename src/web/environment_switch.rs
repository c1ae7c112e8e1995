//! The environment selector: the choice lives in the session.

use actix_web::{HttpRequest, HttpResponse, web};

use super::context::UserSession;
use super::context::back_to_list;
use super::form::FormData;
use crate::environment::Environment;
use crate::error::AppError;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/environment", web::post().to(switch));
}

async fn switch(req: HttpRequest, form: FormData) -> Result<HttpResponse, AppError> {
    let environment = Environment::parse(form.get("environment").unwrap_or_default())
        .ok_or_else(|| AppError::bad_request("Choose Development, Staging or Production."))?;
    UserSession::of(&req).set_environment(environment)?;
    // Filters name components and tags of the old environment; start clean.
    Ok(back_to_list())
}
