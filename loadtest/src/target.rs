//! The server under load: either one this tool starts and stops itself, or a running one named
//! by `--url`.
//!
//! A managed server is the real `boardroom` binary (by default the one built next to this tool)
//! run as `boardroom serve` on a free loopback port, with a fresh database: a temporary SQLite
//! directory, or with `--database-url` a new Postgres database `boardroom_bench_<random>` that is
//! dropped afterwards. Its login and registration limits are raised so the benchmark measures
//! the server, not its rate limiter; every other setting keeps its production default. Its logs
//! go to a file beside the JSON report. It is stopped with SIGTERM, like a deployment would.
//!
//! Only loopback addresses are ever targeted, both for `--url` and for the database.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use boardroom_protocol::health::{Backend, Readiness};
use rand::Rng;
use tokio::process::{Child, Command};

/// How to reach (or start) the server. Shared by every scenario.
#[derive(Debug, Clone, clap::Args)]
pub struct TargetArgs {
    /// Target a running server at this loopback URL instead of starting one. Its login and
    /// registration limits must be high enough for the scenario.
    #[arg(long, env = "LOADTEST_URL", global = true)]
    pub url: Option<url::Url>,

    /// The `boardroom` binary to start. Default: the one next to this tool's binary.
    #[arg(long, env = "LOADTEST_SERVER_BIN", global = true, conflicts_with = "url")]
    pub server_bin: Option<PathBuf>,

    /// Run the started server on Postgres: a fresh database is created on this loopback server
    /// and dropped afterwards. Default: SQLite in a temporary directory.
    #[arg(long, env = "LOADTEST_DATABASE_URL", global = true, conflicts_with = "url")]
    pub database_url: Option<url::Url>,

    /// `BOARDROOM_BCRYPT_THREADS` of the started server. Default: the server's own default.
    #[arg(long, global = true, conflicts_with = "url",
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub server_bcrypt_threads: Option<u32>,

    /// `BOARDROOM_LOG` of the started server (its production default is `info`).
    #[arg(long, default_value = "info", global = true)]
    pub server_log: String,

    /// Seconds to wait for the started server's `/readyz`.
    #[arg(long, default_value_t = 60, global = true)]
    pub ready_timeout_secs: u64,

    /// Settings of the started server that override [`RELAXED_LIMITS`] for one scenario
    /// (`login-flood` needs the real per-IP login limit); set by the scenario, not a flag.
    #[arg(skip)]
    pub server_env: Vec<(String, String)>,
}

/// Limits the managed server gets, far above what a benchmark run can reach. The per-socket
/// frame limit is raised for the `fanout` writer, which sends hundreds of commands a second on
/// one socket in its saturated phase; the socket scenarios open thousands as one user; the
/// `backup` scenario fills a hundred boards in one free organization, one API key per filling socket.
pub(crate) const RELAXED_LIMITS: [(&str, &str); 6] = [
    ("BOARDROOM_PLAN_FREE", "boards=unlimited,api_keys=unlimited"),
    ("BOARDROOM_REGISTER_LIMIT", "10000"),
    ("BOARDROOM_LOGIN_LIMIT", "10000"),
    ("BOARDROOM_LOGIN_IP_LIMIT", "100000"),
    ("BOARDROOM_WS_FRAMES_PER_SEC", "100000"),
    ("BOARDROOM_WS_MAX_SOCKETS_PER_USER", "1000000"),
];

/// The server a scenario runs against.
pub struct Target {
    base: url::Url,
    backend: String,
    managed: Option<ManagedServer>,
    bcrypt_threads: Option<u32>,
    server_bin: Option<PathBuf>,
}

struct ManagedServer {
    child: Child,
    log_path: PathBuf,
    // The SQLite database and the signing secret live here; removed on Drop.
    data_dir: tempfile::TempDir,
    postgres: Option<BenchDatabase>,
}

pub(crate) struct BenchDatabase {
    admin_url: url::Url,
    name: String,
}

