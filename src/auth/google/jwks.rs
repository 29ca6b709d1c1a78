//! The provider's signing keys by key id, from its JWKS URL. Kept for the `max-age` the answer
//! allows (clamped to 5 minutes – 24 hours; 1 hour without one) and fetched again at once when
//! a token names an unknown key id, at most once per [`FORCED_REFETCH_EVERY`]; concurrent
//! misses fetch once.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use url::Url;

use super::{invalid_id_token, read_capped, SignInError};

/// JWKS lifetime when the answer names none.
const DEFAULT_KEYS_TTL: Duration = Duration::from_secs(60 * 60);
const MIN_KEYS_TTL: Duration = Duration::from_secs(5 * 60);
const MAX_KEYS_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Least time between two JWKS fetches forced by unknown key ids.
pub const FORCED_REFETCH_EVERY: Duration = Duration::from_secs(30);

/// The provider's signing keys by key id, fetched from the JWKS URL.
pub(super) struct KeyCache {
    url: Url,
    current: RwLock<Option<Arc<KeySet>>>,
    /// Held while fetching, so concurrent misses fetch once; holds the time of the last fetch
    /// forced by an unknown key id.
    fetching: tokio::sync::Mutex<Option<Instant>>,
}

struct KeySet {
    keys: HashMap<String, DecodingKey>,
    fetched_at: Instant,
    ttl: Duration,
}

impl KeySet {
    fn is_fresh(&self) -> bool {
        self.fetched_at.elapsed() < self.ttl
    }
}

/// One entry of a JWKS; entries of other shapes are skipped, not fatal.
#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<serde_json::Value>,
}

impl KeyCache {
    pub(super) fn new(url: Url) -> Self {
        KeyCache { url, current: RwLock::new(None), fetching: tokio::sync::Mutex::new(None) }
    }

    fn snapshot(&self) -> Option<Arc<KeySet>> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The key `kid`, fetching the set when it is stale, missing, or lacks that key.
    pub(super) async fn key(
        &self,
        http: &reqwest::Client,
        kid: &str,
    ) -> Result<DecodingKey, SignInError> {
        let cached = self.snapshot().filter(|set| set.is_fresh());
        if let Some(key) = cached.as_deref().and_then(|set| set.keys.get(kid)) {
            return Ok(key.clone());
        }
        let mut last_forced = self.fetching.lock().await;
        // Whoever held the lock before may just have fetched.
        if let Some(set) = self.snapshot().filter(|set| set.is_fresh()) {
            if let Some(key) = set.keys.get(kid) {
                return Ok(key.clone());
            }
            // A fresh set without the key: the provider may have rotated. Ask again, but not
            // on every token that names a key nobody published.
            if last_forced.is_some_and(|at| at.elapsed() < FORCED_REFETCH_EVERY) {
                return Err(invalid_id_token("unknown_key_id"));
            }
            *last_forced = Some(Instant::now());
        }
        let set = Arc::new(self.fetch(http).await?);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(set.clone());
        set.keys.get(kid).cloned().ok_or_else(|| invalid_id_token("unknown_key_id"))
    }

    async fn fetch(&self, http: &reqwest::Client) -> Result<KeySet, SignInError> {
        let unreachable = |err: &dyn std::fmt::Display| {
            tracing::warn!(error = %err, url = %self.url, "Google's signing keys could not be fetched");
            SignInError::unreachable("jwks_unreachable")
        };
        let response = http
            .get(self.url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| unreachable(&e))?;
        if !response.status().is_success() {
            return Err(unreachable(&format!("status {}", response.status())));
        }
        let ttl = max_age(response.headers())
            .unwrap_or(DEFAULT_KEYS_TTL)
            .clamp(MIN_KEYS_TTL, MAX_KEYS_TTL);
        let body = read_capped(response).await.map_err(|e| unreachable(&e))?;
        let set: JwkSet = serde_json::from_slice(&body).map_err(|e| unreachable(&e))?;
        let keys = set
            .keys
            .into_iter()
            .filter_map(|entry| serde_json::from_value::<Jwk>(entry).ok())
            .filter(|jwk| {
                jwk.kty == "RSA"
                    && jwk.usage.as_deref().is_none_or(|u| u == "sig")
                    && jwk.alg.as_deref().is_none_or(|a| a == "RS256")
            })
            .filter_map(|jwk| {
                let key = DecodingKey::from_rsa_components(jwk.n.as_deref()?, jwk.e.as_deref()?);
                Some((jwk.kid?, key.ok()?))
            })
            .collect();
        Ok(KeySet { keys, fetched_at: Instant::now(), ttl })
    }
}

/// The `max-age` of a `Cache-Control` header.
fn max_age(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::CACHE_CONTROL)?.to_str().ok()?;
    value.split(',').find_map(|directive| {
        let (name, secs) = directive.trim().split_once('=')?;
        if name.trim().eq_ignore_ascii_case("max-age") {
            secs.trim().parse::<u64>().ok().map(Duration::from_secs)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_from_cache_control() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::CACHE_CONTROL,
            "public, max-age=21432, must-revalidate, no-transform".parse().unwrap(),
        );
        assert_eq!(max_age(&headers), Some(Duration::from_secs(21432)));
        headers.insert(reqwest::header::CACHE_CONTROL, "no-cache".parse().unwrap());
        assert_eq!(max_age(&headers), None);
    }
}
