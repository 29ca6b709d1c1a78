//! Google sign-in, against a local OpenID provider that speaks the real protocol.
//!
//! The provider ([`Provider`]) runs on 127.0.0.1:0 beside the server: its token endpoint checks
//! the code, the client credentials, the redirect URI and the PKCE verifier, and answers with an
//! RS256 ID token signed by the fixed test key in `tests/fixtures/`; it also serves a JWKS and a
//! userinfo endpoint. The test plays the browser: it follows `/auth/google/start` to the
//! provider, "logs in" there (mints a code bound to the nonce and code challenge it read from the
//! redirect), and brings the code back to `/auth/google/callback`.
//!
//! An unverified Google email is refused with `401 unauthenticated`, like every other failed
//! check of the provider's answer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use boardroom::config::Settings;
use boardroom_protocol::identity::{GoogleCallback, Me, SessionAnswer, SessionList};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use url::Url;
use uuid::Uuid;

use crate::harness::{both_backends, both_backends_with, id, Reply, TestServer};

both_backends_with!(
    with_google;
    a_new_account_is_created,
    a_password_account_with_the_same_email_is_linked,
    a_returning_user_is_found_by_subject,
    a_state_works_once,
    unknown_expired_and_missing_states_are_refused,
    a_provider_error_is_a_bad_request,
    a_wrong_nonce_is_refused,
    a_token_signed_by_another_key_is_refused,
    a_wrong_audience_is_refused,
    other_id_token_checks,
    an_unverified_email_is_refused,
    rotated_keys_are_fetched_once,
    a_callback_from_another_browser_is_refused,
    a_google_only_account_confirms_its_deletion_with_a_fresh_sign_in,
    a_browser_navigation_lands_on_the_web_client,
);

both_backends!(not_configured_answers_404);

both_backends_with!(
    with_google_and_a_receiver;
    a_google_link_ends_a_squatters_memberships_and_webhooks,
);

const CLIENT_ID: &str = "boardroom-test.apps.googleusercontent.com";
const CLIENT_SECRET: &str = "test-client-secret";
const START: &str = "/api/v1/auth/google/start";
const CALLBACK: &str = "/api/v1/auth/google/callback";

const KEY_PEM: &str = include_str!("fixtures/google_key.pem");
const KEY_JWK: &str = include_str!("fixtures/google_key.jwk.json");
const OTHER_KEY_PEM: &str = include_str!("fixtures/google_other_key.pem");
const OTHER_KEY_JWK: &str = include_str!("fixtures/google_other_key.jwk.json");
const KID: &str = "test-key-1";

// ---------------------------------------------------------------------------------------------
// The provider
// ---------------------------------------------------------------------------------------------

/// A Google account, as the provider knows it.
#[derive(Debug, Clone)]
struct Person {
    sub: String,
    email: String,
    email_verified: bool,
    name: String,
}

/// A person with a fresh subject and email.
fn person(name: &str) -> Person {
    let id = Uuid::now_v7().simple().to_string();
    Person {
        sub: format!("1{}", &id[id.len() - 20..]),
        email: format!("{name}-{id}@example.com"),
        email_verified: true,
        name: format!("{name} Example"),
    }
}

/// Ways the provider misbehaves in a token answer.
#[derive(Debug, Clone, Default)]
struct Tweak {
    nonce: Option<String>,
    aud: Option<String>,
    iss: Option<String>,
    exp_offset_secs: Option<i64>,
    /// Sign with this PEM under this key id instead of the published key.
    signer: Option<(&'static str, &'static str)>,
    userinfo_sub: Option<String>,
}

/// What the authorization request carried, as the provider saw it.
struct Grant {
    redirect_uri: String,
    code_challenge: String,
    nonce: String,
    person: Person,
    tweak: Tweak,
}

struct ProviderState {
    /// The key id tokens name and the PEM that signs them.
    signer: (&'static str, &'static str),
    /// The JWKS's keys.
    published: Vec<Value>,
    codes: HashMap<String, Grant>,
    access_tokens: HashMap<String, (Person, Tweak)>,
    jwks_fetches: usize,
    redeemed: usize,
    refusals: Vec<String>,
}

struct Provider {
    addr: SocketAddr,
    state: Mutex<ProviderState>,
}

fn jwk(json: &str, kid: &str) -> Value {
    let mut key: Value = serde_json::from_str(json).unwrap();
    key["kid"] = json!(kid);
    key["alg"] = json!("RS256");
    key["use"] = json!("sig");
    key
}

