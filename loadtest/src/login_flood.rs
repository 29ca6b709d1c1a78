//! Scenario `login-flood`: does a flood of cost-12 logins hurt the users already connected?
//!
//! Set-up: `--subscribers` sockets subscribed to one board, an API key for the REST probe, and
//! `--login-clients` accounts for the flood. Then two phases of `--phase-secs` each, measured the
//! same way:
//!
//! 1. **quiet**: the stamped writer of [`crate::writer`] creates items at `--rate` per second;
//!    every subscriber times each delivery and checks its `seq` (as `fanout` does); meanwhile
//!    `GET /healthz` and a warm API-key `GET /api/v1/orgs/{org}` are probed one request at a time
//!    every `--probe-interval-ms` (as `auth` does).
//! 2. **flood**: the same, while the server is flooded with logins (from a second before the
//!    phase until its end): `--login-clients` clients log in with the right password, each again
//!    as soon as answered (successful logins are not rate-limited: the worst case for bcrypt),
//!    and `--wrong-clients` clients log in with wrong passwords, each from its own loopback
//!    source address until that address is refused `429` by the per-IP limit, then from the next
//!    ([`crate::login::wrong_flood`]). The server runs with the real per-IP limit for this
//!    (`--login-ip-limit`, default 50 like the server's own).
//!
//! The goal (issue #19): during the flood, delivery p99 and cheap REST p99 rise by at most 20%.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use boardroom_protocol::Encoding;
use reqwest::Method;
use serde::Serialize;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::api::Api;
use crate::fanout::{read_until, Tally};
use crate::login::{
    create_keys, join, login_flood, register_accounts, spawn_probe, timed, WrongFlood,
};
use crate::machine::PhaseMeter;
use crate::net::Finish;
use crate::socket::{open_many, Common, Setup};
use crate::stats::{
    format_ms, progress, ratio, show_ratio, CpuPer, Figure, Recorder, ScenarioReport, Summary,
    Table,
};
use crate::target::Target;
use crate::writer::{Flavor, Writer};

/// The goal: a figure during the flood at most this many times its quiet value.
pub const GOAL_RATIO: f64 = 1.20;

/// `login-flood`.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct LoginFloodArgs {
    /// Frame encoding of the subscribers: json or msgpack (the writer always speaks JSON).
    #[arg(long, default_value = "json")]
    pub encoding: String,
    /// Sockets opened at once while setting up.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub open_concurrency: u64,
    /// Sockets subscribed to the board, each timing every delivery.
    #[arg(long, default_value_t = 2000)]
    pub subscribers: usize,
    /// Items the writer creates per second, in both phases.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub rate: u32,
    /// Seconds of each phase (quiet, then flood).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub phase_secs: u64,
    /// Milliseconds between two probe requests of the same kind.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub probe_interval_ms: u64,
    /// Clients logging in with the right password, each again as soon as answered.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=200))]
    pub login_clients: u32,
    /// Clients logging in with a wrong password, each from its own source address until it is
    /// refused with 429, then from the next (0: none).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub wrong_clients: u32,
    /// The started server's per-IP limit of failed logins (`BOARDROOM_LOGIN_IP_LIMIT`, per 15
    /// minutes); the server's default is 50. The tool's other scenarios raise it to 100000.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub login_ip_limit: u32,
}

impl LoginFloodArgs {
    /// What the started server gets instead of the tool's raised login limits: the per-IP
    /// limit of `--login-ip-limit` and the server's own per-(email, network) limit of 5.
    pub fn server_env(&self) -> Vec<(String, String)> {
        vec![
            ("BOARDROOM_LOGIN_IP_LIMIT".into(), self.login_ip_limit.to_string()),
            ("BOARDROOM_LOGIN_LIMIT".into(), "5".into()),
        ]
    }
}

/// Latency of one phase, as the subscribers and the probes saw it.
#[derive(Debug, Serialize)]
struct Phase {
    delivery: Summary,
    delivery_p999_ms: Option<f64>,
    healthz: Summary,
    org_get_warm_key: Summary,
}

