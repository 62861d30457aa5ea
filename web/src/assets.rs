//! Static assets embedded in the binary, and the headers that make pages safe to show.
//!
//! Invariants:
//! - Every asset is compiled in (`include_str!`); a page never loads anything from another
//!   origin, which the Content-Security-Policy also enforces.
//! - Every HTML answer carries [`security_headers`]: no framing, no sniffing, no caching of
//!   pages that show operator data.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// The shared stylesheet.
pub const CSS: &str = include_str!("../assets/docaxis.css");
/// The shared icon (SVG).
pub const ICON: &str = include_str!("../assets/icon.svg");

/// Where pages link the stylesheet and the icon.
pub const CSS_PATH: &str = "/assets/docaxis.css";
pub const ICON_PATH: &str = "/assets/icon.svg";

/// The stylesheet, cacheable for an hour (it changes only with the binary).
pub async fn css() -> Response {
    asset(CSS, "text/css; charset=utf-8")
}

/// The icon.
pub async fn icon() -> Response {
    asset(ICON, "image/svg+xml")
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// Adds the headers every page carries. Scripts are not allowed at all: the pages work with
/// plain links and forms.
pub fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
             frame-src 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Headers of a file shown inside a page of the same site (a PDF in its document's page): it
/// may be framed by this site only, never sniffed, never cached.
pub fn framable_file_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'self'; base-uri 'none'; form-action 'none'"),
    );
    h.insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An HTML answer with the security headers.
pub fn html(status: axum::http::StatusCode, body: String) -> Response {
    security_headers(
        (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response(),
    )
}

/// A rendered template as an HTML answer with the security headers; a template that fails to
/// render is logged and answered with a bare 500.
pub fn page(status: axum::http::StatusCode, template: &impl askama::Template) -> Response {
    match template.render() {
        Ok(body) => html(status, body),
        Err(e) => {
            tracing::error!(error = %e, "a page failed to render");
            (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "page failed to render",
            )
                .into_response()
        }
    }
}
