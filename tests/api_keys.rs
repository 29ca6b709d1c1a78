//! API keys: shape and storage (prefix in plaintext, the rest only as bcrypt), scopes, tenancy,
//! revocation and re-scoping taking effect at once, expiry, per-key limits with their headers,
//! and the per-IP counter that refuses bad keys before any bcrypt runs.

use boardroom_protocol::api_keys::{ApiKey, ApiKeyList, CreateApiKey, CreatedApiKey, UpdateApiKey};
use boardroom_protocol::identity::Me;
use boardroom_protocol::orgs::{AddOrgMember, CreateOrganization, OrganizationList};
use boardroom_protocol::Scope;
use reqwest::Method;

use crate::harness::{both_backends, both_backends_with, Reply, TestServer, TestUser};

both_backends!(
    keys_are_stored_as_prefix_and_bcrypt_hash,
    keys_act_inside_their_org_and_never_manage_credentials,
    revoked_rescoped_and_departed_keys_stop_at_once,
    expired_keys_are_refused,
    per_key_rate_limit_with_headers,
    bad_keys_are_counted_per_ip_before_bcrypt,
    concurrent_first_uses_of_a_key_run_bcrypt_once,
    a_revoke_or_rescope_during_verification_wins,
);

both_backends_with!(
    short_key_cache;
    changes_made_elsewhere_take_effect_within_the_cache_ttl
);

