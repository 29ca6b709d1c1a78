//! The standard `process_*` series, read from `/proc/self` when scraped (Linux only; elsewhere
//! they are left out). They are written as text beside the recorder's rendering because
//! `process_cpu_seconds_total` is a fractional counter, which the `metrics` facade's integer
//! counters cannot carry.

use std::fmt::Write as _;

/// Clock ticks per second of the times in `/proc/<pid>/stat` (`USER_HZ`): 100 on every Linux
/// architecture's user ABI, whatever the kernel's own tick rate.
const USER_HZ: f64 = 100.0;

/// What is known of the process now.
#[derive(Debug, Default, PartialEq)]
struct Sample {
    cpu_seconds: Option<f64>,
    resident_bytes: Option<u64>,
    virtual_bytes: Option<u64>,
    open_fds: Option<u64>,
    max_fds: Option<u64>,
    start_time_seconds: Option<f64>,
}

/// Appends the process series to a Prometheus text rendering.
pub fn render(out: &mut String) {
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    write(out, &read());
}

fn write(out: &mut String, sample: &Sample) {
    let whole = |value: Option<u64>| value.map(|v| v.to_string());
    let fraction = |value: Option<f64>| value.map(|v| v.to_string());
    let series = [
        (
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            fraction(sample.cpu_seconds),
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            whole(sample.resident_bytes),
        ),
        (
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            whole(sample.virtual_bytes),
        ),
        ("process_open_fds", "gauge", "Number of open file descriptors.", whole(sample.open_fds)),
        (
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            whole(sample.max_fds),
        ),
        (
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            fraction(sample.start_time_seconds),
        ),
    ];
    for (name, kind, help, value) in series {
        if let Some(value) = value {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        }
    }
}

#[cfg(target_os = "linux")]
fn read() -> Sample {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let stat = read("/proc/self/stat").and_then(|s| Stat::parse(&s));
    let status = read("/proc/self/status").unwrap_or_default();
    let boot_time = read("/proc/stat").and_then(|s| boot_time(&s));
    Sample {
        cpu_seconds: stat.as_ref().map(|s| (s.utime + s.stime) as f64 / USER_HZ),
        resident_bytes: kib_field(&status, "VmRSS:"),
        virtual_bytes: kib_field(&status, "VmSize:"),
        open_fds: std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as u64),
        max_fds: read("/proc/self/limits").and_then(|s| max_open_files(&s)),
        start_time_seconds: stat
            .zip(boot_time)
            .map(|(s, boot)| boot as f64 + s.start_ticks as f64 / USER_HZ),
    }
}

#[cfg(not(target_os = "linux"))]
fn read() -> Sample {
    Sample::default()
}

/// The fields of `/proc/self/stat` used here.
#[derive(Debug, PartialEq)]
struct Stat {
    utime: u64,
    stime: u64,
    start_ticks: u64,
}

impl Stat {
    /// Fields are counted after the command name, which is in parentheses and may itself hold
    /// spaces and parentheses: so from the last `)`.
    fn parse(stat: &str) -> Option<Stat> {
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // After the name, field 3 (state) is index 0: utime is field 14, stime 15, starttime 22.
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        Some(Stat { utime: field(14)?, stime: field(15)?, start_ticks: field(22)? })
    }
}

/// A `Name:   123 kB` line of `/proc/self/status`, in bytes.
fn kib_field(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(name))?;
    let kib: u64 = line[name.len()..].split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

/// `btime` of `/proc/stat`: when the machine booted, in Unix seconds.
fn boot_time(stat: &str) -> Option<u64> {
    stat.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

/// The soft limit of `Max open files` in `/proc/self/limits`.
fn max_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proc_files_are_read_field_by_field() {
        // A command name with a space and a parenthesis of its own.
        let stat = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 5000 0 0 0 250 75 0 0 20 0 \
                    9 0 123456 104857600 2560 18446744073709551615";
        assert_eq!(Stat::parse(stat), Some(Stat { utime: 250, stime: 75, start_ticks: 123456 }));
        assert_eq!(Stat::parse("garbage"), None);
        let status = "Name:\tboardroom\nVmSize:\t  204800 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(kib_field(status, "VmRSS:"), Some(10240 * 1024));
        assert_eq!(kib_field(status, "VmSize:"), Some(204800 * 1024));
        assert_eq!(boot_time("cpu  1 2 3\nbtime 1700000000\nprocesses 9\n"), Some(1_700_000_000));
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_described() {
        let sample = read();
        assert!(sample.cpu_seconds.is_some());
        assert!(sample.resident_bytes.is_some_and(|b| b > 0));
        assert!(sample.open_fds.is_some_and(|n| n >= 3));
        assert!(sample.max_fds.is_some());
        let mut text = String::new();
        write(&mut text, &sample);
        assert!(text.contains("# TYPE process_cpu_seconds_total counter\n"), "{text}");
        assert!(text.contains("\nprocess_start_time_seconds "), "{text}");
    }
}
