//! WebSocket scenarios: `connections`, `fanout`, `reconnect-storm`.
//!
//! Each registers one user, makes an organization and a board over REST, then speaks the
//! protocol of `boardroom-protocol` over sockets authenticated with that user's token. Results
//! are printed as one summary per scenario; a scenario that sees a gap or a duplicate fails.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use boardroom_protocol::Encoding;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::stats::{ScenarioReport, Table};
use crate::target::Target;

/// These scenarios print their own summaries; the shared report carries their parameters.
fn printed(name: &str) -> ScenarioReport {
    ScenarioReport {
        table: Table::new(),
        headline: vec![format!("{name}: see the summaries above")],
        warnings: Vec::new(),
        parameters: serde_json::Value::Null,
        results: serde_json::Value::Null,
    }
}

/// Options every scenario takes (the server is the shared `--url`, or one started here).
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// Frame encoding: json or msgpack.
    #[arg(long, default_value = "json")]
    encoding: String,
}

/// `connections`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectionsArgs {
    #[command(flatten)]
    common: Common,
    /// Sockets to open.
    #[arg(long, default_value_t = 500)]
    connections: usize,
    /// Seconds to hold them open, pinging each once a second.
    #[arg(long, default_value_t = 10)]
    hold_secs: u64,
}

/// `fanout`.
#[derive(Debug, Clone, clap::Args)]
pub struct FanoutArgs {
    #[command(flatten)]
    common: Common,
    /// Subscribers of the board.
    #[arg(long, default_value_t = 200)]
    subscribers: usize,
    /// Items the writer creates.
    #[arg(long, default_value_t = 200)]
    events: usize,
    /// Writes per second (above 50, raise the server's BOARDROOM_WS_FRAMES_PER_SEC).
    #[arg(long, default_value_t = 20)]
    rate: u32,
}

/// `reconnect-storm`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReconnectArgs {
    #[command(flatten)]
    common: Common,
    /// Subscribers that all drop and come back.
    #[arg(long, default_value_t = 200)]
    subscribers: usize,
    /// Items written while they are away.
    #[arg(long, default_value_t = 50)]
    events_while_away: usize,
}

/// The board the scenario runs on, and who it runs as.
struct Setup {
    url: String,
    token: String,
    board: String,
    group: String,
    encoding: Encoding,
}

impl Setup {
    async fn create(common: &Common, base: &url::Url) -> anyhow::Result<Setup> {
        let encoding = match common.encoding.as_str() {
            "json" => Encoding::Json,
            "msgpack" => Encoding::MessagePack,
            other => bail!("--encoding must be json or msgpack, not {other}"),
        };
        let http = reqwest::Client::new();
        let url = base.as_str().trim_end_matches('/').to_owned();
        let email = format!("loadtest-{}-{}@example.com", std::process::id(), unique());
        let registered: Value = http
            .post(format!("{url}/api/v1/auth/register"))
            .json(&json!({"email": email, "password": "loadtest-password-long", "name": "Load"}))
            .send()
            .await?
            .error_for_status()
            .context("register")?
            .json()
            .await?;
        let token = text(&registered["access_token"])?;
        let org: Value = http
            .post(format!("{url}/api/v1/orgs"))
            .bearer_auth(&token)
            .json(&json!({"name": "Load test"}))
            .send()
            .await?
            .error_for_status()
            .context("create org")?
            .json()
            .await?;
        let board: Value = http
            .post(format!("{url}/api/v1/orgs/{}/boards", text(&org["id"])?))
            .bearer_auth(&token)
            .json(&json!({"name": "Load board"}))
            .send()
            .await?
            .error_for_status()
            .context("create board")?
            .json()
            .await?;
        Ok(Setup {
            url,
            token,
            board: text(&board["id"])?,
            group: text(&board["groups"][0]["id"])?,
            encoding,
        })
    }

    async fn connect(&self) -> anyhow::Result<Client> {
        let ws_url = format!(
            "{}/api/v1/ws",
            self.url.replacen("http://", "ws://", 1).replacen("https://", "wss://", 1)
        );
        let mut request = ws_url.into_client_request()?;
        request.headers_mut().insert("authorization", format!("Bearer {}", self.token).parse()?);
        request
            .headers_mut()
            .insert("sec-websocket-protocol", self.encoding.subprotocol().parse()?);
        let (ws, _) = tokio_tungstenite::connect_async(request).await?;
        let mut client =
            Client { ws, encoding: self.encoding, next_id: 1, pending: VecDeque::new() };
        let hello = client.next_frame().await?;
        if hello["type"] != "hello" {
            bail!("expected hello, got {hello}");
        }
        Ok(client)
    }
}

