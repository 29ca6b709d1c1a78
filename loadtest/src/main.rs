//! `boardroom-loadtest`: drives a Boardroom server with many authenticated clients and reports
//! throughput and latency. The scenarios arrive with the real-time gateway; for now it lists
//! them.

fn main() {
    println!(
        "boardroom-loadtest: scenarios (connections, fanout, reconnect-storm) are not built yet"
    );
}
