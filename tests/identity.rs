//! Accounts and sessions, attacked: forged, expired and replayed tokens; logged-out and
//! rotated sessions; the password policy; login limits; cookies with CSRF. Tokens minted here
//! use `jsonwebtoken`; an independent implementation (PyJWT) checks ours.

use boardroom_protocol::identity::{
    ChangePassword, Login, Me, Refresh, Register, SessionAnswer, SessionList,
};
use boardroom_protocol::orgs::{CreateOrganization, Organization};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::json;

use crate::harness::{
    both_backends, both_backends_with, id, python, Reply, TestDatabase, TestServer,
};

/// The secret `Settings::for_tests` signs with.
const TEST_SECRET: &str = "test-secret-test-secret-test-secret-0123";

both_backends!(
    register_login_me,
    duplicate_email_conflicts,
    password_policy_is_enforced,
    unknown_email_and_wrong_password_answer_alike,
    forged_tokens_are_refused,
    logout_ends_the_access_token_at_once,
    password_change_ends_other_sessions_and_old_tokens,
    wrong_current_passwords_are_limited_and_audited,
    sessions_end_at_their_absolute_lifetime,
    refresh_rotates_and_reuse_revokes_the_session,
    sessions_can_be_listed_and_revoked,
    cookie_writes_need_the_csrf_header,
    token_answers_are_not_stored_and_cookie_clients_get_no_refresh_token_in_the_body,
    sixth_login_attempt_is_rate_limited,
    tokens_agree_with_pyjwt,
);

both_backends_with!(
    registration_limit;
    registration_is_limited_per_ip
);

both_backends_with!(
    behind_a_proxy;
    ipv6_clients_share_a_limit_per_64,
    the_account_ceiling_spans_addresses
);

/// The test client (127.0.0.1) is a trusted proxy: `X-Forwarded-For` names the client.
fn behind_a_proxy(settings: &mut boardroom::config::Settings) {
    settings.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
}

/// The body of `POST /auth/login`.
fn login_body(email: &str, password: &str) -> Login {
    Login { email: email.to_owned(), password: password.to_owned() }
}

/// The body of `POST /auth/register`.
fn register_body(email: &str, password: &str, name: &str) -> Register {
    Register { email: email.to_owned(), password: password.to_owned(), name: name.to_owned() }
}

/// `POST /auth/login` as a bearer client.
async fn login(server: &TestServer, email: &str, password: &str) -> Reply {
    server.post("/api/v1/auth/login", None, &login_body(email, password)).await
}

/// `POST /auth/register` as a bearer client.
async fn register(server: &TestServer, email: &str, password: &str, name: &str) -> Reply {
    server.post("/api/v1/auth/register", None, &register_body(email, password, name)).await
}

/// `POST /auth/refresh` with the refresh token in the body.
async fn refresh(server: &TestServer, token: &str) -> Reply {
    let body = Refresh { refresh_token: Some(token.to_owned()) };
    server.post("/api/v1/auth/refresh", None, &body).await
}

/// The body of `POST /orgs` creating `name`.
fn create_org_body(name: &str) -> CreateOrganization {
    CreateOrganization { name: name.to_owned() }
}

/// The refresh token a bearer client finds in a session answer.
#[track_caller]
fn refresh_token_of(answer: &SessionAnswer) -> &str {
    answer.refresh_token.as_deref().expect("a bearer client gets its refresh token")
}

/// `POST /auth/login` relayed by the trusted proxy for `client`.
async fn login_from(server: &TestServer, email: &str, password: &str, client: &str) -> Reply {
    server
        .call(Method::POST, "/api/v1/auth/login")
        .header("x-forwarded-for", client)
        .json(&login_body(email, password))
        .send()
        .await
}

async fn ipv6_clients_share_a_limit_per_64(server: &TestServer) {
    let alice = server.register("alice").await;
    for host in 1..=5 {
        login_from(server, &alice.email, "wrong-password-x", &format!("2001:db8:1:2::{host}"))
            .await
            .expect_error(401, "invalid_credentials");
    }
    // Any other address of that /64 is the same client, however it is written.
    for client in ["2001:db8:1:2:ffff:ffff:ffff:ffff", "[2001:db8:1:2::77]:4711"] {
        login_from(server, &alice.email, &alice.password, client)
            .await
            .expect_error(429, "rate_limited");
    }
    // The next /64 is another client.
    login_from(server, &alice.email, &alice.password, "2001:db8:1:3::1").await.expect(200);
    // An IPv4-mapped IPv6 address is its IPv4 address.
    for _ in 0..5 {
        login_from(server, &alice.email, "wrong-password-x", "198.51.100.7")
            .await
            .expect_error(401, "invalid_credentials");
    }
    login_from(server, &alice.email, &alice.password, "::ffff:198.51.100.7")
        .await
        .expect_error(429, "rate_limited");
}

