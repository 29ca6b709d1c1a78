//! Scenario `cluster`: Boardroom as several nodes on one Postgres database with NATS between
//! them, beside one node alone in the same run.
//!
//! The single node is the server this tool starts as usual (on its own fresh Postgres database,
//! no NATS). The cluster is started here: `--nodes` `boardroom serve` processes on another fresh
//! database, a shared data dir and JWT secret, and a private `nats-server` on a free port (or
//! `--nats-url`). Node 0 starts alone first: it applies the migrations and generates the audit
//! and master keys into the shared data dir, which the others then read.
//!
//! On each, the same load, measured the same way:
//! - `--sockets` authenticated, subscribed sockets, socket `i` on node `i % nodes`, held by
//!   `--clients` child processes of this tool (the hidden `cluster-client` subcommand): one
//!   process may hold at most 20,000 open files, and the servers' ends are in their own
//!   processes. A client gets its orders as one JSON line on stdin (the token never shows in a
//!   process list) and answers in JSON lines on stdout.
//! - memory per socket per node: each node's RSS before the sockets and while they are held;
//! - delivery latency: a writer on node 0 creates `--events` items at `--rate`; each item's name
//!   carries its send time (microseconds on the wall clock, which the clients share with this
//!   process on one machine), and every subscriber times its receipt against it. Deliveries on
//!   nodes other than node 0 are the cross-node figure; every delivery is checked for gaps and
//!   duplicates by `seq`;
//! - write throughput through non-owner nodes: on a second board with no subscribers, one
//!   writer on each node that does not hold the board's lease (found in the `leases` table)
//!   keeps `--window` writes in flight for `--throughput-secs`, so every write is forwarded to
//!   the owner. The single node gets as many writers, all local.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use boardroom_protocol::boards::CreateItem;
use boardroom_protocol::{ClientMessage, Encoding};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::api::Api;
use crate::net::{rss_kib, Dialer, Ws};
use crate::socket::{bot_socket, encode, open_many, subscribed_socket};
use crate::stats::{
    format_ms, progress, ratio, show, show_ratio, Recorder, ScenarioReport, Summary, Table,
};
use crate::target::{
    clean_command, ensure_loopback, free_port, terminate, wait_ready, BenchDatabase, Target,
    RELAXED_LIMITS,
};
use crate::writer::{mark_of, write, Flavor};

/// `cluster`.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct ClusterArgs {
    /// Nodes of the cluster (the single node is measured beside it in the same run).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(2..=32))]
    nodes: u64,
    /// Authenticated, subscribed sockets, spread evenly over the nodes.
    #[arg(long, default_value_t = 3000)]
    sockets: usize,
    /// Sockets on the single node. Default: `--sockets`, at most 19,000, since one process may
    /// have 20,000 open files here (the cluster's nodes each hold a share).
    #[arg(long)]
    single_sockets: Option<usize>,
    /// Client processes holding the sockets (each may hold at most about 19,000: one process
    /// may have 20,000 open files here).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    clients: u64,
    /// A NATS server for the cluster. Default: a private `nats-server` (`--nats-server`) on a
    /// free loopback port, stopped at the end.
    #[arg(long)]
    nats_url: Option<String>,
    /// The `nats-server` binary started when no `--nats-url` is given.
    #[arg(long, default_value = "/usr/sbin/nats-server")]
    nats_server: PathBuf,
    /// `BOARDROOM_DB_MAX_CONNECTIONS` of each node. Default: 64 / nodes, at most the server's
    /// default of 16, so that the nodes' pools together stay under Postgres's usual
    /// `max_connections` of 100 beside the single node's 16.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    node_db_connections: Option<u32>,
    /// Items the delivery writer creates on node 0.
    #[arg(long, default_value_t = 50)]
    events: usize,
    /// Writes per second of the delivery writer.
    #[arg(long, default_value_t = 5)]
    rate: u32,
    /// Seconds of the throughput phase (writers through non-owner nodes).
    #[arg(long, default_value_t = 5)]
    throughput_secs: u64,
    /// Writes each throughput writer keeps in flight.
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// Seconds to hold the sockets before the writes, reading each node's memory.
    #[arg(long, default_value_t = 10)]
    hold_secs: u64,
    /// Sockets each client opens at once.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    open_concurrency: u64,
}

/// The most sockets one node is given alone by default: it may have 20,000 open files.
const SINGLE_NODE_SOCKETS: usize = 19_000;

/// Retries of a subscribe the server answered 503 (`unavailable`), each after a longer pause.
const OPEN_RETRIES: u64 = 5;

/// A node under load: where it is and its process.
struct NodeRef {
    id: String,
    url: url::Url,
    pid: Option<u32>,
}

