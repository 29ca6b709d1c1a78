//! What else the machine was doing while a phase ran.
//!
//! Client and server share a small machine, and so may other work (a build, a test run). A
//! phase's figures mean little if another process took CPU meanwhile, so each phase records
//! where the machine's CPU time went: this tool, the server it started, the Postgres backends
//! serving the server's own database, everything else, and time the hypervisor stole. Linux only
//! (`/proc`); elsewhere nothing is recorded.

use std::time::Instant;

use serde::Serialize;

/// CPU counters at one moment.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    at: Instant,
    machine_busy: u64,
    steal: u64,
    ours: u64,
    server: Option<u64>,
    database: Option<u64>,
    ticks_per_sec: f64,
}

/// The machine's cores, as the scheduler offers them to this process.
pub fn cores() -> usize {
    std::thread::available_parallelism().map(usize::from).unwrap_or(1)
}

/// CPU seconds spent between two samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CpuUse {
    /// Wall-clock seconds between the samples.
    pub wall_secs: f64,
    /// CPU seconds of this tool.
    pub loadtest_cpu_secs: f64,
    /// CPU seconds of the server, when this tool started it.
    pub server_cpu_secs: Option<f64>,
    /// CPU seconds of the Postgres backends connected to the server's own database, when this
    /// tool created it.
    pub database_cpu_secs: Option<f64>,
    /// User and system CPU seconds of every other process and kernel thread; interrupt time is
    /// not counted. With an external server, the server is in here too.
    pub other_cpu_secs: f64,
    /// Seconds the hypervisor ran something else instead of this machine.
    pub steal_secs: f64,
}

impl CpuUse {
    /// Share of one core's time per wall second that went to other processes or was stolen.
    pub fn interference(&self) -> f64 {
        (self.other_cpu_secs + self.steal_secs) / self.wall_secs.max(f64::EPSILON)
    }

    /// CPU seconds of the processes the meter tells apart: this tool, the server, Postgres.
    pub fn attributed_secs(&self) -> f64 {
        self.loadtest_cpu_secs
            + self.server_cpu_secs.unwrap_or(0.0)
            + self.database_cpu_secs.unwrap_or(0.0)
    }

    /// Share of the machine's CPU time (`cores` × wall) that anything used: this tool, the
    /// server, Postgres and every other process.
    pub fn busy_share(&self, cores: usize) -> f64 {
        let busy = self.attributed_secs() + self.other_cpu_secs;
        busy / (self.wall_secs * cores.max(1) as f64).max(f64::EPSILON)
    }
}

impl CpuSample {
    /// Reads the counters now; `server` is the pid of a server this tool started, `database`
    /// the name of the Postgres database it created for it.
    pub fn take(server: Option<u32>, database: Option<&str>) -> Option<CpuSample> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let (busy, steal) = machine_ticks(&stat)?;
        let ours = process_ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
        let server = server
            .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
            .and_then(|text| process_ticks(&text));
        let database = database.map(database_ticks);
        Some(CpuSample {
            at: Instant::now(),
            machine_busy: busy,
            steal,
            ours,
            server,
            database,
            ticks_per_sec: ticks_per_sec(),
        })
    }

    /// The CPU time spent since `earlier`.
    pub fn since(&self, earlier: &CpuSample) -> CpuUse {
        let secs = |ticks: u64| ticks as f64 / self.ticks_per_sec;
        let busy = self.machine_busy.saturating_sub(earlier.machine_busy);
        let ours = self.ours.saturating_sub(earlier.ours);
        let server = match (self.server, earlier.server) {
            (Some(now), Some(then)) => Some(now.saturating_sub(then)),
            _ => None,
        };
        let database = match (self.database, earlier.database) {
            (Some(now), Some(then)) => Some(now.saturating_sub(then)),
            _ => None,
        };
        let other = busy
            .saturating_sub(ours)
            .saturating_sub(server.unwrap_or(0))
            .saturating_sub(database.unwrap_or(0));
        CpuUse {
            wall_secs: round2(self.at.duration_since(earlier.at).as_secs_f64()),
            loadtest_cpu_secs: round2(secs(ours)),
            server_cpu_secs: server.map(|t| round2(secs(t))),
            database_cpu_secs: database.map(|t| round2(secs(t))),
            other_cpu_secs: round2(secs(other)),
            steal_secs: round2(secs(self.steal.saturating_sub(earlier.steal))),
        }
    }
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

#[cfg(target_os = "linux")]
fn ticks_per_sec() -> f64 {
    rustix::param::clock_ticks_per_second() as f64
}

#[cfg(not(target_os = "linux"))]
fn ticks_per_sec() -> f64 {
    100.0
}

/// Busy and steal ticks of all CPUs, from `/proc/stat`. Busy is user, nice and system time;
/// interrupt time is left out because most of it is the loopback traffic of this very run.
fn machine_ticks(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> =
        line.split_whitespace().skip(1).map(|f| f.parse().ok()).collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal (guest time is already inside user).
    let [user, nice, system, _idle, _iowait, _irq, _softirq, steal, ..] = fields[..] else {
        return None;
    };
    Some((user + nice + system, steal))
}

/// utime + stime of every Postgres backend connected to `database`: Postgres titles each
/// backend `postgres: <cluster>: <user> <database> <client> <state>`. A backend that exits
/// takes its time with it, so this can undercount, never overcount.
fn database_ticks(database: &str) -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
    let mut total = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let dir = entry.path();
        let Ok(cmdline) = std::fs::read(dir.join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline);
        if !cmdline.starts_with("postgres:") || !cmdline.split_whitespace().any(|w| w == database) {
            continue;
        }
        if let Some(ticks) =
            std::fs::read_to_string(dir.join("stat")).ok().and_then(|t| process_ticks(&t))
        {
            total += ticks;
        }
    }
    total
}

