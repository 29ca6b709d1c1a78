//! Scenario `boards`: how many item updates per second a board acknowledges, and how fast.
//!
//! `--writers` clients each update their own item as fast as the server acknowledges (every
//! answer comes after the update's transaction committed), for `--secs`:
//!
//! 1. **hot**: every writer on one board, so their commands queue at one board actor and go
//!    into shared transactions (group commit);
//! 2. **spread**: writer *n* on board *n* of `--boards`, so each board commits alone;
//!
//! each first over REST (`PATCH` of the item), then over WebSocket (each writer a bot socket
//! sending `update_item` and waiting for its reply): the same board actor, without HTTP's cost
//! per request.
//!
//! On Postgres the same run then measures `pgbench` at the same client count on the same
//! database: one single-row `INSERT` per transaction, the figure group commit is compared with.
//! With `pg_stat_statements` loaded, each phase also records the statements per update and
//! their execution time per update ([`crate::pg_statements`]).

use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use boardroom_protocol::boards::{Column, CreateColumn, CreateItem, Item, Snapshot, UpdateItem};
use boardroom_protocol::{Encoding, RequestId};
use futures::{SinkExt, StreamExt};
use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::api::{self, Account, Api};
use crate::machine::PhaseMeter;
use crate::pg_statements::StatementMeter;
use crate::socket;
use crate::stats::{format_ms, ratio, CpuPer, Figure, Recorder, ScenarioReport, Summary, Table};
use crate::target::Target;

/// Settings of the `boards` scenario.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct BoardsArgs {
    /// Concurrent writers (and pgbench clients).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=512))]
    pub writers: u32,

    /// Seconds each phase lasts.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub secs: u64,

    /// Boards the spread phase uses (writer n writes to board n modulo this).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=512))]
    pub boards: u32,

    /// Skip the pgbench comparison.
    #[arg(long)]
    pub no_pgbench: bool,
}

/// A board made for the run: its id, and the item and text column each writer updates.
struct BenchBoard {
    id: String,
    column: String,
}

