//! The web client's admin and account pages in a real browser (tests/browser/admin.py,
//! webhooks.py, account.py), each on both backends: members, roles and invitations; an API key
//! shown once that works against the API until it is revoked; the audit log filtered and paged;
//! a board's webhooks with deliveries a real receiver got; and the mailed links (verification,
//! password reset, invitation) read from a real SMTP server. Also the page's routes for those
//! links, and `GET /config`.

use boardroom::config::Settings;
use boardroom_protocol::client::ClientConfig;
use boardroom_protocol::identity;
use boardroom_protocol::orgs;
use boardroom_protocol::webhooks::{WebhookList, WebhookPayload};
use serde_json::json;

use crate::harness::browser::BrowserScript;
use crate::harness::smtp::SmtpSink;
use crate::harness::{both_backends, both_backends_with, group, item, TestServer};
use crate::webhooks::{with_receiver, Receiver};

both_backends!(the_mailed_links_serve_the_page, the_config_says_what_is_on);

both_backends_with!(on_a_known_port; an_admin_manages_members_keys_and_reads_the_audit_log);

both_backends_with!(known_port_and_receiver; an_owner_manages_a_boards_webhooks);

crate::harness::smtp::both_backends_with_mail!(mailed_links_verify_reset_and_invite);

fn on_a_known_port(settings: &mut Settings) {
    crate::web::on_a_known_port(settings);
}

fn known_port_and_receiver(settings: &mut Settings) {
    crate::web::on_a_known_port(settings);
    with_receiver(settings);
}

fn unique(name: &str) -> String {
    format!("{name}-{}@example.com", uuid::Uuid::now_v7().simple())
}

