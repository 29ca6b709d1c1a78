//! The database half of a snapshot, in each backend's own format, and its way back.
//!
//! - SQLite: `VACUUM INTO` writes a compacted copy from one read transaction (WAL lets writers
//!   go on); the rows are then counted in the copy itself.
//! - Postgres: a `REPEATABLE READ` transaction exports its snapshot, counts the rows and reads
//!   the blob names in it, and `pg_dump -Fc --snapshot` dumps exactly that snapshot while the
//!   transaction stays open. `pg_dump` and `pg_restore` are found on `PATH`.
//!
//! Restoring across backends is refused (the formats are each backend's own).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};

use super::{backend_of, sync_dir, BackupError};
use crate::storage::{Backend, Pool, Store};

/// The database file of a SQLite snapshot.
pub const SQLITE_FILE: &str = "database.sqlite3";
/// The database file of a Postgres snapshot (`pg_dump` custom format).
pub const POSTGRES_FILE: &str = "database.pgdump";

/// Tables that describe the running processes, not data: which nodes serve, who holds which
/// lease, the NATS name of the database's cluster. A snapshot holds them empty, so a restored
/// database starts with no live node to refuse beside and names a new cluster (a copy restored
/// beside its original on one NATS must not hear the original's messages).
pub const PROCESS_TABLES: [&str; 3] = ["cluster_identity", "cluster_nodes", "leases"];

/// The table of applied migrations; its count moves when migrations run forward.
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// What a database holds, as a snapshot's manifest records it: the newest migration applied,
/// rows per table, and the blob every attachment row names.
type Contents = (i64, BTreeMap<String, i64>, Vec<String>);

/// Rows per table on `$conn` (either backend's connection), the tables listed by the query
/// `$tables`.
macro_rules! counts {
    ($conn:expr, $tables:expr) => {{
        let tables: Vec<String> = sqlx::query_scalar($tables).fetch_all(&mut *$conn).await?;
        let mut counts = BTreeMap::new();
        for table in tables {
            let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", quote(&table)))
                .fetch_one(&mut *$conn)
                .await?;
            counts.insert(table, n);
        }
        counts
    }};
}

/// [`Contents`] read on `$conn` (either backend's connection), the tables listed by the query
/// `$tables`. A macro, as `on_pool!` is: the same statements compiled for each backend.
macro_rules! contents {
    ($conn:expr, $tables:expr) => {{
        let conn = $conn;
        let counts = counts!(conn, $tables);
        let schema: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success",
        )
        .fetch_one(&mut *conn)
        .await?;
        // Attachments, and the exports built and still kept (sealed like attachments).
        let blobs: Vec<String> = sqlx::query_scalar(
            "SELECT blob_key FROM attachments UNION SELECT blob_key FROM exports \
             WHERE status = 'ready' AND blob_key IS NOT NULL ORDER BY 1",
        )
        .fetch_all(&mut *conn)
        .await?;
        Ok::<Contents, BackupError>((schema, counts, blobs))
    }};
}

const SQLITE_TABLES: &str = "SELECT name FROM sqlite_master WHERE type = 'table' \
     AND name NOT LIKE 'sqlite_%' \
     AND name NOT IN ('cluster_identity', 'cluster_nodes', 'leases') ORDER BY 1";
const POSTGRES_TABLES: &str = "SELECT tablename::text FROM pg_tables \
     WHERE schemaname = current_schema() \
     AND tablename NOT IN ('cluster_identity', 'cluster_nodes', 'leases') ORDER BY 1";

/// What the database snapshot holds.
pub struct Snapshot {
    /// Its backend.
    pub backend: Backend,
    /// Its file inside the snapshot directory.
    pub file: &'static str,
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
    /// The newest migration applied in it.
    pub schema_version: i64,
    /// Rows per table in it.
    pub tables: BTreeMap<String, i64>,
    /// The blob every attachment row in it names.
    pub blob_keys: Vec<String>,
}

