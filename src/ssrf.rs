//! The SSRF guard for outbound webhook deliveries.
//!
//! A webhook URL is chosen by a user but fetched by the server, from inside its network, so
//! every URL is judged twice: once when the webhook is created ([`Guard::validate`], pure and
//! synchronous, so the REST layer can answer 422 at once) and again at every delivery
//! ([`Guard::check`], which also resolves the name), because DNS answers change between the
//! two. This module owns that judgement and the client that acts on it; the deliverer owns
//! retries, signing and scheduling.
//!
//! What is judged is the URL as the WHATWG parser of the `url` crate normalizes it — the same
//! parser `reqwest` uses to connect — so decimal, octal, hex and short IPv4 forms, IPv6
//! spellings, percent-encoding, IDNA look-alikes, upper case and trailing dots cannot make the
//! guard and the connection disagree on the host. The raw string is rejected first if it holds
//! whitespace, control or invisible formatting characters (the parser would silently drop a tab
//! or newline, and bidi overrides disguise a URL) or any `@` before the host, even one the
//! parser would not read as userinfo (`http://a.com\@b.com`), since parsers disagree there.
//!
//! Refused, unless the allowlist names the exact host and port: schemes other than http and
//! https; local and cloud-metadata host names, compared lower-cased and without trailing dots
//! and before any DNS (`localhost`, `*.localhost`, AWS `instance-data`, GCP
//! `metadata.google.internal`, Azure `metadata.azure.com`, Oracle, Tencent, IBM, Equinix,
//! Rancher; DigitalOcean, Hetzner, OpenStack and Alibaba serve metadata only at link-local or
//! shared addresses, refused by address below); and any address in the blocked ranges — the
//! private, loopback, link-local, shared, benchmarking, multicast and reserved IPv4 ranges plus
//! Azure's 168.63.129.16 and Alibaba's 100.100.100.200, and IPv6 `::`, `::1`, fc00::/7,
//! fe80::/10, fec0::/10, ff00::/8, Teredo 2001::/32 and local-use NAT64 64:ff9b:1::/48 (both
//! whole: neither has one embedded IPv4 address at a fixed place to judge), with IPv4 addresses
//! embedded in IPv6 (mapped, translated, compatible, 6to4, well-known-prefix NAT64) unwrapped
//! and judged again as IPv4. A name is refused if ANY of its A/AAAA records is blocked: a mixed
//! answer is how a rebinding attacker hedges.
//!
//! The verdict ([`Checked`]) names one checked [`SocketAddr`], and [`Checked::pinned_client`]
//! builds a `reqwest` client that can reach only that address: the name is pinned with
//! `ClientBuilder::resolve` (so the Host header, SNI and certificate check still use the name)
//! and every other lookup fails, so no second DNS answer can slip in between check and
//! connect. Redirects are not followed (a 3xx is the delivery's answer, never a new target),
//! proxies are ignored and the whole exchange is capped at ten seconds. [`read_body_capped`]
//! keeps at most a short excerpt of the answer, as text with invalid UTF-8 and control bytes
//! replaced, so a hostile endpoint can neither exhaust memory nor get arbitrary bytes stored.
//!
//! The allowlist is the setting `BOARDROOM_WEBHOOK_ALLOW` (`--webhook-allow`), a comma-separated
//! list of `host:port` pairs parsed by [`Allowlist::parse`]. It is empty by default and opens
//! only the exact pair it names, for example a local receiver in development; the port of a URL
//! without one is 80 or 443 by scheme.
//!
//! Resolution goes through the [`Resolver`] trait so tests can script answers with
//! [`StaticResolver`]; production uses [`SystemResolver`].

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use boardroom_actors::text::{self, Form};
use url::Url;

/// Total time allowed for one delivery request, from connect to the last byte read.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Time allowed for one DNS lookup by [`SystemResolver`].
pub const DNS_TIMEOUT: Duration = Duration::from_secs(5);

/// Default cap on the response bytes a delivery reads before it stops.
pub const BODY_CAP: usize = 64 * 1024;

/// Default length of the stored response excerpt, in bytes.
pub const EXCERPT_BYTES: usize = 512;

/// Why a webhook URL was refused. [`SsrfError::reason`] is a stable code; `Display` is a
/// message fit for a 422 body (it never reveals what a name resolved to).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsrfError {
    /// The string is not an absolute URL, or its port is unusable.
    #[error("webhook URL is not valid: {0}")]
    InvalidUrl(String),
    /// A scheme other than http or https.
    #[error("webhook URL scheme `{0}` is not allowed; use http or https")]
    BadScheme(String),
    /// Whitespace, a control character or an invisible formatting character in the raw string.
    #[error("webhook URL must not contain whitespace, control or invisible formatting characters")]
    ControlOrWhitespace,
    /// Userinfo, or any `@` before the host.
    #[error("webhook URL must not contain credentials or an `@` before the host")]
    Userinfo,
    /// A local or cloud-metadata host name (normalized, as refused).
    #[error("webhook host `{0}` is a local or cloud-metadata name and is not allowed")]
    BlockedHostName(String),
    /// The URL's host is an IP address in a blocked range.
    #[error("webhook address {0} is not allowed: {desc}", desc = describe_blocked(*.0))]
    BlockedAddress(IpAddr),
    /// The host name resolved to at least one address in a blocked range. The address is kept
    /// for logs but left out of the message, so the guard is no oracle for internal DNS.
    #[error("webhook host `{host}` resolves to a non-public address, which is not allowed")]
    BlockedResolution {
        /// The normalized host name.
        host: String,
        /// The first blocked address in the answer.
        addr: IpAddr,
    },
    /// The host name has no A or AAAA record, or the lookup failed or timed out.
    #[error("webhook host `{0}` could not be resolved")]
    Unresolvable(String),
}

impl SsrfError {
    /// A stable, machine-readable code for this refusal.
    pub fn reason(&self) -> &'static str {
        match self {
            SsrfError::InvalidUrl(_) => "invalid_url",
            SsrfError::BadScheme(_) => "bad_scheme",
            SsrfError::ControlOrWhitespace => "control_or_whitespace",
            SsrfError::Userinfo => "userinfo",
            SsrfError::BlockedHostName(_) => "blocked_host_name",
            SsrfError::BlockedAddress(_) => "blocked_address",
            SsrfError::BlockedResolution { .. } => "blocked_resolution",
            SsrfError::Unresolvable(_) => "unresolvable",
        }
    }

    /// The blocked address behind the refusal, if it was one (for logs).
    pub fn address(&self) -> Option<IpAddr> {
        match self {
            SsrfError::BlockedAddress(addr) | SsrfError::BlockedResolution { addr, .. } => {
                Some(*addr)
            }
            _ => None,
        }
    }
}

/// A URL's host after normalization: a lower-case ASCII name without trailing dots, or an IP.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TargetHost {
    /// A DNS name, punycoded and lower-cased, trailing dots stripped.
    Name(String),
    /// An IP literal, in whatever spelling the URL used.
    Ip(IpAddr),
}

impl fmt::Display for TargetHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetHost::Name(name) => f.write_str(name),
            TargetHost::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            TargetHost::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
        }
    }
}

/// A webhook URL that passed the checks that need no DNS. Only [`Guard::validate`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    url: Url,
    host: TargetHost,
    port: u16,
}

impl Target {
    /// The normalized URL (host as judged, trailing dots stripped); this is what to request.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The normalized host.
    pub fn host(&self) -> &TargetHost {
        &self.host
    }

    /// The port, explicit or the scheme's default.
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// The verdict of a full check: the target and the one address a delivery may connect to.
/// Only [`Guard::resolve`] makes one, so a client built from it is always pinned to a checked
/// address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    target: Target,
    addr: SocketAddr,
    allowlisted: bool,
}

impl Checked {
    /// The normalized URL to request.
    pub fn url(&self) -> &Url {
        &self.target.url
    }

    /// The normalized host.
    pub fn host(&self) -> &TargetHost {
        &self.target.host
    }

    /// The checked address the delivery connects to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether the allowlist let this host and port skip the address checks.
    pub fn allowlisted(&self) -> bool {
        self.allowlisted
    }

