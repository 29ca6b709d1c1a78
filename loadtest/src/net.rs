//! Socket plumbing shared by the WebSocket scenarios and the bare baseline: source addresses
//! spread over 127.0.0.0/8, the open-file limit, and a process's resident memory.
//!
//! One source address has about 28,000 ephemeral ports towards one server port, and a port
//! lingers in TIME_WAIT after a close; a reconnect storm of thousands of sockets would exhaust
//! them. Every loopback address is a different source, so sockets are bound round-robin to
//! 127.0.0.2 … 127.0.0.254 before they connect.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::WebSocketStream;

/// A client WebSocket over a plain loopback TCP stream.
pub type Ws = WebSocketStream<TcpStream>;

/// Source addresses used: 127.0.0.2 ..= 127.0.0.254.
const SOURCES: usize = 253;

/// Opens loopback WebSockets to one server, each from the next source address.
#[derive(Debug)]
pub struct Dialer {
    server: SocketAddr,
    next: AtomicUsize,
}

impl Dialer {
    /// A dialer for the server at `server` (a loopback address).
    pub fn new(server: SocketAddr) -> Dialer {
        Dialer { server, next: AtomicUsize::new(0) }
    }

    /// A dialer for the host and port of `url`.
    pub fn for_url(url: &url::Url) -> anyhow::Result<Dialer> {
        let addrs =
            url.socket_addrs(|| Some(80)).with_context(|| format!("cannot resolve {url}"))?;
        let server = addrs
            .into_iter()
            .find(SocketAddr::is_ipv4)
            .with_context(|| format!("{url} has no IPv4 address"))?;
        Ok(Dialer::new(server))
    }

    /// A TCP connection to the server from the next source address.
    pub async fn tcp(&self) -> anyhow::Result<TcpStream> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % SOURCES;
        // `i < 253`, so the octet is 2..=254.
        let source = Ipv4Addr::new(127, 0, 0, 2 + i as u8);
        let socket = TcpSocket::new_v4().context("cannot create a socket")?;
        socket
            .bind(SocketAddr::from((source, 0)))
            .with_context(|| format!("cannot bind {source}"))?;
        let stream = socket.connect(self.server).await.context("connect")?;
        // Frames are small and latency is measured: no Nagle delay.
        stream.set_nodelay(true).context("TCP_NODELAY")?;
        Ok(stream)
    }

    /// A WebSocket handshake for `request` over a fresh connection.
    pub async fn websocket(&self, request: impl IntoClientRequest + Unpin) -> anyhow::Result<Ws> {
        let stream = self.tcp().await?;
        let (ws, _) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(small_buffers()))
                .await
                .context("WebSocket handshake")?;
        Ok(ws)
    }
}

/// Buffers for many idle sockets: tungstenite allocates its read buffer eagerly (128 KiB by
/// default), which for 15,000 sockets would be 1.9 GiB in this tool alone. Writes go out at
/// once (each frame is flushed anyway).
pub fn small_buffers() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0)
}

/// Raises this process's soft open-file limit to its hard limit and answers the new soft limit.
/// A process started afterwards (the managed server) inherits it, but it is a process of its
/// own with its own limit.
#[cfg(unix)]
pub fn raise_nofile_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = Rlimit { current: limit.maximum, maximum: limit.maximum };
        if let Err(err) = setrlimit(Resource::Nofile, raised) {
            eprintln!("warning: cannot raise the open-file limit: {err}");
        }
    }
    getrlimit(Resource::Nofile).current
}

/// Elsewhere there is nothing to raise here.
#[cfg(not(unix))]
pub fn raise_nofile_limit() -> Option<u64> {
    None
}

/// `VmRSS` of process `pid` in KiB, from `/proc/<pid>/status` (Linux).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// When a subscriber's reading ends: the `seq` of the writer's last event, once known, and the
/// moment to give up waiting for it.
pub type Finish = Option<(i64, std::time::Instant)>;

/// What a subscriber's read loop gets next.
pub enum Next {
    /// A message (or the connection's end).
    Message(
        Option<
            Result<tokio_tungstenite::tungstenite::Message, tokio_tungstenite::tungstenite::Error>,
        >,
    ),
    /// Reading is over: everything up to the last event arrived (`missing` 0), or the deadline
    /// passed with `missing` events not received.
    Done {
        /// Events after `last` that never came.
        missing: u64,
    },
}

/// The next message on `ws` for a subscriber that has received up to `last`, unless `finish`
/// says reading is over; wakes now and then to look at the deadline. Shared by the scenarios
/// that count deliveries (`fanout`, `cluster`).
pub async fn next_before(
    ws: &mut Ws,
    last: i64,
    finish: &mut tokio::sync::watch::Receiver<Finish>,
) -> Next {
    use futures::StreamExt;
    loop {
        let until = *finish.borrow();
        if let Some((final_seq, give_up)) = until {
            if last >= final_seq {
                return Next::Done { missing: 0 };
            }
            if std::time::Instant::now() >= give_up {
                return Next::Done { missing: u64::try_from(final_seq - last).unwrap_or(0) };
            }
        }
        tokio::select! {
            message = ws.next() => return Next::Message(message),
            _ = finish.changed() => {}
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_rss() {
        let status = "Name:\tboardroom\nVmPeak:\t  99 kB\nVmRSS:\t   12345 kB\nThreads:\t4\n";
        assert_eq!(parse_vm_rss(status), Some(12345));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
    }

    #[tokio::test]
    async fn dialer_spreads_source_addresses() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dialer = Dialer::new(listener.local_addr().unwrap());
        let accept = tokio::spawn(async move {
            let mut peers = Vec::new();
            for _ in 0..3 {
                peers.push(listener.accept().await.unwrap().1.ip());
            }
            peers
        });
        let mut streams = Vec::new();
        for _ in 0..3 {
            streams.push(dialer.tcp().await.unwrap());
        }
        let peers = accept.await.unwrap();
        assert_eq!(peers.len(), 3);
        assert!(peers.iter().all(|ip| ip.is_loopback()));
        let mut distinct = peers.clone();
        distinct.dedup();
        assert_eq!(distinct.len(), 3, "{peers:?}");
    }
}
