//! Transport security (issue #13): HTTPS and WSS with rustls against certificates made here
//! (rcgen), checked from outside with Python's `ssl` (OpenSSL) and with rustls clients; the
//! certificate reload on SIGHUP and on a file change; the plain-HTTP redirect listener; HSTS,
//! the security headers of every answer, CORS; `check-config` on good and bad certificates.
//!
//! Nothing here depends on the database: the servers run on SQLite only.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use boardroom::config::Settings;
use boardroom::http::security::{CSP, HSTS};
use boardroom::server::{App, RunningServer};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{python, Backend, TestDatabase};

/// A certificate and its key, as PEM, with the files they were written to.
struct Pair {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

/// A self-signed certificate for 127.0.0.1 and localhost named `cn`, valid from `from` to `to`.
fn pair(cn: &str, from: (i32, u8, u8), to: (i32, u8, u8)) -> Pair {
    let mut params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
    params.not_after = rcgen::date_time_ymd(to.0, to.1, to.2);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Pair { cert_pem: cert.pem(), key_pem: key.serialize_pem(), der: cert.der().to_vec() }
}

/// A certificate valid from 2020 to 2100.
fn valid(cn: &str) -> Pair {
    pair(cn, (2020, 1, 1), (2100, 1, 1))
}

impl Pair {
    /// Writes the pair to `dir/cert.pem` and `dir/key.pem` (replacing them), returning the paths.
    fn write(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, &self.cert_pem).unwrap();
        std::fs::write(&key, &self.key_pem).unwrap();
        (cert, key)
    }
}

/// A server with `tune` applied, on SQLite.
struct Server {
    running: Option<RunningServer>,
    _database: TestDatabase,
}

impl Server {
    async fn start(tune: impl FnOnce(&mut Settings)) -> Server {
        let database = TestDatabase::create(Backend::Sqlite).await.unwrap();
        let mut settings = database.settings();
        tune(&mut settings);
        let running = App::build(settings).await.expect("build").spawn().await.expect("spawn");
        Server { running: Some(running), _database: database }
    }

    fn running(&self) -> &RunningServer {
        self.running.as_ref().unwrap()
    }

    fn addr(&self) -> SocketAddr {
        self.running().addr()
    }

    async fn stop(mut self) {
        assert!(self.running.take().unwrap().shutdown().await, "unclean shutdown");
    }
}

/// A TLS server whose certificate files live in `dir`.
async fn tls_server(dir: &Path, first: &Pair, tune: impl FnOnce(&mut Settings)) -> Server {
    let (cert, key) = first.write(dir);
    Server::start(|s| {
        s.tls_cert = Some(cert);
        s.tls_key = Some(key);
        tune(s);
    })
    .await
}

