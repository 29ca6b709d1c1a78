//! Who is calling from where: the client IP and User-Agent of a request, and the network a
//! per-client limit counts it under.
//!
//! The client IP is the TCP peer, unless the peer is a trusted proxy
//! (`BOARDROOM_TRUSTED_PROXIES`); only then is `X-Forwarded-For` read at all. Its entries (every
//! such header, in order, as one comma-separated list) are walked from the right, skipping
//! trusted proxies: the first untrusted address is the client. An entry that is not an address
//! ("unknown", an obfuscated name, garbage) is never skipped over: nobody trusted vouches for
//! anything to its left, so the client is the trusted hop that wrote it (the address just
//! walked, or the peer). Entries may carry a port (`198.51.100.7:4711`, `[2001:db8::7]:443`)
//! or brackets. If every entry is a trusted proxy, the left-most is the client. Nothing a client
//! sends can choose the address, so limits keyed on it cannot be dodged with a header.
//!
//! IPv4-mapped IPv6 addresses (a dual-stack listener's view of an IPv4 peer) are their IPv4
//! address everywhere, in the trusted-proxy check too. Limits count an IPv6 client by its /64
//! ([`limit_net`]): one subscriber usually holds a whole /64 and could otherwise hop addresses.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use ipnet::{IpNet, Ipv6Net};

/// The client of a request.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    /// Client IP; an IPv4-mapped IPv6 address is given as its IPv4 address.
    pub ip: IpAddr,
    /// User-Agent, truncated to 256 bytes.
    pub user_agent: Option<String>,
    /// Method, for audit rows.
    pub method: String,
    /// Path, for audit rows (never the query string).
    pub path: String,
}

/// Prefix length an IPv6 client is counted by.
pub const IPV6_LIMIT_PREFIX: u8 = 64;

/// The network a per-client limit counts `ip` under: an IPv4 address alone, an IPv6 address's
/// /64. An IPv4-mapped IPv6 address counts as its IPv4 address. Every per-IP limit keys on this.
pub fn limit_net(ip: IpAddr) -> IpNet {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpNet::from(IpAddr::V4(v4)),
        IpAddr::V6(v6) => Ipv6Net::new(v6, IPV6_LIMIT_PREFIX)
            .map_or_else(|_| IpNet::from(IpAddr::V6(v6)), |net| IpNet::V6(net.trunc())),
    }
}

/// The client IP given the TCP peer and the `X-Forwarded-For` header values, in the order they
/// came. Values are raw bytes: an entry that is not UTF-8 is not an address either.
pub fn client_ip<'a>(
    peer: IpAddr,
    forwarded_for: impl DoubleEndedIterator<Item = &'a [u8]>,
    trusted: &[IpNet],
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| is_trusted_proxy(*ip, trusted);
    let mut client = peer.to_canonical();
    if !is_trusted(&client) {
        return client;
    }
    for value in forwarded_for.rev() {
        for entry in value.rsplit(|&b| b == b',') {
            let Some(hop) = parse_entry(entry) else { return client };
            client = hop;
            if !is_trusted(&client) {
                return client;
            }
        }
    }
    client
}

/// Whether `peer` is a trusted proxy (`BOARDROOM_TRUSTED_PROXIES`), the only kind whose
/// forwarding headers are read: the rule for the client IP here and for the forwarded scheme
/// (`X-Forwarded-Proto`, [`crate::http::security`]).
pub fn is_trusted_proxy(peer: IpAddr, trusted: &[IpNet]) -> bool {
    let peer = peer.to_canonical();
    trusted.iter().any(|net| net.contains(&peer))
}

/// One `X-Forwarded-For` entry: an address, optionally with a port or in brackets.
fn parse_entry(entry: &[u8]) -> Option<IpAddr> {
    let entry = std::str::from_utf8(entry).ok()?.trim_matches([' ', '\t']);
    let ip = if let Ok(ip) = entry.parse::<IpAddr>() {
        ip
    } else if let Ok(addr) = entry.parse::<SocketAddr>() {
        addr.ip()
    } else {
        IpAddr::V6(entry.strip_prefix('[')?.strip_suffix(']')?.parse::<Ipv6Addr>().ok()?)
    };
    Some(ip.to_canonical())
}

impl RequestMeta {
    /// The network per-client limits count this request under ([`limit_net`]).
    pub fn limit_net(&self) -> IpNet {
        limit_net(self.ip)
    }

