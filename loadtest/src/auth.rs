//! Scenario `auth`: what authentication costs at bcrypt cost 12.
//!
//! It measures three things:
//!
//! 1. **API-key requests, cold and warm.** `GET /api/v1/orgs/{org}` with an API key. The first
//!    use of a key in the server process runs bcrypt; later uses hit the verification cache.
//!    Every key is created up front and used cold exactly once, one request at a time, so each
//!    cold sample is one bcrypt verify with nothing queued before it. Warm requests then cycle
//!    over the same keys, also one at a time.
//! 2. **Logins per second.** `--login-clients` clients log in with the right password, each
//!    again as soon as its previous login answers, for `--login-secs`.
//! 3. **Cheap requests during a login flood.** `GET /healthz` and a warm-key
//!    `GET /api/v1/orgs/{org}` are probed, one request at a time every `--probe-interval-ms`,
//!    first alone (the baseline) and then while the same login flood runs. If bcrypt ran on the
//!    async runtime the second set would wait behind it; the two sets side by side show whether
//!    it does.
//!
//! Set-up (accounts, an organization, the keys) is not measured, except that key creation time
//! is recorded, since each creation is one bcrypt hash. Each phase also records where the
//! machine's CPU time went, so a phase disturbed by other work is called out.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use reqwest::Method;
use serde::Serialize;
use serde_json::json;

use crate::api::Api;
use crate::login::{create_keys, join, login_flood, register_accounts, spawn_probe, timed};
use crate::machine::PhaseMeter;
use crate::stats::{format_ms, CpuPer, Figure, Recorder, ScenarioReport, Table};
use crate::target::Target;

/// Settings of the `auth` scenario. The defaults finish in about a minute on two cores.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct AuthArgs {
    /// Distinct API keys to create; each is used cold (one bcrypt verify) exactly once.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub keys: u32,

    /// Warm (cached) API-key requests, made one at a time.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..))]
    pub warm_requests: u32,

    /// Concurrent clients in each login flood, each with its own account.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=200))]
    pub login_clients: u32,

    /// Seconds each login flood lasts (once alone, once under the probes).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub login_secs: u64,

    /// Seconds of probing without a flood, for the baseline.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub baseline_secs: u64,

    /// Milliseconds between two probe requests of the same kind.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub probe_interval_ms: u64,
}