/// Providers by port, so a test finds the one its server was pointed at by [`with_google`].
fn providers() -> &'static Mutex<HashMap<u16, Arc<Provider>>> {
    static PROVIDERS: OnceLock<Mutex<HashMap<u16, Arc<Provider>>>> = OnceLock::new();
    PROVIDERS.get_or_init(Default::default)
}

impl Provider {
    /// Starts a provider on the current runtime.
    fn spawn() -> Arc<Provider> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let provider = Arc::new(Provider {
            addr,
            state: Mutex::new(ProviderState {
                signer: (KID, KEY_PEM),
                published: vec![jwk(KEY_JWK, KID)],
                codes: HashMap::new(),
                access_tokens: HashMap::new(),
                jwks_fetches: 0,
                redeemed: 0,
                refusals: Vec::new(),
            }),
        });
        let app = Router::new()
            .route("/token", post(token))
            .route("/jwks", get(jwks))
            .route("/userinfo", get(userinfo))
            .with_state(provider.clone());
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        providers().lock().unwrap().insert(addr.port(), provider.clone());
        provider
    }

    /// The provider `server` was configured with.
    fn of(server: &TestServer) -> Arc<Provider> {
        let port = server.state().settings().google_token_url.port().unwrap();
        providers().lock().unwrap()[&port].clone()
    }

    fn url(&self, path: &str) -> Url {
        Url::parse(&format!("http://{}{path}", self.addr)).unwrap()
    }

    fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The person approves the sign-in the browser was sent here for; returns the code.
    fn login(&self, started: &Started, person: &Person, tweak: Tweak) -> String {
        let code = format!("code-{}", Uuid::now_v7().simple());
        self.state.lock().unwrap().codes.insert(
            code.clone(),
            Grant {
                redirect_uri: started.redirect_uri.clone(),
                code_challenge: started.code_challenge.clone(),
                nonce: started.nonce.clone(),
                person: person.clone(),
                tweak,
            },
        );
        code
    }

    /// Signs with `pem` under `kid` from now on and publishes only that key.
    fn rotate(&self, kid: &'static str, pem: &'static str, jwk_json: &str) {
        let mut state = self.state.lock().unwrap();
        state.signer = (kid, pem);
        state.published = vec![jwk(jwk_json, kid)];
    }

    fn redeemed(&self) -> usize {
        self.state.lock().unwrap().redeemed
    }

    fn jwks_fetches(&self) -> usize {
        self.state.lock().unwrap().jwks_fetches
    }

    fn refusals(&self) -> Vec<String> {
        self.state.lock().unwrap().refusals.clone()
    }
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

/// An OAuth error answer; `why` is kept for the test's failure messages.
fn refuse(state: &mut ProviderState, status: StatusCode, error: &str, why: &str) -> Response {
    state.refusals.push(why.to_owned());
    oauth_error(status, error)
}

async fn token(
    State(provider): State<Arc<Provider>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    let mut guard = provider.state.lock().unwrap();
    let state = &mut *guard;
    if field("grant_type") != "authorization_code" {
        return refuse(state, StatusCode::BAD_REQUEST, "unsupported_grant_type", "grant_type");
    }
    if field("client_id") != CLIENT_ID || field("client_secret") != CLIENT_SECRET {
        return refuse(state, StatusCode::UNAUTHORIZED, "invalid_client", "client credentials");
    }
    // A code works once, like Google's.
    let Some(grant) = state.codes.remove(field("code")) else {
        return refuse(state, StatusCode::BAD_REQUEST, "invalid_grant", "unknown code");
    };
    if field("redirect_uri") != grant.redirect_uri {
        return refuse(state, StatusCode::BAD_REQUEST, "invalid_grant", "redirect_uri");
    }
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(field("code_verifier").as_bytes()));
    if challenge != grant.code_challenge {
        return refuse(state, StatusCode::BAD_REQUEST, "invalid_grant", "code_verifier");
    }
    state.redeemed += 1;
    let tweak = grant.tweak.clone();
    let person = grant.person.clone();
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "iss": tweak.iss.clone().unwrap_or_else(|| provider.issuer()),
        "aud": tweak.aud.clone().unwrap_or_else(|| CLIENT_ID.to_owned()),
        "azp": CLIENT_ID,
        "sub": person.sub,
        "email": person.email,
        "email_verified": person.email_verified,
        "name": person.name,
        "nonce": tweak.nonce.clone().unwrap_or(grant.nonce),
        "iat": now,
        "exp": now + tweak.exp_offset_secs.unwrap_or(3600),
    });
    let (kid, pem) = tweak.signer.unwrap_or(state.signer);
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    let id_token =
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap())
            .unwrap();
    let access_token = format!("access-{}", Uuid::now_v7().simple());
    state.access_tokens.insert(access_token.clone(), (person, tweak));
    Json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": 3599,
        "scope": "openid email profile",
        "id_token": id_token,
    }))
    .into_response()
}

