//! Scenario `backup`: the RTO measured. Fills a started server with `--items` items spread over
//! `--boards` boards (sockets pipelining `create_item`, every one acknowledged after its
//! commit), then times, against the real binary:
//!
//! 1. `boardroom backup --out DIR` while the server keeps serving, and the snapshot's size;
//! 2. `boardroom restore --from DIR` into a fresh data dir (SQLite) or a fresh database
//!    (Postgres), with its row-count check;
//! 3. a new `boardroom serve` on the restored database until `/readyz` answers 200.
//!
//! Restore plus start-up is the RTO this build gives for that much data. Needs a managed server
//! (not `--url`): the tool must know its database and data dir.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use boardroom_protocol::{ClientMessage, Encoding, RequestId, ServerFrame};
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::json;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::api::{Account, Api};
use crate::stats::{progress, ScenarioReport, Table};
use crate::target::{self, Target};

/// Settings of the `backup` scenario.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct BackupArgs {
    /// Items to create before the backup.
    #[arg(long, default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub items: u64,
    /// Boards the items are spread over.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub boards: u64,
    /// Sockets creating items at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub sockets: u64,
    /// `create_item` requests one socket keeps awaiting their reply (the server takes 64).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub window: u64,
}

pub async fn run(target: &Target, args: &BackupArgs) -> anyhow::Result<ScenarioReport> {
    let (Some(bin), Some(data_dir)) = (target.server_binary(), target.data_dir()) else {
        bail!("the backup scenario needs a server it starts itself (not --url)");
    };
    let api = Api::new(target.base_url())?;
    let owner = api.register("backup").await.context("registering the owner")?;
    let org = api.create_org(&owner, "Backup").await.context("creating the organization")?;
    let mut boards = Vec::new();
    for n in 0..args.boards {
        let board = api.create_board(&owner, &org, &format!("Board {n}")).await?;
        let template = boardroom_protocol::boards::CreateItem {
            group_id: board.groups.first().context("the board has no group")?.id,
            name: String::new(),
            values: Default::default(),
            before: None,
            after: None,
        };
        boards.push((board.board.id.to_string(), template));
    }

    progress("backup", format!("creating {} items over {} boards", args.items, args.boards));
    let filled = Instant::now();
    fill(target, &api, &owner, &org, &boards, args).await?;
    let fill_secs = filled.elapsed().as_secs_f64();
    progress("backup", format!("filled in {fill_secs:.1} s"));

    let work = tempfile::Builder::new().prefix("boardroom-backup-bench-").tempdir()?;
    let snapshot = work.path().join("snapshot");
    let source_url = target.database_url();
    let began = Instant::now();
    boardroom(bin, data_dir, source_url.as_deref(), &["backup", "--out", path(&snapshot)?])
        .await
        .context("backup")?;
    let backup_secs = began.elapsed().as_secs_f64();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(snapshot.join("manifest.json"))?)?;
    let bytes: u64 = manifest["files"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["bytes"].as_u64())
        .sum();
    let items_in_snapshot = manifest["tables"]["items"].as_u64().unwrap_or(0);
    progress("backup", format!("backup {backup_secs:.1} s, {} MB", bytes / 1_000_000));

    let restored_dir = work.path().join("restored");
    std::fs::create_dir_all(&restored_dir)?;
    let restored_db = match target.postgres_admin_url() {
        Some(admin) => Some(target::BenchDatabase::create(&admin).await?),
        None => None,
    };
    let restored_url = restored_db.as_ref().map(|db| db.url().to_string());
    let outcome = async {
        let began = Instant::now();
        boardroom(
            bin,
            &restored_dir,
            restored_url.as_deref(),
            &["restore", "--from", path(&snapshot)?],
        )
        .await
        .context("restore")?;
        let restore_secs = began.elapsed().as_secs_f64();
        progress("backup", format!("restore {restore_secs:.1} s"));
        let began = Instant::now();
        let ready = serve_until_ready(bin, &restored_dir, restored_url.as_deref()).await?;
        let ready_secs = began.elapsed().as_secs_f64();
        anyhow::Ok((restore_secs, ready_secs, ready))
    }
    .await;
    if let Some(db) = restored_db {
        db.drop_quietly().await;
    }
    let (restore_secs, ready_secs, _) = outcome?;
    let rto = restore_secs + ready_secs;
    Ok(ScenarioReport {
        table: Table::new(),
        headline: vec![
            format!(
                "filled {} items over {} boards in {fill_secs:.1} s ({:.0} items/s)",
                args.items,
                args.boards,
                args.items as f64 / fill_secs
            ),
            format!(
                "backup {backup_secs:.1} s, {:.1} MB, {items_in_snapshot} items in the snapshot",
                bytes as f64 / 1e6
            ),
            format!("restore {restore_secs:.1} s, then /readyz 200 after {ready_secs:.1} s"),
            format!("RTO (restore + start) {rto:.1} s"),
        ],
        warnings: Vec::new(),
        parameters: serde_json::to_value(args)?,
        results: json!({
            "fill_secs": fill_secs,
            "backup_secs": backup_secs,
            "backup_bytes": bytes,
            "items_in_snapshot": items_in_snapshot,
            "restore_secs": restore_secs,
            "ready_secs": ready_secs,
            "rto_secs": rto,
        }),
        figures: Vec::new(),
    })
}

fn path(p: &Path) -> anyhow::Result<&str> {
    p.to_str().with_context(|| format!("{} is not UTF-8", p.display()))
}

