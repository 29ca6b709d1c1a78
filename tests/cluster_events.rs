//! Board events across the nodes of a cluster (issue #17, fan-out): events committed on one
//! node reach the sockets on every node, gap-free and in the same order, across a NATS restart
//! too; a resume with `after_seq` works on any node.
//!
//! Node `a` is this test process's server (a cluster node like the others, so the harness's
//! helpers work on it); the other nodes are `boardroom serve` processes on the same Postgres
//! database and NATS. The board is made on `a`, whose actor then holds its lease: writes sent to
//! other nodes are forwarded to it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use boardroom_protocol::boards;
use boardroom_protocol::events::EventLog;
use boardroom_protocol::frames::EventFrame;
use boardroom_protocol::Encoding;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::harness::nats::Nats;
use crate::harness::socket::{self, msg, Socket, JSON, MSGPACK};
use crate::harness::{item, Backend, TestDatabase, TestServer, TestUser};

/// The local NATS server every machine here runs.
const LOCAL_NATS: &str = "nats://127.0.0.1:4222";
/// `Settings::for_tests`'s signing secret: the other nodes must accept node `a`'s tokens.
const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";

/// Node `a`, in this process, on a fresh Postgres database; `None` without Postgres.
async fn first_node(nats: &str) -> Option<TestServer> {
    let database = TestDatabase::create(Backend::Postgres).await?;
    let nats = nats.to_owned();
    Some(
        TestServer::start_with(database, move |settings| {
            settings.nats_url = Some(nats);
            settings.node_id = Some("a".into());
        })
        .await,
    )
}

/// Another node: a `boardroom serve` process on node `a`'s database (and data directory, for the
/// generated keys), killed when dropped.
struct Node {
    port: u16,
    child: Child,
    http: reqwest::Client,
}