async fn the_account_ceiling_spans_addresses(server: &TestServer) {
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    // Successes never count: bob signs in from 60 addresses.
    for n in 0..60 {
        login_from(server, &bob.email, &bob.password, &format!("192.0.2.{n}")).await.expect(200);
    }
    // 50 failures for alice, each from its own address, stay under every per-address limit.
    let first = std::time::Instant::now();
    for n in 0..50 {
        login_from(server, &alice.email, "wrong-password-x", &format!("198.51.100.{n}"))
            .await
            .expect_error(401, "invalid_credentials");
    }
    // The account's ceiling is reached: a new address is refused, even with the right password,
    // with the same answer as any other login limit.
    let refused = login_from(server, &alice.email, &alice.password, "203.0.113.1").await;
    refused.expect_error(429, "rate_limited");
    // Exact: when the first failure leaves the hour.
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    let earliest = 3600.0 - first.elapsed().as_secs_f64() - 1.0;
    assert!(retry <= 3600 && retry as f64 >= earliest, "{retry}");
    for _ in 0..5 {
        login_from(server, &bob.email, "wrong-password-x", "203.0.113.2").await;
    }
    let per_address = login_from(server, &bob.email, &bob.password, "203.0.113.2").await;
    per_address.expect_error(429, "rate_limited");
    assert_eq!(refused.body, per_address.body);
    // Other accounts are not affected.
    login_from(server, &bob.email, &bob.password, "203.0.113.3").await.expect(200);
    // Alice's own network (she registered from 127.0.0.1) still signs her in.
    server.login(&alice).await.expect(200);
}

fn registration_limit(settings: &mut boardroom::config::Settings) {
    settings.register_limit = 5;
}

fn mint(claims: serde_json::Value, secret: &str, alg: Algorithm) -> String {
    jsonwebtoken::encode(&Header::new(alg), &claims, &EncodingKey::from_secret(secret.as_bytes()))
        .unwrap()
}

fn claims_for(user: &str, sid: &str, tv: i64, iat: i64, nbf: i64, exp: i64) -> serde_json::Value {
    json!({
        "iss": "boardroom", "aud": "boardroom-api", "sub": user, "sid": sid, "tv": tv,
        "iat": iat, "nbf": nbf, "exp": exp,
    })
}

async fn register_login_me(server: &TestServer) {
    let alice = server.register("alice").await;
    let me = server.get_as("/api/v1/me", &alice.access_token).await;
    let body: Me = me.expect_as(200);
    assert_eq!(body.user.email, alice.email);
    assert_eq!(body.user.id, id(&alice.id));
    assert_eq!(body.session_id, Some(id(&alice.session_id)));
    assert_eq!((body.superadmin, body.api_key), (Some(false), None));
    // The typed read ignores fields it does not know: the hash must not be there at all.
    assert!(me.body["user"].get("password_hash").is_none(), "{}", me.body);

    let login = login(server, &alice.email.to_uppercase(), &alice.password).await;
    let body: SessionAnswer = login.expect_as(200);
    assert_eq!(body.user.id, id(&alice.id));
    assert_eq!(body.expires_in, 900);
    assert_eq!(login.body["token_type"], "Bearer");
    server.get_as("/api/v1/me", &body.access_token).await.expect(200);

    server.get("/api/v1/me").await.expect_error(401, "unauthenticated");
}

async fn duplicate_email_conflicts(server: &TestServer) {
    let alice = server.register("alice").await;
    let again = register(server, &alice.email, "another-long-pw", "A2").await;
    again.expect_error(409, "conflict");
}

