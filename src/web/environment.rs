//! The environment selector: the choice lives in the session.

use actix_web::{HttpRequest, HttpResponse};

use crate::environment::Environment;
use crate::web::context::UserSession;
use crate::web::context::back_to_list;
use crate::web::error::AppError;
use crate::web::form::FormData;

pub async fn switch(req: HttpRequest, form: FormData) -> Result<HttpResponse, AppError> {
    let environment = Environment::parse(form.get("environment").unwrap_or_default())
        .ok_or_else(|| AppError::bad_request("Choose Development, Staging or Production."))?;
    UserSession::of(&req).set_environment(environment)?;
    // Filters name components and tags of the old environment; start clean.
    Ok(back_to_list())
}