async fn jwks(State(provider): State<Arc<Provider>>) -> Json<Value> {
    let mut state = provider.state.lock().unwrap();
    state.jwks_fetches += 1;
    Json(json!({ "keys": state.published }))
}

async fn userinfo(State(provider): State<Arc<Provider>>, headers: HeaderMap) -> Response {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let state = provider.state.lock().unwrap();
    let Some((person, tweak)) = state.access_tokens.get(token) else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_token");
    };
    Json(json!({
        "sub": tweak.userinfo_sub.clone().unwrap_or_else(|| person.sub.clone()),
        "email": person.email,
        "email_verified": person.email_verified,
        "name": person.name,
    }))
    .into_response()
}

/// The settings tweak: Google sign-in pointed at a fresh provider.
fn with_google(settings: &mut Settings) {
    let provider = Provider::spawn();
    settings.google_client_id = Some(CLIENT_ID.to_owned());
    settings.google_client_secret = Some(CLIENT_SECRET.to_owned());
    settings.google_auth_url = provider.url("/authorize");
    settings.google_token_url = provider.url("/token");
    settings.google_userinfo_url = provider.url("/userinfo");
    settings.google_jwks_url = provider.url("/jwks");
    settings.google_issuer = provider.issuer();
}

// ---------------------------------------------------------------------------------------------
// The browser
// ---------------------------------------------------------------------------------------------

/// A sign-in the server started, read from its redirect.
struct Started {
    state: String,
    nonce: String,
    code_challenge: String,
    redirect_uri: String,
}

/// Follows `/auth/google/start` and checks the redirect like a provider would.
async fn start(server: &TestServer) -> Started {
    let reply = server.get(START).await;
    assert_eq!(reply.status, 302, "body: {}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let location = Url::parse(reply.header("location").expect("location")).unwrap();
    let provider = Provider::of(server);
    assert_eq!(location.origin(), provider.url("/").origin());
    assert_eq!(location.path(), "/authorize");
    let params: HashMap<String, String> = location.query_pairs().into_owned().collect();
    assert_eq!(params["response_type"], "code");
    assert_eq!(params["client_id"], CLIENT_ID);
    assert_eq!(params["scope"], "openid email profile");
    assert_eq!(params["code_challenge_method"], "S256");
    let public = server.state().settings().public_url().unwrap();
    assert_eq!(params["redirect_uri"], public.join(CALLBACK).unwrap().as_str());
    for name in ["state", "nonce", "code_challenge"] {
        assert!(params[name].len() >= 43, "{name} is too short: {}", params[name]);
    }
    assert_ne!(params["state"], params["nonce"]);
    let cookie = reply
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("br_oauth_state="))
        .expect("state cookie");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    assert_eq!(cookie.split(';').next().unwrap(), format!("br_oauth_state={}", params["state"]));
    Started {
        state: params["state"].clone(),
        nonce: params["nonce"].clone(),
        code_challenge: params["code_challenge"].clone(),
        redirect_uri: params["redirect_uri"].clone(),
    }
}

/// What Google sends the browser back with after a sign-in that went through.
fn returned(code: &str, state: &str) -> GoogleCallback {
    GoogleCallback { code: Some(code.to_owned()), state: Some(state.to_owned()), error: None }
}

/// `GET /auth/google/callback` with this query, from the browser that holds the state cookie of
/// its `state` (if any).
async fn callback(server: &TestServer, params: &GoogleCallback) -> Reply {
    callback_with_cookie(server, params, params.state.as_deref()).await
}

/// `GET /auth/google/callback` sending `cookie` as the state cookie.
async fn callback_with_cookie(
    server: &TestServer,
    params: &GoogleCallback,
    cookie: Option<&str>,
) -> Reply {
    // The query's names are the type's own: its serde fields, absent ones left out.
    let fields = serde_json::to_value(params).unwrap();
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in fields.as_object().unwrap() {
        query.append_pair(name, value.as_str().unwrap());
    }
    let query = query.finish();
    let mut call = server.call(reqwest::Method::GET, &format!("{CALLBACK}?{query}"));
    if let Some(cookie) = cookie {
        call = call.header("cookie", &format!("br_oauth_state={cookie}"));
    }
    call.send().await
}

/// A whole sign-in as `person`, with the provider misbehaving as `tweak` says.
async fn sign_in(server: &TestServer, person: &Person, tweak: Tweak) -> Reply {
    let started = start(server).await;
    let code = Provider::of(server).login(&started, person, tweak);
    callback(server, &returned(&code, &started.state)).await
}

