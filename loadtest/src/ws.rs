//! WebSocket scenarios: `connections`, `fanout`, `reconnect-storm`, each run against Boardroom
//! and, in the same run, against the bare broadcast server of [`crate::baseline`], so that every
//! figure comes with its ratio to the baseline.
//!
//! Boardroom is driven as one registered user with one organization and one board, over
//! sockets authenticated with that user's token (`Authorization: Bearer`). Every socket is bound
//! to its own source address in 127.0.0.0/8 ([`Dialer`]) so ephemeral ports never run out.
//! Every socket is read continuously while held: tokio-tungstenite answers the server's
//! heartbeat pings only while the stream is polled.
//!
//! Subscribers check each event's `seq`: one more than the last is a delivery, more is a gap,
//! less or equal a duplicate. The writer names each item `lt-<phase>-<µs>`, the microsecond
//! (since the run's epoch) at which it sent the command, so a subscriber's latency is from the
//! writer's send to its own receipt, both on this process's monotonic clock.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use boardroom_protocol::Encoding;
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::api::{string_field, Api};
use crate::baseline::BaselineServer;
use crate::machine::PhaseMeter;
use crate::net::{rss_kib, Dialer, Ws};
use crate::stats::{format_ms, Recorder, ScenarioReport, Summary, Table};
use crate::target::Target;

/// Options every WebSocket scenario takes.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct Common {
    /// Frame encoding of the subscribers: json or msgpack (the writer always speaks JSON).
    #[arg(long, default_value = "json")]
    encoding: String,
    /// Sockets opened at once while setting up (the rest wait for a slot).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    open_concurrency: u64,
    /// Skip the bare baseline (only Boardroom is measured; no ratios).
    #[arg(long)]
    no_baseline: bool,
}

/// `connections`.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct ConnectionsArgs {
    #[command(flatten)]
    common: Common,
    /// Sockets to open and hold (authenticated and subscribed to one board).
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Seconds to hold them open once all are open.
    #[arg(long, default_value_t = 10)]
    hold_secs: u64,
    /// Held sockets that also send a protocol ping once a second (latency while held).
    #[arg(long, default_value_t = 100)]
    ping_sample: usize,
}

/// `fanout`.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct FanoutArgs {
    #[command(flatten)]
    common: Common,
    /// Subscribers of the board.
    #[arg(long, default_value_t = 200)]
    subscribers: usize,
    /// Items the writer creates in the paced phase.
    #[arg(long, default_value_t = 200)]
    events: usize,
    /// Writes per second in the paced phase.
    #[arg(long, default_value_t = 10)]
    rate: u32,
    /// Seconds of the saturated phase, in which the writer keeps `--window` writes in flight
    /// (0 to skip it).
    #[arg(long, default_value_t = 5)]
    saturate_secs: u64,
    /// Writes in flight in the saturated phase. The default is what Boardroom lets one
    /// connection pipeline: a saturated writer keeps as many in flight as the server takes.
    #[arg(long, default_value_t = 64)]
    window: usize,
}

/// `reconnect-storm`.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct ReconnectArgs {
    #[command(flatten)]
    common: Common,
    /// Subscribers that all drop and come back at once.
    #[arg(long, default_value_t = 200)]
    subscribers: usize,
    /// Items written while they are away.
    #[arg(long, default_value_t = 50)]
    events_while_away: usize,
}

// ---------------------------------------------------------------------------------------------
// Boardroom set-up and protocol client

/// The board the scenario runs on, and who it runs as.
struct Setup {
    url: String,
    token: String,
    board: String,
    group: String,
    encoding: Encoding,
    dialer: Dialer,
}

impl Setup {
    async fn create(common: &Common, base: &url::Url) -> anyhow::Result<Setup> {
        let encoding = match common.encoding.as_str() {
            "json" => Encoding::Json,
            "msgpack" => Encoding::MessagePack,
            other => bail!("--encoding must be json or msgpack, not {other}"),
        };
        let api = Api::new(base)?;
        let owner = api.register("load").await.context("registering the owner")?;
        let org = api.create_org(&owner, "Load test").await.context("creating the organization")?;
        let board =
            api.create_board(&owner, &org, "Load board").await.context("creating the board")?;
        Ok(Setup {
            url: base.as_str().trim_end_matches('/').to_owned(),
            token: owner.access_token,
            board: string_field(&board, "id")?,
            group: string_field(&board, "groups/0/id")?,
            encoding,
            dialer: Dialer::for_url(base)?,
        })
    }

    async fn connect(&self, encoding: Encoding) -> anyhow::Result<Client> {
        connect(&self.dialer, &self.url, &self.token, encoding).await
    }

    /// A socket subscribed to the board (from `after_seq`, if given), and the board's seq.
    async fn subscriber(&self, after_seq: Option<i64>) -> anyhow::Result<(Client, i64)> {
        let mut client = self.connect(self.encoding).await?;
        let seq = client.subscribe(&self.board, after_seq).await?;
        Ok((client, seq))
    }
}

/// Opens a socket to the Boardroom at `base_url` with `token` as its bearer credential (as a
/// bot does) and reads its `hello`.
async fn connect(
    dialer: &Dialer,
    base_url: &str,
    token: &str,
    encoding: Encoding,
) -> anyhow::Result<Client> {
    let ws_url =
        format!("{}/api/v1/ws", base_url.trim_end_matches('/').replacen("http://", "ws://", 1));
    let mut request = ws_url.into_client_request()?;
    request.headers_mut().insert("authorization", format!("Bearer {token}").parse()?);
    request.headers_mut().insert("sec-websocket-protocol", encoding.subprotocol().parse()?);
    let ws = dialer.websocket(request).await?;
    let mut client = Client { ws, encoding, next_id: 1, pending: VecDeque::new() };
    let hello = client.next_frame().await?;
    if hello["type"] != "hello" {
        bail!("expected hello, got {hello}");
    }
    Ok(client)
}

