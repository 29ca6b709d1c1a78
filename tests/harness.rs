//! Test harness: a real server per test, on a fresh database of either backend.
//!
//! - SQLite: a new file in a temporary directory.
//! - Postgres: a new database on `TEST_DATABASE_URL` (default
//!   `postgres://postgres@127.0.0.1:5432/postgres`), dropped when the test ends. Where Postgres is
//!   unreachable the Postgres half prints one line and is skipped, except under `CI=true`, where
//!   it fails: a CI run that did not test Postgres is not green.
//!
//! [`both_backends!`] turns one `async fn(&TestServer)` into a test per backend. Oracle tests run
//! Python through [`python`], which sets up its own pinned environment on first use.

#![allow(dead_code)] // shared by every test module; not each uses every helper

use std::net::SocketAddr;

use boardroom::config::Settings;
use boardroom::server::{App, RunningServer};
use reqwest::Method;
use serde_json::Value;

mod venv;
pub use venv::python;

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
    run_with(backend, |_| {}, test).await;
}

/// Like [`run`], with `tune` adjusting the server's settings first.
pub async fn run_with<F>(backend: Backend, tune: impl FnOnce(&mut Settings), test: F)
where
    F: for<'a> FnOnce(
        &'a TestServer,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>>,
{
    let Some(database) = TestDatabase::create(backend).await else { return };
    let server = TestServer::start_with(database, tune).await;
    test(&server).await;
    server.stop().await;
}

/// Like [`both_backends!`], with a settings tweak applied to every server:
/// `both_backends_with!(tune_fn; test_a, test_b)`.
macro_rules! both_backends_with {
    ($tune:ident; $($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $crate::harness::run_with(crate::harness::Backend::Sqlite, super::$tune, |s| Box::pin(super::$name(s))).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $crate::harness::run_with(crate::harness::Backend::Postgres, super::$tune, |s| Box::pin(super::$name(s))).await;
            }
        }
    )+};
}
pub(crate) use both_backends_with;

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

    /// Graceful shutdown that keeps the database, so a test can start another server on it
    /// (`App::build(settings)`); [`TestServer::state`] is gone afterwards. Returns whether the
    /// shutdown was clean.
    pub async fn stop_keeping_database(&mut self) -> bool {
        match self.running.take() {
            Some(running) => running.shutdown().await,
            None => true,
        }
    }

    /// Graceful shutdown; asserts it finished in time.
    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            assert!(running.shutdown().await, "server did not shut down cleanly");
        }
    }
}

/// A signed-in user, as the tests use one.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub password: String,
    pub access_token: String,
    pub refresh_token: String,
    pub session_id: String,
}

impl TestServer {
    /// Moves a board's stored `seq` forward by `by` behind its actor's back, as another node
    /// writing the board would.
    pub async fn move_board_seq(&self, board: &str, by: i64) {
        let board: uuid::Uuid = board.parse().unwrap();
        boardroom::on_pool!(self.state().store(), pool => {
            sqlx::query("UPDATE boards SET seq = seq + $2 WHERE id = $1")
                .bind(board).bind(by).execute(pool).await.unwrap();
        });
    }