/// A sign-in that must succeed; returns the answer's body.
async fn signed_in(server: &TestServer, person: &Person) -> SessionAnswer {
    let reply = sign_in(server, person, Tweak::default()).await;
    reply.expect_as(200)
}

// ---------------------------------------------------------------------------------------------
// Looking beneath the edge
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct AuditEntry {
    action: String,
    actor_id: Option<Uuid>,
    metadata: Value,
}

/// Every audit row written so far, oldest first.
async fn audit_rows(server: &TestServer) -> Vec<AuditEntry> {
    server.flush_audit().await;
    let rows: Vec<(String, Option<Uuid>, sqlx::types::Json<Value>)> = boardroom::on_pool!(server.state().store(), pool => {
        sqlx::query_as("SELECT action, actor_id, metadata FROM audit_log ORDER BY seq")
            .fetch_all(pool)
            .await
            .unwrap()
    });
    rows.into_iter()
        .map(|(action, actor_id, metadata)| AuditEntry { action, actor_id, metadata: metadata.0 })
        .collect()
}

/// The last audit row of `action`.
async fn last_audit(server: &TestServer, action: &str) -> AuditEntry {
    let rows = audit_rows(server).await;
    rows.into_iter().rev().find(|row| row.action == action).unwrap_or_else(|| {
        panic!("no {action} audit row");
    })
}

/// (id, password_hash, google_sub, email_verified) of the user with `email`, if any.
async fn stored_user(
    server: &TestServer,
    email: &str,
) -> Option<(Uuid, Option<String>, Option<String>, bool)> {
    boardroom::on_pool!(server.state().store(), pool => {
        sqlx::query_as(
            "SELECT id, password_hash, google_sub, email_verified FROM users WHERE email = $1",
        )
        .bind(email)
        .fetch_optional(pool)
        .await
        .unwrap()
    })
}

async fn pending_states(server: &TestServer, state: &str) -> i64 {
    let key = Sha256::digest(state.as_bytes()).to_vec();
    let (count,): (i64,) = boardroom::on_pool!(server.state().store(), pool => {
        sqlx::query_as("SELECT COUNT(*) FROM oauth_states WHERE state_hash = $1")
            .bind(&key)
            .fetch_one(pool)
            .await
            .unwrap()
    });
    count
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

async fn a_new_account_is_created(server: &TestServer) {
    let provider = Provider::of(server);
    let mut ada = person("ada");
    ada.email = ada.email.replace("ada-", "Ada.Lovelace-").to_uppercase();
    let lower = ada.email.to_lowercase();

    let started = start(server).await;
    // The state is stored under its SHA-256, never as itself.
    assert_eq!(pending_states(server, &started.state).await, 1);
    let raw: (i64,) = boardroom::on_pool!(server.state().store(), pool => {
        sqlx::query_as("SELECT COUNT(*) FROM oauth_states WHERE state_hash = $1")
            .bind(started.state.as_bytes())
            .fetch_one(pool)
            .await
            .unwrap()
    });
    assert_eq!(raw.0, 0);

    let code = provider.login(&started, &ada, Tweak::default());
    let reply = callback(server, &returned(&code, &started.state)).await;
    let body: SessionAnswer = reply.expect_as(200);
    assert_eq!(provider.redeemed(), 1, "refusals: {:?}", provider.refusals());
    assert_eq!(body.user.email, lower);
    assert!(body.user.email_verified);
    assert_eq!(body.user.name, "ada Example");
    assert_eq!(reply.body["token_type"], "Bearer");
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let cookies: Vec<&str> =
        reply.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).collect();
    assert!(cookies.iter().any(|c| c.starts_with("br_access=")), "{cookies:?}");
    assert!(cookies.iter().any(|c| c.starts_with("br_refresh=")), "{cookies:?}");
    assert_eq!(pending_states(server, &started.state).await, 0, "the state is used up");

    let token = body.access_token.as_str();
    let me = server.get_as("/api/v1/me", token).await;
    assert_eq!(me.expect_as::<Me>(200).user, body.user);
    let sessions = server.get_as("/api/v1/auth/sessions", token).await;
    let sessions = sessions.expect_as::<SessionList>(200).sessions;
    let methods: Vec<&str> = sessions.iter().map(|s| s.method.as_str()).collect();
    assert_eq!(methods, ["google"]);

    let (id, password_hash, google_sub, verified) = stored_user(server, &lower).await.unwrap();
    assert_eq!(id, body.user.id);
    assert_eq!(password_hash, None);
    assert_eq!(google_sub.as_deref(), Some(ada.sub.as_str()));
    assert!(verified);

    let rows = audit_rows(server).await;
    let signup = rows.iter().find(|r| r.action == "signup").expect("signup row");
    assert_eq!(signup.actor_id, Some(id));
    assert_eq!(signup.metadata, json!({ "method": "google" }));
    assert!(!rows.iter().any(|r| r.action == "login.failed"));
    // Neither the code nor any token reaches the audit log.
    let everything = format!("{:?}", rows);
    for secret in [code.as_str(), token, started.state.as_str(), started.nonce.as_str()] {
        assert!(!everything.contains(secret), "audit rows leak a secret: {everything}");
    }
}

