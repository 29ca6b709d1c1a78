//! Resident memory of this test process, where the server under test runs: the tests that
//! promise flat memory (a large log paged, a large file streamed) sample it while they work.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The process's resident memory now, from `/proc/self/status`.
pub fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() * 1024
}

/// Samples the resident memory every few milliseconds until stopped; `peak()` is the most seen.
pub struct PeakRss {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PeakRss {
    /// Starts sampling.
    pub fn start() -> PeakRss {
        let (stop, peak) =
            (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(rss_bytes())));
        let thread = {
            let (stop, peak) = (stop.clone(), peak.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(rss_bytes(), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        PeakRss { stop, peak, thread: Some(thread) }
    }

    /// Stops sampling; the most resident memory seen, now included.
    pub fn peak(&mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        self.peak.load(Ordering::Relaxed).max(rss_bytes())
    }
}

impl Drop for PeakRss {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