fn unique() -> u64 {
    // Enough to keep emails apart between runs; not a secret.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map(|d| d.as_nanos() as u64).unwrap_or_default()
}

fn text(value: &Value) -> anyhow::Result<String> {
    value.as_str().map(str::to_owned).ok_or_else(|| anyhow!("expected a string, got {value}"))
}

/// One protocol client.
struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    encoding: Encoding,
    next_id: u64,
    pending: VecDeque<Value>,
}

impl Client {
    async fn next_frame(&mut self) -> anyhow::Result<Value> {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(30), self.ws.next())
                .await
                .context("no frame within 30 s")?
                .ok_or_else(|| anyhow!("connection ended"))??;
            return Ok(match message {
                Message::Text(text) => serde_json::from_str(&text)?,
                Message::Binary(bytes) => rmp_serde::from_slice(&bytes)?,
                Message::Close(frame) => bail!("closed: {frame:?}"),
                _ => continue,
            });
        }
    }

    async fn request(&mut self, mut frame: Value) -> anyhow::Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        frame["id"] = json!(id);
        let bytes = self.encoding.encode(&frame)?;
        let message = match self.encoding {
            Encoding::Json => Message::Text(String::from_utf8(bytes)?.into()),
            Encoding::MessagePack => Message::Binary(bytes.into()),
        };
        self.ws.send(message).await?;
        loop {
            let frame = self.next_frame().await?;
            if frame["type"] == "reply" && frame["id"] == json!(id) {
                if frame["ok"] != true {
                    bail!("request failed: {frame}");
                }
                return Ok(frame);
            }
            self.pending.push_back(frame);
        }
    }

    async fn next_event(&mut self) -> anyhow::Result<Value> {
        loop {
            let frame = match self.pending.pop_front() {
                Some(frame) => frame,
                None => self.next_frame().await?,
            };
            if frame["type"] == "event" {
                return Ok(frame);
            }
        }
    }

    async fn subscribe(&mut self, board: &str, after_seq: Option<i64>) -> anyhow::Result<i64> {
        let mut frame = json!({"type": "subscribe", "board_id": board});
        if let Some(after) = after_seq {
            frame["after_seq"] = json!(after);
        }
        let reply = self.request(frame).await?;
        reply["data"]["seq"].as_i64().ok_or_else(|| anyhow!("no seq in {reply}"))
    }
}

