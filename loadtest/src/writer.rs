//! The writer of the `fanout` and `reconnect-storm` scenarios ([`write`]), and the stamp it puts
//! in every item's name, which readers parse back cheaply ([`mark_of`]).
//!
//! The writer names each item `lt-<phase>-<µs>`, the microsecond (since the run's epoch) at
//! which it sent the command, so a subscriber's latency is from the writer's send to its own
//! receipt, both on this process's monotonic clock. The same writer drives Boardroom
//! (`create_item` commands, acknowledged by their reply) and the bare baseline (a bare frame,
//! acknowledged by its own broadcast coming back): see [`Flavor`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use boardroom_protocol::{Encoding, ServerFrame};
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::net::Ws;
use crate::stats::Recorder;

/// What a reader needs of an event frame: its `seq`, and the writer's stamp if the item name
/// carries one (`lt-<phase>-<µs>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventMark {
    pub seq: i64,
    pub stamp: Option<(usize, u64)>,
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

/// An event's mark from a frame of either encoding (MessagePack is decoded whole: only JSON is
/// read the cheap way).
pub fn mark_of(message: &Message) -> Option<EventMark> {
    match message {
        Message::Text(text) => mark_of_json(text.as_str()),
        Message::Binary(bytes) => {
            let ServerFrame::Event(event) = Encoding::MessagePack.decode(bytes).ok()? else {
                return None;
            };
            let stamp = event.data["name"].as_str().and_then(stamp_of);
            Some(EventMark { seq: event.seq, stamp })
        }
        _ => None,
    }
}

/// Writer phases: 0 is paced, 1 saturated.
pub const PHASES: usize = 2;

/// How the writer's commands are acknowledged.
#[derive(Debug, Clone, Copy)]
pub enum Flavor {
    /// Boardroom: `create_item` commands, acknowledged by their `reply` (with the event's seq).
    Boardroom,
    /// The baseline: a bare frame, acknowledged by its own broadcast coming back.
    Baseline,
}

/// What the writer did.
#[derive(Debug)]
pub struct Written {
    /// Commands sent per phase.
    pub sent: [u64; PHASES],
    /// When each phase's first command went out.
    pub started: [Option<Instant>; PHASES],
    /// Failed acknowledgements (Boardroom error replies).
    pub failed: u64,
    /// The highest seq acknowledged.
    pub final_seq: i64,
    /// Per phase, from each command's send to its acknowledgement's receipt: for Boardroom
    /// the reply after the commit, for the baseline its own broadcast coming back.
    pub acknowledged: [Recorder; PHASES],
}

/// Sends `paced` commands at `rate` per second, then keeps `window` commands in flight for
/// `saturate`. Each names its item after its phase and send time. Between the phases it waits
/// (up to two minutes) for every acknowledgement and for `caught_up`, so that a backlog of the
/// paced phase is not counted in the saturated one.
pub async fn write(
    ws: Ws,
    flavor: Flavor,
    make: impl Fn(u64, &str) -> anyhow::Result<Message>,
    paced: (usize, u32),
    saturate: (Duration, usize),
    epoch: Instant,
    caught_up: impl Fn() -> bool,
) -> anyhow::Result<Written> {
    let mut writer = Writer::start(ws, flavor, epoch);
    let (count, rate) = paced;
    writer.paced(0, count, rate, &make).await?;
    let (duration, window) = saturate;
    if !duration.is_zero() {
        writer.settle(&caught_up).await;
    }
    writer.saturate(1, duration, window, &make).await?;
    writer.finish().await
}

/// An acknowledgement as the writer's reader took it in: the `seq` acknowledged (-1 for a
/// failed command) and when it arrived.
struct Ack {
    seq: i64,
    at: Instant,
}

/// The stamped writer, one phase at a time: [`write`] is its usual sequence, and a scenario
/// with other phases (`login-flood`: paced, settle, paced again) calls the steps itself.
pub struct Writer {
    sink: futures::stream::SplitSink<Ws, Message>,
    acked: mpsc::UnboundedReceiver<Ack>,
    /// The phase and send time of each command not yet acknowledged, oldest first: both
    /// servers acknowledge one writer's commands in the order they were sent.
    unacknowledged: VecDeque<(usize, Instant)>,
    reader: tokio::task::JoinHandle<()>,
    written: Written,
    in_flight: usize,
    next_id: u64,
    epoch: Instant,
}

