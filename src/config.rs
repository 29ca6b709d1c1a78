//! Command line and configuration.
//!
//! Every setting is both a flag and an environment variable. [`Cli::parse_or_exit`] turns a bad
//! value into one line that names the setting by its variable and its flag, and exits non-zero;
//! nothing here panics on input.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use boardroom_actors::plans::{PlanOverrides, PlanTable};
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

/// Boardroom: a real-time work-management server.
#[derive(Debug, Parser)]
#[command(name = "boardroom", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,

    /// Settings shared by every subcommand.
    #[command(flatten)]
    pub settings: Settings,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply migrations, then serve HTTP and WebSocket traffic until SIGTERM or Ctrl-C.
    Serve,
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Validate the configuration and reach the database, then exit.
    CheckConfig,
    /// Platform administration.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The master keys that wrap the attachments' data keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Write a consistent snapshot of the database and the attachment blobs into a new
    /// directory while the server keeps serving. No secret goes into it.
    Backup {
        /// The snapshot's directory; it must not exist yet.
        #[arg(long)]
        out: PathBuf,
    },
    /// Restore a snapshot into the configured database (`--database-url`) and blob store:
    /// checksums verified first, migrations run forward, row counts checked. Stop the servers
    /// first.
    Restore {
        /// The snapshot's directory.
        #[arg(long)]
        from: PathBuf,
        /// Replace a target database that already holds data.
        #[arg(long)]
        force: bool,
    },
}

/// `boardroom keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Introduce a new master key (the generated keyring gets one; with BOARDROOM_MASTER_KEY,
    /// put the new key first in it) and re-wrap every attachment's and export's data key under
    /// it, without rewriting a file. Safe to run again after an interruption (audited).
    Rotate,
    /// Remove a master key that no attachment or export uses any more; refused, with the
    /// counts, while some still do (audited).
    Retire {
        /// The key's id (`mk_…`), as `keys rotate` prints it.
        key_id: String,
    },
}

/// `boardroom admin …`
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Make the account with this email a platform superadmin (audited).
    GrantSuperadmin {
        /// Email of the account.
        email: String,
    },
    /// Take the superadmin flag away from the account with this email (audited).
    RevokeSuperadmin {
        /// Email of the account.
        email: String,
    },
    /// Mark the email address of the account with this email verified, as a verification link
    /// would (audited): for operators without mail, and for support.
    VerifyEmail {
        /// Email of the account.
        email: String,
    },
    /// Erase now every account whose requested deletion is due (the server also does this
    /// hourly); prints how many were erased and how many were held back.
    RunDeletions,
}

/// `boardroom audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the audit log's hash chain; exits 1 at the first broken row.
    Verify,
}

