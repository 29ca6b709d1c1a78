//! Prometheus metrics: the recorder, the listener that serves them, and the name of every series.
//!
//! With `BOARDROOM_METRICS_LISTEN` set, [`install`] puts a `metrics-exporter-prometheus`
//! recorder behind the `metrics` facade (once per process) and [`serve`] answers `GET /metrics`
//! on that address alone, never on the API's listener, stopping with the server. Unset, nothing
//! is installed and every recording function here returns after one atomic load. Other modules
//! record only through the small functions below (or, for the backup series, the facade's
//! macros with the names below), so the series' names and labels live here.
//!
//! Recording stays off the hot paths: series without labels are registered once, at install,
//! and kept as handles (an atomic add each); the fan-out adds its deliveries once per event,
//! not once per socket; queue depths, subscriptions and actor counts are read when scraped
//! (a [`Sample`] from a [`Source`], the server's state) rather than updated as they change.
//!
//! ## Series
//! | series | type | labels | recorded |
//! |---|---|---|---|
//! | `http_requests_total` | counter | `method`, `route`, `status` | each answer of the API listener; `route` is the matched route template (`/api/v1/boards/{board}`), `unmatched` for none, never the raw path; `method` outside the standard ones is `other` |
//! | `http_request_duration_seconds` | histogram | `method`, `route` | the same answers' latency |
//! | `boardroom_ws_connections` | gauge | | open WebSockets (a guard held by each connection) |
//! | `boardroom_ws_subscriptions` | gauge | | board subscriptions in the fan-out (at scrape) |
//! | `boardroom_ws_deliveries_total` | counter | | live events queued to subscribed sockets |
//! | `boardroom_ws_slow_consumer_closes_total` | counter | | sockets closed 4008 (outbox full, or a replay the client did not read) |
//! | `boardroom_board_actors` | gauge | | running board actors (at scrape) |
//! | `boardroom_commit_batch_size` | histogram | | events per board commit (group commit) |
//! | `boardroom_commit_duration_seconds` | histogram | | one board commit's transaction |
//! | `boardroom_actor_restarts_total` | counter | | actors the root supervisor saw fail and restarted (at scrape) |
//! | `boardroom_webhook_deliveries_total` | counter | `result` (`succeeded`, `failed`, `retry`) | webhook delivery attempts |
//! | `boardroom_webhook_outbox_pending` | gauge | | deliveries still pending, all nodes (one indexed count, at scrape) |
//! | `boardroom_audit_queue` | gauge | | audit entries queued, not yet written (at scrape) |
//! | `boardroom_audit_set_aside_total` | counter | | audit entries the store refused, set aside in `audit_dead_letters` (at scrape) |
//! | `boardroom_bcrypt_queue` | gauge | | bcrypt jobs waiting for the pool (at scrape) |
//! | `boardroom_bcrypt_seconds` | histogram | | one bcrypt hash or verify |
//! | `boardroom_rate_limited_total` | counter | `limit` | requests and frames refused `rate_limited`, by the limit that refused them ([`Limit`]) |
//! | `boardroom_last_backup_success_timestamp_seconds` | gauge | | Unix time of the last complete backup; absent until one succeeds |
//! | `boardroom_backup_failures_total` | counter | | failed scheduled backups |
//! | `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds`, `process_start_time_seconds` | | | the standard process series, read from `/proc` when scraped (Linux; [`process`]) |

