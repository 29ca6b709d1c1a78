//! Several nodes on one Postgres database and NATS: who may start, one owner per board (by
//! lease) with writes through any node forwarded to it, and a takeover when the owner is
//! killed or paused that loses nothing acknowledged and keeps each board's `seq` gap-free.
//! Every node is a `boardroom serve` process (`harness::cluster`).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use boardroom_protocol::boards;
use sqlx::Connection;

use crate::harness::cluster::{Cluster, NodeSettings};
use crate::harness::socket::{self, msg, JSON};
use crate::harness::{Api, TestUser};

/// A board in an organization, made through node 0.
struct Fixture {
    owner: TestUser,
    board: String,
    group: uuid::Uuid,
}

async fn fixture(cluster: &Cluster) -> Fixture {
    let node = cluster.node(0);
    let owner = node.register("Olive Owner").await;
    let org = node.create_org(&owner, "Cluster Co").await;
    let created = node.create_board(&owner, &org, "Shared").await;
    Fixture { owner, board: created.board.id.to_string(), group: created.groups[0].id }
}

fn item(group: uuid::Uuid, name: String) -> boards::CreateItem {
    boards::CreateItem {
        group_id: group,
        name,
        values: Default::default(),
        before: None,
        after: None,
    }
}

async fn database(cluster: &Cluster) -> sqlx::PgConnection {
    sqlx::PgConnection::connect(cluster.database_url()).await.expect("connect to the database")
}

/// The board's logged `seq`s, in order.
async fn logged_seqs(cluster: &Cluster, board: &str) -> Vec<i64> {
    let board: uuid::Uuid = board.parse().unwrap();
    let rows: Vec<(i64,)> =
        sqlx::query_as("SELECT seq FROM board_events WHERE board_id = $1 ORDER BY seq")
            .bind(board)
            .fetch_all(&mut database(cluster).await)
            .await
            .unwrap();
    rows.into_iter().map(|(seq,)| seq).collect()
}

fn assert_gap_free(seqs: &[i64]) {
    let expected: Vec<i64> = (1..=seqs.len() as i64).collect();
    assert_eq!(seqs, expected.as_slice(), "the log has a gap or a repeat");
}

/// The node holding the board's unexpired lease, by index.
async fn owner_of(cluster: &Cluster, board: &str) -> Option<usize> {
    let board: uuid::Uuid = board.parse().unwrap();
    let holder: Option<(String,)> = sqlx::query_as(
        "SELECT node_id FROM leases WHERE kind = 'board' AND entity_id = $1 \
         AND expires_at > clock_timestamp()",
    )
    .bind(board)
    .fetch_optional(&mut database(cluster).await)
    .await
    .unwrap();
    let holder = holder?.0;
    cluster.nodes.iter().position(|n| n.id == holder)
}

#[tokio::test]
async fn a_node_without_nats_or_on_sqlite_is_refused() {
    let Some(cluster) = Cluster::start(1).await else { return };
    let listen = SocketAddr::from(([127, 0, 0, 1], 0));

    let mut alone = cluster.command("loner", listen);
    alone.env_remove("BOARDROOM_NATS_URL");
    let (started, said) = Cluster::run_to_exit(alone);
    assert!(!started, "a node without NATS started beside a clustered one");
    assert!(said.contains("BOARDROOM_NATS_URL") && said.contains("node-0"), "{said}");

    let (started, said) = Cluster::run_to_exit(cluster.command("node-0", listen));
    assert!(!started, "a second node-0 started");
    assert!(said.contains("BOARDROOM_NODE_ID"), "{said}");

    let dir = tempfile::tempdir().unwrap();
    let mut sqlite = cluster.command("lite", listen);
    sqlite
        .env("DATABASE_URL", format!("sqlite://{}", dir.path().join("b.db").display()))
        .env("BOARDROOM_DATA_DIR", dir.path());
    let (started, said) = Cluster::run_to_exit(sqlite);
    assert!(!started, "NATS with SQLite started");
    assert!(said.contains("need Postgres"), "{said}");
}

