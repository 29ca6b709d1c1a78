//! Who is calling from where: the client IP and User-Agent of a request.
//!
//! The client IP is the TCP peer, unless the peer is a trusted proxy
//! (`BOARDROOM_TRUSTED_PROXIES`); then it is the right-most `X-Forwarded-For` entry that is not
//! itself a trusted proxy. Nothing else in a request can set it, so rate limits keyed on it
//! cannot be dodged by sending a header.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use ipnet::IpNet;

use crate::error::ApiError;
use crate::http::AppState;

/// The client of a request.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    /// Client IP.
    pub ip: IpAddr,
    /// User-Agent, truncated to 256 bytes.
    pub user_agent: Option<String>,
    /// Method, for audit rows.
    pub method: String,
    /// Path, for audit rows (never the query string).
    pub path: String,
}

/// The client IP given the TCP peer and the `X-Forwarded-For` values.
pub fn client_ip<'a>(
    peer: IpAddr,
    forwarded_for: impl Iterator<Item = &'a str>,
    trusted: &[IpNet],
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = forwarded_for
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .collect();
    hops.into_iter().rev().find(|ip| !is_trusted(ip)).unwrap_or(peer)
}

impl FromRequestParts<AppState> for RequestMeta {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(meta) = parts.extensions.get::<RequestMeta>() {
            return Ok(meta.clone());
        }
        let meta = RequestMeta::from_parts(parts, state);
        parts.extensions.insert(meta.clone());
        Ok(meta)
    }
}

impl RequestMeta {
    /// Reads the meta of a request.
    pub fn from_parts(parts: &Parts, state: &AppState) -> RequestMeta {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let forwarded =
            parts.headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
        let ip = client_ip(peer, forwarded, &state.settings().trusted_proxies);
        let user_agent = parts
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(256).collect());
        RequestMeta {
            ip,
            user_agent,
            method: parts.method.to_string(),
            // Inside nested routers `uri` has lost its prefix; the original keeps it.
            path: parts
                .extensions
                .get::<axum::extract::OriginalUri>()
                .map_or_else(|| parts.uri.path().to_owned(), |u| u.0.path().to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_the_header_says() {
        let got = client_ip(ip("203.0.113.9"), ["1.2.3.4"].into_iter(), &[]);
        assert_eq!(got, ip("203.0.113.9"));
    }

    #[test]
    fn trusted_proxy_yields_the_rightmost_untrusted_hop() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let got =
            client_ip(ip("10.0.0.5"), ["6.6.6.6, 198.51.100.7", "10.0.0.9"].into_iter(), &trusted);
        // 6.6.6.6 was written by the client itself; the proxy chain vouches for 198.51.100.7.
        assert_eq!(got, ip("198.51.100.7"));
    }

    #[test]
    fn trusted_proxy_without_header_is_the_client() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(client_ip(ip("10.1.1.1"), std::iter::empty(), &trusted), ip("10.1.1.1"));
    }
}