/// Runs the scenario against `target`.
pub async fn run(target: &Target, args: &LoginFloodArgs) -> anyhow::Result<ScenarioReport> {
    let name = "login-flood";
    let common = Common {
        encoding: args.encoding.clone(),
        open_concurrency: args.open_concurrency,
        no_baseline: true,
    };
    let mut cpu = PhaseMeter::new(target.server_pid(), target.database_name());
    cpu.begin();
    progress(name, "set-up: the board, the probe's API key, the login accounts");
    let setup = Arc::new(Setup::create(&common, target.base_url()).await?);
    let api = Api::new(target.base_url())?;
    let owner = api.register("flood-owner").await.context("registering the owner")?;
    let org = api.create_org(&owner, "loadtest").await.context("creating the organization")?;
    let org_path = format!("api/v1/orgs/{org}");
    let Some(key) = create_keys(&api, &owner, &org, 1).await?.pop() else {
        bail!("no API key was created")
    };
    // The key's one bcrypt verify happens here, not in a measured phase.
    timed(&api, Method::GET, &org_path, Some(&key), None, &mut Recorder::new()).await?;
    let accounts = register_accounts(&api, args.login_clients as usize).await?;
    progress(name, format!("set-up: {} subscribers", args.subscribers));
    let concurrency = usize::try_from(args.open_concurrency).unwrap_or(256);
    let (sockets, _, failure) = open_many(args.subscribers, concurrency, || {
        let setup = Arc::clone(&setup);
        async move {
            let (client, seq) = setup.subscriber(None).await?;
            Ok((client.ws, seq))
        }
    })
    .await;
    if let Some(failure) = failure {
        bail!("only {} subscribers opened: {failure}", sockets.len());
    }
    let subscribers = sockets.len();
    cpu.end("setup");

    let epoch = Instant::now();
    let (finish_tx, finish) = watch::channel::<Finish>(None);
    let delivered = Arc::new(AtomicU64::new(0));
    let mut readers = JoinSet::new();
    for (ws, after) in sockets {
        readers.spawn(read_until(ws, after, epoch, finish.clone(), Arc::clone(&delivered)));
    }
    let make = {
        let setup = Arc::clone(&setup);
        move |id: u64, name: &str| setup.create_item_frame(id, name)
    };
    let mut writer =
        Writer::start(setup.connect(Encoding::Json).await?.ws, Flavor::Boardroom, epoch);
    let events = usize::try_from(args.phase_secs * u64::from(args.rate)).unwrap_or(usize::MAX);
    let phase_for = Duration::from_secs(args.phase_secs);
    let interval = Duration::from_millis(args.probe_interval_ms);
    let all_delivered = |phases: usize| {
        let due = (events * phases * subscribers) as u64;
        let delivered = Arc::clone(&delivered);
        move || delivered.load(Ordering::Relaxed) >= due
    };

    progress(name, format!("1/2 quiet: {events} items at {}/s, probes", args.rate));
    cpu.begin();
    let healthz = spawn_probe(target, "healthz", None, phase_for, interval)?;
    let org_probe = spawn_probe(target, &org_path, Some(&key), phase_for, interval)?;
    let paced = writer.paced(0, events, args.rate, &make).await;
    let (healthz_quiet, org_quiet) = (join(healthz).await?, join(org_probe).await?);
    paced?;
    writer.settle(&all_delivered(1)).await;
    cpu.end("quiet");

    progress(
        name,
        format!(
            "2/2 flood: {} right-password and {} wrong-password login clients, {events} items, probes",
            args.login_clients, args.wrong_clients
        ),
    );
    // The flood starts a second early, so the whole phase runs under a full bcrypt queue.
    let warm_up = Duration::from_secs(1);
    cpu.begin();
    let flood_for = phase_for + warm_up;
    let flood = async {
        let right = login_flood(target, &accounts, flood_for);
        let wrong = async {
            if args.wrong_clients == 0 {
                Ok(None)
            } else {
                crate::login::wrong_flood(target, args.wrong_clients, flood_for).await.map(Some)
            }
        };
        tokio::join!(right, wrong)
    };
    let measured = async {
        tokio::time::sleep(warm_up).await;
        let healthz = spawn_probe(target, "healthz", None, phase_for, interval)?;
        let org_probe = spawn_probe(target, &org_path, Some(&key), phase_for, interval)?;
        let paced = writer.paced(1, events, args.rate, &make).await;
        let probes = (join(healthz).await?, join(org_probe).await?);
        paced?;
        anyhow::Ok(probes)
    };
    let ((right, wrong), measured) = tokio::join!(flood, measured);
    let (healthz_flood, org_flood) = measured?;
    let (right, wrong) = (right?, wrong?);
    writer.settle(&all_delivered(2)).await;
    cpu.end("flood");

    let written = writer.finish().await;
    let final_seq = written.as_ref().map(|w| w.final_seq).unwrap_or(i64::MAX);
    let _ = finish_tx.send(Some((final_seq, Instant::now() + Duration::from_secs(60))));
    let mut tally = Tally::default();
    let mut sockets_lost = 0u64;
    while let Some(done) = readers.join_next().await {
        let one = done.context("a subscriber task failed")?;
        sockets_lost += u64::from(one.failed.is_some());
        tally.absorb(one);
    }
    let written = written?;

    let phase = |n: usize, healthz: &Recorder, org: &Recorder| Phase {
        delivery: tally.latency[n].summary(),
        delivery_p999_ms: tally.latency[n].quantile_ms(0.999),
        healthz: healthz.summary(),
        org_get_warm_key: org.summary(),
    };
    let quiet = phase(0, &healthz_quiet, &org_quiet);
    let flooded = phase(1, &healthz_flood, &org_flood);
    let wrong = wrong.unwrap_or_else(WrongFlood::none);
    let not_once = tally.gaps + tally.duplicates + tally.missing + sockets_lost + written.failed;

    let delivery_ratio = ratio(flooded.delivery.p99_ms, quiet.delivery.p99_ms);
    let healthz_ratio = ratio(flooded.healthz.p99_ms, quiet.healthz.p99_ms);
    let org_ratio = ratio(flooded.org_get_warm_key.p99_ms, quiet.org_get_warm_key.p99_ms);
    let verdict = |r: Option<f64>| match r {
        Some(r) if r <= GOAL_RATIO => "met",
        Some(_) => "NOT met",
        None => "unknown",
    };
    let bcrypt_per_sec = ((right.rate + wrong.rejected_per_sec) * 100.0).round() / 100.0;

    let mut table = Table::new();
    let deliveries = format!("delivery, {}/s to {subscribers} subscribers", args.rate);
    table.row(format!("{deliveries}, quiet"), &quiet.delivery, None);
    table.row(format!("{deliveries}, during flood"), &flooded.delivery, None);
    table.row("GET /healthz, quiet", &quiet.healthz, None);
    table.row("GET /healthz, during flood", &flooded.healthz, None);
    table.row("GET org (warm key), quiet", &quiet.org_get_warm_key, None);
    table.row("GET org (warm key), during flood", &flooded.org_get_warm_key, None);
    table.row(
        format!("login, right password, {} clients", args.login_clients),
        &right.latency,
        Some(right.rate),
    );
    table.row(
        format!("login, wrong password (401), {} clients", args.wrong_clients),
        &wrong.rejected,
        Some(wrong.rejected_per_sec),
    );
    table.row("login refused by the per-IP limit (429)", &wrong.refused, None);

    let headline = vec![
        format!(
            "goal: during the flood each p99 at most {GOAL_RATIO:.2}x its quiet value: delivery p99 {} -> {} ({}, {}); GET /healthz p99 {} -> {} ({}, {}); GET org (warm key) p99 {} -> {} ({}, {})",
            format_ms(quiet.delivery.p99_ms),
            format_ms(flooded.delivery.p99_ms),
            show_ratio(delivery_ratio),
            verdict(delivery_ratio),
            format_ms(quiet.healthz.p99_ms),
            format_ms(flooded.healthz.p99_ms),
            show_ratio(healthz_ratio),
            verdict(healthz_ratio),
            format_ms(quiet.org_get_warm_key.p99_ms),
            format_ms(flooded.org_get_warm_key.p99_ms),
            show_ratio(org_ratio),
            verdict(org_ratio),
        ),
        format!(
            "delivery p50 {} -> {}; p999 {} -> {}",
            format_ms(quiet.delivery.p50_ms),
            format_ms(flooded.delivery.p50_ms),
            format_ms(quiet.delivery_p999_ms),
            format_ms(flooded.delivery_p999_ms),
        ),
        format!(
            "flood: {:.1} right-password logins/s ({} clients) + {:.1} wrong-password 401s/s ({} clients) = {bcrypt_per_sec:.1} bcrypt verifies/s; {} refused 429 over {} source addresses ({} of them refused){}",
            right.rate,
            args.login_clients,
            wrong.rejected_per_sec,
            args.wrong_clients,
            wrong.refused.count,
            wrong.addresses,
            wrong.addresses_refused,
            if wrong.other.is_empty() { String::new() } else { format!("; other answers {:?}", wrong.other) },
        ),
        format!(
            "exactly once: {} deliveries, {} gaps, {} duplicates, {} missing, {} sockets lost, {} failed writes",
            tally.delivered, tally.gaps, tally.duplicates, tally.missing, sockets_lost, written.failed
        ),
        cpu_line(&cpu, "quiet"),
        cpu_line(&cpu, "flood"),
    ];
    let mut warnings = cpu.warnings();
    if not_once > 0 {
        warnings.push(format!(
            "not exactly once: {} gaps, {} duplicates, {} missing, {sockets_lost} sockets lost ({}), {} failed writes",
            tally.gaps,
            tally.duplicates,
            tally.missing,
            tally.failed.as_deref().unwrap_or("-"),
            written.failed
        ));
    }
    if right.latency.error_count() > 0 {
        warnings.push(format!("right-password logins failed: {:?}", right.latency.errors));
    }

    let per = |phase: &str, units: u64, what: &str| {
        cpu.phase(phase).and_then(|used| CpuPer::of(used, units, what, false))
    };
    let figures = vec![
        Figure::beside(
            format!("delivery p99 during a login flood, {}/s to {subscribers}", args.rate),
            "ms",
            flooded.delivery.p99_ms,
            "quiet phase",
            quiet.delivery.p99_ms,
        )
        .goal("≤ 1.20×")
        .cpu(per("quiet", quiet.delivery.count, "delivery (quiet phase)")),
        Figure::beside(
            "GET /healthz p99 during a login flood",
            "ms",
            flooded.healthz.p99_ms,
            "quiet phase",
            quiet.healthz.p99_ms,
        )
        .goal("≤ 1.20×"),
        Figure::beside(
            "GET org (warm key) p99 during a login flood",
            "ms",
            flooded.org_get_warm_key.p99_ms,
            "quiet phase",
            quiet.org_get_warm_key.p99_ms,
        )
        .goal("≤ 1.20×"),
        Figure::alone(
            "bcrypt logins/s during the flood (right + wrong)",
            "/s",
            Some(bcrypt_per_sec),
        )
        .cpu(per(
            "flood",
            right.latency.count + wrong.rejected.count,
            "login (whole flood phase)",
        )),
        Figure::alone("deliveries not exactly once", "", Some(not_once as f64)).goal("0"),
    ];

    let results = json!({
        "quiet": quiet,
        "flood": flooded,
        "ratio_delivery_p99": delivery_ratio,
        "ratio_healthz_p99": healthz_ratio,
        "ratio_org_get_p99": org_ratio,
        "goal_ratio": GOAL_RATIO,
        "logins": {
            "right_password": right.to_json(args.login_clients),
            "wrong_password": wrong,
            "bcrypt_verifies_per_sec": bcrypt_per_sec,
        },
        "exactly_once": {
            "subscribers": subscribers,
            "sent": written.sent,
            "final_seq": final_seq,
            "delivered": tally.delivered,
            "gaps": tally.gaps,
            "duplicates": tally.duplicates,
            "missing": tally.missing,
            "sockets_lost": sockets_lost,
            "first_failure": tally.failed,
            "failed_writes": written.failed,
        },
        "server_env": args.server_env().into_iter().collect::<std::collections::BTreeMap<_, _>>(),
        "cpu": cpu.to_json(),
    });
    Ok(ScenarioReport {
        table,
        headline,
        warnings,
        parameters: serde_json::to_value(args)?,
        results,
        figures,
    })
}

/// Where phase `name`'s CPU went, for people.
fn cpu_line(cpu: &PhaseMeter, name: &str) -> String {
    match cpu.phase(name) {
        Some(used) => format!(
            "cpu, {name}: {:.1} s wall; server {:.2} s, load tool {:.2} s, other {:.2} s, steal {:.2} s",
            used.wall_secs,
            used.server_cpu_secs.unwrap_or(0.0),
            used.loadtest_cpu_secs,
            used.other_cpu_secs,
            used.steal_secs
        ),
        None => format!("cpu, {name}: not metered"),
    }
}