/// Output format of the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Every runtime setting. Each is a flag and an environment variable.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Address to listen on for HTTP and WebSocket traffic.
    #[arg(long, env = "BOARDROOM_LISTEN", default_value = "127.0.0.1:8080", global = true)]
    pub listen: SocketAddr,

    /// Directory for the embedded database and the generated signing secret and audit key.
    #[arg(long, env = "BOARDROOM_DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,

    /// Database to use: `sqlite://PATH` or `postgres://…`. Defaults to SQLite in the data dir.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,

    /// Most database connections the pool opens.
    #[arg(long, env = "BOARDROOM_DB_MAX_CONNECTIONS", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub db_max_connections: u32,

    /// Secret (at least 32 bytes) that signs session tokens. Generated into the data dir when unset.
    #[arg(long, env = "BOARDROOM_JWT_SECRET", hide_env_values = true, global = true)]
    pub jwt_secret: Option<String>,

    /// Secret (at least 32 bytes) that seals the audit log's checkpoints; kept outside the
    /// database so that write access to it cannot forge them. Every node and `audit verify` need
    /// the same one. Generated into the data dir when unset.
    #[arg(long, env = "BOARDROOM_AUDIT_KEY", hide_env_values = true, global = true)]
    pub audit_key: Option<String>,

    /// Master keys that wrap the attachments' data keys, comma-separated, the first active:
    /// each a secret of at least 32 bytes (for example 48 random bytes in base64). Keys after the
    /// first only unwrap: after `keys rotate` they stay until `keys retire` finds them unused.
    /// Unset: a keyring generated into the data dir (`master-key`).
    #[arg(long, env = "BOARDROOM_MASTER_KEY", hide_env_values = true, global = true)]
    pub master_key: Option<Secret>,

    /// Where attachment blobs are kept: unset for `<data dir>/attachments`, or
    /// `s3://bucket[/prefix]` for an S3-compatible store (see the `--attachment-s3-*` settings).
    #[arg(long, env = "BOARDROOM_ATTACHMENT_STORE", global = true)]
    pub attachment_store: Option<String>,

    /// S3 endpoint URL, for a store other than AWS (MinIO, Ceph, a local test server).
    #[arg(long, env = "BOARDROOM_ATTACHMENT_S3_ENDPOINT", global = true)]
    pub attachment_s3_endpoint: Option<url::Url>,

    /// S3 region.
    #[arg(
        long,
        env = "BOARDROOM_ATTACHMENT_S3_REGION",
        default_value = "us-east-1",
        global = true
    )]
    pub attachment_s3_region: String,

    /// S3 access key id. Unset: the usual AWS sources (environment, instance metadata).
    #[arg(long, env = "BOARDROOM_ATTACHMENT_S3_ACCESS_KEY_ID", global = true)]
    pub attachment_s3_access_key_id: Option<String>,

    /// S3 secret access key.
    #[arg(
        long,
        env = "BOARDROOM_ATTACHMENT_S3_SECRET_ACCESS_KEY",
        hide_env_values = true,
        global = true
    )]
    pub attachment_s3_secret_access_key: Option<Secret>,

    /// Allow a plain-HTTP S3 endpoint (a local development or test server only).
    #[arg(
        long,
        env = "BOARDROOM_ATTACHMENT_S3_ALLOW_HTTP",
        default_value_t = false,
        global = true
    )]
    pub attachment_s3_allow_http: bool,

    /// Seconds between sweeps of the blob store for blobs no attachment names (also run at
    /// start, and after deletions).
    #[arg(long, env = "BOARDROOM_ATTACHMENT_SWEEP_INTERVAL_SECS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(10..=604_800), global = true)]
    pub attachment_sweep_interval_secs: u64,

    /// How old a blob no row names must be before the sweep deletes it, so that an upload in
    /// flight (its blob written, its row not yet) is never swept. Not a flag: production uses
    /// an hour; tests shorten it.
    #[arg(skip = DEFAULT_ATTACHMENT_SWEEP_GRACE)]
    pub attachment_sweep_grace: Duration,

    /// Directory for scheduled backups: set, the server writes a snapshot (`backup-<time>`)
    /// there every `--backup-interval`. Unset: no scheduled backups.
    #[arg(long, env = "BOARDROOM_BACKUP_DIR", global = true)]
    pub backup_dir: Option<PathBuf>,

    /// Time between scheduled backups (`24h`, `90m`, `1h 30m`), counted from the newest
    /// complete snapshot; at least one second.
    #[arg(long, env = "BOARDROOM_BACKUP_INTERVAL", default_value = "24h",
          value_parser = parse_interval, global = true)]
    pub backup_interval: Duration,

    /// Days complete scheduled snapshots are kept; older ones are deleted after each backup,
    /// never the newest.
    #[arg(long, env = "BOARDROOM_BACKUP_RETENTION_DAYS", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=36_500), global = true)]
    pub backup_retention_days: u32,

    /// Log filter, in `tracing` EnvFilter syntax (for example `info,boardroom=debug`).
    #[arg(long, env = "BOARDROOM_LOG", default_value = "info", global = true)]
    pub log: String,

    /// Log format.
    #[arg(long, env = "BOARDROOM_LOG_FORMAT", value_enum, default_value = "text", global = true)]
    pub log_format: LogFormat,

    /// Seconds a graceful shutdown waits for in-flight work before it gives up.
    #[arg(long, env = "BOARDROOM_SHUTDOWN_GRACE_SECS", default_value_t = 8,
          value_parser = clap::value_parser!(u64).range(1..=300), global = true)]
    pub shutdown_grace_secs: u64,

    /// The URL clients reach this server at; used for OAuth redirects and the default allowed
    /// WebSocket origin. Defaults to `http://<listen>`.
    #[arg(long, env = "BOARDROOM_PUBLIC_URL", value_parser = parse_public_url, global = true)]
    pub public_url: Option<url::Url>,

    /// PEM file holding the certificate chain (leaf first) the main listener serves HTTPS and
    /// WSS with; needs `--tls-key`. Reloaded on SIGHUP and when the file changes. Unset: plain
    /// HTTP, which production must put behind a TLS-terminating proxy.
    #[arg(long, env = "BOARDROOM_TLS_CERT", global = true)]
    pub tls_cert: Option<PathBuf>,

    /// PEM file holding the private key of `--tls-cert` (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "BOARDROOM_TLS_KEY", global = true)]
    pub tls_key: Option<PathBuf>,

    /// Most TLS handshakes in progress at once. Past it the listener stops accepting until one
    /// finishes or times out (10 s), so a flood of connections that never finish their
    /// handshake holds a bounded amount of memory; waiting connections queue in the kernel.
    #[arg(long, env = "BOARDROOM_TLS_MAX_HANDSHAKES", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub tls_max_handshakes: u32,

    /// How often the certificate and key files are checked for changes. Not a flag; tests
    /// change it.
    #[arg(skip = DEFAULT_TLS_RELOAD_POLL)]
    pub tls_reload_poll: Duration,

    /// Address of a plain-HTTP listener that only redirects: `GET`/`HEAD` get `308` to the same
    /// path on the public URL (which must then be `https://`), anything under `/api/` and any
    /// other method `403 https_required`. Unset: none.
    #[arg(long, env = "BOARDROOM_HTTP_REDIRECT_LISTEN", global = true)]
    pub http_redirect_listen: Option<SocketAddr>,

    /// Address of a listener of its own serving Prometheus metrics at `GET /metrics` (for
    /// example `127.0.0.1:9464`), never with the API. Unset: no metrics are recorded.
    #[arg(long, env = "BOARDROOM_METRICS_LISTEN", global = true)]
    pub metrics_listen: Option<SocketAddr>,

    /// Origins (`scheme://host[:port]`, comma-separated) whose pages may call the API from a
    /// browser, credentials included (CORS). Empty: CORS is off.
    #[arg(long, env = "BOARDROOM_CORS_ORIGINS", value_delimiter = ',', value_parser = parse_origin,
          global = true)]
    pub cors_origins: Vec<String>,

    /// Proxies whose `X-Forwarded-For` (client address) and `X-Forwarded-Proto` (HSTS) are
    /// believed, as comma-separated CIDRs. Empty: none.
    #[arg(long, env = "BOARDROOM_TRUSTED_PROXIES", value_delimiter = ',', global = true)]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// Failed login attempts allowed per (email, client network) in any 15 minutes. A client
    /// network is an IPv4 address or an IPv6 /64. Also wrong current passwords allowed per
    /// account on password change, in any 15 minutes.
    #[arg(long, env = "BOARDROOM_LOGIN_LIMIT", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=10_000), global = true)]
    pub login_limit: u32,

    /// Failed login attempts allowed per client network in any 15 minutes, whatever the email.
    #[arg(long, env = "BOARDROOM_LOGIN_IP_LIMIT", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=100_000), global = true)]
    pub login_ip_limit: u32,

    /// Failed login attempts allowed per account (email) in any hour, from all networks together.
    /// Networks the account signed in from in the last 30 days are not held back by it.
    #[arg(long, env = "BOARDROOM_LOGIN_ACCOUNT_LIMIT", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=100_000), global = true)]
    pub login_account_limit: u32,

    /// Registrations allowed per client network in any 60 seconds.
    #[arg(long, env = "BOARDROOM_REGISTER_LIMIT", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=10_000), global = true)]
    pub register_limit: u32,

    /// Password-reset requests allowed per email address in any hour (the same limit holds
    /// verification-link resends per account). Past it: `429`, and nothing is sent.
    #[arg(long, env = "BOARDROOM_PASSWORD_RESET_LIMIT", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=10_000), global = true)]
    pub password_reset_limit: u32,

    /// Password-reset requests allowed per client network in any hour, whatever the address.
    #[arg(long, env = "BOARDROOM_PASSWORD_RESET_IP_LIMIT", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..=100_000), global = true)]
    pub password_reset_ip_limit: u32,

    /// SMTP server account mail is sent through: `smtp://host:port` (plain),
    /// `smtp://user:pass@host:587?tls=starttls`, or `smtps://user:pass@host:465`. Unset: mail
    /// is off, and each message's link is logged at `info` instead (development).
    #[arg(long, env = "BOARDROOM_SMTP_URL", hide_env_values = true, global = true)]
    pub smtp_url: Option<String>,

    /// The `From` of account mail, as `Name <address>` or a bare address.
    #[arg(
        long,
        env = "BOARDROOM_MAIL_FROM",
        default_value = "Boardroom <boardroom@localhost>",
        global = true
    )]
    pub mail_from: String,

    /// Days an invitation to an organization stays open.
    #[arg(long, env = "BOARDROOM_INVITATION_TTL_DAYS", default_value_t = 7,
          value_parser = clap::value_parser!(u32).range(1..=90), global = true)]
    pub invitation_ttl_days: u32,

    /// Wait before the first retry of a message the SMTP server did not take; each later one
    /// waits twice as long, up to an hour. Not a flag; tests shorten it.
    #[arg(skip = DEFAULT_MAIL_RETRY_BASE)]
    pub mail_retry_base: Duration,

    /// Days a session lives at most from its sign-in, however often it is refreshed; a refresh
    /// past it is refused and the user signs in again.
    #[arg(long, env = "BOARDROOM_SESSION_MAX_DAYS", default_value_t = 90,
          value_parser = clap::value_parser!(u32).range(1..=3650), global = true)]
    pub session_max_days: u32,

    /// Seconds a verified API key is trusted before its stored row is read again (without
    /// bcrypt); a key revoked or re-scoped on another node stops within this. At most 30.
    #[arg(long, env = "BOARDROOM_KEY_CACHE_TTL_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=30), global = true)]
    pub key_cache_ttl_secs: u64,

    /// Threads that run bcrypt, at a lower scheduling priority than the runtime (the runtime
    /// itself never does).
    #[arg(long, env = "BOARDROOM_BCRYPT_THREADS", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..=64), global = true)]
    pub bcrypt_threads: u32,

    /// Google OAuth client id; Google sign-in is off when unset.
    #[arg(long, env = "BOARDROOM_GOOGLE_CLIENT_ID", global = true)]
    pub google_client_id: Option<String>,

    /// Google OAuth client secret.
    #[arg(long, env = "BOARDROOM_GOOGLE_CLIENT_SECRET", hide_env_values = true, global = true)]
    pub google_client_secret: Option<String>,

    /// Google's authorization endpoint.
    #[arg(
        long,
        env = "BOARDROOM_GOOGLE_AUTH_URL",
        default_value = "https://accounts.google.com/o/oauth2/v2/auth",
        global = true
    )]
    pub google_auth_url: url::Url,

    /// Google's token endpoint.
    #[arg(
        long,
        env = "BOARDROOM_GOOGLE_TOKEN_URL",
        default_value = "https://oauth2.googleapis.com/token",
        global = true
    )]
    pub google_token_url: url::Url,

    /// Google's OpenID userinfo endpoint.
    #[arg(
        long,
        env = "BOARDROOM_GOOGLE_USERINFO_URL",
        default_value = "https://openidconnect.googleapis.com/v1/userinfo",
        global = true
    )]
    pub google_userinfo_url: url::Url,

    /// Google's JSON Web Key Set, used to check ID token signatures.
    #[arg(
        long,
        env = "BOARDROOM_GOOGLE_JWKS_URL",
        default_value = "https://www.googleapis.com/oauth2/v3/certs",
        global = true
    )]
    pub google_jwks_url: url::Url,

    /// The `iss` Google's ID tokens carry.
    #[arg(
        long,
        env = "BOARDROOM_GOOGLE_ISSUER",
        default_value = "https://accounts.google.com",
        global = true
    )]
    pub google_issuer: String,

    /// The signing secret of the Stripe webhook endpoint (`whsec_…`). Billing is off, and its
    /// routes answer 404, unless it is set.
    #[arg(long, env = "BOARDROOM_STRIPE_WEBHOOK_SECRET", hide_env_values = true, global = true)]
    pub stripe_webhook_secret: Option<String>,

    /// The Stripe secret API key (`sk_…`) that creates Checkout and Billing Portal sessions.
    #[arg(long, env = "BOARDROOM_STRIPE_SECRET_KEY", hide_env_values = true, global = true)]
    pub stripe_secret_key: Option<String>,

    /// Base URL of the Stripe API (tests point it at a local fake).
    #[arg(
        long,
        env = "BOARDROOM_STRIPE_API_BASE",
        default_value = "https://api.stripe.com",
        value_parser = parse_public_url,
        global = true
    )]
    pub stripe_api_base: url::Url,

    /// Which Stripe price is which plan: comma-separated `price_id=plan` pairs, plans `free`,
    /// `pro` and `enterprise` (for example `price_123=pro,price_456=enterprise`).
    #[arg(long, env = "BOARDROOM_STRIPE_PRICES", value_delimiter = ',',
          value_parser = parse_stripe_price, global = true)]
    pub stripe_prices: Vec<StripePrice>,

    /// Overrides of the `free` plan's limits (defaults in docs/PLANS.md): comma-separated
    /// `name=value` pairs of `boards`, `members`, `api_keys`, `webhooks`, `storage` (bytes, or
    /// with KiB/MiB/GiB/TiB), each a number or `unlimited`; for example
    /// `boards=10,storage=1GiB`. Past a limit, creations answer `402 plan_limit`.
    #[arg(long, env = "BOARDROOM_PLAN_FREE", default_value = "",
          value_parser = parse_plan_overrides, global = true)]
    pub plan_free: PlanOverrides,

    /// Overrides of the `pro` plan's limits, as `BOARDROOM_PLAN_FREE`.
    #[arg(long, env = "BOARDROOM_PLAN_PRO", default_value = "",
          value_parser = parse_plan_overrides, global = true)]
    pub plan_pro: PlanOverrides,

    /// Overrides of the `enterprise` plan's limits (unlimited by default), as
    /// `BOARDROOM_PLAN_FREE`.
    #[arg(long, env = "BOARDROOM_PLAN_ENTERPRISE", default_value = "",
          value_parser = parse_plan_overrides, global = true)]
    pub plan_enterprise: PlanOverrides,

    /// Seconds an export (a personal data export's or an organization export's sealed zip) is
    /// kept; then it answers 404 and is deleted by the next sweep (every 5 minutes and at start).
    #[arg(long, env = "BOARDROOM_EXPORT_TTL_SECS", default_value_t = 604_800,
          value_parser = clap::value_parser!(u64).range(0..=MAX_EXPORT_TTL_SECS), global = true)]
    pub export_ttl_secs: u64,

    /// Days between a person asking for their account's deletion and its erasure; they may
    /// cancel meanwhile. 0 erases at the next run (hourly, or `boardroom admin run-deletions`).
    #[arg(long, env = "BOARDROOM_DELETION_GRACE_DAYS", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(0..=MAX_DELETION_GRACE_DAYS as i64),
          global = true)]
    pub deletion_grace_days: u32,

    /// NATS server that joins this node to a cluster of nodes on the same Postgres database
    /// (`nats://host:4222`): board events, invalidations and forwarded commands travel over it,
    /// and each board's and organization's actor runs on exactly one node, by lease
    /// (`docs/DEPLOYMENT.md`). Unset: this is the only node, and a second one on the same
    /// database is refused. Refused with SQLite.
    #[arg(long, env = "BOARDROOM_NATS_URL", hide_env_values = true, global = true)]
    pub nats_url: Option<String>,

    /// This node's name in the cluster (letters, digits, `-` and `_`, at most 64); a random id
    /// when unset, logged at start. Two live nodes may not share one.
    #[arg(long, env = "BOARDROOM_NODE_ID", value_parser = parse_node_id, global = true)]
    pub node_id: Option<String>,

    /// Seconds a lease on a board's or organization's actor lasts unless renewed (renewed every
    /// third of it); a node that dies loses its boards to the others after this long.
    #[arg(long, env = "BOARDROOM_LEASE_SECS", default_value_t = 6,
          value_parser = clap::value_parser!(u64).range(2..=300), global = true)]
    pub lease_secs: u64,

    /// Seconds a board's actor may sit idle before it stops (it restarts on next use).
    #[arg(long, env = "BOARDROOM_BOARD_IDLE_SECS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=86_400), global = true)]
    pub board_idle_secs: u64,

    /// Most columns one board may hold; one more is refused `422 limit_reached`.
    #[arg(long, env = "BOARDROOM_BOARD_MAX_COLUMNS", default_value_t = 200,
          value_parser = clap::value_parser!(u32).range(1..=100_000), global = true)]
    pub board_max_columns: u32,

    /// Most groups one board may hold; one more is refused `422 limit_reached`.
    #[arg(long, env = "BOARDROOM_BOARD_MAX_GROUPS", default_value_t = 1_000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000), global = true)]
    pub board_max_groups: u32,

    /// Most items (archived ones included) one board may hold; one more is refused
    /// `422 limit_reached`. The board's actor holds them all in memory.
    #[arg(long, env = "BOARDROOM_BOARD_MAX_ITEMS", default_value_t = 100_000,
          value_parser = clap::value_parser!(u32).range(1..=10_000_000), global = true)]
    pub board_max_items: u32,

    /// Most bytes of one attached file; a larger upload is refused `413 payload_too_large` and
    /// nothing of it is kept. Only the upload route reads bodies this large (plus 64 KiB of
    /// multipart framing); every other route keeps its 1 MiB bound.
    #[arg(long, env = "BOARDROOM_ATTACHMENT_MAX_BYTES", default_value_t = 25 * 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(1..=(1u64 << 40)), global = true)]
    pub attachment_max_bytes: u64,

    /// Most files attached to one item (its comments' included); one more is refused
    /// `422 limit_reached`.
    #[arg(long, env = "BOARDROOM_ITEM_MAX_ATTACHMENTS", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=100_000), global = true)]
    pub item_max_attachments: u32,

    /// Most bytes an item's values may take serialized as JSON; a create or change that would
    /// exceed it is refused `413 content_too_large`.
    #[arg(long, env = "BOARDROOM_ITEM_VALUES_MAX_BYTES", default_value_t = 256 * 1024,
          value_parser = clap::value_parser!(u32).range(1024..=16 * 1024 * 1024), global = true)]
    pub item_values_max_bytes: u32,

    /// Most bytes (UTF-8) of an update's (comment's) body; more is refused
    /// `413 content_too_large`.
    #[arg(long, env = "BOARDROOM_UPDATE_BODY_MAX_BYTES", default_value_t = 64 * 1024,
          value_parser = clap::value_parser!(u32).range(1024..=16 * 1024 * 1024), global = true)]
    pub update_body_max_bytes: u32,

    /// Most bytes of events in one page of a board's log: `GET /boards/{board}/events` answers
    /// at most this much (and says `has_more`), and a socket resuming with `after_seq` is sent
    /// its replay in pages of at most this much (and of at most its outbound buffer). A single
    /// larger event still comes, alone in its page.
    #[arg(long, env = "BOARDROOM_EVENTS_PAGE_BYTES", default_value_t = 4 * 1024 * 1024,
          value_parser = clap::value_parser!(u32).range(4096..=256 * 1024 * 1024), global = true)]
    pub events_page_bytes: u32,

    /// Webhook hosts that skip the SSRF address checks, as comma-separated `host:port` pairs
    /// (for example a receiver on 127.0.0.1:9000 in development). Empty: none.
    #[arg(long, env = "BOARDROOM_WEBHOOK_ALLOW", default_value = "", global = true)]
    pub webhook_allow: crate::ssrf::Allowlist,

    /// Consecutive failed webhook delivery attempts after which the webhook is disabled.
    #[arg(long, env = "BOARDROOM_WEBHOOK_DISABLE_AFTER", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..=10_000), global = true)]
    pub webhook_disable_after: u32,

    /// Milliseconds before the first webhook retry; each later retry waits about twice as long
    /// (with jitter), up to an hour, for at most 24 hours.
    #[arg(long, env = "BOARDROOM_WEBHOOK_BACKOFF_BASE_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000), global = true)]
    pub webhook_backoff_base_ms: u64,

    /// Time allowed for one webhook delivery. Not a flag: production always uses the guard's
    /// 10 seconds; tests shorten it explicitly.
    #[arg(skip = crate::ssrf::DELIVERY_TIMEOUT)]
    pub webhook_timeout: Duration,

    /// How often the webhook actor looks for due retries. Not a flag; tests shorten it.
    #[arg(skip = DEFAULT_WEBHOOK_POLL)]
    pub webhook_poll: Duration,

    /// Origins (`scheme://host[:port]`, comma-separated) whose pages may open WebSockets.
    /// Empty: only the public URL's origin. Clients that send no `Origin` (bots) are not affected.
    #[arg(long, env = "BOARDROOM_WS_ORIGINS", value_delimiter = ',', value_parser = parse_origin,
          global = true)]
    pub ws_origins: Vec<String>,

    /// Largest WebSocket message (and frame) a client may send, in bytes.
    #[arg(long, env = "BOARDROOM_WS_MAX_MESSAGE_BYTES", default_value_t = 64 * 1024,
          value_parser = clap::value_parser!(u32).range(1024..=16 * 1024 * 1024), global = true)]
    pub ws_max_message_bytes: u32,

    /// Bytes queued for one WebSocket before it is closed as a slow consumer (code 4008).
    #[arg(long, env = "BOARDROOM_WS_OUTBOUND_BUFFER_BYTES", default_value_t = 1024 * 1024,
          value_parser = clap::value_parser!(u32).range(1024..=256 * 1024 * 1024), global = true)]
    pub ws_outbound_buffer_bytes: u32,

    /// Frames per second one WebSocket may send; beyond it frames are refused `rate_limited`.
    #[arg(long, env = "BOARDROOM_WS_FRAMES_PER_SEC", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=100_000), global = true)]
    pub ws_frames_per_sec: u32,

    /// WebSockets one user may hold open at once (all their browsers and API keys together);
    /// one more is refused `429 rate_limited` before the upgrade.
    #[arg(long, env = "BOARDROOM_WS_MAX_SOCKETS_PER_USER", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000), global = true)]
    pub ws_max_sockets_per_user: u32,

    /// Threads that write frames to the WebSockets, apart from the threads that read
    /// requests, run the actors and wait on the database; default: one per core. Writing one
    /// event to 10,000 sockets queues 10,000 writes, and on shared threads every write path
    /// hop (a commit's completion, the fan-out) would wait behind them.
    #[arg(long, env = "BOARDROOM_WS_DELIVERY_THREADS",
          value_parser = clap::value_parser!(u32).range(1..=64), global = true)]
    pub ws_delivery_threads: Option<u32>,

    /// Seconds of silence from a client after which its WebSocket is closed (code 4000).
    #[arg(long, env = "BOARDROOM_WS_HEARTBEAT_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(3..=3600), global = true)]
    pub ws_heartbeat_secs: u64,

    /// Seconds between re-checks of a WebSocket's session or API key (revocation, expiry).
    #[arg(long, env = "BOARDROOM_WS_AUTH_RECHECK_SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=300), global = true)]
    pub ws_auth_recheck_secs: u64,

    /// bcrypt cost. Not a flag: production always uses 12; tests lower it explicitly.
    #[arg(skip = DEFAULT_BCRYPT_COST)]
    pub bcrypt_cost: u32,
}