/// Runs the scenario against `target`.
pub async fn run(target: &Target, args: &BoardsArgs) -> anyhow::Result<ScenarioReport> {
    let api = Api::new(target.base_url())?;
    let mut cpu = PhaseMeter::new(target.server_pid(), target.database_name());
    cpu.begin();
    let owner = api.register("bench-boards").await.context("registering the owner")?;
    let org = api.create_org(&owner, "loadtest").await.context("creating the organization")?;
    progress(format!(
        "set-up: 1 hot board with {} items, {} more boards",
        args.writers, args.boards
    ));
    let hot = create_board(&api, &owner, &org, "hot").await?;
    let hot_items = create_items(&api, &owner, &hot, args.writers as usize).await?;
    let mut spread = Vec::new();
    for n in 0..args.boards {
        let board = create_board(&api, &owner, &org, &format!("spread {n}")).await?;
        let item = create_items(&api, &owner, &board, 1).await?.remove(0);
        spread.push((board, item));
    }
    cpu.end("setup");

    let run_for = Duration::from_secs(args.secs);
    let hot_targets: Vec<(String, String, String)> =
        hot_items.iter().map(|item| (hot.id.clone(), hot.column.clone(), item.clone())).collect();
    let spread_targets: Vec<(String, String, String)> = (0..args.writers as usize)
        .map(|w| {
            let (board, item) = &spread[w % spread.len()];
            (board.id.clone(), board.column.clone(), item.clone())
        })
        .collect();
    let phases = [
        ("hot", "1 hot board", Transport::Rest, &hot_targets),
        ("spread", "boards", Transport::Rest, &spread_targets),
        ("ws_hot", "1 hot board", Transport::WebSocket, &hot_targets),
        ("ws_spread", "boards", Transport::WebSocket, &spread_targets),
    ];
    let mut table = Table::new();
    let mut headline = Vec::new();
    let mut results = serde_json::Map::new();
    let mut errors = 0;
    let mut figures = Vec::new();
    let mut statements = match target.postgres_url() {
        Some(url) => match StatementMeter::connect(&url).await {
            Ok(meter) => Some(meter),
            Err(why) => {
                headline.push(format!("pg_stat_statements: not measured ({why})"));
                None
            }
        },
        None => None,
    };
    for (n, (key, shape, transport, targets)) in phases.into_iter().enumerate() {
        let shape =
            if key.ends_with("spread") { format!("{} {shape}", args.boards) } else { shape.into() };
        let label = format!("{} {shape} ({})", transport.name(), args.writers);
        progress(format!("{}/5 {label} writers, {} s", n + 1, args.secs));
        // Outside the CPU meter: the snapshot's backend serves the same database.
        let statements_before = match statements.as_mut() {
            Some(meter) => meter.snapshot().await.ok(),
            None => None,
        };
        cpu.begin();
        let (recorder, elapsed) = match transport {
            Transport::Rest => write_phase(&api, &owner, targets, run_for).await?,
            Transport::WebSocket => {
                ws_write_phase(target.base_url(), &owner.access_token, targets, run_for).await?
            }
        };
        cpu.end(key);
        let statements_used = match (statements.as_mut(), statements_before) {
            (Some(meter), Some(before)) => {
                meter.snapshot().await.ok().map(|now| now.since(&before))
            }
            _ => None,
        };
        let summary = recorder.summary();
        let rate = recorder.ok_count() as f64 / elapsed.as_secs_f64();
        errors += summary.error_count();
        table.row(format!("item update, {shape}, {}", transport.name()), &summary, Some(rate));
        headline.push(format!(
            "{shape} over {}: {rate:.0} acknowledged updates/s, p50 {} p99 {}",
            transport.name(),
            format_ms(summary.p50_ms),
            format_ms(summary.p99_ms)
        ));
        let per = cpu
            .phase(key)
            .and_then(|used| CpuPer::of(used, recorder.ok_count(), "acknowledged update", false));
        let figure = Figure::alone(
            format!("{} updates/s, {shape}, {} writers", transport.name(), args.writers),
            "/s",
            Some(rate),
        )
        .cpu(per);
        figures.push(figure);
        if key == "ws_hot" {
            figures.push(
                Figure::alone(format!("WebSocket p99, {shape}"), "ms", summary.p99_ms)
                    .goal("≤ 20 ms"),
            );
            // The rate reflects the cost per update only if the phase keeps the machine busy.
            let busy = cpu.phase(key).map(|used| 100.0 * used.busy_share(crate::machine::cores()));
            figures.push(
                Figure::alone(format!("machine CPU busy, {shape}, WebSocket"), "%", busy)
                    .goal("≥ 90%"),
            );
        }
        let per_update = statements_used.as_ref().and_then(|used| used.per(recorder.ok_count()));
        if let Some((count, micros)) = per_update {
            headline.push(format!(
                "  Postgres (pg_stat_statements): {count:.3} statements and {micros:.1} µs of \
                 execution per update"
            ));
            if key == "ws_hot" {
                figures.push(Figure::alone(
                    format!(
                        "Postgres execution µs per update, {shape}, WebSocket (pg_stat_statements)"
                    ),
                    "µs",
                    Some(micros),
                ));
                figures.push(Figure::alone(
                    format!("updates per Postgres statement, {shape}, WebSocket"),
                    "",
                    (count > 0.0).then(|| 1.0 / count),
                ));
            }
        }
        results.insert(
            key.into(),
            json!({
                "updates_per_sec": rate,
                "latency": summary,
                "statements": statements_used.map(|used| json!({
                    "per_update": per_update.map(|(count, _)| count),
                    "exec_us_per_update": per_update.map(|(_, micros)| micros),
                    "total": used,
                })),
            }),
        );
    }
    match (target.postgres_url(), args.no_pgbench) {
        (Some(url), false) => {
            progress(format!(
                "5/5 pgbench: {} clients, single-row INSERT, {} s",
                args.writers, args.secs
            ));
            cpu.begin();
            let bench = pgbench(&url, args.writers, args.secs).await?;
            cpu.end_unattributed("pgbench");
            for figure in figures.iter_mut().filter(|f| f.unit == "/s") {
                figure.baseline_label = "pgbench tps".into();
                figure.baseline = Some(bench.tps);
                figure.ratio = ratio(figure.value, Some(bench.tps));
                if figure.figure.starts_with("WebSocket updates/s, 1 hot board") {
                    figure.goal = Some("≥ 2× pgbench".into());
                }
            }
            let per = cpu.phase("pgbench").and_then(|used| {
                CpuPer::of(used, bench.summary.count, "transaction (client in other)", true)
            });
            figures.push(
                Figure::alone(
                    format!("pgbench single-row INSERT tps, {} clients", args.writers),
                    "/s",
                    Some(bench.tps),
                )
                .cpu(per.clone()),
            );
            let ours = figures
                .iter()
                .find(|f| f.goal.as_deref() == Some("≥ 2× pgbench"))
                .and_then(|f| f.cpu.as_ref()?.total_us);
            figures.push(
                Figure::beside(
                    "total CPU per WebSocket hot-board update",
                    "µs",
                    ours,
                    "pgbench µs per transaction",
                    per.and_then(|p| p.total_us),
                )
                .goal("≤ 0.50×"),
            );
            table.row("pgbench single-row INSERT", &bench.summary, Some(bench.tps));
            let ratios: Vec<String> = results
                .iter()
                .filter_map(|(key, r)| {
                    Some(format!("{key} {:.2}x", r["updates_per_sec"].as_f64()? / bench.tps))
                })
                .collect();
            headline.push(format!(
                "pgbench at {} clients: {:.0} tps, p50 {} p99 {}; ratios to it: {}",
                args.writers,
                bench.tps,
                format_ms(bench.summary.p50_ms),
                format_ms(bench.summary.p99_ms),
                ratios.join(", ")
            ));
            results.insert("pgbench".into(), json!({ "tps": bench.tps, "latency": bench.summary }));
        }
        (None, false) => headline.push("pgbench: skipped (the server is not on Postgres)".into()),
        (_, true) => headline.push("pgbench: skipped (--no-pgbench)".into()),
    }
    let mut warnings = cpu.warnings();
    if errors > 0 {
        warnings.push("some updates failed; see the err column".into());
    }
    results.insert("cpu".into(), cpu.to_json());
    Ok(ScenarioReport {
        table,
        headline,
        warnings,
        parameters: serde_json::to_value(args)?,
        results: Value::Object(results),
        figures,
    })
}

