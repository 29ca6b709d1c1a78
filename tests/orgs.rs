//! Organizations and membership: roles, the last-admin rule, tenancy (another organization is
//! 404, never 403), and the audited superadmin bypass.

use std::process::Command;

use boardroom_protocol::audit::AuditLog;
use boardroom_protocol::identity::SessionAnswer;
use boardroom_protocol::orgs::{
    AddOrgMember, ChangeOrgMember, OrgMember, OrgMemberList, OrgRole, Organization,
    OrganizationList,
};
use reqwest::Method;

use crate::harness::{both_backends, TestServer, TestUser};

both_backends!(
    creator_is_admin_and_members_are_managed_by_admins,
    last_admin_cannot_leave_or_be_demoted,
    another_org_is_not_found,
    superadmin_bypass_is_explicit_and_audited,
);

async fn creator_is_admin_and_members_are_managed_by_admins(server: &TestServer) {
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    // The harness checks the creator is its admin.
    let org = server.create_organization(&alice, "Acme").await.id.to_string();

    server.add_member(&alice, &org, &bob, "member").await;
    let members = server.get_as(&format!("/api/v1/orgs/{org}/members"), &bob.access_token).await;
    let members = members.expect_as::<OrgMemberList>(200).members;
    assert_eq!(members.len(), 2);

    // A member reads but does not manage membership.
    let seen: Organization =
        server.get_as(&format!("/api/v1/orgs/{org}"), &bob.access_token).await.expect_as(200);
    assert_eq!(seen.role, OrgRole::Member);
    add_member(server, &bob, &org, &carol.email, "member").await.expect_error(403, "forbidden");
    server.set_org_role(&bob, &org, &alice, "member").await.expect_error(403, "forbidden");

    // Bad input changes nothing.
    add_member(server, &alice, &org, &carol.email, "owner")
        .await
        .expect_error(422, "validation_failed");
    // An address without a verified account is invited, not added (tests/accounts.rs).
    let invited = add_member(server, &alice, &org, "ghost@example.com", "member").await;
    assert_eq!(invited.status, 202, "{}", invited.body);
    add_member(server, &alice, &org, &bob.email, "member").await.expect_error(409, "conflict");

    // Promote bob; he can now add carol; then alice removes carol.
    let promoted = server.set_org_role(&alice, &org, &bob, "admin").await;
    assert_eq!(promoted.expect_as::<OrgMember>(200).role, OrgRole::Admin);
    server.add_member(&bob, &org, &carol, "member").await;
    server
        .send_as(
            Method::DELETE,
            &format!("/api/v1/orgs/{org}/members/{}", carol.id),
            &alice.access_token,
            None,
        )
        .await
        .expect(204);
    server
        .get_as(&format!("/api/v1/orgs/{org}"), &carol.access_token)
        .await
        .expect_error(404, "not_found");

    let orgs = server.get_as("/api/v1/orgs", &bob.access_token).await;
    let orgs = orgs.expect_as::<OrganizationList>(200).organizations;
    assert_eq!(orgs.len(), 1);
    assert_eq!(orgs[0].role, OrgRole::Admin);
}

/// `POST /orgs/{org}/members` as `admin`, adding `email` as `role`.
async fn add_member(
    server: &TestServer,
    admin: &TestUser,
    org: &str,
    email: &str,
    role: &str,
) -> crate::harness::Reply {
    let body = AddOrgMember { email: email.to_owned(), role: role.to_owned() };
    server.post(&format!("/api/v1/orgs/{org}/members"), Some(&admin.access_token), &body).await
}

async fn last_admin_cannot_leave_or_be_demoted(server: &TestServer) {
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let org = server.create_org(&alice, "Acme").await;
    server.add_member(&alice, &org, &bob, "member").await;
    let me = format!("/api/v1/orgs/{org}/members/{}", alice.id);
    server
        .send_body(
            Method::PATCH,
            &me,
            &alice.access_token,
            &ChangeOrgMember { role: "member".into() },
        )
        .await
        .expect_error(409, "conflict");
    server
        .send_as(Method::DELETE, &me, &alice.access_token, None)
        .await
        .expect_error(409, "conflict");
    // With a second admin, the first may step down.
    server.set_org_role(&alice, &org, &bob, "admin").await.expect(200);
    server.send_as(Method::DELETE, &me, &alice.access_token, None).await.expect(204);
    server
        .get_as(&format!("/api/v1/orgs/{org}"), &alice.access_token)
        .await
        .expect_error(404, "not_found");
}