/// Takes the database snapshot into `dir`.
pub async fn snapshot(store: &Store, url: &str, dir: &Path) -> Result<Snapshot, BackupError> {
    let (backend, file, taken_at, (schema_version, tables, blob_keys)) = match store.pool() {
        Pool::Sqlite(pool) => {
            let path = dir.join(SQLITE_FILE);
            let text = path
                .to_str()
                .ok_or_else(|| BackupError(format!("{}: not UTF-8", path.display())))?
                .to_owned();
            let taken_at = crate::storage::now();
            sqlx::query("VACUUM INTO $1").bind(text).execute(pool).await?;
            let mut conn = open_sqlite(&path).await?;
            // A single file with no `-wal` beside it: what is hashed is the whole database.
            sqlx::query("PRAGMA journal_mode = DELETE").execute(&mut conn).await?;
            for table in PROCESS_TABLES {
                sqlx::query(&format!("DELETE FROM {table}")).execute(&mut conn).await?;
            }
            let contents = sqlite_contents(&mut conn).await?;
            conn.close().await?;
            (Backend::Sqlite, SQLITE_FILE, taken_at, contents)
        }
        Pool::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await?;
            // Before the snapshot's first query takes it: every write acknowledged before
            // `created_at` is in the snapshot.
            let taken_at = crate::storage::now();
            let exported: String =
                sqlx::query_scalar("SELECT pg_export_snapshot()").fetch_one(&mut *tx).await?;
            let contents = postgres_contents(&mut tx).await?;
            let mut dump = tool("pg_dump", url)?;
            dump.arg("--format=custom")
                .arg("--no-owner")
                .arg("--no-privileges")
                .arg(format!("--snapshot={exported}"))
                .args(PROCESS_TABLES.map(|table| format!("--exclude-table-data={table}")))
                .arg("--file")
                .arg(dir.join(POSTGRES_FILE));
            run(dump, "pg_dump").await?;
            tx.rollback().await?;
            (Backend::Postgres, POSTGRES_FILE, taken_at, contents)
        }
    };
    let path = dir.join(file);
    std::fs::File::open(&path)
        .and_then(|f| f.sync_all())
        .map_err(|e| BackupError::io(path.display(), e))?;
    Ok(Snapshot { backend, file, taken_at, schema_version, tables, blob_keys })
}

/// Puts the snapshot's database file `file` (of `backend`) in place at `url` and answers the
/// rows per table it then holds (before any migration runs). A target holding data is refused
/// unless `force`, and nothing is touched then.
pub async fn restore(
    backend: Backend,
    file: &Path,
    url: &str,
    force: bool,
) -> Result<BTreeMap<String, i64>, BackupError> {
    let target = backend_of(url)?;
    if target != backend {
        return Err(BackupError(format!(
            "this snapshot is of {}, the target database is {}: restoring across backends is \
             not supported (restore into a {} database, or take the snapshot from one of the \
             target's backend)",
            backend.as_str(),
            target.as_str(),
            backend.as_str()
        )));
    }
    match backend {
        Backend::Sqlite => restore_sqlite(file, url, force).await,
        Backend::Postgres => restore_postgres(file, url, force).await,
    }
}

async fn restore_sqlite(
    file: &Path,
    url: &str,
    force: bool,
) -> Result<BTreeMap<String, i64>, BackupError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| BackupError(format!("DATABASE_URL: invalid SQLite URL: {e}")))?;
    let path = options.get_filename().to_owned();
    if path.as_os_str().is_empty() || path.to_str() == Some(":memory:") {
        return Err(BackupError("DATABASE_URL: restore needs a SQLite file".into()));
    }
    if path.exists() {
        let mut conn = open_sqlite(&path).await?;
        let (_, tables, _) = sqlite_contents_or_empty(&mut conn).await?;
        conn.close().await?;
        refuse_unless_forced(&tables, force, &path.display().to_string())?;
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| BackupError::io(dir.display(), e))?;
    let staged = dir.join(format!(".restoring-{}", uuid::Uuid::now_v7().simple()));
    std::fs::copy(file, &staged).and_then(|_| std::fs::File::open(&staged)?.sync_all()).map_err(
        |e| {
            let _ = std::fs::remove_file(&staged);
            BackupError::io(format!("copying the database to {}", staged.display()), e)
        },
    )?;
    // The old database's log and index must not be replayed over the restored file.
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut side = path.clone().into_os_string();
        side.push(suffix);
        match std::fs::remove_file(&side) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(BackupError::io(PathBuf::from(side).display(), e)),
        }
    }
    std::fs::rename(&staged, &path)
        .map_err(|e| BackupError::io(format!("moving the database to {}", path.display()), e))?;
    sync_dir(&dir)?;
    let mut conn = open_sqlite(&path).await?;
    let (_, tables, _) = sqlite_contents(&mut conn).await?;
    conn.close().await?;
    Ok(tables)
}

