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
//!
//! Requests are built from the `boardroom-protocol` body types and answers are read back as
//! their protocol types ([`Reply::expect_as`]): a test that decodes an answer checks its shape
//! against the contract as well. [`socket`] is the typed WebSocket client.

#![allow(dead_code)] // shared by every test module; not each uses every helper

use std::net::SocketAddr;

use boardroom::config::Settings;
use boardroom::server::{App, RunningServer};
use boardroom_protocol::{api_keys, boards, identity, orgs, ErrorEnvelope};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

pub mod browser;
pub mod cluster;
pub mod memory;
pub mod smtp;
pub mod socket;
mod venv;
pub use venv::python;

/// A port nobody listens on right now. It is not reserved: another process (an outgoing
/// connection's local port, say) may take it before whatever is started there binds it, so
/// start things through [`on_a_free_port`].
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts `what` on a free port: `start` answers `None` when the port turned out to be taken
/// (what it started exited instead of listening), and then another port is tried, five in all.
pub fn on_a_free_port<T>(what: &str, mut start: impl FnMut(u16) -> Option<T>) -> T {
    for _ in 0..5 {
        if let Some(started) = start(free_port()) {
            return started;
        }
    }
    panic!("{what} found no free port in 5 tries");
}

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

/// An HTTP client of one server (in this process or another), with the calls the tests make.
pub struct Api {
    addr: SocketAddr,
    base: String,
    http: reqwest::Client,
}

impl Api {
    /// A client of the server at `addr`.
    pub fn at(addr: SocketAddr) -> Api {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Api { addr, base: format!("http://{addr}"), http }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// An absolute URL for `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request builder; finish it with [`Call::send`].
    pub fn call(&self, method: Method, path: &str) -> Call {
        Call { builder: self.http.request(method, self.url(path)) }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path).send().await
    }

    /// `POST path` with a JSON body and an optional bearer token.
    pub async fn post<B: Serialize + ?Sized>(
        &self,
        path: &str,
        token: Option<&str>,
        body: &B,
    ) -> Reply {
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

    /// `method path` with a bearer token and a typed JSON body.
    pub async fn send_body<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: &B,
    ) -> Reply {
        self.call(method, path).bearer(token).json(body).send().await
    }

    /// Registers a fresh user named `name` and returns their session. `name` may be a display
    /// name ("Ada Lovelace"): the unique email and the password use its first word, lowercased
    /// (the server lowercases emails).
    pub async fn register(&self, name: &str) -> TestUser {
        let local = name.split(' ').next().unwrap_or(name).to_lowercase();
        let email = format!("{local}-{}@example.com", uuid::Uuid::now_v7().simple());
        let password = format!("pw-{local}-long-enough");
        let body = identity::Register { email: email.clone(), password, name: name.to_owned() };
        let answer: identity::SessionAnswer =
            self.post("/api/v1/auth/register", None, &body).await.expect_as(201);
        assert_eq!(answer.user.email, email);
        assert_eq!(answer.user.name, name);
        TestUser::from_session(answer, email, body.password)
    }

    /// Signs in over REST as someone registered elsewhere (through a browser, say).
    pub async fn sign_in(&self, email: &str, password: &str) -> TestUser {
        let body = identity::Login { email: email.to_owned(), password: password.to_owned() };
        let answer: identity::SessionAnswer =
            self.post("/api/v1/auth/login", None, &body).await.expect_as(200);
        TestUser::from_session(answer, email.to_owned(), password.to_owned())
    }

    /// `POST /auth/login` as `user` with their password.
    pub async fn login(&self, user: &TestUser) -> Reply {
        let body = identity::Login { email: user.email.clone(), password: user.password.clone() };
        self.post("/api/v1/auth/login", None, &body).await
    }

    /// Sets `user`'s organization role, acting as `admin`.
    pub async fn set_org_role(
        &self,
        admin: &TestUser,
        org: &str,
        user: &TestUser,
        role: &str,
    ) -> Reply {
        self.send_body(
            Method::PATCH,
            &format!("/api/v1/orgs/{org}/members/{}", user.id),
            &admin.access_token,
            &orgs::ChangeOrgMember { role: role.to_owned() },
        )
        .await
    }

    /// Creates an organization as `owner`; returns its id.
    pub async fn create_org(&self, owner: &TestUser, name: &str) -> String {
        self.create_organization(owner, name).await.id.to_string()
    }

    /// Creates an organization as `owner`; answers it as the wire gives it.
    pub async fn create_organization(&self, owner: &TestUser, name: &str) -> orgs::Organization {
        let body = orgs::CreateOrganization { name: name.to_owned() };
        let org: orgs::Organization =
            self.post("/api/v1/orgs", Some(&owner.access_token), &body).await.expect_as(201);
        assert_eq!((org.name.as_str(), org.role), (name, orgs::OrgRole::Admin));
        org
    }