async fn password_policy_is_enforced(server: &TestServer) {
    let with_password = |password: String| async move {
        let email = format!("p-{}@example.com", uuid::Uuid::now_v7().simple());
        register(server, &email, &password, "P").await
    };
    let too_long = with_password("a".repeat(73)).await;
    too_long.expect_error(422, "validation_failed");
    assert!(too_long.body["error"]["message"].as_str().unwrap().contains("72 bytes"));
    with_password("short".into()).await.expect_error(422, "validation_failed");
    // 64 ASCII characters must work, and log in again afterwards.
    let long = "L".repeat(64);
    let email = format!("long-{}@example.com", uuid::Uuid::now_v7().simple());
    register(server, &email, &long, "L").await.expect_as::<SessionAnswer>(201);
    login(server, &email, &long).await.expect_as::<SessionAnswer>(200);
    // A 72-byte password is used whole: changing its last byte fails.
    let exact = "E".repeat(72);
    let email = format!("exact-{}@example.com", uuid::Uuid::now_v7().simple());
    register(server, &email, &exact, "E").await.expect_as::<SessionAnswer>(201);
    let wrong = format!("{}F", &exact[..71]);
    login(server, &email, &wrong).await.expect_error(401, "invalid_credentials");
    // Malformed bodies are 400 with a code, and change nothing.
    server
        .call(Method::POST, "/api/v1/auth/register")
        .raw("application/json", "{\"email\": ")
        .send()
        .await
        .expect_error(400, "malformed_body");
    register(server, "not-an-email", "long-enough-pw", "X")
        .await
        .expect_error(422, "validation_failed");
}

async fn unknown_email_and_wrong_password_answer_alike(server: &TestServer) {
    let alice = server.register("alice").await;
    let wrong = login(server, &alice.email, "wrong-password-x").await;
    let unknown = login(server, "nobody@example.com", "wrong-password-x").await;
    wrong.expect_error(401, "invalid_credentials");
    unknown.expect_error(401, "invalid_credentials");
    assert_eq!(wrong.body, unknown.body);
}

async fn forged_tokens_are_refused(server: &TestServer) {
    let alice = server.register("alice").await;
    let now = chrono::Utc::now().timestamp();
    let good = claims_for(&alice.id, &alice.session_id, 0, now, now, now + 600);
    // Sanity: a token minted with the right secret and claims works.
    server
        .get_as("/api/v1/me", &mint(good.clone(), TEST_SECRET, Algorithm::HS256))
        .await
        .expect(200);

    // alg=none: header {"alg":"none"}, no signature.
    use base64::Engine;
    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    };
    let none = format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), b64(&good));
    server.get_as("/api/v1/me", &none).await.expect_error(401, "unauthenticated");

    // Another HMAC algorithm with the right secret is still refused: HS256 is pinned.
    let hs512 = mint(good.clone(), TEST_SECRET, Algorithm::HS512);
    server.get_as("/api/v1/me", &hs512).await.expect_error(401, "unauthenticated");

    let other_secret =
        mint(good.clone(), "another-secret-another-secret-another", Algorithm::HS256);
    server.get_as("/api/v1/me", &other_secret).await.expect_error(401, "unauthenticated");

    let expired = mint(
        claims_for(&alice.id, &alice.session_id, 0, now - 3600, now - 3600, now - 60),
        TEST_SECRET,
        Algorithm::HS256,
    );
    server.get_as("/api/v1/me", &expired).await.expect_error(401, "token_expired");

    let future = mint(
        claims_for(&alice.id, &alice.session_id, 0, now, now + 600, now + 1200),
        TEST_SECRET,
        Algorithm::HS256,
    );
    server.get_as("/api/v1/me", &future).await.expect_error(401, "unauthenticated");

    // Tampered claims: swap the payload of a genuine token for one naming another user.
    let bob = server.register("bob").await;
    let parts: Vec<&str> = alice.access_token.split('.').collect();
    let evil = claims_for(&bob.id, &alice.session_id, 0, now, now, now + 600);
    let tampered = format!("{}.{}.{}", parts[0], b64(&evil), parts[2]);
    server.get_as("/api/v1/me", &tampered).await.expect_error(401, "unauthenticated");

    // A correctly signed token whose sub does not own the session.
    let wrong_owner = mint(evil, TEST_SECRET, Algorithm::HS256);
    server.get_as("/api/v1/me", &wrong_owner).await.expect_error(401, "session_revoked");

    // Wrong audience or issuer.
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("someone-else");
    server
        .get_as("/api/v1/me", &mint(wrong_aud, TEST_SECRET, Algorithm::HS256))
        .await
        .expect_error(401, "unauthenticated");
    let mut wrong_iss = good;
    wrong_iss["iss"] = json!("evil");
    server
        .get_as("/api/v1/me", &mint(wrong_iss, TEST_SECRET, Algorithm::HS256))
        .await
        .expect_error(401, "unauthenticated");

    server.get_as("/api/v1/me", "garbage").await.expect_error(401, "unauthenticated");
}