fn progress(message: String) {
    eprintln!("  {message}");
}

async fn create_board(
    api: &Api,
    owner: &Account,
    org: &str,
    name: &str,
) -> anyhow::Result<BenchBoard> {
    let board = api.create_board(owner, org, name).await?;
    let id = board.board.id.to_string();
    let body = CreateColumn {
        title: "Notes".into(),
        column_type: "text".into(),
        settings: None,
        before: None,
        after: None,
    };
    let column: Column = api::expect(
        api.request(Method::POST, &format!("api/v1/boards/{id}/columns"))?
            .bearer_auth(&owner.access_token)
            .json(&body),
        201,
    )
    .await?;
    Ok(BenchBoard { id, column: column.id.to_string() })
}

async fn create_items(
    api: &Api,
    owner: &Account,
    board: &BenchBoard,
    n: usize,
) -> anyhow::Result<Vec<String>> {
    let snapshot: Snapshot = api::expect(
        api.request(Method::GET, &format!("api/v1/boards/{}", board.id))?
            .bearer_auth(&owner.access_token),
        200,
    )
    .await?;
    let group = snapshot.groups.first().context("the board has no group")?.id;
    let mut items = Vec::with_capacity(n);
    for i in 0..n {
        let body = CreateItem {
            group_id: group,
            name: format!("item {i}"),
            values: BTreeMap::new(),
            before: None,
            after: None,
        };
        let item: Item = api::expect(
            api.request(Method::POST, &format!("api/v1/boards/{}/items", board.id))?
                .bearer_auth(&owner.access_token)
                .json(&body),
            201,
        )
        .await?;
        items.push(item.id.to_string());
    }
    Ok(items)
}

