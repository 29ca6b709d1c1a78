//! Scenario `reconnect-storm`: every subscriber drops, writes continue, and every one resumes at
//! once with `after_seq` and must replay exactly what it missed, with no gap and no duplicate;
//! beside the bare baseline's reconnect (no authentication, no replay) in the same run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use boardroom_protocol::Encoding;
use serde::Serialize;
use serde_json::json;
use tokio::task::JoinSet;

use crate::baseline::BaselineServer;
use crate::machine::PhaseMeter;
use crate::net::Dialer;
use crate::socket::{concurrency, open_many, Common, Setup};
use crate::stats::{progress, ratio, show_ratio, CpuPer, Figure, Recorder, ScenarioReport, Table};
use crate::target::Target;
use crate::writer::{write, Flavor};

/// `reconnect-storm`.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct ReconnectArgs {
    #[command(flatten)]
    common: Common,
    /// Subscribers that all drop and come back at once.
    #[arg(long, default_value_t = 200)]
    subscribers: usize,
    /// Items written while they are away.
    #[arg(long, default_value_t = 50)]
    events_while_away: usize,
}

/// `reconnect-storm`: every subscriber drops, writes continue, every one resumes at once with
/// `after_seq` and must replay exactly what it missed; beside the baseline's bare reconnect.
pub async fn run(target: &Target, args: &ReconnectArgs) -> anyhow::Result<ScenarioReport> {
    let name = "reconnect-storm";
    let setup = Arc::new(Setup::create(&args.common, target.base_url()).await?);
    let mut cpu = PhaseMeter::new(target.server_pid(), target.database_name());
    // The baseline's phases, metered with its own process as the server.
    let mut base_cpu = PhaseMeter::new(None, None);
    let concurrency = concurrency(&args.common);
    progress(name, format!("boardroom: {} subscribers", args.subscribers));
    let (clients, _, failure) = open_many(args.subscribers, concurrency, || {
        let setup = Arc::clone(&setup);
        async move { setup.subscriber(None).await }
    })
    .await;
    if let Some(failure) = failure {
        bail!("only {} subscribers opened: {failure}", clients.len());
    }
    let positions: Vec<i64> = clients.iter().map(|(_, seq)| *seq).collect();
    drop(clients);
    // Written under the default per-socket frame limit (50/s), while everyone is away.
    let writer = setup.connect(Encoding::Json).await?.ws;
    let make = |id: u64, name: &str| setup.create_item_frame(id, name);
    let written = write(
        writer,
        Flavor::Boardroom,
        make,
        (args.events_while_away, 40),
        (Duration::ZERO, 1),
        Instant::now(),
        || true,
    )
    .await?;
    let final_seq = written.final_seq;

    progress(name, "boardroom: the storm");
    cpu.begin();
    let started = Instant::now();
    let mut storm = JoinSet::new();
    for after in positions {
        let setup = Arc::clone(&setup);
        storm.spawn(async move {
            let began = Instant::now();
            let (mut client, _) = setup.subscriber(Some(after)).await?;
            let mut last = after;
            let (mut gaps, mut duplicates) = (0u64, 0u64);
            while last < final_seq {
                let event = client.next_event().await?;
                let seq = event.seq;
                if seq <= last {
                    duplicates += 1;
                } else {
                    gaps += u64::try_from(seq - last - 1).unwrap_or(0);
                    last = seq;
                }
            }
            anyhow::Ok((began.elapsed(), gaps, duplicates))
        });
    }
    let mut resumed = Recorder::new();
    let (mut gaps, mut duplicates, mut first_error) = (0u64, 0u64, None);
    while let Some(done) = storm.join_next().await {
        match done.context("a reconnecting task failed")? {
            Ok((took, g, d)) => {
                resumed.record(took);
                gaps += g;
                duplicates += d;
            }
            Err(err) => {
                resumed.record_error("resume");
                first_error.get_or_insert(format!("{err:#}"));
            }
        }
    }
    let storm_secs = started.elapsed().as_secs_f64();
    cpu.end("boardroom_storm");
    let resumed = resumed.summary();

    let baseline = if args.common.no_baseline {
        None
    } else {
        let server = BaselineServer::start().await?;
        base_cpu = PhaseMeter::new(server.pid(), None);
        let dialer = Arc::new(Dialer::new(server.addr()));
        let url = server.url();
        let (sockets, _, failure) = open_many(args.subscribers, concurrency, || {
            let (dialer, url) = (Arc::clone(&dialer), url.clone());
            async move { dialer.websocket(url.as_str()).await }
        })
        .await;
        if let Some(failure) = failure {
            bail!("only {} baseline sockets opened: {failure}", sockets.len());
        }
        let count = sockets.len();
        drop(sockets);
        base_cpu.begin();
        let started = Instant::now();
        let (_, latency, _) = open_many(count, count, || {
            let (dialer, url) = (Arc::clone(&dialer), url.clone());
            async move { dialer.websocket(url.as_str()).await }
        })
        .await;
        let secs = started.elapsed().as_secs_f64();
        base_cpu.end("baseline_storm");
        Some((latency.summary(), secs))
    };

    let mut table = Table::new();
    let rate = |count: u64, secs: f64| Some(count as f64 / secs.max(f64::EPSILON));
    table.row(
        format!("boardroom: reconnect + resume + replay {}", args.events_while_away),
        &resumed,
        rate(resumed.count, storm_secs),
    );
    let mut headline = vec![format!(
        "boardroom: {} of {} resumed in {storm_secs:.2} s, each replaying {} events: {gaps} gaps, {duplicates} duplicates{}",
        resumed.count,
        args.subscribers,
        args.events_while_away,
        first_error.as_deref().map(|e| format!("; first failure: {e}")).unwrap_or_default()
    )];
    let mut warnings = [cpu.warnings(), base_cpu.warnings()].concat();
    if gaps + duplicates + resumed.error_count() > 0 {
        warnings.push(format!(
            "boardroom: {gaps} gaps, {duplicates} duplicates, {} failed resumes",
            resumed.error_count()
        ));
    }
    if let Some((base, secs)) = &baseline {
        table.row("baseline: reconnect (no auth, no replay)", base, rate(base.count, *secs));
        headline.push(format!(
            "baseline: {} reconnected in {secs:.2} s; ratios boardroom/baseline: storm time {}, p99 {}",
            base.count,
            show_ratio(ratio(Some(storm_secs), Some(*secs))),
            show_ratio(ratio(resumed.p99_ms, base.p99_ms)),
        ));
    }
    let results = json!({
        "boardroom": {
            "resumed": resumed,
            "storm_secs": storm_secs,
            "events_replayed_each": args.events_while_away,
            "final_seq": final_seq,
            "gaps": gaps,
            "duplicates": duplicates,
            "first_failure": first_error,
        },
        "baseline": baseline.as_ref().map(|(s, secs)| json!({"reconnect": s, "storm_secs": secs})),
        "cpu": {"boardroom": cpu.to_json(), "baseline": base_cpu.to_json()},
    });
    let figures = vec![
        Figure::beside(
            format!(
                "reconnect storm, {} subscribers resuming {} events: seconds",
                args.subscribers, args.events_while_away
            ),
            "s",
            Some((storm_secs * 1000.0).round() / 1000.0),
            "bare reconnects",
            baseline.as_ref().map(|(_, secs)| (secs * 1000.0).round() / 1000.0),
        )
        .cpu(
            cpu.phase("boardroom_storm")
                .and_then(|used| CpuPer::of(used, resumed.count, "resumed socket", false)),
        ),
        Figure::alone(
            "resumes with a gap, duplicate or failure",
            "",
            Some((gaps + duplicates + resumed.error_count()) as f64),
        )
        .goal("0"),
    ];
    Ok(ScenarioReport {
        table,
        headline,
        warnings,
        parameters: serde_json::to_value(args)?,
        results,
        figures,
    })
}
