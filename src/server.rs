//! Start-up and shutdown.
//!
//! [`App::build`] opens the store, applies migrations and loads the signing secret, the audit
//! key and the attachments' master keys (each generated into the data dir when not configured),
//! the blob store, and the TLS certificate when one is configured; every failure is a [`StartupError`] whose one-line message names the setting
//! at fault. [`App::spawn`] binds the listener (HTTPS when TLS is configured, with its reloader)
//! and, when asked, the plain-HTTP redirect listener and the metrics listener
//! (`crate::metrics`), and serves in the background, returning a [`RunningServer`] that tests and `boardroom serve` stop the same way: stop accepting, let
//! in-flight requests finish within the grace period, stop the actors (the audit log last,
//! writing everything queued), close the pool.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use boardroom_actors::audit_chain::AuditKey;
use boardroom_actors::supervisor::{Dependencies, Runtime, WebhookDependencies};

use axum::serve::ListenerExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::attachments::Vault;
use crate::auth::Auth;
use crate::config::Settings;
use crate::http::{self, AppState};
use crate::storage::{OpenError, StorageError, Store};
use crate::tls::Tls;

use crate::secrets::{load_secret, SecretSetting};
pub use crate::secrets::{IfMissing, MIN_SECRET_BYTES};

/// Why the server could not start. Displayed as one line.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The database could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// Migrations could not be applied.
    #[error("DATABASE_URL: migrations failed: {0}")]
    Migrate(StorageError),
    /// A setting is invalid.
    #[error("{0}")]
    Setting(String),
    /// A subcommand failed.
    #[error("{0}")]
    Command(String),
    /// The WebSocket writers' threads could not start.
    #[error("BOARDROOM_WS_DELIVERY_THREADS: cannot start the threads: {0}")]
    Delivery(std::io::Error),
    /// A listener could not be bound.
    #[error("{setting}: cannot listen on {addr}: {source}")]
    Bind {
        /// The setting naming the address.
        setting: &'static str,
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A built application, ready to serve.
pub struct App {
    state: AppState,
    tls: Option<Arc<Tls>>,
    mail_sender: crate::mail::Sender,
}

impl App {
    /// Opens the database, applies migrations, and loads the signing secret, the audit key and the
    /// attachment vault.
    pub async fn build(settings: Settings) -> Result<App, StartupError> {
        let secret = signing_secret(&settings)?;
        let audit_key = audit_key(&settings, IfMissing::Generate)?;
        let public_url = settings.public_url().map_err(StartupError::Setting)?;
        if settings.http_redirect_listen.is_some() && public_url.scheme() != "https" {
            return Err(StartupError::Setting(
                "BOARDROOM_PUBLIC_URL (--public-url): must be an https:// URL when \
                 BOARDROOM_HTTP_REDIRECT_LISTEN is set (it is where plain HTTP is redirected)"
                    .into(),
            ));
        }
        let tls = Tls::load(&settings).map_err(|e| StartupError::Setting(e.to_string()))?;
        let billing =
            crate::billing::Billing::from_settings(&settings).map_err(StartupError::Setting)?;
        let vault = Arc::new(
            Vault::from_settings(&settings, IfMissing::Generate).map_err(StartupError::Setting)?,
        );
        let smtp = crate::mail::transport(&settings).map_err(StartupError::Setting)?;
        let mail_from = crate::mail::from_mailbox(&settings).map_err(StartupError::Setting)?;
        let audit_key = Arc::new(audit_key);
        let store = open_store(&settings).await?.with_audit_key(Arc::clone(&audit_key));
        store.migrate().await.map_err(StartupError::Migrate)?;
        // Rows from before erasable ones (migration 0014) become erasable, if the chain verifies.
        match store.reseal_legacy_audit_rows(&audit_key).await {
            Ok(crate::storage::Resealed::Nothing) => {}
            Ok(crate::storage::Resealed::Rows(rows)) => {
                tracing::info!(rows, "audit rows re-hashed over keyed commitments (erasable)");
            }
            Ok(crate::storage::Resealed::Broken(brk)) => tracing::error!(
                %brk,
                "the audit chain does not verify, so its older rows were not made erasable; \
                 run `boardroom audit verify`"
            ),
            Err(err) => tracing::error!(error = %err, "re-sealing older audit rows failed"),
        }
        let node_id = crate::cluster::node_id(&settings);
        let cluster = crate::cluster::Cluster::join(&settings, &store, &node_id)
            .await
            .map_err(StartupError::Setting)?;
        let mail = crate::mail::Mail::new(public_url);
        let mail_sender = crate::mail::Sender::new(
            store.clone(),
            &mail,
            smtp,
            mail_from,
            settings.mail_retry_base,
        );
        let runtime = Runtime::start(Dependencies {
            audit_store: Arc::new(store.clone()),
            audit_key,
            board_store: Arc::new(store.clone()),
            org_store: Arc::new(store.clone()),
            board_idle_timeout: Duration::from_secs(settings.board_idle_secs),
            board_limits: settings.board_limits(),
            plan_limits: settings.plan_limits(),
            webhooks: Some(WebhookDependencies {
                backend: Arc::new(crate::webhooks::Deliverer::new(store.clone(), &settings)),
                poll_interval: settings.webhook_poll,
            }),
            placement: cluster.clone().map(|c| c as Arc<dyn boardroom_actors::remote::Placement>),
        })
        .await
        .map_err(|e| StartupError::Setting(format!("cannot start the actors: {e}")))?;
        if let Some(cluster) = &cluster {
            cluster
                .serve(runtime.boards().clone(), runtime.orgs().clone())
                .await
                .map_err(StartupError::Setting)?;
        }
        let node = crate::cluster::Node { id: node_id, cluster };
        let auth = Auth::new(
            store.clone(),
            runtime.audit().clone(),
            runtime.orgs().clone(),
            &secret,
            &settings,
            mail,
        );
        let state = AppState::new(store, settings, auth, runtime, billing, vault, node)
            .map_err(StartupError::Delivery)?;
        // Started here, not when serving: a CLI command (`admin run-deletions`) tells the nodes
        // what it changed too. Both stop with the server's shutdown.
        let _invalidations = crate::cluster::invalidations::start(&state).await;
        let _key_shares = crate::cluster::key_shares::follow(&state);
        Ok(App { state, tls, mail_sender })
    }

    /// The shared state (for CLI subcommands that need the store).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Binds the configured addresses and serves in the background.
    pub async fn spawn(self) -> Result<RunningServer, StartupError> {
        let settings = self.state.settings();
        let node = self.state.node();
        crate::cluster::nodes::register(self.state.store(), &node.id, node.cluster.is_some())
            .await
            .map_err(StartupError::Setting)?;
        tracing::info!(node = %node.id, clustered = node.cluster.is_some(), "node registered");
        let heartbeat = crate::cluster::nodes::heartbeat(
            self.state.store().clone(),
            node.id.clone(),
            node.cluster.is_some(),
        );
        // Before any socket subscribes: the fan-out runs in strict order in a cluster.
        crate::cluster::events::start(&self.state);
        let addr = settings.listen;
        let bind_error = |setting: &'static str, addr: SocketAddr| {
            move |source| StartupError::Bind { setting, addr, source }
        };
        let listener = listen(addr).map_err(bind_error(LISTEN, addr))?;
        let local_addr = listener.local_addr().map_err(bind_error(LISTEN, addr))?;
        let redirect = match settings.http_redirect_listen {
            Some(addr) => {
                let listener = listen(addr).map_err(bind_error(REDIRECT_LISTEN, addr))?;
                Some((listener.local_addr().map_err(bind_error(REDIRECT_LISTEN, addr))?, listener))
            }
            None => None,
        };
        let metrics = match settings.metrics_listen {
            Some(addr) => {
                crate::metrics::install().map_err(StartupError::Setting)?;
                let setting = crate::metrics::LISTEN_SETTING;
                let listener = listen(addr).map_err(bind_error(setting, addr))?;
                Some((listener.local_addr().map_err(bind_error(setting, addr))?, listener))
            }
            None => None,
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let router = http::router(self.state.clone());
        let connect_info = router.into_make_service_with_connect_info::<SocketAddr>();
        let task = match &self.tls {
            Some(tls) => {
                // The no-op tap gives the TLS listener axum's `ConnectInfo<SocketAddr>`; the
                // listener sets TCP_NODELAY itself, before the handshake.
                let listener = tls.listener(listener, settings.tls_max_handshakes).tap_io(|_| ());
                let serve = axum::serve(listener, connect_info)
                    .with_graceful_shutdown(stopped(stop_rx.clone()));
                tokio::spawn(async move { serve.await })
            }
            None => {
                tracing::warn!(
                    "BOARDROOM_TLS_CERT is not set: serving plain HTTP, so production must run \
                     behind a TLS-terminating proxy (BOARDROOM_TRUSTED_PROXIES, X-Forwarded-Proto)"
                );
                let listener = listener.tap_io(|tcp| nodelay(tcp));
                let serve = axum::serve(listener, connect_info)
                    .with_graceful_shutdown(stopped(stop_rx.clone()));
                tokio::spawn(async move { serve.await })
            }
        };
        let tls_watch = self.tls.as_ref().map(|tls| tls.watch(settings.tls_reload_poll));
        let redirect = match redirect {
            Some((redirect_addr, listener)) => {
                let public_url = settings.public_url().map_err(StartupError::Setting)?;
                let router = crate::tls::redirect::router(&public_url);
                let serve = axum::serve(listener.tap_io(|tcp| nodelay(tcp)), router)
                    .with_graceful_shutdown(stopped(stop_rx.clone()));
                tracing::info!(addr = %redirect_addr, to = %public_url, "redirecting plain HTTP");
                Some((redirect_addr, tokio::spawn(async move { serve.await })))
            }
            None => None,
        };
        let metrics = metrics.map(|(addr, listener)| {
            crate::metrics::announce(addr);
            let source = Arc::new(self.state.clone());
            let task = crate::metrics::serve(listener, source, stopped(stop_rx.clone()));
            (addr, task)
        });
        let maintenance = tokio::spawn({
            let state = self.state.clone();
            async move {
                let mut every = tokio::time::interval(MAINTENANCE_EVERY);
                if let Err(err) = state.exports().recover().await {
                    tracing::warn!(error = %err, "failing exports left pending failed");
                }
                let mut deletions_ran: Option<tokio::time::Instant> = None;
                loop {
                    every.tick().await;
                    if deletions_ran.is_none_or(|at| at.elapsed() >= crate::deletion::RUN_EVERY) {
                        deletions_ran = Some(tokio::time::Instant::now());
                        match crate::deletion::run_due(&state).await {
                            Ok(ran) if ran.erased + ran.held_back + ran.failed > 0 => {
                                tracing::info!(
                                    erased = ran.erased,
                                    held_back = ran.held_back,
                                    failed = ran.failed,
                                    "due account deletions ran"
                                );
                            }
                            Ok(_) => {}
                            Err(err) => {
                                tracing::warn!(error = %err, "running due deletions failed");
                            }
                        }
                    }
                    if let Err(err) = state.exports().sweep().await {
                        tracing::warn!(error = %err, "deleting expired exports failed");
                    }
                    state.auth().maintain().await;
                    let tickets = crate::ws::tickets::Tickets::new(state.store().clone());
                    if let Err(err) = tickets.prune().await {
                        tracing::warn!(error = %err, "pruning expired WebSocket tickets failed");
                    }
                    let expired = crate::storage::now() - IDEMPOTENCY_WINDOW;
                    if let Err(err) = state.store().prune_idempotency(expired).await {
                        tracing::warn!(error = %err, "pruning idempotency keys failed");
                    }
                }
            }
        });
        let sweep = self
            .state
            .sweeper()
            .clone()
            .spawn(Duration::from_secs(self.state.settings().attachment_sweep_interval_secs));
        let reaper = crate::blob_reaper::spawn(self.state.clone());
        let mail_sender = self.mail_sender.spawn();
        let backups = settings.backup_dir.as_ref().map(|dir| {
            crate::backup::schedule::Schedule {
                store: self.state.store().clone(),
                database_url: settings.effective_database_url(),
                blobs: self.state.vault().store().clone(),
                dir: dir.clone(),
                interval: settings.backup_interval,
                retention: chrono::Duration::days(i64::from(settings.backup_retention_days)),
                status: self.state.backups().clone(),
            }
            .spawn()
        });
        tracing::info!(
            addr = %local_addr,
            tls = self.tls.is_some(),
            backend = self.state.store().backend().as_str(),
            "listening"
        );
        Ok(RunningServer {
            addr: local_addr,
            state: self.state,
            stop_tx,
            task,
            maintenance,
            sweep,
            reaper,
            mail_sender,
            backups,
            heartbeat,
            tls: self.tls,
            tls_watch,
            redirect,
            metrics,
        })
    }
}

const LISTEN: &str = "BOARDROOM_LISTEN (--listen)";
const REDIRECT_LISTEN: &str = "BOARDROOM_HTTP_REDIRECT_LISTEN (--http-redirect-listen)";

/// Resolves once shutdown is asked for.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Without TCP_NODELAY a socket holds back a small frame until the previous one is
/// acknowledged, and the peer delays its ACKs: a burst of events would trickle out.
pub(crate) fn nodelay(tcp: &TcpStream) {
    if let Err(err) = tcp.set_nodelay(true) {
        tracing::debug!(error = %err, "cannot set TCP_NODELAY");
    }
}

/// Connections the kernel may queue before `accept`. tokio's default (1024) overflows when
/// thousands of sockets reconnect at once, and overflowed SYNs wait a second to be retried.
const LISTEN_BACKLOG: u32 = 8192;

fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Opens the store named by the settings.
pub async fn open_store(settings: &Settings) -> Result<Store, StartupError> {
    Ok(Store::open(&settings.effective_database_url(), settings.db_max_connections).await?)
}

/// A server serving in the background.
pub struct RunningServer {
    addr: SocketAddr,
    state: AppState,
    stop_tx: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
    maintenance: JoinHandle<()>,
    sweep: JoinHandle<()>,
    reaper: JoinHandle<()>,
    mail_sender: JoinHandle<()>,
    backups: Option<JoinHandle<()>>,
    heartbeat: JoinHandle<()>,
    tls: Option<Arc<Tls>>,
    tls_watch: Option<JoinHandle<()>>,
    redirect: Option<(SocketAddr, JoinHandle<std::io::Result<()>>)>,
    metrics: Option<(SocketAddr, JoinHandle<std::io::Result<()>>)>,
}

/// How long an `Idempotency-Key` returns its first result; older keys are forgotten.
pub const IDEMPOTENCY_WINDOW: chrono::Duration = chrono::Duration::hours(24);

/// How often caches, rate-limit windows and idempotency keys are pruned.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(300);

impl RunningServer {
    /// The address actually bound (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The address the plain-HTTP redirect listener bound, when there is one.
    pub fn redirect_addr(&self) -> Option<SocketAddr> {
        self.redirect.as_ref().map(|(addr, _)| *addr)
    }

    /// The address the metrics listener bound, when there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(addr, _)| *addr)
    }

    /// TLS as configured, when it is.
    pub fn tls(&self) -> Option<&Arc<Tls>> {
        self.tls.as_ref()
    }

    /// Graceful shutdown: stop accepting, wait up to the grace period for in-flight requests,
    /// then flush and close. Returns whether everything finished inside the grace period.
    pub async fn shutdown(self) -> bool {
        let grace = self.state.settings().shutdown_grace();
        let _ = self.stop_tx.send(true);
        // Upgraded sockets outlive their HTTP request: close them explicitly.
        self.state.ws().shutdown();
        if let Some(watch) = &self.tls_watch {
            watch.abort();
        }
        let side = |listener: Option<(SocketAddr, JoinHandle<std::io::Result<()>>)>| async move {
            match listener {
                Some((_, task)) => {
                    matches!(tokio::time::timeout(grace, task).await, Ok(Ok(Ok(()))))
                }
                None => true,
            }
        };
        let main = tokio::time::timeout(grace, self.task);
        let (main, redirect_drained, metrics_drained) =
            tokio::join!(main, side(self.redirect), side(self.metrics));
        let drained = matches!(main, Ok(Ok(Ok(())))) && redirect_drained && metrics_drained;
        if !drained {
            tracing::warn!(?grace, "in-flight requests did not finish in time; closing anyway");
        }
        self.maintenance.abort();
        self.sweep.abort();
        self.reaper.abort();
        // Whatever is not sent stays in the outbox for the next start.
        self.mail_sender.abort();
        if let Some(backups) = &self.backups {
            // A snapshot cut off here leaves only a `.partial-` directory, removed next run.
            backups.abort();
        }
        let flushed = self.state.runtime().shutdown().await;
        if !flushed {
            tracing::warn!("the actors did not flush completely");
        }
        if let Some(cluster) = self.state.cluster() {
            cluster.leave().await;
        }
        self.heartbeat.abort();
        crate::cluster::nodes::deregister(self.state.store(), &self.state.node().id).await;
        let closed =
            tokio::time::timeout(Duration::from_secs(2), self.state.store().close()).await.is_ok();
        drained && flushed && closed
    }
}