/// utime + stime of a process, from its `/proc/<pid>/stat`.
fn process_ticks(stat: &str) -> Option<u64> {
    // The command name may hold spaces and parentheses; the fields after the last ')' do not.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of the line, utime 14 and stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// CPU use per phase of a scenario.
#[derive(Debug, Default)]
pub struct PhaseMeter {
    server: Option<u32>,
    database: Option<String>,
    last: Option<CpuSample>,
    phases: Vec<(String, CpuUse)>,
    /// Phases whose workload runs in processes the meter cannot attribute.
    unattributed: Vec<String>,
}

/// Interference (other CPU plus steal, in cores) above which a phase is called out…
pub const NOTABLE_INTERFERENCE: f64 = 0.1;
/// …when it also adds up to this many seconds (short phases are noisy).
pub const NOTABLE_INTERFERENCE_SECS: f64 = 0.25;

impl PhaseMeter {
    /// A meter that also counts the server with pid `server` and the Postgres backends of its
    /// database `database`.
    pub fn new(server: Option<u32>, database: Option<&str>) -> Self {
        PhaseMeter {
            server,
            database: database.map(str::to_owned),
            last: None,
            phases: Vec::new(),
            unattributed: Vec::new(),
        }
    }

    /// Marks the start of a phase.
    pub fn begin(&mut self) {
        self.last = CpuSample::take(self.server, self.database.as_deref());
    }

    /// Marks the end of phase `name`, begun by the last [`begin`](Self::begin).
    pub fn end(&mut self, name: &str) {
        let now = CpuSample::take(self.server, self.database.as_deref());
        if let (Some(then), Some(now)) = (self.last.take(), now) {
            self.phases.push((name.to_owned(), now.since(&then)));
        }
    }

    /// Marks the end of phase `name` whose workload runs in processes this meter cannot tell
    /// apart (pgbench and the backends it opens and closes): all of it is counted as other
    /// CPU, which is then the measurement itself, not a disturbance, and raises no warning.
    pub fn end_unattributed(&mut self, name: &str) {
        self.end(name);
        self.unattributed.push(name.to_owned());
    }

    /// The CPU use of phase `name`, if it was metered.
    pub fn phase(&self, name: &str) -> Option<&CpuUse> {
        self.phases.iter().find(|(phase, _)| phase == name).map(|(_, used)| used)
    }

    /// Every phase's CPU use, as a JSON object keyed by phase.
    pub fn to_json(&self) -> serde_json::Value {
        let map: serde_json::Map<String, serde_json::Value> = self
            .phases
            .iter()
            .map(|(name, used)| (name.clone(), serde_json::to_value(used).unwrap_or_default()))
            .collect();
        serde_json::Value::Object(map)
    }

    /// One warning per phase during which other work took a notable share of the machine. None
    /// for an external server, whose own CPU time cannot be told apart from other work.
    pub fn warnings(&self) -> Vec<String> {
        if self.server.is_none() {
            return Vec::new();
        }
        self.phases
            .iter()
            .filter(|(name, _)| !self.unattributed.contains(name))
            .filter(|(_, used)| {
                used.interference() > NOTABLE_INTERFERENCE
                    && used.other_cpu_secs + used.steal_secs > NOTABLE_INTERFERENCE_SECS
            })
            .map(|(name, used)| {
                format!(
                    "phase {name}: other processes used {:.2} CPU-s and steal {:.2} s over {:.1} s \
                     ({:.0}% of a core); its figures are disturbed",
                    used.other_cpu_secs,
                    used.steal_secs,
                    used.wall_secs,
                    used.interference() * 100.0
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_and_pid_stat() {
        let stat = "cpu  100 5 50 1000 20 3 2 7 0 0\ncpu0 50 2 25 500 10 1 1 3 0 0\n";
        assert_eq!(machine_ticks(stat), Some((155, 7)));
        let pid = "4242 (boardroom (x) y) S 1 4242 4242 0 -1 4194560 900 0 0 0 311 42 0 0 20 0 9";
        assert_eq!(process_ticks(pid), Some(353));
        assert_eq!(process_ticks("garbage"), None);
    }

    #[test]
    fn other_time_is_what_neither_tool_nor_server_used() {
        let start = Instant::now();
        let earlier = CpuSample {
            at: start,
            machine_busy: 1_000,
            steal: 0,
            ours: 100,
            server: Some(200),
            database: Some(10),
            ticks_per_sec: 100.0,
        };
        let later = CpuSample {
            at: start + std::time::Duration::from_secs(10),
            machine_busy: 2_000,
            steal: 50,
            ours: 300,
            server: Some(800),
            database: Some(60),
            ticks_per_sec: 100.0,
        };
        let used = later.since(&earlier);
        assert_eq!(used.loadtest_cpu_secs, 2.0);
        assert_eq!(used.server_cpu_secs, Some(6.0));
        assert_eq!(used.database_cpu_secs, Some(0.5));
        assert_eq!(used.other_cpu_secs, 1.5);
        assert_eq!(used.steal_secs, 0.5);
        assert!((used.interference() - 0.2).abs() < 1e-9);
        // 10 CPU-s of 20 on two cores, whoever used them.
        assert!((used.busy_share(2) - 0.5).abs() < 1e-9);
        assert!((used.busy_share(1) - 1.0).abs() < 1e-9);
    }
}