/// How old an unnamed blob must be before the attachment sweep deletes it, in production.
pub const DEFAULT_ATTACHMENT_SWEEP_GRACE: Duration = Duration::from_secs(3600);

/// A secret setting: shown as `***` by `Debug`, so printing the settings never reveals it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// First wait before a failed message is tried again, in production.
pub const DEFAULT_MAIL_RETRY_BASE: Duration = Duration::from_secs(10);

/// How often the webhook actor looks for due retries in production.
pub const DEFAULT_WEBHOOK_POLL: Duration = Duration::from_secs(1);

/// How often the TLS certificate and key files are checked for changes in production.
pub const DEFAULT_TLS_RELOAD_POLL: Duration = Duration::from_secs(5);

/// The bcrypt cost the security page promises.
pub const DEFAULT_BCRYPT_COST: u32 = 12;

/// The longest grace period before an erasure (`BOARDROOM_DELETION_GRACE_DAYS`): a year.
pub const MAX_DELETION_GRACE_DAYS: u32 = 365;

/// The longest an export may be kept (`BOARDROOM_EXPORT_TTL_SECS`): ten years.
pub const MAX_EXPORT_TTL_SECS: u64 = 315_360_000;

fn parse_interval(raw: &str) -> Result<Duration, String> {
    let interval = humantime::parse_duration(raw.trim()).map_err(|e| e.to_string())?;
    if interval < Duration::from_secs(1) {
        return Err("must be at least 1s".into());
    }
    Ok(interval)
}

