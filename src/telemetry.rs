//! Logging setup and the per-request log line.
//!
//! [`init`] installs a `tracing` subscriber with the configured filter and format.
//! [`request_log`] is the middleware that gives every request an id (answered as
//! `x-request-id`) and logs one line with method, path, status and latency. Only the path is
//! logged, never the query string or headers, because those may carry tickets and tokens.

use std::io::IsTerminal;
use std::time::Instant;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, Settings};

/// Installs the global subscriber. Errors name the setting at fault. Colours only when stdout
/// is a terminal, never in a file or a pipe.
pub fn init(settings: &Settings) -> Result<(), String> {
    let filter = EnvFilter::builder()
        .parse(&settings.log)
        .map_err(|e| format!("BOARDROOM_LOG (--log): invalid filter {:?}: {e}", settings.log))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_ansi(std::io::stdout().is_terminal());
    let result = match settings.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // A second init (tests starting several servers in one process) keeps the first subscriber.
    let _ = result;
    Ok(())
}

/// Header carrying the request id, both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Middleware: request id, span, and one log line per request.
pub async fn request_log(mut request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_safe_request_id(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        request.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let method = request.method().clone();
    let route = request.extensions().get::<axum::extract::MatchedPath>().cloned();
    let path = request.uri().path().to_owned();
    let span = tracing::info_span!("request", id = %request_id, %method, %path);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let took = started.elapsed();
    crate::metrics::http_request(&method, route.as_ref(), response.status(), took);
    let latency_ms = took.as_secs_f64() * 1000.0;
    let status = response.status().as_u16();
    span.in_scope(|| {
        tracing::info!(status, latency_ms = format_args!("{latency_ms:.2}"), "request");
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// A caller-supplied id is kept only when it cannot forge log lines.
fn is_safe_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_that_could_forge_logs_are_replaced() {
        assert!(is_safe_request_id("abc-123_DEF"));
        assert!(!is_safe_request_id("abc\nlevel=error"));
        assert!(!is_safe_request_id(""));
        assert!(!is_safe_request_id(&"a".repeat(65)));
    }
}