impl Node {
    async fn start(first: &TestServer, id: &str, nats: &str) -> Node {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        // `BOARDROOM_TEST_BIN` runs another build than this test's: where several worktrees
        // share one target directory, the binary there may be another branch's by now.
        let binary = std::env::var("BOARDROOM_TEST_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_boardroom").to_owned());
        let child = Command::new(binary)
            .arg("serve")
            .env("BOARDROOM_LISTEN", format!("127.0.0.1:{port}"))
            .env("BOARDROOM_DATA_DIR", first.database.dir.path())
            .env("DATABASE_URL", &first.database.url)
            .env("BOARDROOM_JWT_SECRET", JWT_SECRET)
            .env("BOARDROOM_NATS_URL", nats)
            .env("BOARDROOM_NODE_ID", id)
            .env("BOARDROOM_DB_MAX_CONNECTIONS", "8")
            .env("BOARDROOM_LEASE_SECS", "2")
            .env("BOARDROOM_LOG", "warn")
            .stdin(Stdio::null())
            // Its log lines show in a failed test's output.
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn boardroom serve");
        let node = Node { port, child, http: reqwest::Client::new() };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match node.http.get(node.url("/readyz")).send().await {
                Ok(reply) if reply.status() == 200 => break,
                _ if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                other => panic!("node {id} never became ready: {other:?}"),
            }
        }
        node
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn create_item(&self, user: &TestUser, board: &str, body: &boards::CreateItem) {
        let path = format!("/api/v1/boards/{board}/items");
        let _: serde_json::Value = self.post(user, &path, body).await;
    }

    /// `POST path` as `user`, answered `201`.
    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        user: &TestUser,
        path: &str,
        body: &impl serde::Serialize,
    ) -> T {
        let reply = self
            .http
            .post(self.url(path))
            .bearer_auth(&user.access_token)
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 201, "{path}");
        reply.json().await.unwrap()
    }

    /// Creates an item, again until it is created (`503` while the board's lease moves).
    async fn create_item_retrying(&self, user: &TestUser, board: &str, name: &str, group: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let reply = self
                .http
                .post(self.url(&format!("/api/v1/boards/{board}/items")))
                .bearer_auth(&user.access_token)
                .json(&item(group, name))
                .send()
                .await;
            match reply {
                Ok(reply) if reply.status() == 201 => return,
                Ok(reply) if reply.status() == 503 => {}
                Ok(reply) => panic!("writing {name}: {} {:?}", reply.status(), reply.text().await),
                Err(err) => panic!("writing {name}: {err}"),
            }
            assert!(Instant::now() < deadline, "{name} was never written");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `kill -9`.
    fn crash(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The whole event log of `board`, read through this node's REST API.
    async fn log(&self, user: &TestUser, board: &str) -> Vec<boardroom_protocol::events::Event> {
        let mut events = Vec::new();
        let mut after = 0;
        loop {
            let page: EventLog = self
                .http
                .get(self.url(&format!("/api/v1/boards/{board}/events?after={after}&limit=500")))
                .bearer_auth(&user.access_token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            events.extend(page.events);
            match page.last_seq {
                Some(last) if page.has_more => after = last,
                _ => return events,
            }
        }
    }

    /// A socket on this node, as `user`.
    async fn socket(&self, user: &TestUser, protocol: &str) -> Socket {
        let url = format!("ws://127.0.0.1:{}/api/v1/ws", self.port);
        let mut request = url.into_client_request().unwrap();
        let headers = request.headers_mut();
        headers.insert("authorization", format!("Bearer {}", user.access_token).parse().unwrap());
        headers.insert("sec-websocket-protocol", protocol.parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let encoding = Encoding::from_subprotocol(protocol).unwrap();
        Socket::greeted(ws, encoding).await
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Subscribes (a snapshot); answers the `seq` the subscription starts after.
async fn subscribe(socket: &mut Socket, board: &str) -> i64 {
    socket::subscribed(&socket.request(msg::subscribe(board)).await).seq
}

/// Reads events until `last`; they must be exactly the ones after `after`, in order.
async fn events_until(socket: &mut Socket, after: i64, last: i64) -> Vec<EventFrame> {
    let mut events = Vec::new();
    let mut expected = after + 1;
    while expected <= last {
        let event = socket.next_event().await;
        assert_eq!(event.seq, expected, "a gap or a duplicate after {:?}", events.last());
        events.push(event);
        expected += 1;
    }
    events
}

/// What two deliveries of an event must agree on.
fn fingerprint(event: &EventFrame) -> (i64, String, serde_json::Value) {
    (event.seq, event.kind.clone(), event.data.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_events_reach_sockets_on_every_node_in_order() {
    let Some(a) = first_node(LOCAL_NATS).await else { return };
    let b = Node::start(&a, "b", LOCAL_NATS).await;
    let c = Node::start(&a, "c", LOCAL_NATS).await;
    let owner = a.register("Owner").await;
    let org = a.create_org(&owner, "Cluster").await;
    let created = a.create_board(&owner, &org, "Fan-out").await;
    let board = created.board.id.to_string();
    let group = created.groups[0].id.to_string();

    // Subscribers on a (JSON and MessagePack), on b and on c. The owner's events reach its own
    // sockets through its bus (its NATS echo must not double them), the others' over NATS.
    let mut sockets = vec![
        socket::connect(&a, &owner.access_token, JSON).await,
        socket::connect(&a, &owner.access_token, MSGPACK).await,
        b.socket(&owner, MSGPACK).await,
        c.socket(&owner, JSON).await,
    ];
    let mut starts = Vec::new();
    for socket in &mut sockets {
        starts.push(subscribe(socket, &board).await);
    }
    let start = *starts.iter().min().unwrap();

    // Writers on b and c at once.
    let writes = 2 * 60;
    let (b, c) = (std::sync::Arc::new(b), std::sync::Arc::new(c));
    let writers: Vec<_> = [b.clone(), c.clone()]
        .into_iter()
        .enumerate()
        .map(|(w, node)| {
            let (owner, board, group) = (owner.clone(), board.clone(), group.clone());
            tokio::spawn(async move {
                for i in 0..writes / 2 {
                    node.create_item(&owner, &board, &item(&group, &format!("w{w}-{i}"))).await;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let last = start + writes;

    let mut received = Vec::new();
    for (socket, after) in sockets.iter_mut().zip(&starts) {
        received.push(events_until(socket, *after, last).await);
    }
    // Every subscriber saw the same events; the log (read through c) holds exactly them.
    let log = c.log(&owner, &board).await;
    assert_eq!(log.last().map(|e| e.seq), Some(last));
    for (events, after) in received.iter().zip(&starts) {
        let logged: Vec<_> = log
            .iter()
            .filter(|e| e.seq > *after)
            .map(|e| {
                let tagged = serde_json::to_value(&e.event).unwrap();
                (e.seq, tagged["kind"].as_str().unwrap().to_owned(), tagged["data"].clone())
            })
            .collect();
        let got: Vec<_> = events.iter().map(fingerprint).collect();
        assert_eq!(got, logged);
    }
    // Replaying the log gives the final state: every item written, once.
    let mut names: Vec<String> = log
        .iter()
        .filter_map(|e| match &e.event {
            boardroom_protocol::events::EventData::ItemCreated(item) => Some(item.name.clone()),
            _ => None,
        })
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), writes as usize);

    // A resume on a node that joins now replays the log, then carries on live.
    let d = Node::start(&a, "d", LOCAL_NATS).await;
    let mut resumed = d.socket(&owner, JSON).await;
    let middle = start + writes / 2;
    let reply = resumed.request(msg::resume(&board, middle)).await;
    let subscribed = socket::subscribed(&reply);
    assert!(subscribed.recovered, "{subscribed:?}");
    assert_eq!(subscribed.seq, last);
    let replayed = events_until(&mut resumed, middle, last).await;
    assert_eq!(
        replayed.iter().map(fingerprint).collect::<Vec<_>>(),
        received[0].iter().filter(|e| e.seq > middle).map(fingerprint).collect::<Vec<_>>()
    );
    for i in 0..5 {
        b.create_item(&owner, &board, &item(&group, &format!("late-{i}"))).await;
    }
    let late = events_until(&mut resumed, last, last + 5).await;
    let on_a = events_until(&mut sockets[0], last, last + 5).await;
    assert_eq!(
        late.iter().map(fingerprint).collect::<Vec<_>>(),
        on_a.iter().map(fingerprint).collect::<Vec<_>>()
    );
    drop(sockets);
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_events_catch_up_after_a_nats_restart() {
    let mut nats = Nats::start().await;
    let Some(a) = first_node(&nats.url()).await else { return };
    let b = Node::start(&a, "b", &nats.url()).await;
    let owner = a.register("Owner").await;
    let org = a.create_org(&owner, "Cluster").await;
    let created = a.create_board(&owner, &org, "Outage").await;
    let board = created.board.id.to_string();
    let group = created.groups[0].id.to_string();
    // The subscriber is on b; the writes go to a, the board's owner, which needs no NATS to
    // commit (a write sent to b would be forwarded over NATS, and fail while it is down).
    let mut watcher = b.socket(&owner, JSON).await.with_patience(Duration::from_secs(30));
    let start = subscribe(&mut watcher, &board).await;

    let writes = 90;
    for i in 0..writes {
        if i == 30 {
            nats.crash();
        }
        if i == 60 {
            nats.resume().await;
        }
        a.create_item(&owner, &board, &item(&group, &format!("item-{i}"))).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Everything arrives, in order, the events lost with NATS read from the log.
    let events = events_until(&mut watcher, start, start + writes).await;
    assert_eq!(events.last().map(|e| e.seq), Some(start + writes));

    // An idle board whose last event was lost while NATS was down is caught up too.
    nats.crash();
    a.create_item(&owner, &board, &item(&group, "while-down")).await;
    let lost = events_until(&mut watcher, start + writes, start + writes + 1).await;
    assert_eq!(lost[0].kind, "item.created");
    nats.resume().await;
    a.create_item(&owner, &board, &item(&group, "after")).await;
    events_until(&mut watcher, start + writes + 1, start + writes + 2).await;
    drop(watcher);
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_events_stay_gap_free_when_the_owner_dies() {
    let Some(a) = first_node(LOCAL_NATS).await else { return };
    let mut b = Node::start(&a, "b", LOCAL_NATS).await;
    let c = Node::start(&a, "c", LOCAL_NATS).await;
    let owner = a.register("Owner").await;
    // Made through b, so b's actors hold the leases, not a's (which this test cannot kill).
    let org: boardroom_protocol::orgs::Organization = b
        .post(
            &owner,
            "/api/v1/orgs",
            &boardroom_protocol::orgs::CreateOrganization { name: "Cluster".into() },
        )
        .await;
    let body = boards::CreateBoard { name: "Takeover".into(), description: String::new() };
    let created: boards::CreatedBoard =
        b.post(&owner, &format!("/api/v1/orgs/{}/boards", org.id), &body).await;
    let board = created.board.id.to_string();
    let group = created.groups[0].id.to_string();

    let mut watcher =
        socket::connect(&a, &owner.access_token, JSON).await.with_patience(Duration::from_secs(30));
    let start = subscribe(&mut watcher, &board).await;
    let held_by: (String,) = boardroom::on_pool!(a.state().store(), pool => {
        sqlx::query_as("SELECT node_id FROM leases WHERE kind = 'board' AND entity_id = $1")
            .bind(created.board.id)
            .fetch_one(pool)
            .await
            .unwrap()
    });
    assert_eq!(held_by.0, "b", "the board's actor runs where it was made");

    // Writes through c while b, the owner, is killed: some are answered 503 and written again.
    let writes = 60;
    for i in 0..writes {
        if i == 20 {
            b.crash();
        }
        c.create_item_retrying(&owner, &board, &format!("item-{i}"), &group).await;
    }
    let log = c.log(&owner, &board).await;
    let last = log.last().map(|e| e.seq).unwrap();
    assert!(last >= start + writes, "{last} < {start} + {writes}");
    let events = events_until(&mut watcher, start, last).await;
    let logged: Vec<i64> = log.iter().map(|e| e.seq).filter(|seq| *seq > start).collect();
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), logged);
    drop(watcher);
    a.stop().await;
}