pub mod process;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics::{Counter, Gauge, Histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Requests answered by the API listener.
pub const HTTP_REQUESTS: &str = "http_requests_total";
/// Latency of those answers.
pub const HTTP_REQUEST_DURATION: &str = "http_request_duration_seconds";
/// Open WebSockets.
pub const WS_CONNECTIONS: &str = "boardroom_ws_connections";
/// Board subscriptions in the fan-out.
pub const WS_SUBSCRIPTIONS: &str = "boardroom_ws_subscriptions";
/// Live events queued to sockets.
pub const WS_DELIVERIES: &str = "boardroom_ws_deliveries_total";
/// Sockets closed as slow consumers.
pub const WS_SLOW_CONSUMER_CLOSES: &str = "boardroom_ws_slow_consumer_closes_total";
/// Running board actors.
pub const BOARD_ACTORS: &str = "boardroom_board_actors";
/// Events per board commit.
pub const COMMIT_BATCH_SIZE: &str = "boardroom_commit_batch_size";
/// One board commit's transaction.
pub const COMMIT_DURATION: &str = "boardroom_commit_duration_seconds";
/// Actors restarted by the supervisor.
pub const ACTOR_RESTARTS: &str = "boardroom_actor_restarts_total";
/// Webhook delivery attempts, by result.
pub const WEBHOOK_DELIVERIES: &str = "boardroom_webhook_deliveries_total";
/// Pending webhook deliveries.
pub const WEBHOOK_OUTBOX_PENDING: &str = "boardroom_webhook_outbox_pending";
/// Audit entries queued.
pub const AUDIT_QUEUE: &str = "boardroom_audit_queue";
/// Audit entries set aside.
pub const AUDIT_SET_ASIDE: &str = "boardroom_audit_set_aside_total";
/// bcrypt jobs waiting.
pub const BCRYPT_QUEUE: &str = "boardroom_bcrypt_queue";
/// One bcrypt run.
pub const BCRYPT_SECONDS: &str = "boardroom_bcrypt_seconds";
/// Refusals `rate_limited`, by limit.
pub const RATE_LIMITED: &str = "boardroom_rate_limited_total";
/// Unix time of the last complete backup.
pub const BACKUP_LAST_SUCCESS: &str = "boardroom_last_backup_success_timestamp_seconds";
/// Failed scheduled backups.
pub const BACKUP_FAILURES: &str = "boardroom_backup_failures_total";

/// The label of requests no route matched: one value, whatever path was asked for.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Upper bounds of the latency histograms, in seconds.
const LATENCY_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Upper bounds of the commit batch sizes, in events.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
/// Upper bounds of bcrypt's run time: around its cost's 50-300 ms, and a saturated pool's tail.
const BCRYPT_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0];

/// The limit behind a `rate_limited` refusal: the `limit` label.
#[derive(Debug, Clone, Copy)]
pub enum Limit {
    /// One of the attempt limits kept in the database (`auth::limits`), by its own name:
    /// `login`, `login-ip`, `login-account`, `register`, `password-change`, `sign-in-start`.
    Attempts(&'static str),
    /// An API key's per-key request budget (REST and socket frames).
    ApiKey,
    /// A network with too many failed API keys.
    ApiKeyGuess,
    /// A user's WebSockets at once.
    WsSockets,
    /// A credential's unused WebSocket tickets.
    WsTickets,
    /// Frames per second on one socket.
    WsFrames,
}

impl Limit {
    /// The `limit` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Attempts(name) => name,
            Limit::ApiKey => "api-key",
            Limit::ApiKeyGuess => "api-key-guess",
            Limit::WsSockets => "ws-sockets",
            Limit::WsTickets => "ws-tickets",
            Limit::WsFrames => "ws-frames",
        }
    }
}

/// The handles of the series without labels, registered once.
struct Handles {
    prometheus: PrometheusHandle,
    ws_connections: Gauge,
    ws_deliveries: Counter,
    ws_slow_consumer_closes: Counter,
    commit_batch_size: Histogram,
    commit_duration: Histogram,
    bcrypt_seconds: Histogram,
    /// `succeeded`, `failed`, `retry`.
    webhook_deliveries: [Counter; 3],
}

static INSTALLED: OnceLock<Result<Handles, String>> = OnceLock::new();

fn on() -> Option<&'static Handles> {
    INSTALLED.get().and_then(|installed| installed.as_ref().ok())
}

/// Whether a recorder is installed in this process.
pub fn enabled() -> bool {
    on().is_some()
}

