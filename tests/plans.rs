//! Plans and their limits (issue #14): past each limit (boards, members, API keys, webhooks) a
//! creation answers `402 plan_limit` naming the limit and creates nothing; a downgrade keeps
//! everything and refuses new creations, an upgrade lifts the limit; concurrent creations at
//! the last slot let exactly one through; `GET /orgs/{org}` shows the plan, the billing status
//! and each limit with its current use. Limits are set small through `BOARDROOM_PLAN_FREE`.

use boardroom::config::Settings;
use boardroom::ssrf::Allowlist;
use boardroom_actors::billing::{BillingChange, BillingEvent, BillingStatus, Plan};
use boardroom_protocol::api_keys::CreateApiKey;
use boardroom_protocol::boards::{BoardList, CreateBoard};
use boardroom_protocol::orgs::{AddOrgMember, LimitUse, Organization};
use boardroom_protocol::webhooks::CreateWebhook;

use crate::harness::{both_backends_with, Reply, TestServer, TestUser};

/// Where webhooks of these tests point: allowed, never delivered to (no events are made).
const HOOK_URL: &str = "http://127.0.0.1:9/hook";

fn small_free_plan(settings: &mut Settings) {
    settings.plan_free = "boards=2,members=2,api_keys=1,webhooks=1".parse().unwrap();
    settings.webhook_allow = Allowlist::parse("127.0.0.1:9").unwrap();
}

fn one_board_free_plan(settings: &mut Settings) {
    settings.plan_free = "boards=1".parse().unwrap();
}

fn three_boards_one_key(settings: &mut Settings) {
    settings.plan_free = "boards=3,api_keys=1".parse().unwrap();
}

fn board_body(name: &str) -> CreateBoard {
    CreateBoard { name: name.to_owned(), description: String::new() }
}

async fn try_board(server: &TestServer, user: &TestUser, org: &str, name: &str) -> Reply {
    server
        .post(&format!("/api/v1/orgs/{org}/boards"), Some(&user.access_token), &board_body(name))
        .await
}

async fn try_key(server: &TestServer, user: &TestUser, org: &str) -> Reply {
    let body = CreateApiKey {
        name: "k".into(),
        scopes: vec!["boards:read".into()],
        rate_limit_per_minute: None,
        expires_at: None,
    };
    server.post(&format!("/api/v1/orgs/{org}/api-keys"), Some(&user.access_token), &body).await
}

async fn try_webhook(server: &TestServer, user: &TestUser, board: &str) -> Reply {
    let body = CreateWebhook { url: HOOK_URL.into(), events: vec!["*".into()] };
    server.post(&format!("/api/v1/boards/{board}/webhooks"), Some(&user.access_token), &body).await
}

