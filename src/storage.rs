//! Storage: one interface over embedded SQLite and Postgres.
//!
//! [`Store`] owns the connection pool of whichever backend `DATABASE_URL` names. Each query is
//! written once and compiled for both backends by [`on_pool!`](crate::on_pool): the SQL uses
//! `$N` placeholders, which both drivers accept, and values whose types both drivers encode
//! (UUIDs as `uuid`/BLOB, times as `timestamptz`/RFC 3339 text, JSON as `jsonb`/text, and the
//! event log's payloads as `json`/text through [`JsonText`]).
//!
//! Tenant data is reached only through [`TenantStore`], a handle bound to one organization id
//! that every tenant query filters on; there is no way to ask it for another organization's rows.
//! Platform-level data (users, sessions, the audit chain) hangs off [`Store`] directly.
//!
//! Migrations live in `migrations/postgres` and `migrations/sqlite`, are embedded in the binary,
//! and are applied at start by [`Store::migrate`].

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use boardroom_actors::audit_chain::AuditKey;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use uuid::Uuid;

mod api_keys;
mod attachment_keys;
mod attachments;
mod audit;
mod billing;
mod boards;
mod cluster;
mod deletion;
mod email_tokens;
mod exports;
mod invitations;
mod item_batches;
mod json_text;
mod mail_outbox;
mod oauth_states;
mod orgs;
mod rate_limits;
mod sessions;
mod users;
mod webhooks;
mod ws_tickets;

pub use api_keys::{ApiKeyChanges, ApiKeyRow, NewApiKey};
pub use attachment_keys::{Rewrapped, Sealed, WrappedKeyRow, BLOB_KEYS_PER_QUERY};
pub use attachments::StoredAttachment;
pub use audit::{AuditRow, ChainReport, Resealed};
pub use boards::{BoardListing, EventKindRow, EventPage, EventRow, EVENT_OVERHEAD_BYTES};
pub use cluster::{Fence, LeaseKind, NodeConflict, NodeRow, NOT_LEASED};
pub use deletion::{Erasure, DELETED_USER};
pub use email_tokens::{NewEmailToken, ResetDone, TokenPurpose, Verified};
pub use exports::{AuthoredAttachment, AuthoredComment, AuthoredItem, ExportRow, SessionRecord};
pub use invitations::{Closed, InvitationRow};
pub use json_text::JsonText;
pub use mail_outbox::{MailRow, NewMail};
pub use oauth_states::{NewOAuthState, OAuthStateRow};
pub use orgs::{MemberRow, OrganizationRow};
pub use rate_limits::{Bucket, FullBucket};
pub use sessions::NewSession;
pub use sessions::SessionRow;
pub use users::NewUser;
pub use users::UserRow;
pub use webhooks::{
    AttemptRecord, DeliveryJob, DeliveryRow, NewWebhook, WebhookAfterAttempt, WebhookChanges,
    WebhookRow, WebhookUpdate, WEBHOOK_LIMIT_REACHED,
};
pub use ws_tickets::{NewWsTicket, RedeemedWsTicket};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Runs `$body` with `$pool` bound to the concrete pool of `$store`'s backend. The body is
/// compiled once per backend, so a query written inside it is type-checked against both.
#[macro_export]
#[doc(hidden)]
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store.pool() {
            $crate::storage::Pool::Sqlite($pool) => $body,
            $crate::storage::Pool::Postgres($pool) => $body,
        }
    };
}