/// What one client process is told (one JSON line on its stdin).
#[derive(Debug, Serialize, Deserialize)]
struct ClientOrders {
    /// Base URLs of the nodes; socket `i` (numbered across all clients) goes to node
    /// `i % nodes.len()`.
    nodes: Vec<String>,
    token: String,
    board: String,
    /// The global number of this client's first socket.
    first: usize,
    count: usize,
    concurrency: usize,
    /// The wall-clock microsecond of the writer's epoch: stamps are microseconds after it.
    epoch_unix_us: u64,
}

/// The second line a client gets: the writer is done, and this is its last `seq`.
#[derive(Debug, Serialize, Deserialize)]
struct Finish {
    final_seq: i64,
}

/// What a client answers, one JSON line each.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientReport {
    /// Its sockets are open (or it stopped at a failure): counts per node.
    Opened {
        per_node: Vec<usize>,
        open_latency: Recorder,
        failure: Option<String>,
        /// Subscribes retried after a 503 (`unavailable`).
        retries: u64,
    },
    /// Its sockets saw the writer's last event (or gave up): per node.
    Done { per_node: Vec<NodeTally> },
}

/// What the sockets of one node saw.
#[derive(Debug, Default, Serialize, Deserialize)]
struct NodeTally {
    latency: Recorder,
    delivered: u64,
    gaps: u64,
    duplicates: u64,
    missing: u64,
    failed: u64,
    first_failure: Option<String>,
}

impl NodeTally {
    fn absorb(&mut self, other: NodeTally) {
        self.latency.merge(other.latency);
        self.delivered += other.delivered;
        self.gaps += other.gaps;
        self.duplicates += other.duplicates;
        self.missing += other.missing;
        self.failed += other.failed;
        self.first_failure = self.first_failure.take().or(other.first_failure);
    }
}

/// One set-up (single node or cluster) measured.
#[derive(Debug, Serialize)]
struct Measured {
    nodes: Vec<String>,
    requested: usize,
    held: usize,
    held_per_node: Vec<usize>,
    open_failures: Vec<String>,
    /// Subscribes retried after the server answered 503 (`unavailable`, "retry").
    open_retries: u64,
    open_secs: f64,
    open_latency: Summary,
    rss_before_kib: Vec<Option<u64>>,
    rss_held_kib: Vec<Option<u64>>,
    rss_per_socket_kib: Vec<Option<f64>>,
    /// The node owning the delivery board when the writes began.
    delivery_board_owner: Option<String>,
    writes_sent: u64,
    write_failures: u64,
    /// Deliveries on node 0, where the writer is.
    delivery_same_node: Summary,
    /// Deliveries on every other node (the cross-node figure); empty for one node.
    delivery_cross_node: Summary,
    /// Every delivery.
    delivery_all: Summary,
    delivered: u64,
    gaps: u64,
    duplicates: u64,
    missing: u64,
    sockets_failed: u64,
    first_failure: Option<String>,
    throughput: Throughput,
}

/// Writes through non-owner nodes (or, on one node, as many local writers).
#[derive(Debug, Serialize)]
struct Throughput {
    owner: Option<String>,
    via: Vec<String>,
    acknowledged: u64,
    failed: u64,
    secs: f64,
    writes_per_sec: f64,
}

