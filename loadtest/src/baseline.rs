//! The bare baseline: the least a WebSocket broadcast server can do, measured in the same run as
//! Boardroom so Boardroom's figures can be given as ratios to it.
//!
//! [`serve`] is a tokio-tungstenite accept loop with no authentication, no subscriptions and no
//! persistence: every text frame a client sends is numbered, encoded once as an event frame
//! (`{"type":"event","seq":N,"data":<the client's frame>}`) and put on a
//! `tokio::sync::broadcast` channel; one task per connection writes each frame to its socket.
//! The frames look like Boardroom's events to the readers of `fanout.rs` and `writer.rs`, so the very same
//! subscriber and writer code drives both servers.
//!
//! It runs in a child process of this tool (the hidden `baseline-server` subcommand), for the
//! same reasons Boardroom does: its memory can be read apart from the load generator's, its CPU
//! is its own, and the sockets' two ends do not share one process's open-file limit (15,000
//! sockets held in one process would be 30,000 descriptors, over the 20,000 allowed here).

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;

use crate::net::small_buffers;

/// Frames the broadcast channel keeps for a slow connection before it skips ahead (a reader
/// then sees a gap, which the scenario counts).
const BACKLOG: usize = 16_384;

/// Serves the baseline on `listener` until the process ends.
pub async fn serve(listener: TcpListener) -> anyhow::Result<()> {
    let (frames, _) = broadcast::channel::<Message>(BACKLOG);
    let seq = Arc::new(AtomicI64::new(0));
    loop {
        let (stream, _) = listener.accept().await.context("accept")?;
        tokio::spawn(connection(stream, frames.clone(), Arc::clone(&seq)));
    }
}

async fn connection(stream: TcpStream, frames: broadcast::Sender<Message>, seq: Arc<AtomicI64>) {
    let _ = stream.set_nodelay(true);
    // Subscribed before the handshake completes, so a client that has its 101 answer sees
    // every frame broadcast afterwards.
    let mut outbound = frames.subscribe();
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(small_buffers())).await
    else {
        return;
    };
    let (mut sink, mut inbound) = ws.split();
    loop {
        tokio::select! {
            frame = outbound.recv() => match frame {
                // A clone of a text message shares its bytes: encoded once for everyone.
                Ok(frame) => {
                    if sink.send(frame).await.is_err() {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
            },
            // Reading also answers WebSocket pings (tungstenite queues the pong and flushes it).
            message = inbound.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    // The sequence is taken and the frame sent under no lock: two writers could
                    // interleave, but the scenarios have one.
                    let n = seq.fetch_add(1, Ordering::Relaxed) + 1;
                    let event = format!(r#"{{"type":"event","seq":{n},"data":{}}}"#, text.as_str());
                    let _ = frames.send(Message::Text(event.into()));
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Entry point of the hidden `baseline-server` subcommand: serves on a free loopback port,
/// prints `listening <addr>` on stdout, and exits when stdin closes (when its parent goes).
pub async fn child_main() -> anyhow::Result<()> {
    crate::net::raise_nofile_limit();
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.context("bind 127.0.0.1:0")?;
    println!("listening {}", listener.local_addr()?);
    let mut stdin = tokio::io::stdin();
    let mut sink = [0u8; 64];
    tokio::select! {
        served = serve(listener) => served,
        _ = async { while matches!(stdin.read(&mut sink).await, Ok(n) if n > 0) {} } => Ok(()),
    }
}

/// A baseline server running in a child process of this tool. Dropping it kills the child.
pub struct BaselineServer {
    child: Child,
    addr: SocketAddr,
}

impl BaselineServer {
    /// Starts `<this binary> baseline-server` and waits for its address.
    pub async fn start() -> anyhow::Result<BaselineServer> {
        let exe = std::env::current_exe().context("cannot locate this tool's binary")?;
        let mut child = Command::new(exe)
            .arg("baseline-server")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start the baseline server")?;
        let stdout = child.stdout.take().context("no stdout from the baseline server")?;
        let mut line = String::new();
        let mut stdout = BufReader::new(stdout);
        let read = stdout.read_line(&mut line);
        tokio::time::timeout(std::time::Duration::from_secs(10), read)
            .await
            .context("the baseline server did not start within 10 s")??;
        let Some(addr) = line.trim().strip_prefix("listening ") else {
            bail!("the baseline server said {line:?}");
        };
        let addr = addr.parse().with_context(|| format!("bad baseline address {addr}"))?;
        Ok(BaselineServer { child, addr })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its `ws://` URL.
    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// Its process id, for its memory.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn broadcasts_numbered_frames_to_every_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener));
        let dialer = crate::net::Dialer::new(addr);
        let url = format!("ws://{addr}/");
        let mut a = dialer.websocket(url.as_str()).await.unwrap();
        let mut b = dialer.websocket(url.as_str()).await.unwrap();
        // Let the server subscribe both connections before anything is broadcast.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        a.send(Message::Text(r#"{"name":"x"}"#.into())).await.unwrap();
        for ws in [&mut a, &mut b] {
            let Some(Ok(Message::Text(text))) = ws.next().await else { panic!("no frame") };
            assert_eq!(text.as_str(), r#"{"type":"event","seq":1,"data":{"name":"x"}}"#);
        }
    }
}