impl Target {
    /// Starts a server (or checks the one at `--url`) and waits until it is ready. The server's
    /// output goes to `server_log`.
    pub async fn start(args: &TargetArgs, server_log: &Path) -> anyhow::Result<Target> {
        if let Some(url) = &args.url {
            ensure_loopback(url, "--url")?;
            let base = url.clone();
            let backend = wait_ready(&base, Duration::from_secs(args.ready_timeout_secs), None)
                .await
                .with_context(|| format!("{base} is not ready"))?;
            return Ok(Target {
                base,
                backend,
                managed: None,
                bcrypt_threads: None,
                server_bin: None,
            });
        }
        let bin = server_binary(args)?;
        let data_dir = tempfile::Builder::new()
            .prefix("boardroom-bench-")
            .tempdir()
            .context("cannot create a temporary data directory")?;
        let postgres = match &args.database_url {
            Some(admin) => {
                ensure_loopback(admin, "--database-url")?;
                Some(BenchDatabase::create(admin).await?)
            }
            None => None,
        };
        let started = spawn_server(&bin, args, data_dir.path(), postgres.as_ref(), server_log);
        let (child, base) = match started {
            Ok(started) => started,
            Err(err) => {
                if let Some(db) = postgres {
                    db.drop_quietly().await;
                }
                return Err(err);
            }
        };
        let mut target = Target {
            base: base.clone(),
            backend: String::new(),
            managed: Some(ManagedServer {
                child,
                log_path: server_log.to_owned(),
                data_dir,
                postgres,
            }),
            bcrypt_threads: args.server_bcrypt_threads.or(Some(2)),
            server_bin: Some(bin),
        };
        let timeout = Duration::from_secs(args.ready_timeout_secs);
        let child = target.managed.as_mut().map(|m| &mut m.child);
        match wait_ready(&base, timeout, child).await {
            Ok(backend) => {
                target.backend = backend;
                Ok(target)
            }
            Err(err) => {
                let tail = log_tail(server_log);
                let _ = target.stop().await;
                Err(err.context(format!("the server did not become ready; its log ends:\n{tail}")))
            }
        }
    }

    /// The server's base URL, `http://127.0.0.1:<port>/`.
    pub fn base_url(&self) -> &url::Url {
        &self.base
    }

    /// The database backend the server reports (`sqlite` or `postgres`).
    pub fn backend(&self) -> &str {
        &self.backend
    }

    /// Whether this tool started the server.
    pub fn is_managed(&self) -> bool {
        self.managed.is_some()
    }

    /// bcrypt threads of a managed server (its setting, or the server's default of 2).
    pub fn bcrypt_threads(&self) -> Option<u32> {
        self.bcrypt_threads
    }

    /// The process id of a managed server.
    pub fn server_pid(&self) -> Option<u32> {
        self.managed.as_ref().and_then(|m| m.child.id())
    }

    /// The Postgres database created for a managed server.
    pub fn database_name(&self) -> Option<&str> {
        self.managed.as_ref()?.postgres.as_ref().map(|db| db.name.as_str())
    }

    /// The URL of the Postgres database created for a managed server (for tools like pgbench
    /// that measure the same database).
    pub fn postgres_url(&self) -> Option<url::Url> {
        self.managed.as_ref()?.postgres.as_ref().map(BenchDatabase::url)
    }

    /// The data dir of a managed server.
    pub fn data_dir(&self) -> Option<&Path> {
        self.managed.as_ref().map(|m| m.data_dir.path())
    }

    /// The database URL of a managed server: its Postgres database, or `None` for SQLite in its
    /// data dir.
    pub fn database_url(&self) -> Option<String> {
        self.postgres_url().map(|url| url.to_string())
    }

    /// The Postgres server's admin URL a managed server's database was created on.
    pub fn postgres_admin_url(&self) -> Option<url::Url> {
        self.managed.as_ref()?.postgres.as_ref().map(|db| db.admin_url.clone())
    }

    /// Where a managed server's log goes (other logs of the run go beside it).
    pub fn log_path(&self) -> Option<&Path> {
        self.managed.as_ref().map(|m| m.log_path.as_path())
    }

    /// The binary of a managed server.
    pub fn server_binary(&self) -> Option<&Path> {
        self.server_bin.as_deref()
    }

    /// Stops a managed server with SIGTERM (killing it if it does not exit in time) and drops its
    /// Postgres database. A server named by `--url` is left running.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let Some(mut managed) = self.managed.take() else { return Ok(()) };
        let gone_already = managed.child.try_wait().ok().flatten();
        let status = terminate(&mut managed.child).await;
        if let Some(db) = managed.postgres.take() {
            db.drop_quietly().await;
        }
        if let Some(status) = gone_already {
            bail!(
                "the server exited ({status}) before this tool stopped it; a clean exit means \
                 something else sent it SIGTERM or SIGINT. Its log ({}) ends:\n{}",
                managed.log_path.display(),
                log_tail(&managed.log_path)
            );
        }
        match status? {
            status if status.success() => Ok(()),
            status => bail!(
                "the server exited with {status}; its log ({}) ends:\n{}",
                managed.log_path.display(),
                log_tail(&managed.log_path)
            ),
        }
    }
}