/// The web client's "Sign in with Google" is a top-level navigation: Google sends the browser
/// back to the callback, which sets the session cookies and sends it on to the page at `/`
/// (no JSON, no token in a body). `GET /config` tells the page to offer the button.
async fn a_browser_navigation_lands_on_the_web_client(server: &TestServer) {
    let config: boardroom_protocol::client::ClientConfig =
        server.get("/api/v1/config").await.expect_as(200);
    assert!(config.google_sign_in, "{config:?}");

    let ada = person("ada");
    let started = start(server).await;
    let code = Provider::of(server).login(&started, &ada, Tweak::default());
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("code", &code)
        .append_pair("state", &started.state)
        .finish();
    let reply = server
        .call(Method::GET, &format!("{CALLBACK}?{query}"))
        .header("cookie", &format!("br_oauth_state={}", started.state))
        .header("sec-fetch-mode", "navigate")
        .header("sec-fetch-dest", "document")
        .send()
        .await;
    assert_eq!(reply.status, 303, "{}", reply.body);
    assert_eq!(reply.header("location"), Some("/"));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.body, Value::Null, "no tokens in a body");
    let cookies: Vec<&str> =
        reply.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).collect();
    let access = cookies.iter().find_map(|c| c.strip_prefix("br_access=")).expect("access cookie");
    assert!(cookies.iter().any(|c| c.starts_with("br_refresh=")), "{cookies:?}");
    assert!(cookies.iter().any(|c| c.starts_with("br_csrf=")), "{cookies:?}");
    assert!(
        cookies.iter().any(|c| c.starts_with("br_oauth_state=;")),
        "state cleared: {cookies:?}"
    );
    let token = access.split(';').next().unwrap();
    let me: Me = server
        .call(Method::GET, "/api/v1/me")
        .header("cookie", &format!("br_access={token}"))
        .send()
        .await
        .expect_as(200);
    assert_eq!(me.user.email, ada.email.to_lowercase());
}

async fn a_password_account_with_the_same_email_is_linked(server: &TestServer) {
    let alice = server.register("alice").await;
    let mut google_alice = person("alice");
    google_alice.email = alice.email.to_uppercase();
    server.get_as("/api/v1/me", &alice.access_token).await.expect(200);
    // What a squatter could have left behind: an organization and a key to it, used once so
    // its grant sits in the key cache.
    let org = server.create_org(&alice, "Squat").await;
    let (_, key) = server.create_key(&alice, &org, &["boards:read"]).await;
    let boards = format!("/api/v1/orgs/{org}/boards");
    server.get_as(&boards, &key).await.expect(200);

    let body = signed_in(server, &google_alice).await;
    assert_eq!(body.user.id, id(&alice.id));
    assert_eq!(body.user.email, alice.email);
    assert!(body.user.email_verified);
    let (_, password_hash, google_sub, verified) = stored_user(server, &alice.email).await.unwrap();
    // Registration never proved the email was alice's: whoever registered it may have been
    // squatting, so the password, every earlier session and every API key end when Google
    // vouches for it.
    assert!(password_hash.is_none(), "linking an unverified account clears its password");
    assert_eq!(google_sub.as_deref(), Some(google_alice.sub.as_str()));
    assert!(verified);

    let login = last_audit(server, "login.succeeded").await;
    assert_eq!(login.actor_id.map(|id| id.to_string()), Some(alice.id.clone()));
    assert_eq!(login.metadata, json!({ "method": "google", "linked": true }));
    assert!(!audit_rows(server)
        .await
        .iter()
        .any(|r| r.action == "signup" && r.metadata["method"] == "google"));

    server.login(&alice).await.expect_error(401, "invalid_credentials");
    server.get_as("/api/v1/me", &alice.access_token).await.expect_error(401, "session_revoked");
    server.get_as("/api/v1/me", &body.access_token).await.expect_as::<Me>(200);
    server.get_as(&boards, &key).await.expect_error(401, "unauthenticated");
}

