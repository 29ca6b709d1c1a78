//! Scenario `connections`: how many authenticated, subscribed sockets are held, what each costs
//! the server in memory, and the protocol ping's round trip while they are held; each figure
//! beside the bare baseline of [`crate::baseline`] in the same run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::json;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::baseline::BaselineServer;
use crate::machine::PhaseMeter;
use crate::net::{rss_kib, Dialer, Ws};
use crate::socket::{concurrency, open_many, Common, Setup};
use crate::stats::{
    progress, ratio, show, show_ratio, CpuPer, Figure, Recorder, ScenarioReport, Summary, Table,
};
use crate::target::Target;

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
pub async fn run(target: &Target, args: &ConnectionsArgs) -> anyhow::Result<ScenarioReport> {
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
    let per_socket = |meter: &PhaseMeter, phase: &str, held: &Held| {
        meter
            .phase(phase)
            .and_then(|used| CpuPer::of(used, held.opened as u64, "socket (opened, held)", false))
    };
    let base = baseline.as_ref();
    let figures = vec![
        Figure::beside(
            format!("RSS per idle subscribed socket, {} sockets", args.connections),
            "KiB",
            boardroom.rss_per_socket_kib,
            "bare baseline",
            base.and_then(|b| b.rss_per_socket_kib),
        )
        .goal("≤ 8 KiB")
        .cpu(per_socket(&cpu, "boardroom", &boardroom)),
        Figure::beside(
            "sockets held",
            "",
            Some(boardroom.alive_at_end as f64),
            "requested",
            Some(boardroom.requested as f64),
        ),
    ];
    Ok(ScenarioReport {
        table,
        headline,
        warnings: [cpu.warnings(), base_cpu.warnings()].concat(),
        parameters: serde_json::to_value(args)?,
        results,
        figures,
    })
}