    /// A client for [`Checked::url`] that connects to [`Checked::addr`] and nowhere else: the
    /// host name is pinned with `ClientBuilder::resolve` (HTTPS still sends SNI for, and
    /// verifies the certificate of, the name) and every other name fails to resolve; redirects
    /// are not followed, proxies are ignored and each request is capped at
    /// [`DELIVERY_TIMEOUT`]. Build one per delivery, right after the check, and send it only
    /// this URL (an IP literal in another URL would not be checked).
    pub fn pinned_client(&self) -> reqwest::Result<reqwest::Client> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(DELIVERY_TIMEOUT)
            .no_proxy()
            .dns_resolver(Arc::new(NoDns));
        // An IP literal is connected to as written; hyper never resolves it.
        if let TargetHost::Name(name) = &self.target.host {
            builder = builder.resolve(name, self.addr);
        }
        builder.build()
    }
}

/// The resolver under pinned clients: any name not pinned fails, so the client can never make a
/// lookup of its own.
struct NoDns;

impl reqwest::dns::Resolve for NoDns {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let message = format!("`{}` is not the pinned webhook host", name.as_str());
        Box::pin(async move { Err(message.into()) })
    }
}

/// The hosts and ports that skip the address checks: `BOARDROOM_WEBHOOK_ALLOW`
/// (`--webhook-allow`). Empty by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    entries: Vec<(TargetHost, u16)>,
}

impl Allowlist {
    /// Parses `host:port,host:port,…`. Hosts are names, IPv4 addresses or bracketed IPv6
    /// addresses, normalized like URL hosts; the port is required. An empty (or blank) string is
    /// the empty list. Errors name the offending entry.
    pub fn parse(input: &str) -> Result<Allowlist, String> {
        let mut entries = Vec::new();
        for raw in input.split(',') {
            let entry = raw.trim();
            if entry.is_empty() {
                continue;
            }
            let parsed = parse_allow_entry(entry).map_err(|why| {
                format!("webhook allowlist entry `{entry}` is invalid: {why} (expected host:port, e.g. 127.0.0.1:9000 or [::1]:9000)")
            })?;
            if !entries.contains(&parsed) {
                entries.push(parsed);
            }
        }
        Ok(Allowlist { entries })
    }

    /// Whether the list names nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether this exact host and port are on the list.
    pub fn permits(&self, host: &TargetHost, port: u16) -> bool {
        self.entries.iter().any(|(h, p)| h == host && *p == port)
    }

    /// The entries, normalized.
    pub fn entries(&self) -> &[(TargetHost, u16)] {
        &self.entries
    }
}

impl std::str::FromStr for Allowlist {
    type Err = String;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Allowlist::parse(input)
    }
}

fn parse_allow_entry(entry: &str) -> Result<(TargetHost, u16), String> {
    if entry.contains("://") || entry.contains('/') {
        return Err("a host and port only, without scheme or path".into());
    }
    if entry.contains('@') {
        return Err("no userinfo".into());
    }
    if has_forbidden_char(entry) {
        return Err("whitespace or control characters".into());
    }
    let (host, port) = if entry.starts_with('[') {
        let close = entry.find(']').ok_or("unclosed `[`")?;
        let port = entry[close + 1..].strip_prefix(':').ok_or("missing `:port`")?;
        (&entry[..=close], port)
    } else {
        let (host, port) = entry.rsplit_once(':').ok_or("missing `:port`")?;
        if host.contains(':') {
            return Err("IPv6 addresses must be bracketed, as in [::1]:9000".into());
        }
        (host, port)
    };
    let port: u16 = port.parse().map_err(|_| format!("`{port}` is not a port"))?;
    if port == 0 {
        return Err("port 0 is not a destination".into());
    }
    let host = url::Host::parse(host).map_err(|e| format!("bad host: {e}"))?;
    let host = normalize_host(host).map_err(|e| match e {
        SsrfError::InvalidUrl(why) => why,
        other => other.to_string(),
    })?;
    Ok((host, port))
}

/// Looks up the A and AAAA records of a host name.
#[async_trait]
pub trait Resolver: Send + Sync {
    /// Every address of `host` (both families). `port` is passed for resolvers that want it.
    async fn lookup(&self, host: &str, port: u16) -> io::Result<Vec<IpAddr>>;
}

/// The operating system's resolver (`getaddrinfo` via tokio), bounded by [`DNS_TIMEOUT`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

#[async_trait]
impl Resolver for SystemResolver {
    async fn lookup(&self, host: &str, port: u16) -> io::Result<Vec<IpAddr>> {
        let addrs = tokio::time::timeout(DNS_TIMEOUT, tokio::net::lookup_host((host, port)))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "DNS lookup timed out"))??;
        Ok(addrs.map(|addr| addr.ip()).collect())
    }
}

/// A scripted resolver for tests. Each host has a queue of answers: a lookup takes the next one
/// and the last repeats, so a rebinding name is one whose first answer is public and second is
/// not. Unknown hosts fail like NXDOMAIN.
#[derive(Debug, Default)]
pub struct StaticResolver {
    answers: Mutex<HashMap<String, VecDeque<Vec<IpAddr>>>>,
    lookups: AtomicUsize,
}

impl StaticResolver {
    /// An empty resolver: every lookup fails.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a host that always answers `addrs` (may be empty: a name without records).
    pub fn with(self, host: &str, addrs: &[IpAddr]) -> Self {
        self.with_sequence(host, vec![addrs.to_vec()])
    }

    /// Adds a host whose answers change from lookup to lookup; the last one repeats.
    pub fn with_sequence(self, host: &str, answers: Vec<Vec<IpAddr>>) -> Self {
        self.lock().insert(host.to_ascii_lowercase(), answers.into());
        self
    }

    /// How many lookups were made, answered or not.
    pub fn lookups(&self) -> usize {
        self.lookups.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Vec<IpAddr>>>> {
        // A panic elsewhere cannot leave a half-written answer queue, so poisoning is moot.
        self.answers.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl Resolver for StaticResolver {
    async fn lookup(&self, host: &str, _port: u16) -> io::Result<Vec<IpAddr>> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let mut answers = self.lock();
        let queue = answers.get_mut(host).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("no such host {host}"))
        })?;
        let answer = if queue.len() > 1 { queue.pop_front() } else { queue.front().cloned() };
        Ok(answer.unwrap_or_default())
    }
}

/// The guard: an allowlist and a resolver. Cheap to clone; keep one in the application state.
#[derive(Clone)]
pub struct Guard {
    allow: Allowlist,
    resolver: Arc<dyn Resolver>,
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard").field("allow", &self.allow).finish_non_exhaustive()
    }
}

impl Guard {
    /// A guard with the given allowlist and resolver.
    pub fn new(allow: Allowlist, resolver: Arc<dyn Resolver>) -> Self {
        Guard { allow, resolver }
    }

    /// A guard that resolves with the operating system.
    pub fn system(allow: Allowlist) -> Self {
        Guard::new(allow, Arc::new(SystemResolver))
    }

    /// The allowlist in force.
    pub fn allowlist(&self) -> &Allowlist {
        &self.allow
    }

    /// Every check that needs no DNS: characters, scheme, userinfo, normalization, blocked
    /// names and blocked IP literals. Use at creation; pure and synchronous.
    pub fn validate(&self, raw: &str) -> Result<Target, SsrfError> {
        let target = parse_target(raw)?;
        self.check_static(&target)?;
        Ok(target)
    }

    /// Repeats the static checks, then resolves a name and refuses it if any address is
    /// blocked; otherwise picks the first address. Use at every delivery, then connect with
    /// [`Checked::pinned_client`].
    pub async fn resolve(&self, target: &Target) -> Result<Checked, SsrfError> {
        // The allowlist may have changed since the target was validated.
        let allowlisted = self.check_static(target)?;
        let ip = match &target.host {
            TargetHost::Ip(ip) => *ip,
            TargetHost::Name(name) => {
                let ips = self
                    .resolver
                    .lookup(name, target.port)
                    .await
                    .map_err(|_| SsrfError::Unresolvable(name.clone()))?;
                if !allowlisted {
                    if let Some(bad) = ips.iter().find(|ip| blocked(**ip).is_some()) {
                        return Err(SsrfError::BlockedResolution {
                            host: name.clone(),
                            addr: *bad,
                        });
                    }
                }
                *ips.first().ok_or_else(|| SsrfError::Unresolvable(name.clone()))?
            }
        };
        Ok(Checked { target: target.clone(), addr: SocketAddr::new(ip, target.port), allowlisted })
    }