/// A JSON socket authenticated as a bot with `token`, past its `hello`.
pub async fn bot_socket(dialer: &Dialer, base: &url::Url, token: &str) -> anyhow::Result<Ws> {
    Ok(connect(dialer, base.as_str(), token, Encoding::Json).await?.ws)
}

/// One protocol client.
struct Client {
    ws: Ws,
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
        self.ws.send(encode(self.encoding, &frame)?).await?;
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
        if after_seq.is_some() && reply["data"]["recovered"] != true {
            bail!("resumed without recovery (a snapshot instead): {}", reply["data"]["seq"]);
        }
        reply["data"]["seq"].as_i64().ok_or_else(|| anyhow!("no seq in {reply}"))
    }
}

fn encode(encoding: Encoding, frame: &Value) -> anyhow::Result<Message> {
    let bytes = encoding.encode(frame)?;
    Ok(match encoding {
        Encoding::Json => Message::Text(String::from_utf8(bytes)?.into()),
        Encoding::MessagePack => Message::Binary(bytes.into()),
    })
}

// ---------------------------------------------------------------------------------------------
// Reading events cheaply

/// What a reader needs of an event frame: its `seq`, and the writer's stamp if the item name
/// carries one (`lt-<phase>-<µs>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EventMark {
    seq: i64,
    stamp: Option<(usize, u64)>,
}

