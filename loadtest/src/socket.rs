//! The Boardroom side of the WebSocket scenarios: their shared options ([`Common`]), the board
//! they run on and who they run as ([`Setup`]), a protocol client ([`Client`]: `hello`,
//! requests and their replies, `subscribe`), and opening many sockets at once ([`open_many`]).
//!
//! Boardroom is driven as one registered user with one organization and one board, over
//! sockets authenticated with that user's token (`Authorization: Bearer`). Every socket is bound
//! to its own source address in 127.0.0.0/8 ([`Dialer`]) so ephemeral ports never run out.
//! Every socket is read continuously while held: tokio-tungstenite answers the server's
//! heartbeat pings only while the stream is polled.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use boardroom_protocol::boards::UpdateItem;
use boardroom_protocol::frames::{EventFrame, Reply, Subscribed};
use boardroom_protocol::{ClientFrame, ClientMessage, Encoding, RequestId, ServerFrame};
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::api::Api;
use crate::net::{Dialer, Ws};
use crate::stats::Recorder;

/// Options every WebSocket scenario takes.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct Common {
    /// Frame encoding of the subscribers: json or msgpack (the writer always speaks JSON).
    #[arg(long, default_value = "json")]
    pub(crate) encoding: String,
    /// Sockets opened at once while setting up (the rest wait for a slot).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub(crate) open_concurrency: u64,
    /// Skip the bare baseline (only Boardroom is measured; no ratios).
    #[arg(long)]
    pub(crate) no_baseline: bool,
}

/// The board the scenario runs on, and who it runs as.
pub struct Setup {
    url: String,
    token: String,
    pub board: String,
    pub group: String,
    encoding: Encoding,
    dialer: Dialer,
}

impl Setup {
    /// The writer's `create_item` request for item `name` in this set-up's group, as a JSON frame.
    pub fn create_item_frame(&self, id: u64, name: &str) -> anyhow::Result<Message> {
        let message = ClientMessage::CreateItem {
            board_id: self.board.clone(),
            body: boardroom_protocol::boards::CreateItem {
                group_id: self.group.parse()?,
                name: name.to_owned(),
                values: Default::default(),
                before: None,
                after: None,
            },
        };
        encode(Encoding::Json, id, message)
    }

    pub async fn create(common: &Common, base: &url::Url) -> anyhow::Result<Setup> {
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
            board: board.board.id.to_string(),
            group: board.groups.first().context("the board has no group")?.id.to_string(),
            encoding,
            dialer: Dialer::for_url(base)?,
        })
    }

    pub async fn connect(&self, encoding: Encoding) -> anyhow::Result<Client> {
        connect(&self.dialer, &self.url, &self.token, encoding).await
    }

    /// A socket subscribed to the board (from `after_seq`, if given), and the board's seq.
    pub async fn subscriber(&self, after_seq: Option<i64>) -> anyhow::Result<(Client, i64)> {
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
    match client.next_frame().await? {
        ServerFrame::Hello(_) => Ok(client),
        other => bail!("expected hello, got {other:?}"),
    }
}

/// A JSON socket authenticated as a bot with `token`, past its `hello`.
pub async fn bot_socket(dialer: &Dialer, base: &url::Url, token: &str) -> anyhow::Result<Ws> {
    Ok(connect(dialer, base.as_str(), token, Encoding::Json).await?.ws)
}

/// A JSON socket to the Boardroom at `base`, authenticated with `token` and subscribed to
/// `board`; answers it and the board's seq at subscription.
pub async fn subscribed_socket(
    dialer: &Dialer,
    base: &url::Url,
    token: &str,
    board: &str,
) -> anyhow::Result<(Ws, i64)> {
    let mut client = connect(dialer, base.as_str(), token, Encoding::Json).await?;
    let seq = client.subscribe(board, None).await?;
    Ok((client.ws, seq))
}

/// One protocol client.
pub struct Client {
    pub ws: Ws,
    encoding: Encoding,
    next_id: u64,
    pending: VecDeque<ServerFrame>,
}

impl Client {
    async fn next_frame(&mut self) -> anyhow::Result<ServerFrame> {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(30), self.ws.next())
                .await
                .context("no frame within 30 s")?
                .ok_or_else(|| anyhow!("connection ended"))??;
            return Ok(match message {
                Message::Text(text) => Encoding::Json.decode(text.as_bytes())?,
                Message::Binary(bytes) => Encoding::MessagePack.decode(&bytes)?,
                Message::Close(frame) => bail!("closed: {frame:?}"),
                _ => continue,
            });
        }
    }

    /// Sends `message` and waits for its reply, which must be a success.
    async fn request(&mut self, message: ClientMessage) -> anyhow::Result<Reply> {
        let id = self.next_id;
        self.next_id += 1;
        self.ws.send(encode(self.encoding, id, message)?).await?;
        loop {
            match self.next_frame().await? {
                ServerFrame::Reply(reply) if reply.id == Some(RequestId::Number(id)) => {
                    if let Some(error) = &reply.error {
                        bail!("request failed: {} ({})", error.code, error.message);
                    }
                    return Ok(reply);
                }
                frame => self.pending.push_back(frame),
            }
        }
    }

    pub async fn next_event(&mut self) -> anyhow::Result<EventFrame> {
        loop {
            let frame = match self.pending.pop_front() {
                Some(frame) => frame,
                None => self.next_frame().await?,
            };
            if let ServerFrame::Event(event) = frame {
                return Ok(event);
            }
        }
    }

    async fn subscribe(&mut self, board: &str, after_seq: Option<i64>) -> anyhow::Result<i64> {
        let message = ClientMessage::Subscribe { board_id: board.to_owned(), after_seq };
        let reply = self.request(message).await?;
        let data = reply.data.ok_or_else(|| anyhow!("a subscribe reply without data"))?;
        let subscribed: Subscribed =
            serde_json::from_value(data).context("a subscribe reply of another shape")?;
        if after_seq.is_some() && !subscribed.recovered {
            bail!("resumed without recovery (a snapshot instead): {}", subscribed.seq);
        }
        Ok(subscribed.seq)
    }
}

/// Encodes `message` as the client frame `id` in `encoding`: the one path by which the tool's
/// frames are made.
pub fn encode(encoding: Encoding, id: u64, message: ClientMessage) -> anyhow::Result<Message> {
    let bytes = encoding.encode(&ClientFrame { id: RequestId::Number(id), message })?;
    Ok(match encoding {
        Encoding::Json => Message::Text(String::from_utf8(bytes)?.into()),
        Encoding::MessagePack => Message::Binary(bytes.into()),
    })
}

/// `update_item` of `item` on `board` with the REST body `update`.
pub fn update_item(board: &str, item: &str, update: UpdateItem) -> ClientMessage {
    ClientMessage::UpdateItem { board_id: board.to_owned(), item_id: item.to_owned(), body: update }
}

/// Opens `count` sockets with `open`, `concurrency` at a time, timing each; stops at the first
/// failure (answering how many were open and why).
pub async fn open_many<T: Send + 'static, F, Fut>(
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

/// `--open-concurrency` as a count of sockets.
pub fn concurrency(common: &Common) -> usize {
    usize::try_from(common.open_concurrency).unwrap_or(256)
}
