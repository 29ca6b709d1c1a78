//! Test harness: a real server per test, on a fresh database of either backend.
//!
//! - SQLite: a new file in a temporary directory.
//! - Postgres: a new database on `TEST_DATABASE_URL` (default
//!   `postgres://postgres@127.0.0.1:5432/postgres`), dropped when the test ends. Where Postgres is
//!   unreachable the Postgres half prints one line and is skipped, except under `CI=true`, where
//!   it fails: a CI run that did not test Postgres is not green.
//!
//! [`both_backends!`] turns one `async fn(&TestServer)` into a test per backend.

#![allow(dead_code)] // shared by every test module; not each uses every helper

use std::net::SocketAddr;

use boardroom::config::Settings;
use boardroom::server::{App, RunningServer};
use reqwest::Method;
use serde_json::Value;

/// Which database a test server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Defines a `sqlite` and a `postgres` test for each named `async fn(&TestServer)`.
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $crate::harness::run(crate::harness::Backend::Sqlite, |s| Box::pin(super::$name(s))).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $crate::harness::run(crate::harness::Backend::Postgres, |s| Box::pin(super::$name(s))).await;
            }
        }
    )+};
}
pub(crate) use both_backends;

/// Runs `test` against a fresh server on `backend`, then shuts the server down.
pub async fn run<F>(backend: Backend, test: F)
where
    F: for<'a> FnOnce(
        &'a TestServer,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>>,
{
    let Some(database) = TestDatabase::create(backend).await else { return };
    let server = TestServer::start_on(database).await;
    test(&server).await;
    server.stop().await;
}

/// The admin URL of the Postgres server used by tests.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database made for one test, removed when dropped.
pub struct TestDatabase {
    pub backend: Backend,
    pub url: String,
    pub dir: tempfile::TempDir,
    pg_name: Option<String>,
}

impl TestDatabase {
    /// A fresh database, or `None` when Postgres is unreachable outside CI.
    pub async fn create(backend: Backend) -> Option<TestDatabase> {
        let dir = tempfile::tempdir().expect("tempdir");
        match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("boardroom.db").display());
                Some(TestDatabase { backend, url, dir, pg_name: None })
            }
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let mut conn = match sqlx_connect(&admin).await {
                    Ok(conn) => conn,
                    Err(err) => {
                        if std::env::var("CI").as_deref() == Ok("true") {
                            panic!("CI=true but Postgres at {admin} is unreachable: {err}");
                        }
                        eprintln!("skipping the Postgres half: {admin} is unreachable ({err})");
                        return None;
                    }
                };
                let name = format!("boardroom_test_{}", uuid::Uuid::now_v7().simple());
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let mut url = url::Url::parse(&admin).expect("TEST_DATABASE_URL");
                url.set_path(&name);
                Some(TestDatabase { backend, url: url.to_string(), dir, pg_name: Some(name) })
            }
        }
    }

    /// Settings for a server on this database.
    pub fn settings(&self) -> Settings {
        Settings::for_tests(self.dir.path().to_owned(), self.url.clone())
    }
}

async fn sqlx_connect(url: &str) -> Result<sqlx::PgConnection, sqlx::Error> {
    use sqlx::Connection;
    sqlx::PgConnection::connect(url).await
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else { return };
        let admin = postgres_admin_url();
        // Drop runs inside the test's runtime; a separate thread gets a runtime of its own.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut conn) = sqlx_connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// A real server on an ephemeral port, with an HTTP client pointed at it.
pub struct TestServer {
    pub database: TestDatabase,
    running: Option<RunningServer>,
    addr: SocketAddr,
    http: reqwest::Client,
}

impl TestServer {
    /// Starts a server on `database`.
    pub async fn start_on(database: TestDatabase) -> TestServer {
        Self::start_with(database, |_| {}).await
    }

    /// Starts a server on `database` after `tune` adjusts its settings.
    pub async fn start_with(
        database: TestDatabase,
        tune: impl FnOnce(&mut Settings),
    ) -> TestServer {
        let mut settings = database.settings();
        tune(&mut settings);
        let running = App::build(settings).await.expect("build app").spawn().await.expect("spawn");
        let addr = running.addr();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        TestServer { database, running: Some(running), addr, http }
    }

    /// Which backend this server runs on.
    pub fn backend(&self) -> Backend {
        self.database.backend
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// An absolute URL for `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The server's state, for assertions that look beneath the HTTP edge.
    pub fn state(&self) -> &boardroom::http::AppState {
        self.running.as_ref().expect("running").state()
    }

    /// A request builder; finish it with [`Call::send`].
    pub fn call(&self, method: Method, path: &str) -> Call {
        Call { builder: self.http.request(method, self.url(path)) }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path).send().await
    }

    /// Graceful shutdown; asserts it finished in time.
    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            assert!(running.shutdown().await, "server did not shut down cleanly");
        }
    }
}

/// A request being built.
pub struct Call {
    builder: reqwest::RequestBuilder,
}

impl Call {
    /// Sets a bearer token.
    pub fn bearer(self, token: &str) -> Call {
        Call { builder: self.builder.bearer_auth(token) }
    }

    /// Sets a header.
    pub fn header(self, name: &str, value: &str) -> Call {
        Call { builder: self.builder.header(name, value) }
    }

    /// Sets a JSON body.
    pub fn json(self, body: &Value) -> Call {
        Call { builder: self.builder.json(body) }
    }

    /// Sets a raw body with a content type.
    pub fn raw(self, content_type: &str, body: impl Into<reqwest::Body>) -> Call {
        Call { builder: self.builder.header("content-type", content_type).body(body) }
    }

    /// Sends it and reads the whole answer.
    pub async fn send(self) -> Reply {
        let response = self.builder.send().await.expect("request failed");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply { status, headers, body }
    }
}

/// A whole HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The error code of an error body.
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("<no error code>")
    }

    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.body);
        &self.body
    }

    /// Asserts an error status and code.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status, self.error_code()),
            (status, code),
            "unexpected answer; body: {}",
            self.body
        );
    }
}
