//! `boardroom-loadtest`: drives a Boardroom server with many clients and reports latency and
//! throughput, as a table on stdout and as JSON (`--json`, default
//! `target/loadtest/<scenario>.json`).
//!
//! Run it in release mode: `cargo run --release -p boardroom-loadtest -- <scenario>`. By default
//! it starts the `boardroom` binary built beside it on a fresh database and stops it at the end;
//! `--url` targets a running server instead. See `loadtest/README.md`.
//!
//! # Layout
//! - [`target`]: the server under load, started and stopped here or named by `--url`.
//! - [`api`]: a thin REST client for set-up (accounts, organizations, API keys).
//! - [`machine`]: CPU time per phase: this tool, the server, and any other work on the machine.
//! - [`stats`]: latency recorders, percentiles, histograms, the table and the JSON report.
//! - [`all`]: `all`, every scenario of issue #19 at its sizes, each on a fresh server, as one
//!   Markdown table and one JSON file of key figures (medians over `--runs`).
//! - [`auth`]: scenario `auth`, the cost of authentication at bcrypt cost 12.
//! - [`login_flood`]: scenario `login-flood`, delivery and cheap-request latency of live users
//!   during a flood of logins, beside a quiet phase.
//! - [`login`]: what `auth` and `login-flood` share: timed requests, probes, the login floods.
//! - [`backup`]: scenario `backup`, the RTO: backup, restore and start-up times of a filled server.
//! - [`boards`]: scenario `boards`, acknowledged item updates per second (group commit), beside
//!   pgbench on Postgres.
//! - [`cluster`]: scenario `cluster`, several nodes over NATS beside one node alone: sockets
//!   held through client processes (hidden subcommand `cluster-client`), memory per socket per
//!   node, cross-node delivery latency, writes through non-owner nodes.
//! - [`connections`], [`fanout`], [`reconnect_storm`]: the WebSocket scenarios of those names,
//!   each beside the bare baseline.
//! - [`socket`]: what those share on the Boardroom side: options, set-up, the protocol client,
//!   opening many sockets.
//! - [`writer`]: the stamped writer of `fanout` and `reconnect-storm`, and reading its stamps.
//! - [`baseline`]: the bare tokio-tungstenite broadcast server those are compared with, run in
//!   a child process (hidden subcommand `baseline-server`).
//! - [`net`]: source addresses across 127.0.0.0/8, the open-file limit, process memory.
//!
//! A scenario is one file exposing a `clap::Args` struct and
//! `run(&Target, &Args) -> anyhow::Result<ScenarioReport>`, and one variant of [`Scenario`].

mod all;
mod api;
mod auth;
mod backup;
mod baseline;
mod boards;
mod cluster;
mod connections;
mod fanout;
mod login;
mod login_flood;
mod machine;
mod net;
mod pg_statements;
mod reconnect_storm;
mod socket;
mod stats;
mod target;
mod writer;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, Context};
use clap::{Parser, Subcommand};

use crate::stats::{Environment, ScenarioReport};
use crate::target::{Target, TargetArgs};

/// Load generator for the Boardroom server.
#[derive(Debug, Parser)]
#[command(name = "boardroom-loadtest", version, about)]
struct Cli {
    /// The scenario to run.
    #[command(subcommand)]
    scenario: Scenario,

    /// Where the server is, or how to start it.
    #[command(flatten)]
    target: TargetArgs,

    /// Where to write the JSON report. Default: `target/loadtest/<scenario>.json`; the started
    /// server's log goes beside it, as `auth-server.log` beside `auth.json`. For `all`: its JSON
    /// (default `target/loadtest/all.json`), with `all.md` beside it and each run's reports in
    /// `all/` beside that.
    #[arg(long, env = "LOADTEST_JSON", global = true)]
    json: Option<PathBuf>,
}