fn refused(reply: &Reply, limit: &str) {
    reply.expect_error(402, "plan_limit");
    let message = reply.expect(402)["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains(&format!("plan limit reached: {limit} ")), "{message}");
}

async fn org_view(server: &TestServer, user: &TestUser, org: &str) -> Organization {
    server.get_as(&format!("/api/v1/orgs/{org}"), &user.access_token).await.expect_as(200)
}

/// Moves `org` to `plan` (a subscription event) or back to free (`None`: its deletion) through
/// its actor, as a verified Stripe delivery would.
async fn bill(server: &TestServer, org: &str, created: i64, plan: Option<Plan>) {
    let change = match plan {
        Some(plan) => BillingChange::Subscription {
            id: "sub_1".into(),
            customer: Some("cus_1".into()),
            plan: Some(plan),
            status: BillingStatus::Active,
        },
        None => BillingChange::SubscriptionDeleted { id: "sub_1".into() },
    };
    let event = BillingEvent {
        event_id: format!("evt_{created}"),
        event_type: "customer.subscription.updated".into(),
        created,
        change,
    };
    let org = org.parse().unwrap();
    server.state().auth().orgs().apply_billing(org, event).await.unwrap();
}

fn used(limit: Option<u64>, used: u64) -> LimitUse {
    LimitUse { limit, used }
}

both_backends_with!(small_free_plan; each_limit_answers_402_and_creates_nothing);
async fn each_limit_answers_402_and_creates_nothing(server: &TestServer) {
    let admin = server.register("admin").await;
    let org = server.create_org(&admin, "Small").await;

    let view = org_view(server, &admin, &org).await;
    assert_eq!((view.plan.as_str(), view.billing_status), ("free", Some(BillingStatus::None)));
    let limits = view.limits.unwrap();
    assert_eq!(limits.boards, used(Some(2), 0));
    assert_eq!(limits.members, used(Some(2), 1));
    assert_eq!(limits.storage_bytes, used(Some(100 << 20), 0));

    let first = server.create_board(&admin, &org, "One").await.board.id.to_string();
    let second = server.create_board(&admin, &org, "Two").await.board.id.to_string();
    refused(&try_board(server, &admin, &org, "Three").await, "boards");

    let member = server.register("member").await;
    server.add_member(&admin, &org, &member, "member").await;
    let third = server.register("third").await;
    // Only a verified account is added at once (and counts against the plan); others are
    // invited.
    server.mark_email_verified_in_db(&third).await;
    let body = AddOrgMember { email: third.email.clone(), role: "member".into() };
    let reply =
        server.post(&format!("/api/v1/orgs/{org}/members"), Some(&admin.access_token), &body).await;
    refused(&reply, "members");

    try_key(server, &admin, &org).await.expect(201);
    refused(&try_key(server, &admin, &org).await, "api_keys");

    try_webhook(server, &admin, &first).await.expect(201);
    refused(&try_webhook(server, &admin, &second).await, "webhooks");

    // Every refusal created nothing.
    let limits = org_view(server, &admin, &org).await.limits.unwrap();
    assert_eq!(limits.boards, used(Some(2), 2));
    assert_eq!(limits.members, used(Some(2), 2));
    assert_eq!(limits.api_keys, used(Some(1), 1));
    assert_eq!(limits.webhooks, used(Some(1), 1));
    let boards: BoardList = server
        .get_as(&format!("/api/v1/orgs/{org}/boards"), &admin.access_token)
        .await
        .expect_as(200);
    assert_eq!(boards.boards.len(), 2);
    let outsider = server.get_as(&format!("/api/v1/orgs/{org}"), &third.access_token).await;
    outsider.expect_error(404, "not_found");

    // Another organization has its own slots.
    let other = server.create_org(&third, "Other").await;
    server.create_board(&third, &other, "Theirs").await;
}

both_backends_with!(one_board_free_plan; a_downgrade_keeps_everything_and_an_upgrade_lifts_the_limit);
async fn a_downgrade_keeps_everything_and_an_upgrade_lifts_the_limit(server: &TestServer) {
    let admin = server.register("admin").await;
    let org = server.create_org(&admin, "Growing").await;
    server.create_board(&admin, &org, "First").await;
    refused(&try_board(server, &admin, &org, "Second").await, "boards");

    bill(server, &org, 100, Some(Plan::Pro)).await;
    for name in ["Second", "Third"] {
        server.create_board(&admin, &org, name).await;
    }
    let view = org_view(server, &admin, &org).await;
    assert_eq!((view.plan.as_str(), view.billing_status), ("pro", Some(BillingStatus::Active)));
    assert_eq!(view.limits.unwrap().boards, used(Some(100), 3));

    // Back to free: over the limit, nothing deleted, nothing more created.
    bill(server, &org, 200, None).await;
    let view = org_view(server, &admin, &org).await;
    assert_eq!((view.plan.as_str(), view.billing_status), ("free", Some(BillingStatus::Canceled)));
    assert_eq!(view.limits.unwrap().boards, used(Some(1), 3));
    let boards: BoardList = server
        .get_as(&format!("/api/v1/orgs/{org}/boards"), &admin.access_token)
        .await
        .expect_as(200);
    assert_eq!(boards.boards.len(), 3);
    refused(&try_board(server, &admin, &org, "Fourth").await, "boards");
    // The boards kept still take writes.
    let kept = boards.boards[0].board.id.to_string();
    server.create_column(&admin, &kept, &crate::harness::column("Status", "text")).await;

    // Enterprise: unlimited.
    bill(server, &org, 300, Some(Plan::Enterprise)).await;
    server.create_board(&admin, &org, "Fourth").await;
    let limits = org_view(server, &admin, &org).await.limits.unwrap();
    assert_eq!(limits.boards, used(None, 4));
}

both_backends_with!(three_boards_one_key; concurrent_creations_at_the_last_slot_let_one_through);
async fn concurrent_creations_at_the_last_slot_let_one_through(server: &TestServer) {
    let admin = server.register("admin").await;
    let org = server.create_org(&admin, "Racing").await;
    server.create_board(&admin, &org, "One").await;
    server.create_board(&admin, &org, "Two").await;

    let names: Vec<String> = (0..6).map(|n| format!("Racer {n}")).collect();
    let boards =
        futures::future::join_all(names.iter().map(|name| try_board(server, &admin, &org, name)))
            .await;
    let keys = futures::future::join_all((0..6).map(|_| try_key(server, &admin, &org))).await;

    for (what, replies) in [("boards", &boards), ("api_keys", &keys)] {
        let passed = replies.iter().filter(|r| r.status == 201).count();
        assert_eq!(passed, 1, "{what}: {:?}", replies.iter().map(|r| r.status).collect::<Vec<_>>());
        for reply in replies.iter().filter(|r| r.status != 201) {
            refused(reply, what);
        }
    }
    let limits = org_view(server, &admin, &org).await.limits.unwrap();
    assert_eq!(limits.boards, used(Some(3), 3));
    assert_eq!(limits.api_keys, used(Some(1), 1));
}