async fn a_callback_from_another_browser_is_refused(server: &TestServer) {
    // Login CSRF: the attacker starts a sign-in, then sends the victim the callback URL. The
    // victim's browser lacks the state cookie, so nothing signs them in.
    let started = start(server).await;
    let code = Provider::of(server).login(&started, &person("mallory"), Tweak::default());
    let params = returned(&code, &started.state);
    callback_with_cookie(server, &params, None).await.expect_error(400, "bad_request");
    let other = start(server).await;
    callback_with_cookie(server, &params, Some(&other.state))
        .await
        .expect_error(400, "bad_request");
    // The state was spent by the refused attempt: the attacker cannot reuse it either.
    callback(server, &params).await.expect_error(400, "bad_request");
}

async fn a_returning_user_is_found_by_subject(server: &TestServer) {
    let grace = person("grace");
    let first = signed_in(server, &grace).await;

    // Google accounts can change their email; the subject stays.
    let mut renamed = grace.clone();
    renamed.email = person("grace-renamed").email;
    let second = signed_in(server, &renamed).await;
    assert_eq!(second.user.id, first.user.id);
    assert_eq!(second.user.email, grace.email);
    assert_ne!(second.session_id, first.session_id);
    let login = last_audit(server, "login.succeeded").await;
    assert_eq!(login.metadata, json!({ "method": "google" }));
    let signups = audit_rows(server).await.into_iter().filter(|r| r.action == "signup").count();
    assert_eq!(signups, 1);

    // Another Google account claiming the email of an account linked elsewhere is refused.
    let mut impostor = person("impostor");
    impostor.email = grace.email.clone();
    sign_in(server, &impostor, Tweak::default()).await.expect_error(409, "conflict");
    let failed = last_audit(server, "login.failed").await;
    assert_eq!(failed.metadata, json!({ "method": "google", "reason": "account_conflict" }));
}

async fn a_state_works_once(server: &TestServer) {
    let provider = Provider::of(server);
    let started = start(server).await;
    let code = provider.login(&started, &person("once"), Tweak::default());
    let params = returned(&code, &started.state);
    callback(server, &params).await.expect_as::<SessionAnswer>(200);
    let again = callback(server, &params).await;
    again.expect_error(400, "bad_request");
    assert!(again.body["error"]["message"].as_str().unwrap().contains("state"), "{}", again.body);
    assert_eq!(provider.redeemed(), 1, "a replay never reaches the provider");
}

async fn unknown_expired_and_missing_states_are_refused(server: &TestServer) {
    let provider = Provider::of(server);
    let nobody = person("nobody");

    // A state the server never issued.
    let started = start(server).await;
    let code = provider.login(&started, &nobody, Tweak::default());
    let forged = "a".repeat(43);
    callback(server, &returned(&code, &forged)).await.expect_error(400, "bad_request");
    // No state at all.
    let stateless = GoogleCallback { code: Some(code.clone()), ..GoogleCallback::default() };
    callback(server, &stateless).await.expect_error(400, "bad_request");

    // An expired state.
    let past = chrono::Utc::now() - chrono::Duration::minutes(11);
    let key = Sha256::digest(started.state.as_bytes()).to_vec();
    boardroom::on_pool!(server.state().store(), pool => {
        sqlx::query("UPDATE oauth_states SET expires_at = $1 WHERE state_hash = $2")
            .bind(past)
            .bind(&key)
            .execute(pool)
            .await
            .unwrap();
    });
    callback(server, &returned(&code, &started.state)).await.expect_error(400, "bad_request");
    assert_eq!(pending_states(server, &started.state).await, 0, "an expired state is removed");

    assert_eq!(provider.redeemed(), 0);
    assert!(stored_user(server, &nobody.email).await.is_none());
    // Callbacks without a known state are noise anyone can send; they are not audited.
    assert!(!audit_rows(server).await.iter().any(|r| r.action == "login.failed"));
}

async fn a_provider_error_is_a_bad_request(server: &TestServer) {
    let started = start(server).await;
    let denied = GoogleCallback {
        error: Some("access_denied".into()),
        state: Some(started.state.clone()),
        code: None,
    };
    let reply = callback(server, &denied).await;
    reply.expect_error(400, "bad_request");
    assert!(
        reply.body["error"]["message"].as_str().unwrap().contains("access_denied"),
        "{}",
        reply.body
    );
    let failed = last_audit(server, "login.failed").await;
    assert_eq!(
        failed.metadata,
        json!({ "method": "google", "reason": "provider_error", "provider_error": "access_denied" })
    );
    // The state went with the failed attempt.
    let code = Provider::of(server).login(&started, &person("late"), Tweak::default());
    callback(server, &returned(&code, &started.state)).await.expect_error(400, "bad_request");
}

