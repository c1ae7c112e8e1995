//! Gives every error response Plugboard's own page (or, for htmx, its
//! fragment), rendered with the request's layout.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;

use crate::web::error::{AppError, framework_error, respond};

pub async fn error_pages(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let res = next.call(req).await?;
    // The API answers its errors in JSON itself.
    if super::auth::is_api(res.request().path()) {
        return Ok(res.map_into_left_body());
    }
    let Some(error) = res.response().error() else {
        return Ok(res.map_into_left_body());
    };
    let replacement = match error.as_error::<AppError>() {
        Some(app_error) => respond(res.request(), app_error),
        None => {
            let status = res.status();
            tracing::info!(%status, path = %res.request().path(), "request refused: {error}");
            respond(res.request(), &framework_error(status))
        }
    };
    Ok(res.into_response(replacement).map_into_right_body())
}
