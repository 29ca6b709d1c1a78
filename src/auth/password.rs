//! Password policy and hashing.
//!
//! bcrypt at cost 12 takes about a quarter second of CPU. It never runs on the async runtime:
//! [`PasswordHasher`] hands it to threads of its own (`BOARDROOM_BCRYPT_THREADS` of them) and
//! refuses new work once too many requests wait, so a login flood cannot stall other requests or
//! sockets. Those threads also run in the idle scheduling class (`SCHED_IDLE`): on a machine
//! with few cores a flood would otherwise take every core from the runtime that serves live
//! users, who then wait their turn behind bcrypt. Under contention logins slow down instead.
//!
//! Passwords over 72 bytes are refused rather than silently truncated, as bcrypt would, and so
//! are passwords holding NUL (see `crate::validate` for why that is the one character refused).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use tokio::sync::{OnceCell, Semaphore};

/// Fewest characters a password may have.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Most bytes bcrypt reads; longer passwords are refused, never truncated.
pub const MAX_PASSWORD_BYTES: usize = 72;

/// Why a password is refused. Displayed as the rest of a sentence that starts with the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Too short.
    #[error("must be at least 10 characters")]
    TooShort,
    /// Over 72 bytes.
    #[error("must be at most 72 bytes (bcrypt would silently truncate it)")]
    TooLong,
    /// Holds NUL, where C implementations of bcrypt end the key (see `crate::validate`).
    #[error("must not contain NUL characters")]
    Nul,
}

/// Checks a new password against the policy.
pub fn check_policy(password: &str) -> Result<(), PolicyError> {
    check_presented(password)?;
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PolicyError::TooShort);
    }
    Ok(())
}

/// Checks a password presented for verification: refuses only what no account's password can
/// be (the policy has always refused passwords over 72 bytes).
pub fn check_presented(password: &str) -> Result<(), PolicyError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PolicyError::TooLong);
    }
    if password.contains('\0') {
        return Err(PolicyError::Nul);
    }
    Ok(())
}

/// Why hashing could not run.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Too many requests are already waiting for the pool.
    #[error("password hashing is saturated")]
    Busy,
    /// bcrypt failed or its task died.
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// One bcrypt run, handed to a pool thread.
type Job = Box<dyn FnOnce() + Send>;

/// Runs bcrypt on a bounded pool.
pub struct PasswordHasher {
    cost: u32,
    /// To the pool's threads; they end when it drops. `None` if none could be started, and then
    /// jobs go to tokio's blocking pool (at normal priority) rather than nowhere.
    jobs: Option<mpsc::Sender<Job>>,
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
    dummy: OnceCell<String>,
    runs: AtomicU64,
}

impl PasswordHasher {
    /// A hasher at `cost`, running at most `threads` hashes at once.
    pub fn new(cost: u32, threads: usize) -> Self {
        let threads = threads.max(1);
        PasswordHasher {
            cost,
            jobs: start_pool(threads),
            permits: Arc::new(Semaphore::new(threads)),
            waiting: AtomicUsize::new(0),
            max_waiting: 256,
            dummy: OnceCell::new(),
            runs: AtomicU64::new(0),
        }
    }

    /// The cost in use.
    pub fn cost(&self) -> u32 {
        self.cost
    }

    /// bcrypt runs started so far (tests and metrics).
    pub fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    /// Jobs waiting for the pool now (metrics).
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> Result<T, bcrypt::BcryptError> + Send + 'static,
    ) -> Result<T, HashError> {
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(HashError::Busy);
        }
        let permit = self.permits.clone().acquire_owned().await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        let permit = permit.map_err(|e| HashError::Failed(e.to_string()))?;
        self.runs.fetch_add(1, Ordering::Relaxed);
        let (done, result) = tokio::sync::oneshot::channel();
        let work: Job = Box::new(move || {
            let started = std::time::Instant::now();
            let result = job();
            crate::metrics::bcrypt_ran(started.elapsed());
            drop(permit);
            let _ = done.send(result);
        });
        match &self.jobs {
            Some(jobs) => {
                jobs.send(work).map_err(|_| HashError::Failed("the bcrypt pool is gone".into()))?
            }
            None => drop(tokio::task::spawn_blocking(work)),
        }
        result
            .await
            .map_err(|_| HashError::Failed("a bcrypt run ended without an answer".into()))?
            .map_err(|e| HashError::Failed(e.to_string()))
    }

    /// Hashes `password` (which must already pass [`check_policy`]).
    ///
    /// The length is checked here rather than by bcrypt's `non_truncating_*`, which also refuses
    /// exactly 72 bytes because it counts the C terminator; at 72 bytes every byte of the
    /// password is still used.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(HashError::Failed("password over 72 bytes reached the hasher".into()));
        }
        let cost = self.cost;
        self.run(move || bcrypt::hash(password, cost)).await
    }

    /// Verifies `password` against `hash`. With no hash (unknown account, or one without a
    /// password) it still spends the same bcrypt work against a dummy, so timing does not tell.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, HashError> {
        let (hash, real) = match hash {
            Some(hash) => (hash, true),
            None => (self.dummy_hash().await?, false),
        };
        if password.len() > MAX_PASSWORD_BYTES {
            return Ok(false);
        }
        let matched = self.run(move || bcrypt::verify(password, &hash)).await?;
        Ok(real && matched)
    }

    async fn dummy_hash(&self) -> Result<String, HashError> {
        self.dummy
            .get_or_try_init(|| self.hash("boardroom-timing-equalizer".to_owned()))
            .await
            .cloned()
    }
}