    /// Gives `user` `role` on `board`, as its owner `owner`.
    pub async fn add_board_member(
        &self,
        owner: &TestUser,
        board: &str,
        user: &TestUser,
        role: &str,
    ) {
        let changed: boardroom_protocol::events::MemberChanged = self
            .send_body(
                Method::PUT,
                &format!("/api/v1/boards/{board}/members/{}", user.id),
                &owner.access_token,
                &boards::SetMember { role: role.to_owned() },
            )
            .await
            .expect_as(200);
        assert_eq!(changed.user_id.to_string(), user.id);
    }

    /// Creates a board named `name` in `org` as `owner`.
    pub async fn create_board(
        &self,
        owner: &TestUser,
        org: &str,
        name: &str,
    ) -> boards::CreatedBoard {
        let body = boards::CreateBoard { name: name.to_owned(), description: String::new() };
        let board: boards::CreatedBoard = self
            .post(&format!("/api/v1/orgs/{org}/boards"), Some(&owner.access_token), &body)
            .await
            .expect_as(201);
        assert_eq!(board.board.name, name);
        board
    }

    /// `POST /boards/{board}/columns` as `user`.
    pub async fn create_column(
        &self,
        user: &TestUser,
        board: &str,
        body: &boards::CreateColumn,
    ) -> boards::Column {
        self.post(&format!("/api/v1/boards/{board}/columns"), Some(&user.access_token), body)
            .await
            .expect_as(201)
    }

    /// `POST /boards/{board}/groups` as `user`.
    pub async fn create_group(
        &self,
        user: &TestUser,
        board: &str,
        body: &boards::CreateGroup,
    ) -> boards::Group {
        self.post(&format!("/api/v1/boards/{board}/groups"), Some(&user.access_token), body)
            .await
            .expect_as(201)
    }

    /// `POST /boards/{board}/items` as `user`.
    pub async fn create_item(
        &self,
        user: &TestUser,
        board: &str,
        body: &boards::CreateItem,
    ) -> boards::Item {
        self.post(&format!("/api/v1/boards/{board}/items"), Some(&user.access_token), body)
            .await
            .expect_as(201)
    }

    /// Creates an API key in `org` as `user` with `scopes`; returns (id, key).
    pub async fn create_key(
        &self,
        user: &TestUser,
        org: &str,
        scopes: &[&str],
    ) -> (String, String) {
        let body = api_keys::CreateApiKey {
            name: "test key".into(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            rate_limit_per_minute: None,
            expires_at: None,
        };
        let created: api_keys::CreatedApiKey = self
            .post(&format!("/api/v1/orgs/{org}/api-keys"), Some(&user.access_token), &body)
            .await
            .expect_as(201);
        (created.api_key.id.to_string(), created.key)
    }

    /// A one-use socket ticket for `token`'s holder.
    pub async fn ws_ticket(&self, token: &str) -> identity::WsTicket {
        // The route reads no field; `{}` is the body a client sends.
        let ticket: identity::WsTicket = self
            .post("/api/v1/ws/ticket", Some(token), &serde_json::json!({}))
            .await
            .expect_as(200);
        assert!(!ticket.ticket.is_empty() && ticket.expires_in > 0, "{ticket:?}");
        ticket
    }
}

/// A real server on an ephemeral port, with an HTTP client pointed at it (its [`Api`], which
/// it derefs to).
pub struct TestServer {
    pub database: TestDatabase,
    running: Option<RunningServer>,
    addr: SocketAddr,
    api: Api,
}

impl std::ops::Deref for TestServer {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
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
        TestServer { database, running: Some(running), addr, api: Api::at(addr) }
    }

