//! The web client's files: the built bundle in `web/dist` (docs/WEB.md), embedded in the binary
//! at compile time, so serving the app needs no Node and no files beside the binary.
//!
//! [`serve`] is the router's fallback, so every route the API or the probes own wins first.
//! What it answers:
//! - `GET`/`HEAD` of an embedded file: the file, its content type, a strong `ETag` (a digest of
//!   the bytes, so a new build is a new tag) and `304` for a matching `If-None-Match`. Files under
//!   `assets/` carry a content hash in their names, so they are cached for a year as
//!   `immutable`; `index.html` names them and is `no-cache` (revalidated every load, cheaply by
//!   `ETag`), so a new build reaches the browser on its next load.
//! - `GET`/`HEAD` of `/` or of a client route (a path under one of [`CLIENT_ROUTES`], such as
//!   `/orgs/…/boards/…`): `index.html`, so a page survives a reload and a shared link.
//! - Everything else, `/api/…` above all: the JSON `404 not_found` an API client expects. Paths
//!   the client does not own stay JSON 404s too (a probe of `/metrics` or `/nope` finds nothing),
//!   and so does a missing `/assets/…` file: HTML would only confuse an old page asking for a
//!   replaced build.
//!
//! The `Content-Security-Policy` every answer carries (`super::security::CSP`) is the app's: it
//! loads its script and style from this origin and opens its socket to it, and nothing inline.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use boardroom_protocol::ErrorCode;
use include_dir::{include_dir, Dir};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// The built client, `web/dist`; `build.rs` rebuilds the server when it changes.
static DIST: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/web/dist");

/// `Cache-Control` of a file whose name changes with its content.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// `Cache-Control` of the entry page: cache it, but ask the server before each use.
pub const REVALIDATE: &str = "no-cache";

/// The page that starts the app, and that client routes fall back to.
const INDEX: &str = "index.html";

/// The first path segments the client's router owns (web/src/main.ts): a reload there gets
/// [`INDEX`]. A new page of the client adds its segment here. `verify-email`, `reset-password`
/// and `invitations/{id}` are the links the account mails carry (`crate::mail::Mail::link`).
pub const CLIENT_ROUTES: &[&str] =
    &["orgs", "account", "verify-email", "reset-password", "invitations"];

/// One embedded file, ready to answer.
struct Asset {
    bytes: &'static [u8],
    content_type: &'static str,
    etag: HeaderValue,
    cache_control: &'static str,
}

/// Every embedded file by its URL path without the leading `/`, tagged once at first use.
static ASSETS: LazyLock<HashMap<String, Asset>> = LazyLock::new(|| {
    let mut assets = HashMap::new();
    collect(&DIST, &mut assets);
    assets
});

fn collect(dir: &'static Dir<'static>, into: &mut HashMap<String, Asset>) {
    for file in dir.files() {
        let path = file.path().to_string_lossy().replace('\\', "/");
        let digest = Sha256::digest(file.contents());
        let tag = format!("\"{}\"", hex::encode(&digest[..16]));
        let Ok(etag) = HeaderValue::from_str(&tag) else { continue };
        let cache_control = if path.starts_with("assets/") { IMMUTABLE } else { REVALIDATE };
        let asset = Asset {
            bytes: file.contents(),
            content_type: content_type(&path),
            etag,
            cache_control,
        };
        into.insert(path, asset);
    }
    for child in dir.dirs() {
        collect(child, into);
    }
}

/// The content type of a file, by its extension (the bundle holds only these kinds).
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The router's fallback: an embedded file, the app's page for a client route, or JSON 404.
pub async fn serve(request: Request) -> Response {
    let method = request.method();
    let path = request.uri().path().trim_start_matches('/');
    if *method != Method::GET && *method != Method::HEAD {
        return not_found();
    }
    let first = path.split('/').next().unwrap_or_default();
    let file = if path.is_empty() || CLIENT_ROUTES.contains(&first) { INDEX } else { path };
    match ASSETS.get(file) {
        Some(asset) => answer(asset, request.headers()),
        None => not_found(),
    }
}

fn answer(asset: &Asset, headers: &HeaderMap) -> Response {
    let fresh = headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag.as_bytes() == asset.etag.as_bytes());
    let (status, body) = if fresh {
        (StatusCode::NOT_MODIFIED, Body::empty())
    } else {
        (StatusCode::OK, Body::from(asset.bytes))
    };
    let mut response = (status, body).into_response();
    let out = response.headers_mut();
    out.insert(ETAG, asset.etag.clone());
    out.insert(CACHE_CONTROL, HeaderValue::from_static(asset.cache_control));
    if !fresh {
        out.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    }
    response
}

fn not_found() -> Response {
    ApiError::new(ErrorCode::NotFound, "no such route").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundle_holds_the_page_and_hashed_assets() {
        let index = ASSETS.get(INDEX).expect("index.html is embedded");
        assert_eq!(index.cache_control, REVALIDATE);
        assert_eq!(index.content_type, "text/html; charset=utf-8");
        let page = std::str::from_utf8(index.bytes).expect("utf-8");
        let scripts: Vec<&String> = ASSETS.keys().filter(|p| p.ends_with(".js")).collect();
        assert!(!scripts.is_empty(), "the bundle has a script");
        for script in scripts {
            assert!(script.starts_with("assets/"), "{script} is hashed and immutable");
            assert!(page.contains(&format!("/{script}")), "index.html loads {script}");
            assert_eq!(ASSETS[script].cache_control, IMMUTABLE);
        }
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(content_type("assets/app-X1.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("assets/app-X1.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("favicon.svg"), "image/svg+xml");
        assert_eq!(content_type("LICENSE"), "application/octet-stream");
    }
}
