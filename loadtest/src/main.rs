//! `boardroom-loadtest`: drives a Boardroom server with many authenticated clients and reports
//! throughput and latency. Each scenario is a subcommand; `--help` lists them.

mod ws;

use clap::{Parser, Subcommand};

/// Load scenarios against a running Boardroom server.
#[derive(Debug, Parser)]
#[command(name = "boardroom-loadtest", about)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

/// The scenarios.
#[derive(Debug, Subcommand)]
enum Scenario {
    /// Open many sockets, subscribe each to one board, and measure ping round trips.
    Connections(ws::ConnectionsArgs),
    /// Many subscribers of one board, one writer: event latency and exactly-once delivery.
    Fanout(ws::FanoutArgs),
    /// Every subscriber drops at once and resumes with `after_seq`: no gap, no duplicate.
    ReconnectStorm(ws::ReconnectArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().scenario {
        Scenario::Connections(args) => ws::connections(args).await,
        Scenario::Fanout(args) => ws::fanout(args).await,
        Scenario::ReconnectStorm(args) => ws::reconnect_storm(args).await,
    }
}
