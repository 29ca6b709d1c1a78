//! [`AppState`]: what every edge shares (the store, the settings, authentication, the actors,
//! Google sign-in, the WebSocket gateway, billing, the attachment vault and its sweeper, the scheduled backups' status). It
//! sits beneath the edges so that `http`, `auth` and `ws` each depend on it, never on one
//! another for it. It is also what the metrics listener samples at each scrape.

use std::sync::Arc;

use boardroom_actors::supervisor::Runtime;

use crate::attachments::sweep::Sweeper;
use crate::attachments::Vault;
use crate::auth::google::Google;
use crate::auth::Auth;
use crate::backup::schedule::BackupStatus;
use crate::billing::Billing;
use crate::config::Settings;
use crate::exports::Exporter;
use crate::storage::Store;

/// State shared by every handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<AppInner>,
}

struct AppInner {
    store: Store,
    settings: Settings,
    auth: Auth,
    runtime: Runtime,
    google: Google,
    ws: crate::ws::Gateway,
    billing: Option<Arc<Billing>>,
    vault: Arc<Vault>,
    sweeper: Arc<Sweeper>,
    exports: Exporter,
    backups: Arc<BackupStatus>,
    node: crate::cluster::Node,
}

impl AppState {
    /// Builds the state from its parts; fails only if the WebSocket writers' threads cannot
    /// start.
    pub fn new(
        store: Store,
        settings: Settings,
        auth: Auth,
        runtime: Runtime,
        billing: Option<Arc<Billing>>,
        vault: Arc<Vault>,
        node: crate::cluster::Node,
    ) -> std::io::Result<Self> {
        let google = Google::from_settings(&settings);
        let ws = crate::ws::Gateway::start(&settings, runtime.boards().bus())?;
        let sweeper =
            Arc::new(Sweeper::new(vault.clone(), store.clone(), settings.attachment_sweep_grace));
        let exports = Exporter::new(
            store.clone(),
            vault.clone(),
            runtime.boards().clone(),
            &settings.data_dir,
            settings.export_ttl_secs,
        );
        let inner = AppInner {
            store,
            settings,
            auth,
            runtime,
            google,
            ws,
            billing,
            vault,
            sweeper,
            exports,
            backups: Arc::default(),
            node,
        };
        Ok(AppState { inner: Arc::new(inner) })
    }

    /// This node: its id, and its cluster when it runs with NATS.
    pub fn node(&self) -> &crate::cluster::Node {
        &self.inner.node
    }

    /// The cluster this node belongs to; `None` when it is the only node (no NATS).
    pub fn cluster(&self) -> Option<&Arc<crate::cluster::Cluster>> {
        self.inner.node.cluster.as_ref()
    }

    /// What the scheduled backups have done in this process.
    pub fn backups(&self) -> &Arc<BackupStatus> {
        &self.inner.backups
    }

    /// Exports: building, keeping, serving and deleting them.
    pub fn exports(&self) -> &Exporter {
        &self.inner.exports
    }

    /// Billing with Stripe; `None` when it is off.
    pub fn billing(&self) -> Option<&Arc<Billing>> {
        self.inner.billing.as_ref()
    }

    /// The attachment vault: sealing, opening and deleting encrypted blobs.
    pub fn vault(&self) -> &Arc<Vault> {
        &self.inner.vault
    }

    /// The orphan sweep of the blob store: [`Sweeper::poke`] after a deletion,
    /// [`Sweeper::run_once`] to sweep now.
    pub fn sweeper(&self) -> &Arc<Sweeper> {
        &self.inner.sweeper
    }

    /// Authentication and org-level authorization.
    pub fn auth(&self) -> &Auth {
        &self.inner.auth
    }

    /// The board registry.
    pub fn boards(&self) -> &boardroom_actors::boards::Boards {
        self.inner.runtime.boards()
    }

    /// The supervised actors.
    pub fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The settings in effect.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The WebSocket gateway.
    pub fn ws(&self) -> &crate::ws::Gateway {
        &self.inner.ws
    }

    /// Google sign-in, as configured.
    pub fn google(&self) -> &Google {
        &self.inner.google
    }
}

#[async_trait::async_trait]
impl crate::metrics::Source for AppState {
    async fn sample(&self) -> crate::metrics::Sample {
        let runtime = self.runtime();
        let pending = self.store().webhook_outbox_pending().await;
        if let Err(err) = &pending {
            tracing::warn!(error = %err, "metrics: counting pending webhook deliveries failed");
        }
        crate::metrics::Sample {
            ws_subscriptions: self.ws().fanout().len(),
            board_actors: runtime.boards().running_actors(),
            actor_restarts: runtime.restarts(),
            audit_queue: runtime.audit().queued(),
            audit_set_aside: runtime.audit().set_aside_total(),
            bcrypt_queue: self.auth().hasher().waiting(),
            webhook_outbox_pending: pending.ok(),
        }
    }
}