/// A sign-in whose code exchange succeeds but whose answer fails a check.
async fn expect_refused(server: &TestServer, who: &Person, tweak: Tweak, reason: &str) {
    let provider = Provider::of(server);
    let redeemed = provider.redeemed();
    let reply = sign_in(server, who, tweak).await;
    reply.expect_error(401, "unauthenticated");
    assert_eq!(
        provider.redeemed(),
        redeemed + 1,
        "the code exchange itself must succeed; refusals: {:?}",
        provider.refusals()
    );
    let failed = last_audit(server, "login.failed").await;
    assert_eq!(failed.metadata, json!({ "method": "google", "reason": reason }));
    assert!(stored_user(server, &who.email.to_lowercase()).await.is_none());
}

async fn a_wrong_nonce_is_refused(server: &TestServer) {
    let tweak = Tweak { nonce: Some("a-nonce-from-another-sign-in".into()), ..Tweak::default() };
    expect_refused(server, &person("nonce"), tweak, "nonce_mismatch").await;
}

async fn a_token_signed_by_another_key_is_refused(server: &TestServer) {
    // Another key claiming the published key's id.
    let forged = Tweak { signer: Some((KID, OTHER_KEY_PEM)), ..Tweak::default() };
    expect_refused(server, &person("forged"), forged, "bad_signature").await;
    // Another key under an id nobody published.
    let rogue = Tweak { signer: Some(("rogue-key", OTHER_KEY_PEM)), ..Tweak::default() };
    expect_refused(server, &person("rogue"), rogue, "unknown_key_id").await;
}

async fn a_wrong_audience_is_refused(server: &TestServer) {
    let tweak =
        Tweak { aud: Some("someone-else.apps.googleusercontent.com".into()), ..Default::default() };
    expect_refused(server, &person("aud"), tweak, "wrong_audience").await;
}

async fn other_id_token_checks(server: &TestServer) {
    let issuer = Tweak { iss: Some("https://evil.example.com".into()), ..Tweak::default() };
    expect_refused(server, &person("iss"), issuer, "wrong_issuer").await;
    let expired = Tweak { exp_offset_secs: Some(-3600), ..Tweak::default() };
    expect_refused(server, &person("exp"), expired, "id_token_expired").await;
    let mismatch = Tweak { userinfo_sub: Some("1999".into()), ..Tweak::default() };
    expect_refused(server, &person("userinfo"), mismatch, "userinfo_subject_mismatch").await;
}

async fn an_unverified_email_is_refused(server: &TestServer) {
    let mut unverified = person("unverified");
    unverified.email_verified = false;
    expect_refused(server, &unverified, Tweak::default(), "email_not_verified").await;

    // Not even to reach an account already linked to that subject.
    let mut linked = person("linked");
    signed_in(server, &linked).await;
    linked.email_verified = false;
    let reply = sign_in(server, &linked, Tweak::default()).await;
    reply.expect_error(401, "unauthenticated");
}

async fn rotated_keys_are_fetched_once(server: &TestServer) {
    let provider = Provider::of(server);
    signed_in(server, &person("before")).await;
    signed_in(server, &person("cached")).await;
    assert_eq!(provider.jwks_fetches(), 1, "keys are cached");

    provider.rotate("test-key-2", OTHER_KEY_PEM, OTHER_KEY_JWK);
    signed_in(server, &person("after")).await;
    assert_eq!(provider.jwks_fetches(), 2, "an unknown key id fetches the keys again");
    signed_in(server, &person("after-cached")).await;
    assert_eq!(provider.jwks_fetches(), 2);
}

async fn not_configured_answers_404(server: &TestServer) {
    for path in [START.to_owned(), format!("{CALLBACK}?code=x&state=y")] {
        let reply = server.call(Method::GET, &path).send().await;
        reply.expect_error(404, "not_found");
        assert_eq!(reply.body["error"]["message"], "Google sign-in is not configured");
    }
}

fn with_google_and_a_receiver(settings: &mut Settings) {
    with_google(settings);
    crate::webhooks::with_receiver(settings);
}

