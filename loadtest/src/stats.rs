//! Latency samples, their summaries, and the two ways a run is reported: a table for people and
//! a JSON file for machines.
//!
//! Samples are kept whole (one `u64` of microseconds each) and sorted once when summarized, so
//! percentiles are exact rather than bucketed; the runs this tool makes record at most a few
//! hundred thousand requests. Percentiles use the nearest-rank method: p99 of 50 samples is the
//! largest sample, which the table makes visible by printing the sample count beside it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use crate::machine::CpuUse;

/// Latencies of successful requests and counts of failed ones, for one measurement.
// Serialized whole by the `cluster` scenario's client processes, which hand their samples back.
#[derive(Debug, Default, Clone, Serialize, serde::Deserialize)]
pub struct Recorder {
    latencies_us: Vec<u64>,
    errors: BTreeMap<String, u64>,
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one successful request that took `latency`.
    pub fn record(&mut self, latency: Duration) {
        self.latencies_us.push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
    }

    /// Records one failed request; `kind` says how it failed (an HTTP status such as `"503"`,
    /// or a scenario's own label).
    pub fn record_error(&mut self, kind: impl Into<String>) {
        *self.errors.entry(kind.into()).or_default() += 1;
    }

    /// Adds every sample and error of `other`.
    pub fn merge(&mut self, other: Recorder) {
        self.latencies_us.extend(other.latencies_us);
        for (kind, count) in other.errors {
            *self.errors.entry(kind).or_default() += count;
        }
    }

    /// The `q` quantile of the successful requests' latencies, in milliseconds (for p99.9,
    /// which [`Summary`] leaves out).
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        percentile(&sorted, q).map(|us| round3(us as f64 / 1000.0))
    }

    /// Successful requests recorded.
    pub fn ok_count(&self) -> u64 {
        self.latencies_us.len() as u64
    }

    /// The summary of everything recorded so far.
    pub fn summary(&self) -> Summary {
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        let ms = |us: Option<u64>| us.map(|us| round3(us as f64 / 1000.0));
        let mean = if sorted.is_empty() {
            None
        } else {
            let total: u128 = sorted.iter().map(|&us| u128::from(us)).sum();
            Some(round3(total as f64 / sorted.len() as f64 / 1000.0))
        };
        Summary {
            count: sorted.len() as u64,
            errors: self.errors.clone(),
            min_ms: ms(sorted.first().copied()),
            mean_ms: mean,
            p50_ms: ms(percentile(&sorted, 0.50)),
            p90_ms: ms(percentile(&sorted, 0.90)),
            p99_ms: ms(percentile(&sorted, 0.99)),
            max_ms: ms(sorted.last().copied()),
            histogram: histogram(&sorted),
        }
    }
}

/// The `q` quantile (0 < q ≤ 1) of ascending `sorted` by the nearest-rank method: the smallest
/// sample with at least `q` of all samples at or below it. `None` when there are no samples.
pub fn percentile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let q = q.clamp(0.0, 1.0);
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// One bucket of the latency histogram: `count` samples above the previous bucket's bound and
/// at most `le_us` microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Bucket {
    /// Upper bound of the bucket, in microseconds (a power of two).
    pub le_us: u64,
    /// Samples in the bucket.
    pub count: u64,
}

/// Power-of-two buckets over ascending `sorted`; empty buckets are left out.
pub fn histogram(sorted: &[u64]) -> Vec<Bucket> {
    let mut buckets: Vec<Bucket> = Vec::new();
    for &us in sorted {
        let le_us = us.max(1).checked_next_power_of_two().unwrap_or(u64::MAX);
        match buckets.last_mut() {
            Some(last) if last.le_us == le_us => last.count += 1,
            _ => buckets.push(Bucket { le_us, count: 1 }),
        }
    }
    buckets
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// What one measurement came to. Latencies are of successful requests, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Successful requests.
    pub count: u64,
    /// Failed requests by how they failed (HTTP status or a scenario's label).
    pub errors: BTreeMap<String, u64>,
    /// Fastest.
    pub min_ms: Option<f64>,
    /// Arithmetic mean.
    pub mean_ms: Option<f64>,
    /// Median.
    pub p50_ms: Option<f64>,
    /// 90th percentile.
    pub p90_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// Slowest.
    pub max_ms: Option<f64>,
    /// Power-of-two latency buckets.
    pub histogram: Vec<Bucket>,
}