/// Percentiles of a sample, in milliseconds.
fn summary(name: &str, mut samples: Vec<Duration>) {
    if samples.is_empty() {
        println!("{name}: no samples");
        return;
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
    println!(
        "{name}: n={} p50={:.2}ms p90={:.2}ms p99={:.2}ms max={:.2}ms",
        samples.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    );
}

async fn open_many(setup: &Setup, count: usize) -> anyhow::Result<Vec<(Client, i64)>> {
    let mut clients = Vec::with_capacity(count);
    // Opened in waves so the accept queue and bcrypt-free auth path are not one thundering herd.
    for wave in (0..count).collect::<Vec<_>>().chunks(100) {
        let opened = futures::future::join_all(wave.iter().map(|_| async {
            let mut client = setup.connect().await?;
            let seq = client.subscribe(&setup.board, None).await?;
            anyhow::Ok((client, seq))
        }))
        .await;
        for result in opened {
            clients.push(result?);
        }
    }
    Ok(clients)
}

/// `connections`: how many sockets, how fast, and how responsive while held.
pub async fn connections(
    target: &Target,
    args: &ConnectionsArgs,
) -> anyhow::Result<ScenarioReport> {
    let setup = Setup::create(&args.common, target.base_url()).await?;
    let started = Instant::now();
    let clients = open_many(&setup, args.connections).await?;
    println!("opened and subscribed {} sockets in {:.2?}", clients.len(), started.elapsed());
    let deadline = Instant::now() + Duration::from_secs(args.hold_secs);
    let results =
        futures::future::join_all(clients.into_iter().map(|(mut client, _)| async move {
            let mut rtts = Vec::new();
            while Instant::now() < deadline {
                let sent = Instant::now();
                client.request(json!({"type": "ping"})).await?;
                rtts.push(sent.elapsed());
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            anyhow::Ok(rtts)
        }))
        .await;
    let mut rtts = Vec::new();
    for result in results {
        rtts.extend(result?);
    }
    summary("ping round trip", rtts);
    Ok(printed("connections"))
}

/// Reads `count` events after `from`, checking order; answers the latency of each.
async fn read_events(
    client: &mut Client,
    from: i64,
    count: usize,
    epoch: Instant,
) -> anyhow::Result<Vec<Duration>> {
    let mut latencies = Vec::with_capacity(count);
    for expected in (from + 1..).take(count) {
        let event = client.next_event().await?;
        let seq = event["seq"].as_i64().unwrap_or(-1);
        if seq != expected {
            bail!("expected seq {expected}, got {seq}: gap or duplicate");
        }
        // The writer names each item after the microsecond it sent it at.
        let sent_us = event["data"]["name"]
            .as_str()
            .and_then(|n| n.strip_prefix("lt-"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(sent_us) = sent_us {
            let now_us = epoch.elapsed().as_micros() as u64;
            latencies.push(Duration::from_micros(now_us.saturating_sub(sent_us)));
        }
    }
    Ok(latencies)
}

async fn write_items(
    setup: &Setup,
    count: usize,
    rate: u32,
    epoch: Instant,
) -> anyhow::Result<Vec<Duration>> {
    let mut writer = setup.connect().await?;
    let mut every = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    let mut acks = Vec::with_capacity(count);
    for _ in 0..count {
        every.tick().await;
        let sent = Instant::now();
        let name = format!("lt-{}", epoch.elapsed().as_micros());
        writer
            .request(json!({"type": "create_item", "board_id": setup.board, "group_id": setup.group, "name": name}))
            .await?;
        acks.push(sent.elapsed());
    }
    Ok(acks)
}

/// `fanout`: one writer, many subscribers; delivery latency and exactly-once order.
pub async fn fanout(target: &Target, args: &FanoutArgs) -> anyhow::Result<ScenarioReport> {
    let setup = Setup::create(&args.common, target.base_url()).await?;
    let clients = open_many(&setup, args.subscribers).await?;
    println!("{} subscribers ready", clients.len());
    let epoch = Instant::now();
    let events = args.events;
    let readers = tokio::spawn(futures::future::join_all(clients.into_iter().map(
        move |(mut client, seq)| async move { read_events(&mut client, seq, events, epoch).await },
    )));
    let acks = write_items(&setup, args.events, args.rate, epoch).await?;
    let mut latencies = Vec::new();
    for result in readers.await? {
        latencies.extend(result?);
    }
    summary("write acknowledged after commit", acks);
    summary("event delivered to subscriber", latencies);
    println!("every subscriber saw every event once, in order");
    Ok(printed("fanout"))
}

/// `reconnect-storm`: everyone drops, writes continue, everyone resumes at once.
pub async fn reconnect_storm(
    target: &Target,
    args: &ReconnectArgs,
) -> anyhow::Result<ScenarioReport> {
    let setup = Setup::create(&args.common, target.base_url()).await?;
    let clients = open_many(&setup, args.subscribers).await?;
    let positions: Vec<i64> = clients.iter().map(|(_, seq)| *seq).collect();
    drop(clients);
    let epoch = Instant::now();
    // Under the default per-socket frame limit (50/s).
    write_items(&setup, args.events_while_away, 40, epoch).await?;
    let started = Instant::now();
    let events = args.events_while_away;
    let setup = &setup;
    let results = futures::future::join_all(positions.iter().map(|after| async move {
        let began = Instant::now();
        let mut client = setup.connect().await?;
        client.subscribe(&setup.board, Some(*after)).await?;
        read_events(&mut client, *after, events, epoch).await?;
        anyhow::Ok(began.elapsed())
    }))
    .await;
    let mut recovered = Vec::new();
    for result in results {
        recovered.push(result?);
    }
    println!("{} subscribers resumed in {:.2?}", recovered.len(), started.elapsed());
    summary("reconnect, resubscribe and replay", recovered);
    println!("every subscriber replayed every missed event once, in order");
    Ok(printed("reconnect-storm"))
}