    /// [`Guard::validate`] then [`Guard::resolve`]: the whole check, for a delivery.
    pub async fn check(&self, raw: &str) -> Result<Checked, SsrfError> {
        let target = self.validate(raw)?;
        self.resolve(&target).await
    }

    /// Returns whether the target is allowlisted; refuses blocked names and IP literals.
    fn check_static(&self, target: &Target) -> Result<bool, SsrfError> {
        if self.allow.permits(&target.host, target.port) {
            return Ok(true);
        }
        match &target.host {
            TargetHost::Name(name) if is_blocked_name(name) => {
                Err(SsrfError::BlockedHostName(name.clone()))
            }
            TargetHost::Ip(ip) if blocked(*ip).is_some() => Err(SsrfError::BlockedAddress(*ip)),
            _ => Ok(false),
        }
    }
}

fn parse_target(raw: &str) -> Result<Target, SsrfError> {
    if has_forbidden_char(raw) {
        return Err(SsrfError::ControlOrWhitespace);
    }
    let mut url = Url::parse(raw).map_err(|e| SsrfError::InvalidUrl(e.to_string()))?;
    let scheme = url.scheme();
    if scheme != "http" && scheme != "https" {
        return Err(SsrfError::BadScheme(scheme.to_string()));
    }
    if !url.username().is_empty() || url.password().is_some() || raw_authority_has_at(raw) {
        return Err(SsrfError::Userinfo);
    }
    let port = url
        .port_or_known_default()
        .ok_or_else(|| SsrfError::InvalidUrl("no port for the scheme".into()))?;
    if port == 0 {
        return Err(SsrfError::InvalidUrl("port 0 is not a destination".into()));
    }
    let host = url.host().ok_or_else(|| SsrfError::InvalidUrl("no host".into()))?;
    let host = normalize_host(host)?;
    // Write the judged host back so the request (Host header, SNI) uses exactly it.
    match &host {
        TargetHost::Name(name) => url.set_host(Some(name)),
        TargetHost::Ip(ip) => {
            url.set_ip_host(*ip).map_err(|()| url::ParseError::SetHostOnCannotBeABaseUrl)
        }
    }
    .map_err(|e| SsrfError::InvalidUrl(e.to_string()))?;
    Ok(Target { url, host, port })
}

/// Strips trailing dots from a parsed host; a name that then reads as an IPv4 address (the
/// parser keeps `127.0.0.1..` as a name) becomes that address.
fn normalize_host<S: AsRef<str>>(host: url::Host<S>) -> Result<TargetHost, SsrfError> {
    match host {
        url::Host::Ipv4(ip) => Ok(TargetHost::Ip(IpAddr::V4(ip))),
        url::Host::Ipv6(ip) => Ok(TargetHost::Ip(IpAddr::V6(ip))),
        url::Host::Domain(name) => {
            let stripped = name.as_ref().trim_end_matches('.');
            if stripped.is_empty() {
                return Err(SsrfError::InvalidUrl("empty host".into()));
            }
            match url::Host::parse(stripped).map_err(|e| SsrfError::InvalidUrl(e.to_string()))? {
                url::Host::Ipv4(ip) => Ok(TargetHost::Ip(IpAddr::V4(ip))),
                url::Host::Ipv6(ip) => Ok(TargetHost::Ip(IpAddr::V6(ip))),
                url::Host::Domain(name) => Ok(TargetHost::Name(name.to_ascii_lowercase())),
            }
        }
    }
}

/// Whitespace, controls (C0, DEL, C1) and the invisible formatting characters used to disguise
/// URLs (soft hyphen, zero-width, bidi controls, BOM): the rule for identifiers.
fn has_forbidden_char(raw: &str) -> bool {
    text::check(Form::Identifier, raw).is_err()
}

/// Whether the raw authority (after `scheme:` and any slashes, up to the first `/`, `?` or `#`)
/// holds an `@`. Backslashes do not end it here, though the parser treats them as `/`: a string
/// that different parsers split differently is refused rather than judged one way.
fn raw_authority_has_at(raw: &str) -> bool {
    let Some((_, rest)) = raw.split_once(':') else { return false };
    let rest = rest.trim_start_matches(['/', '\\']);
    rest.split(['/', '?', '#']).next().is_some_and(|authority| authority.contains('@'))
}

/// Local and cloud-metadata names, refused before any DNS.
const BLOCKED_NAMES: &[&str] = &[
    "localhost",
    "localhost.localdomain",
    "ip6-localhost",
    "ip6-loopback",
    // AWS
    "instance-data",
    "instance-data.ec2.internal",
    // Google Cloud
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    // Azure (`management.azure.com` is the public control plane, not metadata)
    "metadata.azure.com",
    // Oracle Cloud
    "metadata.oraclecloud.com",
    // Tencent Cloud
    "metadata.tencentyun.com",
    // IBM Cloud VPC
    "api.metadata.cloud.ibm.com",
    // Equinix Metal (formerly Packet)
    "metadata.platformequinix.com",
    "metadata.packet.net",
    // Rancher
    "rancher-metadata",
];

fn is_blocked_name(name: &str) -> bool {
    BLOCKED_NAMES.contains(&name) || name.ends_with(".localhost")
}

/// Blocked IPv4 ranges; the single addresses come first so they get their own description.
const BLOCKED_V4: &[(Ipv4Addr, u8, &str)] = &[
    (Ipv4Addr::new(168, 63, 129, 16), 32, "the Azure wire server (168.63.129.16)"),
    (Ipv4Addr::new(100, 100, 100, 200), 32, "the Alibaba Cloud metadata service (100.100.100.200)"),
    (Ipv4Addr::new(0, 0, 0, 0), 8, "\"this network\" (0.0.0.0/8)"),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "a private range (10.0.0.0/8)"),
    (Ipv4Addr::new(100, 64, 0, 0), 10, "shared address space (100.64.0.0/10)"),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback (127.0.0.0/8)"),
    (Ipv4Addr::new(169, 254, 0, 0), 16, "link-local, where cloud metadata lives (169.254.0.0/16)"),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "a private range (172.16.0.0/12)"),
    (Ipv4Addr::new(192, 0, 0, 0), 24, "IETF protocol assignments (192.0.0.0/24)"),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "a private range (192.168.0.0/16)"),
    (Ipv4Addr::new(198, 18, 0, 0), 15, "benchmarking (198.18.0.0/15)"),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast (224.0.0.0/4)"),
    (Ipv4Addr::new(240, 0, 0, 0), 4, "reserved or broadcast (240.0.0.0/4)"),
];

/// Blocked IPv6 ranges; embedded IPv4 is handled by [`embedded_v4`].
const BLOCKED_V6: &[(Ipv6Addr, u8, &str)] = &[
    (Ipv6Addr::UNSPECIFIED, 128, "the unspecified address (::)"),
    (Ipv6Addr::LOCALHOST, 128, "loopback (::1)"),
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7, "unique local (fc00::/7)"),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, "link-local (fe80::/10)"),
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10, "deprecated site-local (fec0::/10)"),
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8, "multicast (ff00::/8)"),
    // Teredo carries a server's and a client's IPv4 address (the client's inverted) and a relay
    // forwards to them: no single embedded address to judge, so the whole prefix goes.
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 32, "Teredo (2001::/32)"),
    // Local-use NAT64 (RFC 8215) is the operator's own translator, reaching its own IPv4
    // network, and may place the IPv4 address at any of RFC 6052's offsets: refused whole.
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48, "local-use NAT64 (64:ff9b:1::/48)"),
];