/// [`on_pool!`] for statements that write outside a transaction: on SQLite they first take this
/// process's write turn ([`Store::sqlite_write_turn`]), as [`transaction!`] does, so writers
/// queue in order instead of sleeping in SQLite's busy handler.
#[macro_export]
#[doc(hidden)]
macro_rules! write_on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store.pool() {
            $crate::storage::Pool::Sqlite($pool) => {
                let _turn = $store.sqlite_write_turn().lock().await;
                $body
            }
            $crate::storage::Pool::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body` inside one transaction, with `$conn` bound to the backend's connection. The body
/// evaluates to a [`StorageResult`]; `Ok` commits, `Err` (or an early `?`) rolls back. SQLite
/// transactions begin `IMMEDIATE`, so a read-then-write never fails on a lock upgrade.
#[macro_export]
#[doc(hidden)]
macro_rules! transaction {
    ($store:expr, $conn:ident => $body:expr) => {
        match $store.pool() {
            $crate::storage::Pool::Sqlite(pool) => {
                let _turn = $store.sqlite_write_turn().lock().await;
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let result: $crate::storage::StorageResult<_> = async {
                    let $conn = &mut *tx;
                    $body
                }
                .await;
                // Rolled back here, not when dropped: the write lock must be free before the
                // turn is (a cancelled caller still leaves the rollback to the pool).
                match &result {
                    Ok(_) => tx.commit().await?,
                    Err(_) => tx.rollback().await?,
                }
                result
            }
            $crate::storage::Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let result: $crate::storage::StorageResult<_> = async {
                    let $conn = &mut *tx;
                    $body
                }
                .await;
                match &result {
                    Ok(_) => tx.commit().await?,
                    Err(_) => tx.rollback().await?,
                }
                result
            }
        }
    };
}

/// The connection pool of one backend.
#[derive(Clone, Debug)]
pub enum Pool {
    /// Embedded SQLite (single node).
    Sqlite(SqlitePool),
    /// Postgres (production, several nodes).
    Postgres(PgPool),
}

/// Which backend a [`Store`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite.
    Sqlite,
    /// Postgres.
    Postgres,
}

impl Backend {
    /// Lower-case name, as reported by `/readyz`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The row asked for does not exist (or is not visible to this tenant).
    #[error("not found")]
    NotFound,
    /// A unique constraint was violated; carries the constraint or index name when known.
    #[error("unique constraint violated: {0}")]
    Unique(String),
    /// The database aborted the transaction to break a deadlock or a serialization conflict;
    /// nothing changed and the same request may simply be retried.
    #[error("transient conflict: {0}")]
    Transient(String),
    /// A rule of the data model refused the change (for example, removing the last admin).
    #[error("{0}")]
    Rule(&'static str),
    /// Any other database failure.
    #[error(transparent)]
    Database(sqlx::Error),
    /// A migration failed.
    #[error(transparent)]
    Migrate(sqlx::migrate::MigrateError),
}

impl StorageError {
    /// Classifies a sqlx error: missing rows and unique violations get their own variants.
    pub fn from_sqlx(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::RowNotFound => StorageError::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StorageError::Unique(db.constraint().unwrap_or_else(|| db.message()).to_owned())
            }
            // Postgres: deadlock_detected, serialization_failure. SQLite: busy/locked.
            sqlx::Error::Database(db)
                if matches!(db.code().as_deref(), Some("40P01" | "40001" | "5" | "6" | "517")) =>
            {
                StorageError::Transient(db.message().to_owned())
            }
            _ => StorageError::Database(err),
        }
    }
}

impl StorageError {
    /// The database's reason, when it refused the data itself (an invalid value, a constraint
    /// other than uniqueness, a trigger's refusal, a value too large): writing the same rows
    /// again would fail again. `None` for everything else, which may pass on a retry (a lost
    /// connection, a lock, a unique clash with a concurrent writer). The reason is the
    /// database's message, which names the rule, not the row's values.
    pub fn data_refusal(&self) -> Option<String> {
        let db = match self {
            StorageError::Database(sqlx::Error::Database(db)) => db,
            StorageError::Database(sqlx::Error::Encode(err)) => return Some(err.to_string()),
            _ => return None,
        };
        let code = db.code()?;
        let refused = if db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some() {
            // SQLSTATE: data exception, integrity constraint (unique aside), program limit
            // exceeded, raised by a trigger.
            ["22", "23", "54", "P0001"].iter().any(|class| code.starts_with(class))
                && code != "23505"
        } else {
            // SQLite result codes: constraint (unique and primary key aside), too big, mismatch.
            code.parse::<i32>()
                .is_ok_and(|code| matches!(code & 0xff, 18..=20) && !matches!(code, 1555 | 2067))
        };
        refused.then(|| format!("{code}: {}", db.message()))
    }
}

impl From<sqlx::Error> for StorageError {
    fn from(err: sqlx::Error) -> Self {
        StorageError::from_sqlx(err)
    }
}

impl StorageError {
    /// Whether retrying the same work may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StorageError::Transient(_))
    }
}

/// Result of storage calls.
pub type StorageResult<T> = Result<T, StorageError>;

/// Why the store could not be opened; each message names the setting to fix.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The URL names neither SQLite nor Postgres, or cannot be parsed.
    #[error("DATABASE_URL: {0}")]
    BadUrl(String),
    /// The database could not be reached or created.
    #[error("DATABASE_URL: cannot connect to {url}: {reason}")]
    Unreachable {
        /// The URL with any password replaced.
        url: String,
        /// The driver's reason.
        reason: String,
    },
}

/// Readiness of the store, as `/readyz` reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Readiness {
    /// The database answered a trivial query.
    pub database: bool,
    /// Every embedded migration is applied and none failed.
    pub migrations_current: bool,
    /// Versions of embedded migrations not applied yet.
    pub pending_migrations: Vec<i64>,
}

impl Readiness {
    /// Ready to serve traffic.
    pub fn is_ready(&self) -> bool {
        self.database && self.migrations_current
    }
}

/// The database behind Boardroom. Cheap to clone: the pools are shared.
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
    /// The collector that writes item-only batches of many boards together.
    item_batches: item_batches::ItemBatches,
    /// SQLite: this process's write transactions take turns here, in order of arrival, rather
    /// than in SQLite's busy handler, which sleeps up to 100 ms between tries.
    sqlite_writer: Arc<tokio::sync::Mutex<()>>,
    /// The audit key, when loaded: audit rows are then written erasable (hash version 2, keyed
    /// commitments; `boardroom_actors::audit_chain`), and erasure can keep them verifiable.
    audit_key: Option<Arc<AuditKey>>,
    /// With several nodes, the board leases this node holds: board commits are fenced on them
    /// (`storage::cluster`). Empty on one node.
    fence: cluster::FenceCell,
}

impl Store {
    /// Opens a pool for `url`. SQLite files are created (with their directory) on first use and
    /// run in WAL mode.
    pub async fn open(url: &str, max_connections: u32) -> Result<Store, OpenError> {
        let unreachable = |e: sqlx::Error| OpenError::Unreachable {
            url: redact_url(url),
            reason: one_line_reason(&e),
        };
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|e| OpenError::BadUrl(format!("invalid SQLite URL: {e}")))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            let path = options.get_filename().to_owned();
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| OpenError::Unreachable {
                    url: redact_url(url),
                    reason: format!("cannot create {}: {e}", dir.display()),
                })?;
            }
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .map_err(unreachable)?;
            Ok(Store::on(Pool::Sqlite(pool)))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url)
                .map_err(|e| OpenError::BadUrl(format!("invalid Postgres URL: {e}")))?
                // A command is acknowledged after its commit: it must be on disk by then,
                // whatever the role's or database's default says.
                .options([("synchronous_commit", "on")])
                // Every statement here is prepared once and run with different values; Postgres
                // would otherwise go on planning the board-batch statement afresh at every
                // execution (its custom plans never cost more than the generic one), which was
                // 13% of Postgres's CPU on a hot board (loadtest/README, "History").
                .options([("plan_cache_mode", "force_generic_plan")]);
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options)
                .await
                .map_err(unreachable)?;
            Ok(Store::on(Pool::Postgres(pool)))
        } else {
            Err(OpenError::BadUrl(format!(
                "unsupported scheme in {:?}: use sqlite://PATH or postgres://…",
                redact_url(url)
            )))
        }
    }

    /// A store on `pool`, with its item-batch collector started.
    fn on(pool: Pool) -> Store {
        let sqlite_writer = Arc::default();
        let fence = cluster::FenceCell::default();
        let writer =
            item_batches::Writer::new(pool.clone(), Arc::clone(&sqlite_writer), fence.clone());
        Store {
            item_batches: item_batches::ItemBatches::start(writer),
            pool,
            sqlite_writer,
            audit_key: None,
            fence,
        }
    }

    /// This store, writing audit rows erasable under `key` (every server and subcommand that
    /// appends to the chain loads it).
    pub fn with_audit_key(mut self, key: Arc<AuditKey>) -> Store {
        self.audit_key = Some(key);
        self
    }

    /// The audit key, if loaded.
    pub fn audit_key(&self) -> Option<&Arc<AuditKey>> {
        self.audit_key.as_ref()
    }

    /// The backend's pool; queries use it through [`on_pool!`](crate::on_pool).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// SQLite: the turn a write of this process waits for ([`transaction!`], [`write_on_pool!`]).
    pub fn sqlite_write_turn(&self) -> &tokio::sync::Mutex<()> {
        &self.sqlite_writer
    }

    /// Which backend this store runs on.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    fn migrator(&self) -> &'static Migrator {
        match self.pool {
            Pool::Sqlite(_) => &SQLITE_MIGRATIONS,
            Pool::Postgres(_) => &POSTGRES_MIGRATIONS,
        }
    }

    /// Applies every pending embedded migration.
    pub async fn migrate(&self) -> StorageResult<()> {
        let migrator = self.migrator();
        on_pool!(self, pool => migrator.run(pool).await).map_err(StorageError::Migrate)?;
        Ok(())
    }

    /// Whether the database answers and its migrations are current.
    pub async fn readiness(&self) -> Readiness {
        let applied: Result<Vec<(i64, bool)>, sqlx::Error> = on_pool!(self, pool => {
            sqlx::query_as("SELECT version, success FROM _sqlx_migrations").fetch_all(pool).await
        });
        match applied {
            Ok(applied) => {
                let pending: Vec<i64> = self
                    .migrator()
                    .iter()
                    .map(|m| m.version)
                    .filter(|v| !applied.iter().any(|(a, ok)| a == v && *ok))
                    .collect();
                let failed = applied.iter().any(|(_, ok)| !ok);
                Readiness {
                    database: true,
                    migrations_current: pending.is_empty() && !failed,
                    pending_migrations: pending,
                }
            }
            Err(err) => {
                // The table is missing before the first migration; anything else is an outage.
                let database = on_pool!(self, pool => {
                    sqlx::query("SELECT 1").execute(pool).await.is_ok()
                });
                if database {
                    tracing::debug!(error = %err, "migration table unreadable");
                }
                Readiness {
                    database,
                    migrations_current: false,
                    pending_migrations: self.migrator().iter().map(|m| m.version).collect(),
                }
            }
        }
    }

    /// A handle for the data of one organization; every query through it filters on `org`.
    pub fn tenant(&self, org: Uuid) -> TenantStore<'_> {
        TenantStore { store: self, org }
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }
}

/// The data of one organization. Obtained from [`Store::tenant`]; every query binds the
/// organization id it was made with, so a tenant query cannot forget it.
#[derive(Clone, Copy, Debug)]
pub struct TenantStore<'a> {
    store: &'a Store,
    org: Uuid,
}

impl<'a> TenantStore<'a> {
    /// The organization this handle is bound to.
    pub fn org_id(&self) -> Uuid {
        self.org
    }

    /// The backend's pool; tenant queries use it through [`on_pool!`](crate::on_pool) and bind
    /// [`Self::org_id`] in every statement.
    pub fn pool(&self) -> &'a Pool {
        self.store.pool()
    }

    /// SQLite: the turn a write of this process waits for ([`write_on_pool!`]).
    pub fn sqlite_write_turn(&self) -> &'a tokio::sync::Mutex<()> {
        self.store.sqlite_write_turn()
    }
}

/// A new time-ordered id (UUIDv7).
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

/// Current time, truncated to microseconds so it round-trips through both backends unchanged.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    let now = chrono::Utc::now();
    chrono::DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// Replaces the password in a database URL, so it can be shown in errors and logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

fn one_line_reason(err: &sqlx::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text.replace('\n', " ")
}