    /// Which backend this server runs on.
    pub fn backend(&self) -> Backend {
        self.database.backend
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address the metrics listener bound, when `metrics_listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.running.as_ref().and_then(RunningServer::metrics_addr)
    }

    /// The server's state, for assertions that look beneath the HTTP edge.
    pub fn state(&self) -> &boardroom::http::AppState {
        self.running.as_ref().expect("running").state()
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

impl TestUser {
    /// The user of a sign-in's answer (a bearer client's: it carries the refresh token).
    fn from_session(answer: identity::SessionAnswer, email: String, password: String) -> TestUser {
        TestUser {
            id: answer.user.id.to_string(),
            email,
            password,
            access_token: answer.access_token,
            refresh_token: answer.refresh_token.expect("a bearer client gets its refresh token"),
            session_id: answer.session_id.to_string(),
        }
    }
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

    /// Marks `user`'s address verified straight in the database, with the store call behind
    /// `boardroom admin verify-email` (without its audit row). Only for tests about something
    /// else that need an account to count as verified (adding a member by email adds only
    /// verified accounts); tests about verification go through the mailed link
    /// (`tests/accounts.rs`).
    pub async fn mark_email_verified_in_db(&self, user: &TestUser) {
        self.state().store().mark_email_verified(&user.email).await.expect("mark verified");
    }

    /// Adds `user` to `org` with `role`, acting as `admin`. Only verified accounts are added by
    /// email, so `user`'s address is first marked verified ([`Self::mark_email_verified_in_db`]).
    pub async fn add_member(&self, admin: &TestUser, org: &str, user: &TestUser, role: &str) {
        self.mark_email_verified_in_db(user).await;
        let body = orgs::AddOrgMember { email: user.email.clone(), role: role.to_owned() };
        let member: orgs::OrgMember = self
            .post(&format!("/api/v1/orgs/{org}/members"), Some(&admin.access_token), &body)
            .await
            .expect_as(201);
        assert_eq!(member.user_id.to_string(), user.id);
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

    /// Runs the `boardroom` binary with `args` against this server's database and data dir (so
    /// with its audit key), logging errors only.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_boardroom"))
            .args(args)
            .env("DATABASE_URL", &self.database.url)
            .env("BOARDROOM_DATA_DIR", self.database.dir.path())
            .env("BOARDROOM_LOG", "error")
            .output()
            .expect("run boardroom")
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
    pub fn json<B: Serialize + ?Sized>(self, body: &B) -> Call {
        Call { builder: self.builder.json(body) }
    }

    /// Sets a raw body with a content type.
    pub fn raw(self, content_type: &str, body: impl Into<reqwest::Body>) -> Call {
        Call { builder: self.builder.header("content-type", content_type).body(body) }
    }

    /// Sends it and reads the whole answer.
    pub async fn send(self) -> Reply {
        self.try_send().await.expect("request failed")
    }

    /// Sends the request; `Err` when no whole answer came (the server went away).
    pub async fn try_send(self) -> Result<Reply, reqwest::Error> {
        let response = self.builder.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok(Reply { status, headers, body })
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

    /// Asserts the status and reads the body as its protocol type `T`.
    #[track_caller]
    pub fn expect_as<T: DeserializeOwned>(&self, status: u16) -> T {
        let body = self.expect(status);
        match serde_json::from_value(body.clone()) {
            Ok(typed) => typed,
            Err(err) => panic!("not a {}: {err}; body: {body}", std::any::type_name::<T>()),
        }
    }

    /// Asserts an error status and code, and that the body is the protocol's error envelope.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status, self.error_code()),
            (status, code),
            "unexpected answer; body: {}",
            self.body
        );
        let envelope: ErrorEnvelope = self.expect_as(status);
        assert_eq!(envelope.error.code.as_str(), code);
    }
}

/// An id the tests hold as text, as the protocol types carry it.
#[track_caller]
pub fn id(text: &str) -> uuid::Uuid {
    text.parse().unwrap_or_else(|err| panic!("not an id: {text:?}: {err}"))
}

/// The body creating item `name` in `group`, with no values and no placement.
pub fn item(group: &str, name: &str) -> boards::CreateItem {
    boards::CreateItem {
        group_id: id(group),
        name: name.to_owned(),
        values: Default::default(),
        before: None,
        after: None,
    }
}

/// The body creating a column of `column_type`, with no settings and no placement.
pub fn column(title: &str, column_type: &str) -> boards::CreateColumn {
    boards::CreateColumn {
        title: title.to_owned(),
        column_type: column_type.to_owned(),
        settings: None,
        before: None,
        after: None,
    }
}

/// The body creating a group, with no color and no placement.
pub fn group(title: &str) -> boards::CreateGroup {
    boards::CreateGroup { title: title.to_owned(), color: None, before: None, after: None }
}

/// Makes sure Debian's `chromium` and its `chromedriver` are installed for the browser tests
/// ([`debian_packages`]).
pub fn chromium() {
    debian_packages(
        &["/usr/bin/chromium", "/usr/bin/chromedriver"],
        &["chromium", "chromium-driver"],
        "the browser tests",
    );
}

/// Makes sure the files `paths` exist, installing Debian's `packages` when they are missing (as
/// root; nothing but packages is downloaded), so that the README's test command passes on a
/// fresh machine by itself. Test processes asking at once install one after another, under a
/// file lock: apt itself makes a second `apt-get update` fail at once on the lock of its lists
/// (only dpkg's own lock honours `DPkg::Lock::Timeout`).
pub fn debian_packages(paths: &[&str], packages: &[&str], who: &str) {
    let present = || paths.iter().all(|path| std::path::Path::new(path).exists());
    if present() {
        return;
    }
    let turn = std::fs::File::create(std::env::temp_dir().join("boardroom-tests-apt.lock"))
        .and_then(|file| file.lock().map(|()| file));
    // Another process may have installed them while this one waited for its turn.
    if present() {
        return;
    }
    let apt = |args: &[&str]| {
        std::process::Command::new("apt-get")
            .args(["-o", "DPkg::Lock::Timeout=300", "-qq"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|status| status.success())
    };
    let installed = apt(&["update"]) && apt(&[&["install", "-y"][..], packages].concat());
    drop(turn);
    assert!(
        installed && present(),
        "{who} need Debian's {}: `apt-get install {}` (as root)",
        packages.join(" and "),
        packages.join(" ")
    );
}