/// `cluster`: sockets held, memory per socket per node, cross-node delivery latency and write
/// throughput through non-owner nodes, beside one node alone.
pub async fn run(target: &Target, args: &ClusterArgs) -> anyhow::Result<ScenarioReport> {
    let name = "cluster";
    let Some(admin) = target.postgres_admin_url() else {
        bail!("the cluster scenario runs on Postgres: give --database-url");
    };
    let node_count = usize::try_from(args.nodes)?;
    let writers = node_count - 1;

    let single_args = ClusterArgs {
        sockets: args.single_sockets.unwrap_or(args.sockets.min(SINGLE_NODE_SOCKETS)),
        ..args.clone()
    };
    progress(name, format!("single node: {} sockets", single_args.sockets));
    let single =
        NodeRef { id: "single".into(), url: target.base_url().clone(), pid: target.server_pid() };
    let single = [single];
    let on = Nodes { name, args: &single_args, nodes: &single, database: None, writers };
    let single = measure(&on).await?;

    // The nodes' logs go beside the single server's: `<stem>-node-<i>.log` beside
    // `<stem>-server.log`.
    let logs = target.log_path().map_or_else(
        || PathBuf::from("target/loadtest/cluster"),
        |log| {
            let file = log.file_name().map(|f| f.to_string_lossy().into_owned());
            let stem = file.as_deref().and_then(|f| f.strip_suffix("-server.log"));
            log.with_file_name(stem.unwrap_or("cluster"))
        },
    );
    let cluster = RunningCluster::start(target, args, &admin, &logs).await?;
    progress(name, format!("{node_count} nodes: {} sockets", args.sockets));
    let on =
        Nodes { name, args, nodes: &cluster.nodes, database: Some(&cluster.database), writers };
    let measured = measure(&on).await;
    cluster.stop().await;
    let clustered = measured?;

    let mut table = Table::new();
    table.row("single node: open + auth + subscribe", &single.open_latency, None);
    table.row(
        format!("{node_count} nodes: open + auth + subscribe"),
        &clustered.open_latency,
        None,
    );
    table.row("single node: delivery", &single.delivery_all, None);
    table.row(
        format!("{node_count} nodes: delivery on node 0"),
        &clustered.delivery_same_node,
        None,
    );
    table.row(
        format!("{node_count} nodes: delivery on other nodes"),
        &clustered.delivery_cross_node,
        None,
    );
    let p99_ratio = ratio(clustered.delivery_cross_node.p99_ms, single.delivery_all.p99_ms);
    let mut headline = Vec::new();
    let mut warnings = Vec::new();
    for (label, m) in [("single node", &single), ("cluster", &clustered)] {
        let rss: Vec<String> = m
            .nodes
            .iter()
            .enumerate()
            .map(|(i, id)| {
                format!(
                    "{id} {} sockets {} -> {} KiB ({} KiB/socket)",
                    m.held_per_node[i],
                    show(m.rss_before_kib[i]),
                    show(m.rss_held_kib[i]),
                    show(m.rss_per_socket_kib[i])
                )
            })
            .collect();
        headline.push(format!(
            "{label}: {} of {} sockets held ({} subscribes retried after a 503); {}",
            m.held,
            m.requested,
            m.open_retries,
            rss.join("; ")
        ));
        headline.push(format!(
            "{label}: delivery p50 {} p99 {} (cross-node p50 {} p99 {}); {} deliveries, gaps {} duplicates {} missing {} sockets lost {}; {} writes/s through {} ({} writers, owner {})",
            format_ms(m.delivery_all.p50_ms),
            format_ms(m.delivery_all.p99_ms),
            format_ms(m.delivery_cross_node.p50_ms),
            format_ms(m.delivery_cross_node.p99_ms),
            m.delivered,
            m.gaps,
            m.duplicates,
            m.missing,
            m.sockets_failed,
            m.throughput.writes_per_sec,
            m.throughput.via.join(","),
            m.throughput.via.len(),
            m.throughput.owner.as_deref().unwrap_or("-"),
        ));
        for failure in &m.open_failures {
            warnings.push(format!("{label}: opening stopped: {failure}"));
        }
        if m.gaps + m.duplicates + m.missing + m.sockets_failed + m.write_failures > 0 {
            warnings.push(format!(
                "{label}: not exactly once: {} gaps, {} duplicates, {} missing, {} sockets lost ({}), {} failed writes",
                m.gaps, m.duplicates, m.missing, m.sockets_failed,
                m.first_failure.as_deref().unwrap_or("-"), m.write_failures
            ));
        }
    }
    let throughput_ratio =
        ratio(Some(clustered.throughput.writes_per_sec), Some(single.throughput.writes_per_sec));
    headline.push(format!(
        "ratios cluster/single node: cross-node delivery p99 {}, writes per second {} ({} sockets on {node_count} nodes, {} on the single node)",
        show_ratio(p99_ratio),
        show_ratio(throughput_ratio),
        clustered.held,
        single.held,
    ));
    let goal = match p99_ratio {
        _ if args.sockets < 100_000 || node_count != 6 => "not tried at this size".to_owned(),
        _ if clustered.held < 100_000 => format!("not met: {} sockets held", clustered.held),
        Some(r) if r <= 2.0 => "met".to_owned(),
        Some(r) => format!("not met: p99 ratio {r}"),
        None => "unknown".to_owned(),
    };
    headline.push(format!(
        "goal: 100,000 sockets over 6 nodes, cross-node p99 <= 2x single node: {goal}"
    ));
    let results = json!({
        "single_node": single,
        "cluster": clustered,
        "ratio_cross_node_p99": p99_ratio,
        "ratio_writes_per_sec": throughput_ratio,
        "open_file_limit": crate::net::raise_nofile_limit(),
    });
    Ok(ScenarioReport {
        table,
        headline,
        warnings,
        parameters: serde_json::to_value(args)?,
        results,
        figures: Vec::new(),
    })
}

/// One set-up under load, as [`measure`] and its phases see it.
#[derive(Clone, Copy)]
struct Nodes<'a> {
    /// The scenario's name, for progress lines.
    name: &'a str,
    args: &'a ClusterArgs,
    nodes: &'a [NodeRef],
    /// The cluster's database, to find the boards' owners; `None` for the single node.
    database: Option<&'a BenchDatabase>,
    /// Throughput writers on the single node (as many as the cluster's non-owner nodes).
    writers: usize,
}