async fn restore_postgres(
    file: &Path,
    url: &str,
    force: bool,
) -> Result<BTreeMap<String, i64>, BackupError> {
    let mut conn = connect_postgres(url).await?;
    let counts = counts!(&mut conn, POSTGRES_TABLES);
    refuse_unless_forced(&counts, force, &crate::storage::redact_url(url))?;
    // Every table goes, the process tables too: the snapshot brings them back empty.
    let all: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema()",
    )
    .fetch_all(&mut conn)
    .await?;
    if !all.is_empty() {
        let list = all.iter().map(|t| quote(t)).collect::<Vec<_>>().join(", ");
        sqlx::query(&format!("DROP TABLE IF EXISTS {list} CASCADE")).execute(&mut conn).await?;
    }
    let mut load = tool("pg_restore", url)?;
    load.arg("--no-owner")
        .arg("--no-privileges")
        .arg("--single-transaction")
        .arg("--exit-on-error")
        .arg(file);
    run(load, "pg_restore").await?;
    let mut tx = conn.begin().await?;
    let (_, tables, _) = postgres_contents(&mut tx).await?;
    tx.rollback().await?;
    conn.close().await?;
    Ok(tables)
}

fn refuse_unless_forced(
    tables: &BTreeMap<String, i64>,
    force: bool,
    target: &str,
) -> Result<(), BackupError> {
    let rows: i64 =
        tables.iter().filter(|(name, _)| name.as_str() != MIGRATIONS_TABLE).map(|(_, n)| n).sum();
    if rows > 0 && !force {
        return Err(BackupError(format!(
            "the target database {target} holds data ({rows} rows): nothing was changed; give \
             --force to replace it"
        )));
    }
    Ok(())
}

/// Opens a SQLite file on one connection of its own.
pub(crate) async fn open_sqlite(path: &Path) -> Result<SqliteConnection, BackupError> {
    Ok(SqliteConnectOptions::new().filename(path).foreign_keys(true).connect().await?)
}

async fn connect_postgres(url: &str) -> Result<PgConnection, BackupError> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| BackupError(format!("DATABASE_URL: invalid Postgres URL: {e}")))?;
    options.connect().await.map_err(|e| {
        BackupError(format!(
            "DATABASE_URL: cannot connect to {}: {e}",
            crate::storage::redact_url(url)
        ))
    })
}

/// The [`Contents`] of a SQLite database.
pub(crate) async fn sqlite_contents(conn: &mut SqliteConnection) -> Result<Contents, BackupError> {
    contents!(conn, SQLITE_TABLES)
}

/// [`sqlite_contents`] of a file that may not be a Boardroom database yet (a fresh file):
/// only its rows per table.
async fn sqlite_contents_or_empty(conn: &mut SqliteConnection) -> Result<Contents, BackupError> {
    let migrated: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'attachments'",
    )
    .fetch_one(&mut *conn)
    .await?;
    if migrated == 0 {
        return Ok((0, counts!(conn, SQLITE_TABLES), Vec::new()));
    }
    sqlite_contents(conn).await
}

/// The [`Contents`] of a Postgres database, as the transaction `conn` sees them.
pub(crate) async fn postgres_contents(conn: &mut PgConnection) -> Result<Contents, BackupError> {
    contents!(conn, POSTGRES_TABLES)
}

/// A table name as an SQL identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A PostgreSQL client tool pointed at `url`: the password goes in `PGPASSWORD`, never on the
/// command line, where other users of the machine could read it.
fn tool(program: &'static str, url: &str) -> Result<tokio::process::Command, BackupError> {
    let mut parsed = url::Url::parse(url)
        .map_err(|e| BackupError(format!("DATABASE_URL: invalid Postgres URL: {e}")))?;
    let password = parsed
        .password()
        .map(|p| percent_encoding::percent_decode_str(p).decode_utf8_lossy().into_owned());
    let _ = parsed.set_password(None);
    let mut command = tokio::process::Command::new(program);
    command.arg("--dbname").arg(parsed.as_str()).kill_on_drop(true);
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
    Ok(command)
}

/// Runs a PostgreSQL client tool; its stderr's first lines become the error.
async fn run(mut command: tokio::process::Command, program: &str) -> Result<(), BackupError> {
    let output = command.stdin(std::process::Stdio::null()).output().await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            BackupError(format!(
                "{program} was not found on PATH: install the PostgreSQL client tools of the \
                 server's major version (for example the postgresql-client package) or add them \
                 to PATH"
            ))
        } else {
            BackupError::io(format!("cannot run {program}"), e)
        }
    })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let reason = stderr.lines().take(3).collect::<Vec<_>>().join(" / ");
    Err(BackupError(format!("{program} failed ({}): {reason}", output.status)))
}