impl Summary {
    /// Failed requests, all kinds together.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Where and on what a run happened; written into every JSON report.
#[derive(Debug, Clone, Serialize)]
pub struct Environment {
    /// Cores this process may use (the server shares them when it runs on the same machine).
    pub cores: usize,
    /// `std::env::consts::OS`.
    pub os: &'static str,
    /// `std::env::consts::ARCH`.
    pub arch: &'static str,
    /// The server's database backend, as its `/readyz` names it.
    pub backend: String,
    /// The server's base URL.
    pub target_url: String,
    /// Whether this tool started the server itself.
    pub managed_server: bool,
    /// bcrypt threads of the server, when this tool started it.
    pub server_bcrypt_threads: Option<u32>,
    /// The server binary, when this tool started it.
    pub server_binary: Option<String>,
    /// When that binary was last modified (RFC 3339, UTC): a stale build shows here.
    pub server_binary_modified: Option<String>,
    /// `/proc/loadavg` (1, 5, 15 minutes) before the run: other work on the machine shows here.
    pub load_average_before: Option<[f64; 3]>,
    /// `/proc/loadavg` after the run.
    pub load_average_after: Option<[f64; 3]>,
    /// Whether this tool was built with optimizations.
    pub loadtest_release_build: bool,
    /// This tool's version.
    pub loadtest_version: &'static str,
    /// When the run started (RFC 3339, UTC).
    pub started_at: String,
}

/// One key figure of a scenario, as `boardroom-loadtest all` collects it: the figure, its
/// baseline measured in the same run (pgbench, the bare baseline server, a quiet phase), their
/// ratio, and what a unit of the work cost in CPU.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figure {
    /// What it is, stable across runs (no measured number in it): "WebSocket hot-board
    /// updates/s".
    pub figure: String,
    /// Its unit: `/s`, `ms`, `KiB`, `s`.
    pub unit: String,
    /// The figure.
    pub value: Option<f64>,
    /// What the baseline is ("pgbench tps", "bare baseline", "quiet phase"); empty for none.
    pub baseline_label: String,
    /// The baseline's figure, in the same unit.
    pub baseline: Option<f64>,
    /// value / baseline.
    pub ratio: Option<f64>,
    /// The goal for the ratio or the value, as text ("≤ 1.20×").
    pub goal: Option<String>,
    /// CPU per unit of work, where the scenario metered it.
    pub cpu: Option<CpuPer>,
}

impl Figure {
    /// A figure with no baseline.
    pub fn alone(figure: impl Into<String>, unit: &str, value: Option<f64>) -> Figure {
        Figure {
            figure: figure.into(),
            unit: unit.to_owned(),
            value,
            baseline_label: String::new(),
            baseline: None,
            ratio: None,
            goal: None,
            cpu: None,
        }
    }

    /// A figure beside its baseline `baseline_label`, with their ratio.
    pub fn beside(
        figure: impl Into<String>,
        unit: &str,
        value: Option<f64>,
        baseline_label: &str,
        baseline: Option<f64>,
    ) -> Figure {
        Figure {
            baseline_label: baseline_label.to_owned(),
            baseline,
            ratio: ratio(value, baseline),
            ..Figure::alone(figure, unit, value)
        }
    }

    /// With the goal `goal`.
    pub fn goal(mut self, goal: &str) -> Figure {
        self.goal = Some(goal.to_owned());
        self
    }

    /// With the CPU per unit of work `cpu`.
    pub fn cpu(mut self, cpu: Option<CpuPer>) -> Figure {
        self.cpu = cpu;
        self
    }
}

/// CPU microseconds per unit of work (an acknowledged update, a delivery, a socket), split by
/// who spent them, from one phase of a scenario's `cpu` record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CpuPer {
    /// The unit of work: "acknowledged update", "delivery".
    pub per: String,
    /// The server's µs.
    pub server_us: Option<f64>,
    /// This tool's µs.
    pub loadtest_us: Option<f64>,
    /// The Postgres backends' µs (of the server's database; none on SQLite).
    pub database_us: Option<f64>,
    /// Every other process's µs: pgbench's client in the pgbench row; elsewhere other work on
    /// the machine, left out of the total.
    pub other_us: Option<f64>,
    /// server + tool + Postgres; for a phase whose work runs in processes the meter cannot
    /// tell apart (pgbench), the whole machine's busy time.
    pub total_us: Option<f64>,
}

impl CpuPer {
    /// `used` spread over `units` units of work `per`; none without units. With `whole_machine`
    /// the total is all busy time (pgbench, whose client is "other").
    pub fn of(used: &CpuUse, units: u64, per: &str, whole_machine: bool) -> Option<CpuPer> {
        if units == 0 {
            return None;
        }
        let us = |secs: f64| (secs * 1e6 / units as f64 * 100.0).round() / 100.0;
        let attributed = used.attributed_secs();
        let total = if whole_machine { attributed + used.other_cpu_secs } else { attributed };
        Some(CpuPer {
            per: per.to_owned(),
            server_us: used.server_cpu_secs.map(us),
            loadtest_us: Some(us(used.loadtest_cpu_secs)),
            database_us: used.database_cpu_secs.map(us),
            other_us: Some(us(used.other_cpu_secs)),
            total_us: Some(us(total)),
        })
    }
}

