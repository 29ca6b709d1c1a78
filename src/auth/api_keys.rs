//! API keys: format, verification cache, per-key rate limits, and the bad-key counter.
//!
//! A key is `brk_` followed by 40 base62 characters (about 238 random bits). Its first 11
//! characters are the stored, unique prefix; the remaining 33 (about 196 bits) are stored only
//! as a bcrypt hash.
//!
//! bcrypt runs once per key per process: a verified key is cached under a keyed digest of the
//! whole key, and revoking, re-scoping or expiring it drops it from the cache at once. The cache
//! never keeps a grant read before such a change: every revoke, re-scope or departure bumps the
//! cache's generation ([`KeyCache::invalidate`]), and a grant is cached, and used, only if the
//! generation it was read under is still current ([`KeyCache::put`]); a verification that loses
//! that race reads the key again. A cached grant is trusted for at most the cache's TTL
//! (`BOARDROOM_KEY_CACHE_TTL_SECS`, at most 30 s), then re-checked against the stored row without
//! bcrypt ([`Lookup::Stale`]), so a change made on another node takes effect within it even when
//! its invalidation (`cluster::invalidations`, which drops the grant within a second) is lost.
//! Concurrent
//! first uses of one key take turns ([`KeyCache::verify_turn`]): the first runs bcrypt, the
//! rest find its grant cached, so a fleet of bots starting together costs one bcrypt. A key not
//! in the cache meets the client IP's recent failures before any database lookup or bcrypt:
//! malformed, unknown or wrong keys are counted per client network (an IPv4 address, an IPv6
//! /64: [`limit_net`]), and a network over the limit is refused without spending CPU.
//!
//! A key's limit of N requests a minute is exact: each key keeps a log of the instants of the
//! requests it was allowed in the last 60 seconds (at most N of them, so memory is bounded by
//! the limit: 16 bytes a request; after a lowered limit, by the highest limit of the minute), and a request is allowed only while fewer than N are logged.
//! So no 60-second span ever holds more than N allowed requests (a token bucket, as governor's
//! was, lets a full burst through at once and refills behind it: about 2N in the first minute),
//! and a refusal's `Retry-After` is exactly when the oldest logged request leaves the window.
//! The log is per node, in memory. With several nodes each node allows its share of N: N divided
//! by the live nodes, at least 1 ([`KeyCache::set_nodes`], kept current by `cluster::key_shares`),
//! so the cluster together allows at most N a minute (at most one a node when N is smaller than
//! the number of nodes) without a database round trip per request; a client whose requests all
//! reach one node (one keep-alive connection, one socket) gets that node's share. The reasons
//! are in `docs/ARCHITECTURE.md` ("Several nodes").

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use boardroom_protocol::Scope;
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use ipnet::IpNet;
use rand::Rng;
use uuid::Uuid;

use super::request_meta::limit_net;

/// The fixed product prefix of every key.
pub const KEY_PREFIX: &str = "brk_";
/// Characters of the key stored in plaintext.
pub const STORED_PREFIX_LEN: usize = 11;
/// Random base62 characters after the product prefix.
pub const RANDOM_CHARS: usize = 40;
/// Default requests per minute of a key.
pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u32 = 600;
/// Most requests per minute a key may be given.
pub const MAX_RATE_LIMIT_PER_MINUTE: u32 = 100_000;

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A freshly generated key.
pub struct GeneratedKey {
    /// The whole key, shown to its owner once.
    pub key: String,
}

impl GeneratedKey {
    /// A new random key.
    pub fn new() -> Self {
        let mut rng = rand::rngs::OsRng;
        let mut key = String::with_capacity(KEY_PREFIX.len() + RANDOM_CHARS);
        key.push_str(KEY_PREFIX);
        while key.len() < KEY_PREFIX.len() + RANDOM_CHARS {
            // 248 = 4 × 62: rejecting bytes above it keeps every character equally likely.
            let byte: u8 = rng.gen();
            if byte < 248 {
                key.push(BASE62[usize::from(byte % 62)] as char);
            }
        }
        GeneratedKey { key }
    }

    /// The stored prefix.
    pub fn prefix(&self) -> &str {
        &self.key[..STORED_PREFIX_LEN]
    }