/// Reads an event's mark from a JSON text frame without building a `Value`: with 10,000
/// subscribers this runs 100,000 times a second on the same two cores as the server. The
/// first `"seq":` is the event's own (Boardroom and the baseline put it before `data`).
fn mark_of_json(text: &str) -> Option<EventMark> {
    if !text.contains(r#""type":"event""#) {
        return None;
    }
    let seq = number_after(text, r#""seq":"#)?;
    Some(EventMark { seq, stamp: stamp_of(text) })
}

fn number_after(text: &str, key: &str) -> Option<i64> {
    let rest = &text[text.find(key)? + key.len()..];
    let end = rest.find(|c: char| !c.is_ascii_digit() && c != '-').unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn stamp_of(text: &str) -> Option<(usize, u64)> {
    let rest = &text[text.find("lt-")? + 3..];
    let (phase, rest) = rest.split_once('-')?;
    let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    Some((phase.parse().ok()?, rest[..end].parse().ok()?))
}

fn mark_of(message: &Message) -> Option<EventMark> {
    match message {
        Message::Text(text) => mark_of_json(text.as_str()),
        Message::Binary(bytes) => {
            let frame: Value = rmp_serde::from_slice(bytes).ok()?;
            if frame["type"] != "event" {
                return None;
            }
            let stamp = frame["data"]["name"].as_str().and_then(stamp_of);
            Some(EventMark { seq: frame["seq"].as_i64()?, stamp })
        }
        _ => None,
    }
}

/// Writer phases: 0 is paced, 1 saturated.
const PHASES: usize = 2;

/// What one subscriber saw.
#[derive(Debug, Default)]
struct Tally {
    latency: [Recorder; PHASES],
    last_at: [Option<Instant>; PHASES],
    delivered: u64,
    gaps: u64,
    duplicates: u64,
    /// Events never received (after the last one seen, until the writer's last).
    missing: u64,
    /// Why the socket ended early, if it did.
    failed: Option<String>,
    /// Size of the first event frame, to make the baseline's frames as big.
    event_bytes: Option<usize>,
}

impl Tally {
    fn absorb(&mut self, other: Tally) {
        for (mine, theirs) in self.latency.iter_mut().zip(other.latency) {
            mine.merge(theirs);
        }
        for (mine, theirs) in self.last_at.iter_mut().zip(other.last_at) {
            *mine = (*mine).max(theirs);
        }
        self.delivered += other.delivered;
        self.gaps += other.gaps;
        self.duplicates += other.duplicates;
        self.missing += other.missing;
        self.event_bytes = self.event_bytes.or(other.event_bytes);
        if self.failed.is_none() {
            self.failed = other.failed;
        }
    }
}

/// The writer's last `seq`, and when readers should stop waiting for it.
type Finish = Option<(i64, Instant)>;

/// Reads events on `ws` after `last` until the writer's last `seq` (from `finish`) arrived or
/// its deadline passed, counting gaps and duplicates and timing stamped events.
async fn read_until(
    mut ws: Ws,
    mut last: i64,
    epoch: Instant,
    mut finish: watch::Receiver<Finish>,
    delivered: Arc<AtomicU64>,
) -> Tally {
    let mut tally = Tally::default();
    loop {
        if let Some((final_seq, give_up)) = *finish.borrow() {
            if last >= final_seq {
                break;
            }
            if Instant::now() >= give_up {
                tally.missing = u64::try_from(final_seq - last).unwrap_or(0);
                break;
            }
        }
        let message = tokio::select! {
            message = ws.next() => message,
            _ = finish.changed() => continue,
            // Wake up now and then to look at the deadline.
            _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
        };
        let message = match message {
            Some(Ok(message)) => message,
            Some(Err(err)) => {
                tally.failed = Some(err.to_string());
                break;
            }
            None => {
                tally.failed = Some("connection ended".into());
                break;
            }
        };
        if let Message::Close(frame) = &message {
            tally.failed = Some(format!("closed: {frame:?}"));
            break;
        }
        let Some(mark) = mark_of(&message) else { continue };
        let now = Instant::now();
        tally.event_bytes.get_or_insert(message.len());
        if mark.seq <= last {
            tally.duplicates += 1;
            continue;
        }
        tally.gaps += u64::try_from(mark.seq - last - 1).unwrap_or(0);
        last = mark.seq;
        tally.delivered += 1;
        delivered.fetch_add(1, Ordering::Relaxed);
        if let Some((phase, sent_us)) = mark.stamp.filter(|(phase, _)| *phase < PHASES) {
            let now_us = u64::try_from(now.duration_since(epoch).as_micros()).unwrap_or(u64::MAX);
            tally.latency[phase].record(Duration::from_micros(now_us.saturating_sub(sent_us)));
            tally.last_at[phase] = Some(now);
        }
    }
    let _ = ws.close(None).await;
    tally
}

// ---------------------------------------------------------------------------------------------
// The writer

/// How the writer's commands are acknowledged.
#[derive(Debug, Clone, Copy)]
enum Flavor {
    /// Boardroom: `create_item` commands, acknowledged by their `reply` (with the event's seq).
    Boardroom,
    /// The baseline: a bare frame, acknowledged by its own broadcast coming back.
    Baseline,
}

/// What the writer did.
#[derive(Debug)]
struct Written {
    /// Commands sent per phase.
    sent: [u64; PHASES],
    /// When each phase's first command went out.
    started: [Option<Instant>; PHASES],
    /// Failed acknowledgements (Boardroom error replies).
    failed: u64,
    /// The highest seq acknowledged.
    final_seq: i64,
}

/// Sends `paced` commands at `rate` per second, then keeps `window` commands in flight for
/// `saturate`. Each names its item after its phase and send time. Between the phases it waits
/// (up to two minutes) for every acknowledgement and for `caught_up`, so that a backlog of the
/// paced phase is not counted in the saturated one.
async fn write(
    ws: Ws,
    flavor: Flavor,
    make: impl Fn(u64, &str) -> anyhow::Result<Message>,
    paced: (usize, u32),
    saturate: (Duration, usize),
    epoch: Instant,
    caught_up: impl Fn() -> bool,
) -> anyhow::Result<Written> {
    let (mut sink, mut stream) = ws.split();
    let (acks, mut acked) = mpsc::unbounded_channel::<i64>();
    // Acknowledgements are read on their own task, so the pacing of sends never waits on them.
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            let Message::Text(text) = message else { continue };
            let text = text.as_str();
            // -1 stands for a failed command.
            let ack = match flavor {
                Flavor::Boardroom => text.contains(r#""type":"reply""#).then(|| {
                    if text.contains(r#""ok":true"#) {
                        number_after(text, r#""seq":"#).unwrap_or(-1)
                    } else {
                        -1
                    }
                }),
                Flavor::Baseline => mark_of_json(text).map(|m| m.seq),
            };
            if let Some(ack) = ack {
                if acks.send(ack).is_err() {
                    break;
                }
            }
        }
    });
    let mut written =
        Written { sent: [0; PHASES], started: [None; PHASES], failed: 0, final_seq: 0 };
    let mut in_flight = 0usize;
    let note = |ack: i64, written: &mut Written| {
        if ack >= 0 {
            written.final_seq = written.final_seq.max(ack);
        } else {
            written.failed += 1;
        }
    };
    let mut next_id = 1u64;
    let mut send = |phase: usize, written: &mut Written| {
        let now = Instant::now();
        written.started[phase].get_or_insert(now);
        written.sent[phase] += 1;
        let name = format!("lt-{phase}-{}", now.duration_since(epoch).as_micros());
        next_id += 1;
        make(next_id, &name)
    };

    let (count, rate) = paced;
    let mut every = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    for _ in 0..count {
        every.tick().await;
        sink.send(send(0, &mut written)?).await.context("writer send")?;
        in_flight += 1;
        while let Ok(ack) = acked.try_recv() {
            note(ack, &mut written);
            in_flight -= 1;
        }
    }
    let (duration, window) = saturate;
    if !duration.is_zero() {
        let settle = Instant::now() + Duration::from_secs(120);
        while in_flight > 0 && Instant::now() < settle {
            if let Ok(Some(ack)) = tokio::time::timeout(Duration::from_secs(1), acked.recv()).await
            {
                note(ack, &mut written);
                in_flight -= 1;
            }
        }
        while !caught_up() && Instant::now() < settle {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let until = Instant::now() + duration;
    while Instant::now() < until {
        while in_flight >= window.max(1) {
            let ack = tokio::time::timeout(Duration::from_secs(30), acked.recv())
                .await
                .context("no acknowledgement within 30 s")?
                .ok_or_else(|| anyhow!("the writer's socket closed"))?;
            note(ack, &mut written);
            in_flight -= 1;
        }
        sink.send(send(1, &mut written)?).await.context("writer send")?;
        in_flight += 1;
    }
    while in_flight > 0 {
        let ack = tokio::time::timeout(Duration::from_secs(30), acked.recv())
            .await
            .context("no acknowledgement within 30 s")?
            .ok_or_else(|| anyhow!("the writer's socket closed"))?;
        note(ack, &mut written);
        in_flight -= 1;
    }
    reader.abort();
    let _ = sink.close().await;
    Ok(written)
}

// ---------------------------------------------------------------------------------------------
// Opening many sockets

/// Opens `count` sockets with `open`, `concurrency` at a time, timing each; stops at the first
/// failure (answering how many were open and why).
async fn open_many<T: Send + 'static, F, Fut>(
    count: usize,
    concurrency: usize,
    open: F,
) -> (Vec<T>, Recorder, Option<String>)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
{
    let mut opened = Vec::with_capacity(count);
    let mut latency = Recorder::new();
    let mut tasks = JoinSet::new();
    let mut failure = None;
    let mut started = 0;
    while opened.len() < count && failure.is_none() {
        while started < count && tasks.len() < concurrency {
            let fut = open();
            tasks.spawn(async move {
                let began = Instant::now();
                let result = tokio::time::timeout(Duration::from_secs(60), fut).await;
                (began.elapsed(), result)
            });
            started += 1;
        }
        let Some(done) = tasks.join_next().await else { break };
        match done {
            Ok((took, Ok(Ok(socket)))) => {
                latency.record(took);
                opened.push(socket);
            }
            Ok((_, Ok(Err(err)))) => failure = Some(format!("{err:#}")),
            Ok((_, Err(_))) => failure = Some("opening a socket took over 60 s".into()),
            Err(err) => failure = Some(format!("an opening task failed: {err}")),
        }
    }
    if failure.is_some() {
        latency.record_error("open");
    }
    // Those still opening when one failed are kept too: they count as held.
    while let Some(done) = tasks.join_next().await {
        if let Ok((took, Ok(Ok(socket)))) = done {
            latency.record(took);
            opened.push(socket);
        }
    }
    (opened, latency, failure)
}

