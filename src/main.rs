//! The `boardroom` binary: parses the command line and runs a subcommand. Every failure ends in
//! one line on stderr and a non-zero exit, never a panic.

use std::process::ExitCode;

use boardroom::config::{AdminCommand, AuditCommand, Cli, Command};
use boardroom::server::{self, App, IfMissing, StartupError};
use boardroom::storage::{ChainReport, StorageError};
use boardroom_actors::audit::{AuditAction, AuditEvent, AuditStore};

/// mimalloc rather than glibc's allocator: the request and fan-out paths allocate many small,
/// short-lived buffers across threads, where glibc spent a fifth of the server's CPU
/// (`loadtest/README.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
            let stop = server::shutdown_signal();
            let running = App::build(cli.settings).await?.spawn().await?;
            stop.await;
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
        Command::Admin(admin) => {
            let (email, grant, action) = match admin {
                AdminCommand::GrantSuperadmin { email } => {
                    (email, true, AuditAction::SuperadminGranted)
                }
                AdminCommand::RevokeSuperadmin { email } => {
                    (email, false, AuditAction::SuperadminRevoked)
                }
            };
            let email = boardroom::validate::email(&email)
                .map_err(|err| StartupError::Command(err.message().to_owned()))?;
            let store = server::open_store(&cli.settings).await?;
            let user = store.set_superadmin(&email, grant).await.map_err(|err| match err {
                StorageError::NotFound => {
                    StartupError::Command(format!("no account with email {email}"))
                }
                other => StartupError::Command(format!("cannot update the account: {other}")),
            })?;
            let mut event = AuditEvent::new(action);
            event.target = Some(user.id.to_string());
            event.metadata = serde_json::json!({ "via": "cli", "email": email });
            store
                .append(&[event])
                .await
                .map_err(|e| StartupError::Command(format!("cannot write the audit row: {e}")))?;
            println!("{} superadmin {email}", if grant { "granted" } else { "revoked" });
            store.close().await;
            Ok(())
        }
        Command::Audit(AuditCommand::Verify) => {
            let key = server::audit_key(&cli.settings, IfMissing::Fail)?;
            let store = server::open_store(&cli.settings).await?;
            let report = store
                .verify_audit_chain(&key)
                .await
                .map_err(|e| StartupError::Command(format!("cannot read the audit log: {e}")))?;
            store.close().await;
            match report {
                ChainReport::Intact(verified) => {
                    let signed = match verified.signed_through {
                        Some(seq) => format!(
                            "signed through row {seq}; {} newer rows not yet signed",
                            verified.end - seq
                        ),
                        None => "no signed checkpoint yet".to_owned(),
                    };
                    println!("audit chain intact: {} rows verified; {signed}", verified.rows);
                    Ok(())
                }
                ChainReport::Broken(brk) => {
                    Err(StartupError::Command(format!("audit chain broken: {brk}")))
                }
            }
        }
        Command::CheckConfig => {
            server::signing_secret(&cli.settings)?;
            server::audit_key(&cli.settings, IfMissing::Generate)?;
            let tls = boardroom::tls::check(&cli.settings)
                .map_err(|e| StartupError::Setting(e.to_string()))?;
            let store = server::open_store(&cli.settings).await?;
            let readiness = store.readiness().await;
            println!(
                "configuration ok: listen {}, backend {}, migrations {}",
                cli.settings.listen,
                store.backend().as_str(),
                if readiness.migrations_current { "current" } else { "pending" }
            );
            match tls {
                Some(cert) => println!("tls: {cert}"),
                None => println!(
                    "tls: off (BOARDROOM_TLS_CERT unset): run behind a TLS-terminating proxy"
                ),
            }
            store.close().await;
            Ok(())
        }
    }
}