    /// The part stored only as a hash.
    pub fn secret(&self) -> &str {
        &self.key[STORED_PREFIX_LEN..]
    }
}

impl Default for GeneratedKey {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether `token` looks like an API key (as opposed to a JWT).
pub fn looks_like_key(token: &str) -> bool {
    token.starts_with(KEY_PREFIX)
}

/// Splits a presented key into (prefix, secret) if it is well-formed.
pub fn split_key(key: &str) -> Option<(&str, &str)> {
    let well_formed = key.len() == KEY_PREFIX.len() + RANDOM_CHARS
        && key.starts_with(KEY_PREFIX)
        && key[KEY_PREFIX.len()..].bytes().all(|b| b.is_ascii_alphanumeric());
    well_formed.then(|| key.split_at(STORED_PREFIX_LEN))
}

/// What a verified key grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyGrant {
    /// Key id.
    pub key_id: Uuid,
    /// The only organization it works in.
    pub org_id: Uuid,
    /// The user it acts as.
    pub user_id: Uuid,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// Requests per minute.
    pub rate_limit_per_minute: u32,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

/// The outcome of charging a request to a key's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitState {
    /// The key's limit per minute.
    pub limit: u32,
    /// Requests left right now.
    pub remaining: u32,
    /// Seconds, rounded up, until the oldest request counted leaves the 60-second window: when
    /// refused, the exact wait before the next request is allowed.
    pub reset_secs: u64,
    /// Whether this request is allowed.
    pub allowed: bool,
}

/// A verified key as cached: its grant, the stored hash it was verified against, and when the
/// stored row was last read.
#[derive(Clone)]
pub struct CachedGrant {
    /// What the key grants.
    pub grant: KeyGrant,
    /// The stored bcrypt hash the key matched: a re-check without bcrypt holds only while the row
    /// still carries this hash.
    pub secret_hash: String,
    checked: Instant,
}

impl CachedGrant {
    /// A grant read from the store now.
    pub fn new(grant: KeyGrant, secret_hash: String) -> Self {
        CachedGrant { grant, secret_hash, checked: Instant::now() }
    }
}

/// What the cache holds for a key.
pub enum Lookup {
    /// A grant read from the store within the TTL: use it.
    Fresh(KeyGrant),
    /// A grant older than the TTL: re-check it against the store (no bcrypt) before use.
    Stale(CachedGrant),
    /// Nothing: verify the key.
    Miss,
}

/// A pause point in verification, for tests: see [`KeyCache::pause_next_verification`].
#[derive(Clone, Default)]
pub struct VerifyPause {
    reached: Arc<tokio::sync::Notify>,
    resume: Arc<tokio::sync::Notify>,
}

impl VerifyPause {
    /// Waits until the paused verification has run bcrypt and stopped.
    pub async fn reached(&self) {
        self.reached.notified().await;
    }

    /// Lets the paused verification go on.
    pub fn resume(&self) {
        self.resume.notify_one();
    }

    /// Called by the verification itself (`Auth`): tell the test, then wait for it.
    pub(crate) async fn stop_here(&self) {
        self.reached.notify_one();
        self.resume.notified().await;
    }
}

/// Verified keys, their limiters, and the per-IP failure counter.
pub struct KeyCache {
    verified: DashMap<[u8; 32], CachedGrant>,
    /// Bumped by every revoke, re-scope or departure. Held for reading while a grant is cached
    /// and for writing while one is dropped, so no grant read before a change lands after it.
    generation: std::sync::RwLock<u64>,
    ttl: Duration,
    pause: std::sync::Mutex<Option<VerifyPause>>,
    by_key_id: DashMap<Uuid, Vec<[u8; 32]>>,
    limiters: DashMap<Uuid, KeyLimit>,
    /// Live nodes sharing each key's limit (1 without a cluster).
    nodes: AtomicU32,
    failures: DashMap<IpNet, (u32, Instant)>,
    /// One lock per key being verified now, so concurrent first uses of a key run bcrypt once.
    verifying: DashMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>,
}

/// A key's log of allowed requests. It lives apart from the verified grants: dropping a grant
/// from the cache (overflow, re-scoping) must not hand the key a fresh allowance.
struct KeyLimit {
    /// When each request of the last [`LIMIT_WINDOW`] was allowed, oldest first; never longer
    /// than the key's limit.
    allowed: VecDeque<Instant>,
    last_charged: Instant,
}