/// An HTTPS client that trusts exactly `pair`'s certificate, on a fresh connection each time
/// (`pool_max_idle_per_host(0)`), reporting the certificate it was served.
fn https_client(pair: &Pair) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pair.cert_pem.as_bytes()).unwrap())
        .tls_built_in_root_certs(false)
        .tls_info(true)
        .pool_max_idle_per_host(0)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The certificate a fresh TLS connection to `addr` is served (verification off: it is what
/// is being looked at).
async fn served_certificate(addr: SocketAddr) -> Vec<u8> {
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .tls_info(true)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let response = client.get(format!("https://{addr}/healthz")).send().await.unwrap();
    let info = response.extensions().get::<reqwest::tls::TlsInfo>().unwrap();
    info.peer_certificate().unwrap().to_vec()
}

/// Waits up to 10 s for new connections to be served `expected`.
async fn wait_for_certificate(addr: SocketAddr, expected: &Pair) {
    let started = Instant::now();
    while served_certificate(addr).await != expected.der {
        assert!(started.elapsed() < Duration::from_secs(10), "the new certificate never came");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What Python's `ssl` (OpenSSL) sees when it offers exactly one protocol version, ALPN `h2`
/// and `http/1.1`: `{"1.0": {"ok": false, "error": …}, "1.2": {"ok": true, "version": …,
/// "alpn": …}, …}`. The ciphers are opened up to security level 0 so that OpenSSL itself is
/// willing to offer TLS 1.0 and 1.1: a refusal then comes from the server.
fn python_handshakes(addr: SocketAddr) -> Value {
    let script = r#"
import json, socket, ssl, sys
host, port = sys.argv[1], int(sys.argv[2])
versions = {"1.0": ssl.TLSVersion.TLSv1, "1.1": ssl.TLSVersion.TLSv1_1,
            "1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
out = {}
for name, version in versions.items():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    ctx.minimum_version = version
    ctx.maximum_version = version
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    try:
        with socket.create_connection((host, port), timeout=10) as sock:
            with ctx.wrap_socket(sock) as tls:
                out[name] = {"ok": True, "version": tls.version(),
                             "alpn": tls.selected_alpn_protocol()}
    except (ssl.SSLError, OSError) as err:
        out[name] = {"ok": False, "error": str(err)}
print(json.dumps(out))
"#;
    let output = python()
        .args(["-c", script, &addr.ip().to_string(), &addr.port().to_string()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_tls_1_2_and_1_3_are_spoken_with_alpn_h2() {
    let dir = tempfile::tempdir().unwrap();
    let server = tls_server(dir.path(), &valid("boardroom-one"), |_| {}).await;
    let seen = python_handshakes(server.addr());
    for old in ["1.0", "1.1"] {
        assert_eq!(seen[old]["ok"], false, "{seen}");
        // An alert from the server, not OpenSSL declining to offer the version
        // (`NO_PROTOCOLS_AVAILABLE`, `UNSUPPORTED_PROTOCOL`).
        let error = seen[old]["error"].as_str().unwrap();
        assert!(error.contains("ALERT_HANDSHAKE_FAILURE"), "{seen}");
    }
    assert_eq!(seen["1.2"], json!({"ok": true, "version": "TLSv1.2", "alpn": "h2"}), "{seen}");
    assert_eq!(seen["1.3"], json!({"ok": true, "version": "TLSv1.3", "alpn": "h2"}), "{seen}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_answers_carry_hsts_and_the_security_headers_over_h2_and_http_1_1() {
    let dir = tempfile::tempdir().unwrap();
    let one = valid("boardroom-one");
    let server = tls_server(dir.path(), &one, |_| {}).await;
    let url = format!("https://{}/healthz", server.addr());
    let h2 = https_client(&one).get(&url).send().await.unwrap();
    assert_eq!(h2.version(), reqwest::Version::HTTP_2);
    let h1 = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(one.cert_pem.as_bytes()).unwrap())
        .http1_only()
        .build()
        .unwrap()
        .get(format!("https://{}/api/v1/no-such-route", server.addr()))
        .send()
        .await
        .unwrap();
    assert_eq!(h1.version(), reqwest::Version::HTTP_11);
    assert_eq!(h1.status(), 404, "errors carry them too");
    for response in [&h2, &h1] {
        let header = |name: &str| response.headers().get(name).unwrap().to_str().unwrap();
        assert_eq!(header("strict-transport-security"), HSTS);
        assert_eq!(HSTS, "max-age=63072000; includeSubDomains; preload");
        assert_security_headers(response.headers());
    }
    assert_eq!(h2.status(), 200);
    server.stop().await;
}

fn assert_security_headers(headers: &reqwest::header::HeaderMap) {
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"));
    assert_eq!(header("referrer-policy").as_deref(), Some("no-referrer"));
    assert_eq!(header("x-frame-options").as_deref(), Some("DENY"));
    let csp = header("content-security-policy").unwrap();
    assert_eq!(csp, CSP);
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_gets_hsts_only_from_a_trusted_proxy_that_saw_https() {
    let plain = Server::start(|_| {}).await;
    let behind = Server::start(|s| s.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()]).await;
    let client = reqwest::Client::new();
    let get = |server: &Server, proto: Option<&str>| {
        let mut request = client.get(format!("http://{}/healthz", server.addr()));
        if let Some(proto) = proto {
            request = request.header("x-forwarded-proto", proto);
        }
        request.send()
    };
    let hsts = |response: &reqwest::Response| {
        assert_security_headers(response.headers());
        response.headers().get("strict-transport-security").map(|v| v.to_str().unwrap().to_owned())
    };
    // The peer is not a trusted proxy: the header is the client's own word.
    assert_eq!(hsts(&get(&plain, Some("https")).await.unwrap()), None);
    assert_eq!(hsts(&get(&plain, None).await.unwrap()), None);
    // A trusted proxy that terminated TLS.
    assert_eq!(hsts(&get(&behind, Some("https")).await.unwrap()).as_deref(), Some(HSTS));
    // …and one that did not, or forwarded what a client claimed in front of it.
    assert_eq!(hsts(&get(&behind, Some("http")).await.unwrap()), None);
    assert_eq!(hsts(&get(&behind, Some("https, http")).await.unwrap()), None);
    assert_eq!(hsts(&get(&behind, None).await.unwrap()), None);
    plain.stop().await;
    behind.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redirect_listener_sends_pages_to_https_and_refuses_the_api() {
    let server = Server::start(|s| {
        s.http_redirect_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        s.public_url = Some("https://boardroom.test:8443/".parse().unwrap());
    })
    .await;
    let redirect = server.running().redirect_addr().unwrap();
    let client =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let url = |path: &str| format!("http://{redirect}{path}");
    for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
        let response = client
            .request(method.clone(), url("/boards/7?tab=items&x=%20"))
            // The client's Host never chooses where it is sent.
            .header("host", "evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 308, "{method}");
        assert_eq!(
            response.headers()["location"],
            "https://boardroom.test:8443/boards/7?tab=items&x=%20"
        );
        assert_security_headers(response.headers());
        assert!(response.headers().get("strict-transport-security").is_none());
    }
    let root = client.get(url("/")).send().await.unwrap();
    assert_eq!(root.status(), 308);
    assert_eq!(root.headers()["location"], "https://boardroom.test:8443/");
    // Hostile request targets: the absolute form names another host, and a path that starts
    // with `//` would be a scheme-relative URL on its own; both stay under the public URL.
    for target in ["http://evil.example/boards/7", "//evil.example/x", "/%00%0d%0aSet-Cookie:x"] {
        let mut socket = tokio::net::TcpStream::connect(redirect).await.unwrap();
        let request =
            format!("GET {target} HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n");
        tokio::io::AsyncWriteExt::write_all(&mut socket, request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut socket, &mut answer).await.unwrap();
        let location = answer
            .lines()
            .find_map(|line| line.strip_prefix("location: "))
            .unwrap_or_else(|| panic!("{target}: no location in {answer}"));
        assert!(location.starts_with("https://boardroom.test:8443/"), "{target}: {location}");
        assert!(!location.contains('\r') && !location.contains('\n'), "{target}: {location}");
        assert_eq!(answer.matches("set-cookie").count(), 0, "{target}: {answer}");
    }
    for (method, path) in [
        (reqwest::Method::GET, "/api/v1/me"),
        (reqwest::Method::POST, "/api/v1/auth/login"),
        (reqwest::Method::GET, "/api"),
        (reqwest::Method::DELETE, "/api/v1/orgs/x"),
        (reqwest::Method::POST, "/login"),
        (reqwest::Method::PUT, "/anything"),
    ] {
        let response = client
            .request(method.clone(), url(path))
            .header("authorization", "Bearer secret")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{method} {path}");
        assert!(response.headers().get("location").is_none());
        assert_security_headers(response.headers());
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "https_required", "{method} {path}: {body}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_listener_needs_an_https_public_url() {
    let database = TestDatabase::create(Backend::Sqlite).await.unwrap();
    let mut settings = database.settings();
    settings.http_redirect_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    let err = App::build(settings).await.err().unwrap().to_string();
    assert!(err.starts_with("BOARDROOM_PUBLIC_URL (--public-url): must be an https://"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_is_off_by_default_and_credentialed_for_listed_origins_only() {
    let off = Server::start(|_| {}).await;
    let on = Server::start(|s| {
        s.cors_origins = vec!["https://app.example.com".into(), "http://localhost:3000".into()];
    })
    .await;
    let client = reqwest::Client::new();
    let get = |server: &Server, origin: &str| {
        client.get(format!("http://{}/api/v1/me", server.addr())).header("origin", origin).send()
    };
    let preflight = |server: &Server, origin: &str| {
        client
            .request(reqwest::Method::OPTIONS, format!("http://{}/api/v1/orgs", server.addr()))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, content-type, x-csrf-token")
            .send()
    };
    let allowed = |response: &reqwest::Response| {
        response
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    // Off: no CORS header for anyone, and no preflight answer.
    let response = get(&off, "https://app.example.com").await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(allowed(&response), None);
    let response = preflight(&off, "https://app.example.com").await.unwrap();
    assert_eq!(allowed(&response), None);
    assert!(!response.status().is_success(), "{}", response.status());

    // On: the listed origins, with credentials, on answers and preflights.
    for origin in ["https://app.example.com", "http://localhost:3000"] {
        let response = get(&on, origin).await.unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(allowed(&response).as_deref(), Some(origin));
        assert_eq!(response.headers()["access-control-allow-credentials"], "true");
        assert_security_headers(response.headers());
        let response = preflight(&on, origin).await.unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        assert_eq!(allowed(&response).as_deref(), Some(origin));
        assert_eq!(response.headers()["access-control-allow-credentials"], "true");
        let methods = response.headers()["access-control-allow-methods"].to_str().unwrap();
        assert!(methods.contains("POST"), "{methods}");
        let headers =
            response.headers()["access-control-allow-headers"].to_str().unwrap().to_lowercase();
        for needed in ["authorization", "content-type", "x-csrf-token"] {
            assert!(headers.contains(needed), "{headers}");
        }
        assert_security_headers(response.headers());
    }
    // Any other origin, including a look-alike: nothing that lets its page read the answer.
    for origin in ["https://evil.example", "https://app.example.com.evil.example", "null"] {
        let response = get(&on, origin).await.unwrap();
        assert_eq!(allowed(&response), None, "{origin}");
        assert!(response.headers().get("access-control-allow-credentials").is_none());
        let response = preflight(&on, origin).await.unwrap();
        assert_eq!(allowed(&response), None, "{origin}");
    }
    off.stop().await;
    on.stop().await;
}

/// A WebSocket over TLS that trusts exactly `pair`, authenticated with `token`; returns it once
/// the server's hello arrived.
async fn wss(
    addr: SocketAddr,
    pair: &Pair,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = client_tls(pair, &[]).connect(name, tcp).await.unwrap();
    let mut request =
        format!("wss://localhost:{}/api/v1/ws", addr.port()).into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request.headers_mut().insert("sec-websocket-protocol", "boardroom.v1.json".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::client_async(request, tls).await.unwrap();
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["type"], "hello", "{hello}");
    ws
}

async fn next_json<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("no frame within 10 s")
            .expect("socket ended")
            .expect("socket failed");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// A ping on the socket is answered: the socket is up.
async fn ping<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>, id: u64)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    ws.send(Message::Text(json!({"type": "ping", "id": id}).to_string().into())).await.unwrap();
    let reply = next_json(ws).await;
    assert_eq!(
        (reply["type"].as_str(), reply["id"].as_u64()),
        (Some("reply"), Some(id)),
        "{reply}"
    );
}

/// A client TLS configuration that trusts exactly `pair`, offering `alpn`.
fn client_tls(pair: &Pair, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(pair.der.clone())).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// A WebSocket over HTTP/2, opened as browsers that negotiated `h2` open it: an extended
/// CONNECT (RFC 8441) with `:protocol: websocket`, after the server announced it in SETTINGS.
async fn wss_over_h2(
    addr: SocketAddr,
    pair: &Pair,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = client_tls(pair, &[b"h2"]).connect(name, tcp).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, mut conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake::<_, axum::body::Body>(TokioIo::new(tls))
        .await
        .unwrap();
    // The server's SETTINGS arrive as the connection is driven.
    let started = Instant::now();
    while !conn.is_extended_connect_protocol_enabled() {
        assert!(started.elapsed() < Duration::from_secs(10), "no SETTINGS_ENABLE_CONNECT_PROTOCOL");
        let _ = tokio::time::timeout(Duration::from_millis(50), &mut conn).await;
    }
    tokio::spawn(conn);
    let request = axum::http::Request::builder()
        .method(axum::http::Method::CONNECT)
        .uri(format!("https://localhost:{}/api/v1/ws", addr.port()))
        .extension(hyper::ext::Protocol::from_static("websocket"))
        .header("sec-websocket-version", "13")
        .header("sec-websocket-protocol", "boardroom.v1.json")
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let mut response = send.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200, "extended CONNECT refused: {:?}", response.headers());
    assert_eq!(response.headers()["sec-websocket-protocol"], "boardroom.v1.json");
    let upgraded = hyper::upgrade::on(&mut response).await.unwrap();
    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
        TokioIo::new(upgraded),
        tokio_tungstenite::tungstenite::protocol::Role::Client,
        None,
    )
    .await;
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["type"], "hello", "{hello}");
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_opens_over_http_2_with_extended_connect() {
    let dir = tempfile::tempdir().unwrap();
    let pair = valid("boardroom-h2");
    let server = tls_server(dir.path(), &pair, |_| {}).await;
    let token = register(server.addr(), &pair).await;
    let mut socket = wss_over_h2(server.addr(), &pair, &token).await;
    ping(&mut socket, 1).await;
    ping(&mut socket, 2).await;
    // The same socket over HTTP/1.1 still opens, beside it.
    let mut classic = wss(server.addr(), &pair, &token).await;
    ping(&mut classic, 1).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_in_progress_are_capped_and_a_silent_client_cannot_hold_a_slot_forever() {
    let dir = tempfile::tempdir().unwrap();
    let pair = valid("boardroom-cap");
    let server = tls_server(dir.path(), &pair, |s| s.tls_max_handshakes = 2).await;
    let addr = server.addr();
    // Two clients that connect and never say hello fill both slots.
    let silent = [
        tokio::net::TcpStream::connect(addr).await.unwrap(),
        tokio::net::TcpStream::connect(addr).await.unwrap(),
    ];
    tokio::time::sleep(Duration::from_millis(300)).await;
    let client = https_client(&pair);
    let url = format!("https://{addr}/healthz");
    let mut waiting = Box::pin(client.get(&url).send());
    // With both slots held the third connection is not even accepted, so its handshake
    // cannot complete while they are.
    assert!(
        tokio::time::timeout(Duration::from_millis(700), &mut waiting).await.is_err(),
        "a third handshake ran while two were in progress with a cap of two"
    );
    drop(silent);
    let response = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("a slot never came free")
        .unwrap();
    assert_eq!(response.status(), 200);
    server.stop().await;
}

/// Registers a user over HTTPS; returns the access token.
async fn register(addr: SocketAddr, pair: &Pair) -> String {
    let email = format!("tls-{}@example.com", uuid::Uuid::now_v7().simple());
    let response = https_client(pair)
        .post(format!("https://{addr}/api/v1/auth/register"))
        .json(&json!({"email": email, "password": "pw-tls-long-enough", "name": "Tls"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// The swap every reload test makes: a socket opened under the first certificate stays up
/// while new connections are served the second, once `reload` has happened.
async fn swap_keeps_open_sockets(poll: Duration, signal: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (valid("boardroom-one"), valid("boardroom-two"));
    let server = tls_server(dir.path(), &one, |s| s.tls_reload_poll = poll).await;
    let addr = server.addr();
    let token = register(addr, &one).await;
    let mut socket = wss(addr, &one, &token).await;
    ping(&mut socket, 1).await;
    assert_eq!(served_certificate(addr).await, one.der);

    // A broken pair (the new certificate with the old key) is refused; the old one stays.
    std::fs::write(dir.path().join("cert.pem"), &two.cert_pem).unwrap();
    if signal {
        hangup();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(served_certificate(addr).await, one.der, "a mismatched pair must not be used");
    assert_eq!(server.running().tls().unwrap().summary().subject, "CN=boardroom-one");

    two.write(dir.path());
    if signal {
        hangup();
    }
    wait_for_certificate(addr, &two).await;
    assert_eq!(server.running().tls().unwrap().summary().subject, "CN=boardroom-two");
    // The socket of before the swap is still up, and new ones open under the new certificate.
    ping(&mut socket, 2).await;
    let mut fresh = wss(addr, &two, &token).await;
    ping(&mut fresh, 1).await;
    server.stop().await;
}

/// SIGHUP to this process (nextest runs each test in a process of its own).
fn hangup() {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_swap_with_sighup_is_served_while_open_sockets_stay() {
    // Polling an hour apart: only the signal can explain the reload.
    swap_keeps_open_sockets(Duration::from_secs(3600), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_swap_on_disk_is_picked_up_without_a_signal() {
    swap_keeps_open_sockets(Duration::from_millis(100), false).await;
}

fn boardroom() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_boardroom"));
    for (key, _) in std::env::vars() {
        if key.starts_with("BOARDROOM_") || key == "DATABASE_URL" {
            cmd.env_remove(key);
        }
    }
    cmd.env("BOARDROOM_LOG", "error");
    cmd
}

/// `check-config` with the pair written to a temporary dir: (exit code, stdout, stderr).
fn check_config(cert: &str, key: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
    std::fs::write(dir.path().join("key.pem"), key).unwrap();
    let output = boardroom()
        .arg("check-config")
        .env("BOARDROOM_DATA_DIR", dir.path().join("data"))
        .env("BOARDROOM_TLS_CERT", dir.path().join("cert.pem"))
        .env("BOARDROOM_TLS_KEY", dir.path().join("key.pem"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    )
}

#[test]
fn check_config_names_a_good_certificate_and_refuses_bad_ones() {
    let good = valid("boardroom.example.com");
    let (code, stdout, stderr) = check_config(&good.cert_pem, &good.key_pem);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("tls: subject CN=boardroom.example.com, valid until 2100-01-01"),
        "{stdout}"
    );

    let one_line = |stderr: &str, setting: &str, says: &str| {
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with(&format!("error: {setting}")), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    };
    let expired = pair("old.example.com", (2020, 1, 1), (2021, 1, 1));
    let (code, _, stderr) = check_config(&expired.cert_pem, &expired.key_pem);
    assert_eq!(code, 1);
    one_line(&stderr, "BOARDROOM_TLS_CERT", "CN=old.example.com expired on 2021-01-01");

    let future = pair("soon.example.com", (2099, 1, 1), (2100, 1, 1));
    let (code, _, stderr) = check_config(&future.cert_pem, &future.key_pem);
    assert_eq!(code, 1);
    one_line(&stderr, "BOARDROOM_TLS_CERT", "is not valid before 2099-01-01");

    let other = valid("other.example.com");
    let (code, _, stderr) = check_config(&good.cert_pem, &other.key_pem);
    assert_eq!(code, 1);
    one_line(&stderr, "BOARDROOM_TLS_KEY", "does not belong to the certificate");

    let (code, _, stderr) = check_config("not a certificate", &good.key_pem);
    assert_eq!(code, 1);
    one_line(&stderr, "BOARDROOM_TLS_CERT", "holds no certificate");

    let (code, _, stderr) = check_config(&good.cert_pem, "");
    assert_eq!(code, 1);
    one_line(&stderr, "BOARDROOM_TLS_KEY", "no PEM private key");

    // Unreadable, and only half of the pair.
    let dir = tempfile::tempdir().unwrap();
    let output = boardroom()
        .arg("check-config")
        .env("BOARDROOM_DATA_DIR", dir.path())
        .env("BOARDROOM_TLS_CERT", dir.path().join("missing.pem"))
        .env("BOARDROOM_TLS_KEY", dir.path().join("missing.pem"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    one_line(String::from_utf8_lossy(&output.stderr).trim(), "BOARDROOM_TLS_CERT", "cannot read");
    let output = boardroom()
        .arg("check-config")
        .env("BOARDROOM_DATA_DIR", dir.path())
        .env("BOARDROOM_TLS_CERT", dir.path().join("missing.pem"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    one_line(String::from_utf8_lossy(&output.stderr).trim(), "BOARDROOM_TLS_CERT", "set both");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tls_serve_warns_once_and_check_config_says_so() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = boardroom()
        .arg("serve")
        .env("BOARDROOM_LISTEN", format!("127.0.0.1:{port}"))
        .env("BOARDROOM_DATA_DIR", dir.path())
        .env("BOARDROOM_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let warning = "BOARDROOM_TLS_CERT is not set";
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.contains(warning)) {
        seen.push(lines.recv_timeout(Duration::from_secs(30)).expect("no TLS warning at start"));
    }
    // Up and answering, so its SIGTERM handler is in place.
    let started = Instant::now();
    while reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "the server never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    assert!(child.wait().unwrap().success());
    reader.join().unwrap();
    seen.extend(lines.try_iter());
    let warnings: Vec<_> = seen.iter().filter(|l| l.contains(warning)).collect();
    assert_eq!(warnings.len(), 1, "{seen:?}");
    assert!(
        warnings[0].contains("WARN") && warnings[0].contains("TLS-terminating proxy"),
        "{seen:?}"
    );

    let output =
        boardroom().arg("check-config").env("BOARDROOM_DATA_DIR", dir.path()).output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("tls: off"), "{stdout}");
}