/// The scenarios.
#[derive(Debug, Subcommand)]
enum Scenario {
    /// Every scenario of issue #19 at its sizes, each on its own fresh server (`--runs` times),
    /// as one Markdown table and one JSON file of key figures: `target/loadtest/all.md` and
    /// `all.json` (`--json` moves both).
    All(all::AllArgs),
    /// Authentication cost: API-key requests cold and warm, logins per second, and cheap-request
    /// latency during a login flood.
    Auth(auth::AuthArgs),
    /// The RTO: fill items over many boards, then time backup (and its size), restore into a
    /// fresh database, and a new server's start until `/readyz`.
    Backup(backup::BackupArgs),
    /// Acknowledged item updates per second with many writers, on one hot board and spread
    /// over many, beside pgbench's single-row INSERT rate on Postgres.
    Boards(boards::BoardsArgs),
    /// Several nodes on one Postgres with NATS between them, beside one node alone: sockets
    /// held over the nodes, memory per socket per node, cross-node delivery latency and writes
    /// through non-owner nodes. Needs --database-url.
    Cluster(cluster::ClusterArgs),
    /// Hold many authenticated, subscribed sockets; server memory per socket, beside the bare
    /// baseline.
    Connections(connections::ConnectionsArgs),
    /// Many subscribers of one board, one writer: event latency, deliveries per second and
    /// exactly-once delivery, beside the bare baseline.
    Fanout(fanout::FanoutArgs),
    /// Live users during a login flood: delivery p99 to subscribers and cheap REST p99, quiet
    /// and then while cost-12 logins (right and wrong passwords) flood the server.
    LoginFlood(login_flood::LoginFloodArgs),
    /// Every subscriber drops at once and resumes with `after_seq`: no gap, no duplicate.
    ReconnectStorm(reconnect_storm::ReconnectArgs),
    /// Internal: serve the bare baseline (started by the WebSocket scenarios).
    #[command(hide = true)]
    BaselineServer,
    /// Internal: hold sockets for the `cluster` scenario (started by it).
    #[command(hide = true)]
    ClusterClient,
}