/// The span a key's limit counts requests in.
pub const LIMIT_WINDOW: Duration = Duration::from_secs(60);

/// Idle time after which a key's log holds nothing that counts, so forgetting it changes nothing.
const LIMITER_REFILLED: Duration = LIMIT_WINDOW;

/// The longest a verified grant is trusted without reading its row again.
pub const MAX_KEY_CACHE_TTL: Duration = Duration::from_secs(30);

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache::new(MAX_KEY_CACHE_TTL)
    }
}

/// Most verified keys kept in memory.
pub const MAX_CACHED_KEYS: usize = 100_000;

/// Failed key attempts an IP may make per [`FAILURE_WINDOW`] before it is refused unheard.
pub const MAX_FAILURES_PER_IP: u32 = 20;
/// The window of [`MAX_FAILURES_PER_IP`].
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);

impl KeyCache {
    /// An empty cache trusting a grant for `ttl` (at most [`MAX_KEY_CACHE_TTL`]).
    pub fn new(ttl: Duration) -> Self {
        KeyCache {
            verified: DashMap::new(),
            generation: std::sync::RwLock::new(0),
            ttl: ttl.min(MAX_KEY_CACHE_TTL),
            pause: std::sync::Mutex::new(None),
            by_key_id: DashMap::new(),
            limiters: DashMap::new(),
            nodes: AtomicU32::new(1),
            failures: DashMap::new(),
            verifying: DashMap::new(),
        }
    }

    /// What is cached under `digest` at `now`: an expired key is dropped and missed.
    pub fn get(&self, digest: &[u8; 32], now: DateTime<Utc>) -> Lookup {
        let Some(cached) = self.verified.get(digest).map(|c| c.value().clone()) else {
            return Lookup::Miss;
        };
        if cached.grant.expires_at.is_some_and(|e| e <= now) {
            self.invalidate(cached.grant.key_id);
            return Lookup::Miss;
        }
        if cached.checked.elapsed() >= self.ttl {
            return Lookup::Stale(cached);
        }
        Lookup::Fresh(cached.grant)
    }

