//! The web client as the server serves it (src/http/web.rs): the page at `/` and at client
//! routes, hashed assets with their types and a year's caching, ETag revalidation, and the JSON
//! 404 that stays everywhere else; then the client itself in a real browser
//! (tests/browser/live_board.py), seeing another user's change arrive live.

use boardroom::config::Settings;
use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::browser::BrowserScript;
use crate::harness::{both_backends, both_backends_with, column, group, item, Reply, TestServer};

both_backends!(
    the_page_answers_at_the_root_and_at_client_routes,
    hashed_assets_are_typed_and_cached_for_a_year,
    a_matching_etag_answers_304_without_a_body,
    api_and_unknown_paths_stay_json_404s
);

both_backends_with!(on_a_known_port; a_browser_sees_another_users_item_live);

/// The page's body, as text.
fn text(reply: &Reply) -> &str {
    match &reply.body {
        Value::String(text) => text,
        other => panic!("expected a text body, got {other}"),
    }
}

/// The asset paths `index.html` names in `attribute="…"` values that start with `/assets/`.
fn asset_paths(page: &str) -> Vec<String> {
    page.split('"').filter(|part| part.starts_with("/assets/")).map(str::to_owned).collect()
}

async fn the_page_answers_at_the_root_and_at_client_routes(server: &TestServer) {
    let root = server.get("/").await;
    assert_eq!(root.status, 200);
    assert_eq!(root.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(root.header("cache-control"), Some("no-cache"));
    let csp = root.header("content-security-policy").expect("a CSP");
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let page = text(&root);
    assert!(page.contains("<main id=\"app\""), "{page}");
    assert!(!page.contains("<script>"), "no inline script: {page}");
    let etag = root.header("etag").expect("an ETag").to_owned();

    // A reload on a client route gets the same page, so the client's router takes over.
    for path in ["/index.html", "/orgs", "/orgs/0190/boards/0191"] {
        let reply = server.get(path).await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.header("content-type"), Some("text/html; charset=utf-8"), "{path}");
        assert_eq!(reply.header("etag"), Some(etag.as_str()), "{path}");
        assert_eq!(text(&reply), page, "{path}");
    }
    let head = server.call(Method::HEAD, "/").send().await;
    assert_eq!((head.status, head.header("etag")), (200, Some(etag.as_str())));
}

async fn hashed_assets_are_typed_and_cached_for_a_year(server: &TestServer) {
    let page = server.get("/").await;
    let assets = asset_paths(text(&page));
    let kinds: Vec<&str> = assets.iter().filter_map(|p| p.rsplit('.').next()).collect();
    assert!(kinds.contains(&"js") && kinds.contains(&"css"), "{assets:?}");
    for path in &assets {
        let reply = server.get(path).await;
        assert_eq!(reply.status, 200, "{path}");
        let expected = if path.ends_with(".js") {
            "text/javascript; charset=utf-8"
        } else {
            "text/css; charset=utf-8"
        };
        assert_eq!(reply.header("content-type"), Some(expected), "{path}");
        assert_eq!(
            reply.header("cache-control"),
            Some("public, max-age=31536000, immutable"),
            "{path}"
        );
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"), "{path}");
        assert!(reply.header("etag").is_some_and(|t| t.starts_with('"')), "{path}");
        assert!(!text(&reply).is_empty(), "{path}");
    }
}

async fn a_matching_etag_answers_304_without_a_body(server: &TestServer) {
    let page = server.get("/").await;
    let script = asset_paths(text(&page)).into_iter().find(|p| p.ends_with(".js")).unwrap();
    for path in ["/", script.as_str()] {
        let first = server.get(path).await;
        let etag = first.header("etag").unwrap().to_owned();
        let cache = first.header("cache-control").unwrap().to_owned();
        for sent in [etag.clone(), format!("\"other\", {etag}"), format!("W/{etag}"), "*".into()] {
            let again = server.call(Method::GET, path).header("if-none-match", &sent).send().await;
            assert_eq!(again.status, 304, "{path} with {sent}");
            assert_eq!(again.body, Value::Null, "{path}: a 304 has no body");
            assert_eq!(again.header("etag"), Some(etag.as_str()), "{path}");
            assert_eq!(again.header("cache-control"), Some(cache.as_str()), "{path}");
        }
        let stale =
            server.call(Method::GET, path).header("if-none-match", "\"stale\"").send().await;
        assert_eq!(stale.status, 200, "{path}");
        assert_eq!(stale.body, first.body, "{path}");
    }
}

async fn api_and_unknown_paths_stay_json_404s(server: &TestServer) {
    for path in [
        "/api",
        "/api/",
        "/api/v1/nope",
        "/api/v2/boards",
        "/api/orgs",
        "/nope",
        "/metrics",
        "/assets/main-NOTBUILT.js",
        "/index.htm",
    ] {
        let reply = server.get(path).await;
        reply.expect_error(404, "not_found");
        assert_eq!(reply.header("content-type"), Some("application/json"), "{path}");
    }
    // Writes to the page's paths are no routes either.
    for path in ["/", "/orgs/0190"] {
        server.call(Method::POST, path).send().await.expect_error(404, "not_found");
    }
}

/// Listens on a port known before the server starts, so the page's origin can be the one the
/// socket's origin check allows (`BOARDROOM_WS_ORIGINS`).
pub(crate) fn on_a_known_port(settings: &mut Settings) {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    settings.listen = addr;
    settings.ws_origins = vec![format!("http://{addr}")];
}

/// The browser registers, creates an organization and a board, and opens it; Bob, added
/// through REST, creates a group, a status column and an item, which the open page shows
/// without a reload.
async fn a_browser_sees_another_users_item_live(server: &TestServer) {
    let email = format!("alice-{}@example.com", uuid::Uuid::now_v7().simple());
    let password = "pw-alice-long-enough";
    let base = server.url("");
    let mut browser = BrowserScript::start("live_board", &[&base, &email, password, "Alice"]);
    let opened = browser.next().await;
    let path = opened["path"].as_str().unwrap();
    let parts: Vec<&str> = path.split('/').collect();
    let (org, board) = match parts.as_slice() {
        ["", "orgs", org, "boards", board] => (*org, *board),
        _ => panic!("not a board's path: {path}"),
    };

    let alice = server.sign_in(&email, password).await;
    let bob = server.register("bob").await;
    server.add_member(&alice, org, &bob, "member").await;
    server.add_board_member(&alice, board, &bob, "editor").await;
    let from_bob = server.create_group(&alice, board, &group("From Bob")).await;
    let mut stage = column("Stage", "status");
    stage.settings = Some(json!({ "labels": ["Working", "Done"] }));
    let stage = server.create_column(&alice, board, &stage).await;
    let mut shipped = item(&from_bob.id.to_string(), "Shipped by Bob");
    shipped.values.insert(stage.id, json!("Done"));
    server.create_item(&bob, board, &shipped).await;

    browser.finish().await;
}