/// The body setting `column` of an item to `text`.
fn set_value(column: &str, text: String) -> anyhow::Result<UpdateItem> {
    let column = column.parse().with_context(|| format!("column id {column}"))?;
    Ok(UpdateItem { values: BTreeMap::from([(column, json!(text))]), ..UpdateItem::default() })
}

/// Each writer updates its (board, column, item) as fast as acknowledged, for `run_for`.
async fn write_phase(
    api: &Api,
    owner: &Account,
    targets: &[(String, String, String)],
    run_for: Duration,
) -> anyhow::Result<(Recorder, Duration)> {
    let started = Instant::now();
    let deadline = started + run_for;
    let mut writers = JoinSet::new();
    for (w, (board, column, item)) in targets.iter().cloned().enumerate() {
        let api = api.clone();
        let token = owner.access_token.clone();
        writers.spawn(async move {
            let mut recorder = Recorder::new();
            let path = format!("api/v1/boards/{board}/items/{item}");
            let mut n: u64 = 0;
            while Instant::now() < deadline {
                n += 1;
                let body = set_value(&column, format!("w{w} #{n}"))?;
                let request = match api.request(Method::PATCH, &path) {
                    Ok(r) => r.bearer_auth(&token).json(&body),
                    Err(err) => return Err(err),
                };
                let sent = Instant::now();
                match request.send().await {
                    Ok(response) if response.status().as_u16() == 200 => {
                        let _ = response.bytes().await;
                        recorder.record(sent.elapsed());
                    }
                    Ok(response) => {
                        recorder.record_error(format!("status {}", response.status().as_u16()))
                    }
                    Err(err) => recorder.record_error(if err.is_timeout() {
                        "timeout"
                    } else {
                        "transport"
                    }),
                }
            }
            Ok(recorder)
        });
    }
    let mut all = Recorder::new();
    while let Some(joined) = writers.join_next().await {
        all.merge(joined.context("a writer panicked")??);
    }
    Ok((all, started.elapsed()))
}

/// How writers reach the server.
#[derive(Debug, Clone, Copy)]
enum Transport {
    /// `PATCH /api/v1/boards/{board}/items/{item}`, one request at a time per writer.
    Rest,
    /// An `update_item` frame on the writer's own bot socket, one at a time.
    WebSocket,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Rest => "REST",
            Transport::WebSocket => "WebSocket",
        }
    }
}

/// Like [`write_phase`], each writer on its own socket: sends `update_item`, waits for its
/// reply (which comes after the commit), and sends the next.
async fn ws_write_phase(
    base: &url::Url,
    token: &str,
    targets: &[(String, String, String)],
    run_for: Duration,
) -> anyhow::Result<(Recorder, Duration)> {
    let dialer = crate::net::Dialer::for_url(base)?;
    let mut sockets = Vec::with_capacity(targets.len());
    for _ in targets {
        let socket = crate::socket::bot_socket(&dialer, base, token).await;
        sockets.push(socket.context("opening a writer socket")?);
    }
    let started = Instant::now();
    let deadline = started + run_for;
    let mut writers = JoinSet::new();
    for (w, ((board, column, item), mut ws)) in targets.iter().cloned().zip(sockets).enumerate() {
        writers.spawn(async move {
            let mut recorder = Recorder::new();
            let mut n: u64 = 0;
            while Instant::now() < deadline {
                n += 1;
                let update = set_value(&column, format!("w{w} #{n}"))?;
                let message = socket::update_item(&board, &item, update);
                let frame = socket::encode(Encoding::Json, n, message)?;
                let sent = Instant::now();
                ws.send(frame).await.context("writer send")?;
                loop {
                    let message = tokio::time::timeout(Duration::from_secs(30), ws.next())
                        .await
                        .context("no reply within 30 s")?
                        .ok_or_else(|| anyhow::anyhow!("the writer's socket closed"))??;
                    let Message::Text(text) = message else { continue };
                    let reply: ReplyHead = Encoding::Json.decode(text.as_bytes())?;
                    if reply.kind != FrameKind::Reply || reply.id != Some(RequestId::Number(n)) {
                        continue;
                    }
                    match reply.error {
                        None => recorder.record(sent.elapsed()),
                        Some(error) => recorder.record_error(error.code.as_str().to_owned()),
                    }
                    break;
                }
            }
            let _ = ws.close(None).await;
            anyhow::Ok(recorder)
        });
    }
    let mut all = Recorder::new();
    while let Some(joined) = writers.join_next().await {
        all.merge(joined.context("a writer panicked")??);
    }
    Ok((all, started.elapsed()))
}

