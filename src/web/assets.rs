//! Static files and component icons, embedded in the binary so that one
//! file is all a deployment needs.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};
use rust_embed::RustEmbed;

use crate::web::State;
use crate::web::error::AppError;

/// htmx (2.0.11, from `npm pack htmx.org@2`), app.js, app.css and icons.
#[derive(RustEmbed)]
#[folder = "static/"]
struct Static;

/// Where the built-in catalog's `icon = "x.svg"` entries are found.
pub struct BuiltinIcons;

impl crate::catalog::IconSource for BuiltinIcons {
    fn icon(&self, name: &str) -> Option<Vec<u8>> {
        Static::get(&format!("icons/{name}")).map(|f| f.data.into_owned())
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/static/{file}", web::get().to(static_file))
        .route("/icons/{component}.svg", web::get().to(icon));
}

async fn static_file(file: web::Path<String>) -> Result<HttpResponse, AppError> {
    let name = file.into_inner();
    let asset = Static::get(&name).ok_or_else(|| AppError::not_found("No such file."))?;
    let content_type = match name.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    };
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")))
        .body(asset.data.into_owned()))
}

/// A component's icon, or a letter mark drawn from its name when the
/// catalog gives none.
async fn icon(state: State, key: web::Path<String>) -> Result<HttpResponse, AppError> {
    let component =
        state.catalog.get(&key).ok_or_else(|| AppError::not_found("No component has this key."))?;
    let svg = match &component.icon_svg {
        Some(svg) => svg.clone(),
        None => letter_mark(component.initial(), &component.key),
    };
    Ok(HttpResponse::Ok()
        .content_type("image/svg+xml")
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400")))
        // An operator's SVG could hold script; it must never run.
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
        ))
        .body(svg))
}

/// A rounded square in a colour chosen from the key, with the initial on it.
fn letter_mark(initial: char, key: &str) -> String {
    const COLOURS: [&str; 8] =
        ["#2563eb", "#7c3aed", "#db2777", "#ea580c", "#16a34a", "#0891b2", "#4f46e5", "#b45309"];
    let hash = key.bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
    let colour = COLOURS[hash % COLOURS.len()];
    // `initial` is alphanumeric (see Component::initial), so it needs no escaping.
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 24 24\"><rect width=\"24\" height=\"24\" rx=\"5\" fill=\"{colour}\"/>\
         <text x=\"12\" y=\"16.5\" font-family=\"system-ui,sans-serif\" font-size=\"13\" font-weight=\"700\" text-anchor=\"middle\" fill=\"#fff\">{initial}</text></svg>"
    )
}