async fn logout_ends_the_access_token_at_once(server: &TestServer) {
    let alice = server.register("alice").await;
    server.get_as("/api/v1/me", &alice.access_token).await.expect(200);
    let out = server.send_as(Method::POST, "/api/v1/auth/logout", &alice.access_token, None).await;
    out.expect(204);
    server.get_as("/api/v1/me", &alice.access_token).await.expect_error(401, "session_revoked");
    refresh(server, &alice.refresh_token).await.expect_error(401, "session_revoked");
}

async fn password_change_ends_other_sessions_and_old_tokens(server: &TestServer) {
    let alice = server.register("alice").await;
    let second: SessionAnswer = server.login(&alice).await.expect_as(200);
    let other_access = &second.access_token;

    change_password(server, &alice.access_token, "not-the-password", "brand-new-password")
        .await
        .expect_error(401, "invalid_credentials");
    let changed =
        change_password(server, &alice.access_token, &alice.password, "brand-new-password").await;
    // Fresh tokens for the session that changed it, which goes on working with them.
    assert_eq!(changed.header("cache-control"), Some("no-store"));
    let changed: SessionAnswer = changed.expect_as(200);
    assert_eq!(changed.session_id, id(&alice.session_id));
    let access = &changed.access_token;
    server.get_as("/api/v1/me", access).await.expect_as::<Me>(200);
    server
        .post("/api/v1/orgs", Some(access), &create_org_body("After the change"))
        .await
        .expect_as::<Organization>(201);

    // The other session has ended; its refresh token no longer works.
    server.get_as("/api/v1/me", other_access).await.expect_error(401, "session_revoked");
    refresh(server, refresh_token_of(&second)).await.expect_error(401, "session_revoked");
    // The access token in hand before the change carries the old token version: refused.
    server.get_as("/api/v1/me", &alice.access_token).await.expect_error(401, "session_revoked");
    // The new refresh token works.
    let refreshed: SessionAnswer = refresh(server, refresh_token_of(&changed)).await.expect_as(200);
    server.get_as("/api/v1/me", &refreshed.access_token).await.expect(200);
    // Old password out, new one in.
    server.login(&alice).await.expect_error(401, "invalid_credentials");
    login(server, &alice.email, "brand-new-password").await.expect_as::<SessionAnswer>(200);
}

/// Wrong current passwords guess at the password: at most 5 in any 15 minutes, then even the
/// right one waits; each is audited like a wrong login. The session itself is unharmed.
async fn wrong_current_passwords_are_limited_and_audited(server: &TestServer) {
    let alice = server.register("alice").await;
    let token = &alice.access_token;
    let first = std::time::Instant::now();
    for _ in 0..5 {
        change_password(server, token, "not-the-password", "brand-new-password")
            .await
            .expect_error(401, "invalid_credentials");
    }
    let sixth = change_password(server, token, &alice.password, "brand-new-password").await;
    sixth.expect_error(429, "rate_limited");
    let retry: u64 = sixth.header("retry-after").unwrap().parse().unwrap();
    let earliest = 900.0 - first.elapsed().as_secs_f64() - 1.0;
    assert!(retry <= 900 && retry as f64 >= earliest, "{retry}");
    // Nothing changed: the old password still signs in, the session still works.
    server.get_as("/api/v1/me", &alice.access_token).await.expect(200);
    server.login(&alice).await.expect(200);

    server.flush_audit().await;
    let reasons: Vec<(String,)> = boardroom::on_pool!(server.state().store(), pool => {
        sqlx::query_as(
            "SELECT action FROM audit_log WHERE action = 'password.change_failed' ORDER BY seq",
        )
        .fetch_all(pool)
        .await
        .unwrap()
    });
    assert_eq!(reasons.len(), 6, "{reasons:?}");
    // Right passwords give their slot back: they never use up the allowance.
    let bob = server.register("bob").await;
    let mut password = bob.password.clone();
    let mut token = bob.access_token.clone();
    for n in 0..6 {
        let next = format!("bob-password-number-{n}");
        let reply = change_password(server, &token, &password, &next).await;
        token = reply.expect_as::<SessionAnswer>(200).access_token;
        password = next;
    }
}

