//! The REST pieces of the `auth` and `login-flood` scenarios: set-up (API keys, accounts), one
//! timed request, the cheap-request probes, and the two login floods: right passwords as fast
//! as answered ([`login_flood`]) and wrong passwords at the per-IP limit ([`wrong_flood`]).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use boardroom_protocol::identity::Login;
use rand::Rng;
use reqwest::Method;
use serde::Serialize;
use serde_json::json;
use tokio::task::JoinSet;

use crate::api::{self, Account, Api};
use crate::stats::{Recorder, Summary};
use crate::target::Target;

/// How many set-up requests run at once (each costs one bcrypt hash on the server).
const SETUP_CONCURRENCY: usize = 4;

/// Creates `count` keys, a few at a time.
pub async fn create_keys(
    api: &Api,
    owner: &Account,
    org: &str,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let mut tasks = JoinSet::new();
    for worker in 0..SETUP_CONCURRENCY.min(count) {
        let (api, owner, org) = (api.clone(), owner.clone(), org.to_owned());
        tasks.spawn(async move {
            let mut keys = Vec::new();
            for i in (worker..count).step_by(SETUP_CONCURRENCY) {
                let name = format!("bench-key-{i}");
                keys.push(api.create_api_key(&owner, &org, &name, &["boards:read"]).await?);
            }
            anyhow::Ok(keys)
        });
    }
    let mut keys = Vec::with_capacity(count);
    while let Some(done) = tasks.join_next().await {
        keys.extend(done.context("a key-creating task failed")??);
    }
    Ok(keys)
}

/// Registers `count` accounts, a few at a time.
pub async fn register_accounts(api: &Api, count: usize) -> anyhow::Result<Vec<Account>> {
    let mut tasks = JoinSet::new();
    for worker in 0..SETUP_CONCURRENCY.min(count) {
        let api = api.clone();
        tasks.spawn(async move {
            let mut accounts = Vec::new();
            for _ in (worker..count).step_by(SETUP_CONCURRENCY) {
                accounts.push(api.register("bench-login").await?);
            }
            anyhow::Ok(accounts)
        });
    }
    let mut accounts = Vec::with_capacity(count);
    while let Some(done) = tasks.join_next().await {
        accounts.extend(done.context("a registering task failed")??);
    }
    Ok(accounts)
}

/// Sends one request and records its latency (a 2xx answer) or its status (any other answer).
/// Timing covers sending the request and reading the whole answer, nothing else. No answer at
/// all is an error that ends the scenario.
pub async fn timed(
    api: &Api,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Login>,
    into: &mut Recorder,
) -> anyhow::Result<()> {
    let mut request = api.request(method, path)?;
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let started = Instant::now();
    let answer = match request.send().await {
        Ok(response) => {
            let status = response.status();
            response.bytes().await.map(|_| status)
        }
        Err(err) => Err(err),
    };
    let latency = started.elapsed();
    match answer {
        Ok(status) if status.is_success() => into.record(latency),
        Ok(status) => into.record_error(status.as_u16().to_string()),
        // No answer at all: on loopback with a minute's timeout the server is gone or broken,
        // and every later figure would be meaningless.
        Err(err) => return Err(anyhow::Error::new(err).context(format!("{path}: no answer"))),
    }
    Ok(())
}

/// A login flood's outcome.
pub struct Flood {
    /// Latency of the successful logins (failures by status).
    pub latency: Summary,
    /// Successful logins per second.
    pub rate: f64,
    /// From the first login sent to the last answered.
    pub elapsed: Duration,
}