/// What a scenario hands back: the table and headline for the terminal, and the parameters and
/// results for the JSON report.
#[derive(Debug, Clone)]
pub struct ScenarioReport {
    /// Every measurement, one row each.
    pub table: Table,
    /// A few sentences with the figures the scenario exists for.
    pub headline: Vec<String>,
    /// Reasons to distrust some of the figures (for example other work on the machine).
    pub warnings: Vec<String>,
    /// The scenario's settings, as given.
    pub parameters: serde_json::Value,
    /// The measurements, keyed by name.
    pub results: serde_json::Value,
    /// The few figures `all` puts in its table (empty for scenarios it does not run).
    pub figures: Vec<Figure>,
}

impl ScenarioReport {
    /// The whole JSON report of scenario `name` run in `environment`.
    pub fn to_json(&self, name: &str, environment: &Environment) -> serde_json::Value {
        serde_json::json!({
            "scenario": name,
            "environment": environment,
            "parameters": self.parameters,
            "results": self.results,
            "headline": self.headline,
            "warnings": self.warnings,
            "figures": self.figures,
        })
    }
}

/// The 1, 5 and 15 minute load averages, where the system tells them (Linux).
pub fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut fields = text.split_whitespace().map(|f| f.parse::<f64>().ok());
    Some([fields.next()??, fields.next()??, fields.next()??])
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// What was measured.
    pub label: String,
    /// The numbers.
    pub summary: Summary,
    /// Successful requests per second, where throughput is the point of the measurement.
    pub rate: Option<f64>,
}

/// A table of measurements for the terminal.
#[derive(Debug, Clone, Default)]
pub struct Table {
    rows: Vec<Row>,
}

impl Table {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a row.
    pub fn row(&mut self, label: impl Into<String>, summary: &Summary, rate: Option<f64>) {
        self.rows.push(Row { label: label.into(), summary: summary.clone(), rate });
    }