/// Sets up an account, an organization and two boards on the first node, then measures
/// everything against the nodes.
async fn measure(on: &Nodes<'_>) -> anyhow::Result<Measured> {
    let Nodes { name, args, nodes, database, .. } = *on;
    let first = nodes.first().context("no node")?;
    let api = Api::new(&first.url)?;
    let owner = api.register("cluster").await.context("registering the owner")?;
    let org = api.create_org(&owner, "Cluster load").await.context("creating the organization")?;
    let delivery =
        api.create_board(&owner, &org, "Delivery").await.context("creating the board")?;
    let bulk = api.create_board(&owner, &org, "Throughput").await.context("creating the board")?;
    let delivery_board = delivery.board.id.to_string();
    let delivery_group = delivery.groups.first().context("the board has no group")?.id.to_string();
    let bulk_board = bulk.board.id.to_string();
    let bulk_group = bulk.groups.first().context("the board has no group")?.id.to_string();

    let rss_before: Vec<Option<u64>> = nodes.iter().map(|n| n.pid.and_then(rss_kib)).collect();
    let epoch = Instant::now();
    let epoch_unix_us = unix_us();
    let clients = usize::try_from(args.clients)?.min(args.sockets.max(1));
    let per_client = args.sockets.div_ceil(clients);
    let mut children = Vec::new();
    let began = Instant::now();
    for k in 0..clients {
        let start = k * per_client;
        let count = per_client.min(args.sockets.saturating_sub(start));
        let orders = ClientOrders {
            nodes: nodes.iter().map(|n| n.url.to_string()).collect(),
            token: owner.access_token.clone(),
            board: delivery_board.clone(),
            first: start,
            count,
            concurrency: usize::try_from(args.open_concurrency)?,
            epoch_unix_us,
        };
        children.push(ClientProcess::start(&orders).await?);
    }
    let mut held_per_node = vec![0usize; nodes.len()];
    let mut open_latency = Recorder::new();
    let mut open_failures = Vec::new();
    let mut open_retries = 0;
    for child in &mut children {
        match child.next(Duration::from_secs(1800)).await? {
            ClientReport::Opened { per_node, open_latency: latency, failure, retries } => {
                open_retries += retries;
                for (held, n) in held_per_node.iter_mut().zip(per_node) {
                    *held += n;
                }
                open_latency.merge(latency);
                open_failures.extend(failure);
            }
            ClientReport::Done { .. } => bail!("a client answered out of turn"),
        }
    }
    let open_secs = began.elapsed().as_secs_f64();
    let held: usize = held_per_node.iter().sum();
    progress(
        name,
        format!("{held} sockets held in {open_secs:.1} s; holding {} s", args.hold_secs),
    );
    // The largest RSS seen while held, after the last handshakes' buffers are freed.
    let mut rss_held: Vec<Option<u64>> = vec![None; nodes.len()];
    let deadline = Instant::now() + Duration::from_secs(args.hold_secs);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        for (seen, node) in rss_held.iter_mut().zip(nodes) {
            *seen = (*seen).max(node.pid.and_then(rss_kib));
        }
    }
    let rss_per_socket = rss_before
        .iter()
        .zip(&rss_held)
        .zip(&held_per_node)
        .map(|((before, held), count)| match (before, held) {
            (Some(b), Some(h)) if *count > 0 => {
                Some(((*h as f64 - *b as f64) / *count as f64 * 100.0).round() / 100.0)
            }
            _ => None,
        })
        .collect();

    // Delivery: one writer on node 0, paced.
    progress(name, format!("writer on {}: {} items at {}/s", first.id, args.events, args.rate));
    let delivery_board_owner = match database {
        Some(db) => board_owner(db, &delivery_board).await?,
        None => Some(first.id.clone()),
    };
    let writer = writer_socket(first, &owner.access_token).await?;
    let make = item_maker(&delivery_board, &delivery_group)?;
    let written = write(
        writer,
        Flavor::Boardroom,
        make,
        (args.events, args.rate),
        (Duration::ZERO, 1),
        epoch,
        || true,
    )
    .await?;
    let finish = serde_json::to_string(&Finish { final_seq: written.final_seq })?;
    let mut tallies: Vec<NodeTally> = nodes.iter().map(|_| NodeTally::default()).collect();
    for child in &mut children {
        child.say(&finish).await?;
    }
    for child in &mut children {
        match child.next(Duration::from_secs(300)).await? {
            ClientReport::Done { per_node } => {
                for (tally, theirs) in tallies.iter_mut().zip(per_node) {
                    tally.absorb(theirs);
                }
            }
            ClientReport::Opened { .. } => bail!("a client answered out of turn"),
        }
    }
    // Closing their stdin ends the clients and their sockets.
    for child in children {
        child.finish().await;
    }

    let bulk = (bulk_board.as_str(), bulk_group.as_str());
    let throughput = throughput(on, &owner.access_token, bulk, epoch).await?;

    let mut same = Recorder::new();
    let mut cross = Recorder::new();
    let mut all = NodeTally::default();
    for (i, tally) in tallies.into_iter().enumerate() {
        if i == 0 {
            same.merge(tally.latency.clone());
        } else {
            cross.merge(tally.latency.clone());
        }
        all.absorb(tally);
    }
    Ok(Measured {
        nodes: nodes.iter().map(|n| n.id.clone()).collect(),
        requested: args.sockets,
        held,
        held_per_node,
        open_failures,
        open_retries,
        open_secs: (open_secs * 100.0).round() / 100.0,
        open_latency: open_latency.summary(),
        rss_before_kib: rss_before,
        rss_held_kib: rss_held,
        rss_per_socket_kib: rss_per_socket,
        delivery_board_owner,
        writes_sent: written.sent[0],
        write_failures: written.failed,
        delivery_same_node: same.summary(),
        delivery_cross_node: cross.summary(),
        delivery_all: all.latency.summary(),
        delivered: all.delivered,
        gaps: all.gaps,
        duplicates: all.duplicates,
        missing: all.missing,
        sockets_failed: all.failed,
        first_failure: all.first_failure,
        throughput,
    })
}

