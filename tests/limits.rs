//! The attempt limiter on a real database, with the clock in the test's hands: exact in any
//! span of the window (checked against a model over random attempts), exact `Retry-After`,
//! all-or-none across limits, given-back slots, several nodes at once, marks and pruning.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use boardroom::auth::limits::{Limit, Limiter, Refused, Taken};
use boardroom::storage::Store;
use rand::{Rng, SeedableRng};

use crate::harness::{both_backends, TestServer};

both_backends!(
    five_per_fifteen_minutes_in_any_span,
    the_pattern_that_let_nine_through_gets_five,
    limits_agree_with_a_model_of_the_promise,
    a_refused_attempt_takes_no_slot_anywhere,
    nodes_sharing_a_database_share_the_limit,
    marks_expire_and_pruning_forgets,
);

/// The login limit's shape: 5 per 15 minutes.
const LOGIN: Limit = Limit { name: "test-login", max: 5, window: Duration::from_secs(900) };
/// The registration limit's shape: 5 per 60 seconds.
const REGISTER: Limit = Limit { name: "test-register", max: 5, window: Duration::from_secs(60) };

/// Some moment, in unix milliseconds; the tests move the clock from here.
const T0: i64 = 1_800_000_000_000;

/// A limiter on the server's database whose clock the test sets.
struct Clocked {
    limiter: Limiter,
    now: Arc<AtomicI64>,
}

impl Clocked {
    fn on(store: Store) -> Clocked {
        let now = Arc::new(AtomicI64::new(T0));
        let clock = Arc::clone(&now);
        let limiter = Limiter::with_clock(store, Arc::new(move || clock.load(Ordering::SeqCst)));
        Clocked { limiter, now }
    }

    fn at_ms(&self, ms: i64) -> &Self {
        self.now.store(T0 + ms, Ordering::SeqCst);
        self
    }

    /// Takes a slot of `limit` for `subject` at `secs` after `T0`.
    async fn take_at(&self, secs: f64, limit: Limit, subject: &str) -> Result<Taken, Refused> {
        self.at_ms((secs * 1000.0).round() as i64);
        self.limiter.take(&[(limit, subject)]).await.unwrap()
    }

    /// Like [`Clocked::take_at`]; asserts the attempt passes and keeps it.
    async fn pass_at(&self, secs: f64, limit: Limit, subject: &str) {
        match self.take_at(secs, limit, subject).await {
            Ok(taken) => taken.keep(),
            Err(refused) => panic!("refused at {secs} s: {refused:?}"),
        }
    }

    /// Like [`Clocked::take_at`]; asserts the attempt is refused and returns its `Retry-After`.
    async fn refused_at(&self, secs: f64, limit: Limit, subject: &str) -> u64 {
        match self.take_at(secs, limit, subject).await {
            Ok(_) => panic!("let through at {secs} s"),
            Err(refused) => refused.retry_after_secs,
        }
    }
}

async fn five_per_fifteen_minutes_in_any_span(server: &TestServer) {
    let clocked = Clocked::on(server.state().store().clone());
    let who = "alice@example.com\n198.51.100.7/32";
    for _ in 0..5 {
        clocked.pass_at(0.0, LOGIN, who).await;
    }
    // 14:59 and a millisecond before 15:00: still five in the span; the first leaves at 15:00.
    assert_eq!(clocked.refused_at(899.0, LOGIN, who).await, 1);
    assert_eq!(clocked.refused_at(899.999, LOGIN, who).await, 1);
    assert_eq!(clocked.refused_at(600.0, LOGIN, who).await, 300);
    // At 15:00 all five have left; five more pass, and the sixth waits a whole window.
    for _ in 0..5 {
        clocked.pass_at(900.0, LOGIN, who).await;
    }
    assert_eq!(clocked.refused_at(900.0, LOGIN, who).await, 900);
    assert_eq!(clocked.refused_at(901.0, LOGIN, who).await, 899);
    // Other subjects and other limits count apart.
    clocked.pass_at(901.0, LOGIN, "bob@example.com\n198.51.100.7/32").await;
    clocked.pass_at(901.0, REGISTER, who).await;

    // Registration: 5 in any 60 seconds.
    let net = "203.0.113.0/32";
    for secs in [0.0, 10.0, 20.0, 30.0, 40.0] {
        clocked.pass_at(secs, REGISTER, net).await;
    }
    assert_eq!(clocked.refused_at(59.999, REGISTER, net).await, 1);
    clocked.pass_at(60.0, REGISTER, net).await;
    assert_eq!(clocked.refused_at(60.0, REGISTER, net).await, 10);
    assert_eq!(clocked.refused_at(69.5, REGISTER, net).await, 1);
    clocked.pass_at(70.0, REGISTER, net).await;
}