/// Resolves on SIGTERM or Ctrl-C. SIGTERM is caught from the call on, not from the first poll:
/// called before the server starts, a SIGTERM that arrives while it starts (a supervisor that
/// saw it answer) is a graceful stop rather than the signal's default, an abrupt exit.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    async move {
        shutdown_requested(
            #[cfg(unix)]
            terminate,
        )
        .await
    }
}

async fn shutdown_requested(#[cfg(unix)] terminate: std::io::Result<tokio::signal::unix::Signal>) {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match terminate {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// Name of the generated session-signing secret inside the data dir.
const SECRET_FILE: &str = "jwt-secret";

/// Name of the generated audit key inside the data dir.
const AUDIT_KEY_FILE: &str = "audit-key";

/// The secret that signs session tokens: the configured one (at least 32 bytes), or one
/// generated into the data dir on first start, with a warning that production must set its own.
pub fn signing_secret(settings: &Settings) -> Result<Vec<u8>, StartupError> {
    let setting = SecretSetting {
        configured: settings.jwt_secret.as_deref(),
        env: "BOARDROOM_JWT_SECRET",
        flag: "jwt-secret",
        file: SECRET_FILE,
    };
    load_secret(settings, setting, IfMissing::Generate).map_err(StartupError::Setting)
}

/// The key that seals the audit log's checkpoints: the configured one (at least 32 bytes), or
/// the one generated into the data dir (on first start, with a warning, under
/// [`IfMissing::Generate`]).
pub fn audit_key(settings: &Settings, missing: IfMissing) -> Result<AuditKey, StartupError> {
    let setting = SecretSetting {
        configured: settings.audit_key.as_deref(),
        env: "BOARDROOM_AUDIT_KEY",
        flag: "audit-key",
        file: AUDIT_KEY_FILE,
    };
    load_secret(settings, setting, missing).map(AuditKey::new).map_err(StartupError::Setting)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn settings(dir: &Path) -> Settings {
        let mut s = Settings::for_tests(dir.to_owned(), "sqlite::memory:".into());
        s.jwt_secret = None;
        s
    }

    #[test]
    fn generated_secret_is_stable_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = signing_secret(&settings(dir.path())).unwrap();
        let second = signing_secret(&settings(dir.path())).unwrap();
        assert_eq!(first, second);
        assert!(first.len() >= MIN_SECRET_BYTES);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode =
                std::fs::metadata(dir.path().join(SECRET_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "secret file must not be group/world readable");
        }
    }

    #[test]
    fn the_audit_key_is_generated_once_and_never_by_a_command_that_checks() {
        let dir = tempfile::tempdir().unwrap();
        let err = audit_key(&settings(dir.path()), IfMissing::Fail).unwrap_err().to_string();
        assert!(err.starts_with("BOARDROOM_AUDIT_KEY (--audit-key): not set"), "{err}");
        assert!(!dir.path().join(AUDIT_KEY_FILE).exists());
        let key = audit_key(&settings(dir.path()), IfMissing::Generate).unwrap();
        let again = audit_key(&settings(dir.path()), IfMissing::Fail).unwrap();
        let hash = vec![7u8; 32];
        let at = chrono::Utc::now();
        use boardroom_actors::audit_chain::{Seal, SealKind};
        let seal = Seal::sign(&key, SealKind::Checkpoint, 1, hash, at);
        assert!(seal.is_authentic(&again, SealKind::Checkpoint));
        // It is not the session secret.
        let jwt = signing_secret(&settings(dir.path())).unwrap();
        assert!(!seal.is_authentic(&AuditKey::new(jwt), SealKind::Checkpoint));
        let mut s = settings(dir.path());
        s.audit_key = Some("too-short".into());
        let err = audit_key(&s, IfMissing::Generate).unwrap_err().to_string();
        assert!(err.starts_with("BOARDROOM_AUDIT_KEY (--audit-key): must be at least"), "{err}");
    }

    #[test]
    fn short_configured_secret_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings(dir.path());
        s.jwt_secret = Some("too-short".into());
        let err = signing_secret(&s).unwrap_err().to_string();
        assert!(err.starts_with("BOARDROOM_JWT_SECRET"), "{err}");
    }
}
