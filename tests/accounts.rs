//! Accounts by email (issue #16), against a real SMTP server (`aiosmtpd`, see
//! `tests/harness/smtp.rs`): verification links, password reset, the move to a new address,
//! invitations, the squatter who registered someone else's address first, and the outbox that
//! waits out a dead SMTP server and then delivers once.

use std::time::Duration;

use boardroom_protocol::audit::AuditLog;
use boardroom_protocol::identity::{
    ChangeEmail, Login, Me, PasswordResetConfirm, PasswordResetRequest, PendingEmailChange,
    Refresh, Register, SessionAnswer, VerifyEmail,
};
use boardroom_protocol::orgs::{
    AddOrgMember, CreateInvitation, Invitation, InvitationList, InvitationSent, OrgMember, OrgRole,
};
use reqwest::Method;
use serde_json::Value;

use crate::harness::free_port;
use crate::harness::smtp::{both_backends_with_mail, SmtpSink};
use crate::harness::{
    both_backends, both_backends_with, id, Backend, Reply, TestDatabase, TestServer, TestUser,
};

both_backends_with_mail!(
    registration_mails_a_link_that_verifies_once,
    a_reset_answers_alike_for_known_and_unknown_addresses_and_ends_every_session,
    tokens_expire_and_belong_to_their_purpose,
    a_new_address_is_proved_before_the_account_moves,
    the_squatter_stays_out_and_the_real_person_gets_in,
    invitations_are_the_admins_and_the_invited_persons,
);

both_backends_with!(low_reset_limits; password_reset_is_limited_per_address_and_per_network);

both_backends!(an_operator_verifies_an_address_from_the_command_line);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const VERIFY: &str = "/api/v1/auth/verify-email";
const RESET: &str = "/api/v1/auth/password-reset";
const CONFIRM: &str = "/api/v1/auth/password-reset/confirm";

async fn me(server: &TestServer, token: &str) -> Me {
    server.get_as("/api/v1/me", token).await.expect_as(200)
}

async fn verify(server: &TestServer, token: &str) -> Reply {
    server.post(VERIFY, None, &VerifyEmail { token: token.to_owned() }).await
}

async fn reset(server: &TestServer, email: &str) -> Reply {
    server.post(RESET, None, &PasswordResetRequest { email: email.to_owned() }).await
}

async fn confirm(server: &TestServer, token: &str, password: &str) -> Reply {
    let body = PasswordResetConfirm { token: token.to_owned(), new_password: password.to_owned() };
    server.post(CONFIRM, None, &body).await
}

/// Registers `name` and proves the address with the link that registration mailed.
async fn verified(server: &TestServer, sink: &SmtpSink, name: &str) -> TestUser {
    let user = server.register(name).await;
    let link = sink.last_to(&user.email).await;
    verify(server, &link.token()).await.expect(204);
    user
}

/// Registers an account for `email` (someone else's, if a squatter does it).
async fn register_as(server: &TestServer, email: &str, password: &str) -> SessionAnswer {
    let body = Register {
        email: email.to_owned(),
        password: password.to_owned(),
        name: "Someone".to_owned(),
    };
    server.post("/api/v1/auth/register", None, &body).await.expect_as(201)
}

async fn login(server: &TestServer, email: &str, password: &str) -> Reply {
    let body = Login { email: email.to_owned(), password: password.to_owned() };
    server.post("/api/v1/auth/login", None, &body).await
}

async fn audit(server: &TestServer, admin: &TestUser, org: &str, action: &str) -> AuditLog {
    server.flush_audit().await;
    let path = format!("/api/v1/orgs/{org}/audit-log?action={action}");
    server.get_as(&path, &admin.access_token).await.expect_as(200)
}

/// Audit rows of `action` across the whole server (not tied to an organization).
async fn platform_audit(server: &TestServer, action: &str) -> Vec<(Option<uuid::Uuid>, Value)> {
    server.flush_audit().await;
    let rows: Vec<(Option<uuid::Uuid>, sqlx::types::Json<Value>)> = boardroom::on_pool!(server.state().store(), pool => {
        sqlx::query_as("SELECT actor_id, metadata FROM audit_log WHERE action = $1 ORDER BY seq")
            .bind(action)
            .fetch_all(pool)
            .await
            .unwrap()
    });
    rows.into_iter().map(|(actor, metadata)| (actor, metadata.0)).collect()
}