/// The path and query of the mail's link to `page` (`/verify-email`, `/reset-password`,
/// `/invitations/`), as the page would be opened from it.
fn link_in(mail: &crate::harness::smtp::Received, page: &str) -> String {
    let link = mail
        .text
        .split_whitespace()
        .find(|word| word.starts_with("http") && word.contains(page))
        .unwrap_or_else(|| panic!("no {page} link in {:?}", mail.text));
    let url = url::Url::parse(link).unwrap();
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

/// The link to `page` in the latest message to `to` that has one (waits up to 15 s).
async fn latest_link(mail: &SmtpSink, to: &str, page: &str) -> String {
    let started = std::time::Instant::now();
    loop {
        let found = mail
            .messages()
            .into_iter()
            .rfind(|m| m.rcpt_to.iter().any(|r| r == to) && m.text.contains(page));
        if let Some(message) = found {
            return link_in(&message, page);
        }
        assert!(started.elapsed().as_secs() < 15, "no mail to {to} links to {page}");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

async fn the_mailed_links_serve_the_page(server: &TestServer) {
    let page = server.get("/").await;
    assert_eq!(page.status, 200);
    for path in [
        "/verify-email?token=abc",
        "/reset-password",
        "/reset-password?token=abc",
        "/invitations",
        "/invitations/0190",
        "/account",
        "/orgs/0190/members",
        "/orgs/0190/api-keys",
        "/orgs/0190/audit-log",
        "/orgs/0190/plan",
        "/orgs/0190/boards/0191/webhooks",
    ] {
        let reply = server.get(path).await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.header("content-type"), Some("text/html; charset=utf-8"), "{path}");
        assert_eq!(reply.body, page.body, "{path}");
    }
    // The API's own routes of the same names stay the API's.
    let invitations = server.get("/api/v1/invitations").await;
    invitations.expect_error(401, "unauthenticated");
}

async fn the_config_says_what_is_on(server: &TestServer) {
    // Public: no credentials needed, and none change the answer.
    let config: ClientConfig = server.get("/api/v1/config").await.expect_as(200);
    assert_eq!(config, ClientConfig { google_sign_in: false, billing: false });
    let alice = server.register("alice").await;
    let signed_in: ClientConfig =
        server.get_as("/api/v1/config", &alice.access_token).await.expect_as(200);
    assert_eq!(signed_in, config);
}

/// Alice, in the browser, runs her organization's members, an API key and the audit log
/// (tests/browser/admin.py); the test uses the key the page showed, and makes enough audit rows
/// to page the log.
async fn an_admin_manages_members_keys_and_reads_the_audit_log(server: &TestServer) {
    let (email, password) = (unique("alice"), "pw-alice-long-enough");
    let bob = server.register("bob").await;
    server.mark_email_verified_in_db(&bob).await;
    let dana = unique("dana");
    let base = server.url("");
    let mut browser =
        BrowserScript::start("admin", &[&base, &email, password, "Alice", &bob.email, &dana]);
    let opened = browser.next().await;
    let org = opened["path"].as_str().unwrap().trim_start_matches("/orgs/").to_owned();

    let key = browser.next().await["key"].as_str().unwrap().to_owned();
    let listed: orgs::OrganizationList = server.get_as("/api/v1/orgs", &key).await.expect_as(200);
    let names: Vec<&str> = listed.organizations.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["Acme"], "the key the page showed works");
    browser.send(&json!({})).await;

    assert_eq!(browser.next().await["revoked"], true);
    server.get_as("/api/v1/orgs", &key).await.expect_error(401, "unauthenticated");
    // Members as the page left them: Bob an admin, Dana never a member, her invitation gone.
    let alice = server.sign_in(&email, password).await;
    let members: orgs::OrgMemberList = server
        .get_as(&format!("/api/v1/orgs/{org}/members"), &alice.access_token)
        .await
        .expect_as(200);
    let roles: Vec<(&str, orgs::OrgRole)> =
        members.members.iter().map(|m| (m.name.as_str(), m.role)).collect();
    assert_eq!(roles.len(), 2, "{roles:?}");
    assert!(roles.contains(&("bob", orgs::OrgRole::Admin)), "{roles:?}");
    assert!(roles.contains(&("Alice", orgs::OrgRole::Admin)), "{roles:?}");
    // Thirty more role changes: more than a page of the log's 25.
    for n in 0..30 {
        let role = if n % 2 == 0 { "member" } else { "admin" };
        server.set_org_role(&alice, &org, &bob, role).await.expect(200);
    }
    server.flush_audit().await;
    browser.send(&json!({})).await;
    browser.finish().await;
}

/// Alice creates a webhook on her board in the browser (tests/browser/webhooks.py); the changes
/// the test makes reach the receiver, and the page lists, redelivers and rotates.
async fn an_owner_manages_a_boards_webhooks(server: &TestServer) {
    let (email, password) = (unique("alice"), "pw-alice-long-enough");
    let receiver = Receiver::of(server);
    let base = server.url("");
    let receiver_url = receiver.url("");
    let mut browser =
        BrowserScript::start("webhooks", &[&base, &email, password, "Alice", &receiver_url]);
    let created = browser.next().await;
    let path = created["path"].as_str().unwrap();
    let board = path.rsplit('/').next().unwrap().to_owned();
    let alice = server.sign_in(&email, password).await;
    let hooks: WebhookList = server
        .get_as(&format!("/api/v1/boards/{board}/webhooks"), &alice.access_token)
        .await
        .expect_as(200);
    assert_eq!(hooks.webhooks.len(), 1);
    assert_eq!(hooks.webhooks[0].url, receiver.url("/hook"));
    assert_eq!(hooks.webhooks[0].events, ["*"]);

    let todo = server.create_group(&alice, &board, &group("To do")).await;
    server.create_item(&alice, &board, &item(&todo.id.to_string(), "Ship it")).await;
    wait_for_hits(&receiver, 2).await;
    browser.send(&json!({})).await;

    assert_eq!(browser.next().await["redelivered"], true);
    let hits = wait_for_hits(&receiver, 3).await;
    let kinds: Vec<&str> = hits.iter().map(|hit| hit.event.kind().as_str()).collect();
    assert_eq!(kinds, ["group.created", "item.created", "item.created"], "redelivered once");
    browser.send(&json!({})).await;

    let rotated = browser.next().await;
    assert_ne!(rotated["rotated"], created["secret"]);
    let hooks: WebhookList = server
        .get_as(&format!("/api/v1/boards/{board}/webhooks"), &alice.access_token)
        .await
        .expect_as(200);
    assert!(
        hooks.webhooks[0].previous_secret_expires_at.is_some(),
        "the old secret is winding down"
    );
    browser.send(&json!({})).await;
    browser.finish().await;

    let hooks: WebhookList = server
        .get_as(&format!("/api/v1/boards/{board}/webhooks"), &alice.access_token)
        .await
        .expect_as(200);
    assert!(hooks.webhooks.is_empty(), "deleted through the page");
}

/// The bodies the receiver's `/hook` got, once there are `count` (waits up to 15 s).
async fn wait_for_hits(receiver: &Receiver, count: usize) -> Vec<WebhookPayload> {
    let started = std::time::Instant::now();
    loop {
        let hits = receiver.hits("/hook");
        if hits.len() >= count {
            return hits.iter().map(|hit| hit.payload()).collect();
        }
        assert!(started.elapsed().as_secs() < 15, "{count} deliveries did not arrive");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// Carol uses the links the server mails her, in the browser (tests/browser/account.py):
/// verification (after asking for a new link), password reset, and an invitation.
async fn mailed_links_verify_reset_and_invite(server: &TestServer, mail: &SmtpSink) {
    let carol = server.register("carol").await;
    mail.wait_for(&carol.email, 1).await; // the registration's verification link
    let new_password = "pw-carol-new-and-long";
    let base = server.url("");
    let mut browser =
        BrowserScript::start("account", &[&base, &carol.email, &carol.password, new_password]);

    assert_eq!(browser.next().await["resent"], true);
    let resent = mail.wait_for(&carol.email, 2).await;
    let verify = link_in(&resent[1], "/verify-email");
    browser.send(&json!({ "path": verify })).await;

    assert_eq!(browser.next().await["requested"], true);
    let reset = latest_link(mail, &carol.email, "/reset-password").await;
    browser.send(&json!({ "path": reset })).await;

    assert_eq!(browser.next().await["signed_in"], true);
    // The old password is gone; the new one works.
    server.login(&carol).await.expect_error(401, "invalid_credentials");
    let me: identity::Me = server
        .get_as("/api/v1/me", &server.sign_in(&carol.email, new_password).await.access_token)
        .await
        .expect_as(200);
    assert!(me.user.email_verified, "the links proved the address");

    let admin = server.register("admin").await;
    let org = server.create_organization(&admin, "Acme").await;
    let invited = server
        .post(
            &format!("/api/v1/orgs/{}/invitations", org.id),
            Some(&admin.access_token),
            &orgs::CreateInvitation { email: carol.email.clone(), role: "member".into() },
        )
        .await;
    invited.expect(201);
    let invitation = latest_link(mail, &carol.email, "/invitations/").await;
    browser.send(&json!({ "path": invitation, "org": "Acme" })).await;

    let joined = browser.next().await;
    assert_eq!(joined["joined"], format!("/orgs/{}", org.id));
    browser.finish().await;
    let members: orgs::OrgMemberList = server
        .get_as(&format!("/api/v1/orgs/{}/members", org.id), &admin.access_token)
        .await
        .expect_as(200);
    assert!(members.members.iter().any(|m| m.email == carol.email), "Carol joined");
}