/// Refuses any host but loopback (or, for a database, a local socket with no host).
pub(crate) fn ensure_loopback(url: &url::Url, flag: &str) -> anyhow::Result<()> {
    let loopback = match url.host() {
        // An empty host is a database's local socket (`postgres:///db?host=/run/postgresql`).
        Some(url::Host::Domain("")) => url.scheme().starts_with("postgres"),
        // Non-http schemes (`postgres://`) leave even an IP address as an opaque name.
        Some(url::Host::Domain(name)) => match name.trim_matches(['[', ']']).parse::<IpAddr>() {
            Ok(ip) => ip.is_loopback(),
            Err(_) => name.eq_ignore_ascii_case("localhost"),
        },
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => url.scheme().starts_with("postgres"),
    };
    if loopback {
        Ok(())
    } else {
        bail!("{flag}: only loopback hosts (127.0.0.0/8, ::1, localhost) may be targeted: {url}")
    }
}

fn server_binary(args: &TargetArgs) -> anyhow::Result<PathBuf> {
    let bin = match &args.server_bin {
        Some(bin) => bin.clone(),
        None => {
            let exe = std::env::current_exe().context("cannot locate this tool's binary")?;
            let dir = exe.parent().ok_or_else(|| anyhow!("{} has no directory", exe.display()))?;
            dir.join(format!("boardroom{}", std::env::consts::EXE_SUFFIX))
        }
    };
    if !bin.is_file() {
        bail!(
            "no server binary at {}: build it with `cargo build --release -p boardroom \
             -p boardroom-loadtest`, or pass --server-bin or --url",
            bin.display()
        );
    }
    Ok(bin)
}

/// A loopback port nobody listens on right now. The server binds it a moment later; another
/// process taking it in between makes the start fail visibly, never silently.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .context("cannot find a free loopback port")?;
    Ok(listener.local_addr().context("cannot read the free port")?.port())
}

fn spawn_server(
    bin: &Path,
    args: &TargetArgs,
    data_dir: &Path,
    postgres: Option<&BenchDatabase>,
    log_path: &Path,
) -> anyhow::Result<(Child, url::Url)> {
    let port = free_port()?;
    let base = url::Url::parse(&format!("http://127.0.0.1:{port}/"))?;
    if let Some(dir) = log_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let log = std::fs::File::create(log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    let log_err = log.try_clone().context("cannot share the server log")?;

    let mut command = clean_command(bin);
    command.arg("serve");
    let secret: String = rand::thread_rng()
        .sample_iter(rand::distributions::Alphanumeric)
        .take(48)
        .map(char::from)
        .collect();
    command
        .env("BOARDROOM_LISTEN", format!("127.0.0.1:{port}"))
        .env("BOARDROOM_DATA_DIR", data_dir)
        .env("BOARDROOM_JWT_SECRET", secret)
        .env("BOARDROOM_LOG", &args.server_log)
        // The log is a file; no colour codes in it.
        .env("NO_COLOR", "1")
        .envs(RELAXED_LIMITS)
        .envs(args.server_env.iter().map(|(key, value)| (key.as_str(), value.as_str())));
    if let Some(db) = postgres {
        command.env("DATABASE_URL", db.url().as_str());
    }
    if let Some(threads) = args.server_bcrypt_threads {
        command.env("BOARDROOM_BCRYPT_THREADS", threads.to_string());
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err))
        // A panic or `?` in this tool must not leave the server running.
        .kill_on_drop(true);
    let child = command.spawn().with_context(|| format!("cannot start {}", bin.display()))?;
    Ok((child, base))
}

/// `bin` without the `BOARDROOM_*` and `DATABASE_URL` variables of this shell, which would
/// change what is measured.
pub(crate) fn clean_command(bin: &Path) -> Command {
    let mut command = Command::new(bin);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("BOARDROOM_") || key == "DATABASE_URL" {
            command.env_remove(key.as_ref());
        }
    }
    command
}

