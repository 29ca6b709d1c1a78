//! Which sessions are live, without a database read per request.
//!
//! An access token names its session (`sid`) and the user's token version (`tv`). The first
//! request of a session loads both from the database; later ones read this cache. Every change
//! made through this process (logout, revoke, password change, superadmin change) updates the
//! cache at once, and one made on another node reaches it within a second as an invalidation
//! (`cluster::invalidations`). Entries also expire after a short TTL, which bounds how long a
//! change nobody announced here takes to be seen (NATS away, the CLI run without
//! `BOARDROOM_NATS_URL`).
//!
//! A load racing a change is not cached: every change bumps a generation, and a state read
//! from the database is cached only if no change landed since the read began
//! ([`SessionCache::put_read_at`]), so an invalidation heard while a node was reading the row it
//! revokes cannot be undone by that read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use uuid::Uuid;

/// How long an entry is trusted before it is reloaded.
pub const SESSION_CACHE_TTL: Duration = Duration::from_secs(30);

/// What a request needs to know about its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionState {
    /// Owner.
    pub user_id: Uuid,
    /// The user's current token version.
    pub token_version: i64,
    /// Not revoked and not expired.
    pub live: bool,
    /// The user is a platform superadmin.
    pub superadmin: bool,
}

/// The cache.
#[derive(Default)]
pub struct SessionCache {
    entries: DashMap<Uuid, (SessionState, Instant)>,
    /// Bumped by every change, after it is applied.
    generation: AtomicU64,
}

impl SessionCache {
    /// A fresh entry for `session`, if one is cached.
    pub fn get(&self, session: Uuid) -> Option<SessionState> {
        let entry = self.entries.get(&session)?;
        let (state, loaded) = *entry;
        (loaded.elapsed() < SESSION_CACHE_TTL).then_some(state)
    }

    /// Caches `state` for `session`.
    pub fn put(&self, session: Uuid, state: SessionState) {
        self.entries.insert(session, (state, Instant::now()));
    }

    /// The current generation: read it before reading a session from the database, and hand it
    /// to [`Self::put_read_at`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Caches `state`, read from the database under `generation`, unless a change landed since:
    /// then nothing is cached (`false`), and the next request reads again.
    pub fn put_read_at(&self, session: Uuid, state: SessionState, generation: u64) -> bool {
        // Checked after inserting too: a change between the check and the insert would find
        // nothing to drop, and its bump is seen here instead.
        if self.generation() != generation {
            return false;
        }
        self.put(session, state);
        if self.generation() != generation {
            self.entries.remove(&session);
            return false;
        }
        true
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Marks one session revoked.
    pub fn revoke(&self, session: Uuid) {
        if let Some(mut entry) = self.entries.get_mut(&session) {
            entry.0.live = false;
        }
        self.changed();
    }

    /// Applies a new token version to every cached session of `user`, revoking all but `keep`.
    pub fn revoke_user(&self, user: Uuid, keep: Option<Uuid>, token_version: i64) {
        for mut entry in self.entries.iter_mut() {
            let session = *entry.key();
            let (state, _) = entry.value_mut();
            if state.user_id == user {
                state.token_version = token_version;
                if Some(session) != keep {
                    state.live = false;
                }
            }
        }
        self.changed();
    }

    /// Drops every entry of `user`, so the next request reloads them.
    pub fn forget_user(&self, user: Uuid) {
        self.entries.retain(|_, (state, _)| state.user_id != user);
        self.changed();
    }

    /// Drops stale entries (called periodically).
    pub fn prune(&self) {
        self.entries.retain(|_, (_, loaded)| loaded.elapsed() < SESSION_CACHE_TTL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoking_a_user_keeps_only_the_named_session() {
        let cache = SessionCache::default();
        let user = Uuid::now_v7();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let state = SessionState { user_id: user, token_version: 0, live: true, superadmin: false };
        cache.put(a, state);
        cache.put(b, state);
        cache.revoke_user(user, Some(a), 1);
        assert_eq!(cache.get(a).map(|s| (s.live, s.token_version)), Some((true, 1)));
        assert_eq!(cache.get(b).map(|s| (s.live, s.token_version)), Some((false, 1)));
    }

    /// A state read before a change (here: heard from another node) is not cached after it.
    #[test]
    fn a_read_overtaken_by_a_change_is_not_cached() {
        let cache = SessionCache::default();
        let (user, session) = (Uuid::now_v7(), Uuid::now_v7());
        let state = SessionState { user_id: user, token_version: 0, live: true, superadmin: false };
        let before = cache.generation();
        cache.revoke(session);
        assert!(!cache.put_read_at(session, state, before));
        assert_eq!(cache.get(session), None, "read again next time");
        assert!(cache.put_read_at(session, state, cache.generation()));
        assert_eq!(cache.get(session), Some(state));
    }
}