/// Installs the Prometheus recorder behind the `metrics` facade, once per process (a second
/// server in the same process shares it). Fails when another recorder got there first.
pub fn install() -> Result<(), String> {
    INSTALLED
        .get_or_init(|| {
            let recorder = builder()?.build_recorder();
            let prometheus = recorder.handle();
            metrics::set_global_recorder(recorder).map_err(|e| {
                format!("BOARDROOM_METRICS_LISTEN (--metrics-listen): cannot install: {e}")
            })?;
            describe();
            Ok(Handles {
                prometheus,
                ws_connections: metrics::gauge!(WS_CONNECTIONS),
                ws_deliveries: metrics::counter!(WS_DELIVERIES),
                ws_slow_consumer_closes: metrics::counter!(WS_SLOW_CONSUMER_CLOSES),
                commit_batch_size: metrics::histogram!(COMMIT_BATCH_SIZE),
                commit_duration: metrics::histogram!(COMMIT_DURATION),
                bcrypt_seconds: metrics::histogram!(BCRYPT_SECONDS),
                webhook_deliveries: ["succeeded", "failed", "retry"]
                    .map(|result| metrics::counter!(WEBHOOK_DELIVERIES, "result" => result)),
            })
        })
        .as_ref()
        .map(|_| ())
        .map_err(Clone::clone)
}

fn builder() -> Result<PrometheusBuilder, String> {
    let histogram = |builder: PrometheusBuilder, name: &str, buckets: &[f64]| {
        builder
            .set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)
            .map_err(|e| format!("metrics: buckets of {name}: {e}"))
    };
    let builder = PrometheusBuilder::new();
    let builder = histogram(builder, HTTP_REQUEST_DURATION, LATENCY_BUCKETS)?;
    let builder = histogram(builder, COMMIT_DURATION, LATENCY_BUCKETS)?;
    let builder = histogram(builder, COMMIT_BATCH_SIZE, BATCH_BUCKETS)?;
    histogram(builder, BCRYPT_SECONDS, BCRYPT_BUCKETS)
}

/// HELP lines, and the series that must show from the first scrape (a counter at 0 is a
/// fact; a rate over a series that appears late misses its first increments).
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(HTTP_REQUESTS, Unit::Count, "HTTP requests answered, by route template");
    describe_histogram!(HTTP_REQUEST_DURATION, Unit::Seconds, "HTTP request latency");
    describe_gauge!(WS_CONNECTIONS, Unit::Count, "Open WebSockets");
    describe_gauge!(WS_SUBSCRIPTIONS, Unit::Count, "Board subscriptions of open WebSockets");
    describe_counter!(WS_DELIVERIES, Unit::Count, "Live events queued to subscribed sockets");
    describe_counter!(WS_SLOW_CONSUMER_CLOSES, Unit::Count, "Sockets closed as slow consumers");
    describe_gauge!(BOARD_ACTORS, Unit::Count, "Running board actors");
    describe_histogram!(COMMIT_BATCH_SIZE, Unit::Count, "Events per board commit");
    describe_histogram!(COMMIT_DURATION, Unit::Seconds, "Board commit transaction time");
    describe_counter!(ACTOR_RESTARTS, Unit::Count, "Actors restarted after failing");
    describe_counter!(WEBHOOK_DELIVERIES, Unit::Count, "Webhook delivery attempts, by result");
    describe_gauge!(WEBHOOK_OUTBOX_PENDING, Unit::Count, "Webhook deliveries pending");
    describe_gauge!(AUDIT_QUEUE, Unit::Count, "Audit entries queued, not yet written");
    describe_counter!(AUDIT_SET_ASIDE, Unit::Count, "Audit entries set aside as dead letters");
    describe_gauge!(BCRYPT_QUEUE, Unit::Count, "bcrypt jobs waiting for the pool");
    describe_histogram!(BCRYPT_SECONDS, Unit::Seconds, "Time of one bcrypt hash or verify");
    describe_counter!(RATE_LIMITED, Unit::Count, "Refusals rate_limited, by limit");
    describe_gauge!(BACKUP_LAST_SUCCESS, Unit::Seconds, "Unix time of the last complete backup");
    describe_counter!(BACKUP_FAILURES, Unit::Count, "Failed scheduled backups");
    metrics::counter!(BACKUP_FAILURES).absolute(0);
    metrics::counter!(ACTOR_RESTARTS).absolute(0);
    metrics::counter!(AUDIT_SET_ASIDE).absolute(0);
    metrics::counter!(WS_SLOW_CONSUMER_CLOSES).absolute(0);
}

