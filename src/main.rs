//! The `boardroom` binary: parses the command line and runs a subcommand. Every failure ends in
//! one line on stderr and a non-zero exit, never a panic.

use std::process::ExitCode;
use std::time::Duration;

use boardroom::attachments::rotation::{self, Retired};
use boardroom::backup;
use boardroom::config::{AdminCommand, AuditCommand, Cli, Command, KeysCommand};
use boardroom::server::{self, App, IfMissing, StartupError};
use boardroom::storage::{ChainReport, StorageError};
use boardroom_actors::audit::{AuditAction, AuditEvent, AuditStore};
use boardroom_protocol::cluster::Invalidation;

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
        Command::Admin(AdminCommand::GrantSuperadmin { email }) => {
            change_account(&cli.settings, &email, AccountChange::Superadmin(true)).await
        }
        Command::Admin(AdminCommand::RevokeSuperadmin { email }) => {
            change_account(&cli.settings, &email, AccountChange::Superadmin(false)).await
        }
        Command::Admin(AdminCommand::VerifyEmail { email }) => {
            change_account(&cli.settings, &email, AccountChange::VerifyEmail).await
        }
        Command::Admin(AdminCommand::RunDeletions) => {
            // Through the same actors as the server's hourly run, so board and organization
            // state ends the same way; this process's actors are then shut down.
            let app = App::build(cli.settings).await?;
            let state = app.state().clone();
            let ran = boardroom::deletion::run_due(&state).await;
            // What the erasures ended reaches the serving nodes before this process goes.
            let told = state.auth().changes().flush();
            if tokio::time::timeout(TELL_NODES_WITHIN, told).await.is_err() {
                eprintln!("warning: the nodes were not told in time; they see it within 30 s");
            }
            let flushed = state.runtime().shutdown().await;
            state.store().close().await;
            let ran =
                ran.map_err(|e| StartupError::Command(format!("cannot run deletions: {e}")))?;
            println!(
                "erased {} account(s); {} held back; {} failed",
                ran.erased, ran.held_back, ran.failed
            );
            if ran.failed > 0 || !flushed {
                return Err(StartupError::Command(
                    "some deletions did not complete: see the log".into(),
                ));
            }
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
        Command::Keys(keys) => {
            let store = writing_store(&cli.settings).await?;
            store.migrate().await.map_err(StartupError::Migrate)?;
            let (event, said) = match keys {
                KeysCommand::Rotate => {
                    let done = rotation::rotate(&cli.settings, &store)
                        .await
                        .map_err(StartupError::Command)?;
                    let mut event = AuditEvent::new(AuditAction::MasterKeyRotated);
                    event.target = Some(done.active.clone());
                    event.metadata = serde_json::json!({
                        "via": "cli",
                        "added": done.added,
                        "rewrapped": done.rewrapped,
                        "unreadable": done.unreadable,
                    });
                    let added = match &done.added {
                        Some(id) => format!("added {id} to the generated keyring; "),
                        None => String::new(),
                    };
                    let said = format!(
                        "{added}re-wrapped {} data key(s) under {}",
                        done.rewrapped, done.active
                    );
                    if done.unreadable > 0 {
                        append_audit(&store, event).await?;
                        store.close().await;
                        return Err(StartupError::Command(format!(
                            "{said}; {} could not be (their master key is not in the keyring, \
                             or they are damaged: see the log), so older keys must stay",
                            done.unreadable
                        )));
                    }
                    (event, said)
                }
                KeysCommand::Retire { key_id } => {
                    let outcome = rotation::retire(&cli.settings, &store, &key_id)
                        .await
                        .map_err(StartupError::Command);
                    let outcome = match outcome {
                        Ok(outcome) => outcome,
                        Err(err) => {
                            store.close().await;
                            return Err(err);
                        }
                    };
                    let mut event = AuditEvent::new(AuditAction::MasterKeyRetired);
                    event.target = Some(key_id.clone());
                    let said = match outcome {
                        Retired::Removed => {
                            event.metadata = serde_json::json!({ "via": "cli", "removed": true });
                            format!("retired {key_id}: removed from the generated keyring")
                        }
                        Retired::DropFromSetting => {
                            event.metadata = serde_json::json!({ "via": "cli", "removed": false });
                            format!(
                                "no attachment uses {key_id}: remove it from BOARDROOM_MASTER_KEY \
                                 and restart the servers"
                            )
                        }
                    };
                    (event, said)
                }
            };
            append_audit(&store, event).await?;
            println!("{said}");
            store.close().await;
            Ok(())
        }
        Command::Backup { out } => {
            let blobs = boardroom::attachments::blob_store::from_settings(&cli.settings)
                .map_err(StartupError::Setting)?;
            let store = server::open_store(&cli.settings).await?;
            let url = cli.settings.effective_database_url();
            let made = backup::create(&store, &url, &blobs.store, &out).await;
            store.close().await;
            let manifest =
                made.map_err(|e| StartupError::Command(format!("backup failed: {e}")))?;
            let rows: i64 = manifest.tables.values().sum();
            println!(
                "snapshot written to {}: {} backend, schema {}, {} rows, {} blobs, {} bytes",
                out.display(),
                manifest.backend,
                manifest.schema_version,
                rows,
                manifest.files.len() - 1,
                manifest.total_bytes()
            );
            if !manifest.blobs_missing.is_empty() {
                println!(
                    "{} blobs were deleted before they could be copied (their attachments were \
                     deleted after the snapshot was taken)",
                    manifest.blobs_missing.len()
                );
            }
            println!("note: {}", backup::SECRETS_NOTE);
            Ok(())
        }
        Command::Restore { from, force } => {
            let report = backup::restore::restore(&cli.settings, &from, force)
                .await
                .map_err(|e| StartupError::Command(format!("restore failed: {e}")))?;
            println!("{:<28} {:>12} {:>12}", "table", "manifest", "restored");
            let shown = |n: Option<i64>| n.map_or_else(|| "-".to_owned(), |n| n.to_string());
            for count in &report.counts {
                println!(
                    "{:<28} {:>12} {:>12}{}",
                    count.table,
                    shown(count.expected),
                    shown(count.restored),
                    if count.matches() { "" } else { "  MISMATCH" }
                );
            }
            println!(
                "restored {} (schema {}, taken {}) and {} blobs; migrations are current",
                from.display(),
                report.manifest.schema_version,
                report.manifest.created_at.to_rfc3339(),
                report.blobs
            );
            if !report.matches() {
                return Err(StartupError::Command(
                    "restored row counts differ from the manifest's (see MISMATCH above)".into(),
                ));
            }
            println!("note: {}", backup::SECRETS_NOTE);
            Ok(())
        }
        Command::CheckConfig => {
            server::signing_secret(&cli.settings)?;
            server::audit_key(&cli.settings, IfMissing::Generate)?;
            let keyring =
                boardroom::attachments::keyring::Keyring::load(&cli.settings, IfMissing::Generate)
                    .map_err(StartupError::Setting)?;
            let blobs = boardroom::attachments::blob_store::from_settings(&cli.settings)
                .map_err(StartupError::Setting)?;
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
            println!(
                "attachments: {}, master key {} active ({} in the keyring)",
                blobs.describe,
                keyring.active().id(),
                keyring.ids().count()
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

/// What an `admin …` command changes on an account.
enum AccountChange {
    /// Set (`true`) or clear the platform superadmin flag.
    Superadmin(bool),
    /// Mark the address verified.
    VerifyEmail,
}

/// Applies an `admin …` command to the account with `email`, then writes its audit row.
async fn change_account(
    settings: &boardroom::config::Settings,
    email: &str,
    change: AccountChange,
) -> Result<(), StartupError> {
    let email = boardroom::validate::email(email)
        .map_err(|err| StartupError::Command(err.message().to_owned()))?;
    let store = writing_store(settings).await?;
    let superadmin = matches!(change, AccountChange::Superadmin(_));
    let (changed, action, said) = match change {
        AccountChange::Superadmin(grant) => (
            store.set_superadmin(&email, grant).await,
            if grant { AuditAction::SuperadminGranted } else { AuditAction::SuperadminRevoked },
            format!("{} superadmin {email}", if grant { "granted" } else { "revoked" }),
        ),
        AccountChange::VerifyEmail => (
            store.mark_email_verified(&email).await,
            AuditAction::EmailVerified,
            format!("verified {email}"),
        ),
    };
    let user = changed.map_err(|err| match err {
        StorageError::NotFound => StartupError::Command(format!("no account with email {email}")),
        other => StartupError::Command(format!("cannot update the account: {other}")),
    })?;
    let mut event = AuditEvent::new(action);
    event.target = Some(user.id.to_string());
    event.metadata = serde_json::json!({ "via": "cli", "email": email });
    append_audit(&store, event).await?;
    println!("{said}");
    if superadmin {
        tell_nodes(settings, &store, Invalidation::Superadmin { user_id: user.id }).await;
    }
    store.close().await;
    Ok(())
}

/// How long a command waits for NATS to take what it tells the nodes.
const TELL_NODES_WITHIN: Duration = Duration::from_secs(5);

/// Tells the nodes of a cluster (`BOARDROOM_NATS_URL` set for the command too) what a command
/// changed, so they drop it from their caches and re-check its sockets at once. Without NATS, or
/// when it cannot be reached in time, they see the change when their caches next read the
/// database: within 30 s (`SESSION_CACHE_TTL`).
async fn tell_nodes(
    settings: &boardroom::config::Settings,
    store: &boardroom::storage::Store,
    change: Invalidation,
) {
    if settings.nats_url.is_none() {
        return;
    }
    // An id of its own: a node skips what it published itself.
    let random = uuid::Uuid::now_v7().simple().to_string();
    let id = format!("cli-{}", &random[20..]);
    let told = tokio::time::timeout(TELL_NODES_WITHIN, async {
        match boardroom::cluster::Cluster::join(settings, store, &id).await {
            Ok(Some(cluster)) => {
                boardroom::cluster::invalidations::publish_once(&cluster, &change).await;
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(err) => Err(err.to_string()),
        }
    })
    .await;
    let failed = match told {
        Ok(Ok(())) => return,
        Ok(Err(err)) => err,
        Err(_) => "NATS did not answer in time".to_owned(),
    };
    eprintln!("warning: the nodes were not told ({failed}); they see the change within 30 s");
}

/// Appends one audit row written by a subcommand.
async fn append_audit(
    store: &boardroom::storage::Store,
    event: AuditEvent,
) -> Result<(), StartupError> {
    store
        .append(&[event])
        .await
        .map_err(|e| StartupError::Command(format!("cannot write the audit row: {e}")))
}

/// The store of a subcommand that appends to the audit chain: with the audit key, so its rows
/// are written erasable like the server's.
async fn writing_store(
    settings: &boardroom::config::Settings,
) -> Result<boardroom::storage::Store, StartupError> {
    let key = server::audit_key(settings, IfMissing::Generate)?;
    Ok(server::open_store(settings).await?.with_audit_key(std::sync::Arc::new(key)))
}
