//! Prometheus metrics end to end: the series exist and move with real traffic (HTTP with an
//! unmatched route, a socket subscription and its delivery, a board write, a rate-limited login,
//! a crashed board actor), as read back by the `prometheus_client` PyPI package's text parser;
//! `/metrics` is served only on its own listener, which stops with the server; and the shipped
//! alert rules and Grafana dashboard parse and name only series the server exports.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;

use boardroom_protocol::identity::Login;
use serde::Deserialize;
use serde_json::Value;

use crate::boards::fixture;
use crate::harness::socket::{connect, msg, subscribed, JSON};
use crate::harness::{self, both_backends_with, Backend, TestDatabase, TestServer};

both_backends_with!(
    metrics_on;
    the_series_move_with_traffic,
    only_the_metrics_listener_serves_metrics,
    the_alerts_and_the_dashboard_name_exported_series,
);

mod the_metrics_listener_stops_with_the_server {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::stops_with_the_server(crate::harness::Backend::Sqlite).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::stops_with_the_server(crate::harness::Backend::Postgres).await;
    }
}

fn metrics_on(settings: &mut boardroom::config::Settings) {
    settings.metrics_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    // The second wrong password from one (email, network) is refused `rate_limited`.
    settings.login_limit = 1;
}

/// One scrape, as the Python parser read it.
#[derive(Debug, Deserialize)]
struct Scrape {
    /// Family name (the parser drops a counter's `_total`) → type.
    families: HashMap<String, String>,
    /// (sample name, labels, value).
    samples: Vec<(String, HashMap<String, String>, f64)>,
}

impl Scrape {
    /// The sum of the samples named `name` carrying at least `labels`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, l, _)| {
                n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    /// Whether any sample is named `name`.
    fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|(n, _, _)| n == name)
    }

    /// Every sample name, and the family names of histograms (`x` for `x_bucket`).
    fn names(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self.samples.iter().map(|(n, _, _)| n.clone()).collect();
        names.extend(self.families.keys().cloned());
        names
    }
}

const PARSE: &str = r#"
import json, math, sys
from prometheus_client.parser import text_string_to_metric_families
families, samples = {}, []
for family in text_string_to_metric_families(sys.stdin.read()):
    families[family.name] = family.type
    for s in family.samples:
        if not math.isfinite(s.value):
            raise SystemExit(f"{s.name} is {s.value}")
        samples.append([s.name, s.labels, s.value])
print(json.dumps({"families": families, "samples": samples}))
"#;