/// Writes through non-owner nodes, on `board` (which has no subscribers): one writer on each
/// node not holding its lease, each keeping `--window` writes in flight; on one node (no
/// `database`), `writers` local writers.
async fn throughput(
    on: &Nodes<'_>,
    token: &str,
    (board, group): (&str, &str),
    epoch: Instant,
) -> anyhow::Result<Throughput> {
    let Nodes { name, args, nodes, database, writers } = *on;
    let first = nodes.first().context("no node")?;
    // One write first, so the board has an owner to find.
    let bulk_make = item_maker(board, group)?;
    let warm = writer_socket(first, token).await?;
    write(warm, Flavor::Boardroom, &bulk_make, (1, 100), (Duration::ZERO, 1), epoch, || true)
        .await?;
    let bulk_owner = match database {
        Some(db) => board_owner(db, board).await?,
        None => Some(first.id.clone()),
    };
    let via: Vec<&NodeRef> = match database {
        Some(_) => nodes.iter().filter(|n| Some(&n.id) != bulk_owner.as_ref()).collect(),
        None => std::iter::repeat_n(first, writers.max(1)).collect(),
    };
    progress(
        name,
        format!(
            "{} writers through {} for {} s",
            via.len(),
            via.iter().map(|n| n.id.as_str()).collect::<Vec<_>>().join(","),
            args.throughput_secs
        ),
    );
    let mut sockets = Vec::new();
    for node in &via {
        sockets.push(writer_socket(node, token).await?);
    }
    let began = Instant::now();
    let saturate = (Duration::from_secs(args.throughput_secs), args.window);
    let results = futures::future::join_all(sockets.into_iter().map(|ws| {
        let make = &bulk_make;
        async move { write(ws, Flavor::Boardroom, make, (0, 1), saturate, epoch, || true).await }
    }))
    .await;
    let secs = began.elapsed().as_secs_f64();
    let (mut acknowledged, mut failed) = (0, 0);
    for result in results {
        let written = result?;
        acknowledged += written.sent[1].saturating_sub(written.failed);
        failed += written.failed;
    }
    Ok(Throughput {
        owner: bulk_owner,
        via: via.iter().map(|n| n.id.clone()).collect(),
        acknowledged,
        failed,
        secs: (secs * 100.0).round() / 100.0,
        writes_per_sec: (acknowledged as f64 / secs.max(f64::EPSILON)).round(),
    })
}

/// A writer's socket to `node`, authenticated with `token`; a node that cannot accept it (out
/// of open files, say) fails the run instead of hanging it.
async fn writer_socket(node: &NodeRef, token: &str) -> anyhow::Result<Ws> {
    let dialer = Dialer::for_url(&node.url)?;
    tokio::time::timeout(Duration::from_secs(30), bot_socket(&dialer, &node.url, token))
        .await
        .map_err(|_| anyhow!("{} did not accept a writer's socket within 30 s", node.id))?
}

