//! Headers every answer carries, HSTS, and CORS: the outermost layer of each listener.
//!
//! - Every answer: `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`,
//!   `X-Frame-Options: DENY`, and a strict `Content-Security-Policy` ([`CSP`]: `default-src
//!   'self'`, so no inline script). It is the web client's policy (`super::web`, docs/WEB.md:
//!   script, style and socket from this origin, nothing inline), set on every answer so that no
//!   HTML can be served without it. A handler that sets one of these headers itself keeps its
//!   own.
//! - HSTS ([`HSTS`]) on every HTTPS answer: always when this listener speaks TLS, and behind a
//!   TLS-terminating proxy when a trusted proxy ([`is_trusted_proxy`], the rule that also
//!   decides whose `X-Forwarded-For` is read) says `X-Forwarded-Proto: https`. The right-most
//!   entry counts: it is the one the proxy in front of us wrote.
//! - CORS only when `BOARDROOM_CORS_ORIGINS` lists origins: those get `Access-Control-Allow-*`
//!   with credentials, and their preflights are answered; any other origin gets no CORS header,
//!   so its browser keeps the answer from the page. Without the setting there is no CORS layer
//!   at all.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::response::Response;
use ipnet::IpNet;
use tower::layer::util::{Identity, Stack};
use tower::util::Either;
use tower::{Layer, Service, ServiceBuilder};
use tower_http::cors::{AllowCredentials, AllowOrigin, CorsLayer};

use crate::auth::request_meta::is_trusted_proxy;
use crate::config::Settings;

/// `Strict-Transport-Security` on HTTPS answers: two years, subdomains, preload-list eligible.
pub const HSTS: &str = "max-age=63072000; includeSubDomains; preload";

/// `Content-Security-Policy` on every answer: only this origin's resources, no inline script or
/// style, no plugins, no framing, no `<base>` rewriting.
pub const CSP: &str =
    "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// How long a browser may cache a preflight's answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The headers set on every answer, whatever the listener (static values: nothing allocates).
fn every_answer() -> [(HeaderName, HeaderValue); 4] {
    [
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)),
    ]
}

/// When an answer is an HTTPS answer, and so carries HSTS.
#[derive(Debug, Clone)]
enum Hsts {
    /// This listener speaks TLS: every answer.
    Always,
    /// Plain HTTP behind a proxy: when a trusted proxy forwarded an HTTPS request.
    WhenForwarded(Arc<[IpNet]>),
    /// The plain-HTTP redirect listener.
    Never,
}

/// The layers of a listener: the headers outermost (so CORS preflights carry them too), then
/// CORS when configured.
pub type SecurityLayers =
    ServiceBuilder<Stack<Either<CorsLayer, Identity>, Stack<HeadersLayer, Identity>>>;

/// The main listener's layers, as the settings ask.
pub fn layer(settings: &Settings) -> SecurityLayers {
    let hsts = if settings.tls_cert.is_some() {
        Hsts::Always
    } else {
        Hsts::WhenForwarded(settings.trusted_proxies.clone().into())
    };
    ServiceBuilder::new().layer(HeadersLayer { hsts }).option_layer(cors(&settings.cors_origins))
}

/// The plain-HTTP redirect listener's layers: the headers of every answer, no HSTS, no CORS.
pub fn plain_layer() -> SecurityLayers {
    ServiceBuilder::new().layer(HeadersLayer { hsts: Hsts::Never }).option_layer(None)
}

/// CORS for the configured origins (already normalized by the setting's parser); `None` when
/// there are none.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> =
        origins.iter().filter_map(|origin| HeaderValue::from_str(origin).ok()).collect();
    if origins.is_empty() {
        return None;
    }
    let own = |name: &'static str| HeaderName::from_static(name);
    let listed: Arc<[HeaderValue]> = origins.clone().into();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            // Not a plain `true`: an origin off the list gets no CORS header at all.
            .allow_credentials(AllowCredentials::predicate(move |origin, _| {
                listed.contains(origin)
            }))
            .allow_methods([
                Method::GET,
                Method::HEAD,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT,
                header::IF_MATCH,
                own(crate::auth::caller::CSRF_HEADER),
                own("idempotency-key"),
                own(crate::telemetry::REQUEST_ID_HEADER),
            ])
            .expose_headers([
                header::ETAG,
                header::RETRY_AFTER,
                own(crate::telemetry::REQUEST_ID_HEADER),
            ])
            .max_age(PREFLIGHT_MAX_AGE),
    )
}

/// Sets the headers of every answer, and HSTS on HTTPS answers.
#[derive(Debug, Clone)]
pub struct HeadersLayer {
    hsts: Hsts,
}

impl<S> Layer<S> for HeadersLayer {
    type Service = Headers<S>;

    fn layer(&self, inner: S) -> Headers<S> {
        Headers { inner, hsts: self.hsts.clone() }
    }
}

/// The service [`HeadersLayer`] makes.
#[derive(Debug, Clone)]
pub struct Headers<S> {
    inner: S,
    hsts: Hsts,
}

impl Hsts {
    fn applies(&self, request: &Request) -> bool {
        match self {
            Hsts::Always => true,
            Hsts::Never => false,
            Hsts::WhenForwarded(trusted) => {
                let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>()
                else {
                    return false;
                };
                is_trusted_proxy(peer.ip(), trusted) && forwarded_https(request)
            }
        }
    }
}

/// Whether the right-most `X-Forwarded-Proto` entry (over every such header) is `https`.
fn forwarded_https(request: &Request) -> bool {
    request
        .headers()
        .get_all("x-forwarded-proto")
        .iter()
        .next_back()
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.rsplit(',').next())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

impl<S> Service<Request> for Headers<S>
where
    S: Service<Request, Response = Response>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let hsts = self.hsts.applies(&request);
        let answer = self.inner.call(request);
        Box::pin(async move {
            let mut response = answer.await?;
            let headers = response.headers_mut();
            for (name, value) in every_answer() {
                headers.entry(name).or_insert(value);
            }
            if hsts {
                headers.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(protos: &[&str]) -> Request {
        let mut builder = Request::builder();
        for proto in protos {
            builder = builder.header("x-forwarded-proto", *proto);
        }
        builder.body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn the_right_most_forwarded_proto_counts() {
        assert!(forwarded_https(&request(&["https"])));
        assert!(forwarded_https(&request(&["HTTPS"])));
        assert!(forwarded_https(&request(&["http, https"])));
        assert!(!forwarded_https(&request(&["https, http"])));
        assert!(!forwarded_https(&request(&["https", "http"])));
        assert!(!forwarded_https(&request(&[])));
    }
}