impl Flood {
    pub fn to_json(&self, clients: u32) -> serde_json::Value {
        json!({
            "clients": clients,
            "elapsed_secs": (self.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            "logins_per_sec": (self.rate * 100.0).round() / 100.0,
            "latency": self.latency,
        })
    }
}

/// Every account logs in again and again, each on its own connection from its own source
/// address ([`login_address`]: the server's per-IP limit then never counts one client's logins
/// in flight against another's), until `duration` has passed; logins in flight then finish and
/// count. The rate is successful logins over the time until the last one answered.
pub async fn login_flood(
    target: &Target,
    accounts: &[Account],
    duration: Duration,
) -> anyhow::Result<Flood> {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = JoinSet::new();
    for (n, account) in (0u32..).zip(accounts) {
        let api = Api::from_source(target.base_url(), IpAddr::V4(login_address(n)))?;
        let body = Login { email: account.email.clone(), password: api::PASSWORD.into() };
        tasks.spawn(async move {
            let mut rec = Recorder::new();
            while Instant::now() < deadline {
                timed(&api, Method::POST, "api/v1/auth/login", None, Some(&body), &mut rec).await?;
            }
            anyhow::Ok(rec)
        });
    }
    let mut all = Recorder::new();
    while let Some(done) = tasks.join_next().await {
        all.merge(done.context("a login task failed")??);
    }
    let elapsed = started.elapsed();
    let rate = all.ok_count() as f64 / elapsed.as_secs_f64().max(f64::EPSILON);
    if all.ok_count() == 0 {
        bail!("no login succeeded during the flood: {:?}", all.summary().errors);
    }
    Ok(Flood { latency: all.summary(), rate, elapsed })
}

/// Starts a probe: one `GET path` every `interval` (or as soon as the previous one answered, if
/// that took longer) on a connection of its own, for `duration`.
pub fn spawn_probe(
    target: &Target,
    path: &str,
    bearer: Option<&str>,
    duration: Duration,
    interval: Duration,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<Recorder>>> {
    let api = Api::new(target.base_url())?;
    let (path, bearer) = (path.to_owned(), bearer.map(str::to_owned));
    Ok(tokio::spawn(async move {
        let deadline = Instant::now() + duration;
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rec = Recorder::new();
        loop {
            ticks.tick().await;
            if Instant::now() >= deadline {
                break;
            }
            timed(&api, Method::GET, &path, bearer.as_deref(), None, &mut rec).await?;
        }
        Ok(rec)
    }))
}

pub async fn join(
    probe: tokio::task::JoinHandle<anyhow::Result<Recorder>>,
) -> anyhow::Result<Recorder> {
    probe.await.context("a probe task failed")?
}

/// What the wrong-password flood did.
#[derive(Debug, Clone, Serialize)]
pub struct WrongFlood {
    /// Concurrent attacking clients.
    pub clients: u32,
    /// Wrong-password logins answered `401` (each one bcrypt verify on the server), timed.
    pub rejected: Summary,
    /// Logins refused `429` by the per-IP limit (no bcrypt), timed.
    pub refused: Summary,
    /// Answers of any other status, by status.
    pub other: std::collections::BTreeMap<String, u64>,
    /// Source addresses used (each until refused, or until the flood ended).
    pub addresses: u32,
    /// Addresses that were refused with `429`.
    pub addresses_refused: u32,
    /// `401` answers per second.
    pub rejected_per_sec: f64,
    /// From the first login sent to the last answered.
    pub elapsed_secs: f64,
}

impl WrongFlood {
    /// No wrong-password flood.
    pub fn none() -> WrongFlood {
        WrongFlood {
            clients: 0,
            rejected: Recorder::new().summary(),
            refused: Recorder::new().summary(),
            other: Default::default(),
            addresses: 0,
            addresses_refused: 0,
            rejected_per_sec: 0.0,
            elapsed_secs: 0.0,
        }
    }
}

/// The source address of right-password login client `n`: 127.2.0.1, 127.2.0.2, …
pub fn login_address(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from_be_bytes([127, 2, 0, 1]).wrapping_add(n % 0xffff))
}

/// The first source address of the wrong-password flood: 127.3.0.1. The subscribers bind
/// 127.0.0.2–254, the right-password clients 127.2.0.x, set-up and the probes 127.0.0.1, so no
/// attacker address shares a rate-limit bucket with anyone else.
const ATTACKER_BASE: u32 = u32::from_be_bytes([127, 3, 0, 1]);

/// The `n`th attacker address (127.3.0.1, 127.3.0.2, …, staying inside 127.0.0.0/8).
pub fn attacker_address(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(ATTACKER_BASE.wrapping_add(n % 0x00fc_0000))
}

/// `clients` attackers each log in with a wrong password for an unknown account (a fresh email
/// every time, so the per-account and per-(email, network) limits never apply and only the
/// per-IP one does) from one source address, one login at a time, until that address is refused
/// with `429`; then each takes the next unused address and goes on, until `duration` has passed.
/// Every `401` is one bcrypt verify (against the server's dummy hash), every `429` none.
pub async fn wrong_flood(
    target: &Target,
    clients: u32,
    duration: Duration,
) -> anyhow::Result<WrongFlood> {
    let base = target.base_url().clone();
    let started = Instant::now();
    let deadline = started + duration;
    let next_address = Arc::new(AtomicU32::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..clients {
        let (base, next_address) = (base.clone(), Arc::clone(&next_address));
        tasks.spawn(async move {
            let (mut rejected, mut refused) = (Recorder::new(), Recorder::new());
            let mut other = std::collections::BTreeMap::<String, u64>::new();
            let mut refused_addresses = 0u32;
            'addresses: while Instant::now() < deadline {
                let source = attacker_address(next_address.fetch_add(1, Ordering::Relaxed));
                let api = Api::from_source(&base, IpAddr::V4(source))?;
                while Instant::now() < deadline {
                    let email =
                        format!("nobody-{:012x}@loadtest.example", rand::thread_rng().gen::<u64>());
                    let body = Login { email, password: "wrong-password-0123".into() };
                    let request = api.request(Method::POST, "api/v1/auth/login")?.json(&body);
                    let sent = Instant::now();
                    let response = request.send().await.context("a wrong login: no answer")?;
                    let status = response.status().as_u16();
                    let _ = response.bytes().await;
                    match status {
                        401 => rejected.record(sent.elapsed()),
                        429 => {
                            refused.record(sent.elapsed());
                            refused_addresses += 1;
                            continue 'addresses;
                        }
                        status => *other.entry(status.to_string()).or_default() += 1,
                    }
                }
            }
            anyhow::Ok((rejected, refused, other, refused_addresses))
        });
    }
    let (mut rejected, mut refused) = (Recorder::new(), Recorder::new());
    let mut other = std::collections::BTreeMap::<String, u64>::new();
    let mut addresses_refused = 0;
    while let Some(done) = tasks.join_next().await {
        let (r, f, o, a) = done.context("an attacking task failed")??;
        rejected.merge(r);
        refused.merge(f);
        for (status, count) in o {
            *other.entry(status).or_default() += count;
        }
        addresses_refused += a;
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(WrongFlood {
        clients,
        rejected_per_sec: (rejected.ok_count() as f64 / elapsed.max(f64::EPSILON) * 100.0).round()
            / 100.0,
        rejected: rejected.summary(),
        refused: refused.summary(),
        other,
        addresses: next_address.load(Ordering::Relaxed),
        addresses_refused,
        elapsed_secs: (elapsed * 1000.0).round() / 1000.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attacker_addresses_stay_in_loopback_apart_from_the_others() {
        assert_eq!(attacker_address(0), Ipv4Addr::new(127, 3, 0, 1));
        assert_eq!(attacker_address(255), Ipv4Addr::new(127, 3, 1, 0));
        for n in [0, 1, 70_000, 0x00fb_ffff, 0x00fc_0000, u32::MAX] {
            let ip = attacker_address(n);
            assert!(ip.is_loopback(), "{n}: {ip}");
            assert!(ip.octets()[1] >= 3, "{n}: {ip} is among the subscribers' sources");
        }
        assert_eq!(login_address(0), Ipv4Addr::new(127, 2, 0, 1));
        assert_eq!(login_address(199), Ipv4Addr::new(127, 2, 0, 200));
        assert_eq!(login_address(u32::MAX).octets()[..2], [127, 2]);
    }
}