/// Runs the scenario against `target`.
pub async fn run(target: &Target, args: &AuthArgs) -> anyhow::Result<ScenarioReport> {
    let api = Api::new(target.base_url())?;
    let mut cpu = PhaseMeter::new(target.server_pid(), target.database_name());
    cpu.begin();
    progress(format!("set-up: an account, an organization and {} API keys", args.keys));
    let owner = api.register("bench-owner").await.context("registering the owner")?;
    let org = api.create_org(&owner, "loadtest").await.context("creating the organization")?;
    let org_path = format!("api/v1/orgs/{org}");
    let started = Instant::now();
    let keys = create_keys(&api, &owner, &org, args.keys as usize).await?;
    let key_creation = started.elapsed();
    let Some(probe_key) = keys.first().cloned() else { bail!("no API key was created") };
    progress(format!(
        "set-up: {} keys in {:.1} s; registering {} login accounts",
        keys.len(),
        key_creation.as_secs_f64(),
        args.login_clients
    ));
    let login_accounts = register_accounts(&api, args.login_clients as usize).await?;
    cpu.end("setup");

    progress(format!("1/5 cold API-key requests ({} keys, one at a time)", keys.len()));
    let mut cold = Recorder::new();
    cpu.begin();
    for key in &keys {
        timed(&api, Method::GET, &org_path, Some(key), None, &mut cold).await?;
    }
    cpu.end("api_key_cold");

    progress(format!("2/5 warm API-key requests ({}, one at a time)", args.warm_requests));
    let mut warm = Recorder::new();
    cpu.begin();
    for key in keys.iter().cycle().take(args.warm_requests as usize) {
        timed(&api, Method::GET, &org_path, Some(key), None, &mut warm).await?;
    }
    cpu.end("api_key_warm");

    let flood_for = Duration::from_secs(args.login_secs);
    progress(format!(
        "3/5 login flood alone ({} clients, {} s)",
        args.login_clients, args.login_secs
    ));
    cpu.begin();
    let alone = login_flood(target, &login_accounts, flood_for).await?;
    cpu.end("login");

    let interval = Duration::from_millis(args.probe_interval_ms);
    progress(format!("4/5 probes alone ({} s)", args.baseline_secs));
    let baseline_for = Duration::from_secs(args.baseline_secs);
    cpu.begin();
    let health_probe = spawn_probe(target, "healthz", None, baseline_for, interval)?;
    let org_probe = spawn_probe(target, &org_path, Some(&probe_key), baseline_for, interval)?;
    let healthz_alone = join(health_probe).await?;
    let org_alone = join(org_probe).await?;
    cpu.end("probes_baseline");

    progress(format!(
        "5/5 probes during a login flood ({} clients, {} s)",
        args.login_clients, args.login_secs
    ));
    cpu.begin();
    let health_probe = spawn_probe(target, "healthz", None, flood_for, interval)?;
    let org_probe = spawn_probe(target, &org_path, Some(&probe_key), flood_for, interval)?;
    let flood = login_flood(target, &login_accounts, flood_for).await?;
    let healthz_flood = join(health_probe).await?;
    let org_flood = join(org_probe).await?;
    cpu.end("probes_during_flood");

    let cold = cold.summary();
    let warm = warm.summary();
    let (healthz_alone, healthz_flood) = (healthz_alone.summary(), healthz_flood.summary());
    let (org_alone, org_flood) = (org_alone.summary(), org_flood.summary());

    let mut table = Table::new();
    table.row("API key, cold (bcrypt verify)", &cold, None);
    table.row("API key, warm (cached)", &warm, None);
    table.row(format!("login, {} clients", args.login_clients), &alone.latency, Some(alone.rate));
    table.row("GET /healthz, alone", &healthz_alone, None);
    table.row("GET /healthz, during login flood", &healthz_flood, None);
    table.row("GET org (warm key), alone", &org_alone, None);
    table.row("GET org (warm key), during login flood", &org_flood, None);
    table.row(
        format!("login, {} clients, while probed", args.login_clients),
        &flood.latency,
        Some(flood.rate),
    );

    let headline = vec![
        format!(
            "API key, cold: p50 {} p99 {} (n={}); warm: p50 {} p99 {} (n={})",
            format_ms(cold.p50_ms),
            format_ms(cold.p99_ms),
            cold.count,
            format_ms(warm.p50_ms),
            format_ms(warm.p99_ms),
            warm.count
        ),
        format!(
            "logins at cost 12: {:.1}/s with {} clients (p50 {} p99 {})",
            alone.rate,
            args.login_clients,
            format_ms(alone.latency.p50_ms),
            format_ms(alone.latency.p99_ms)
        ),
        format!(
            "during the login flood: GET /healthz p99 {} -> {}; GET org (warm key) p99 {} -> {}",
            format_ms(healthz_alone.p99_ms),
            format_ms(healthz_flood.p99_ms),
            format_ms(org_alone.p99_ms),
            format_ms(org_flood.p99_ms)
        ),
    ];

    let results = json!({
        "api_key_cold": cold,
        "api_key_warm": warm,
        "login": alone.to_json(args.login_clients),
        "during_login_flood": {
            "healthz": { "baseline": healthz_alone, "during_flood": healthz_flood },
            "org_get_warm_key": { "baseline": org_alone, "during_flood": org_flood },
            "flood": flood.to_json(args.login_clients),
        },
        "setup": {
            "api_keys_created": keys.len(),
            "api_key_creation_secs": (key_creation.as_secs_f64() * 1000.0).round() / 1000.0,
            "accounts_registered": login_accounts.len() + 1,
        },
        "cpu": cpu.to_json(),
    });
    let parameters = serde_json::to_value(args).context("cannot encode the parameters")?;
    let per = |phase: &str, units: u64, what: &str| {
        cpu.phase(phase).and_then(|used| CpuPer::of(used, units, what, false))
    };
    let figures = vec![
        Figure::alone("API key, cold (bcrypt verify): p99", "ms", cold.p99_ms).cpu(per(
            "api_key_cold",
            cold.count,
            "cold request",
        )),
        Figure::alone("API key, warm (cached): p99", "ms", warm.p99_ms).cpu(per(
            "api_key_warm",
            warm.count,
            "warm request",
        )),
        Figure::alone(
            format!("logins/s at cost 12, {} clients", args.login_clients),
            "/s",
            Some(alone.rate),
        )
        .cpu(per("login", alone.latency.count, "login")),
        Figure::beside(
            "GET /healthz p99 during a login flood",
            "ms",
            healthz_flood.p99_ms,
            "no flood",
            healthz_alone.p99_ms,
        )
        .goal("≤ 1.20×"),
        Figure::beside(
            "GET org (warm key) p99 during a login flood",
            "ms",
            org_flood.p99_ms,
            "no flood",
            org_alone.p99_ms,
        )
        .goal("≤ 1.20×"),
    ];
    Ok(ScenarioReport { table, headline, warnings: cpu.warnings(), parameters, results, figures })
}

fn progress(message: String) {
    eprintln!("auth: {message}");
}
