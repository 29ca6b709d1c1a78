//! Scenario `fanout`: many subscribers of one board, one writer; event latency and deliveries
//! per second, paced and saturated, and exactly-once delivery, beside the bare baseline of
//! [`crate::baseline`] in the same run.
//!
//! Subscribers check each event's `seq`: one more than the last is a delivery, more is a gap,
//! less or equal a duplicate. Latency is from the writer's stamp (see [`crate::writer`]) to the
//! subscriber's receipt.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use boardroom_protocol::Encoding;
use serde::Serialize;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::baseline::BaselineServer;
use crate::machine::PhaseMeter;
use crate::net::{Dialer, Ws};
use crate::socket::{concurrency, open_many, Common, Setup};
use crate::stats::{
    format_ms, progress, ratio, show, show_ratio, CpuPer, Figure, Recorder, ScenarioReport,
    Summary, Table,
};
use crate::target::Target;
use crate::writer::{mark_of, Flavor, Writer, PHASES};

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

/// What one subscriber saw (and, absorbed, what all of them saw). Shared with `login-flood`.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) latency: [Recorder; PHASES],
    pub(crate) last_at: [Option<Instant>; PHASES],
    pub(crate) delivered: u64,
    pub(crate) gaps: u64,
    pub(crate) duplicates: u64,
    /// Events never received (after the last one seen, until the writer's last).
    pub(crate) missing: u64,
    /// Why the socket ended early, if it did.
    pub(crate) failed: Option<String>,
    /// Size of the first event frame, to make the baseline's frames as big.
    pub(crate) event_bytes: Option<usize>,
}

