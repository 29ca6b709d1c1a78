//! Billing with Stripe (issue #14): webhook deliveries signed by the `stripe` PyPI package's
//! own helper (`WebhookSignature.generate_signature_header`), so the server's check is held to
//! Stripe's; dedupe of sequential and concurrent duplicates; the plan flow free → pro →
//! past_due → cancelled, each step audited once; stale events; Checkout and the Billing Portal
//! against a local fake of Stripe's API that records what it was sent.

use std::io::Write;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use boardroom::config::{Settings, StripePrice};
use boardroom_actors::billing::{BillingStatus, Plan};
use boardroom_protocol::audit::AuditLog;
use boardroom_protocol::billing::{
    BillingRedirect, CheckoutRequest, StripeEventOutcome, StripeWebhookAck,
};
use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{both_backends_with, python, run_with, Backend, TestServer, TestUser};

const SECRET: &str = "whsec_boardroom_test_0123456789abcdef";
const WEBHOOK: &str = "/api/v1/billing/stripe/webhook";

fn billing_on(settings: &mut Settings) {
    settings.stripe_webhook_secret = Some(SECRET.into());
    settings.stripe_prices = vec![
        StripePrice { price: "price_pro".into(), plan: Plan::Pro },
        StripePrice { price: "price_ent".into(), plan: Plan::Enterprise },
    ];
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// `Stripe-Signature` headers for each `(payload, timestamp)`, made by the `stripe` package.
fn stripe_sign(deliveries: &[(&str, i64)]) -> Vec<String> {
    let script = "import json, sys\nfrom stripe import WebhookSignature\n\
        todo = json.load(sys.stdin)\n\
        print(json.dumps([WebhookSignature.generate_signature_header(p, s, timestamp=t) \
        for p, s, t in todo]))\n";
    let todo: Vec<(&str, &str, i64)> = deliveries.iter().map(|(p, t)| (*p, SECRET, *t)).collect();
    let mut child =
        python().args(["-c", script]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(json!(todo).to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A Stripe event as Stripe sends it.
fn event(id: &str, kind: &str, created: i64, object: Value) -> String {
    json!({"id": id, "object": "event", "api_version": "2024-06-20", "created": created,
           "type": kind, "livemode": false, "pending_webhooks": 1,
           "data": {"object": object}})
    .to_string()
}

fn subscription(org: &str, price: &str, status: &str) -> Value {
    json!({"id": "sub_1", "object": "subscription", "customer": "cus_1", "status": status,
           "metadata": {"organization_id": org},
           "items": {"object": "list", "data": [{"id": "si_1", "price": {"id": price}}]}})
}

async fn deliver(
    server: &TestServer,
    payload: &str,
    signature: Option<&str>,
) -> crate::harness::Reply {
    let mut call = server.call(Method::POST, WEBHOOK).raw("application/json", payload.to_owned());
    if let Some(signature) = signature {
        call = call.header("stripe-signature", signature);
    }
    call.send().await
}

/// Delivers `payload` signed now by the `stripe` package; answers what became of it.
async fn deliver_signed(server: &TestServer, payload: &str) -> StripeEventOutcome {
    let signature = &stripe_sign(&[(payload, now())])[0];
    let ack: StripeWebhookAck = deliver(server, payload, Some(signature)).await.expect_as(200);
    assert!(ack.received);
    ack.outcome
}

async fn billing_of(server: &TestServer, org: &str) -> (Plan, BillingStatus) {
    let state =
        server.state().store().tenant(org.parse().unwrap()).billing().await.unwrap().unwrap();
    (state.plan, state.status)
}

/// The organization's plan as `GET /orgs/{org}` shows it.
async fn shown_plan(server: &TestServer, admin: &TestUser, org: &str) -> String {
    let body = server.get_as(&format!("/api/v1/orgs/{org}"), &admin.access_token).await;
    body.expect(200)["plan"].as_str().unwrap().to_owned()
}

async fn audit_rows(server: &TestServer, admin: &TestUser, org: &str, action: &str) -> Vec<Value> {
    server.flush_audit().await;
    let log: AuditLog = server
        .get_as(&format!("/api/v1/orgs/{org}/audit-log?action={action}"), &admin.access_token)
        .await
        .expect_as(200);
    log.entries.into_iter().map(|e| e.metadata).collect()
}

async fn signatures_are_checked_as_stripe_signs_them(server: &TestServer) {
    let admin = server.register("billing-admin").await;
    let org = server.create_org(&admin, "Acme").await;
    let payload = event(
        "evt_sig_1",
        "customer.subscription.created",
        now(),
        subscription(&org, "price_pro", "active"),
    );
    let t = now();
    // Well past the 300 s tolerance either way, so a second ticking during the test cannot
    // matter (the unit tests pin the boundary itself).
    let signed = stripe_sign(&[(&payload, t), (&payload, t - 400), (&payload, t + 400)]);
    let (good, old, future) = (&signed[0], &signed[1], &signed[2]);

    // Refusals first: each answers 400 invalid_signature and changes nothing.
    let good_v1 = good.split_once(",v1=").unwrap().1;
    let mut flipped = good_v1.to_owned().into_bytes();
    flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
    let flipped = format!("t={t},v1={}", String::from_utf8(flipped).unwrap());
    let altered = payload.replace("price_pro", "price_ent");
    for (body, signature) in [
        (payload.as_str(), Some(flipped.as_str())),
        (payload.as_str(), Some(old.as_str())),
        (payload.as_str(), Some(future.as_str())),
        (altered.as_str(), Some(good.as_str())),
        (payload.as_str(), None),
        (payload.as_str(), Some("t=abc,v1=00")),
    ] {
        deliver(server, body, signature).await.expect_error(400, "invalid_signature");
    }
    assert_eq!(billing_of(server, &org).await, (Plan::Free, BillingStatus::None));
    assert_eq!(shown_plan(server, &admin, &org).await, "free");

    // Several v1 values, one of them right (as during a secret roll), pass.
    let several = format!("t={t},v1={},v1={good_v1}", "ab".repeat(32));
    let ack: StripeWebhookAck = deliver(server, &payload, Some(&several)).await.expect_as(200);
    assert_eq!(ack.outcome, StripeEventOutcome::Applied);
    assert_eq!(billing_of(server, &org).await, (Plan::Pro, BillingStatus::Active));
    assert_eq!(shown_plan(server, &admin, &org).await, "pro");

    // A signed event of a type Boardroom does not act on is received and ignored.
    let other = event("evt_sig_2", "charge.succeeded", now(), json!({"id": "ch_1"}));
    assert_eq!(deliver_signed(server, &other).await, StripeEventOutcome::Ignored);
}

async fn duplicates_apply_once_sequentially_and_concurrently(server: &TestServer) {
    let admin = server.register("billing-admin").await;
    let org = server.create_org(&admin, "Acme").await;
    let first = event(
        "evt_dup_1",
        "customer.subscription.created",
        now(),
        subscription(&org, "price_pro", "active"),
    );
    assert_eq!(deliver_signed(server, &first).await, StripeEventOutcome::Applied);
    assert_eq!(deliver_signed(server, &first).await, StripeEventOutcome::Duplicate);

    let second = event(
        "evt_dup_2",
        "customer.subscription.updated",
        now(),
        subscription(&org, "price_ent", "active"),
    );
    let signature = stripe_sign(&[(&second, now())]).remove(0);
    let copies = (0..8).map(|_| deliver(server, &second, Some(&signature)));
    let outcomes: Vec<StripeEventOutcome> = futures::future::join_all(copies)
        .await
        .iter()
        .map(|reply| reply.expect_as::<StripeWebhookAck>(200).outcome)
        .collect();
    let applied = outcomes.iter().filter(|o| **o == StripeEventOutcome::Applied).count();
    let duplicates = outcomes.iter().filter(|o| **o == StripeEventOutcome::Duplicate).count();
    assert_eq!((applied, duplicates), (1, 7), "{outcomes:?}");
    assert_eq!(billing_of(server, &org).await, (Plan::Enterprise, BillingStatus::Active));
    let changes = audit_rows(server, &admin, &org, "plan.changed").await;
    assert_eq!(changes.len(), 2, "{changes:?}");
}

async fn the_plan_follows_the_subscription_and_each_step_is_audited_once(server: &TestServer) {
    let admin = server.register("billing-admin").await;
    let org = server.create_org(&admin, "Acme").await;
    let start = now() - 100;
    // Checkout completes: the customer is linked; the plan waits for the subscription.
    let checkout = event(
        "evt_flow_1",
        "checkout.session.completed",
        start,
        json!({
        "id": "cs_1", "object": "checkout.session", "client_reference_id": org,
        "customer": "cus_flow", "subscription": "sub_flow", "mode": "subscription"}),
    );
    assert_eq!(deliver_signed(server, &checkout).await, StripeEventOutcome::Applied);
    assert_eq!(billing_of(server, &org).await, (Plan::Free, BillingStatus::None));

    // The subscription names only the customer: found by the one stored at checkout.
    let mut pro = subscription(&org, "price_pro", "active");
    pro["id"] = json!("sub_flow");
    pro["customer"] = json!("cus_flow");
    pro["metadata"] = json!({});
    let created = event("evt_flow_2", "customer.subscription.created", start + 10, pro.clone());
    assert_eq!(deliver_signed(server, &created).await, StripeEventOutcome::Applied);
    assert_eq!(billing_of(server, &org).await, (Plan::Pro, BillingStatus::Active));

    // An update older than what was applied is stale: recorded, nothing changed.
    let mut older = pro.clone();
    older["items"]["data"][0]["price"]["id"] = json!("price_ent");
    let stale = event("evt_flow_3", "customer.subscription.updated", start + 5, older);
    assert_eq!(deliver_signed(server, &stale).await, StripeEventOutcome::Stale);
    assert_eq!(billing_of(server, &org).await, (Plan::Pro, BillingStatus::Active));

    let failed = event(
        "evt_flow_4",
        "invoice.payment_failed",
        start + 20,
        json!({
        "id": "in_1", "object": "invoice", "customer": "cus_flow", "subscription": "sub_flow"}),
    );
    assert_eq!(deliver_signed(server, &failed).await, StripeEventOutcome::Applied);
    assert_eq!(billing_of(server, &org).await, (Plan::Pro, BillingStatus::PastDue));

    let deleted = event("evt_flow_5", "customer.subscription.deleted", start + 30, pro);
    assert_eq!(deliver_signed(server, &deleted).await, StripeEventOutcome::Applied);
    assert_eq!(deliver_signed(server, &deleted).await, StripeEventOutcome::Duplicate);
    assert_eq!(billing_of(server, &org).await, (Plan::Free, BillingStatus::Canceled));
    assert_eq!(shown_plan(server, &admin, &org).await, "free");

    let changes = audit_rows(server, &admin, &org, "plan.changed").await;
    let steps: Vec<(&str, &str)> =
        changes.iter().map(|m| (m["from"].as_str().unwrap(), m["to"].as_str().unwrap())).collect();
    // Newest first.
    assert_eq!(steps, [("pro", "free"), ("free", "pro")]);
    assert_eq!(changes[0]["stripe_event"], "evt_flow_5");
    let cancelled = audit_rows(server, &admin, &org, "subscription.cancelled").await;
    assert_eq!(cancelled.len(), 1, "{cancelled:?}");

    // An event for an organization nobody knows is received and ignored.
    let stranger = subscription(&uuid::Uuid::now_v7().to_string(), "price_pro", "active");
    let mut stranger = stranger;
    stranger["customer"] = json!("cus_nobody");
    let lost = event("evt_flow_6", "customer.subscription.created", now(), stranger);
    assert_eq!(deliver_signed(server, &lost).await, StripeEventOutcome::Ignored);
}

async fn billing_routes_are_absent_while_billing_is_off(server: &TestServer) {
    let admin = server.register("billing-admin").await;
    let org = server.create_org(&admin, "Acme").await;
    let payload = event(
        "evt_off",
        "customer.subscription.created",
        now(),
        subscription(&org, "price_pro", "active"),
    );
    deliver(server, &payload, Some("t=1,v1=00")).await.expect_error(404, "not_found");
    let body = CheckoutRequest { plan: Plan::Pro };
    server
        .post(&format!("/api/v1/orgs/{org}/billing/checkout"), Some(&admin.access_token), &body)
        .await
        .expect_error(404, "not_found");
    server
        .post(&format!("/api/v1/orgs/{org}/billing/portal"), Some(&admin.access_token), &json!({}))
        .await
        .expect_error(404, "not_found");
}

fn billing_off(_: &mut Settings) {}

both_backends_with!(billing_on;
    signatures_are_checked_as_stripe_signs_them,
    duplicates_apply_once_sequentially_and_concurrently,
    the_plan_follows_the_subscription_and_each_step_is_audited_once,
);
both_backends_with!(billing_off; billing_routes_are_absent_while_billing_is_off);

/// What the fake Stripe API was sent: path, `Authorization`, form body.
type Sent = Arc<Mutex<Vec<(String, String, String)>>>;

/// A local stand-in for Stripe's API: creates Checkout and Billing Portal sessions, recording
/// each request, and answers as Stripe does (`{id, object, url, …}`).
async fn fake_stripe() -> (SocketAddr, Sent) {
    use axum::extract::{Request, State};
    let sent: Sent = Arc::default();
    async fn create(State(sent): State<Sent>, request: Request) -> axum::Json<Value> {
        let path = request.uri().path().to_owned();
        let auth = request
            .headers()
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = axum::body::to_bytes(request.into_body(), 1 << 20).await.unwrap();
        sent.lock().unwrap().push((path.clone(), auth, String::from_utf8(body.to_vec()).unwrap()));
        let (id, url) = if path.contains("checkout") {
            ("cs_test_1", "https://checkout.stripe.com/c/pay/cs_test_1")
        } else {
            ("bps_test_1", "https://billing.stripe.com/p/session/bps_test_1")
        };
        axum::Json(json!({"id": id, "object": "session", "url": url, "livemode": false}))
    }
    let app = axum::Router::new()
        .route("/v1/checkout/sessions", axum::routing::post(create))
        .route("/v1/billing_portal/sessions", axum::routing::post(create))
        .with_state(sent.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, sent)
}

async fn checkout_and_portal_sessions_come_from_stripe(backend: Backend) {
    let (stripe, sent) = fake_stripe().await;
    let tune = move |s: &mut Settings| {
        billing_on(s);
        s.stripe_secret_key = Some("sk_test_boardroom".into());
        s.stripe_api_base = format!("http://{stripe}").parse().unwrap();
    };
    run_with(backend, tune, move |server| {
        Box::pin(async move {
            let admin = server.register("billing-admin").await;
            let member = server.register("billing-member").await;
            let outsider = server.register("outsider").await;
            let org = server.create_org(&admin, "Acme").await;
            server.add_member(&admin, &org, &member, "member").await;
            let checkout = format!("/api/v1/orgs/{org}/billing/checkout");
            let portal = format!("/api/v1/orgs/{org}/billing/portal");
            let pro = CheckoutRequest { plan: Plan::Pro };

            // Before any subscription, the portal has no customer to open.
            server
                .post(&portal, Some(&admin.access_token), &json!({}))
                .await
                .expect_error(409, "conflict");
            server
                .post(&checkout, Some(&member.access_token), &pro)
                .await
                .expect_error(403, "forbidden");
            server
                .post(&checkout, Some(&outsider.access_token), &pro)
                .await
                .expect_error(404, "not_found");
            let free = CheckoutRequest { plan: Plan::Free };
            server
                .post(&checkout, Some(&admin.access_token), &free)
                .await
                .expect_error(422, "validation_failed");
            let (_, key) = server.create_key(&admin, &org, &["boards:read"]).await;
            server.post(&checkout, Some(&key), &pro).await.expect_error(403, "insufficient_scope");
            assert!(sent.lock().unwrap().is_empty(), "a refused call reached Stripe");

            let redirect: BillingRedirect =
                server.post(&checkout, Some(&admin.access_token), &pro).await.expect_as(200);
            assert_eq!(redirect.url, "https://checkout.stripe.com/c/pay/cs_test_1");
            let (path, auth, form) = sent.lock().unwrap()[0].clone();
            assert_eq!(
                (path.as_str(), auth.as_str()),
                ("/v1/checkout/sessions", "Bearer sk_test_boardroom")
            );
            let form: Vec<(String, String)> =
                url::form_urlencoded::parse(form.as_bytes()).into_owned().collect();
            let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
            assert_eq!(field("mode").as_deref(), Some("subscription"));
            assert_eq!(field("line_items[0][price]").as_deref(), Some("price_pro"));
            assert_eq!(field("client_reference_id"), Some(org.clone()));
            assert_eq!(field("subscription_data[metadata][organization_id]"), Some(org.clone()));
            assert_eq!(field("customer"), None);

            // Once checkout completed, the portal opens for the stored customer.
            let completed = event(
                "evt_portal_1",
                "checkout.session.completed",
                now(),
                json!({
            "id": "cs_test_1", "client_reference_id": org, "customer": "cus_portal",
            "subscription": "sub_portal"}),
            );
            assert_eq!(deliver_signed(server, &completed).await, StripeEventOutcome::Applied);
            let redirect: BillingRedirect =
                server.post(&portal, Some(&admin.access_token), &json!({})).await.expect_as(200);
            assert_eq!(redirect.url, "https://billing.stripe.com/p/session/bps_test_1");
            let (path, _, form) = sent.lock().unwrap()[1].clone();
            assert_eq!(path, "/v1/billing_portal/sessions");
            assert!(form.contains("customer=cus_portal"), "{form}");
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_and_portal_sessions_come_from_stripe_sqlite() {
    checkout_and_portal_sessions_come_from_stripe(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_and_portal_sessions_come_from_stripe_postgres() {
    checkout_and_portal_sessions_come_from_stripe(Backend::Postgres).await;
}