/// `POST /auth/password` with a bearer token.
async fn change_password(server: &TestServer, token: &str, current: &str, new: &str) -> Reply {
    let body =
        ChangePassword { current_password: current.to_owned(), new_password: new.to_owned() };
    server.send_body(Method::POST, "/api/v1/auth/password", token, &body).await
}

/// A session ends `BOARDROOM_SESSION_MAX_DAYS` (90) after its sign-in, however often it is
/// refreshed. Its sign-in is moved back in the database to get there.
async fn sessions_end_at_their_absolute_lifetime(server: &TestServer) {
    let alice = server.register("alice").await;
    let session: uuid::Uuid = alice.session_id.parse().unwrap();
    let backdate = move |age: chrono::Duration| async move {
        let created = chrono::Utc::now() - age;
        boardroom::on_pool!(server.state().store(), pool => {
            sqlx::query("UPDATE sessions SET created_at = $1 WHERE id = $2")
                .bind(created).bind(session).execute(pool).await.unwrap();
        });
        created
    };
    let created = backdate(chrono::Duration::days(90) - chrono::Duration::hours(1)).await;
    let refreshed: SessionAnswer = refresh(server, &alice.refresh_token).await.expect_as(200);
    // The refresh did not extend it past its lifetime (30 days from now would).
    let (expires,): (chrono::DateTime<chrono::Utc>,) = boardroom::on_pool!(server.state().store(), pool => {
        sqlx::query_as("SELECT expires_at FROM sessions WHERE id = $1")
            .bind(session).fetch_one(pool).await.unwrap()
    });
    let limit = created + chrono::Duration::days(90);
    assert!(expires <= limit + chrono::Duration::seconds(1), "{expires} is past {limit}");

    backdate(chrono::Duration::days(90) + chrono::Duration::minutes(1)).await;
    refresh(server, refresh_token_of(&refreshed)).await.expect_error(401, "session_revoked");
    // A new sign-in starts a new lifetime.
    server.login(&alice).await.expect(200);
}

async fn refresh_rotates_and_reuse_revokes_the_session(server: &TestServer) {
    let alice = server.register("alice").await;
    let first: SessionAnswer = refresh(server, &alice.refresh_token).await.expect_as(200);
    assert_ne!(refresh_token_of(&first), alice.refresh_token);
    assert_eq!(first.session_id, id(&alice.session_id));
    let new_access = &first.access_token;
    server.get_as("/api/v1/me", new_access).await.expect(200);

    // The rotated token again: the whole session is revoked, the new pair included.
    refresh(server, &alice.refresh_token).await.expect_error(401, "session_revoked");
    server.get_as("/api/v1/me", new_access).await.expect_error(401, "session_revoked");
    refresh(server, refresh_token_of(&first)).await.expect_error(401, "session_revoked");

    // A forged generation or MAC is simply invalid (it must not revoke anything).
    let bob = server.register("bob").await;
    let forged = bob.refresh_token.replacen(".0.", ".5.", 1);
    refresh(server, &forged).await.expect_error(401, "unauthenticated");
    server.get_as("/api/v1/me", &bob.access_token).await.expect(200);
    refresh(server, "nonsense").await.expect_error(401, "unauthenticated");
}

async fn sessions_can_be_listed_and_revoked(server: &TestServer) {
    let alice = server.register("alice").await;
    let second: SessionAnswer = server.login(&alice).await.expect_as(200);
    let list = server.get_as("/api/v1/auth/sessions", &alice.access_token).await;
    let sessions = list.expect_as::<SessionList>(200).sessions;
    assert_eq!(sessions.len(), 2);
    let current: Vec<_> = sessions.iter().filter(|s| s.current).map(|s| s.id).collect();
    assert_eq!(current, [id(&alice.session_id)]);
    assert!(sessions.iter().all(|s| s.method == "password"), "{sessions:?}");

    let other = second.session_id;
    server
        .send_as(
            Method::DELETE,
            &format!("/api/v1/auth/sessions/{other}"),
            &alice.access_token,
            None,
        )
        .await
        .expect(204);
    server.get_as("/api/v1/me", &second.access_token).await.expect_error(401, "session_revoked");
    // Someone else's session is not found.
    let bob = server.register("bob").await;
    server
        .send_as(
            Method::DELETE,
            &format!("/api/v1/auth/sessions/{}", bob.session_id),
            &alice.access_token,
            None,
        )
        .await
        .expect_error(404, "not_found");
    server.get_as("/api/v1/me", &bob.access_token).await.expect(200);
}