impl Tally {
    pub(crate) fn absorb(&mut self, other: Tally) {
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
use crate::net::Finish;

/// Reads events on `ws` after `last` until the writer's last `seq` (from `finish`) arrived or
/// its deadline passed, counting gaps and duplicates and timing stamped events.
pub(crate) async fn read_until(
    mut ws: Ws,
    mut last: i64,
    epoch: Instant,
    mut finish: watch::Receiver<Finish>,
    delivered: Arc<AtomicU64>,
) -> Tally {
    let mut tally = Tally::default();
    loop {
        let message = match crate::net::next_before(&mut ws, last, &mut finish).await {
            crate::net::Next::Done { missing } => {
                tally.missing = missing;
                break;
            }
            crate::net::Next::Message(message) => message,
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
    /// The writer's commands, from send to acknowledgement: how much of a delivery's latency
    /// the write path took before the fan-out began.
    acknowledged: Summary,
    p999_ms: Option<f64>,
    deliveries_per_sec: Option<f64>,
}

impl PhaseFigures {
    fn of(
        latency: &Recorder,
        acknowledged: &Recorder,
        started: Option<Instant>,
        last: Option<Instant>,
    ) -> PhaseFigures {
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
            acknowledged: acknowledged.summary(),
            deliveries_per_sec: rate,
        }
    }
}

/// Runs the fan-out pattern: `subscribers` readers opened with `open` (each with the seq it
/// starts after), one writer from `writer`, paced then saturated.
async fn fan<F, Fut>(
    args: &FanoutArgs,
    cpu: &mut PhaseMeter,
    open: F,
    writer: Ws,
    flavor: Flavor,
    make: impl Fn(u64, &str) -> anyhow::Result<Message>,
) -> anyhow::Result<Fanned>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(Ws, i64)>> + Send + 'static,
{
    cpu.begin();
    let (sockets, _, open_failure) =
        open_many(args.subscribers, concurrency(&args.common), open).await;
    cpu.end("open");
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
    let paced_total = (args.events * subscribers) as u64;
    let caught_up = || delivered.load(Ordering::Relaxed) >= paced_total;
    // The steps of `writer::write`, metered apart: the paced phase until its events are all
    // delivered, the saturated one until the readers are done.
    let written = async {
        let mut writer = Writer::start(writer, flavor, epoch);
        cpu.begin();
        writer.paced(0, args.events, args.rate, &make).await?;
        writer.settle(&caught_up).await;
        cpu.end("paced");
        cpu.begin();
        let saturate = Duration::from_secs(args.saturate_secs);
        writer.saturate(1, saturate, args.window, &make).await?;
        writer.finish().await
    }
    .await;
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
    if args.saturate_secs > 0 {
        cpu.end("saturated");
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
        paced: PhaseFigures::of(
            &tally.latency[0],
            &written.acknowledged[0],
            written.started[0],
            tally.last_at[0],
        ),
        saturated: PhaseFigures::of(
            &tally.latency[1],
            &written.acknowledged[1],
            written.started[1],
            tally.last_at[1],
        ),
        event_bytes: tally.event_bytes,
    })
}

/// `fanout`: one writer, many subscribers of one board; delivery latency and deliveries per
/// second, paced and saturated, and exactly-once order, beside the bare baseline.
pub async fn run(target: &Target, args: &FanoutArgs) -> anyhow::Result<ScenarioReport> {
    let name = "fanout";
    let setup = Arc::new(Setup::create(&args.common, target.base_url()).await?);
    let mut cpu = PhaseMeter::new(target.server_pid(), target.database_name());
    // The baseline's phases, metered with its own process as the server.
    let mut base_cpu = PhaseMeter::new(None, None);
    progress(name, format!("boardroom: {} subscribers, then the writer", args.subscribers));
    let writer = setup.connect(Encoding::Json).await?.ws;
    let make = {
        let setup = Arc::clone(&setup);
        move |id: u64, name: &str| setup.create_item_frame(id, name)
    };
    let boardroom = fan(
        args,
        &mut cpu,
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
        let writer = dialer.websocket(url.as_str()).await?;
        let fanned = fan(
            args,
            &mut base_cpu,
            || {
                let (dialer, url) = (Arc::clone(&dialer), url.clone());
                async move { Ok((dialer.websocket(url.as_str()).await?, 0)) }
            },
            writer,
            Flavor::Baseline,
            make,
        )
        .await?;
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
            "{label}: paced p50 {} p99 {} p999 {} at {} deliveries/s (writes acknowledged: p50 {} p99 {}); saturated {} writes -> {} deliveries/s (p99 {}); gaps {} duplicates {} missing {} sockets lost {}",
            format_ms(run.paced.latency.p50_ms),
            format_ms(run.paced.latency.p99_ms),
            format_ms(run.paced.p999_ms),
            show(run.paced.deliveries_per_sec),
            format_ms(run.paced.acknowledged.p50_ms),
            format_ms(run.paced.acknowledged.p99_ms),
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
    let per_delivery = |meter: &PhaseMeter, phase: &str, figures: &PhaseFigures| {
        meter
            .phase(phase)
            .and_then(|used| CpuPer::of(used, figures.latency.count, "delivery", false))
    };
    let base = baseline.as_ref();
    let mut figures = vec![Figure::beside(
        format!("paced p99, {}/s to {} subscribers", args.rate, args.subscribers),
        "ms",
        boardroom.paced.latency.p99_ms,
        "bare baseline p99",
        base.and_then(|b| b.paced.latency.p99_ms),
    )
    .goal("≤ 1.00×")
    .cpu(per_delivery(&cpu, "paced", &boardroom.paced))];
    if args.saturate_secs > 0 {
        figures.push(
            Figure::beside(
                format!("saturated deliveries/s, window {}", args.window),
                "/s",
                boardroom.saturated.deliveries_per_sec,
                "bare baseline",
                base.and_then(|b| b.saturated.deliveries_per_sec),
            )
            .goal("server ≤ 3 µs per delivery")
            .cpu(per_delivery(&cpu, "saturated", &boardroom.saturated)),
        );
        if let Some(base) = base {
            figures.push(
                Figure::alone(
                    format!("bare baseline: saturated deliveries/s, window {}", args.window),
                    "/s",
                    base.saturated.deliveries_per_sec,
                )
                .cpu(per_delivery(&base_cpu, "saturated", &base.saturated)),
            );
        }
    }
    figures.push(
        Figure::alone(
            "deliveries not exactly once (gaps + duplicates + missing + sockets lost)",
            "",
            Some(
                (boardroom.gaps
                    + boardroom.duplicates
                    + boardroom.missing
                    + boardroom.sockets_failed) as f64,
            ),
        )
        .goal("0"),
    );
    Ok(ScenarioReport {
        table,
        headline,
        warnings,
        parameters: serde_json::to_value(args)?,
        results,
        figures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
            &mut PhaseMeter::new(None, None),
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
        // Every command's acknowledgement is timed, in the phase it was sent in.
        assert_eq!(fanned.paced.acknowledged.count, 20);
        assert_eq!(fanned.saturated.acknowledged.count, fanned.sent[1]);
        assert!(fanned.saturated.deliveries_per_sec.is_some());
    }
}