/// `create_item` frames for `board`'s group `group`, named as the writer says.
fn item_maker(
    board: &str,
    group: &str,
) -> anyhow::Result<impl Fn(u64, &str) -> anyhow::Result<Message>> {
    let board = board.to_owned();
    let group_id = group.parse().with_context(|| format!("bad group id {group}"))?;
    Ok(move |id: u64, name: &str| {
        let message = ClientMessage::CreateItem {
            board_id: board.clone(),
            body: CreateItem {
                group_id,
                name: name.to_owned(),
                values: Default::default(),
                before: None,
                after: None,
            },
        };
        encode(Encoding::Json, id, message)
    })
}

/// The node holding `board`'s lease, from the cluster's database.
async fn board_owner(db: &BenchDatabase, board: &str) -> anyhow::Result<Option<String>> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(db.url().as_str())
        .await
        .context("cannot connect to the cluster's database")?;
    let owner = sqlx::query_scalar::<_, String>(
        "SELECT node_id FROM leases WHERE kind = 'board' AND entity_id::text = $1",
    )
    .bind(board)
    .fetch_optional(&mut conn)
    .await
    .context("cannot read the leases")?;
    let _ = conn.close().await;
    Ok(owner)
}

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A client process of this tool (`cluster-client`).
struct ClientProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl ClientProcess {
    async fn start(orders: &ClientOrders) -> anyhow::Result<ClientProcess> {
        let exe = std::env::current_exe().context("cannot locate this tool's binary")?;
        let mut child = Command::new(exe)
            .arg("cluster-client")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start a cluster client")?;
        let stdin = child.stdin.take().context("no stdin to the client")?;
        let stdout = child.stdout.take().context("no stdout from the client")?;
        let mut process = ClientProcess { child, stdin, stdout: BufReader::new(stdout).lines() };
        process.say(&serde_json::to_string(orders)?).await?;
        Ok(process)
    }

    async fn say(&mut self, line: &str) -> anyhow::Result<()> {
        self.stdin.write_all(line.as_bytes()).await.context("writing to a client")?;
        self.stdin.write_all(b"\n").await.context("writing to a client")?;
        self.stdin.flush().await.context("writing to a client")
    }

    async fn next(&mut self, within: Duration) -> anyhow::Result<ClientReport> {
        let line = tokio::time::timeout(within, self.stdout.next_line())
            .await
            .map_err(|_| anyhow!("a client said nothing within {within:?}"))?
            .context("reading a client")?
            .ok_or_else(|| anyhow!("a client exited early"))?;
        serde_json::from_str(&line).context("a client's report")
    }

    /// Closes its stdin and waits (up to 30 s) for it to exit.
    async fn finish(self) {
        let ClientProcess { mut child, stdin, stdout } = self;
        drop(stdin);
        drop(stdout);
        if tokio::time::timeout(Duration::from_secs(30), child.wait()).await.is_err() {
            let _ = child.kill().await;
        }
    }
}