fn progress(scenario: &str, message: impl std::fmt::Display) {
    eprintln!("{scenario}: {message}");
}

fn ratio(ours: Option<f64>, baseline: Option<f64>) -> Option<f64> {
    match (ours, baseline) {
        (Some(ours), Some(base)) if base > 0.0 => Some((ours / base * 100.0).round() / 100.0),
        _ => None,
    }
}

fn show_ratio(ratio: Option<f64>) -> String {
    ratio.map(|r| format!("{r:.2}x")).unwrap_or_else(|| "n/a".into())
}

fn concurrency(common: &Common) -> usize {
    usize::try_from(common.open_concurrency).unwrap_or(256)
}

// ---------------------------------------------------------------------------------------------
// connections

/// What holding sockets came to, on one server.
#[derive(Debug, Serialize)]
struct Held {
    requested: usize,
    opened: usize,
    open_failure: Option<String>,
    open_secs: f64,
    opens_per_sec: f64,
    open_latency: Summary,
    alive_at_end: usize,
    rss_before_kib: Option<u64>,
    rss_held_kib: Option<u64>,
    rss_per_socket_kib: Option<f64>,
    ping_rtt: Summary,
}

/// Holds `ws` open, reading everything, until `stop`; with `ping`, sends a protocol ping every
/// second and times its reply. Answers whether the socket was still open, and the round trips.
async fn hold(mut ws: Ws, mut stop: watch::Receiver<bool>, ping: bool) -> (bool, Recorder) {
    let mut rtts = Recorder::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut outstanding: Option<Instant> = None;
    let mut id = 0u64;
    let alive = loop {
        tokio::select! {
            _ = stop.changed() => break true,
            _ = tick.tick(), if ping && outstanding.is_none() => {
                id += 1;
                let frame = format!(r#"{{"type":"ping","id":{id}}}"#);
                if ws.send(Message::Text(frame.into())).await.is_err() {
                    break false;
                }
                outstanding = Some(Instant::now());
            }
            message = ws.next() => match message {
                Some(Ok(Message::Close(_)) | Err(_)) | None => break false,
                Some(Ok(Message::Text(text))) if text.as_str().contains(r#""type":"reply""#) => {
                    if let Some(sent) = outstanding.take() {
                        rtts.record(sent.elapsed());
                    }
                }
                Some(Ok(_)) => {}
            },
        }
    };
    let _ = ws.close(None).await;
    (alive, rtts)
}

/// Opens `count` sockets with `open`, holds them for `hold_for`, and reads `pid`'s memory
/// before and while they are held.
async fn hold_many<F, Fut>(
    count: usize,
    concurrency: usize,
    hold_for: Duration,
    ping_sample: usize,
    pid: Option<u32>,
    open: F,
) -> Held
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Ws>> + Send + 'static,
{
    let rss_before = pid.and_then(rss_kib);
    let began = Instant::now();
    let (stop_tx, stop) = watch::channel(false);
    let pingers = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // Each socket is handed to its holding task as soon as it is open, so early sockets keep
    // answering heartbeats while later ones open.
    let (holders, open_latency, open_failure) = open_many(count, concurrency, || {
        let open = open();
        let stop = stop.clone();
        let pingers = Arc::clone(&pingers);
        async move {
            let ws = open.await?;
            let ping = pingers.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < ping_sample;
            Ok(tokio::spawn(hold(ws, stop, ping)))
        }
    })
    .await;
    let open_secs = began.elapsed().as_secs_f64();
    let opened = holders.len();
    // Let the server settle (buffers of the last handshakes freed) before reading its memory;
    // the figure is the largest seen while held.
    let deadline = Instant::now() + hold_for;
    let mut rss_held = None;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1).min(hold_for)).await;
        rss_held = rss_held.max(pid.and_then(rss_kib));
    }
    let _ = stop_tx.send(true);
    let mut alive = 0;
    let mut rtts = Recorder::new();
    for holder in holders {
        if let Ok((up, rec)) = holder.await {
            alive += usize::from(up);
            rtts.merge(rec);
        }
    }
    let rss_per_socket = match (rss_before, rss_held) {
        (Some(before), Some(held)) if opened > 0 => {
            Some(((held as f64 - before as f64) / opened as f64 * 100.0).round() / 100.0)
        }
        _ => None,
    };
    Held {
        requested: count,
        opened,
        open_failure,
        open_secs: (open_secs * 100.0).round() / 100.0,
        opens_per_sec: (opened as f64 / open_secs.max(f64::EPSILON) * 10.0).round() / 10.0,
        open_latency: open_latency.summary(),
        alive_at_end: alive,
        rss_before_kib: rss_before,
        rss_held_kib: rss_held,
        rss_per_socket_kib: rss_per_socket,
        ping_rtt: rtts.summary(),
    }
}