#[tokio::test]
async fn writes_through_every_node_commit_on_one_owner_in_order() {
    let Some(cluster) = Cluster::start(3).await else { return };
    let f = fixture(&cluster).await;
    let path = format!("/api/v1/boards/{}/items", f.board);

    // REST writes through all three nodes at once.
    let mut writers = Vec::new();
    for (n, node) in cluster.nodes.iter().enumerate() {
        let (path, token, group) = (path.clone(), f.owner.access_token.clone(), f.group);
        let api = Api::at(node.addr());
        writers.push(tokio::spawn(async move {
            for i in 0..20 {
                let created: boards::Item = api
                    .post(&path, Some(&token), &item(group, format!("n{n}-{i}")))
                    .await
                    .expect_as(201);
                assert_eq!(created.name, format!("n{n}-{i}"));
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let owner = owner_of(&cluster, &f.board).await.expect("the board has an owner");

    // A socket on a node that is not the owner pipelines its writes: answered in order, each
    // with the next seq of this connection's writes.
    let other = (owner + 1) % 3;
    let mut socket = socket::connect(cluster.node(other), &f.owner.access_token, JSON).await;
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(
            socket.send(msg::create_item(&f.board, item(f.group, format!("pipelined-{i}")))).await,
        );
    }
    let mut replies = Vec::new();
    for _ in &ids {
        let reply = socket.next_reply().await;
        assert!(reply.ok, "{reply:?}");
        replies.push((reply.id.clone(), reply.seq.expect("a write's seq")));
    }
    let mut last_seq = 0;
    for (id, (replied, seq)) in ids.iter().zip(&replies) {
        assert_eq!(replied, &Some(boardroom_protocol::RequestId::Number(*id)));
        assert!(*seq > last_seq, "replies out of commit order: {seq} after {last_seq}");
        last_seq = *seq;
    }

    // One owner throughout; 1 creation + 60 + 30 items, gap-free.
    assert_eq!(owner_of(&cluster, &f.board).await, Some(owner));
    let seqs = logged_seqs(&cluster, &f.board).await;
    assert_eq!(seqs.len(), 91);
    assert_gap_free(&seqs);

    // Reads answer the owner's state through every node.
    for node in &cluster.nodes {
        let snapshot =
            node.get_as(&format!("/api/v1/boards/{}", f.board), &f.owner.access_token).await;
        let snapshot: boards::Snapshot = snapshot.expect_as(200);
        assert_eq!(snapshot.seq, 91);
        assert_eq!(snapshot.items.len(), 90);
    }
}

/// Writers through every node keep creating items, retrying refusals, while the owner is
/// killed; answers the names acknowledged, and how long after the kill the first write
/// succeeded.
struct Load {
    acknowledged: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    writers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(cluster: &Cluster, f: &Fixture, through: &[usize]) -> Load {
        let acknowledged = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let path = format!("/api/v1/boards/{}/items", f.board);
        let writers = through
            .iter()
            .map(|&n| {
                let api = Api::at(cluster.node(n).addr());
                let (path, token, group) = (path.clone(), f.owner.access_token.clone(), f.group);
                let (acknowledged, stop) = (acknowledged.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let name = format!("w{n}-{i}");
                        let call = api
                            .call(reqwest::Method::POST, &path)
                            .bearer(&token)
                            .json(&item(group, name.clone()));
                        let reply =
                            tokio::time::timeout(Duration::from_secs(20), call.try_send()).await;
                        match reply {
                            // Its node was killed: this writer is done.
                            Ok(Err(_)) => return,
                            Ok(Ok(reply)) if reply.status == 201 => {
                                acknowledged.lock().unwrap().push(name);
                                i += 1;
                            }
                            Ok(Ok(reply)) => {
                                // Only "retry" refusals while the board moves.
                                assert_eq!(reply.status, 503, "{:?}", reply.body);
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                            Err(_) => panic!("a write got no answer in 20 s"),
                        }
                    }
                })
            })
            .collect();
        Load { acknowledged, stop, writers }
    }

    fn count(&self) -> usize {
        self.acknowledged.lock().unwrap().len()
    }

    async fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        for writer in self.writers {
            writer.await.unwrap();
        }
        Arc::try_unwrap(self.acknowledged).unwrap().into_inner().unwrap()
    }
}

/// Waits until `load` has `more` acknowledgements beyond `from`; answers how long it took.
async fn progress(load: &Load, from: usize, more: usize, within: Duration) -> Duration {
    let started = Instant::now();
    while load.count() < from + more {
        assert!(started.elapsed() < within, "writes did not resume within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

/// Every acknowledged item is in the database, and the board's log is gap-free.
async fn nothing_acknowledged_is_lost(cluster: &Cluster, f: &Fixture, acked: &[String]) {
    let board: uuid::Uuid = f.board.parse().unwrap();
    let rows: Vec<(String,)> = sqlx::query_as("SELECT name FROM items WHERE board_id = $1")
        .bind(board)
        .fetch_all(&mut database(cluster).await)
        .await
        .unwrap();
    let stored: BTreeSet<String> = rows.into_iter().map(|(name,)| name).collect();
    for name in acked {
        if !stored.contains(name) {
            panic!("acknowledged {name} is not on the board");
        }
    }
    let seqs = logged_seqs(cluster, &f.board).await;
    assert_gap_free(&seqs);
}

#[tokio::test]
async fn killing_the_owner_under_load_loses_nothing_acknowledged() {
    let Some(mut cluster) = Cluster::start(3).await else { return };
    let f = fixture(&cluster).await;
    let owner = owner_of(&cluster, &f.board).await.expect("the board has an owner");
    let survivors: Vec<usize> = (0..3).filter(|n| *n != owner).collect();

    let load = Load::start(&cluster, &f, &[0, 1, 2]);
    progress(&load, 0, 30, Duration::from_secs(30)).await;
    cluster.nodes[owner].kill();
    let killed_at = load.count();
    // The lease lasts 3 s here; the bound is 10 s from the kill.
    let resumed = progress(&load, killed_at, 20, Duration::from_secs(10)).await;
    eprintln!("writes resumed {resumed:?} after the owner was killed");
    let acked = load.finish().await;

    let new_owner = owner_of(&cluster, &f.board).await.expect("a new owner");
    assert!(survivors.contains(&new_owner), "the dead node still holds the board");
    nothing_acknowledged_is_lost(&cluster, &f, &acked).await;
}

#[tokio::test]
async fn a_paused_owner_cannot_write_after_its_lease_passed_on() {
    let Some(cluster) = Cluster::start_with(3, NodeSettings::default()).await else { return };
    let f = fixture(&cluster).await;
    let owner = owner_of(&cluster, &f.board).await.expect("the board has an owner");
    let pid = cluster.nodes[owner].pid().expect("running");
    let others: Vec<usize> = (0..3).filter(|n| *n != owner).collect();

    let load = Load::start(&cluster, &f, &others);
    progress(&load, 0, 10, Duration::from_secs(30)).await;
    // Paused past its lease (3 s): another node takes the board over.
    signal(pid, "-STOP");
    let paused_at = load.count();
    // Calls forwarded to it before its lease ran out wait for their timeout (15 s), then the
    // writers retry through the new owner.
    progress(&load, paused_at, 20, Duration::from_secs(40)).await;
    let new_owner = owner_of(&cluster, &f.board).await.expect("a new owner");
    assert_ne!(new_owner, owner);

    // Woken, its actor still holds the board in memory: a write through it must be forwarded
    // to the new owner or refused, never committed beside the new owner's.
    signal(pid, "-CONT");
    let mut through_old = Vec::new();
    for i in 0..20 {
        let reply = cluster
            .node(owner)
            .post(
                &format!("/api/v1/boards/{}/items", f.board),
                Some(&f.owner.access_token),
                &item(f.group, format!("old-{i}")),
            )
            .await;
        match reply.status {
            201 => through_old.push(format!("old-{i}")),
            503 => {}
            other => panic!("unexpected {other}: {:?}", reply.body),
        }
    }
    let mut acked = load.finish().await;
    acked.extend(through_old);
    nothing_acknowledged_is_lost(&cluster, &f, &acked).await;
    assert_eq!(owner_of(&cluster, &f.board).await, Some(new_owner), "the paused node took it back");
}

fn signal(pid: u32, which: &str) {
    let status =
        std::process::Command::new("kill").args([which, &pid.to_string()]).status().unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn a_graceful_stop_hands_its_boards_over_at_once() {
    let Some(mut cluster) = Cluster::start(2).await else { return };
    let f = fixture(&cluster).await;
    let owner = owner_of(&cluster, &f.board).await.expect("the board has an owner");
    assert!(cluster.nodes[owner].terminate(), "the owner did not stop cleanly");
    // Released at the stop, not left to expire: the lease row is already out of date.
    let released: (bool,) = sqlx::query_as(
        "SELECT expires_at <= clock_timestamp() FROM leases WHERE kind = 'board' AND entity_id = $1",
    )
    .bind(f.board.parse::<uuid::Uuid>().unwrap())
    .fetch_one(&mut database(&cluster).await)
    .await
    .unwrap();
    assert!(released.0, "the stopped node's lease was left to expire");
    let other = 1 - owner;
    cluster
        .node(other)
        .post(
            &format!("/api/v1/boards/{}/items", f.board),
            Some(&f.owner.access_token),
            &item(f.group, "after".into()),
        )
        .await
        .expect(201);
    assert_eq!(owner_of(&cluster, &f.board).await, Some(other));
    // Its node row is gone with it.
    let rows: Vec<(String,)> = sqlx::query_as("SELECT node_id FROM cluster_nodes ORDER BY node_id")
        .fetch_all(&mut database(&cluster).await)
        .await
        .unwrap();
    assert_eq!(rows, vec![(cluster.node(other).id.clone(),)]);
}

#[tokio::test]
async fn a_webhook_is_delivered_once_with_three_nodes() {
    let receiver = crate::webhooks::Receiver::spawn();
    let allow = receiver.url("").trim_start_matches("http://").to_owned();
    let settings = NodeSettings {
        env: vec![("BOARDROOM_WEBHOOK_ALLOW".into(), allow)],
        ..NodeSettings::default()
    };
    let Some(cluster) = Cluster::start_with(3, settings).await else { return };
    let f = fixture(&cluster).await;
    let hook = boardroom_protocol::webhooks::CreateWebhook {
        url: receiver.url("/once"),
        events: vec!["item.created".into()],
    };
    cluster
        .node(1)
        .post(&format!("/api/v1/boards/{}/webhooks", f.board), Some(&f.owner.access_token), &hook)
        .await
        .expect(201);
    // Writes through every node; however many nodes' webhook actors look at the outbox, each
    // event is enqueued once (unique on webhook and seq) and attempted by one node.
    for i in 0..12 {
        cluster
            .node(i % 3)
            .post(
                &format!("/api/v1/boards/{}/items", f.board),
                Some(&f.owner.access_token),
                &item(f.group, format!("hooked-{i}")),
            )
            .await
            .expect(201);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while receiver.delivered("/once").len() < 12 {
        assert!(Instant::now() < deadline, "only {} deliveries", receiver.delivered("/once").len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Time for a second delivery by another node, if there were going to be one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let delivered = receiver.delivered("/once");
    let seqs: BTreeSet<i64> = delivered.iter().map(|d| d.seq).collect();
    assert_eq!(
        delivered.len(),
        12,
        "an event was delivered twice: {:?}",
        delivered.iter().map(|d| d.seq).collect::<Vec<_>>()
    );
    assert_eq!(seqs.len(), 12);
    let ids: BTreeSet<uuid::Uuid> = delivered.iter().map(|d| d.id).collect();
    assert_eq!(ids.len(), 12);
}