fn parse_public_url(raw: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(raw).map_err(|e| e.to_string())?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(url),
        _ => Err("must be an http(s) URL with a host".into()),
    }
}

/// A Stripe price and the plan it buys (`BOARDROOM_STRIPE_PRICES`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripePrice {
    /// Stripe's price id.
    pub price: String,
    /// The plan.
    pub plan: boardroom_protocol::billing::Plan,
}

fn parse_plan_overrides(raw: &str) -> Result<PlanOverrides, String> {
    raw.parse()
}

fn parse_stripe_price(raw: &str) -> Result<StripePrice, String> {
    let (price, plan) = raw.trim().split_once('=').ok_or("expected price_id=plan")?;
    let price = price.trim();
    if price.is_empty() || !price.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(format!("{price:?} is not a Stripe price id"));
    }
    let plan = boardroom_protocol::billing::Plan::parse(plan.trim())
        .ok_or_else(|| format!("{:?} is not a plan (free, pro, enterprise)", plan.trim()))?;
    Ok(StripePrice { price: price.to_owned(), plan })
}

/// `raw` as an origin (`scheme://host[:port]`, http or https), serialized as browsers send it.
pub fn parse_origin(raw: &str) -> Result<String, String> {
    let url = url::Url::parse(raw.trim()).map_err(|e| e.to_string())?;
    let origin = url.origin();
    if !origin.is_tuple() || !matches!(url.scheme(), "http" | "https") {
        return Err("must be an origin like https://app.example.com".into());
    }
    Ok(origin.ascii_serialization())
}