impl Scenario {
    /// The scenario's name, as typed on the command line.
    fn name(&self) -> &'static str {
        match self {
            Scenario::All(_) => "all",
            Scenario::Auth(_) => "auth",
            Scenario::Backup(_) => "backup",
            Scenario::Boards(_) => "boards",
            Scenario::Cluster(_) => "cluster",
            Scenario::Connections(_) => "connections",
            Scenario::Fanout(_) => "fanout",
            Scenario::LoginFlood(_) => "login-flood",
            Scenario::ReconnectStorm(_) => "reconnect-storm",
            Scenario::BaselineServer => "baseline-server",
            Scenario::ClusterClient => "cluster-client",
        }
    }

    /// What the started server gets instead of the tool's raised limits, for this scenario.
    fn server_env(&self) -> Vec<(String, String)> {
        match self {
            Scenario::LoginFlood(args) => args.server_env(),
            _ => Vec::new(),
        }
    }

    async fn run(&self, target: &Target) -> anyhow::Result<ScenarioReport> {
        match self {
            Scenario::All(_) => anyhow::bail!("all is not one scenario"),
            Scenario::Auth(args) => auth::run(target, args).await,
            Scenario::Backup(args) => backup::run(target, args).await,
            Scenario::Boards(args) => boards::run(target, args).await,
            Scenario::Cluster(args) => cluster::run(target, args).await,
            Scenario::Connections(args) => connections::run(target, args).await,
            Scenario::Fanout(args) => fanout::run(target, args).await,
            Scenario::LoginFlood(args) => login_flood::run(target, args).await,
            Scenario::ReconnectStorm(args) => reconnect_storm::run(target, args).await,
            Scenario::BaselineServer => anyhow::bail!("baseline-server is not a scenario"),
            Scenario::ClusterClient => anyhow::bail!("cluster-client is not a scenario"),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match cli.scenario {
        Scenario::BaselineServer => runtime.block_on(baseline::child_main()),
        Scenario::ClusterClient => runtime.block_on(cluster::client_main()),
        _ => runtime.block_on(run(cli)),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let name = cli.scenario.name();
    // Thousands of sockets need more descriptors than the usual soft limit of 1024.
    if let Some(limit) = net::raise_nofile_limit() {
        eprintln!("{name}: open-file limit {limit} (the started server has its own)");
    }
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build of the load generator; measure with --release");
    }
    if let Scenario::All(args) = &cli.scenario {
        return all::run(args, &cli.target, cli.json).await;
    }
    let json_path =
        cli.json.unwrap_or_else(|| PathBuf::from("target/loadtest").join(format!("{name}.json")));
    let mut target = cli.target.clone();
    target.server_env = cli.scenario.server_env();
    run_one(&cli.scenario, &target, &json_path).await.map(|_| ())
}

/// Runs one scenario on its own server (started here unless `--url`), prints its table and
/// headline, writes its JSON report to `json_path` (the server's log beside it) and answers the
/// report.
async fn run_one(
    scenario: &Scenario,
    target_args: &TargetArgs,
    json_path: &Path,
) -> anyhow::Result<ScenarioReport> {
    let name = scenario.name();
    let stem = json_path.file_stem().map(|s| s.to_string_lossy().into_owned());
    let server_log =
        json_path.with_file_name(format!("{}-server.log", stem.as_deref().unwrap_or(name)));
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    // Recorded only: it lags by a minute (a previous run still shows in it); the per-phase CPU
    // record is what tells whether other work disturbed this run.
    let load_average_before = stats::load_average();

    let target = Target::start(target_args, &server_log).await?;
    let server_binary_modified = target
        .server_binary()
        .and_then(|bin| std::fs::metadata(bin).ok()?.modified().ok())
        .map(|t| {
            chrono::DateTime::<chrono::Utc>::from(t)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        });
    let mut environment = Environment {
        cores: machine::cores(),
        os: std::env::consts::OS,
        arch: std::env::consts::ARCH,
        backend: target.backend().to_owned(),
        target_url: target.base_url().to_string(),
        managed_server: target.is_managed(),
        server_bcrypt_threads: target.bcrypt_threads(),
        server_binary: target.server_binary().map(|bin| bin.display().to_string()),
        server_binary_modified,
        load_average_before,
        load_average_after: None,
        loadtest_release_build: !cfg!(debug_assertions),
        loadtest_version: env!("CARGO_PKG_VERSION"),
        started_at,
    };
    eprintln!(
        "{name}: target {} ({}, {}), {} cores",
        environment.target_url,
        environment.backend,
        if environment.managed_server { "started by this tool" } else { "external" },
        environment.cores
    );

    // Whatever happens to the scenario, a server this tool started is stopped and its database
    // dropped before the tool exits.
    let outcome = tokio::select! {
        outcome = scenario.run(&target) => outcome,
        Ok(()) = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    environment.load_average_after = stats::load_average();
    let stopped = target.stop().await;
    let report = match outcome {
        Ok(report) => report,
        // A server that died mid-run explains the failure better than the failed request does.
        Err(err) => {
            match stopped {
                Err(stop) => eprintln!("error: {stop:#}"),
                Ok(()) if environment.managed_server => eprintln!(
                    "the server's log ({}) ends:\n{}",
                    server_log.display(),
                    target::log_tail(&server_log)
                ),
                Ok(()) => {}
            }
            return Err(err.context(format!("scenario {name} failed")));
        }
    };

    println!("\n{name} ({} backend, {} cores)\n", environment.backend, environment.cores);
    print!("{}", report.table.render());
    println!();
    for line in &report.headline {
        println!("{line}");
    }
    let failed: u64 = report.table.rows().iter().map(|r| r.summary.error_count()).sum();
    if failed > 0 {
        eprintln!("warning: {failed} requests failed; see the err column and the JSON report");
    }
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    stats::write_json(json_path, &report.to_json(name, &environment))?;
    println!("\nJSON report: {}", json_path.display());
    if environment.managed_server {
        println!("server log:  {}", server_log.display());
    }
    stopped.context("stopping the server")?;
    Ok(report)
}