/// Runs `script` under the tests' Python with `input` on stdin; its stdout as JSON.
fn python_json<T: serde::de::DeserializeOwned>(script: &str, args: &[&str], input: &[u8]) -> T {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = harness::python()
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `GET /metrics` on the metrics listener, parsed by the Python client's parser.
async fn scrape(server: &TestServer) -> Scrape {
    let addr = server.metrics_addr().expect("a metrics listener");
    let answer = reqwest::get(format!("http://{addr}/metrics")).await.unwrap();
    assert_eq!(answer.status(), 200);
    let content_type = answer.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let text = answer.text().await.unwrap();
    python_json(PARSE, &[], text.as_bytes())
}

/// Every series of issue #15's list (the backup timestamp appears after a first backup).
const SERIES: &[&str] = &[
    "http_requests_total",
    "http_request_duration_seconds_bucket",
    "boardroom_ws_connections",
    "boardroom_ws_subscriptions",
    "boardroom_ws_deliveries_total",
    "boardroom_ws_slow_consumer_closes_total",
    "boardroom_board_actors",
    "boardroom_commit_batch_size_bucket",
    "boardroom_commit_duration_seconds_bucket",
    "boardroom_actor_restarts_total",
    "boardroom_webhook_deliveries_total",
    "boardroom_webhook_outbox_pending",
    "boardroom_audit_queue",
    "boardroom_audit_set_aside_total",
    "boardroom_bcrypt_queue",
    "boardroom_bcrypt_seconds_bucket",
    "boardroom_rate_limited_total",
    "boardroom_backup_failures_total",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
];

async fn the_series_move_with_traffic(server: &TestServer) {
    let f = fixture(server).await;
    let mut socket = connect(server, &f.owner.access_token, JSON).await;
    subscribed(&socket.request(msg::subscribe(&f.board)).await);
    let before = scrape(server).await;
    assert_eq!(before.sum("boardroom_ws_connections", &[]), 1.0);
    assert_eq!(before.sum("boardroom_ws_subscriptions", &[]), 1.0);
    // The subscribed board's actor runs (after the crash below it may still be restarting).
    assert!(before.sum("boardroom_board_actors", &[]) >= 1.0);
    for (family, kind) in [
        ("http_request_duration_seconds", "histogram"),
        ("boardroom_commit_batch_size", "histogram"),
        ("boardroom_commit_duration_seconds", "histogram"),
        ("boardroom_bcrypt_seconds", "histogram"),
        ("http_requests", "counter"),
        ("boardroom_ws_connections", "gauge"),
        ("process_cpu_seconds", "counter"),
    ] {
        assert_eq!(before.families.get(family).map(String::as_str), Some(kind), "{family}");
    }

    // A board write, delivered live to the subscribed socket.
    let items = format!("/api/v1/boards/{}/items", f.board);
    server
        .post(&items, Some(&f.owner.access_token), &harness::item(&f.group, "Measured"))
        .await
        .expect(201);
    assert_eq!(socket.next_event().await.kind, "item.created");
    // A route that does not exist, twice under different raw paths.
    server.get("/api/v1/no-such-route/7f3c").await.expect_error(404, "not_found");
    server.get("/nothing-here").await.expect_error(404, "not_found");
    // Two wrong passwords: bcrypt runs, and the second is refused by the login limit.
    let wrong = Login { email: f.owner.email.clone(), password: "not-the-password".into() };
    server.post("/api/v1/auth/login", None, &wrong).await.expect_error(401, "invalid_credentials");
    server.post("/api/v1/auth/login", None, &wrong).await.expect_error(429, "rate_limited");
    // A crashed board actor, restarted by its supervisor.
    assert!(server.state().boards().inject_panic(harness::id(&f.board)));
    let mut after = scrape(server).await;
    for _ in 0..100 {
        if after.sum("boardroom_actor_restarts_total", &[]) > 0.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        after = scrape(server).await;
    }

    for series in SERIES {
        assert!(after.has(series), "{series} is missing");
    }
    let moved = |name: &str, labels: &[(&str, &str)]| {
        let (was, is) = (before.sum(name, labels), after.sum(name, labels));
        assert!(is > was, "{name}{labels:?} did not move: {was} → {is}");
    };
    let created =
        [("method", "POST"), ("route", "/api/v1/boards/{board}/items"), ("status", "201")];
    moved("http_requests_total", &created);
    moved("http_request_duration_seconds_count", &[("route", "/api/v1/boards/{board}/items")]);
    let unmatched = [("route", "unmatched"), ("status", "404")];
    assert!(
        after.sum("http_requests_total", &unmatched)
            - before.sum("http_requests_total", &unmatched)
            >= 2.0
    );
    let routes: BTreeSet<&str> = after
        .samples
        .iter()
        .filter_map(|(_, labels, _)| labels.get("route").map(String::as_str))
        .collect();
    for route in &routes {
        assert!(
            *route == "unmatched" || (route.starts_with('/') && !route.contains(&f.board)),
            "a raw path became a route label: {route}"
        );
    }
    assert!(!routes.iter().any(|r| r.contains("no-such-route") || r.contains("nothing-here")));
    moved("boardroom_ws_deliveries_total", &[]);
    moved("boardroom_commit_batch_size_count", &[]);
    moved("boardroom_commit_duration_seconds_count", &[]);
    moved("boardroom_bcrypt_seconds_count", &[]);
    moved("boardroom_rate_limited_total", &[("limit", "login")]);
    moved("boardroom_actor_restarts_total", &[]);
    moved("process_cpu_seconds_total", &[]);
    assert_eq!(after.sum("boardroom_webhook_outbox_pending", &[]), 0.0);
    for result in ["succeeded", "failed", "retry"] {
        assert!(after.has("boardroom_webhook_deliveries_total"));
        assert_eq!(after.sum("boardroom_webhook_deliveries_total", &[("result", result)]), 0.0);
    }

    // The socket's gauges come down when it goes.
    drop(socket);
    let mut gone = scrape(server).await;
    for _ in 0..100 {
        if gone.sum("boardroom_ws_connections", &[]) == 0.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        gone = scrape(server).await;
    }
    assert_eq!(gone.sum("boardroom_ws_connections", &[]), 0.0);
    assert_eq!(gone.sum("boardroom_ws_subscriptions", &[]), 0.0);
}

async fn only_the_metrics_listener_serves_metrics(server: &TestServer) {
    let metrics = server.metrics_addr().expect("a metrics listener");
    assert_ne!(metrics, server.addr());
    // The API listener knows no /metrics, at the root or under the API.
    server.get("/metrics").await.expect_error(404, "not_found");
    server.get("/api/v1/metrics").await.expect_error(404, "not_found");
    // The metrics listener serves /metrics and nothing of the API.
    for path in ["/healthz", "/api/v1/openapi.json", "/"] {
        let answer = reqwest::get(format!("http://{metrics}{path}")).await.unwrap();
        assert_eq!(answer.status(), 404, "{path}");
    }
    let answer = reqwest::get(format!("http://{metrics}/metrics")).await.unwrap();
    assert_eq!(answer.status(), 200);
}

/// A server without the setting has no metrics listener; one with it stops serving when the
/// server shuts down.
async fn stops_with_the_server(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else { return };
    let plain = TestServer::start_with(database, |_| {}).await;
    assert_eq!(plain.metrics_addr(), None);
    plain.stop().await;
    let Some(database) = TestDatabase::create(backend).await else { return };
    let mut server = TestServer::start_with(database, metrics_on).await;
    let addr = server.metrics_addr().expect("a metrics listener");
    assert_eq!(reqwest::get(format!("http://{addr}/metrics")).await.unwrap().status(), 200);
    assert!(server.stop_keeping_database().await, "the shutdown was not clean");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the metrics listener outlived the server"
    );
}