async fn cookie_writes_need_the_csrf_header(server: &TestServer) {
    let alice = server.register("alice").await;
    let login = server.login(&alice).await;
    let cookies: Vec<String> = login
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let access_cookie = cookies.iter().find(|c| c.starts_with("br_access=")).unwrap();
    for flag in ["HttpOnly", "Secure", "SameSite=Strict"] {
        assert!(access_cookie.contains(flag), "{access_cookie}");
    }
    let pair = |name: &str| {
        cookies.iter().find(|c| c.starts_with(name)).unwrap().split(';').next().unwrap().to_owned()
    };
    let cookie_header = format!("{}; {}", pair("br_access="), pair("br_csrf="));
    let csrf = login.expect_as::<SessionAnswer>(200).csrf_token;

    let me = server.call(Method::GET, "/api/v1/me").header("cookie", &cookie_header).send().await;
    assert_eq!(me.expect_as::<Me>(200).user.id, id(&alice.id));

    let no_csrf = server
        .call(Method::POST, "/api/v1/orgs")
        .header("cookie", &cookie_header)
        .json(&create_org_body("Acme"))
        .send()
        .await;
    no_csrf.expect_error(403, "csrf_failed");
    let wrong_csrf = server
        .call(Method::POST, "/api/v1/orgs")
        .header("cookie", &cookie_header)
        .header("x-csrf-token", "guess")
        .json(&create_org_body("Acme"))
        .send()
        .await;
    wrong_csrf.expect_error(403, "csrf_failed");
    let ok = server
        .call(Method::POST, "/api/v1/orgs")
        .header("cookie", &cookie_header)
        .header("x-csrf-token", &csrf)
        .json(&create_org_body("Acme"))
        .send()
        .await;
    ok.expect_as::<Organization>(201);
    // The bearer header needs no CSRF token: it cannot be sent by another site.
    server
        .post("/api/v1/orgs", Some(&alice.access_token), &create_org_body("Beta"))
        .await
        .expect_as::<Organization>(201);
}

async fn sixth_login_attempt_is_rate_limited(server: &TestServer) {
    // A server of its own, to restart on its database below (a second node beside a live one
    // without NATS is refused).
    let Some(database) = TestDatabase::create(server.backend()).await else { return };
    let mut own = TestServer::start_on(database).await;
    let server = &own;
    let alice = server.register("alice").await;
    let first = std::time::Instant::now();
    for _ in 0..5 {
        login(server, &alice.email, "wrong-password-x")
            .await
            .expect_error(401, "invalid_credentials");
    }
    // The 6th is refused even with the right password.
    let sixth = server.login(&alice).await;
    sixth.expect_error(429, "rate_limited");
    // Exact: when the first attempt leaves the 15 minutes, never later.
    let retry: u64 = sixth.header("retry-after").unwrap().parse().unwrap();
    let earliest = 900.0 - first.elapsed().as_secs_f64() - 1.0;
    assert!(retry <= 900 && retry as f64 >= earliest, "{retry}");
    // Another email from the same IP is not affected by alice's counter.
    let bob = server.register("bob").await;
    server.login(&bob).await.expect(200);
    // The counter survives a restart: it lives in the database.
    assert!(own.stop_keeping_database().await);
    let settings = own.database.settings();
    let restarted = boardroom::server::App::build(settings).await.unwrap().spawn().await.unwrap();
    let reply = reqwest::Client::new()
        .post(format!("http://{}/api/v1/auth/login", restarted.addr()))
        .json(&login_body(&alice.email, &alice.password))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 429);
    assert!(restarted.shutdown().await);
}

async fn registration_is_limited_per_ip(server: &TestServer) {
    let first = std::time::Instant::now();
    for i in 0..5 {
        server.register(&format!("user{i}")).await;
    }
    let sixth = register(server, "sixth@example.com", "long-enough-pw", "S").await;
    sixth.expect_error(429, "rate_limited");
    let retry: u64 = sixth.header("retry-after").unwrap().parse().unwrap();
    let earliest = 60.0 - first.elapsed().as_secs_f64() - 1.0;
    assert!(retry <= 60 && retry as f64 >= earliest, "{retry}");
}