fn v4_range(ip: Ipv4Addr) -> Option<&'static str> {
    let bits = u32::from(ip);
    BLOCKED_V4
        .iter()
        .find(|(net, len, _)| {
            let mask = u32::MAX.checked_shl(32 - u32::from(*len)).unwrap_or(0);
            bits & mask == u32::from(*net) & mask
        })
        .map(|(_, _, desc)| *desc)
}

fn v6_range(ip: Ipv6Addr) -> Option<&'static str> {
    let bits = u128::from(ip);
    BLOCKED_V6
        .iter()
        .find(|(net, len, _)| {
            let mask = u128::MAX.checked_shl(128 - u32::from(*len)).unwrap_or(0);
            bits & mask == u128::from(*net) & mask
        })
        .map(|(_, _, desc)| *desc)
}

/// The IPv4 address carried inside an IPv6 one, by the transition mechanisms that route to it.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let [.., a, b, c, d] = ip.octets();
    let last32 = Ipv4Addr::new(a, b, c, d);
    match ip.segments() {
        // IPv4-mapped ::ffff:0:0/96, IPv4-translated ::ffff:0:0:0/96, IPv4-compatible ::/96.
        [0, 0, 0, 0, 0, 0xffff, _, _]
        | [0, 0, 0, 0, 0xffff, 0, _, _]
        | [0, 0, 0, 0, 0, 0, _, _] => Some(last32),
        // 6to4 2002::/16: the IPv4 address is bits 16..48.
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo))),
        // NAT64 well-known prefix 64:ff9b::/96 (local-use 64:ff9b:1::/48 is in BLOCKED_V6).
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(last32),
        _ => None,
    }
}

/// Why an address is blocked, or `None` if it may be connected to.
fn blocked(ip: IpAddr) -> Option<String> {
    match ip {
        IpAddr::V4(v4) => v4_range(v4).map(str::to_string),
        IpAddr::V6(v6) => v6_range(v6).map(str::to_string).or_else(|| {
            let v4 = embedded_v4(v6)?;
            v4_range(v4).map(|desc| format!("it embeds {v4}, which is in {desc}"))
        }),
    }
}

fn describe_blocked(ip: IpAddr) -> String {
    match blocked(ip) {
        Some(desc) if desc.starts_with("it ") => desc,
        Some(desc) => format!("it is in {desc}"),
        None => "it is not public".to_string(),
    }
}

/// What a delivery kept of a response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyExcerpt {
    /// The first bytes of the body, lossy UTF-8, cut at a character boundary.
    pub excerpt: String,
    /// Bytes read, at most the cap.
    pub bytes_read: usize,
    /// Whether the body went on past the cap and reading stopped there.
    pub truncated: bool,
}