    /// The rows so far.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// The table as aligned text, one row per line, with a header.
    pub fn render(&self) -> String {
        let header = ["measurement", "ok", "err", "p50", "p99", "max", "rate/s"];
        let mut cells: Vec<[String; 7]> = vec![header.map(str::to_owned)];
        for row in &self.rows {
            let s = &row.summary;
            cells.push([
                row.label.clone(),
                s.count.to_string(),
                s.error_count().to_string(),
                format_ms(s.p50_ms),
                format_ms(s.p99_ms),
                format_ms(s.max_ms),
                row.rate.map(|r| format!("{r:.1}")).unwrap_or_else(|| "-".into()),
            ]);
        }
        let mut widths = [0usize; 7];
        for line in &cells {
            for (width, cell) in widths.iter_mut().zip(line) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for (i, line) in cells.iter().enumerate() {
            let mut text = String::new();
            for (col, (cell, width)) in line.iter().zip(widths).enumerate() {
                if col == 0 {
                    let _ = write!(text, "{cell:<width$}");
                } else {
                    let _ = write!(text, "  {cell:>width$}");
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
            if i == 0 {
                let total = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
                out.push_str(&"-".repeat(total));
                out.push('\n');
            }
        }
        out
    }
}

/// A latency for people: microseconds under a millisecond, seconds from ten seconds up.
pub fn format_ms(ms: Option<f64>) -> String {
    match ms {
        None => "-".into(),
        Some(ms) if ms < 1.0 => format!("{:.0} µs", ms * 1000.0),
        Some(ms) if ms < 10_000.0 => format!("{ms:.1} ms"),
        Some(ms) => format!("{:.2} s", ms / 1000.0),
    }
}

/// A WebSocket scenario's progress line on stderr, prefixed with the scenario's name.
pub fn progress(scenario: &str, message: impl std::fmt::Display) {
    eprintln!("{scenario}: {message}");
}

/// Boardroom's figure over the baseline's, to two decimals; none when either is missing or the
/// baseline's is zero.
pub fn ratio(ours: Option<f64>, baseline: Option<f64>) -> Option<f64> {
    match (ours, baseline) {
        (Some(ours), Some(base)) if base > 0.0 => Some((ours / base * 100.0).round() / 100.0),
        _ => None,
    }
}

/// A [`ratio`] for people: `1.50x`, or `n/a`.
pub fn show_ratio(ratio: Option<f64>) -> String {
    ratio.map(|r| format!("{r:.2}x")).unwrap_or_else(|| "n/a".into())
}

/// A figure that may be unknown (no memory reading, say) for people: `?` when it is.
pub fn show<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_else(|| "?".into())
}

/// Writes `report` as pretty JSON to `path`, creating its directory.
pub fn write_json(path: &Path, report: &impl Serialize) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut text = serde_json::to_string_pretty(report).context("cannot encode the report")?;
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_take_their_ratio_and_cpu_per_unit() {
        let f = Figure::beside("paced p99", "ms", Some(423.5), "bare baseline p99", Some(194.7));
        assert_eq!(f.ratio, Some(2.18));
        assert_eq!(Figure::beside("x", "ms", Some(1.0), "b", Some(0.0)).ratio, None);
        assert_eq!(Figure::beside("x", "ms", None, "b", Some(2.0)).ratio, None);
        assert_eq!(Figure::alone("x", "/s", Some(3.0)).goal("≤ 1×").goal.as_deref(), Some("≤ 1×"));
        let used = CpuUse {
            wall_secs: 10.0,
            loadtest_cpu_secs: 1.0,
            server_cpu_secs: Some(3.0),
            database_cpu_secs: Some(2.0),
            other_cpu_secs: 4.0,
            steal_secs: 0.0,
        };
        // 100,000 updates: 10 µs of the server's per update, and so on.
        let per = CpuPer::of(&used, 100_000, "update", false).unwrap();
        assert_eq!(per.server_us, Some(30.0));
        assert_eq!(per.loadtest_us, Some(10.0));
        assert_eq!(per.database_us, Some(20.0));
        assert_eq!(per.other_us, Some(40.0));
        assert_eq!(per.total_us, Some(60.0), "other work is left out of the total");
        let whole = CpuPer::of(&used, 100_000, "transaction", true).unwrap();
        assert_eq!(whole.total_us, Some(100.0), "pgbench: the whole machine");
        assert_eq!(CpuPer::of(&used, 0, "update", false), None);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&samples, 0.50), Some(50));
        assert_eq!(percentile(&samples, 0.99), Some(99));
        assert_eq!(percentile(&samples, 1.0), Some(100));
        // With few samples p99 is the largest one, never an index past the end.
        assert_eq!(percentile(&[3, 7, 9], 0.99), Some(9));
        assert_eq!(percentile(&[3, 7, 9], 0.50), Some(7));
        assert_eq!(percentile(&[5], 0.01), Some(5));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn summary_and_histogram_of_recorded_latencies() {
        let mut rec = Recorder::new();
        for us in [900, 1_000, 1_100, 3_000, 250_000] {
            rec.record(Duration::from_micros(us));
        }
        let mut other = Recorder::new();
        other.record_error("503");
        other.record_error("503");
        other.record_error("transport");
        rec.merge(other);
        let s = rec.summary();
        assert_eq!(s.count, 5);
        assert_eq!(s.error_count(), 3);
        assert_eq!(s.errors.get("503"), Some(&2));
        assert_eq!(s.min_ms, Some(0.9));
        assert_eq!(s.p50_ms, Some(1.1));
        assert_eq!(s.p99_ms, Some(250.0));
        assert_eq!(s.max_ms, Some(250.0));
        assert_eq!(s.mean_ms, Some(51.2));
        let buckets: Vec<(u64, u64)> = s.histogram.iter().map(|b| (b.le_us, b.count)).collect();
        assert_eq!(buckets, vec![(1_024, 2), (2_048, 1), (4_096, 1), (262_144, 1)]);
    }

    #[test]
    fn empty_summary_has_no_latencies() {
        let s = Recorder::new().summary();
        assert_eq!((s.count, s.p50_ms, s.mean_ms), (0, None, None));
        assert!(s.histogram.is_empty());
        assert_eq!(format_ms(s.p99_ms), "-");
    }

    #[test]
    fn table_aligns_columns_and_formats_units() {
        let mut fast = Recorder::new();
        fast.record(Duration::from_micros(250));
        let mut slow = Recorder::new();
        slow.record(Duration::from_millis(1_234));
        let mut table = Table::new();
        table.row("warm", &fast.summary(), None);
        table.row("login flood", &slow.summary(), Some(7.96));
        let text = table.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("measurement"));
        assert!(lines[1].chars().all(|c| c == '-'));
        assert!(lines[2].contains("250 µs"), "{text}");
        assert!(lines[3].contains("1234.0 ms") && lines[3].ends_with("8.0"), "{text}");
        // Every data line is as wide as the header's rule or narrower (right-aligned columns).
        let rule = lines[1].chars().count();
        assert!(lines.iter().all(|l| l.chars().count() <= rule), "{text}");
    }

    #[test]
    fn json_report_is_written_with_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/auth.json");
        let mut rec = Recorder::new();
        rec.record(Duration::from_millis(2));
        write_json(&path, &serde_json::json!({ "warm": rec.summary() })).unwrap();
        let back: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back["warm"]["p50_ms"], 2.0);
        assert_eq!(back["warm"]["histogram"][0]["le_us"], 2_048);
    }
}