/// What a writer reads of each frame: enough to match its reply and see whether it failed.
/// The item in `data` is skipped unread, as pgbench's client reads back only a status: the tool's
/// CPU counts in the total per update, and building the item would be the tool's cost, not the
/// server's.
#[derive(serde::Deserialize)]
struct ReplyHead {
    #[serde(rename = "type")]
    kind: FrameKind,
    id: Option<RequestId>,
    error: Option<boardroom_protocol::ErrorBody>,
}

#[derive(serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum FrameKind {
    Reply,
    #[serde(other)]
    Other,
}

/// What pgbench measured.
struct PgBench {
    tps: f64,
    summary: Summary,
}

/// Runs `sql` with psql on the database at `url`, stopping at the first error.
async fn psql(url: &url::Url, sql: &str) -> anyhow::Result<()> {
    let status = tokio::process::Command::new("psql")
        .arg(url.as_str())
        .args(["-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .status()
        .await
        .context("running psql (is the PostgreSQL client installed?)")?;
    if !status.success() {
        bail!("psql failed on: {sql}");
    }
    Ok(())
}

/// Runs pgbench with `clients` clients for `secs` seconds on the database at `url`: one
/// single-row `INSERT` per transaction, every transaction's latency logged and summarized here.
async fn pgbench(url: &url::Url, clients: u32, secs: u64) -> anyhow::Result<PgBench> {
    let dir = tempfile::tempdir().context("cannot create a directory for pgbench")?;
    let script = dir.path().join("insert.sql");
    std::fs::write(
        &script,
        "INSERT INTO loadtest_pgbench (client, at) VALUES (:client_id, now());\n",
    )?;
    // A fresh table each run (so runs compare), dropped afterwards (so runs leave nothing).
    psql(url, "DROP TABLE IF EXISTS loadtest_pgbench; CREATE TABLE loadtest_pgbench (id bigserial PRIMARY KEY, client int, at timestamptz)")
        .await
        .context("creating the pgbench table")?;
    let out = tokio::process::Command::new("pgbench")
        .current_dir(dir.path())
        .args(["-n", "-c", &clients.to_string(), "-j", "2", "-T", &secs.to_string(), "-l", "-f"])
        .arg(&script)
        .arg(url.as_str())
        .output()
        .await
        .context("running pgbench (is it installed?)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let dropped = psql(url, "DROP TABLE IF EXISTS loadtest_pgbench").await;
    if !out.status.success() {
        bail!("pgbench failed: {}{}", stdout, String::from_utf8_lossy(&out.stderr));
    }
    dropped.context("dropping the pgbench table")?;
    let tps = stdout
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.trim_start_matches("tps = ").split_whitespace().next())
        .and_then(|t| t.parse::<f64>().ok())
        .context("pgbench printed no tps")?;
    // Per-transaction logs: "client_id transaction_no time_us script_no time_epoch time_us".
    let mut latencies_us: Vec<u64> = Vec::new();
    for entry in std::fs::read_dir(dir.path())? {
        let path = entry?.path();
        if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("pgbench_log")) {
            for line in std::fs::read_to_string(&path)?.lines() {
                if let Some(us) = line.split_whitespace().nth(2).and_then(|t| t.parse::<u64>().ok())
                {
                    latencies_us.push(us);
                }
            }
        }
    }
    let mut recorder = Recorder::new();
    for us in &latencies_us {
        recorder.record(Duration::from_micros(*us));
    }
    Ok(PgBench { tps, summary: recorder.summary() })
}
