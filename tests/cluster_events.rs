//! Board events across the nodes of a cluster (issue #17, fan-out): events committed on one
//! node reach the sockets on every node, gap-free and in the same order, when writes come
//! through several nodes, when the board's owner is killed, and across a NATS restart; a resume
//! with `after_seq` works on any node.
//!
//! Nodes are `boardroom serve` processes ([`crate::harness::cluster`]). A board's actor runs
//! where it was first used (it takes the lease there); writes sent to other nodes are forwarded
//! to it.

use std::time::{Duration, Instant};

use boardroom_protocol::events::{Event, EventData, EventLog};
use boardroom_protocol::frames::EventFrame;
use reqwest::Method;

use crate::harness::cluster::Cluster;
use crate::harness::socket::{self, msg, Socket, JSON, MSGPACK};
use crate::harness::{item, Api, TestUser};

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

/// The same, of an event of the REST log.
fn logged_fingerprint(event: &Event) -> (i64, String, serde_json::Value) {
    let tagged = serde_json::to_value(&event.event).unwrap();
    (event.seq, tagged["kind"].as_str().unwrap().to_owned(), tagged["data"].clone())
}

/// The whole event log of `board`, read through `node`'s REST API.
async fn log(node: &Api, user: &TestUser, board: &str) -> Vec<Event> {
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let path = format!("/api/v1/boards/{board}/events?after={after}&limit=500");
        let page: EventLog = node.get_as(&path, &user.access_token).await.expect_as(200);
        events.extend(page.events);
        match page.last_seq {
            Some(last) if page.has_more => after = last,
            _ => return events,
        }
    }
}