/// `connections`: how many authenticated, subscribed sockets are held, and what each costs the
/// server in memory, beside the bare baseline.
pub async fn connections(
    target: &Target,
    args: &ConnectionsArgs,
) -> anyhow::Result<ScenarioReport> {
    let name = "connections";
    let setup = Arc::new(Setup::create(&args.common, target.base_url()).await?);
    let mut cpu = PhaseMeter::new(target.server_pid(), target.database_name());
    // The baseline's phases, metered with its own process as the server.
    let mut base_cpu = PhaseMeter::new(None, None);
    let hold_for = Duration::from_secs(args.hold_secs);
    let concurrency = concurrency(&args.common);
    progress(name, format!("boardroom: opening {} sockets", args.connections));
    cpu.begin();
    let boardroom = hold_many(
        args.connections,
        concurrency,
        hold_for,
        args.ping_sample,
        target.server_pid(),
        || {
            let setup = Arc::clone(&setup);
            async move { Ok(setup.subscriber(None).await?.0.ws) }
        },
    )
    .await;
    cpu.end("boardroom");
    progress(
        name,
        format!(
            "boardroom: {} opened, {} alive at the end",
            boardroom.opened, boardroom.alive_at_end
        ),
    );

    let baseline = if args.common.no_baseline {
        None
    } else {
        let server = BaselineServer::start().await?;
        base_cpu = PhaseMeter::new(server.pid(), None);
        let dialer = Arc::new(Dialer::new(server.addr()));
        let url = server.url();
        progress(name, format!("baseline: opening {} sockets", args.connections));
        base_cpu.begin();
        let held = hold_many(args.connections, concurrency, hold_for, 0, server.pid(), || {
            let (dialer, url) = (Arc::clone(&dialer), url.clone());
            async move { dialer.websocket(url.as_str()).await }
        })
        .await;
        base_cpu.end("baseline");
        Some(held)
    };

    let mut table = Table::new();
    table.row(
        "boardroom: open + auth + subscribe",
        &boardroom.open_latency,
        Some(boardroom.opens_per_sec),
    );
    table.row("boardroom: ping round trip while held", &boardroom.ping_rtt, None);
    let mut headline = vec![format!(
        "boardroom: {} of {} sockets held ({} alive at the end); server RSS {} -> {} KiB, {} KiB per socket",
        boardroom.opened,
        boardroom.requested,
        boardroom.alive_at_end,
        show(boardroom.rss_before_kib),
        show(boardroom.rss_held_kib),
        show(boardroom.rss_per_socket_kib),
    )];
    if let Some(failure) = &boardroom.open_failure {
        headline.push(format!("boardroom: opening stopped: {failure}"));
    }
    if let Some(base) = &baseline {
        table.row("baseline: open", &base.open_latency, Some(base.opens_per_sec));
        headline.push(format!(
            "baseline: {} sockets held ({} alive); its RSS {} -> {} KiB, {} KiB per socket",
            base.opened,
            base.alive_at_end,
            show(base.rss_before_kib),
            show(base.rss_held_kib),
            show(base.rss_per_socket_kib),
        ));
        headline.push(format!(
            "ratios boardroom/baseline: RSS per socket {}, opens per second {}",
            show_ratio(ratio(boardroom.rss_per_socket_kib, base.rss_per_socket_kib)),
            show_ratio(ratio(Some(boardroom.opens_per_sec), Some(base.opens_per_sec))),
        ));
    }
    headline.push(format!(
        "target: 15,000 sockets at <= 16 KiB each: {}",
        match boardroom.rss_per_socket_kib {
            _ if boardroom.opened < 15_000 => "not tried at this size",
            Some(kib) if kib <= 16.0 => "met",
            Some(_) => "not met",
            None => "unknown (no RSS)",
        }
    ));
    let results = json!({
        "boardroom": boardroom,
        "baseline": baseline,
        "ratio_rss_per_socket": baseline.as_ref().and_then(|b| ratio(boardroom.rss_per_socket_kib, b.rss_per_socket_kib)),
        "open_file_limit": crate::net::raise_nofile_limit(),
        "cpu": {"boardroom": cpu.to_json(), "baseline": base_cpu.to_json()},
    });
    Ok(ScenarioReport {
        table,
        headline,
        warnings: [cpu.warnings(), base_cpu.warnings()].concat(),
        parameters: serde_json::to_value(args)?,
        results,
    })
}

fn show<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_else(|| "?".into())
}

// ---------------------------------------------------------------------------------------------
// fanout

/// One fan-out run on one server.
#[derive(Debug, Serialize)]
struct Fanned {
    subscribers: usize,
    open_failure: Option<String>,
    sent: [u64; PHASES],
    write_failures: u64,
    delivered: u64,
    gaps: u64,
    duplicates: u64,
    missing: u64,
    sockets_failed: u64,
    first_failure: Option<String>,
    paced: PhaseFigures,
    saturated: PhaseFigures,
    event_bytes: Option<usize>,
}

/// Latency and throughput of one writer phase.
#[derive(Debug, Serialize)]
struct PhaseFigures {
    latency: Summary,
    p999_ms: Option<f64>,
    deliveries_per_sec: Option<f64>,
}