/// Entry point of the hidden `cluster-client` subcommand: reads its [`ClientOrders`], opens
/// and holds its sockets, reports, reads events until the [`Finish`] line's `seq`, reports
/// again, and exits when stdin closes.
pub async fn client_main() -> anyhow::Result<()> {
    crate::net::raise_nofile_limit();
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let line = stdin.next_line().await?.context("no orders on stdin")?;
    let orders: ClientOrders = serde_json::from_str(&line).context("bad orders")?;
    let urls = orders
        .nodes
        .iter()
        .map(|u| url::Url::parse(u).with_context(|| format!("bad node URL {u}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let dialers = Arc::new(urls.iter().map(Dialer::for_url).collect::<anyhow::Result<Vec<_>>>()?);
    let urls = Arc::new(urls);
    let token = Arc::new(orders.token.clone());
    let board = Arc::new(orders.board.clone());
    let (finish_tx, finish) = watch::channel::<Option<(i64, Instant)>>(None);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(orders.first));
    // Each socket goes to its reading task as soon as it is open, so it answers heartbeats.
    let (readers, open_latency, failure) = open_many(orders.count, orders.concurrency, || {
        let (dialers, urls, token, board) =
            (Arc::clone(&dialers), Arc::clone(&urls), Arc::clone(&token), Arc::clone(&board));
        let finish = finish.clone();
        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % urls.len();
        let epoch = orders.epoch_unix_us;
        async move {
            let mut retries = 0;
            let (ws, seq) = loop {
                match subscribed_socket(&dialers[i], &urls[i], &token, &board).await {
                    Ok(opened) => break opened,
                    // The server's 503 asks for a retry, as a real client would make; each is
                    // counted.
                    Err(err)
                        if retries < OPEN_RETRIES && format!("{err:#}").contains("unavailable") =>
                    {
                        retries += 1;
                        tokio::time::sleep(Duration::from_millis(250 * retries)).await;
                    }
                    Err(err) => return Err(err),
                }
            };
            Ok((i, retries, tokio::spawn(read_events(ws, seq, epoch, finish))))
        }
    })
    .await;
    let mut per_node = vec![0usize; urls.len()];
    let mut retries = 0;
    for (i, tried, _) in &readers {
        per_node[*i] += 1;
        retries += tried;
    }
    say(&ClientReport::Opened { per_node, open_latency, failure, retries })?;

    let line = stdin.next_line().await?.context("no finish line on stdin")?;
    let Finish { final_seq } = serde_json::from_str(&line).context("bad finish line")?;
    let _ = finish_tx.send(Some((final_seq, Instant::now() + Duration::from_secs(60))));
    let mut tallies: Vec<NodeTally> = urls.iter().map(|_| NodeTally::default()).collect();
    let mut joins = JoinSet::new();
    for (i, _, reader) in readers {
        joins.spawn(async move { (i, reader.await) });
    }
    let mut sockets = Vec::new();
    while let Some(done) = joins.join_next().await {
        let (i, result) = done.context("a reading task failed")?;
        let (tally, ws) = result.context("a reading task failed")?;
        tallies[i].absorb(tally);
        sockets.extend(ws);
    }
    say(&ClientReport::Done { per_node: tallies })?;
    // Held until told to go, so every client's sockets count until all have reported.
    while stdin.next_line().await.ok().flatten().is_some() {}
    drop(sockets);
    Ok(())
}

fn say(report: &ClientReport) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, report)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// Reads events on `ws` after `last` until the writer's last `seq` (from `finish`) arrived or
/// its deadline passed, timing stamped events against the writer's wall clock. Answers the
/// tally and the socket, if still open.
async fn read_events(
    mut ws: Ws,
    mut last: i64,
    epoch_unix_us: u64,
    mut finish: watch::Receiver<Option<(i64, Instant)>>,
) -> (NodeTally, Option<Ws>) {
    let mut tally = NodeTally::default();
    loop {
        let message = match crate::net::next_before(&mut ws, last, &mut finish).await {
            crate::net::Next::Done { missing } => {
                tally.missing = missing;
                break;
            }
            crate::net::Next::Message(message) => message,
        };
        let message = match message {
            Some(Ok(Message::Close(frame))) => {
                tally.failed = 1;
                tally.first_failure = Some(format!("closed: {frame:?}"));
                return (tally, None);
            }
            Some(Ok(message)) => message,
            Some(Err(err)) => {
                tally.failed = 1;
                tally.first_failure = Some(err.to_string());
                return (tally, None);
            }
            None => {
                tally.failed = 1;
                tally.first_failure = Some("connection ended".into());
                return (tally, None);
            }
        };
        let Some(mark) = mark_of(&message) else { continue };
        let now = unix_us();
        if mark.seq <= last {
            tally.duplicates += 1;
            continue;
        }
        tally.gaps += u64::try_from(mark.seq - last - 1).unwrap_or(0);
        last = mark.seq;
        tally.delivered += 1;
        if let Some((0, sent_us)) = mark.stamp {
            let sent = epoch_unix_us.saturating_add(sent_us);
            tally.latency.record(Duration::from_micros(now.saturating_sub(sent)));
        }
    }
    (tally, Some(ws))
}

/// The cluster's nodes, their database and NATS, started for one run.
struct RunningCluster {
    nodes: Vec<NodeRef>,
    children: Vec<Child>,
    database: BenchDatabase,
    nats: Option<Child>,
    /// The shared data dir (audit and master keys); removed on drop.
    data_dir: tempfile::TempDir,
}

impl RunningCluster {
    async fn start(
        target: &Target,
        args: &ClusterArgs,
        admin: &url::Url,
        logs: &Path,
    ) -> anyhow::Result<RunningCluster> {
        let bin = target.server_binary().context("the cluster needs a server binary")?.to_owned();
        let (nats_url, nats) = match &args.nats_url {
            Some(url) => {
                ensure_loopback(&url::Url::parse(url)?, "--nats-url")?;
                (url.clone(), None)
            }
            None => {
                let (url, child) = start_nats(&args.nats_server).await?;
                (url, Some(child))
            }
        };
        let database = BenchDatabase::create(admin).await?;
        let data_dir = tempfile::Builder::new()
            .prefix("boardroom-bench-cluster-")
            .tempdir()
            .context("cannot create a temporary data directory")?;
        let mut cluster =
            RunningCluster { nodes: Vec::new(), children: Vec::new(), database, nats, data_dir };
        let secret: String = rand::thread_rng()
            .sample_iter(rand::distributions::Alphanumeric)
            .take(48)
            .map(char::from)
            .collect();
        if let Some(dir) = logs.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let count = usize::try_from(args.nodes)?;
        let db_connections = args
            .node_db_connections
            .unwrap_or_else(|| u32::try_from(64 / args.nodes).unwrap_or(1).clamp(1, 16));
        let timeout = Duration::from_secs(120);
        // Node 0 alone first: it migrates and writes the shared keys.
        for batch in [0..1, 1..count] {
            for i in batch.clone() {
                let id = format!("node-{i}");
                let spawned = cluster.spawn(
                    &bin,
                    &id,
                    &secret,
                    &nats_url,
                    db_connections,
                    &node_log(logs, i),
                );
                if let Err(err) = spawned {
                    cluster.stop().await;
                    return Err(err);
                }
            }
            for i in batch {
                let ready =
                    wait_ready(&cluster.nodes[i].url, timeout, cluster.children.get_mut(i)).await;
                if let Err(err) = ready {
                    let log = node_log(logs, i);
                    let tail = crate::target::log_tail(&log);
                    cluster.stop().await;
                    return Err(err
                        .context(format!("node-{i} did not become ready; its log ends:\n{tail}")));
                }
            }
        }
        Ok(cluster)
    }

    fn spawn(
        &mut self,
        bin: &Path,
        id: &str,
        secret: &str,
        nats_url: &str,
        db_connections: u32,
        log_path: &Path,
    ) -> anyhow::Result<()> {
        let port = free_port()?;
        let url = url::Url::parse(&format!("http://127.0.0.1:{port}/"))?;
        let log = std::fs::File::create(log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let log_err = log.try_clone().context("cannot share the node log")?;
        let mut command = clean_command(bin);
        command
            .arg("serve")
            .env("BOARDROOM_LISTEN", format!("127.0.0.1:{port}"))
            .env("BOARDROOM_DATA_DIR", self.data_dir.path())
            .env("BOARDROOM_JWT_SECRET", secret)
            .env("BOARDROOM_NATS_URL", nats_url)
            .env("BOARDROOM_NODE_ID", id)
            .env("BOARDROOM_DB_MAX_CONNECTIONS", db_connections.to_string())
            .env("DATABASE_URL", self.database.url().as_str())
            .env("BOARDROOM_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(RELAXED_LIMITS)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .kill_on_drop(true);
        let child = command.spawn().with_context(|| format!("cannot start {}", bin.display()))?;
        self.nodes.push(NodeRef { id: id.to_owned(), url, pid: child.id() });
        self.children.push(child);
        Ok(())
    }

    /// Stops every node (SIGTERM), drops the database and stops a private NATS; failures are
    /// reported on stderr, since the measurements are taken.
    async fn stop(mut self) {
        let mut statuses = BTreeMap::new();
        for (node, child) in self.nodes.iter().zip(&mut self.children) {
            if let Err(err) = terminate(child).await {
                statuses.insert(node.id.clone(), format!("{err:#}"));
            }
        }
        for (id, err) in statuses {
            eprintln!("warning: {id}: {err}");
        }
        self.database.drop_quietly().await;
        if let Some(mut nats) = self.nats.take() {
            let _ = nats.kill().await;
        }
    }
}

/// Node `i`'s log: `<logs>-node-<i>.log`, where `logs` is a path and a file-name stem.
fn node_log(logs: &Path, i: usize) -> PathBuf {
    let stem = logs.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    logs.with_file_name(format!("{stem}-node-{i}.log"))
}

/// Starts `nats-server` on a free loopback port; answers its URL once it accepts connections.
async fn start_nats(bin: &Path) -> anyhow::Result<(String, Child)> {
    let port = free_port()?;
    let mut child = Command::new(bin)
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {} (or give --nats-url)", bin.display()))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if let Some(status) = child.try_wait()? {
            bail!("nats-server exited with {status}");
        }
        if Instant::now() > deadline {
            bail!("nats-server did not accept connections within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((format!("nats://127.0.0.1:{port}"), child))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_report_survives_its_json_line() {
        let mut latency = Recorder::new();
        latency.record(Duration::from_millis(3));
        latency.record_error("open");
        let tally = NodeTally { latency, delivered: 5, gaps: 1, ..NodeTally::default() };
        let line = serde_json::to_string(&ClientReport::Done { per_node: vec![tally] }).unwrap();
        assert!(!line.contains('\n'));
        let ClientReport::Done { per_node } = serde_json::from_str(&line).unwrap() else {
            panic!("not a done report: {line}");
        };
        assert_eq!((per_node[0].delivered, per_node[0].gaps), (5, 1));
        let summary = per_node[0].latency.summary();
        assert_eq!((summary.count, summary.error_count()), (1, 1));
        assert_eq!(summary.p50_ms, Some(3.0));
    }

    #[test]
    fn node_logs_go_beside_the_report() {
        let logs = Path::new("target/loadtest/cluster-6x30000");
        assert_eq!(node_log(logs, 4), Path::new("target/loadtest/cluster-6x30000-node-4.log"));
    }
}