async fn another_org_is_not_found(server: &TestServer) {
    let alice = server.register("alice").await;
    let mallory = server.register("mallory").await;
    let org_a = server.create_org(&alice, "A").await;
    let org_b = server.create_org(&mallory, "B").await;
    let (_, key_b) = server.create_key(&mallory, &org_b, &["boards:read"]).await;
    let missing = uuid::Uuid::now_v7().to_string();

    for token in [mallory.access_token.as_str(), key_b.as_str()] {
        for path in [
            format!("/api/v1/orgs/{org_a}"),
            format!("/api/v1/orgs/{org_a}/members"),
            format!("/api/v1/orgs/{missing}"),
        ] {
            server.get_as(&path, token).await.expect_error(404, "not_found");
        }
    }
    for path in
        [format!("/api/v1/orgs/{org_a}/api-keys"), format!("/api/v1/orgs/{org_a}/audit-log")]
    {
        server.get_as(&path, &mallory.access_token).await.expect_error(404, "not_found");
    }
    add_member(server, &mallory, &org_a, &mallory.email, "admin")
        .await
        .expect_error(404, "not_found");
    server.set_org_role(&mallory, &org_a, &alice, "member").await.expect_error(404, "not_found");
    server
        .send_as(
            Method::DELETE,
            &format!("/api/v1/orgs/{org_a}/members/{}", alice.id),
            &mallory.access_token,
            None,
        )
        .await
        .expect_error(404, "not_found");
    server
        .get_as("/api/v1/orgs/not-a-uuid", &mallory.access_token)
        .await
        .expect_error(404, "not_found");
    // Nothing changed in org A.
    let members =
        server.get_as(&format!("/api/v1/orgs/{org_a}/members"), &alice.access_token).await;
    assert_eq!(members.expect_as::<OrgMemberList>(200).members.len(), 1);
}

async fn superadmin_bypass_is_explicit_and_audited(server: &TestServer) {
    let alice = server.register("alice").await;
    let root = server.register("root").await;
    let org = server.create_org(&alice, "Acme").await;
    server
        .get_as(&format!("/api/v1/orgs/{org}"), &root.access_token)
        .await
        .expect_error(404, "not_found");

    let grant = Command::new(env!("CARGO_BIN_EXE_boardroom"))
        .args(["admin", "grant-superadmin", &root.email])
        .env("DATABASE_URL", &server.database.url)
        .env("BOARDROOM_DATA_DIR", server.database.dir.path())
        .env("BOARDROOM_LOG", "error")
        .output()
        .unwrap();
    assert!(grant.status.success(), "{}", String::from_utf8_lossy(&grant.stderr));
    let missing = Command::new(env!("CARGO_BIN_EXE_boardroom"))
        .args(["admin", "grant-superadmin", "nobody@example.com"])
        .env("DATABASE_URL", &server.database.url)
        .env("BOARDROOM_DATA_DIR", server.database.dir.path())
        .output()
        .unwrap();
    assert!(!missing.status.success());

    // The flag is read at sign-in: a fresh session carries it.
    let login = server.login(&root).await;
    let token = login.expect_as::<SessionAnswer>(200).access_token;
    let reply = server.get_as(&format!("/api/v1/orgs/{org}"), &token).await;
    assert_eq!(reply.expect_as::<Organization>(200).role, OrgRole::Admin);
    server.get_as(&format!("/api/v1/orgs/{org}/members"), &token).await.expect(200);

    server.flush_audit().await;
    let log = server
        .get_as(
            &format!("/api/v1/orgs/{org}/audit-log?action=superadmin.bypass"),
            &alice.access_token,
        )
        .await;
    let entries = log.expect_as::<AuditLog>(200).entries;
    assert_eq!(entries.len(), 2, "{entries:?}");
    let root_id = crate::harness::id(&root.id);
    assert!(entries.iter().all(|e| e.bypass && e.actor_id == Some(root_id)));
    assert_eq!(entries[0].metadata["path"], format!("/api/v1/orgs/{org}/members"));

    // A socket re-confirming access it already has (every few seconds) is not a new bypass:
    // it answers the same but writes no further row.
    let auth = server.state().auth();
    let root_caller = match auth.authenticate(&token, &meta()).await.unwrap() {
        principal @ boardroom::auth::Principal::User { .. } => {
            boardroom::auth::Caller { principal, meta: meta() }
        }
        other => panic!("not a session: {other:?}"),
    };
    let org_id: uuid::Uuid = org.parse().unwrap();
    for _ in 0..3 {
        let access = auth
            .org_access_recheck(&root_caller, org_id, boardroom_actors::roles::OrgRole::Member)
            .await
            .unwrap();
        assert!(access.bypass);
    }
    server.flush_audit().await;
    let log = server
        .get_as(
            &format!("/api/v1/orgs/{org}/audit-log?action=superadmin.bypass"),
            &alice.access_token,
        )
        .await;
    assert_eq!(log.expect_as::<AuditLog>(200).entries.len(), 2);

    // A missing organization is still 404, bypass or not.
    let missing = uuid::Uuid::now_v7();
    server.get_as(&format!("/api/v1/orgs/{missing}"), &token).await.expect_error(404, "not_found");
}

fn meta() -> boardroom::auth::RequestMeta {
    boardroom::auth::RequestMeta {
        ip: std::net::IpAddr::from([127, 0, 0, 1]),
        user_agent: None,
        method: "GET".into(),
        path: "/api/v1/ws".into(),
    }
}