/// Moves every token of `email`'s account `by` into the past (expiry is a stored time).
async fn age_tokens(server: &TestServer, user: &str, by: chrono::Duration) {
    let user = id(user);
    let rows: Vec<(Vec<u8>, chrono::DateTime<chrono::Utc>)> = boardroom::on_pool!(server.state().store(), pool => {
        sqlx::query_as("SELECT token_hash, expires_at FROM email_tokens WHERE user_id = $1")
            .bind(user)
            .fetch_all(pool)
            .await
            .unwrap()
    });
    for (hash, expires_at) in rows {
        boardroom::on_pool!(server.state().store(), pool => {
            sqlx::query("UPDATE email_tokens SET expires_at = $2 WHERE token_hash = $1")
                .bind(&hash)
                .bind(expires_at - by)
                .execute(pool)
                .await
                .unwrap();
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------------

async fn registration_mails_a_link_that_verifies_once(server: &TestServer, sink: &SmtpSink) {
    let alice = server.register("alice").await;
    assert!(!me(server, &alice.access_token).await.user.email_verified);

    let mail = sink.last_to(&alice.email).await;
    assert_eq!(mail.to, alice.email);
    assert_eq!(mail.from, "Boardroom <boardroom@localhost>");
    assert!(mail.subject.contains("Boardroom"), "{}", mail.subject);
    let public = server.state().settings().public_url().unwrap();
    assert!(mail.text.contains(&format!("{}verify-email?token=", public)), "{}", mail.text);
    assert!(mail.html.contains("verify-email?token="), "{}", mail.html);
    // No tracking: no images, nothing loaded from anywhere.
    assert!(!mail.html.to_lowercase().contains("<img"), "{}", mail.html);
    let token = mail.token();
    assert!(token.len() >= 22, "at least 128 bits: {token}");
    // Only a hash of the token is stored.
    let stored: Vec<(Vec<u8>,)> = boardroom::on_pool!(server.state().store(), pool => {
        sqlx::query_as("SELECT token_hash FROM email_tokens").fetch_all(pool).await.unwrap()
    });
    assert!(stored.iter().all(|(hash,)| hash.len() == 32 && hash.as_slice() != token.as_bytes()));
    // ... and the outbox forgets the link once the message is recorded sent (a moment after the
    // server took it).
    let started = std::time::Instant::now();
    loop {
        let rows: Vec<(Option<String>, String, String)> = boardroom::on_pool!(server.state().store(), pool => {
            sqlx::query_as("SELECT CAST(sent_at AS TEXT), text_body, link FROM mail_outbox")
                .fetch_all(pool)
                .await
                .unwrap()
        });
        assert_eq!(rows.len(), 1);
        if rows[0].0.is_some() {
            assert_eq!((rows[0].1.as_str(), rows[0].2.as_str()), ("", ""));
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "never recorded sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    verify(server, "not-a-token").await.expect_error(400, "invalid_token");
    verify(server, &token).await.expect(204);
    assert!(me(server, &alice.access_token).await.user.email_verified);
    // Single use.
    verify(server, &token).await.expect_error(400, "invalid_token");
    let rows = platform_audit(server, "email.verified").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, Some(id(&alice.id)));

    // A verified address needs no new link; an unverified one may ask for one.
    let resend = "/api/v1/auth/verify-email/resend";
    server
        .send_as(Method::POST, resend, &alice.access_token, None)
        .await
        .expect_error(409, "conflict");
    let bob = server.register("bob").await;
    sink.wait_for(&bob.email, 1).await;
    server.send_as(Method::POST, resend, &bob.access_token, None).await.expect(202);
    let links = sink.wait_for(&bob.email, 2).await;
    verify(server, &links[1].token()).await.expect(204);
    assert!(me(server, &bob.access_token).await.user.email_verified);
}

// ---------------------------------------------------------------------------------------------
// Password reset
// ---------------------------------------------------------------------------------------------

async fn a_reset_answers_alike_for_known_and_unknown_addresses_and_ends_every_session(
    server: &TestServer,
    sink: &SmtpSink,
) {
    let alice = server.register("alice").await;
    let laptop: SessionAnswer = server.login(&alice).await.expect_as(200);
    sink.wait_for(&alice.email, 1).await;
    let nobody = format!("nobody-{}@example.com", uuid::Uuid::now_v7().simple());

    // The same status and body, whether an account has the address or not.
    let known = reset(server, &alice.email).await;
    let unknown = reset(server, &nobody).await;
    assert_eq!((known.status, &known.body), (202, &Value::Null));
    assert_eq!((unknown.status, &unknown.body), (202, &Value::Null));
    // The owner of an address with no account learns only that; no link.
    let notice = sink.last_to(&nobody).await;
    assert!(!notice.text.contains("token="), "{}", notice.text);
    let link = sink.wait_for(&alice.email, 2).await.pop().unwrap();
    assert!(link.text.contains("reset-password?token="), "{}", link.text);
    let token = link.token();

    // A reset token is no verification token, and a weak password spends nothing.
    verify(server, &token).await.expect_error(400, "invalid_token");
    confirm(server, &token, "short").await.expect_error(422, "validation_failed");
    confirm(server, &token, "a-brand-new-password").await.expect(204);

    // Every session and access token ended; the old password is gone; the new one works.
    for session in [&alice.access_token, &laptop.access_token] {
        server.get_as("/api/v1/me", session).await.expect_error(401, "session_revoked");
    }
    let refresh = Refresh { refresh_token: Some(alice.refresh_token.clone()) };
    let refused = server.post("/api/v1/auth/refresh", None, &refresh).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    login(server, &alice.email, &alice.password).await.expect_error(401, "invalid_credentials");
    let signed_in: SessionAnswer =
        login(server, &alice.email, "a-brand-new-password").await.expect_as(200);
    // The link proved the address.
    assert!(signed_in.user.email_verified);
    // Single use.
    confirm(server, &token, "yet-another-password").await.expect_error(400, "invalid_token");
    let rows = platform_audit(server, "password.reset").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, Some(id(&alice.id)));
    assert_eq!(rows[0].1["sessions_ended"], 2);
}

async fn tokens_expire_and_belong_to_their_purpose(server: &TestServer, sink: &SmtpSink) {
    let alice = server.register("alice").await;
    let verification = sink.last_to(&alice.email).await.token();
    reset(server, &alice.email).await.expect(202);
    let reset_token = sink.wait_for(&alice.email, 2).await.pop().unwrap().token();
    // A verification token cannot set a password.
    confirm(server, &verification, "a-brand-new-password").await.expect_error(400, "invalid_token");

    // A reset link works for an hour, a verification link for a day.
    age_tokens(server, &alice.id, chrono::Duration::minutes(61)).await;
    confirm(server, &reset_token, "a-brand-new-password").await.expect_error(400, "invalid_token");
    verify(server, &verification).await.expect(204);

    let bob = server.register("bob").await;
    let late = sink.last_to(&bob.email).await.token();
    age_tokens(server, &bob.id, chrono::Duration::hours(25)).await;
    verify(server, &late).await.expect_error(400, "invalid_token");
    assert!(!me(server, &bob.access_token).await.user.email_verified);
}

fn low_reset_limits(settings: &mut boardroom::config::Settings) {
    settings.password_reset_limit = 2;
    settings.password_reset_ip_limit = 3;
}

async fn password_reset_is_limited_per_address_and_per_network(server: &TestServer) {
    let (a, b, c) = ("a@example.com", "b@example.com", "c@example.com");
    reset(server, a).await.expect(202);
    reset(server, a).await.expect(202);
    let refused = reset(server, a).await;
    refused.expect_error(429, "rate_limited");
    assert!(refused.header("retry-after").is_some());
    // Another address from the same network: the network's third.
    reset(server, b).await.expect(202);
    reset(server, c).await.expect_error(429, "rate_limited");
}

// ---------------------------------------------------------------------------------------------
// A new address
// ---------------------------------------------------------------------------------------------

async fn a_new_address_is_proved_before_the_account_moves(server: &TestServer, sink: &SmtpSink) {
    let alice = verified(server, sink, "alice").await;
    let new = format!("alice-new-{}@example.com", uuid::Uuid::now_v7().simple());
    let change =
        |password: &str| ChangeEmail { email: new.clone(), current_password: password.to_owned() };
    server
        .send_body(Method::PATCH, "/api/v1/me", &alice.access_token, &change("wrong-password"))
        .await
        .expect_error(401, "invalid_credentials");
    let taken = ChangeEmail {
        email: server.register("bob").await.email,
        current_password: alice.password.clone(),
    };
    server
        .send_body(Method::PATCH, "/api/v1/me", &alice.access_token, &taken)
        .await
        .expect_error(409, "conflict");
    let pending: PendingEmailChange = server
        .send_body(Method::PATCH, "/api/v1/me", &alice.access_token, &change(&alice.password))
        .await
        .expect_as(202);
    assert_eq!(pending.pending_email, new);

    // Nothing moves until the new address is proved; the old one is told.
    assert_eq!(me(server, &alice.access_token).await.user.email, alice.email);
    let told = sink.wait_for(&alice.email, 2).await.pop().unwrap();
    assert!(told.text.contains(&new), "{}", told.text);
    assert!(!told.text.contains("token="), "{}", told.text);
    let link = sink.last_to(&new).await;
    verify(server, &link.token()).await.expect(204);

    let user = me(server, &alice.access_token).await.user;
    assert_eq!((user.email.as_str(), user.email_verified), (new.as_str(), true));
    login(server, &new, &alice.password).await.expect(200);
    login(server, &alice.email, &alice.password).await.expect_error(401, "invalid_credentials");
    let changed = platform_audit(server, "email.changed").await;
    assert_eq!(changed.len(), 1);
    assert_eq!(
        (changed[0].1["from"].as_str(), changed[0].1["to"].as_str()),
        (Some(alice.email.as_str()), Some(new.as_str()))
    );
}

// ---------------------------------------------------------------------------------------------
// Invitations
// ---------------------------------------------------------------------------------------------

async fn add_by_email(server: &TestServer, admin: &TestUser, org: &str, email: &str) -> Reply {
    let body = AddOrgMember { email: email.to_owned(), role: "member".to_owned() };
    server.post(&format!("/api/v1/orgs/{org}/members"), Some(&admin.access_token), &body).await
}

async fn my_invitations(server: &TestServer, token: &str) -> Vec<Invitation> {
    server.get_as("/api/v1/invitations", token).await.expect_as::<InvitationList>(200).invitations
}

async fn the_squatter_stays_out_and_the_real_person_gets_in(server: &TestServer, sink: &SmtpSink) {
    let admin = verified(server, sink, "admin").await;
    let org = server.create_org(&admin, "Victim Corp").await;
    let newhire = format!("newhire-{}@victim.example", uuid::Uuid::now_v7().simple());

    // The attacker registers the new hire's address before the new hire does.
    let squatter = register_as(server, &newhire, "squatters-password").await;
    let sent: InvitationSent = add_by_email(server, &admin, &org, &newhire).await.expect_as(202);
    assert_eq!(
        (sent.invitation.email.as_str(), sent.invitation.role),
        (newhire.as_str(), OrgRole::Member)
    );
    assert_eq!(sent.invitation.invited_by, Some(id(&admin.id)));

    // Named, the squatter gets nothing: no membership, no invitation they can see or take.
    let path = format!("/api/v1/orgs/{org}");
    server.get_as(&path, &squatter.access_token).await.expect_error(404, "not_found");
    assert!(my_invitations(server, &squatter.access_token).await.is_empty());
    let accept = format!("/api/v1/invitations/{}/accept", sent.invitation.id);
    server
        .send_as(Method::POST, &accept, &squatter.access_token, None)
        .await
        .expect_error(404, "not_found");
    let members = server.get_as(&format!("{path}/members"), &admin.access_token).await;
    assert_eq!(members.expect(200)["members"].as_array().unwrap().len(), 1);

    // The invitation and the verification link went to the address, which the new hire reads.
    let invitation = sink.wait_for(&newhire, 2).await;
    let invited = invitation.iter().find(|m| m.subject.contains("Victim Corp")).unwrap();
    assert!(
        invited.text.contains(&format!("/invitations/{}", sent.invitation.id)),
        "{}",
        invited.text
    );

    // The new hire recovers the account by email: the squatter's password and sessions end.
    reset(server, &newhire).await.expect(202);
    let link = sink.wait_for(&newhire, 3).await.pop().unwrap();
    confirm(server, &link.token(), "the-new-hires-password").await.expect(204);
    server.get_as("/api/v1/me", &squatter.access_token).await.expect_error(401, "session_revoked");
    login(server, &newhire, "squatters-password").await.expect_error(401, "invalid_credentials");
    let newhire_session: SessionAnswer =
        login(server, &newhire, "the-new-hires-password").await.expect_as(200);

    let pending = my_invitations(server, &newhire_session.access_token).await;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].organization_name, "Victim Corp");
    let member: OrgMember = server
        .send_as(Method::POST, &accept, &newhire_session.access_token, None)
        .await
        .expect_as(200);
    assert_eq!((member.email.as_str(), member.role), (newhire.as_str(), OrgRole::Member));
    server.get_as(&path, &newhire_session.access_token).await.expect(200);
    // Used once.
    server
        .send_as(Method::POST, &accept, &newhire_session.access_token, None)
        .await
        .expect_error(404, "not_found");
    let added = audit(server, &admin, &org, "member.added").await.entries;
    assert_eq!(added.len(), 1);
    assert_eq!(added[0].metadata["invitation_id"], sent.invitation.id.to_string());
}

async fn invitations_are_the_admins_and_the_invited_persons(server: &TestServer, sink: &SmtpSink) {
    let admin = verified(server, sink, "admin").await;
    let org = server.create_org(&admin, "Acme").await;
    let other_admin = verified(server, sink, "other").await;
    let other_org = server.create_org(&other_admin, "Other").await;
    let bob = verified(server, sink, "bob").await;
    let carol = verified(server, sink, "carol").await;
    let invitations = format!("/api/v1/orgs/{org}/invitations");

    // A verified account named by email is added at once, as before.
    let added: OrgMember = add_by_email(server, &admin, &org, &bob.email).await.expect_as(201);
    assert_eq!(added.user_id, id(&bob.id));

    let invite = |email: &str, role: &str| CreateInvitation {
        email: email.to_owned(),
        role: role.to_owned(),
    };
    // Members do not invite or see invitations; another organization's admin finds nothing.
    server
        .post(&invitations, Some(&bob.access_token), &invite(&carol.email, "member"))
        .await
        .expect_error(403, "forbidden");
    server.get_as(&invitations, &bob.access_token).await.expect_error(403, "forbidden");
    server.get_as(&invitations, &other_admin.access_token).await.expect_error(404, "not_found");
    server
        .post(&invitations, Some(&admin.access_token), &invite(&carol.email, "owner"))
        .await
        .expect_error(422, "validation_failed");

    let created: Invitation = server
        .post(&invitations, Some(&admin.access_token), &invite(&carol.email, "admin"))
        .await
        .expect_as(201);
    assert_eq!((created.role, created.organization_id), (OrgRole::Admin, id(&org)));
    let ttl = created.expires_at - created.created_at;
    assert_eq!(ttl, chrono::Duration::days(7));
    let mail = sink.wait_for(&carol.email, 2).await.pop().unwrap();
    assert!(mail.subject.contains("Acme"), "{}", mail.subject);
    let listed =
        server.get_as(&invitations, &admin.access_token).await.expect_as::<InvitationList>(200);
    assert_eq!(listed.invitations, vec![created.clone()]);

    // Revoked: gone for everyone.
    let other_path = format!("/api/v1/orgs/{other_org}/invitations/{}", created.id);
    server
        .send_as(Method::DELETE, &other_path, &other_admin.access_token, None)
        .await
        .expect_error(404, "not_found");
    let revoke = format!("{invitations}/{}", created.id);
    server.send_as(Method::DELETE, &revoke, &admin.access_token, None).await.expect(204);
    server
        .send_as(Method::DELETE, &revoke, &admin.access_token, None)
        .await
        .expect_error(404, "not_found");
    assert!(my_invitations(server, &carol.access_token).await.is_empty());
    let accept = |id: uuid::Uuid| format!("/api/v1/invitations/{id}/accept");
    server
        .send_as(Method::POST, &accept(created.id), &carol.access_token, None)
        .await
        .expect_error(404, "not_found");

    // Someone with another verified address cannot take carol's invitation; carol declines it.
    let again: Invitation = server
        .post(&invitations, Some(&admin.access_token), &invite(&carol.email, "member"))
        .await
        .expect_as(201);
    server
        .send_as(Method::POST, &accept(again.id), &bob.access_token, None)
        .await
        .expect_error(404, "not_found");
    let decline = format!("/api/v1/invitations/{}/decline", again.id);
    server
        .send_as(Method::POST, &decline, &bob.access_token, None)
        .await
        .expect_error(404, "not_found");
    server.send_as(Method::POST, &decline, &carol.access_token, None).await.expect(204);
    server
        .send_as(Method::POST, &accept(again.id), &carol.access_token, None)
        .await
        .expect_error(404, "not_found");
    assert!(server
        .get_as(&invitations, &admin.access_token)
        .await
        .expect_as::<InvitationList>(200)
        .invitations
        .is_empty());
    server
        .get_as(&format!("/api/v1/orgs/{org}"), &carol.access_token)
        .await
        .expect_error(404, "not_found");

    // Accepted with its role.
    let third: Invitation = server
        .post(&invitations, Some(&admin.access_token), &invite(&carol.email, "admin"))
        .await
        .expect_as(201);
    let joined: OrgMember = server
        .send_as(Method::POST, &accept(third.id), &carol.access_token, None)
        .await
        .expect_as(200);
    assert_eq!(joined.role, OrgRole::Admin);
    let revoked = audit(server, &admin, &org, "invitation.revoked").await.entries;
    assert_eq!(revoked.len(), 1);
}

/// `boardroom admin verify-email EMAIL` against the server's database.
fn verify_from_cli(server: &TestServer, email: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_boardroom"))
        .args(["admin", "verify-email", email])
        .env("DATABASE_URL", &server.database.url)
        .env("BOARDROOM_DATA_DIR", server.database.dir.path())
        .env("BOARDROOM_LOG", "error")
        .output()
        .unwrap()
}

async fn an_operator_verifies_an_address_from_the_command_line(server: &TestServer) {
    let admin = server.register("admin").await;
    let org = server.create_org(&admin, "Acme").await;
    let alice = server.register("alice").await;
    // Unverified, alice is only invited.
    add_by_email(server, &admin, &org, &alice.email).await.expect(202);

    let done = verify_from_cli(server, &alice.email.to_uppercase());
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    assert_eq!(String::from_utf8_lossy(&done.stdout).trim(), format!("verified {}", alice.email));
    assert!(me(server, &alice.access_token).await.user.email_verified);
    let rows = platform_audit(server, "email.verified").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].1["via"], "cli");

    let missing = verify_from_cli(server, "nobody@example.com");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no account with email"));

    // Verified, alice is added at once.
    let added: OrgMember = add_by_email(server, &admin, &org, &alice.email).await.expect_as(201);
    assert_eq!(added.user_id, id(&alice.id));
}