const READ_YAML: &str = "import json, sys, yaml\n\
print(json.dumps(yaml.safe_load(open(sys.argv[1]))))\n";

/// Series names in a PromQL expression: `boardroom_…`, `http_…`, `process_…`.
fn series_in(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) =
        ["boardroom_", "http_", "process_"].iter().filter_map(|prefix| rest.find(prefix)).min()
    {
        let tail = &rest[at..];
        let end =
            tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

async fn the_alerts_and_the_dashboard_name_exported_series(server: &TestServer) {
    server.get("/healthz").await.expect(200);
    let mut exported = scrape(server).await.names();
    // What the_series_move_with_traffic shows to exist after traffic, with the histograms'
    // other samples; the backup timestamp appears after the first backup.
    for series in SERIES {
        let family = series.strip_suffix("_bucket").unwrap_or(series);
        exported.extend([family.to_owned(), format!("{family}_count"), format!("{family}_sum")]);
        exported.insert((*series).to_owned());
    }
    exported.insert(boardroom::metrics::BACKUP_LAST_SUCCESS.to_owned());
    let known = |name: &str| exported.contains(name);
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");

    let alerts_path = docs.join("alerts.yml");
    let alerts: Value = python_json(READ_YAML, &[alerts_path.to_str().unwrap()], b"");
    let mut names = BTreeSet::new();
    for group in alerts["groups"].as_array().expect("groups") {
        assert!(group["name"].is_string());
        for rule in group["rules"].as_array().expect("rules") {
            let name = rule["alert"].as_str().expect("an alerting rule");
            let expr = rule["expr"].as_str().expect("expr");
            assert!(rule["labels"]["severity"].is_string(), "{name}: severity");
            assert!(rule["annotations"]["summary"].is_string(), "{name}: summary");
            let series = series_in(expr);
            assert!(!series.is_empty(), "{name}: {expr}");
            for s in series {
                assert!(known(&s), "{name} names {s}, which the server does not export");
            }
            names.insert(name.to_owned());
        }
    }
    for wanted in [
        "BoardroomBackupTooOld",
        "BoardroomWebhookFailures",
        "BoardroomAuditSetAside",
        "BoardroomHigh5xxRate",
        "BoardroomSlowConsumers",
    ] {
        assert!(names.contains(wanted), "docs/alerts.yml has no {wanted}");
    }

    let dashboard: Value =
        serde_json::from_slice(&std::fs::read(docs.join("grafana-dashboard.json")).unwrap())
            .expect("the dashboard is JSON");
    assert!(dashboard["title"].is_string());
    assert!(dashboard["schemaVersion"].is_u64());
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut charted = BTreeSet::new();
    for panel in panels {
        assert!(ids.insert(panel["id"].as_u64().expect("a panel id")), "duplicate panel id");
        if panel["type"] == "row" {
            continue;
        }
        assert!(panel["gridPos"]["w"].is_u64(), "{}", panel["title"]);
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            for s in series_in(expr) {
                assert!(known(&s), "panel {} names {s}, not exported", panel["title"]);
                charted.insert(s);
            }
        }
    }
    for series in ["http_requests_total", "boardroom_ws_connections", "boardroom_audit_queue"] {
        assert!(charted.contains(series), "the dashboard does not chart {series}");
    }
}