/// Starts `threads` bcrypt threads in the idle scheduling class taking jobs from one queue (the semaphore
/// keeps at most `threads` in it). They end when the returned sender drops.
fn start_pool(threads: usize) -> Option<mpsc::Sender<Job>> {
    let (jobs, queue) = mpsc::channel::<Job>();
    let queue = Arc::new(Mutex::new(queue));
    let mut started = 0;
    for n in 0..threads {
        let queue = queue.clone();
        let spawned = std::thread::Builder::new().name(format!("bcrypt-{n}")).spawn(move || {
            lower_priority();
            loop {
                // A poisoned lock only means a panic in another job; the queue is still valid.
                let next = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                match next {
                    // A job that panics answers nobody (its caller gets an error); the thread
                    // lives on, so the pool keeps its size.
                    Ok(job) => drop(std::panic::catch_unwind(std::panic::AssertUnwindSafe(job))),
                    Err(mpsc::RecvError) => return,
                }
            }
        });
        match spawned {
            Ok(_) => started += 1,
            Err(err) => tracing::error!(error = %err, "cannot start a bcrypt thread"),
        }
    }
    (started > 0).then_some(jobs)
}

/// Puts the calling thread in Linux's idle scheduling class (`SCHED_IDLE`). Any other thread
/// that wakes takes its core at once, and the kernel counts a core that runs only such threads
/// as idle when it places a woken thread. A nice value alone (even 19) does neither: on two cores
/// a flood then still added a quarter or more to live users' p99, the woken runtime threads
/// queueing beside each other while bcrypt held the other core. bcrypt is not starved: an idle
/// core runs it at full speed, and under full load it keeps a small share. Failing leaves the
/// thread as it was: slower live traffic under a flood, nothing worse.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{
            set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
            ThreadPriority, ThreadSchedulePolicy,
        };
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        if let Err(err) =
            set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle)
        {
            tracing::warn!(error = ?err, "cannot lower the bcrypt threads' priority");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// bcrypt runs on threads of the idle scheduling class, so that under a login flood the
    /// runtime serving live users gets the cores first.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn bcrypt_runs_at_a_lower_priority_than_the_runtime() {
        use thread_priority::{
            thread_schedule_policy, NormalThreadSchedulePolicy, ThreadSchedulePolicy,
        };
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        assert_ne!(thread_schedule_policy().unwrap(), idle, "the test's own thread");
        let hasher = PasswordHasher::new(4, 2);
        let (name, policy) = hasher
            .run(|| {
                let name = std::thread::current().name().unwrap_or_default().to_owned();
                Ok((name, thread_schedule_policy().unwrap()))
            })
            .await
            .unwrap();
        assert!(name.starts_with("bcrypt-"), "ran on {name}");
        assert_eq!(policy, idle);
        // The pool still hashes, and its threads end with the hasher.
        assert!(hasher.hash("correct horse battery".into()).await.is_ok());
        drop(hasher);
    }

    /// A job that panics fails alone: its caller gets an error, and the pool's one thread
    /// lives on to hash the next password.
    #[tokio::test]
    async fn a_panicking_job_fails_alone_and_the_pool_keeps_its_thread() {
        let hasher = PasswordHasher::new(4, 1);
        let failed = hasher.run(|| -> Result<(), bcrypt::BcryptError> { panic!("a test panic") });
        assert!(matches!(failed.await, Err(HashError::Failed(_))));
        assert!(hasher.hash("correct horse battery".into()).await.is_ok());
    }

    #[test]
    fn policy_bounds() {
        assert_eq!(check_policy("short"), Err(PolicyError::TooShort));
        assert_eq!(check_policy(&"a".repeat(10)), Ok(()));
        assert_eq!(check_policy(&"a".repeat(64)), Ok(()));
        assert_eq!(check_policy(&"a".repeat(72)), Ok(()));
        assert_eq!(check_policy(&"a".repeat(73)), Err(PolicyError::TooLong));
        // 25 three-byte characters are 75 bytes: refused even though only 25 characters.
        assert_eq!(check_policy(&"€".repeat(25)), Err(PolicyError::TooLong));
        assert_eq!(check_policy("long-enough\0pw"), Err(PolicyError::Nul));
        assert_eq!(check_policy("long\tenough\u{1}\u{202e}"), Ok(()));
        assert_eq!(check_presented("short"), Ok(()));
        assert_eq!(check_presented("a\0"), Err(PolicyError::Nul));
    }

    #[tokio::test]
    async fn hash_and_verify_round_trip() {
        let hasher = PasswordHasher::new(4, 2);
        let hash = hasher.hash("correct horse battery".into()).await.unwrap();
        assert!(hash.starts_with("$2b$04$"), "{hash}");
        assert!(hasher.verify("correct horse battery".into(), Some(hash.clone())).await.unwrap());
        assert!(!hasher.verify("wrong horse battery".into(), Some(hash)).await.unwrap());
        assert!(!hasher.verify("anything at all".into(), None).await.unwrap());
    }

    #[tokio::test]
    async fn a_long_password_is_not_truncated() {
        let hasher = PasswordHasher::new(4, 1);
        let base = "x".repeat(72);
        let hash = hasher.hash(base.clone()).await.unwrap();
        // bcrypt itself would accept base + "y" for a truncated hash; we never do.
        assert!(!hasher.verify(format!("{base}y"), Some(hash)).await.unwrap());
    }
}