impl Settings {
    /// The database URL in effect: the configured one, or SQLite inside the data dir.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("boardroom.db").display()),
        }
    }

    /// The URL clients reach this server at: the configured one, or `http://<listen>`.
    pub fn public_url(&self) -> Result<url::Url, String> {
        match &self.public_url {
            Some(url) => Ok(url.clone()),
            None => url::Url::parse(&format!("http://{}", self.listen))
                .map_err(|e| format!("BOARDROOM_PUBLIC_URL (--public-url): cannot derive it: {e}")),
        }
    }

    /// What each plan allows an organization to hold: the documented defaults with the
    /// `BOARDROOM_PLAN_*` overrides applied.
    pub fn plan_limits(&self) -> PlanTable {
        let defaults = PlanTable::default();
        PlanTable {
            free: self.plan_free.applied_to(defaults.free),
            pro: self.plan_pro.applied_to(defaults.pro),
            enterprise: self.plan_enterprise.applied_to(defaults.enterprise),
        }
    }

    /// How much each board may hold.
    pub fn board_limits(&self) -> boardroom_actors::bounds::BoardLimits {
        boardroom_actors::bounds::BoardLimits {
            columns: self.board_max_columns as usize,
            groups: self.board_max_groups as usize,
            items: self.board_max_items as usize,
            item_values_bytes: self.item_values_max_bytes as usize,
            update_body_bytes: self.update_body_max_bytes as usize,
            attachments_per_item: self.item_max_attachments as usize,
        }
    }

    /// How long a graceful shutdown may take.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    /// Settings for an in-process server: the clap defaults (no environment read), listening on
    /// an ephemeral port, with the few test values below.
    pub fn for_tests(data_dir: PathBuf, database_url: String) -> Self {
        // Start from the clap defaults so a default changed in its attribute reaches the tests
        // too; only what tests need differently is set here.
        let mut settings = Settings::defaults();
        settings.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        settings.data_dir = data_dir;
        settings.database_url = Some(database_url);
        settings.db_max_connections = 8;
        settings.jwt_secret = Some("test-secret-test-secret-test-secret-0123".into());
        // Generated into the data dir, where `audit verify` run on the same dir finds it.
        settings.audit_key = None;
        settings.log = "warn".into();
        settings.shutdown_grace_secs = 5;
        // Tests register many users from 127.0.0.1; the limit's own test lowers it again.
        settings.register_limit = 10_000;
        // Revocation tests wait for this; one second keeps them quick.
        settings.ws_auth_recheck_secs = 1;
        // Cost 12 costs ~250 ms a hash; tests that do not check the cost itself use 4.
        settings.bcrypt_cost = 4;
        // Tests make many boards, keys and webhooks in one free organization; the plan limits'
        // own tests (tests/plans.rs) set small ones.
        settings.plan_free = PlanOverrides::unlimited();
        settings
    }

    /// Every setting at its clap default, as `boardroom` with no flags would parse it, except
    /// that no `BOARDROOM_*` environment variable is read: a developer's shell must not change
    /// what the tests run with.
    #[allow(clippy::expect_used)] // the defaults are constants of this file; a test parses them
    fn defaults() -> Settings {
        use clap::{Args, FromArgMatches};
        let command = Settings::augment_args(clap::Command::new("boardroom"))
            .mut_args(|arg| arg.env(None::<&'static str>));
        let matches = command
            .try_get_matches_from(["boardroom"])
            .expect("the clap defaults of every setting parse");
        Settings::from_arg_matches(&matches).expect("the clap defaults of every setting parse")
    }
}

/// A node id: what may appear in a NATS subject token and a log line as it is.
fn parse_node_id(raw: &str) -> Result<String, String> {
    let ok = !raw.is_empty()
        && raw.len() <= 64
        && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(raw.to_owned())
    } else {
        Err("a node id is 1 to 64 letters, digits, '-' or '_'".into())
    }
}

