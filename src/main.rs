//! The `boardroom` binary: parses the command line and runs a subcommand. Every failure ends in
//! one line on stderr and a non-zero exit, never a panic.

use std::process::ExitCode;

use boardroom::config::{Cli, Command};
use boardroom::server::{self, App, StartupError};

fn main() -> ExitCode {
    let cli = Cli::parse_or_exit();
    if let Err(err) = boardroom::telemetry::init(&cli.settings) {
        eprintln!("error: {err}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), StartupError> {
    match cli.command {
        Command::Serve => {
            let running = App::build(cli.settings).await?.spawn().await?;
            server::shutdown_signal().await;
            tracing::info!("shutdown requested");
            let clean = running.shutdown().await;
            tracing::info!(clean, "stopped");
            Ok(())
        }
        Command::Migrate => {
            let store = server::open_store(&cli.settings).await?;
            store.migrate().await.map_err(StartupError::Migrate)?;
            println!("migrations applied ({})", store.backend().as_str());
            store.close().await;
            Ok(())
        }
        Command::CheckConfig => {
            server::signing_secret(&cli.settings)?;
            let store = server::open_store(&cli.settings).await?;
            let readiness = store.readiness().await;
            println!(
                "configuration ok: listen {}, backend {}, migrations {}",
                cli.settings.listen,
                store.backend().as_str(),
                if readiness.migrations_current { "current" } else { "pending" }
            );
            store.close().await;
            Ok(())
        }
    }
}