    /// The current generation: read it before reading a key's row, and hand it to [`Self::put`].
    pub fn generation(&self) -> u64 {
        *self.generation.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Caches a grant read under `generation`, unless a revoke, re-scope or departure has landed
    /// since: then nothing is cached and `false` says the grant must not be used either.
    #[must_use = "a grant that was not cached must not be used"]
    pub fn put(&self, digest: [u8; 32], cached: CachedGrant, generation: u64) -> bool {
        let current = self.generation.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        if *current != generation {
            return false;
        }
        self.by_key_id.entry(cached.grant.key_id).or_default().push(digest);
        self.verified.insert(digest, cached);
        true
    }

    /// Test hook: the next key verification stops after bcrypt, before it caches or uses its
    /// grant, until [`VerifyPause::resume`]; so a test can land a revoke exactly then.
    #[doc(hidden)]
    pub fn pause_next_verification(&self) -> VerifyPause {
        let pause = VerifyPause::default();
        *self.pause.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(pause.clone());
        pause
    }

    /// The pause set by [`Self::pause_next_verification`], taken once.
    pub(crate) fn take_pause(&self) -> Option<VerifyPause> {
        self.pause.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take()
    }

    /// The turn to verify the key behind `digest`: one request at a time verifies it, and the
    /// others, once they get the turn, find it cached (a wrong key is not cached: each attempt
    /// at it is verified, and counted against its IP).
    pub fn verify_turn(&self, digest: [u8; 32]) -> Arc<tokio::sync::Mutex<()>> {
        self.verifying.entry(digest).or_default().clone()
    }

    /// Forgets the turn of `digest` once nobody holds or waits for it.
    pub fn verify_done(&self, digest: &[u8; 32]) {
        self.verifying.remove_if(digest, |_, turn| Arc::strong_count(turn) == 1);
    }

    /// Drops key `key_id` from the cache (revoked, re-scoped or expired) and bumps the
    /// generation, so a verification of it in flight caches and uses nothing it read before.
    /// Its limiter stays until it has refilled ([`KeyCache::prune`]): re-scoping a key does not
    /// reset its limit.
    pub fn invalidate(&self, key_id: Uuid) {
        self.invalidate_all(&[key_id]);
    }

    fn invalidate_all(&self, key_ids: &[Uuid]) {
        let mut generation =
            self.generation.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        *generation += 1;
        for key_id in key_ids {
            if let Some((_, digests)) = self.by_key_id.remove(key_id) {
                for digest in digests {
                    self.verified.remove(&digest);
                }
            }
        }
    }

    /// Drops every key acting as `user` in `org` (the user left the organization).
    pub fn invalidate_user(&self, org: Uuid, user: Uuid) {
        let ids: Vec<Uuid> = self
            .verified
            .iter()
            .filter(|c| c.grant.org_id == org && c.grant.user_id == user)
            .map(|c| c.grant.key_id)
            .collect();
        self.invalidate_all(&ids);
    }

    /// Whether `ip`'s network has used up its failed attempts; checked before any lookup or
    /// bcrypt.
    pub fn ip_is_blocked(&self, ip: IpAddr) -> Option<u64> {
        let entry = self.failures.get(&limit_net(ip))?;
        let (count, since) = *entry;
        let elapsed = since.elapsed();
        (count >= MAX_FAILURES_PER_IP && elapsed < FAILURE_WINDOW)
            .then(|| (FAILURE_WINDOW - elapsed).as_secs().max(1))
    }

    /// Counts a failed attempt from `ip`'s network.
    pub fn record_failure(&self, ip: IpAddr) {
        let mut entry = self.failures.entry(limit_net(ip)).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= FAILURE_WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    /// Sets how many live nodes share each key's limit (at least 1): this node then allows its
    /// share of it, [`Self::share`].
    pub fn set_nodes(&self, nodes: u32) {
        self.nodes.store(nodes.max(1), Ordering::Relaxed);
    }

    /// This node's share of a limit of `per_minute` requests: divided by the live nodes (rounded
    /// down, so the nodes together never allow more than the limit), at least 1.
    pub fn share(&self, per_minute: u32) -> u32 {
        (per_minute / self.nodes.load(Ordering::Relaxed).max(1)).max(1)
    }

    /// Charges one request to the key's per-minute limit (this node's share of it).
    pub fn charge(&self, grant: &KeyGrant) -> RateLimitState {
        self.charge_at(grant, Instant::now())
    }

    /// [`Self::charge`] at `now`: allowed only while fewer than the limit were allowed in the
    /// [`LIMIT_WINDOW`] before it. A changed limit (or share, when nodes come and go) applies to
    /// the requests already logged, so changing it never hands out a fresh allowance.
    fn charge_at(&self, grant: &KeyGrant, now: Instant) -> RateLimitState {
        let limit = self.share(grant.rate_limit_per_minute.max(1));
        let mut entry = self
            .limiters
            .entry(grant.key_id)
            .or_insert_with(|| KeyLimit { allowed: VecDeque::new(), last_charged: now });
        entry.last_charged = now;
        let log = &mut entry.allowed;
        while log.front().is_some_and(|t| now.saturating_duration_since(*t) >= LIMIT_WINDOW) {
            log.pop_front();
        }
        let cap = usize::try_from(limit).unwrap_or(usize::MAX);
        let allowed = log.len() < cap;
        if allowed {
            log.push_back(now);
        }
        let used = u32::try_from(log.len()).unwrap_or(u32::MAX);
        // The next request is allowed once all but `limit - 1` of the logged ones have left the
        // window. After a lowered limit the log can be longer than the limit (never longer than
        // the highest limit of the last minute): it is kept whole, so raising the limit again
        // within the minute cannot let more through than the new limit.
        let deciding = if allowed { 0 } else { log.len() - cap };
        let oldest = log.get(deciding).copied().unwrap_or(now);
        let frees_in = (oldest + LIMIT_WINDOW).saturating_duration_since(now);
        RateLimitState {
            limit,
            remaining: limit.saturating_sub(used),
            reset_secs: frees_in.as_secs_f64().ceil().max(1.0) as u64,
            allowed,
        }
    }

    /// Drops stale failure counters, refilled limiters and expired grants (called
    /// periodically). Past [`MAX_CACHED_KEYS`] every cached grant is dropped: each key then
    /// costs one bcrypt again, which bounds memory without tracking recency on the hot path.
    /// Limiters are kept through that: only one idle long enough to be full again goes, so no
    /// key's allowance is ever reset early.
    pub fn prune(&self) {
        self.prune_at(Instant::now());
    }

    fn prune_at(&self, now: Instant) {
        self.failures
            .retain(|_, (_, since)| now.saturating_duration_since(*since) < FAILURE_WINDOW);
        self.limiters.retain(|_, limit| {
            now.saturating_duration_since(limit.last_charged) < LIMITER_REFILLED
        });
        // A request cancelled while verifying leaves its turn behind.
        self.verifying.retain(|_, turn| Arc::strong_count(turn) > 1);
        let now = Utc::now();
        let expired: Vec<Uuid> = self
            .verified
            .iter()
            .filter(|c| c.grant.expires_at.is_some_and(|e| e <= now))
            .map(|c| c.grant.key_id)
            .collect();
        for key in expired {
            self.invalidate(key);
        }
        if self.verified.len() > MAX_CACHED_KEYS {
            self.verified.clear();
            self.by_key_id.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let key = GeneratedKey::new();
        assert_eq!(key.key.len(), 44);
        assert!(key.key.starts_with("brk_"));
        assert_eq!(key.prefix().len(), 11);
        assert_eq!(key.secret().len(), 33);
        assert_eq!(split_key(&key.key), Some((key.prefix(), key.secret())));
        assert_ne!(GeneratedKey::new().key, key.key);
    }

    #[test]
    fn malformed_keys_do_not_split() {
        assert_eq!(split_key("brk_short"), None);
        assert_eq!(split_key(&format!("brk_{}", "!".repeat(40))), None);
        assert_eq!(split_key(&format!("xyz_{}", "a".repeat(40))), None);
    }

    #[test]
    fn limiter_refuses_past_the_limit() {
        let cache = KeyCache::default();
        let grant = KeyGrant {
            key_id: Uuid::now_v7(),
            org_id: Uuid::now_v7(),
            user_id: Uuid::now_v7(),
            scopes: vec![],
            rate_limit_per_minute: 3,
            expires_at: None,
        };
        let states: Vec<_> = (0..4).map(|_| cache.charge(&grant)).collect();
        assert_eq!(states.iter().filter(|s| s.allowed).count(), 3);
        assert_eq!(states[0].remaining, 2);
        assert!(!states[3].allowed && states[3].reset_secs >= 1);
    }

    fn cached(grant: &KeyGrant) -> CachedGrant {
        CachedGrant::new(grant.clone(), "$2b$04$hash".to_owned())
    }

    /// A grant read before a revoke, re-scope or departure is neither cached nor to be used; one
    /// read after it is.
    #[test]
    fn a_grant_read_before_an_invalidation_is_not_cached() {
        let cache = KeyCache::default();
        let grant = grant_with_limit(10);
        let before = cache.generation();
        cache.invalidate(grant.key_id);
        assert!(!cache.put([3; 32], cached(&grant), before), "read before the revoke");
        assert!(matches!(cache.get(&[3; 32], Utc::now()), Lookup::Miss));
        // Any key's change bumps the generation, a departure too.
        let other = grant_with_limit(10);
        let before = cache.generation();
        cache.invalidate_user(other.org_id, other.user_id);
        assert!(!cache.put([3; 32], cached(&grant), before), "read before the departure");
        assert!(cache.put([3; 32], cached(&grant), cache.generation()));
        assert!(matches!(cache.get(&[3; 32], Utc::now()), Lookup::Fresh(_)));
    }

    /// Past its TTL a grant is stale: it must be re-checked before use.
    #[test]
    fn a_grant_past_the_ttl_is_stale() {
        let cache = KeyCache::new(Duration::from_secs(30));
        let grant = grant_with_limit(10);
        let mut old = cached(&grant);
        old.checked = Instant::now() - Duration::from_secs(31);
        assert!(cache.put([4; 32], old, cache.generation()));
        assert!(matches!(cache.get(&[4; 32], Utc::now()), Lookup::Stale(c) if c.grant == grant));
        assert_eq!(KeyCache::new(Duration::from_secs(3600)).ttl, MAX_KEY_CACHE_TTL);
    }

    fn grant_with_limit(per_minute: u32) -> KeyGrant {
        KeyGrant {
            key_id: Uuid::now_v7(),
            org_id: Uuid::now_v7(),
            user_id: Uuid::now_v7(),
            scopes: vec![],
            rate_limit_per_minute: per_minute,
            expires_at: None,
        }
    }

    /// The pattern a token bucket lets through: a full burst, then the refill. At most N in any
    /// 60 seconds, and the refusal names the instant the oldest request leaves the window.
    #[test]
    fn a_key_gets_at_most_its_limit_in_any_minute() {
        let cache = KeyCache::default();
        let grant = grant_with_limit(4);
        let start = Instant::now();
        let at = |secs: f64| start + Duration::from_secs_f64(secs);
        for _ in 0..4 {
            assert!(cache.charge_at(&grant, at(0.0)).allowed);
        }
        // A bucket refilling at 4 a minute would allow two more by now.
        let refused = cache.charge_at(&grant, at(30.0));
        assert!(!refused.allowed);
        assert_eq!((refused.remaining, refused.reset_secs), (0, 30));
        assert!(!cache.charge_at(&grant, at(59.9)).allowed);
        assert_eq!(cache.charge_at(&grant, at(59.9)).reset_secs, 1);
        // The burst leaves the window at 60 s: room again, exactly then.
        for _ in 0..4 {
            assert!(cache.charge_at(&grant, at(60.0)).allowed);
        }
        let refused = cache.charge_at(&grant, at(75.5));
        assert_eq!((refused.allowed, refused.reset_secs), (false, 45));
    }

    /// Random request times against the promise itself: in every 60-second span the allowed
    /// requests number at most N, and a refusal's wait is when the span's oldest leaves it.
    #[test]
    fn limits_agree_with_a_model_of_the_promise() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for limit in [1u32, 2, 5, 17] {
            let cache = KeyCache::default();
            let grant = grant_with_limit(limit);
            let start = Instant::now();
            let mut t = 0u64;
            let mut allowed: Vec<u64> = Vec::new();
            for _ in 0..2_000 {
                t += rng.gen_range(0..=(120_000 / u64::from(limit)));
                let state = cache.charge_at(&grant, start + Duration::from_millis(t));
                let in_window: Vec<u64> =
                    allowed.iter().copied().filter(|a| t - a < 60_000).collect();
                assert_eq!(state.allowed, in_window.len() < limit as usize, "t={t}");
                if state.allowed {
                    allowed.push(t);
                } else {
                    let frees_in = in_window[0] + 60_000 - t;
                    assert_eq!(state.reset_secs, frees_in.div_ceil(1000).max(1), "t={t}");
                }
            }
        }
    }

    /// Lowering a key's limit applies to what it already used; raising it gives room at once.
    #[test]
    fn a_changed_limit_counts_what_was_used() {
        let cache = KeyCache::default();
        let mut grant = grant_with_limit(5);
        let now = Instant::now();
        for _ in 0..3 {
            assert!(cache.charge_at(&grant, now).allowed);
        }
        grant.rate_limit_per_minute = 2;
        let refused = cache.charge_at(&grant, now + Duration::from_secs(10));
        assert!(!refused.allowed);
        // Two of the three must leave the window: all three were at `now`.
        assert_eq!(refused.reset_secs, 50);
        // Raised again within the minute: the three still count.
        grant.rate_limit_per_minute = 4;
        assert!(cache.charge_at(&grant, now).allowed);
        assert!(!cache.charge_at(&grant, now).allowed);
    }

    /// A key that used up its minute stays refused when the cache overflows and is dropped, and
    /// when the key is re-scoped (invalidated): neither hands it a fresh allowance.
    #[test]
    fn a_spent_limit_survives_cache_overflow_and_invalidation() {
        let cache = KeyCache::default();
        let spent = grant_with_limit(2);
        assert!(cache.put([0; 32], cached(&spent), cache.generation()));
        assert!(cache.charge(&spent).allowed && cache.charge(&spent).allowed);
        assert!(!cache.charge(&spent).allowed);
        for n in 0..=MAX_CACHED_KEYS {
            let mut digest = [0xff; 32];
            digest[..8].copy_from_slice(&(n as u64).to_le_bytes());
            assert!(cache.put(digest, cached(&grant_with_limit(10)), cache.generation()));
        }
        cache.prune();
        assert!(cache.verified.is_empty(), "the overflowing cache was dropped");
        assert!(!cache.charge(&spent).allowed, "overflow must not reset the limit");
        cache.invalidate(spent.key_id);
        assert!(!cache.charge(&spent).allowed, "re-scoping must not reset the limit");
    }

    /// With three live nodes a key of 600 a minute gets 200 here; the nodes together never allow
    /// more than the limit, yet every node allows at least one.
    #[test]
    fn a_node_allows_its_share_of_a_key_limit() {
        let cache = KeyCache::default();
        let grant = grant_with_limit(6);
        cache.set_nodes(3);
        assert_eq!((cache.share(600), cache.share(601), cache.share(2)), (200, 200, 1));
        let now = Instant::now();
        let states: Vec<_> = (0..3).map(|_| cache.charge_at(&grant, now)).collect();
        assert_eq!(states.iter().map(|s| s.allowed).collect::<Vec<_>>(), [true, true, false]);
        assert_eq!((states[0].limit, states[0].remaining), (2, 1));
        // A node left: the share grows, counting what was used.
        cache.set_nodes(2);
        assert!(cache.charge_at(&grant, now).allowed);
        assert!(!cache.charge_at(&grant, now).allowed);
        cache.set_nodes(0);
        assert_eq!(cache.share(6), 6, "no cluster: the whole limit");
    }

    #[test]
    fn prune_forgets_only_refilled_limiters() {
        let cache = KeyCache::default();
        let (idle, busy) = (grant_with_limit(5), grant_with_limit(5));
        cache.charge(&idle);
        cache.charge(&busy);
        let later = Instant::now() + LIMITER_REFILLED + Duration::from_secs(1);
        cache.limiters.get_mut(&busy.key_id).unwrap().last_charged = later;
        cache.prune_at(later);
        assert!(!cache.limiters.contains_key(&idle.key_id), "refilled: forgotten");
        assert!(cache.limiters.contains_key(&busy.key_id), "charged just now: kept");
    }

    #[test]
    fn bad_keys_count_per_ipv6_64() {
        let cache = KeyCache::default();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for n in 0..MAX_FAILURES_PER_IP {
            cache.record_failure(ip(&format!("2001:db8:1:2::{n:x}")));
        }
        assert!(cache.ip_is_blocked(ip("2001:db8:1:2:ffff::1")).is_some(), "same /64");
        assert!(cache.ip_is_blocked(ip("2001:db8:1:3::1")).is_none(), "another /64");
        for _ in 0..MAX_FAILURES_PER_IP {
            cache.record_failure(ip("198.51.100.7"));
        }
        assert!(cache.ip_is_blocked(ip("::ffff:198.51.100.7")).is_some(), "IPv4-mapped");
        assert!(cache.ip_is_blocked(ip("198.51.100.8")).is_none(), "another IPv4 address");
    }

    #[test]
    fn prune_drops_expired_grants() {
        let cache = KeyCache::default();
        let grant = |expires_at| KeyGrant {
            key_id: Uuid::now_v7(),
            org_id: Uuid::now_v7(),
            user_id: Uuid::now_v7(),
            scopes: vec![],
            rate_limit_per_minute: 10,
            expires_at,
        };
        let live = grant(None);
        let expired = grant(Some(Utc::now() - chrono::Duration::seconds(1)));
        assert!(cache.put([1; 32], cached(&live), cache.generation()));
        assert!(cache.put([2; 32], cached(&expired), cache.generation()));
        cache.prune();
        assert_eq!(cache.verified.len(), 1);
        assert!(matches!(cache.get(&[1; 32], Utc::now()), Lookup::Fresh(g) if g == live));
    }

    #[test]
    fn failures_block_an_ip_after_the_limit() {
        let cache = KeyCache::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..MAX_FAILURES_PER_IP {
            assert!(cache.ip_is_blocked(ip).is_none());
            cache.record_failure(ip);
        }
        assert!(cache.ip_is_blocked(ip).is_some());
    }
}