async fn tokens_agree_with_pyjwt(server: &TestServer) {
    let alice = server.register("alice").await;
    let script = r#"
import jwt, sys, time
secret, token, sub, sid = sys.argv[1:5]
claims = jwt.decode(token, secret, algorithms=["HS256"], audience="boardroom-api", issuer="boardroom")
assert claims["sub"] == sub and claims["sid"] == sid, claims
assert claims["exp"] - claims["iat"] == 900, claims
now = int(time.time())
mine = {"iss": "boardroom", "aud": "boardroom-api", "sub": sub, "sid": sid, "tv": 0,
        "iat": now, "nbf": now, "exp": now + 300}
print(jwt.encode(mine, secret, algorithm="HS256"))
"#;
    let out = python()
        .args(["-c", script, TEST_SECRET, &alice.access_token, &alice.id, &alice.session_id])
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "PyJWT rejected our token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs = String::from_utf8(out.stdout).unwrap();
    server.get_as("/api/v1/me", theirs.trim()).await.expect(200);
}

/// The `name=value` part of the `Set-Cookie` for `name` in `reply`.
fn set_cookie(reply: &Reply, name: &str) -> Option<String> {
    reply
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

async fn token_answers_are_not_stored_and_cookie_clients_get_no_refresh_token_in_the_body(
    server: &TestServer,
) {
    // A client without cookies (no browser headers): the refresh token is in the body.
    let email = format!("carol-{}@example.com", uuid::Uuid::now_v7().simple());
    let registered = register(server, &email, "carol-long-enough", "Carol").await;
    assert_eq!(registered.header("cache-control"), Some("no-store"));
    let registered: SessionAnswer = registered.expect_as(201);
    let signed_in = login(server, &email, "carol-long-enough").await;
    assert_eq!(signed_in.header("cache-control"), Some("no-store"));
    assert!(signed_in.expect_as::<SessionAnswer>(200).refresh_token.is_some());
    let refreshed = refresh(server, refresh_token_of(&registered)).await;
    assert_eq!(refreshed.header("cache-control"), Some("no-store"));
    assert!(refreshed.expect_as::<SessionAnswer>(200).refresh_token.is_some());

    // A browser (Sec-Fetch-* headers, which page scripts cannot set): the refresh token only in
    // the HttpOnly cookie, on registration and on login.
    let browser_email = format!("dan-{}@example.com", uuid::Uuid::now_v7().simple());
    let browser_registered = server
        .call(Method::POST, "/api/v1/auth/register")
        .header("sec-fetch-mode", "cors")
        .header("sec-fetch-site", "same-origin")
        .json(&register_body(&browser_email, "dan-long-enough", "Dan"))
        .send()
        .await;
    assert_eq!(browser_registered.header("cache-control"), Some("no-store"));
    let body: SessionAnswer = browser_registered.expect_as(201);
    assert_eq!(body.refresh_token, None);
    assert!(!body.access_token.is_empty());
    let browser_login = server
        .call(Method::POST, "/api/v1/auth/login")
        .header("sec-fetch-site", "same-origin")
        .json(&login_body(&browser_email, "dan-long-enough"))
        .send()
        .await;
    assert_eq!(browser_login.header("cache-control"), Some("no-store"));
    assert_eq!(browser_login.expect_as::<SessionAnswer>(200).refresh_token, None);
    let body = browser_login.body.clone();
    let cookie = set_cookie(&browser_login, "br_refresh").expect("refresh cookie");
    for flag in ["HttpOnly", "Secure", "SameSite=Strict"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    let pair = cookie.split(';').next().unwrap().to_owned();
    assert!(!body.to_string().contains(&pair["br_refresh=".len()..]));

    // Refreshing with the cookie (no body) is a cookie client too: a new cookie, no token in the
    // body; the new cookie refreshes again.
    let by_cookie =
        server.call(Method::POST, "/api/v1/auth/refresh").header("cookie", &pair).send().await;
    assert_eq!(by_cookie.header("cache-control"), Some("no-store"));
    assert_eq!(by_cookie.expect_as::<SessionAnswer>(200).refresh_token, None);
    let next = set_cookie(&by_cookie, "br_refresh").expect("rotated refresh cookie");
    let next = next.split(';').next().unwrap().to_owned();
    assert_ne!(next, pair);
    server
        .call(Method::POST, "/api/v1/auth/refresh")
        .header("cookie", &next)
        .send()
        .await
        .expect(200);
}