/// Creates an item through `node`, again until it is created (`503` while the board's lease
/// moves to another node).
async fn create_item_retrying(node: &Api, user: &TestUser, board: &str, group: &str, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reply = node
            .call(Method::POST, &format!("/api/v1/boards/{board}/items"))
            .bearer(&user.access_token)
            .json(&item(group, name))
            .try_send()
            .await;
        match reply {
            Ok(reply) if reply.status == 201 => return,
            Ok(reply) if reply.status == 503 => {}
            Ok(reply) => panic!("writing {name}: {} {}", reply.status, reply.body),
            Err(err) => panic!("writing {name}: {err}"),
        }
        assert!(Instant::now() < deadline, "{name} was never written");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_events_reach_sockets_on_every_node_in_order() {
    let Some(mut cluster) = Cluster::start(3).await else { return };
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let owner = a.register("Owner").await;
    let org = a.create_org(&owner, "Cluster").await;
    let created = a.create_board(&owner, &org, "Fan-out").await;
    let board = created.board.id.to_string();
    let group = created.groups[0].id.to_string();

    // Subscribers on a, the owner (JSON and MessagePack), on b and on c. The owner's events
    // reach its own sockets through its bus (its NATS echo must not double them), the other
    // nodes' over NATS.
    let mut sockets = vec![
        socket::connect(a, &owner.access_token, JSON).await,
        socket::connect(a, &owner.access_token, MSGPACK).await,
        socket::connect(b, &owner.access_token, MSGPACK).await,
        socket::connect(c, &owner.access_token, JSON).await,
    ];
    let mut starts = Vec::new();
    for socket in &mut sockets {
        starts.push(subscribe(socket, &board).await);
    }
    let start = *starts.iter().min().unwrap();

    // Writers on b and c at once, forwarded to a.
    let writes = 2 * 60;
    let writers: Vec<_> = [b.addr(), c.addr()]
        .into_iter()
        .enumerate()
        .map(|(w, addr)| {
            let (owner, board, group) = (owner.clone(), board.clone(), group.clone());
            tokio::spawn(async move {
                let node = Api::at(addr);
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
    let log = log(c, &owner, &board).await;
    assert_eq!(log.last().map(|e| e.seq), Some(last));
    for (events, after) in received.iter().zip(&starts) {
        let logged: Vec<_> =
            log.iter().filter(|e| e.seq > *after).map(logged_fingerprint).collect();
        assert_eq!(events.iter().map(fingerprint).collect::<Vec<_>>(), logged);
    }
    // Replaying the log gives the final state: every item written, once.
    let mut names: Vec<String> = log
        .iter()
        .filter_map(|e| match &e.event {
            EventData::ItemCreated(item) => Some(item.name.clone()),
            _ => None,
        })
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), writes as usize);

    // A resume on a node that joins now replays the log, then carries on live.
    let d = cluster.add_node().await;
    let mut resumed = socket::connect(cluster.node(d), &owner.access_token, JSON).await;
    let middle = start + writes / 2;
    let subscribed = socket::subscribed(&resumed.request(msg::resume(&board, middle)).await);
    assert!(subscribed.recovered, "{subscribed:?}");
    assert_eq!(subscribed.seq, last);
    let replayed = events_until(&mut resumed, middle, last).await;
    assert_eq!(
        replayed.iter().map(fingerprint).collect::<Vec<_>>(),
        received[0].iter().filter(|e| e.seq > middle).map(fingerprint).collect::<Vec<_>>()
    );
    for i in 0..5 {
        let b = cluster.node(1);
        b.create_item(&owner, &board, &item(&group, &format!("late-{i}"))).await;
    }
    let late = events_until(&mut resumed, last, last + 5).await;
    let on_b = events_until(&mut sockets[2], last, last + 5).await;
    assert_eq!(
        late.iter().map(fingerprint).collect::<Vec<_>>(),
        on_b.iter().map(fingerprint).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_events_stay_gap_free_when_the_owner_dies() {
    let Some(mut cluster) = Cluster::start(3).await else { return };
    let owner = cluster.node(0).register("Owner").await;
    // Made through node 1, so its actors hold the leases.
    let org = cluster.node(1).create_org(&owner, "Cluster").await;
    let created = cluster.node(1).create_board(&owner, &org, "Takeover").await;
    let board = created.board.id.to_string();
    let group = created.groups[0].id.to_string();
    let mut watcher = socket::connect(cluster.node(0), &owner.access_token, JSON)
        .await
        .with_patience(Duration::from_secs(30));
    let start = subscribe(&mut watcher, &board).await;
    let held_by: (String,) = {
        use sqlx::Connection;
        let mut db = sqlx::PgConnection::connect(cluster.database_url()).await.unwrap();
        sqlx::query_as("SELECT node_id FROM leases WHERE kind = 'board' AND entity_id = $1")
            .bind(created.board.id)
            .fetch_one(&mut db)
            .await
            .unwrap()
    };
    assert_eq!(held_by.0, cluster.node(1).id, "the board's actor runs where it was made");

    // Writes through node 2 while node 1, the owner, is killed: some are answered 503 and
    // written again once another node holds the lease.
    let writes = 60;
    for i in 0..writes {
        if i == 20 {
            cluster.nodes[1].kill();
        }
        create_item_retrying(cluster.node(2), &owner, &board, &group, &format!("item-{i}")).await;
    }
    let log = log(cluster.node(2), &owner, &board).await;
    let last = log.last().map(|e| e.seq).unwrap();
    assert!(last >= start + writes, "{last} < {start} + {writes}");
    let events = events_until(&mut watcher, start, last).await;
    let logged: Vec<_> = log.iter().filter(|e| e.seq > start).map(logged_fingerprint).collect();
    assert_eq!(events.iter().map(fingerprint).collect::<Vec<_>>(), logged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_events_catch_up_after_a_nats_restart() {
    let Some(mut cluster) = Cluster::start(2).await else { return };
    let owner = cluster.node(0).register("Owner").await;
    let org = cluster.node(0).create_org(&owner, "Cluster").await;
    let created = cluster.node(0).create_board(&owner, &org, "Outage").await;
    let board = created.board.id.to_string();
    let group = created.groups[0].id.to_string();
    // The subscriber is on node 1; the writes go to node 0, the board's owner, which needs no
    // NATS to commit (a write sent to node 1 would be forwarded over NATS, and fail while it is
    // down).
    let mut watcher = socket::connect(cluster.node(1), &owner.access_token, JSON)
        .await
        .with_patience(Duration::from_secs(30));
    let start = subscribe(&mut watcher, &board).await;

    let writes = 90;
    for i in 0..writes {
        if i == 30 {
            cluster.nats.stop();
        }
        if i == 60 {
            cluster.nats.restart();
        }
        let name = format!("item-{i}");
        cluster.node(0).create_item(&owner, &board, &item(&group, &name)).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Everything arrives, in order, the events lost with NATS read from the log.
    let events = events_until(&mut watcher, start, start + writes).await;
    assert_eq!(events.last().map(|e| e.seq), Some(start + writes));

    // An idle board whose last event was lost while NATS was down is caught up too.
    cluster.nats.stop();
    cluster.node(0).create_item(&owner, &board, &item(&group, "while-down")).await;
    let lost = events_until(&mut watcher, start + writes, start + writes + 1).await;
    assert_eq!(lost[0].kind, "item.created");
    cluster.nats.restart();
    cluster.node(0).create_item(&owner, &board, &item(&group, "after")).await;
    events_until(&mut watcher, start + writes + 1, start + writes + 2).await;
}