impl PhaseFigures {
    fn of(latency: &Recorder, started: Option<Instant>, last: Option<Instant>) -> PhaseFigures {
        let summary = latency.summary();
        let rate = match (started, last) {
            (Some(start), Some(end)) if end > start => {
                Some((summary.count as f64 / (end - start).as_secs_f64()).round())
            }
            _ => None,
        };
        PhaseFigures {
            p999_ms: latency.quantile_ms(0.999),
            latency: summary,
            deliveries_per_sec: rate,
        }
    }
}

/// Runs the fan-out pattern: `subscribers` readers opened with `open` (each with the seq it
/// starts after), one writer from `writer`, paced then saturated.
async fn fan<F, Fut>(
    args: &FanoutArgs,
    open: F,
    writer: Ws,
    flavor: Flavor,
    make: impl Fn(u64, &str) -> anyhow::Result<Message>,
) -> anyhow::Result<Fanned>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(Ws, i64)>> + Send + 'static,
{
    let (sockets, _, open_failure) =
        open_many(args.subscribers, concurrency(&args.common), open).await;
    if let Some(failure) = &open_failure {
        bail!("only {} subscribers opened: {failure}", sockets.len());
    }
    let subscribers = sockets.len();
    let epoch = Instant::now();
    let (finish_tx, finish) = watch::channel::<Finish>(None);
    let delivered = Arc::new(AtomicU64::new(0));
    let mut readers = JoinSet::new();
    for (ws, after) in sockets {
        readers.spawn(read_until(ws, after, epoch, finish.clone(), Arc::clone(&delivered)));
    }
    let saturate = (Duration::from_secs(args.saturate_secs), args.window);
    let paced_total = (args.events * subscribers) as u64;
    let caught_up = || delivered.load(Ordering::Relaxed) >= paced_total;
    let written =
        write(writer, flavor, make, (args.events, args.rate), saturate, epoch, caught_up).await;
    // Readers get 60 s after the last acknowledgement to see every event.
    let final_seq = written.as_ref().map(|w| w.final_seq).unwrap_or(i64::MAX);
    let _ = finish_tx.send(Some((final_seq, Instant::now() + Duration::from_secs(60))));
    let mut tally = Tally::default();
    let mut sockets_failed = 0;
    while let Some(done) = readers.join_next().await {
        let one = done.context("a subscriber task failed")?;
        sockets_failed += u64::from(one.failed.is_some());
        tally.absorb(one);
    }
    let written = written?;
    Ok(Fanned {
        subscribers,
        open_failure,
        sent: written.sent,
        write_failures: written.failed,
        delivered: tally.delivered,
        gaps: tally.gaps,
        duplicates: tally.duplicates,
        missing: tally.missing,
        sockets_failed,
        first_failure: tally.failed,
        paced: PhaseFigures::of(&tally.latency[0], written.started[0], tally.last_at[0]),
        saturated: PhaseFigures::of(&tally.latency[1], written.started[1], tally.last_at[1]),
        event_bytes: tally.event_bytes,
    })
}