impl Writer {
    /// Takes over `ws`: its acknowledgements are read on their own task from now on, so the
    /// pacing of sends never waits on them.
    pub fn start(ws: Ws, flavor: Flavor, epoch: Instant) -> Writer {
        let (sink, mut stream) = ws.split();
        let (acks, acked) = mpsc::unbounded_channel::<Ack>();
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
                if let Some(seq) = ack {
                    if acks.send(Ack { seq, at: Instant::now() }).is_err() {
                        break;
                    }
                }
            }
        });
        Writer {
            sink,
            acked,
            reader,
            written: Written {
                sent: [0; PHASES],
                started: [None; PHASES],
                failed: 0,
                final_seq: 0,
                acknowledged: Default::default(),
            },
            unacknowledged: VecDeque::new(),
            in_flight: 0,
            next_id: 1,
            epoch,
        }
    }

    fn note(&mut self, Ack { seq, at }: Ack) {
        if let Some((phase, sent)) = self.unacknowledged.pop_front() {
            self.written.acknowledged[phase].record(at.saturating_duration_since(sent));
        }
        if seq >= 0 {
            self.written.final_seq = self.written.final_seq.max(seq);
        } else {
            self.written.failed += 1;
        }
        self.in_flight -= 1;
    }

    /// Sends one command of `phase`, named after its send time.
    async fn send(
        &mut self,
        phase: usize,
        make: &impl Fn(u64, &str) -> anyhow::Result<Message>,
    ) -> anyhow::Result<()> {
        let now = Instant::now();
        self.written.started[phase].get_or_insert(now);
        self.written.sent[phase] += 1;
        let name = format!("lt-{phase}-{}", now.duration_since(self.epoch).as_micros());
        self.next_id += 1;
        let frame = make(self.next_id, &name)?;
        self.unacknowledged.push_back((phase, now));
        self.sink.send(frame).await.context("writer send")?;
        self.in_flight += 1;
        Ok(())
    }

    /// Sends `count` commands of `phase` (below [`PHASES`]) at `rate` per second, taking in the
    /// acknowledgements that came meanwhile without waiting for any.
    pub async fn paced(
        &mut self,
        phase: usize,
        count: usize,
        rate: u32,
        make: &impl Fn(u64, &str) -> anyhow::Result<Message>,
    ) -> anyhow::Result<()> {
        let mut every =
            tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
        for _ in 0..count {
            every.tick().await;
            self.send(phase, make).await?;
            while let Ok(ack) = self.acked.try_recv() {
                self.note(ack);
            }
        }
        Ok(())
    }

    /// Waits (up to two minutes) for every acknowledgement, then for `caught_up`.
    pub async fn settle(&mut self, caught_up: &impl Fn() -> bool) {
        let settle = Instant::now() + Duration::from_secs(120);
        while self.in_flight > 0 && Instant::now() < settle {
            if let Ok(Some(ack)) =
                tokio::time::timeout(Duration::from_secs(1), self.acked.recv()).await
            {
                self.note(ack);
            }
        }
        while !caught_up() && Instant::now() < settle {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Keeps `window` commands of `phase` in flight for `duration`.
    pub async fn saturate(
        &mut self,
        phase: usize,
        duration: Duration,
        window: usize,
        make: &impl Fn(u64, &str) -> anyhow::Result<Message>,
    ) -> anyhow::Result<()> {
        let until = Instant::now() + duration;
        while Instant::now() < until {
            while self.in_flight >= window.max(1) {
                let ack = next_ack(&mut self.acked).await?;
                self.note(ack);
            }
            self.send(phase, make).await?;
        }
        Ok(())
    }

    /// Waits for the acknowledgements still due, closes the socket and answers what was done.
    pub async fn finish(mut self) -> anyhow::Result<Written> {
        while self.in_flight > 0 {
            let ack = next_ack(&mut self.acked).await?;
            self.note(ack);
        }
        self.reader.abort();
        let _ = self.sink.close().await;
        Ok(self.written)
    }
}

/// The next acknowledged `seq`, waiting at most 30 s: a writer whose window is full has
/// nothing to do but wait for one.
async fn next_ack(acked: &mut mpsc::UnboundedReceiver<Ack>) -> anyhow::Result<Ack> {
    tokio::time::timeout(Duration::from_secs(30), acked.recv())
        .await
        .context("no acknowledgement within 30 s")?
        .ok_or_else(|| anyhow!("the writer's socket closed"))
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
}