/// Someone registered the address before its owner and got into an organization (as naming an
/// unverified address did before invitations), owning a board there and a webhook on it. When
/// the owner signs in with Google, the account is theirs: the squatter's membership ends
/// through the org actor, and the webhook is disabled and audited, not only the sessions and
/// keys.
async fn a_google_link_ends_a_squatters_memberships_and_webhooks(server: &TestServer) {
    use boardroom_actors::org::MemberChange;
    use boardroom_actors::roles::OrgRole;
    use boardroom_protocol::webhooks::{CreatedWebhook, WebhookList};

    let f = crate::boards::fixture(server).await;
    let squatter = server.register("squatter").await;
    // How the squatter got in before 0016: straight through the org actor, unverified.
    server
        .state()
        .auth()
        .orgs()
        .change(id(&f.org), id(&squatter.id), MemberChange::Add(OrgRole::Member))
        .await
        .unwrap();
    server.add_board_member(&f.owner, &f.board, &squatter, "owner").await;
    let receiver = crate::webhooks::Receiver::of(server);
    let hooks = crate::webhooks::hooks_path(&f);
    let made: CreatedWebhook = server
        .post(
            &hooks,
            Some(&squatter.access_token),
            &crate::webhooks::hook(&receiver.url("/squat"), &["*"]),
        )
        .await
        .expect_as(201);

    let mut owner = person("newhire");
    owner.email = squatter.email.clone();
    let body = signed_in(server, &owner).await;
    assert_eq!(body.user.id, id(&squatter.id), "the account is the owner's now");

    // Out of the organization: the real person starts from nothing there.
    let members =
        server.get_as(&format!("/api/v1/orgs/{}/members", f.org), &f.owner.access_token).await;
    let members: Vec<Value> = members.expect(200)["members"].as_array().unwrap().clone();
    assert!(members.iter().all(|m| m["user_id"] != json!(squatter.id)), "{members:?}");
    server
        .get_as(&format!("/api/v1/orgs/{}", f.org), &body.access_token)
        .await
        .expect_error(404, "not_found");
    // The webhook is off, with the reason, and audited once.
    let listed = server.get_as(&hooks, &f.owner.access_token).await.expect_as::<WebhookList>(200);
    let webhook = listed.webhooks.iter().find(|w| w.id == made.webhook.id).unwrap();
    assert!(!webhook.enabled);
    assert_eq!(webhook.disabled_reason.as_deref(), Some("creator_account_claimed"));
    let rows = audit_rows(server).await;
    let disabled: Vec<&AuditEntry> =
        rows.iter().filter(|r| r.action == "webhook.disabled").collect();
    assert_eq!(disabled.len(), 1, "{rows:?}");
    assert_eq!(disabled[0].metadata["reason"], "creator_account_claimed");
    let removed = last_audit(server, "member.removed").await;
    assert_eq!(removed.metadata["reason"], "email_claimed_by_google");
}

/// An account without a password asks for its deletion from a session opened with Google in the
/// last 10 minutes; an older session, or a password it does not have, is refused.
async fn a_google_only_account_confirms_its_deletion_with_a_fresh_sign_in(server: &TestServer) {
    let ann = person("ann");
    let session = signed_in(server, &ann).await;
    let ask = |password: Option<&'static str>| {
        let token = session.access_token.clone();
        async move {
            let body = boardroom_protocol::identity::RequestDeletion {
                password: password.map(str::to_owned),
            };
            server.send_body(reqwest::Method::POST, "/api/v1/me/deletion", &token, &body).await
        }
    };
    ask(Some("a-password-it-never-had")).await.expect_error(401, "invalid_credentials");
    // The session was opened 11 minutes ago: no longer a fresh sign-in.
    let opened = chrono::Utc::now() - chrono::Duration::minutes(11);
    boardroom::on_pool!(server.state().store(), pool => {
        sqlx::query("UPDATE sessions SET created_at = $2 WHERE id = $1")
            .bind(session.session_id)
            .bind(opened)
            .execute(pool)
            .await
            .unwrap();
    });
    ask(None).await.expect_error(401, "invalid_credentials");
    let me: boardroom_protocol::identity::Me =
        server.get_as("/api/v1/me", &session.access_token).await.expect_as(200);
    assert_eq!(me.deletion_scheduled_for, None);
    // A fresh sign-in with Google confirms it.
    let fresh = signed_in(server, &ann).await;
    let body = boardroom_protocol::identity::RequestDeletion::default();
    let scheduled: boardroom_protocol::identity::DeletionScheduled = server
        .send_body(reqwest::Method::POST, "/api/v1/me/deletion", &fresh.access_token, &body)
        .await
        .expect_as(202);
    let me: boardroom_protocol::identity::Me =
        server.get_as("/api/v1/me", &fresh.access_token).await.expect_as(200);
    assert_eq!(me.deletion_scheduled_for, Some(scheduled.scheduled_for));
}