/// Creates the items: each socket takes every `sockets`-th item, round-robin over the boards,
/// keeping `window` requests awaiting their reply. Each socket signs in with its own API key,
/// as bots do: an access token would end (and the server close the socket) mid-fill, and one
/// key's rate limit would cap every socket together. A socket that drops anyway reconnects and
/// sends again what was not acknowledged; an item whose reply was lost may then exist twice,
/// which is why the report counts the snapshot's items rather than assuming `--items`.
async fn fill(
    target: &Target,
    api: &Api,
    owner: &Account,
    org: &str,
    boards: &[(String, boardroom_protocol::boards::CreateItem)],
    args: &BackupArgs,
) -> anyhow::Result<()> {
    let dialer = Arc::new(crate::net::Dialer::for_url(target.base_url())?);
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    for s in 0..args.sockets {
        let key = api
            .create_api_key(owner, org, &format!("filler {s}"), &["items:write"])
            .await
            .context("creating a filler's API key")?;
        let filler = Filler {
            dialer: dialer.clone(),
            base: target.base_url().clone(),
            key,
            boards: boards.to_vec(),
            window: args.window as usize,
            done: done.clone(),
        };
        let mut queue: VecDeque<u64> = (s..args.items).step_by(args.sockets as usize).collect();
        tasks.spawn(async move {
            let mut reconnects = 0;
            while !queue.is_empty() {
                match filler.fill_on_one_socket(&mut queue).await {
                    Ok(()) => {}
                    Err(error) if reconnects < MAX_RECONNECTS => {
                        reconnects += 1;
                        progress("backup", format!("a filler's socket failed ({error:#}); again"));
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    Err(error) => return Err(error),
                }
            }
            anyhow::Ok(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.context("a filler panicked")??;
    }
    Ok(())
}

/// How often one filler reconnects before the scenario fails.
const MAX_RECONNECTS: u32 = 5;

/// One socket's share of the fill.
struct Filler {
    dialer: Arc<crate::net::Dialer>,
    base: url::Url,
    key: String,
    boards: Vec<(String, boardroom_protocol::boards::CreateItem)>,
    window: usize,
    done: Arc<AtomicU64>,
}

impl Filler {
    /// Sends the items of `queue` on one socket until every one is acknowledged; when the
    /// socket fails, what it had not acknowledged goes back to the front of `queue`.
    async fn fill_on_one_socket(&self, queue: &mut VecDeque<u64>) -> anyhow::Result<()> {
        let ws = crate::socket::bot_socket(&self.dialer, &self.base, &self.key).await?;
        let (mut sink, mut stream) = ws.split();
        // Request id (the item's number + 1) → the item's number.
        let mut in_flight: BTreeMap<u64, u64> = BTreeMap::new();
        let outcome = async {
            loop {
                while in_flight.len() < self.window {
                    let Some(n) = queue.pop_front() else { break };
                    in_flight.insert(n + 1, n);
                    let (board, template) = &self.boards[(n % self.boards.len() as u64) as usize];
                    let body = boardroom_protocol::boards::CreateItem {
                        name: format!("item {n}"),
                        ..template.clone()
                    };
                    let message = ClientMessage::CreateItem { board_id: board.clone(), body };
                    sink.send(crate::socket::encode(Encoding::Json, n + 1, message)?).await?;
                }
                if in_flight.is_empty() {
                    return anyhow::Ok(());
                }
                let message = tokio::time::timeout(Duration::from_secs(60), stream.next())
                    .await
                    .context("no reply within 60 s")?
                    .context("the socket closed")??;
                let Message::Text(text) = message else { continue };
                let ServerFrame::Reply(reply) = Encoding::Json.decode(text.as_bytes())? else {
                    continue;
                };
                if let Some(error) = reply.error {
                    bail!("create_item refused: {}", error.code.as_str());
                }
                let acknowledged = match reply.id {
                    Some(RequestId::Number(id)) => in_flight.remove(&id),
                    _ => None,
                };
                if acknowledged.is_some() {
                    let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
                    if done.is_multiple_of(100_000) {
                        progress("backup", format!("{done} items"));
                    }
                }
            }
        }
        .await;
        if outcome.is_err() {
            for n in in_flight.into_values().rev() {
                queue.push_front(n);
            }
        } else {
            let _ = sink.close().await;
        }
        outcome
    }
}

/// Runs `boardroom ARGS` on `data_dir` (and `database_url`, else SQLite in the data dir).
async fn boardroom(
    bin: &Path,
    data_dir: &Path,
    database_url: Option<&str>,
    args: &[&str],
) -> anyhow::Result<()> {
    let mut command = target::clean_command(bin);
    command.args(args).env("BOARDROOM_DATA_DIR", data_dir).env("BOARDROOM_LOG", "warn");
    if let Some(url) = database_url {
        command.env("DATABASE_URL", url);
    }
    let output = command.output().await.with_context(|| format!("running {}", bin.display()))?;
    if !output.status.success() {
        bail!(
            "{} {} failed ({}): {}{}",
            bin.display(),
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Starts `boardroom serve` on the restored database, waits for `/readyz`, stops it.
async fn serve_until_ready(
    bin: &Path,
    data_dir: &Path,
    database_url: Option<&str>,
) -> anyhow::Result<String> {
    let port = target::free_port()?;
    let base = url::Url::parse(&format!("http://127.0.0.1:{port}/"))?;
    let mut command = target::clean_command(bin);
    command
        .arg("serve")
        .env("BOARDROOM_LISTEN", format!("127.0.0.1:{port}"))
        .env("BOARDROOM_DATA_DIR", data_dir)
        .env("BOARDROOM_JWT_SECRET", "restored-server-secret-restored-server-secret")
        .env("BOARDROOM_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    if let Some(url) = database_url {
        command.env("DATABASE_URL", url);
    }
    let mut child = command.spawn()?;
    let ready = target::wait_ready(&base, Duration::from_secs(600), Some(&mut child)).await;
    let _ = target::terminate(&mut child).await;
    ready
}