/// Polls `/readyz` until it answers 200, the child exits, or `timeout` passes. Returns the
/// backend the server names.
pub(crate) async fn wait_ready(
    base: &url::Url,
    timeout: Duration,
    mut child: Option<&mut Child>,
) -> anyhow::Result<String> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .context("cannot build an HTTP client")?;
    let url = base.join("readyz")?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(child) = child.as_deref_mut() {
            if let Some(status) = child.try_wait().context("cannot watch the server")? {
                bail!("the server exited with {status} before it was ready");
            }
        }
        let last = match client.get(url.clone()).send().await {
            Ok(response) if response.status().is_success() => {
                let ready: Readiness =
                    response.json().await.context("/readyz answered no readiness")?;
                let backend = match ready.backend {
                    Backend::Sqlite => "sqlite",
                    Backend::Postgres => "postgres",
                };
                return Ok(backend.to_owned());
            }
            Ok(response) => format!("/readyz answered {}", response.status()),
            Err(err) => err.to_string(),
        };
        if Instant::now() >= deadline {
            bail!("not ready after {timeout:?}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SIGTERM, then up to 20 s (the server's grace is 8 s) before a kill.
pub(crate) async fn terminate(child: &mut Child) -> anyhow::Result<std::process::ExitStatus> {
    if let Some(status) = child.try_wait()? {
        return Ok(status);
    }
    send_sigterm(child);
    match tokio::time::timeout(Duration::from_secs(20), child.wait()).await {
        Ok(status) => Ok(status?),
        Err(_) => {
            child.kill().await.context("cannot kill the server")?;
            bail!("the server did not stop within 20 s of SIGTERM and was killed")
        }
    }
}

#[cfg(unix)]
fn send_sigterm(child: &mut Child) {
    use rustix::process::{kill_process, Pid, Signal};
    let pid = child.id().and_then(|id| i32::try_from(id).ok()).and_then(Pid::from_raw);
    if let Some(pid) = pid {
        let _ = kill_process(pid, Signal::TERM);
    }
}

#[cfg(not(unix))]
fn send_sigterm(child: &mut Child) {
    // No SIGTERM here; `terminate` kills the server after its timeout.
    let _ = child.start_kill();
}

/// The last lines of the server's log, for error messages.
pub fn log_tail(path: &Path) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(20)..].join("\n")
        }
        Err(err) => format!("(cannot read {}: {err})", path.display()),
    }
}

impl BenchDatabase {
    pub(crate) async fn create(admin: &url::Url) -> anyhow::Result<BenchDatabase> {
        let suffix: u64 = rand::thread_rng().gen();
        let name = format!("boardroom_bench_{suffix:016x}");
        let mut conn = connect(admin).await?;
        // The name is ours (hex digits only), so it is safe to splice into the statement.
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .with_context(|| format!("cannot create database {name}"))?;
        close(conn).await;
        Ok(BenchDatabase { admin_url: admin.clone(), name })
    }

    /// The URL of the bench database: the admin URL with its database swapped.
    pub(crate) fn url(&self) -> url::Url {
        let mut url = self.admin_url.clone();
        url.set_path(&self.name);
        url
    }

    /// Drops the database; a failure is reported on stderr, since the run itself is done.
    pub(crate) async fn drop_quietly(self) {
        let result = async {
            let mut conn = connect(&self.admin_url).await?;
            sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
                .execute(&mut conn)
                .await?;
            close(conn).await;
            anyhow::Ok(())
        }
        .await;
        if let Err(err) = result {
            eprintln!("warning: could not drop database {}: {err:#}", self.name);
        }
    }
}

async fn connect(url: &url::Url) -> anyhow::Result<sqlx::PgConnection> {
    use sqlx::Connection;
    sqlx::PgConnection::connect(url.as_str())
        .await
        .with_context(|| format!("cannot connect to Postgres at {}", redact(url)))
}

async fn close(conn: sqlx::PgConnection) {
    use sqlx::Connection;
    let _ = conn.close().await;
}

/// The URL without its password, for messages.
fn redact(url: &url::Url) -> url::Url {
    let mut url = url.clone();
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_is_targeted() {
        let ok =
            ["http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:80", "http://127.5.0.1"];
        for url in ok {
            assert!(ensure_loopback(&url::Url::parse(url).unwrap(), "--url").is_ok(), "{url}");
        }
        let refused = ["http://10.0.0.1:80", "http://example.com", "http://192.168.1.2"];
        for url in refused {
            assert!(ensure_loopback(&url::Url::parse(url).unwrap(), "--url").is_err(), "{url}");
        }
        let ok = ["postgres://postgres@127.0.0.1:5432/postgres", "postgres://u@[::1]/db"];
        for url in ok {
            let url = url::Url::parse(url).unwrap();
            assert!(ensure_loopback(&url, "--database-url").is_ok(), "{url}");
        }
        let remote = url::Url::parse("postgres://postgres@10.1.2.3:5432/postgres").unwrap();
        assert!(ensure_loopback(&remote, "--database-url").is_err());
        let socket = url::Url::parse("postgres:///postgres?host=/run/postgresql").unwrap();
        assert!(ensure_loopback(&socket, "--database-url").is_ok());
    }

    #[test]
    fn bench_database_url_swaps_only_the_database() {
        let db = BenchDatabase {
            admin_url: url::Url::parse(
                "postgres://postgres:pw@127.0.0.1:5432/postgres?sslmode=disable",
            )
            .unwrap(),
            name: "boardroom_bench_00ff".into(),
        };
        assert_eq!(
            db.url().as_str(),
            "postgres://postgres:pw@127.0.0.1:5432/boardroom_bench_00ff?sslmode=disable"
        );
        assert_eq!(redact(&db.admin_url).password(), Some("***"));
    }
}
