//! The API's OpenAPI 3 document, generated from the handlers' annotations
//! and served at /api/v1/openapi.json (no token needed: it describes, it
//! holds nothing).

use std::sync::OnceLock;

use actix_web::HttpResponse;
use actix_web::http::header;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::connections;
use super::error::ErrorBody;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Plugboard Connections API",
        version = "1",
        description = "Working credentials for automations. Every call but this document's needs an API token \
                       (`Authorization: Bearer`), made by an admin on the API tokens page for one environment."
    ),
    paths(document, connections::list, connections::get, connections::credentials, connections::check),
    components(schemas(
        ErrorBody,
        connections::ConnectionList,
        connections::ConnectionMeta,
        connections::Credentials,
        connections::StatusView,
        connections::StatusValue
    )),
    modifiers(&BearerToken),
    tags((name = "connections", description = "Connections of the token's environment, within its limits"))
)]
struct Document;

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token from the API tokens page"))
                    .build(),
            ),
        );
    }
}

/// The document, as JSON.
pub fn json() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT
        .get_or_init(|| Document::openapi().to_json().unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")))
}

/// This document.
#[utoipa::path(
    get, path = "/api/v1/openapi.json", tag = "meta", operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3 document of this API", content_type = "application/json"))
)]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().insert_header((header::CONTENT_TYPE, "application/json")).body(json())
}