/// Reads at most `cap` bytes of a response body, chunk by chunk, and keeps only the first
/// `excerpt_len` of them (see [`BODY_CAP`] and [`EXCERPT_BYTES`]). Reading stops at the cap, so
/// an endless body costs no more than the cap; the rest is dropped with the connection.
pub async fn read_body_capped(
    mut response: reqwest::Response,
    cap: usize,
    excerpt_len: usize,
) -> reqwest::Result<BodyExcerpt> {
    let keep = excerpt_len.min(cap);
    let mut head: Vec<u8> = Vec::with_capacity(keep);
    let mut seen = 0usize;
    let mut truncated = false;
    while let Some(chunk) = response.chunk().await? {
        if head.len() < keep {
            let take = (keep - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
        }
        seen = seen.saturating_add(chunk.len());
        if seen > cap {
            truncated = true;
            break;
        }
    }
    Ok(BodyExcerpt { excerpt: lossy_prefix(&head), bytes_read: seen.min(cap), truncated })
}

/// Lossy UTF-8 that drops a character cut in half at the end instead of showing U+FFFD, with
/// control characters (NUL, which Postgres cannot store, included) replaced by U+FFFD too:
/// whatever bytes a receiver answers, the excerpt can be stored and shown.
fn lossy_prefix(bytes: &[u8]) -> String {
    let mut end = bytes.len();
    // Walk back to the start of the last character; drop it if the cut left it short.
    for back in 1..=bytes.len().min(4) {
        let lead = bytes[bytes.len() - back];
        if lead & 0xC0 != 0x80 {
            let width = match lead {
                0xC0..=0xDF => 2,
                0xE0..=0xEF => 3,
                0xF0..=0xF7 => 4,
                _ => 1,
            };
            if width > back {
                end = bytes.len() - back;
            }
            break;
        }
    }
    text::scrub(&String::from_utf8_lossy(&bytes[..end])).into_owned()
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use axum::body::{Body, Bytes};
    use axum::http::{header, HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::get;
    use axum::Router;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// The DNS the table sees. Names ending in `.test` are reserved and never real.
    fn table_resolver() -> StaticResolver {
        StaticResolver::new()
            .with("example.com", &[ip("93.184.215.14")])
            .with("localhost.example.com", &[ip("93.184.215.14")])
            .with("notlocalhost", &[ip("8.8.4.4")])
            .with("metadata.google.internal.evil.test", &[ip("8.8.4.4")])
            .with("management.azure.com", &[ip("20.38.97.1")])
            .with("xn--bcher-kva.test", &[ip("8.8.4.4")])
            // Records a delivery must never see if names are blocked before DNS.
            .with("metadata.google.internal", &[ip("8.8.8.8")])
            .with("localhost", &[ip("127.0.0.1")])
            .with("rebind.test", &[ip("10.0.0.5")])
            .with("127.0.0.1.nip.test", &[ip("127.0.0.1")])
            .with("imds.test", &[ip("169.254.169.254")])
            .with("azure-wire.test", &[ip("168.63.129.16")])
            .with("alibaba.test", &[ip("100.100.100.200")])
            .with("cgnat-edge.test", &[ip("100.63.255.255")])
            .with("mixed.test", &[ip("8.8.8.8"), ip("10.0.0.1")])
            .with("mixed-last.test", &[ip("8.8.8.8"), ip("1.1.1.1"), ip("192.168.1.1")])
            .with("mixed-v6.test", &[ip("8.8.8.8"), ip("::1")])
            .with("mapped.test", &[ip("::ffff:169.254.169.254")])
            .with("ula.test", &[ip("fd00:ec2::254")])
            .with("nat64.test", &[ip("64:ff9b::a9fe:a9fe")])
            .with("nat64-local.test", &[ip("8.8.8.8"), ip("64:ff9b:1::808:808")])
            .with("teredo.test", &[ip("8.8.8.8"), ip("2001:0:4136:e378:8000:63bf:f7f7:f7f7")])
            .with("dual.test", &[ip("8.8.8.8"), ip("2606:4700:4700::1111")])
            .with("v6only.test", &[ip("2606:4700:4700::1111")])
            .with("empty.test", &[])
            .with("hooks.internal.test", &[ip("10.1.2.3")])
            .with("evil.test", &[ip("127.0.0.1")])
    }

    fn table_allowlist() -> Allowlist {
        Allowlist::parse("127.0.0.1:9000, localhost:8080, hooks.internal.test:443, [::1]:8443")
            .unwrap()
    }

    /// `(url, expected)`: `ok ADDR` is the exact socket address connected to; otherwise the
    /// reason code, then the blocked address where there is one.
    const TABLE: &[(&str, &str)] = &[
        // Schemes.
        ("https://example.com/hook", "ok 93.184.215.14:443"),
        ("http://example.com/hook", "ok 93.184.215.14:80"),
        ("http://example.com:8080/x", "ok 93.184.215.14:8080"),
        ("ftp://example.com/", "bad_scheme"),
        ("file:///etc/passwd", "bad_scheme"),
        ("gopher://example.com:70/_x", "bad_scheme"),
        ("ws://example.com/", "bad_scheme"),
        ("javascript:alert(1)", "bad_scheme"),
        ("data:text/plain,hi", "bad_scheme"),
        ("example.com/hook", "invalid_url"),
        ("//example.com/hook", "invalid_url"),
        ("http://example.com:0/", "invalid_url"),
        ("http://example.com:65536/", "invalid_url"),
        ("http://", "invalid_url"),
        // Whitespace, control and invisible characters anywhere.
        ("http://exa\tmple.com/", "control_or_whitespace"),
        ("http://example.com/\t", "control_or_whitespace"),
        ("http://127.0.0.1\n/", "control_or_whitespace"),
        ("http://example.com/\r\nX-Injected: 1", "control_or_whitespace"),
        (" http://example.com/", "control_or_whitespace"),
        ("http://example.com/ ", "control_or_whitespace"),
        ("http://example.com/\0", "control_or_whitespace"),
        ("http://example.com/\u{7f}", "control_or_whitespace"),
        ("http://example.com/\u{85}", "control_or_whitespace"),
        ("http://example.com\u{a0}/", "control_or_whitespace"),
        ("http://example.com\u{3000}/", "control_or_whitespace"),
        ("http://local\u{200b}host/", "control_or_whitespace"),
        ("http://local\u{ad}host/", "control_or_whitespace"),
        ("http://example.com/\u{202e}gpj.exe", "control_or_whitespace"),
        // Percent-encoding: decoded in the host and judged, inert in the path.
        ("http://127.0.0.1%00.example.com/", "invalid_url"),
        ("http://example.com%0a/", "invalid_url"),
        ("http://%6c%6f%63%61%6c%68%6f%73%74/", "blocked_host_name"),
        ("http://%31%32%37.0.0.1/", "blocked_address 127.0.0.1"),
        ("http://example.com/%00%0d%0a", "ok 93.184.215.14:80"),
        // Userinfo and `@` tricks.
        ("http://user@example.com/", "userinfo"),
        ("http://user:pw@example.com/", "userinfo"),
        ("http://example.com@127.0.0.1/", "userinfo"),
        ("http://@example.com/", "userinfo"),
        ("http://:@example.com/", "userinfo"),
        ("http://example.com\\@127.0.0.1/", "userinfo"),
        ("http://example.com%40127.0.0.1/", "invalid_url"),
        ("http://example.com/?next=a@127.0.0.1", "ok 93.184.215.14:80"),
        ("http://example.com#@127.0.0.1", "ok 93.184.215.14:80"),
        // IPv4 spellings, normalized by the parser.
        ("http://2130706433/", "blocked_address 127.0.0.1"),
        ("http://0177.0.0.1/", "blocked_address 127.0.0.1"),
        ("http://0x7f.0.0.1/", "blocked_address 127.0.0.1"),
        ("http://0x7f000001/", "blocked_address 127.0.0.1"),
        ("http://017700000001/", "blocked_address 127.0.0.1"),
        ("http://127.1/", "blocked_address 127.0.0.1"),
        ("http://127.0.1/", "blocked_address 127.0.0.1"),
        ("http://0/", "blocked_address 0.0.0.0"),
        ("http://0x0a.1/", "blocked_address 10.0.0.1"),
        ("http://0xa9fea9fe/", "blocked_address 169.254.169.254"),
        ("http://127.0.0.1./", "blocked_address 127.0.0.1"),
        ("http://127.0.0.1../", "blocked_address 127.0.0.1"),
        ("http://\u{ff11}\u{ff12}\u{ff17}.0.0.1/", "blocked_address 127.0.0.1"),
        ("http://\u{2460}\u{2461}\u{2466}.0.0.1/", "blocked_address 127.0.0.1"),
        ("http://256.0.0.1/", "invalid_url"),
        ("http://134744072/", "ok 8.8.8.8:80"),
        ("http://8.8.8.8/", "ok 8.8.8.8:80"),
        // Every blocked IPv4 range, with its edges.
        ("http://0.255.255.255/", "blocked_address 0.255.255.255"),
        ("http://1.0.0.0/", "ok 1.0.0.0:80"),
        ("http://9.255.255.255/", "ok 9.255.255.255:80"),
        ("http://10.0.0.0/", "blocked_address 10.0.0.0"),
        ("http://10.255.255.255/", "blocked_address 10.255.255.255"),
        ("http://11.0.0.0/", "ok 11.0.0.0:80"),
        ("http://100.63.255.255/", "ok 100.63.255.255:80"),
        ("http://100.64.0.0/", "blocked_address 100.64.0.0"),
        ("http://100.127.255.255/", "blocked_address 100.127.255.255"),
        ("http://100.128.0.0/", "ok 100.128.0.0:80"),
        ("http://100.100.100.200/latest/meta-data/", "blocked_address 100.100.100.200"),
        ("http://126.255.255.255/", "ok 126.255.255.255:80"),
        ("http://127.0.0.0/", "blocked_address 127.0.0.0"),
        ("http://127.255.255.254/", "blocked_address 127.255.255.254"),
        ("http://128.0.0.0/", "ok 128.0.0.0:80"),
        ("http://169.253.255.255/", "ok 169.253.255.255:80"),
        ("http://169.254.0.0/", "blocked_address 169.254.0.0"),
        ("http://169.254.169.254/latest/meta-data/", "blocked_address 169.254.169.254"),
        ("http://169.255.0.0/", "ok 169.255.0.0:80"),
        ("http://172.15.255.255/", "ok 172.15.255.255:80"),
        ("http://172.16.0.0/", "blocked_address 172.16.0.0"),
        ("http://172.31.255.255/", "blocked_address 172.31.255.255"),
        ("http://172.32.0.0/", "ok 172.32.0.0:80"),
        ("http://191.255.255.255/", "ok 191.255.255.255:80"),
        ("http://192.0.0.0/", "blocked_address 192.0.0.0"),
        ("http://192.0.0.192/", "blocked_address 192.0.0.192"),
        ("http://192.0.0.255/", "blocked_address 192.0.0.255"),
        ("http://192.0.1.0/", "ok 192.0.1.0:80"),
        ("http://192.167.255.255/", "ok 192.167.255.255:80"),
        ("http://192.168.0.0/", "blocked_address 192.168.0.0"),
        ("http://192.168.255.255/", "blocked_address 192.168.255.255"),
        ("http://192.169.0.0/", "ok 192.169.0.0:80"),
        ("http://198.17.255.255/", "ok 198.17.255.255:80"),
        ("http://198.18.0.0/", "blocked_address 198.18.0.0"),
        ("http://198.19.255.255/", "blocked_address 198.19.255.255"),
        ("http://198.20.0.0/", "ok 198.20.0.0:80"),
        ("http://168.63.129.15/", "ok 168.63.129.15:80"),
        ("http://168.63.129.16/", "blocked_address 168.63.129.16"),
        ("http://168.63.129.17/", "ok 168.63.129.17:80"),
        ("http://223.255.255.255/", "ok 223.255.255.255:80"),
        ("http://224.0.0.0/", "blocked_address 224.0.0.0"),
        ("http://239.255.255.255/", "blocked_address 239.255.255.255"),
        ("http://240.0.0.0/", "blocked_address 240.0.0.0"),
        ("http://255.255.255.255/", "blocked_address 255.255.255.255"),
        // IPv6 literals.
        ("http://[::1]/", "blocked_address ::1"),
        ("http://[0:0:0:0:0:0:0:1]/", "blocked_address ::1"),
        ("http://[::]/", "blocked_address ::"),
        ("http://[fc00::1]/", "blocked_address fc00::1"),
        ("http://[fdff:ffff::1]/", "blocked_address fdff:ffff::1"),
        ("http://[fd00:ec2::254]/", "blocked_address fd00:ec2::254"),
        ("http://[fe80::1]/", "blocked_address fe80::1"),
        ("http://[febf:ffff::1]/", "blocked_address febf:ffff::1"),
        ("http://[fec0::1]/", "blocked_address fec0::1"),
        ("http://[ff02::1]/", "blocked_address ff02::1"),
        ("http://[FF05::2]/", "blocked_address ff05::2"),
        ("http://[::1%25eth0]/", "invalid_url"),
        ("http://[2606:4700:4700::1111]/", "ok [2606:4700:4700::1111]:80"),
        ("https://[2001:4860:4860::8888]:8443/", "ok [2001:4860:4860::8888]:8443"),
        // IPv4 embedded in IPv6: mapped, translated, compatible, 6to4, NAT64.
        ("http://[::ffff:127.0.0.1]/", "blocked_address ::ffff:127.0.0.1"),
        ("http://[0:0:0:0:0:ffff:7f00:1]/", "blocked_address ::ffff:127.0.0.1"),
        ("http://[::ffff:a9fe:a9fe]/", "blocked_address ::ffff:169.254.169.254"),
        ("http://[::ffff:8.8.8.8]/", "ok [::ffff:8.8.8.8]:80"),
        ("http://[::ffff:0:a00:1]/", "blocked_address ::ffff:0:a00:1"),
        ("http://[::127.0.0.1]/", "blocked_address ::7f00:1"),
        ("http://[::a9fe:a9fe]/", "blocked_address ::a9fe:a9fe"),
        ("http://[::0.0.0.2]/", "blocked_address ::2"),
        ("http://[2002:7f00:1::]/", "blocked_address 2002:7f00:1::"),
        ("http://[2002:a9fe:a9fe::1]/", "blocked_address 2002:a9fe:a9fe::1"),
        ("http://[2002:c0a8:101::]/", "blocked_address 2002:c0a8:101::"),
        ("http://[2002:808:808::1]/", "ok [2002:808:808::1]:80"),
        ("http://[64:ff9b::127.0.0.1]/", "blocked_address 64:ff9b::7f00:1"),
        ("http://[64:ff9b::a9fe:a9fe]/", "blocked_address 64:ff9b::a9fe:a9fe"),
        ("http://[64:ff9b::808:808]/", "ok [64:ff9b::808:808]:80"),
        ("http://[64:ff9b::ffff:ffff]/", "blocked_address 64:ff9b::ffff:ffff"),
        ("http://[64:ff9b::1:0:0]/", "ok [64:ff9b::1:0:0]:80"),
        // Local-use NAT64 64:ff9b:1::/48, whole: public IPv4 inside it too, at any offset.
        (
            "http://[64:ff9b:0:ffff:ffff:ffff:ffff:ffff]/",
            "ok [64:ff9b:0:ffff:ffff:ffff:ffff:ffff]:80",
        ),
        ("http://[64:ff9b:1::]/", "blocked_address 64:ff9b:1::"),
        ("http://[64:ff9b:1::a00:1]/", "blocked_address 64:ff9b:1::a00:1"),
        ("http://[64:ff9b:1:ffff::a9fe:a9fe]/", "blocked_address 64:ff9b:1:ffff::a9fe:a9fe"),
        ("http://[64:ff9b:1::808:808]/", "blocked_address 64:ff9b:1::808:808"),
        ("http://[64:ff9b:1:808:808::]/", "blocked_address 64:ff9b:1:808:808::"),
        (
            "http://[64:ff9b:1:ffff:ffff:ffff:ffff:ffff]/",
            "blocked_address 64:ff9b:1:ffff:ffff:ffff:ffff:ffff",
        ),
        ("http://[64:ff9b:2::]/", "ok [64:ff9b:2::]:80"),
        // Teredo 2001::/32, whole: server 65.54.227.120, client 8.8.8.8 inverted (f7f7:f7f7),
        // or a client inside (127.0.0.1 inverted is 80ff:fffe).
        (
            "http://[2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff]/",
            "ok [2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:80",
        ),
        ("http://[2001::]/", "blocked_address 2001::"),
        (
            "http://[2001:0:4136:e378:8000:63bf:f7f7:f7f7]/",
            "blocked_address 2001:0:4136:e378:8000:63bf:f7f7:f7f7",
        ),
        ("http://[2001:0:4136:e378::80ff:fffe]/", "blocked_address 2001:0:4136:e378::80ff:fffe"),
        ("http://[2001:0:a00:1::]/", "blocked_address 2001:0:a00:1::"),
        (
            "http://[2001:0:ffff:ffff:ffff:ffff:ffff:ffff]/",
            "blocked_address 2001:0:ffff:ffff:ffff:ffff:ffff:ffff",
        ),
        ("http://[2001:1::]/", "ok [2001:1::]:80"),
        // Other translation forms keep judging the IPv4 address they embed.
        ("http://[::ffff:0:808:808]/", "ok [::ffff:0:808:808]:80"),
        ("http://[::808:808]/", "ok [::808:808]:80"),
        ("http://[2002:a00:1::]/", "blocked_address 2002:a00:1::"),
        // Local and metadata names: case, trailing dots, IDNA look-alikes; no DNS asked.
        ("http://localhost/", "blocked_host_name"),
        ("http://LOCALHOST/", "blocked_host_name"),
        ("http://localhost./", "blocked_host_name"),
        ("http://localhost../", "blocked_host_name"),
        ("http://\u{24db}ocalhost/", "blocked_host_name"),
        (
            "http://\u{ff4c}\u{ff4f}\u{ff43}\u{ff41}\u{ff4c}\u{ff48}\u{ff4f}\u{ff53}\u{ff54}/",
            "blocked_host_name",
        ),
        ("http://foo.localhost/", "blocked_host_name"),
        ("http://a.b.LOCALHOST./", "blocked_host_name"),
        ("http://localhost.localdomain/", "blocked_host_name"),
        ("http://notlocalhost/", "ok 8.8.4.4:80"),
        ("http://localhost.example.com/", "ok 93.184.215.14:80"),
        ("http://instance-data/latest/meta-data/", "blocked_host_name"),
        ("http://instance-data.ec2.internal/", "blocked_host_name"),
        ("http://metadata.google.internal/computeMetadata/v1/", "blocked_host_name"),
        ("http://metadata.google.internal./computeMetadata/v1/", "blocked_host_name"),
        ("http://METADATA.Google.Internal/", "blocked_host_name"),
        ("http://metadata/computeMetadata/v1/", "blocked_host_name"),
        ("http://metadata.goog/", "blocked_host_name"),
        ("http://metadata.azure.com/metadata/instance", "blocked_host_name"),
        ("https://management.azure.com/subscriptions", "ok 20.38.97.1:443"),
        ("http://metadata.oraclecloud.com/opc/v2/instance/", "blocked_host_name"),
        ("http://metadata.tencentyun.com/latest/meta-data/", "blocked_host_name"),
        ("https://api.metadata.cloud.ibm.com/instance_identity/v1/token", "blocked_host_name"),
        ("http://metadata.google.internal.evil.test/", "ok 8.8.4.4:80"),
        ("http://b\u{fc}cher.test/", "ok 8.8.4.4:80"),
        // Public names resolving to blocked addresses; mixed answers; failures.
        ("http://rebind.test/", "blocked_resolution 10.0.0.5"),
        ("http://127.0.0.1.nip.test/", "blocked_resolution 127.0.0.1"),
        ("http://imds.test/", "blocked_resolution 169.254.169.254"),
        ("http://azure-wire.test/", "blocked_resolution 168.63.129.16"),
        ("http://alibaba.test/", "blocked_resolution 100.100.100.200"),
        ("http://cgnat-edge.test/", "ok 100.63.255.255:80"),
        ("http://mixed.test/", "blocked_resolution 10.0.0.1"),
        ("http://mixed-last.test/", "blocked_resolution 192.168.1.1"),
        ("http://mixed-v6.test/", "blocked_resolution ::1"),
        ("http://mapped.test/", "blocked_resolution ::ffff:169.254.169.254"),
        ("http://ula.test/", "blocked_resolution fd00:ec2::254"),
        ("http://nat64.test/", "blocked_resolution 64:ff9b::a9fe:a9fe"),
        ("http://nat64-local.test/", "blocked_resolution 64:ff9b:1::808:808"),
        ("http://teredo.test/", "blocked_resolution 2001:0:4136:e378:8000:63bf:f7f7:f7f7"),
        ("http://dual.test/", "ok 8.8.8.8:80"),
        ("https://v6only.test/", "ok [2606:4700:4700::1111]:443"),
        ("http://nxdomain.test/", "unresolvable"),
        ("http://empty.test/", "unresolvable"),
        // The allowlist opens exactly the host:port it names.
        ("http://127.0.0.1:9000/x", "ok 127.0.0.1:9000"),
        ("https://127.0.0.1:9000/x", "ok 127.0.0.1:9000"),
        ("http://2130706433:9000/x", "ok 127.0.0.1:9000"),
        ("http://127.0.0.1:9001/", "blocked_address 127.0.0.1"),
        ("http://127.0.0.1/", "blocked_address 127.0.0.1"),
        ("http://127.0.0.2:9000/", "blocked_address 127.0.0.2"),
        ("http://[::ffff:127.0.0.1]:9000/", "blocked_address ::ffff:127.0.0.1"),
        ("http://evil.test:9000/", "blocked_resolution 127.0.0.1"),
        ("http://localhost:8080/", "ok 127.0.0.1:8080"),
        ("http://LOCALHOST.:8080/", "ok 127.0.0.1:8080"),
        ("http://localhost:8081/", "blocked_host_name"),
        ("https://localhost/", "blocked_host_name"),
        ("http://[::1]:8443/", "ok [::1]:8443"),
        ("http://[::1]:8444/", "blocked_address ::1"),
        ("https://hooks.internal.test/", "ok 10.1.2.3:443"),
        ("https://hooks.internal.test:443/", "ok 10.1.2.3:443"),
        ("http://hooks.internal.test/", "blocked_resolution 10.1.2.3"),
        ("http://user@127.0.0.1:9000/", "userinfo"),
    ];

    /// Which refusals the DNS-free step already makes.
    fn is_static(reason: &str) -> bool {
        !matches!(reason, "blocked_resolution" | "unresolvable")
    }

    fn judge(
        url: &str,
        expected: &str,
        validated: &Result<Target, SsrfError>,
        checked: &Result<Checked, SsrfError>,
    ) -> Option<String> {
        let (want, want_addr) = expected.split_once(' ').unwrap_or((expected, ""));
        let got = match checked {
            Ok(c) => format!("ok {}", c.addr()),
            Err(e) => match e.address() {
                Some(a) => format!("{} {a}", e.reason()),
                None => e.reason().to_string(),
            },
        };
        if got != expected {
            return Some(format!("{url:?}: expected `{expected}`, got `{got}` ({checked:?})"));
        }
        // The step at creation refuses the same, or passes what only DNS can refuse.
        let static_ok = match validated {
            Ok(_) => want == "ok" || !is_static(want),
            Err(e) => {
                is_static(want)
                    && e.reason() == want
                    && e.address().map(|a| a.to_string()).unwrap_or_default() == want_addr
            }
        };
        (!static_ok).then(|| format!("{url:?}: validate gave {validated:?} but check gave `{got}`"))
    }

    #[tokio::test]
    async fn ssrf_url_table() {
        assert!(TABLE.len() >= 50);
        let guard = Guard::new(table_allowlist(), Arc::new(table_resolver()));
        let mut failures = Vec::new();
        for (url, expected) in TABLE {
            let validated = guard.validate(url);
            let checked = guard.check(url).await;
            if let Some(failure) = judge(url, expected, &validated, &checked) {
                failures.push(failure);
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} cases failed:\n{}",
            failures.len(),
            TABLE.len(),
            failures.join("\n")
        );
    }

    #[tokio::test]
    async fn blocked_names_are_refused_before_any_lookup() {
        let resolver = Arc::new(table_resolver());
        let guard = Guard::new(Allowlist::default(), resolver.clone());
        for url in ["http://metadata.google.internal/", "http://localhost./", "http://x.localhost/"]
        {
            assert_eq!(guard.check(url).await.unwrap_err().reason(), "blocked_host_name");
        }
        assert_eq!(resolver.lookups(), 0);
        guard.check("http://example.com/").await.unwrap();
        assert_eq!(resolver.lookups(), 1);
    }

    #[tokio::test]
    async fn normalized_url_is_what_was_judged() {
        let guard = Guard::new(table_allowlist(), Arc::new(table_resolver()));
        let cases = [
            ("HTTP://EXAMPLE.COM./A?b=C#d", "http://example.com/A?b=C#d", "example.com"),
            ("http://LOCALHOST.:8080/x", "http://localhost:8080/x", "localhost"),
            ("http://0x7f.1:9000/", "http://127.0.0.1:9000/", "127.0.0.1"),
            ("http://127.0.0.1..:9000/", "http://127.0.0.1:9000/", "127.0.0.1"),
            ("https://b\u{fc}cher.test/", "https://xn--bcher-kva.test/", "xn--bcher-kva.test"),
            ("http://[0:0:0:0:0:0:0:1]:8443/", "http://[::1]:8443/", "[::1]"),
        ];
        for (raw, url, host) in cases {
            let checked = guard.check(raw).await.unwrap();
            assert_eq!(checked.url().as_str(), url, "{raw}");
            assert_eq!(checked.host().to_string(), host, "{raw}");
        }
        let target = guard.validate("https://example.com/").unwrap();
        assert_eq!((target.port(), target.host()), (443, &TargetHost::Name("example.com".into())));
    }

    #[tokio::test]
    async fn rebinding_is_pinned_then_refused_at_delivery() {
        let resolver = Arc::new(StaticResolver::new().with_sequence(
            "rebind.example.test",
            vec![vec![ip("93.184.215.14")], vec![ip("10.0.0.7")]],
        ));
        let guard = Guard::new(Allowlist::default(), resolver.clone());
        let target = guard.validate("https://rebind.example.test/hook").unwrap();

        let first = guard.resolve(&target).await.unwrap();
        assert_eq!(first.addr(), "93.184.215.14:443".parse().unwrap());
        // The client is pinned to the checked address: building it asks no resolver.
        let _client = first.pinned_client().unwrap();
        assert_eq!(resolver.lookups(), 1);
        assert_eq!(first.addr(), "93.184.215.14:443".parse().unwrap());

        // At the next delivery the name now points inside: refused.
        let second = guard.resolve(&target).await.unwrap_err();
        assert_eq!(
            second,
            SsrfError::BlockedResolution {
                host: "rebind.example.test".into(),
                addr: ip("10.0.0.7")
            }
        );
        assert_eq!(resolver.lookups(), 2);
    }

    #[tokio::test]
    async fn allowlist_changes_apply_at_delivery() {
        let resolver: Arc<dyn Resolver> = Arc::new(StaticResolver::new());
        let open = Guard::new(Allowlist::parse("127.0.0.1:9000").unwrap(), resolver.clone());
        let target = open.validate("http://127.0.0.1:9000/").unwrap();
        let closed = Guard::new(Allowlist::default(), resolver);
        assert_eq!(
            closed.resolve(&target).await.unwrap_err(),
            SsrfError::BlockedAddress(ip("127.0.0.1"))
        );
        assert!(open.resolve(&target).await.unwrap().allowlisted());
    }

    #[test]
    fn allowlist_parses_and_normalizes() {
        assert!(Allowlist::parse("").unwrap().is_empty());
        assert!(Allowlist::parse("  ").unwrap().is_empty());
        let list: Allowlist =
            " 127.0.0.1:9000,LOCALHOST.:8080 ,[::1]:8443,0x7f.1:9000,".parse().unwrap();
        assert_eq!(
            list.entries(),
            &[
                (TargetHost::Ip(ip("127.0.0.1")), 9000),
                (TargetHost::Name("localhost".into()), 8080),
                (TargetHost::Ip(ip("::1")), 8443),
            ]
        );
        assert!(list.permits(&TargetHost::Name("localhost".into()), 8080));
        assert!(!list.permits(&TargetHost::Name("localhost".into()), 8081));
        assert!(!list.permits(&TargetHost::Ip(ip("::ffff:127.0.0.1")), 9000));
    }

    #[test]
    fn allowlist_errors_name_the_entry() {
        for bad in [
            "127.0.0.1",
            "localhost",
            "::1:9000",
            "[::1",
            "[::1]9000",
            "[::1]",
            "http://127.0.0.1:9000",
            "127.0.0.1:9000/x",
            "user@127.0.0.1:9000",
            "127.0.0.1:0",
            "127.0.0.1:70000",
            "127.0.0.1:http",
            ":9000",
            "exa mple.com:80",
            "a.com:80,b.com",
        ] {
            let err = Allowlist::parse(bad).unwrap_err();
            let entry = bad.rsplit(',').next().unwrap();
            assert!(err.contains(&format!("`{entry}`")), "{bad}: {err}");
            assert!(err.contains("host:port"), "{bad}: {err}");
        }
    }

    #[test]
    fn messages_fit_a_422_and_hide_resolved_addresses() {
        let err = SsrfError::BlockedResolution { host: "rebind.test".into(), addr: ip("10.0.0.5") };
        assert!(!err.to_string().contains("10.0.0.5"), "{err}");
        assert_eq!(
            SsrfError::BlockedAddress(ip("127.0.0.1")).to_string(),
            "webhook address 127.0.0.1 is not allowed: it is in loopback (127.0.0.0/8)"
        );
        assert_eq!(
            SsrfError::BlockedAddress(ip("::ffff:169.254.169.254")).to_string(),
            "webhook address ::ffff:169.254.169.254 is not allowed: it embeds 169.254.169.254, \
             which is in link-local, where cloud metadata lives (169.254.0.0/16)"
        );
        assert_eq!(
            SsrfError::BadScheme("ftp".into()).to_string(),
            "webhook URL scheme `ftp` is not allowed; use http or https"
        );
    }

    #[tokio::test]
    async fn system_resolver_answers_from_the_hosts_file() {
        // `localhost` comes from /etc/hosts, so this needs no network.
        let open = Guard::system(Allowlist::parse("localhost:8080").unwrap());
        let checked = open.check("http://localhost:8080/").await.unwrap();
        assert!(checked.addr().ip().is_loopback(), "{checked:?}");
        assert_eq!(checked.addr().port(), 8080);
        let closed = Guard::system(Allowlist::default());
        assert_eq!(
            closed.check("http://localhost:8080/").await.unwrap_err(),
            SsrfError::BlockedHostName("localhost".into())
        );
    }

    async fn serve(router: Router) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        addr
    }

    fn test_router() -> Router {
        Router::new()
            .route(
                "/echo-host",
                get(|headers: HeaderMap| async move {
                    headers
                        .get(header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                }),
            )
            .route(
                "/redirect",
                get(|| async {
                    (
                        StatusCode::FOUND,
                        [(header::LOCATION, "http://169.254.169.254/latest/meta-data/")],
                    )
                }),
            )
            .route("/big", get(|| async { "a".repeat(10_000) }))
            .route("/small", get(|| async { "hello" }))
            .route("/utf8", get(|| async { "\u{e9}".repeat(300) }))
            .route(
                "/endless",
                get(|| async {
                    let chunks = futures::stream::repeat_with(|| {
                        Ok::<_, Infallible>(Bytes::from_static(&[b'x'; 1024]))
                    });
                    Body::from_stream(chunks).into_response()
                }),
            )
    }

    /// A guard that opens the local test server under a fake name, and that name's checked
    /// verdict. The name resolves to the listener first and elsewhere afterwards, so a client
    /// that looked it up again would miss the server.
    async fn pinned_to_local(path: &str) -> (Arc<StaticResolver>, Checked, SocketAddr) {
        let server = serve(test_router()).await;
        let resolver =
            Arc::new(StaticResolver::new().with_sequence(
                "hooks.example.test",
                vec![vec![server.ip()], vec![ip("127.0.0.2")]],
            ));
        let allow = Allowlist::parse(&format!("hooks.example.test:{}", server.port())).unwrap();
        let guard = Guard::new(allow, resolver.clone());
        let checked = guard
            .check(&format!("http://hooks.example.test:{}{path}", server.port()))
            .await
            .unwrap();
        assert_eq!(checked.addr(), server);
        assert!(checked.allowlisted());
        (resolver, checked, server)
    }

    #[tokio::test]
    async fn pinned_client_connects_to_the_checked_address_with_the_name() {
        let (resolver, checked, server) = pinned_to_local("/echo-host").await;
        let client = checked.pinned_client().unwrap();
        let response = client.get(checked.url().clone()).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.text().await.unwrap(), format!("hooks.example.test:{}", server.port()));
        // The client never consulted the scripted resolver, whose next answer is elsewhere.
        assert_eq!(resolver.lookups(), 1);

        // Any other name fails inside the client: it has no DNS of its own.
        let other = format!("http://other.example.test:{}/echo-host", server.port());
        let err = client.get(other).send().await.unwrap_err();
        assert!(err.is_connect() || err.is_request(), "{err:?}");
    }

    #[tokio::test]
    async fn pinned_client_works_for_ip_literals() {
        let server = serve(test_router()).await;
        let allow = Allowlist::parse(&format!("127.0.0.1:{}", server.port())).unwrap();
        let guard = Guard::new(allow, Arc::new(StaticResolver::new()));
        let checked =
            guard.check(&format!("http://127.0.0.1:{}/echo-host", server.port())).await.unwrap();
        assert_eq!(checked.addr(), server);
        let body =
            checked.pinned_client().unwrap().get(checked.url().clone()).send().await.unwrap();
        assert_eq!(body.text().await.unwrap(), format!("127.0.0.1:{}", server.port()));
    }

    #[tokio::test]
    async fn redirects_are_returned_not_followed() {
        let (_, checked, _) = pinned_to_local("/redirect").await;
        let response =
            checked.pinned_client().unwrap().get(checked.url().clone()).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FOUND);
        assert_eq!(
            response.headers().get(header::LOCATION).unwrap(),
            "http://169.254.169.254/latest/meta-data/"
        );
    }

    async fn fetch(path: &str) -> reqwest::Response {
        let (_, checked, _) = pinned_to_local(path).await;
        checked.pinned_client().unwrap().get(checked.url().clone()).send().await.unwrap()
    }

    #[tokio::test]
    async fn body_reader_caps_and_excerpts() {
        let big = read_body_capped(fetch("/big").await, 1000, EXCERPT_BYTES).await.unwrap();
        assert_eq!(big.excerpt, "a".repeat(EXCERPT_BYTES));
        assert_eq!((big.bytes_read, big.truncated), (1000, true));

        let small = read_body_capped(fetch("/small").await, BODY_CAP, EXCERPT_BYTES).await.unwrap();
        assert_eq!(small, BodyExcerpt { excerpt: "hello".into(), bytes_read: 5, truncated: false });

        let exact = read_body_capped(fetch("/small").await, 5, 3).await.unwrap();
        assert_eq!(exact, BodyExcerpt { excerpt: "hel".into(), bytes_read: 5, truncated: false });

        // 511 bytes of two-byte characters: the half character at the cut is dropped.
        let utf8 = read_body_capped(fetch("/utf8").await, BODY_CAP, 511).await.unwrap();
        assert_eq!(utf8.excerpt, "\u{e9}".repeat(255));
        assert_eq!((utf8.bytes_read, utf8.truncated), (600, false));
    }

    #[tokio::test]
    async fn body_reader_stops_an_endless_body_at_the_cap() {
        let read = tokio::time::timeout(
            Duration::from_secs(5),
            read_body_capped(fetch("/endless").await, 8 * 1024, EXCERPT_BYTES),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(read.excerpt, "x".repeat(EXCERPT_BYTES));
        assert_eq!((read.bytes_read, read.truncated), (8 * 1024, true));
    }

    #[test]
    fn lossy_prefix_trims_only_a_cut_character() {
        assert_eq!(lossy_prefix(b"abc"), "abc");
        assert_eq!(lossy_prefix("a\u{20ac}".as_bytes()), "a\u{20ac}");
        assert_eq!(lossy_prefix(&"a\u{20ac}".as_bytes()[..3]), "a");
        assert_eq!(lossy_prefix(&"\u{1f600}".as_bytes()[..3]), "");
        assert_eq!(lossy_prefix(b"\xffa"), "\u{fffd}a");
        assert_eq!(lossy_prefix(b"a\0b\x1b[1m\r\n"), "a\u{fffd}b\u{fffd}[1m\r\n");
        assert_eq!(lossy_prefix(b""), "");
    }
}