/// The sliding-window estimate let 9 attempts through in 721 s: 5 at 14:59, then one at each of
/// 18:00, 21:00, 24:00 and 27:00 (its fixed windows started every 15 minutes).
async fn the_pattern_that_let_nine_through_gets_five(server: &TestServer) {
    let clocked = Clocked::on(server.state().store().clone());
    let who = "carol@example.com\n2001:db8:1:2::/64";
    for _ in 0..5 {
        clocked.pass_at(899.0, LOGIN, who).await;
    }
    for secs in [1080.0, 1260.0, 1440.0, 1620.0] {
        let retry = clocked.refused_at(secs, LOGIN, who).await;
        assert_eq!(retry as f64, 1799.0 - secs, "Retry-After at {secs} s");
    }
    clocked.pass_at(1799.0, LOGIN, who).await;
}

/// Random attempts (bursts and lulls, some given back as a correct password gives its slot
/// back), each checked against the promise itself: an attempt passes exactly when fewer than
/// `max` kept attempts lie in the window before it, and a refusal's `Retry-After` is the moment
/// the oldest of those leaves, rounded up to a second.
async fn limits_agree_with_a_model_of_the_promise(server: &TestServer) {
    let clocked = Clocked::on(server.state().store().clone());
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    for (limit, subject) in [(LOGIN, "model-login"), (REGISTER, "model-register")] {
        let window_ms = limit.window.as_millis() as i64;
        let mut kept: Vec<i64> = Vec::new();
        let (mut now, mut passed, mut refused) = (0i64, 0, 0);
        for _ in 0..250 {
            now += match rng.gen_range(0..10) {
                0..=5 => rng.gen_range(0..2_000),
                6..=8 => rng.gen_range(0..window_ms / 4),
                _ => rng.gen_range(0..window_ms * 2),
            };
            let counted: Vec<i64> =
                kept.iter().copied().filter(|&at| now - at < window_ms).collect();
            clocked.at_ms(now);
            let got = clocked.limiter.take(&[(limit, subject)]).await.unwrap();
            if counted.len() < limit.max as usize {
                let taken = got.unwrap_or_else(|r| panic!("refused at {now} ms: {r:?}"));
                passed += 1;
                if rng.gen_bool(0.3) {
                    clocked.limiter.give_back(taken).await.unwrap();
                } else {
                    taken.keep();
                    kept.push(now);
                }
            } else {
                let oldest = counted[counted.len() - limit.max as usize];
                let want = ((oldest + window_ms - now) as u64).div_ceil(1000);
                let got = got.err().unwrap_or_else(|| panic!("let through at {now} ms"));
                assert_eq!(got.retry_after_secs, want, "Retry-After at {now} ms");
                assert!(got.retry_after_secs <= limit.window.as_secs());
                refused += 1;
            }
        }
        // The random walk exercised both answers.
        assert!(passed > 20 && refused > 20, "{passed} passed, {refused} refused");
        // And no span of the window ever held more than `max` kept attempts.
        for (i, &start) in kept.iter().enumerate() {
            let in_span = kept[i..].iter().take_while(|&&at| at - start < window_ms).count();
            assert!(in_span <= limit.max as usize, "{in_span} from {start} ms");
        }
    }
}