/// The body creating key `name` with `scopes` and the server's default limit and no expiry.
fn new_key(name: &str, scopes: &[&str]) -> CreateApiKey {
    CreateApiKey {
        name: name.to_owned(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        rate_limit_per_minute: None,
        expires_at: None,
    }
}

/// `POST /orgs/{org}/api-keys` as `user`.
async fn create(server: &TestServer, user: &TestUser, org: &str, body: &CreateApiKey) -> Reply {
    server.post(&format!("/api/v1/orgs/{org}/api-keys"), Some(&user.access_token), body).await
}

/// The scopes `GET /me` shows for the key it was called with.
#[track_caller]
fn key_scopes(me: &Reply) -> Vec<Scope> {
    me.expect_as::<Me>(200).api_key.expect("called with a key").scopes
}

/// Re-scopes key `id` of `org` to `scopes`, as `admin`.
async fn rescope(server: &TestServer, admin: &TestUser, org: &str, id: &str, scopes: &[&str]) {
    let body = UpdateApiKey {
        scopes: Some(scopes.iter().map(|s| (*s).to_owned()).collect()),
        ..Default::default()
    };
    let path = format!("/api/v1/orgs/{org}/api-keys/{id}");
    let key: ApiKey =
        server.send_body(Method::PATCH, &path, &admin.access_token, &body).await.expect_as(200);
    let wanted: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(key.scopes.iter().map(|s| s.as_str().to_owned()).collect::<Vec<_>>(), wanted);
}

/// Verified keys are trusted for one second, so a test can outwait the TTL.
fn short_key_cache(settings: &mut boardroom::config::Settings) {
    settings.key_cache_ttl_secs = 1;
}

async fn keys_are_stored_as_prefix_and_bcrypt_hash(server: &TestServer) {
    let alice = server.register("alice").await;
    let org = server.create_org(&alice, "Acme").await;
    let body = CreateApiKey {
        rate_limit_per_minute: Some(120),
        ..new_key("ci", &["items:write", "boards:read", "boards:read"])
    };
    let created: CreatedApiKey = create(server, &alice, &org, &body).await.expect_as(201);
    let key = created.key;
    assert!(key.starts_with("brk_") && key.len() == 44, "{key}");
    assert_eq!(created.api_key.prefix, &key[..11]);
    assert_eq!(created.api_key.scopes, [Scope::BoardsRead, Scope::ItemsWrite]);
    assert_eq!(created.api_key.rate_limit_per_minute, 120);

    let list = server.get_as(&format!("/api/v1/orgs/{org}/api-keys"), &alice.access_token).await;
    assert_eq!(list.expect_as::<ApiKeyList>(200).api_keys, [created.api_key]);
    // The listing's raw shape: no field that could carry the secret.
    let listed = list.body["api_keys"][0].clone();
    assert!(listed.get("key").is_none() && listed.get("secret_hash").is_none(), "{listed}");
    assert!(!list.body.to_string().contains(&key[11..]));

    // What the database holds: the prefix, and a bcrypt hash of the rest that an independent
    // bcrypt implementation accepts.
    let (prefix, hash): (String, String) = boardroom::on_pool!(server.state().store(), pool => {
        sqlx::query_as("SELECT prefix, secret_hash FROM api_keys").fetch_one(pool).await.unwrap()
    });
    assert_eq!(prefix, &key[..11]);
    assert!(!hash.contains(&key[11..]));
    let check = crate::harness::python()
        .args(["-c", "import bcrypt,sys; sys.exit(0 if bcrypt.checkpw(sys.argv[1].encode(), sys.argv[2].encode()) else 1)", &key[11..], &hash])
        .status()
        .expect("python");
    assert!(check.success(), "python bcrypt rejected the stored key hash");

    let past = "2001-01-01T00:00:00Z".parse().unwrap();
    for bad in [
        new_key("x", &[]),
        new_key("x", &["admin"]),
        new_key("", &["boards:read"]),
        CreateApiKey { rate_limit_per_minute: Some(0), ..new_key("x", &["boards:read"]) },
        CreateApiKey { expires_at: Some(past), ..new_key("x", &["boards:read"]) },
    ] {
        create(server, &alice, &org, &bad).await.expect_error(422, "validation_failed");
    }
}

async fn keys_act_inside_their_org_and_never_manage_credentials(server: &TestServer) {
    let alice = server.register("alice").await;
    let org_a = server.create_org(&alice, "A").await;
    let org_b = server.create_org(&alice, "B").await;
    let (_, key) = server.create_key(&alice, &org_a, &["boards:read"]).await;

    server.get_as(&format!("/api/v1/orgs/{org_a}"), &key).await.expect(200);
    let me: Me = server.get_as("/api/v1/me", &key).await.expect_as(200);
    assert_eq!(me.user.id.to_string(), alice.id);
    assert_eq!(me.api_key.expect("a key's identity").organization_id.to_string(), org_a);
    assert_eq!((me.session_id, me.superadmin), (None, None));
    // Its user belongs to org B, but the key does not reach it.
    server.get_as(&format!("/api/v1/orgs/{org_b}"), &key).await.expect_error(404, "not_found");
    let orgs = server.get_as("/api/v1/orgs", &key).await;
    assert_eq!(orgs.expect_as::<OrganizationList>(200).organizations.len(), 1);

    // Beyond its scopes: keys, sessions, membership and the audit log.
    server
        .post(
            &format!("/api/v1/orgs/{org_a}/api-keys"),
            Some(&key),
            &new_key("child", &["boards:read"]),
        )
        .await
        .expect_error(403, "insufficient_scope");
    server
        .get_as(&format!("/api/v1/orgs/{org_a}/api-keys"), &key)
        .await
        .expect_error(403, "insufficient_scope");
    server
        .post("/api/v1/orgs", Some(&key), &CreateOrganization { name: "C".into() })
        .await
        .expect_error(403, "insufficient_scope");
    server.get_as("/api/v1/auth/sessions", &key).await.expect_error(403, "insufficient_scope");
    server
        .send_as(Method::POST, "/api/v1/auth/logout", &key, None)
        .await
        .expect_error(403, "insufficient_scope");
    server
        .get_as(&format!("/api/v1/orgs/{org_a}/audit-log"), &key)
        .await
        .expect_error(403, "insufficient_scope");
    server
        .post(
            &format!("/api/v1/orgs/{org_a}/members"),
            Some(&key),
            &AddOrgMember { email: "x@example.com".into(), role: "member".into() },
        )
        .await
        .expect_error(403, "insufficient_scope");
    let keys = server.get_as(&format!("/api/v1/orgs/{org_a}/api-keys"), &alice.access_token).await;
    assert_eq!(keys.expect_as::<ApiKeyList>(200).api_keys.len(), 1);
}

async fn revoked_rescoped_and_departed_keys_stop_at_once(server: &TestServer) {
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let org = server.create_org(&alice, "Acme").await;
    server.add_member(&alice, &org, &bob, "member").await;
    let (id, key) = server.create_key(&alice, &org, &["boards:read"]).await;
    server.get_as(&format!("/api/v1/orgs/{org}"), &key).await.expect(200); // now cached

    // Re-scoped: the cache is dropped and the new scopes apply at once.
    rescope(server, &alice, &org, &id, &["items:read"]).await;
    let me = server.get_as("/api/v1/me", &key).await;
    assert_eq!(key_scopes(&me), [Scope::ItemsRead]);

    // A member cannot see or revoke someone else's key; the admin can.
    server
        .send_as(
            Method::DELETE,
            &format!("/api/v1/orgs/{org}/api-keys/{id}"),
            &bob.access_token,
            None,
        )
        .await
        .expect_error(404, "not_found");
    server
        .send_as(
            Method::DELETE,
            &format!("/api/v1/orgs/{org}/api-keys/{id}"),
            &alice.access_token,
            None,
        )
        .await
        .expect(204);
    server.get_as(&format!("/api/v1/orgs/{org}"), &key).await.expect_error(401, "unauthenticated");
    server
        .send_as(
            Method::DELETE,
            &format!("/api/v1/orgs/{org}/api-keys/{id}"),
            &alice.access_token,
            None,
        )
        .await
        .expect_error(404, "not_found");

    // Bob's key stops when Bob leaves the organization.
    let (_, bobs_key) = server.create_key(&bob, &org, &["boards:read"]).await;
    server.get_as(&format!("/api/v1/orgs/{org}"), &bobs_key).await.expect(200);
    server
        .send_as(
            Method::DELETE,
            &format!("/api/v1/orgs/{org}/members/{}", bob.id),
            &alice.access_token,
            None,
        )
        .await
        .expect(204);
    server
        .get_as(&format!("/api/v1/orgs/{org}"), &bobs_key)
        .await
        .expect_error(401, "unauthenticated");
}

async fn expired_keys_are_refused(server: &TestServer) {
    let alice = server.register("alice").await;
    let org = server.create_org(&alice, "Acme").await;
    let expires = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let body = CreateApiKey { expires_at: Some(expires), ..new_key("short", &["boards:read"]) };
    let created: CreatedApiKey = create(server, &alice, &org, &body).await.expect_as(201);
    assert_eq!(
        created.api_key.expires_at.map(|at| at.timestamp_millis()),
        Some(expires.timestamp_millis())
    );
    let key = created.key;
    server.get_as(&format!("/api/v1/orgs/{org}"), &key).await.expect(200);
    tokio::time::sleep(std::time::Duration::from_millis(1700)).await;
    server.get_as(&format!("/api/v1/orgs/{org}"), &key).await.expect_error(401, "unauthenticated");
}

async fn per_key_rate_limit_with_headers(server: &TestServer) {
    let alice = server.register("alice").await;
    let org = server.create_org(&alice, "Acme").await;
    let body = CreateApiKey { rate_limit_per_minute: Some(3), ..new_key("slow", &["boards:read"]) };
    let key = create(server, &alice, &org, &body).await.expect_as::<CreatedApiKey>(201).key;
    let path = format!("/api/v1/orgs/{org}");
    let first_sent = std::time::Instant::now();
    let first = server.get_as(&path, &key).await;
    first.expect(200);
    assert_eq!(first.header("ratelimit-policy"), Some("\"per-key\";q=3;w=60"));
    assert!(
        first.header("ratelimit").unwrap().starts_with("\"per-key\";r=2;"),
        "{:?}",
        first.header("ratelimit")
    );
    // N + 1 quick requests: exactly N pass.
    let mut replies = vec![first];
    for _ in 0..3 {
        replies.push(server.get_as(&path, &key).await);
    }
    let passed = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(passed, 3, "{:?}", replies.iter().map(|r| r.status).collect::<Vec<_>>());
    let refused = replies.last().unwrap();
    refused.expect_error(429, "rate_limited");
    // Exact: the wait ends when the first request leaves the minute, not when a token bucket
    // would have refilled one request (20 s at 3 a minute).
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    let earliest = 60.0 - first_sent.elapsed().as_secs_f64() - 1.0;
    assert!(retry <= 60 && retry as f64 >= earliest, "{retry}");
    assert!(refused.header("ratelimit").unwrap().contains("r=0"));
    // Sessions are not charged to the key.
    server.get_as(&path, &alice.access_token).await.expect(200);
}

async fn bad_keys_are_counted_per_ip_before_bcrypt(server: &TestServer) {
    let alice = server.register("alice").await;
    let org = server.create_org(&alice, "Acme").await;
    let (_, key) = server.create_key(&alice, &org, &["boards:read"]).await;
    let (_, in_use) = server.create_key(&alice, &org, &["boards:read"]).await;
    server.get_as(&format!("/api/v1/orgs/{org}"), &in_use).await.expect(200);
    let unknown = format!("brk_{}", "Z".repeat(40));
    for i in 0..20 {
        let bad = if i % 2 == 0 { "brk_malformed".to_owned() } else { unknown.clone() };
        server
            .get_as(&format!("/api/v1/orgs/{org}"), &bad)
            .await
            .expect_error(401, "unauthenticated");
    }
    // This IP has used up its failures: even a genuine, never-verified key is refused unheard.
    let refused = server.get_as(&format!("/api/v1/orgs/{org}"), &key).await;
    refused.expect_error(429, "rate_limited");
    assert!(refused.header("retry-after").is_some());
    // A key verified before is no guess and costs nothing: it still works from this IP.
    server.get_as(&format!("/api/v1/orgs/{org}"), &in_use).await.expect(200);
    // Sessions are unaffected.
    server.get_as(&format!("/api/v1/orgs/{org}"), &alice.access_token).await.expect(200);
}

/// A bot fleet starting at once with one new key: the first request verifies it with bcrypt,
/// the others wait for that and find it cached, instead of each queueing its own bcrypt.
async fn concurrent_first_uses_of_a_key_run_bcrypt_once(server: &TestServer) {
    let alice = server.register("alice").await;
    let org = server.create_org(&alice, "Acme").await;
    let (_, key) = server.create_key(&alice, &org, &["boards:read"]).await;
    let before = server.state().auth().hasher().runs();
    let path = format!("/api/v1/orgs/{org}/boards");
    let uses = (0..8).map(|_| server.get_as(&path, &key));
    for reply in futures::future::join_all(uses).await {
        reply.expect(200);
    }
    assert_eq!(server.state().auth().hasher().runs() - before, 1, "one bcrypt for eight uses");
    // A wrong key is not cached: each attempt is verified (and counted against the IP).
    let last = if key.ends_with('x') { 'y' } else { 'x' };
    let wrong = format!("{}{last}", &key[..key.len() - 1]);
    let before = server.state().auth().hasher().runs();
    for _ in 0..2 {
        server.get_as(&path, &wrong).await.expect_error(401, "unauthenticated");
    }
    assert_eq!(server.state().auth().hasher().runs() - before, 2);
}

/// A revoke or re-scope that lands while bcrypt runs on a key's first use wins: the grant read
/// before it is neither used for that request nor cached for later ones. The verification is
/// stopped after bcrypt (a test hook), the change lands, then it goes on.
async fn a_revoke_or_rescope_during_verification_wins(server: &TestServer) {
    let alice = server.register("alice").await;
    let org = server.create_org(&alice, "Acme").await;
    let keys = server.state().auth().key_cache();

    let (id, key) = server.create_key(&alice, &org, &["boards:read"]).await;
    let pause = keys.pause_next_verification();
    let rescope = async {
        pause.reached().await;
        rescope(server, &alice, &org, &id, &["items:read"]).await;
        pause.resume();
    };
    let (me, ()) = tokio::join!(server.get_as("/api/v1/me", &key), rescope);
    assert_eq!(key_scopes(&me), [Scope::ItemsRead], "the old scopes were used");
    let me = server.get_as("/api/v1/me", &key).await;
    assert_eq!(key_scopes(&me), [Scope::ItemsRead], "the old scopes were cached");

    let (id, key) = server.create_key(&alice, &org, &["boards:read"]).await;
    let pause = keys.pause_next_verification();
    let revoke = async {
        pause.reached().await;
        server
            .send_as(
                Method::DELETE,
                &format!("/api/v1/orgs/{org}/api-keys/{id}"),
                &alice.access_token,
                None,
            )
            .await
            .expect(204);
        pause.resume();
    };
    let path = format!("/api/v1/orgs/{org}");
    let (used, ()) = tokio::join!(server.get_as(&path, &key), revoke);
    used.expect_error(401, "unauthenticated");
    server.get_as(&path, &key).await.expect_error(401, "unauthenticated");
}

/// Another node revokes one key and re-scopes another in the shared database (here: through the
/// store, behind this node's cache). Once the cache's TTL has passed, this node sees both, and
/// the re-check of a live key costs no bcrypt.
async fn changes_made_elsewhere_take_effect_within_the_cache_ttl(server: &TestServer) {
    let alice = server.register("alice").await;
    let org = server.create_org(&alice, "Acme").await;
    let (revoked_id, revoked) = server.create_key(&alice, &org, &["boards:read"]).await;
    let (rescoped_id, rescoped) = server.create_key(&alice, &org, &["boards:read"]).await;
    let path = format!("/api/v1/orgs/{org}");
    server.get_as(&path, &revoked).await.expect(200);
    server.get_as(&path, &rescoped).await.expect(200);

    let org_id: uuid::Uuid = org.parse().unwrap();
    let tenant = server.state().store().tenant(org_id);
    assert!(tenant.revoke_api_key(revoked_id.parse().unwrap()).await.unwrap());
    let changes = boardroom::storage::ApiKeyChanges {
        scopes: Some(vec!["items:read".to_owned()]),
        ..Default::default()
    };
    tenant.update_api_key(rescoped_id.parse().unwrap(), changes).await.unwrap().unwrap();

    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    let bcrypt_runs = server.state().auth().hasher().runs();
    server.get_as(&path, &revoked).await.expect_error(401, "unauthenticated");
    let me = server.get_as("/api/v1/me", &rescoped).await;
    assert_eq!(key_scopes(&me), [Scope::ItemsRead]);
    assert_eq!(server.state().auth().hasher().runs(), bcrypt_runs, "re-checked without bcrypt");
    // The new scopes are what the key is held to, and the re-checked grant is cached again.
    server
        .get_as(&format!("{path}/boards"), &rescoped)
        .await
        .expect_error(403, "insufficient_scope");
    assert_eq!(server.state().auth().hasher().runs(), bcrypt_runs);
}