    /// `POST path` with a JSON body and an optional bearer token.
    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        let mut call = self.call(Method::POST, path).json(body);
        if let Some(token) = token {
            call = call.bearer(token);
        }
        call.send().await
    }

    /// `GET path` with a bearer token.
    pub async fn get_as(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path).bearer(token).send().await
    }

    /// `method path` with a bearer token and an optional JSON body.
    pub async fn send_as(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> Reply {
        let mut call = self.call(method, path).bearer(token);
        if let Some(body) = body {
            call = call.json(body);
        }
        call.send().await
    }

    /// Registers a fresh user named `name` (unique email) and returns their session.
    pub async fn register(&self, name: &str) -> TestUser {
        let email = format!("{name}-{}@example.com", uuid::Uuid::now_v7().simple());
        let password = format!("pw-{name}-long-enough");
        let reply = self
            .post(
                "/api/v1/auth/register",
                None,
                &serde_json::json!({ "email": email, "password": password, "name": name }),
            )
            .await;
        let body = reply.expect(201).clone();
        TestUser {
            id: body["user"]["id"].as_str().unwrap().to_owned(),
            email,
            password,
            access_token: body["access_token"].as_str().unwrap().to_owned(),
            refresh_token: body["refresh_token"].as_str().unwrap().to_owned(),
            session_id: body["session_id"].as_str().unwrap().to_owned(),
        }
    }

    /// `POST /auth/login` as `user` with their password.
    pub async fn login(&self, user: &TestUser) -> Reply {
        self.post(
            "/api/v1/auth/login",
            None,
            &serde_json::json!({ "email": user.email, "password": user.password }),
        )
        .await
    }

    /// Sets `user`'s organization role, acting as `admin`.
    pub async fn set_org_role(
        &self,
        admin: &TestUser,
        org: &str,
        user: &TestUser,
        role: &str,
    ) -> Reply {
        self.send_as(
            Method::PATCH,
            &format!("/api/v1/orgs/{org}/members/{}", user.id),
            &admin.access_token,
            Some(&serde_json::json!({ "role": role })),
        )
        .await
    }

    /// Creates an organization as `owner`; returns its id.
    pub async fn create_org(&self, owner: &TestUser, name: &str) -> String {
        let reply = self
            .post("/api/v1/orgs", Some(&owner.access_token), &serde_json::json!({ "name": name }))
            .await;
        reply.expect(201)["id"].as_str().unwrap().to_owned()
    }

    /// Adds `user` to `org` with `role`, acting as `admin`.
    pub async fn add_member(&self, admin: &TestUser, org: &str, user: &TestUser, role: &str) {
        self.post(
            &format!("/api/v1/orgs/{org}/members"),
            Some(&admin.access_token),
            &serde_json::json!({ "email": user.email, "role": role }),
        )
        .await
        .expect(201);
    }

    /// Gives `user` `role` on `board`, as its owner `owner`.
    pub async fn add_board_member(
        &self,
        owner: &TestUser,
        board: &str,
        user: &TestUser,
        role: &str,
    ) {
        self.send_as(
            reqwest::Method::PUT,
            &format!("/api/v1/boards/{board}/members/{}", user.id),
            &owner.access_token,
            Some(&serde_json::json!({ "role": role })),
        )
        .await
        .expect(200);
    }

    /// Creates an API key in `org` as `user` with `scopes`; returns (id, key).
    pub async fn create_key(
        &self,
        user: &TestUser,
        org: &str,
        scopes: &[&str],
    ) -> (String, String) {
        let reply = self
            .post(
                &format!("/api/v1/orgs/{org}/api-keys"),
                Some(&user.access_token),
                &serde_json::json!({ "name": "test key", "scopes": scopes }),
            )
            .await;
        let body = reply.expect(201);
        (body["id"].as_str().unwrap().to_owned(), body["key"].as_str().unwrap().to_owned())
    }

    /// Waits until the audit actor has written everything recorded so far.
    pub async fn flush_audit(&self) {
        assert!(self.state().runtime().audit().flush().await, "audit flush failed");
    }

    /// The key the server seals the audit log's checkpoints with.
    pub fn audit_key(&self) -> boardroom_actors::audit_chain::AuditKey {
        let settings = self.state().settings();
        boardroom::server::audit_key(settings, boardroom::server::IfMissing::Fail)
            .expect("audit key")
    }

    /// Verifies the audit chain in process (the CLI's check, without starting the binary).
    pub async fn verify_audit(&self) -> boardroom::storage::ChainReport {
        self.state()
            .store()
            .verify_audit_chain(&self.audit_key())
            .await
            .expect("read the audit log")
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