impl Cli {
    /// Parses the process arguments. Help and version exit 0; a bad value prints one line naming
    /// the setting and exits 2.
    pub fn parse_or_exit() -> Cli {
        match Cli::try_parse() {
            Ok(cli) => cli,
            Err(err) => {
                match err.kind() {
                    ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                        let _ = err.print();
                        std::process::exit(0);
                    }
                    ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                        let _ = err.print();
                        std::process::exit(2);
                    }
                    _ => {}
                }
                eprintln!("error: {}", one_line(&err));
                std::process::exit(2);
            }
        }
    }
}

/// Renders a clap error as one line that names the environment variable and the flag.
fn one_line(err: &clap::Error) -> String {
    let arg = match err.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    let value = match err.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    let setting = arg.as_deref().map(setting_name);
    let reason = std::error::Error::source(err)
        .map(|s| s.to_string())
        .or_else(|| {
            let first = err.to_string();
            first.lines().next().map(|l| l.trim_start_matches("error: ").to_owned())
        })
        .unwrap_or_default();
    match (setting, value, err.kind()) {
        (Some(setting), Some(value), ErrorKind::ValueValidation | ErrorKind::InvalidValue) => {
            format!("invalid value {value:?} for {setting}: {reason}")
        }
        _ => reason,
    }
}