    /// Reads the meta of a request; `X-Forwarded-For` is believed from `trusted` peers only.
    pub fn from_parts(parts: &Parts, trusted: &[IpNet]) -> RequestMeta {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let forwarded = parts.headers.get_all("x-forwarded-for").iter().map(|v| v.as_bytes());
        let ip = client_ip(peer, forwarded, trusted);
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

    fn walk(peer: &str, headers: &[&[u8]], trusted: &[IpNet]) -> IpAddr {
        client_ip(ip(peer), headers.iter().copied(), trusted)
    }

    /// Peer, `X-Forwarded-For` headers as they came, the client. Trusted: 10.0.0.0/8 and
    /// 2001:db8:ffff::/48.
    const WALKS: &[(&str, &[&[u8]], &str)] = &[
        // An untrusted peer is the client; its header is not read.
        ("203.0.113.9", &[b"1.2.3.4"], "203.0.113.9"),
        ("203.0.113.9", &[b"garbage"], "203.0.113.9"),
        // A trusted peer without the header is the client.
        ("10.1.1.1", &[], "10.1.1.1"),
        // The right-most untrusted entry; what the client wrote itself lies to its left.
        ("10.0.0.5", &[b"6.6.6.6, 198.51.100.7"], "198.51.100.7"),
        ("10.0.0.5", &[b"6.6.6.6, 198.51.100.7, 10.0.0.9, 10.0.0.8"], "198.51.100.7"),
        // Several headers are one list, in order.
        ("10.0.0.5", &[b"6.6.6.6, 198.51.100.7", b"10.0.0.9"], "198.51.100.7"),
        ("10.0.0.5", &[b"6.6.6.6", b"198.51.100.7", b"10.0.0.9"], "198.51.100.7"),
        // Every entry trusted: the left-most is the client.
        ("10.0.0.5", &[b"10.0.0.7, 10.0.0.8"], "10.0.0.7"),
        // An entry that is not an address ends the walk at the trusted hop that wrote it.
        ("10.0.0.5", &[b"198.51.100.7, unknown"], "10.0.0.5"),
        ("10.0.0.5", &[b"198.51.100.7, bogus, 10.0.0.9"], "10.0.0.9"),
        ("10.0.0.5", &[b"198.51.100.7,, 10.0.0.9"], "10.0.0.9"),
        ("10.0.0.5", &[b"198.51.100.7", b""], "10.0.0.5"),
        ("10.0.0.5", &[b"198.51.100.7, _hidden"], "10.0.0.5"),
        ("10.0.0.5", &[b"198.51.100.7, fe80::1%eth0"], "10.0.0.5"),
        ("10.0.0.5", &[b"198.51.100.7, [1.2.3.4]"], "10.0.0.5"),
        ("10.0.0.5", &[b"198.51.100.7, 10.0.0.9\xff"], "10.0.0.5"),
        ("10.0.0.5", &[b"198.51.100.7, 2001:db8::1:99999"], "10.0.0.5"),
        // ... but one left of the client is never reached.
        ("10.0.0.5", &[b"bogus, 198.51.100.7"], "198.51.100.7"),
        ("10.0.0.5", &[b"\xff\xfe", b"198.51.100.7"], "198.51.100.7"),
        // Whitespace, ports and brackets.
        ("10.0.0.5", &[b" \t198.51.100.7 \t"], "198.51.100.7"),
        ("10.0.0.5", &[b"198.51.100.7:4711"], "198.51.100.7"),
        ("10.0.0.5", &[b"2001:db8::7"], "2001:db8::7"),
        ("10.0.0.5", &[b"[2001:db8::7]"], "2001:db8::7"),
        ("10.0.0.5", &[b"[2001:db8::7]:443"], "2001:db8::7"),
        ("10.0.0.5", &[b"198.51.100.7, 10.0.0.9:8080"], "198.51.100.7"),
        // IPv6 proxies.
        ("2001:db8:ffff::1", &[b"2001:db8:1::5, 2001:db8:ffff:1::2"], "2001:db8:1::5"),
        // IPv4-mapped addresses are their IPv4 address, for trust too.
        ("10.0.0.5", &[b"::ffff:198.51.100.7"], "198.51.100.7"),
        ("10.0.0.5", &[b"198.51.100.7, ::ffff:10.0.0.9"], "198.51.100.7"),
        ("::ffff:10.0.0.5", &[b"198.51.100.7"], "198.51.100.7"),
        ("::ffff:203.0.113.9", &[b"198.51.100.7"], "203.0.113.9"),
        ("10.0.0.5", &[b"[::ffff:198.51.100.7]:80"], "198.51.100.7"),
    ];

    #[test]
    fn forwarded_for_walk() {
        let trusted: Vec<IpNet> =
            vec!["10.0.0.0/8".parse().unwrap(), "2001:db8:ffff::/48".parse().unwrap()];
        for (peer, headers, want) in WALKS {
            let got = walk(peer, headers, &trusted);
            let shown: Vec<_> = headers.iter().map(|h| String::from_utf8_lossy(h)).collect();
            assert_eq!(got, ip(want), "peer {peer}, X-Forwarded-For {shown:?}");
        }
    }

    #[test]
    fn nothing_is_trusted_by_default() {
        assert_eq!(walk("10.0.0.5", &[b"198.51.100.7"], &[]), ip("10.0.0.5"));
        assert_eq!(walk("127.0.0.1", &[b"198.51.100.7"], &[]), ip("127.0.0.1"));
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let net = |s: &str| limit_net(ip(s));
        assert_eq!(net("2001:db8:1:2:aaaa::1"), net("2001:db8:1:2:bbbb:cccc:dddd:eeee"));
        assert_ne!(net("2001:db8:1:2::1"), net("2001:db8:1:3::1"));
        assert_eq!(net("2001:db8:1:2:aaaa::1").to_string(), "2001:db8:1:2::/64");
        assert_eq!(net("203.0.113.9").to_string(), "203.0.113.9/32");
        assert_ne!(net("203.0.113.9"), net("203.0.113.10"));
        assert_eq!(net("::ffff:203.0.113.9"), net("203.0.113.9"));
    }
}