/// The `method` label: the standard methods by name, anything else `other`, so a client
/// inventing methods cannot mint series.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// The `route` label: the route template that matched. A nested router's fallback matches a
/// catch-all of axum's own, which is no route either.
fn route_label(route: Option<&MatchedPath>) -> String {
    match route {
        Some(path) if !path.as_str().contains("{*__private__axum") => path.as_str().to_owned(),
        _ => UNMATCHED_ROUTE.to_owned(),
    }
}

/// Records one HTTP answer.
pub fn http_request(
    method: &Method,
    route: Option<&MatchedPath>,
    status: StatusCode,
    took: Duration,
) {
    if on().is_none() {
        return;
    }
    let method = method_label(method);
    let route = route_label(route);
    metrics::histogram!(HTTP_REQUEST_DURATION, "method" => method, "route" => route.clone())
        .record(took.as_secs_f64());
    metrics::counter!(HTTP_REQUESTS, "method" => method, "route" => route,
        "status" => status.as_str().to_owned())
    .increment(1);
}

/// Counts one open WebSocket for as long as it is held.
#[must_use = "the socket is counted while this is held"]
pub struct OpenSocket(&'static Gauge);

impl Drop for OpenSocket {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// A WebSocket opened; it counts until the returned guard drops.
pub fn ws_opened() -> Option<OpenSocket> {
    let handles = on()?;
    handles.ws_connections.increment(1.0);
    Some(OpenSocket(&handles.ws_connections))
}

/// The fan-out queued one event to `sockets` sockets.
pub fn ws_delivered(sockets: u64) {
    if let Some(handles) = on() {
        if sockets > 0 {
            handles.ws_deliveries.increment(sockets);
        }
    }
}

/// A socket was closed as a slow consumer.
pub fn ws_slow_consumer_closed() {
    if let Some(handles) = on() {
        handles.ws_slow_consumer_closes.increment(1);
    }
}

/// Times one board commit of `events` events until dropped.
#[must_use = "the commit is timed until this drops"]
pub struct CommitTimer {
    histogram: &'static Histogram,
    started: Instant,
}

impl Drop for CommitTimer {
    fn drop(&mut self) {
        self.histogram.record(self.started.elapsed().as_secs_f64());
    }
}

/// A board commit of `events` events starts; its time is recorded when the timer drops.
pub fn commit_started(events: usize) -> Option<CommitTimer> {
    let handles = on()?;
    handles.commit_batch_size.record(events as f64);
    Some(CommitTimer { histogram: &handles.commit_duration, started: Instant::now() })
}

/// One bcrypt run took `took`.
pub fn bcrypt_ran(took: Duration) {
    if let Some(handles) = on() {
        handles.bcrypt_seconds.record(took.as_secs_f64());
    }
}

/// A webhook delivery attempt ended with the delivery's `status`: `succeeded`, `failed`, or
/// `pending` (to be retried).
pub fn webhook_attempted(status: &str) {
    if let Some(handles) = on() {
        let index = match status {
            "succeeded" => 0,
            "failed" => 1,
            _ => 2,
        };
        handles.webhook_deliveries[index].increment(1);
    }
}

/// A request or frame was refused `rate_limited` by `limit`.
pub fn rate_limited(limit: Limit) {
    if on().is_some() {
        metrics::counter!(RATE_LIMITED, "limit" => limit.as_str()).increment(1);
    }
}

/// A backup completed at `at` (Unix seconds).
pub fn backup_succeeded(at: i64) {
    if on().is_some() {
        metrics::gauge!(BACKUP_LAST_SUCCESS).set(at as f64);
    }
}

/// A scheduled backup failed.
pub fn backup_failed() {
    if on().is_some() {
        metrics::counter!(BACKUP_FAILURES).increment(1);
    }
}

/// What is cheaper to read when scraped than to track as it changes.
#[derive(Debug, Default)]
pub struct Sample {
    /// Board subscriptions in the fan-out.
    pub ws_subscriptions: usize,
    /// Running board actors.
    pub board_actors: usize,
    /// Actors restarted so far.
    pub actor_restarts: u64,
    /// Audit entries queued.
    pub audit_queue: u64,
    /// Audit entries set aside so far.
    pub audit_set_aside: u64,
    /// bcrypt jobs waiting.
    pub bcrypt_queue: usize,
    /// Pending webhook deliveries; `None` when they could not be counted (the series keeps
    /// its last value and the scrape still answers).
    pub webhook_outbox_pending: Option<i64>,
}

/// Where a scrape reads its [`Sample`]: the server's shared state, which sits above this
/// module (so that the edges may record here without importing one another through it).
#[async_trait::async_trait]
pub trait Source: Send + Sync + 'static {
    /// Reads the sample now.
    async fn sample(&self) -> Sample;
}

fn record(sample: &Sample) {
    metrics::gauge!(WS_SUBSCRIPTIONS).set(sample.ws_subscriptions as f64);
    metrics::gauge!(BOARD_ACTORS).set(sample.board_actors as f64);
    metrics::counter!(ACTOR_RESTARTS).absolute(sample.actor_restarts);
    metrics::gauge!(AUDIT_QUEUE).set(sample.audit_queue as f64);
    metrics::counter!(AUDIT_SET_ASIDE).absolute(sample.audit_set_aside);
    metrics::gauge!(BCRYPT_QUEUE).set(sample.bcrypt_queue as f64);
    if let Some(pending) = sample.webhook_outbox_pending {
        metrics::gauge!(WEBHOOK_OUTBOX_PENDING).set(pending as f64);
    }
}

/// The Prometheus text format's content type.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

async fn scrape(State(source): State<Arc<dyn Source>>) -> Response {
    let Some(handles) = on() else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    record(&source.sample().await);
    handles.prometheus.run_upkeep();
    let mut body = handles.prometheus.render();
    process::render(&mut body);
    ([(header::CONTENT_TYPE, TEXT_FORMAT)], body).into_response()
}

/// The metrics listener's router: `GET /metrics`, nothing else.
fn router(source: Arc<dyn Source>) -> Router {
    Router::new().route("/metrics", get(scrape)).with_state(source)
}

/// Serves `GET /metrics` on `listener`, sampling `source` at each scrape, until `stopped`
/// resolves.
pub fn serve(
    listener: TcpListener,
    source: Arc<dyn Source>,
    stopped: impl Future<Output = ()> + Send + 'static,
) -> JoinHandle<std::io::Result<()>> {
    let serve = axum::serve(listener, router(source)).with_graceful_shutdown(stopped);
    tokio::spawn(async move { serve.await })
}

/// Where the metrics listener is asked to listen, named for errors.
pub const LISTEN_SETTING: &str = "BOARDROOM_METRICS_LISTEN (--metrics-listen)";

/// The address a metrics listener bound, for logs.
pub fn announce(addr: SocketAddr) {
    tracing::info!(%addr, "serving Prometheus metrics at /metrics");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_cannot_mint_series_from_what_clients_send() {
        let invented = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&invented), "other");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        assert_eq!(route_label(None), UNMATCHED_ROUTE);
    }

    #[test]
    fn the_histograms_get_buckets_not_summaries() {
        let recorder = builder().unwrap().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            metrics::histogram!(COMMIT_DURATION).record(0.003);
            metrics::histogram!(COMMIT_BATCH_SIZE).record(3.0);
        });
        let text = handle.render();
        assert!(
            text.contains("boardroom_commit_duration_seconds_bucket{le=\"0.005\"} 1"),
            "{text}"
        );
        assert!(text.contains("boardroom_commit_batch_size_bucket{le=\"2\"} 0"), "{text}");
        assert!(text.contains("boardroom_commit_batch_size_bucket{le=\"4\"} 1"), "{text}");
    }
}