// ---------------------------------------------------------------------------------------------
// The outbox
// ---------------------------------------------------------------------------------------------

mod mail_waits_for_a_dead_smtp_server_and_arrives_once {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::smtp_down_then_up(super::Backend::Sqlite).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::smtp_down_then_up(super::Backend::Postgres).await;
    }
}

async fn smtp_down_then_up(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else { return };
    let mut sink = SmtpSink::down(free_port());
    let server = TestServer::start_with(database, |s| {
        s.smtp_url = Some(sink.url());
        s.mail_retry_base = Duration::from_millis(100);
    })
    .await;
    // Registration does not wait for mail, nor fail with it.
    let alice = server.register("alice").await;
    let attempts = || async {
        let rows: Vec<(i64, Option<String>)> = boardroom::on_pool!(server.state().store(), pool => {
            sqlx::query_as("SELECT attempts, last_error FROM mail_outbox").fetch_all(pool).await.unwrap()
        });
        rows
    };
    let started = std::time::Instant::now();
    loop {
        let rows = attempts().await;
        if rows.len() == 1 && rows[0].0 >= 2 {
            assert!(rows[0].1.is_some(), "the failure is recorded");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "no retries: {rows:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sink.up();
    let arrived = sink.wait_for(&alice.email, 1).await;
    assert_eq!(arrived.len(), 1);
    // A few more rounds of the sender: nothing is sent twice.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(sink.messages().len(), 1);
    verify(&server, &arrived[0].token()).await.expect(204);
    server.stop().await;
}