/// `--listen <LISTEN>` becomes `BOARDROOM_LISTEN (--listen)`.
fn setting_name(rendered: &str) -> String {
    let long = rendered.split_whitespace().next().unwrap_or(rendered).trim_start_matches("--");
    let cmd = Cli::command();
    let env = cmd
        .get_arguments()
        .find(|a| a.get_long() == Some(long))
        .and_then(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned());
    match env {
        Some(env) => format!("{env} (--{long})"),
        None => format!("--{long}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_id_is_one_subject_token_of_plain_characters() {
        for good in ["node-a", "n_1", "A", &"x".repeat(64)] {
            assert_eq!(parse_node_id(good).as_deref(), Ok(good));
        }
        // A dot would split a NATS subject; `*` and `>` are its wildcards.
        for hostile in ["", "a.b", "*", ">", "a b", "a\0b", "a\nb", "é", &"x".repeat(65)] {
            assert!(parse_node_id(hostile).is_err(), "{hostile:?} was accepted");
        }
    }

    fn test_settings() -> Settings {
        Settings::for_tests(PathBuf::from("/tmp/unused"), "sqlite::memory:".into())
    }

    /// What tests leave alone is exactly the clap default: a default changed in its `#[arg]`
    /// attribute reaches `for_tests` with no second copy to update.
    #[test]
    fn test_settings_are_the_clap_defaults() {
        let cli = Cli::try_parse_from(["boardroom", "check-config"]).unwrap();
        let parsed = cli.settings;
        let tests = test_settings();
        assert_eq!(tests.board_max_items, parsed.board_max_items);
        assert_eq!(tests.board_max_columns, 200);
        assert_eq!(tests.events_page_bytes, parsed.events_page_bytes);
        assert_eq!(tests.ws_heartbeat_secs, parsed.ws_heartbeat_secs);
        assert_eq!(tests.login_limit, parsed.login_limit);
        assert_eq!(tests.google_issuer, parsed.google_issuer);
        assert_eq!(tests.webhook_poll, DEFAULT_WEBHOOK_POLL);
        // What tests need differently.
        assert_eq!(tests.bcrypt_cost, 4);
        assert_eq!(tests.listen.port(), 0);
    }

    /// Backup intervals read as people write them; under a second is refused, naming the
    /// setting.
    #[test]
    fn backup_interval_is_humantime_and_at_least_a_second() {
        let parse = |v: &str| Cli::try_parse_from(["boardroom", "--backup-interval", v, "serve"]);
        assert_eq!(parse("24h").unwrap().settings.backup_interval, Duration::from_secs(86_400));
        assert_eq!(parse("1h 30m").unwrap().settings.backup_interval, Duration::from_secs(5_400));
        assert_eq!(test_settings().backup_interval, Duration::from_secs(86_400));
        assert_eq!(test_settings().backup_retention_days, 30);
        for bad in ["500ms", "soon", "0s"] {
            let err = one_line(&parse(bad).unwrap_err());
            assert!(err.contains("BOARDROOM_BACKUP_INTERVAL (--backup-interval)"), "{err}");
        }
    }

    /// A developer's `BOARDROOM_*` variables do not leak into the tests' settings.
    #[test]
    fn test_settings_ignore_the_environment() {
        std::env::set_var("BOARDROOM_WS_FRAMES_PER_SEC", "7");
        let tests = test_settings();
        std::env::remove_var("BOARDROOM_WS_FRAMES_PER_SEC");
        assert_eq!(tests.ws_frames_per_sec, 50);
    }
}