async fn a_refused_attempt_takes_no_slot_anywhere(server: &TestServer) {
    let clocked = Clocked::on(server.state().store().clone());
    let tight = Limit { name: "test-tight", max: 1, window: Duration::from_secs(60) };
    let both = [(tight, "x"), (LOGIN, "x")];
    clocked.at_ms(0).limiter.take(&both).await.unwrap().unwrap().keep();
    let refused = clocked.at_ms(1_000).limiter.take(&both).await.unwrap().unwrap_err();
    assert_eq!(refused.full, [0]);
    assert!(refused.only(0) && !refused.only(1));
    assert_eq!(refused.retry_after_secs, 59);
    // The refusal took nothing from the login limit: four of its five slots are left.
    for _ in 0..4 {
        clocked.pass_at(2.0, LOGIN, "x").await;
    }
    // Both full: the answer waits for both.
    let refused = clocked.at_ms(3_000).limiter.take(&both).await.unwrap().unwrap_err();
    assert_eq!(refused.full, [0, 1]);
    assert_eq!(refused.retry_after_secs, 897);
    // A slot given back is free at once.
    let taken = clocked.take_at(900.0, LOGIN, "y").await.unwrap();
    for _ in 0..4 {
        clocked.pass_at(900.0, LOGIN, "y").await;
    }
    clocked.refused_at(900.0, LOGIN, "y").await;
    clocked.limiter.give_back(taken).await.unwrap();
    clocked.pass_at(900.0, LOGIN, "y").await;
}

/// Two stores on one database are two nodes: 40 concurrent attempts at one moment, split
/// between them, let exactly 5 through.
async fn nodes_sharing_a_database_share_the_limit(server: &TestServer) {
    let other = Store::open(&server.database.url, 8).await.unwrap();
    let nodes = [Clocked::on(server.state().store().clone()), Clocked::on(other)];
    let attempts = (0..40).map(|n| {
        let node = &nodes[n % 2];
        async move { node.limiter.take(&[(LOGIN, "shared")]).await.unwrap() }
    });
    let results = futures::future::join_all(attempts).await;
    let passed = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(passed, 5);
    for refused in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(refused.retry_after_secs, 900);
    }
    for taken in results.into_iter().flatten() {
        taken.keep();
    }
}

async fn marks_expire_and_pruning_forgets(server: &TestServer) {
    let store = server.state().store().clone();
    let clocked = Clocked::on(store.clone());
    let rows = || async {
        boardroom::on_pool!(store, pool => {
            let (hits,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM rate_limit_hits")
                .fetch_one(pool).await.unwrap();
            let (marks,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM rate_limit_marks")
                .fetch_one(pool).await.unwrap();
            (hits, marks)
        })
    };
    for secs in [0.0, 30.0, 59.0] {
        clocked.pass_at(secs, REGISTER, "pruned").await;
    }
    clocked.pass_at(0.0, LOGIN, "pruned").await;
    assert_eq!(rows().await, (4, 0));
    // At 60 s the first registration stopped counting; at 900 s all four attempts have.
    clocked.at_ms(60_000);
    assert_eq!(clocked.limiter.prune().await.unwrap(), 1);
    clocked.at_ms(900_000);
    assert_eq!(clocked.limiter.prune().await.unwrap(), 3);
    assert_eq!(rows().await, (0, 0));

    let day = Duration::from_secs(86_400);
    clocked.at_ms(0).limiter.mark("test-mark", "alice", day).await.unwrap();
    assert!(clocked.limiter.is_marked("test-mark", "alice").await.unwrap());
    assert!(!clocked.limiter.is_marked("test-mark", "bob").await.unwrap());
    assert!(!clocked.limiter.is_marked("other-mark", "alice").await.unwrap());
    // Marking again extends it to a day after the latest mark.
    clocked.at_ms(3_600_000).limiter.mark("test-mark", "alice", day).await.unwrap();
    clocked.at_ms(86_400_000);
    assert!(clocked.limiter.is_marked("test-mark", "alice").await.unwrap());
    assert_eq!(clocked.limiter.prune().await.unwrap(), 0);
    clocked.at_ms(90_000_000);
    assert!(!clocked.limiter.is_marked("test-mark", "alice").await.unwrap());
    assert_eq!(rows().await, (0, 1));
    assert_eq!(clocked.limiter.prune().await.unwrap(), 1);
    assert_eq!(rows().await, (0, 0));
}