/// `fanout`: one writer, many subscribers of one board; delivery latency and deliveries per
/// second, paced and saturated, and exactly-once order, beside the bare baseline.
pub async fn fanout(target: &Target, args: &FanoutArgs) -> anyhow::Result<ScenarioReport> {
    let name = "fanout";
    let setup = Arc::new(Setup::create(&args.common, target.base_url()).await?);
    let mut cpu = PhaseMeter::new(target.server_pid(), target.database_name());
    // The baseline's phases, metered with its own process as the server.
    let mut base_cpu = PhaseMeter::new(None, None);
    progress(name, format!("boardroom: {} subscribers, then the writer", args.subscribers));
    cpu.begin();
    let writer = setup.connect(Encoding::Json).await?.ws;
    let (board, group) = (setup.board.clone(), setup.group.clone());
    let make = move |id: u64, name: &str| {
        let frame = json!({"type": "create_item", "id": id, "board_id": board, "group_id": group, "name": name});
        Ok(Message::Text(frame.to_string().into()))
    };
    let boardroom = fan(
        args,
        || {
            let setup = Arc::clone(&setup);
            async move {
                let (client, seq) = setup.subscriber(None).await?;
                Ok((client.ws, seq))
            }
        },
        writer,
        Flavor::Boardroom,
        make,
    )
    .await?;
    cpu.end("boardroom");
    progress(name, format!("boardroom: {} deliveries", boardroom.delivered));

    let baseline = if args.common.no_baseline {
        None
    } else {
        let server = BaselineServer::start().await?;
        base_cpu = PhaseMeter::new(server.pid(), None);
        let dialer = Arc::new(Dialer::new(server.addr()));
        let url = server.url();
        // The baseline's frames are padded to the size of Boardroom's events, so both servers
        // move the same bytes.
        let pad = "x".repeat(boardroom.event_bytes.unwrap_or(400).saturating_sub(60));
        let make = move |_: u64, name: &str| {
            Ok(Message::Text(format!(r#"{{"name":"{name}","pad":"{pad}"}}"#).into()))
        };
        progress(name, format!("baseline: {} subscribers, then the writer", args.subscribers));
        base_cpu.begin();
        let writer = dialer.websocket(url.as_str()).await?;
        let fanned = fan(
            args,
            || {
                let (dialer, url) = (Arc::clone(&dialer), url.clone());
                async move { Ok((dialer.websocket(url.as_str()).await?, 0)) }
            },
            writer,
            Flavor::Baseline,
            make,
        )
        .await?;
        base_cpu.end("baseline");
        Some(fanned)
    };

    let mut table = Table::new();
    let mut headline = Vec::new();
    let mut warnings = [cpu.warnings(), base_cpu.warnings()].concat();
    for (label, run) in [("boardroom", Some(&boardroom)), ("baseline", baseline.as_ref())] {
        let Some(run) = run else { continue };
        table.row(
            format!("{label}: paced {}/s x {} subscribers", args.rate, run.subscribers),
            &run.paced.latency,
            run.paced.deliveries_per_sec,
        );
        if args.saturate_secs > 0 {
            table.row(
                format!("{label}: saturated, window {}", args.window),
                &run.saturated.latency,
                run.saturated.deliveries_per_sec,
            );
        }
        headline.push(format!(
            "{label}: paced p50 {} p99 {} p999 {} at {} deliveries/s; saturated {} writes -> {} deliveries/s (p99 {}); gaps {} duplicates {} missing {} sockets lost {}",
            format_ms(run.paced.latency.p50_ms),
            format_ms(run.paced.latency.p99_ms),
            format_ms(run.paced.p999_ms),
            show(run.paced.deliveries_per_sec),
            run.sent[1],
            show(run.saturated.deliveries_per_sec),
            format_ms(run.saturated.latency.p99_ms),
            run.gaps,
            run.duplicates,
            run.missing,
            run.sockets_failed,
        ));
        if run.gaps + run.duplicates + run.missing + run.sockets_failed + run.write_failures > 0 {
            warnings.push(format!(
                "{label}: not exactly once: {} gaps, {} duplicates, {} missing, {} sockets lost ({}), {} failed writes",
                run.gaps, run.duplicates, run.missing, run.sockets_failed,
                run.first_failure.as_deref().unwrap_or("-"), run.write_failures
            ));
        }
    }
    if let Some(base) = &baseline {
        headline.push(format!(
            "ratios boardroom/baseline: paced p99 {}, saturated deliveries/s {}",
            show_ratio(ratio(boardroom.paced.latency.p99_ms, base.paced.latency.p99_ms)),
            show_ratio(ratio(
                boardroom.saturated.deliveries_per_sec,
                base.saturated.deliveries_per_sec
            )),
        ));
    }
    let results = json!({
        "boardroom": boardroom,
        "baseline": baseline,
        "ratio_paced_p99": baseline.as_ref().and_then(|b| ratio(boardroom.paced.latency.p99_ms, b.paced.latency.p99_ms)),
        "ratio_saturated_deliveries_per_sec": baseline.as_ref().and_then(|b| ratio(boardroom.saturated.deliveries_per_sec, b.saturated.deliveries_per_sec)),
        "cpu": {"boardroom": cpu.to_json(), "baseline": base_cpu.to_json()},
    });
    Ok(ScenarioReport {
        table,
        headline,
        warnings,
        parameters: serde_json::to_value(args)?,
        results,
    })
}

// ---------------------------------------------------------------------------------------------
// reconnect-storm

/// `reconnect-storm`: every subscriber drops, writes continue, every one resumes at once with
/// `after_seq` and must replay exactly what it missed; beside the baseline's bare reconnect.
pub async fn reconnect_storm(
    target: &Target,
    args: &ReconnectArgs,
) -> anyhow::Result<ScenarioReport> {
    let name = "reconnect-storm";
    let setup = Arc::new(Setup::create(&args.common, target.base_url()).await?);
    let mut cpu = PhaseMeter::new(target.server_pid(), target.database_name());
    // The baseline's phases, metered with its own process as the server.
    let mut base_cpu = PhaseMeter::new(None, None);
    let concurrency = concurrency(&args.common);
    progress(name, format!("boardroom: {} subscribers", args.subscribers));
    let (clients, _, failure) = open_many(args.subscribers, concurrency, || {
        let setup = Arc::clone(&setup);
        async move { setup.subscriber(None).await }
    })
    .await;
    if let Some(failure) = failure {
        bail!("only {} subscribers opened: {failure}", clients.len());
    }
    let positions: Vec<i64> = clients.iter().map(|(_, seq)| *seq).collect();
    drop(clients);
    // Written under the default per-socket frame limit (50/s), while everyone is away.
    let writer = setup.connect(Encoding::Json).await?.ws;
    let (board, group) = (setup.board.clone(), setup.group.clone());
    let make = move |id: u64, name: &str| {
        let frame = json!({"type": "create_item", "id": id, "board_id": board, "group_id": group, "name": name});
        Ok(Message::Text(frame.to_string().into()))
    };
    let written = write(
        writer,
        Flavor::Boardroom,
        make,
        (args.events_while_away, 40),
        (Duration::ZERO, 1),
        Instant::now(),
        || true,
    )
    .await?;
    let final_seq = written.final_seq;

    progress(name, "boardroom: the storm");
    cpu.begin();
    let started = Instant::now();
    let mut storm = JoinSet::new();
    for after in positions {
        let setup = Arc::clone(&setup);
        storm.spawn(async move {
            let began = Instant::now();
            let (mut client, _) = setup.subscriber(Some(after)).await?;
            let mut last = after;
            let (mut gaps, mut duplicates) = (0u64, 0u64);
            while last < final_seq {
                let event = client.next_event().await?;
                let seq = event["seq"].as_i64().unwrap_or(-1);
                if seq <= last {
                    duplicates += 1;
                } else {
                    gaps += u64::try_from(seq - last - 1).unwrap_or(0);
                    last = seq;
                }
            }
            anyhow::Ok((began.elapsed(), gaps, duplicates))
        });
    }
    let mut resumed = Recorder::new();
    let (mut gaps, mut duplicates, mut first_error) = (0u64, 0u64, None);
    while let Some(done) = storm.join_next().await {
        match done.context("a reconnecting task failed")? {
            Ok((took, g, d)) => {
                resumed.record(took);
                gaps += g;
                duplicates += d;
            }
            Err(err) => {
                resumed.record_error("resume");
                first_error.get_or_insert(format!("{err:#}"));
            }
        }
    }
    let storm_secs = started.elapsed().as_secs_f64();
    cpu.end("boardroom_storm");
    let resumed = resumed.summary();

    let baseline = if args.common.no_baseline {
        None
    } else {
        let server = BaselineServer::start().await?;
        base_cpu = PhaseMeter::new(server.pid(), None);
        let dialer = Arc::new(Dialer::new(server.addr()));
        let url = server.url();
        let (sockets, _, failure) = open_many(args.subscribers, concurrency, || {
            let (dialer, url) = (Arc::clone(&dialer), url.clone());
            async move { dialer.websocket(url.as_str()).await }
        })
        .await;
        if let Some(failure) = failure {
            bail!("only {} baseline sockets opened: {failure}", sockets.len());
        }
        let count = sockets.len();
        drop(sockets);
        base_cpu.begin();
        let started = Instant::now();
        let (_, latency, _) = open_many(count, count, || {
            let (dialer, url) = (Arc::clone(&dialer), url.clone());
            async move { dialer.websocket(url.as_str()).await }
        })
        .await;
        let secs = started.elapsed().as_secs_f64();
        base_cpu.end("baseline_storm");
        Some((latency.summary(), secs))
    };

    let mut table = Table::new();
    let rate = |count: u64, secs: f64| Some(count as f64 / secs.max(f64::EPSILON));
    table.row(
        format!("boardroom: reconnect + resume + replay {}", args.events_while_away),
        &resumed,
        rate(resumed.count, storm_secs),
    );
    let mut headline = vec![format!(
        "boardroom: {} of {} resumed in {storm_secs:.2} s, each replaying {} events: {gaps} gaps, {duplicates} duplicates{}",
        resumed.count,
        args.subscribers,
        args.events_while_away,
        first_error.as_deref().map(|e| format!("; first failure: {e}")).unwrap_or_default()
    )];
    let mut warnings = [cpu.warnings(), base_cpu.warnings()].concat();
    if gaps + duplicates + resumed.error_count() > 0 {
        warnings.push(format!(
            "boardroom: {gaps} gaps, {duplicates} duplicates, {} failed resumes",
            resumed.error_count()
        ));
    }
    if let Some((base, secs)) = &baseline {
        table.row("baseline: reconnect (no auth, no replay)", base, rate(base.count, *secs));
        headline.push(format!(
            "baseline: {} reconnected in {secs:.2} s; ratios boardroom/baseline: storm time {}, p99 {}",
            base.count,
            show_ratio(ratio(Some(storm_secs), Some(*secs))),
            show_ratio(ratio(resumed.p99_ms, base.p99_ms)),
        ));
    }
    let results = json!({
        "boardroom": {
            "resumed": resumed,
            "storm_secs": storm_secs,
            "events_replayed_each": args.events_while_away,
            "final_seq": final_seq,
            "gaps": gaps,
            "duplicates": duplicates,
            "first_failure": first_error,
        },
        "baseline": baseline.as_ref().map(|(s, secs)| json!({"reconnect": s, "storm_secs": secs})),
        "cpu": {"boardroom": cpu.to_json(), "baseline": base_cpu.to_json()},
    });
    Ok(ScenarioReport {
        table,
        headline,
        warnings,
        parameters: serde_json::to_value(args)?,
        results,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_marks_of_boardroom_and_baseline_events() {
        let boardroom = r#"{"type":"event","board_id":"0190","seq":42,"kind":"item.created","actor":"a","data":{"id":"b","name":"lt-1-123456","position":"a0"},"created_at":"x"}"#;
        assert_eq!(mark_of_json(boardroom), Some(EventMark { seq: 42, stamp: Some((1, 123_456)) }));
        let baseline = r#"{"type":"event","seq":7,"data":{"name":"lt-0-99","pad":"xxxx"}}"#;
        assert_eq!(mark_of_json(baseline), Some(EventMark { seq: 7, stamp: Some((0, 99)) }));
        assert_eq!(mark_of_json(r#"{"type":"reply","id":1,"ok":true,"seq":3}"#), None);
        assert_eq!(
            mark_of_json(r#"{"type":"event","seq":5,"data":{"name":"x"}}"#).map(|m| m.stamp),
            Some(None)
        );
    }

    #[tokio::test]
    async fn fanout_pattern_against_the_baseline_is_exactly_once() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(crate::baseline::serve(listener));
        let dialer = Arc::new(Dialer::new(addr));
        let url = format!("ws://{addr}/");
        let args = FanoutArgs {
            common: Common { encoding: "json".into(), open_concurrency: 4, no_baseline: true },
            subscribers: 5,
            events: 20,
            rate: 200,
            saturate_secs: 1,
            window: 4,
        };
        let writer = dialer.websocket(url.as_str()).await.unwrap();
        let fanned = fan(
            &args,
            || {
                let (dialer, url) = (Arc::clone(&dialer), url.clone());
                async move { Ok((dialer.websocket(url.as_str()).await?, 0)) }
            },
            writer,
            Flavor::Baseline,
            |_, name| Ok(Message::Text(format!(r#"{{"name":"{name}"}}"#).into())),
        )
        .await
        .unwrap();
        assert_eq!(fanned.sent[0], 20);
        assert!(fanned.sent[1] > 0);
        let total = (fanned.sent[0] + fanned.sent[1]) * 5;
        assert_eq!(fanned.delivered, total, "{fanned:?}");
        assert_eq!((fanned.gaps, fanned.duplicates, fanned.missing), (0, 0, 0));
        assert_eq!(fanned.paced.latency.count, 100);
        assert!(fanned.saturated.deliveries_per_sec.is_some());
    }
}
