//! The OpenAPI document (`GET /api/v1/openapi.json`): it is served, it lists every route the
//! server answers (no route is registered outside it, and every operation it lists is routed),
//! and it says how each operation is authenticated. `docs/openapi.json` is the document,
//! checked in (the web client's types are generated from it).

use std::path::Path;

use reqwest::Method;
use serde_json::Value;

use crate::harness::{both_backends, TestServer};

both_backends!(
    the_document_is_served,
    every_documented_operation_is_routed,
    an_idempotency_key_is_scoped_to_its_kind_of_write
);

/// The document as the server serves it.
async fn served(server: &TestServer) -> Value {
    let reply = server.get("/api/v1/openapi.json").await;
    assert_eq!(reply.header("content-type"), Some("application/json"));
    reply.expect(200).clone()
}

/// Each `(method, path)` the document lists.
fn operations(document: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                out.push((method.clone(), path.clone(), operation.clone()));
            }
        }
    }
    out
}

async fn the_document_is_served(server: &TestServer) {
    let document = served(server).await;
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(
        document,
        serde_json::to_value(boardroom::http::openapi_document()).unwrap(),
        "the served document is the one built from the routers"
    );
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["session"]["scheme"], "bearer");
    assert_eq!(schemes["session"]["bearerFormat"], "JWT");
    assert_eq!(schemes["api_key"]["scheme"], "bearer");
    assert_eq!(
        (&schemes["cookie"]["in"], &schemes["cookie"]["name"]),
        (&"cookie".into(), &"br_access".into())
    );
    assert_eq!(
        (&schemes["csrf"]["in"], &schemes["csrf"]["name"]),
        (&"header".into(), &"X-CSRF-Token".into())
    );

    // Enumerations carry their wire names.
    let scopes: Vec<&str> = boardroom_protocol::Scope::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(document["components"]["schemas"]["Scope"]["enum"], serde_json::json!(scopes));
    let kinds = document["components"]["schemas"]["EventData"].to_string();
    for kind in boardroom_protocol::events::EventKind::ALL {
        assert!(kinds.contains(&format!("\"{}\"", kind.as_str())), "{kind} missing from EventData");
    }

    let ops = operations(&document);
    let find = |method: &str, path: &str| {
        ops.iter()
            .find(|(m, p, _)| m == method && p == path)
            .map(|(_, _, op)| op.clone())
            .unwrap_or_else(|| panic!("{method} {path} is not documented"))
    };
    // The probes at the root and the socket upgrade are listed with the API.
    find("get", "/healthz");
    find("get", "/readyz");
    find("get", "/api/v1/ws");
    find("get", "/api/v1/openapi.json");

    // Public routes say so: their one requirement is the empty one.
    for (method, path) in
        [("post", "/api/v1/auth/register"), ("post", "/api/v1/auth/login"), ("get", "/healthz")]
    {
        assert_eq!(find(method, path)["security"], serde_json::json!([{}]), "{method} {path}");
    }
    // A board read names the key scope it needs; a cookie write needs the CSRF header too.
    let create_item = find("post", "/api/v1/boards/{board}/items");
    let security = create_item["security"].as_array().unwrap();
    assert!(security.contains(&serde_json::json!({ "api_key": ["items:write"] })));
    assert!(security.contains(&serde_json::json!({ "cookie": [], "csrf": [] })));
    // Key-less routes leave the API key out.
    let keys = find("post", "/api/v1/orgs/{org}/api-keys");
    assert!(!keys["security"].to_string().contains("api_key"), "{}", keys["security"]);
    // Bodies are the protocol types; errors the envelope, each status naming its codes.
    assert_eq!(
        create_item["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/CreateItem"
    );
    assert_eq!(
        create_item["responses"]["201"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Item"
    );
    let limit = &create_item["responses"]["422"];
    assert_eq!(
        limit["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorEnvelope"
    );
    assert!(limit["description"].as_str().unwrap().contains("`limit_reached`"), "{limit}");

    let mut ids = std::collections::HashSet::new();
    for (method, path, operation) in &ops {
        let id = operation["operationId"].as_str().unwrap_or_default().to_owned();
        assert!(ids.insert(id.clone()), "operationId {id} twice");
        assert!(operation["security"].is_array(), "{method} {path} says nothing of security");
        assert!(operation["tags"].is_array(), "{method} {path} has no tag");
        assert!(operation["summary"].is_string(), "{method} {path} has no summary");
        for (status, response) in operation["responses"].as_object().unwrap() {
            let schema = &response["content"]["application/json"]["schema"]["$ref"];
            if schema == "#/components/schemas/ErrorEnvelope" {
                let description = response["description"].as_str().unwrap();
                assert!(description.starts_with("error code `"), "{method} {path} {status}");
            }
        }
    }
}

/// Whether an answer is the router's own: no route for the path, or none for the method.
fn unrouted(status: u16, body: &Value) -> bool {
    status == 405 || (status == 404 && body["error"]["message"] == "no such route")
}

async fn every_documented_operation_is_routed(server: &TestServer) {
    let document = served(server).await;
    let ops = operations(&document);
    assert!(ops.len() >= 59, "only {} operations documented", ops.len());
    for (method, path, _) in &ops {
        // Every path parameter is an id; an unknown one is the handler's 404 or 401, never the
        // router's.
        let concrete = path
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    uuid::Uuid::now_v7().to_string()
                } else {
                    segment.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let reply = server.call(method.clone(), &concrete).send().await;
        assert!(
            !unrouted(reply.status, &reply.body),
            "{method} {path} is documented but not routed: {} {}",
            reply.status,
            reply.body
        );
    }
    // The check can fail: what is not routed is told apart.
    let missing = server.call(Method::GET, "/api/v1/not-documented").send().await;
    assert!(unrouted(missing.status, &missing.body), "{} {}", missing.status, missing.body);
    let wrong_method = server.call(Method::PUT, "/api/v1/openapi.json").send().await;
    assert!(unrouted(wrong_method.status, &wrong_method.body));
}

/// The checked-in copy of the document, `docs/openapi.json`.
fn checked_in_document() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json")
}

#[test]
fn the_checked_in_document_is_the_generated_one() {
    // Through a `Value`, whose maps are sorted, so the file does not depend on how utoipa
    // orders its own maps.
    let document = serde_json::to_value(boardroom::http::openapi_document()).unwrap();
    let generated = serde_json::to_string_pretty(&document).unwrap() + "\n";
    if std::env::var_os("BOARDROOM_WRITE_SCHEMA").is_some() {
        std::fs::write(checked_in_document(), &generated).unwrap();
    }
    let file = std::fs::read_to_string(checked_in_document()).unwrap_or_default();
    assert!(
        file == generated,
        "docs/openapi.json is not the document the routers generate; regenerate it with \
         BOARDROOM_WRITE_SCHEMA=1 cargo nextest run --test integration -E \
         'test(openapi::the_checked_in_document_is_the_generated_one)', then `npm run gen` in \
         web/ and commit both"
    );
}

/// Calls that register a route with axum directly, past `OpenApiRouter::routes`, and so past
/// the document.
const UNDOCUMENTED_ROUTING: &[&str] = &[".route(", ".route_service(", ".nest_service("];

/// Routers of listeners other than the API's, which the API's document does not describe: the
/// metrics listener's `GET /metrics` (docs/MONITORING.md).
const OTHER_LISTENERS: &[&str] = &["src/metrics.rs"];

/// The undocumented routing calls in one source file's non-test code, as `file:line: text`.
fn undocumented_routes(file: &str, source: &str) -> Vec<String> {
    // A file's unit-test module builds throwaway routers of its own.
    let code = source.split("#[cfg(test)]\nmod ").next().unwrap_or_default();
    code.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim_start().starts_with("//"))
        .filter(|(_, line)| UNDOCUMENTED_ROUTING.iter().any(|call| line.contains(call)))
        .map(|(n, line)| format!("{file}:{}: {}", n + 1, line.trim()))
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_route_is_registered_outside_the_document() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    assert!(files.len() > 20, "found only {} source files", files.len());
    let mut found = Vec::new();
    for file in &files {
        let name = file.strip_prefix(root).unwrap().display().to_string();
        if OTHER_LISTENERS.contains(&name.as_str()) {
            continue;
        }
        let source = std::fs::read_to_string(file).unwrap();
        found.extend(undocumented_routes(&name, &source));
    }
    assert!(
        found.is_empty(),
        "routes registered without #[utoipa::path] and routes!(), so missing from the OpenAPI \
         document:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_source_scan_finds_an_undocumented_route() {
    let source = "pub fn router() -> OpenApiRouter<AppState> {\n    OpenApiRouter::new()\n        \
                  .routes(routes!(documented))\n        .route(\"/secret\", get(hidden))\n}\n\
                  #[cfg(test)]\nmod tests { fn r() { Router::new().route(\"/t\", get(t)); } }\n";
    assert_eq!(
        undocumented_routes("src/http/x.rs", source),
        vec!["src/http/x.rs:4: .route(\"/secret\", get(hidden))".to_owned()]
    );
}

/// Schemathesis (the pinned PyPI package of `tests/requirements.txt`) against the served
/// document and a live server: an authenticated owner with an organization (and a second
/// member), a board with a column, a group, an item and an update, an API key and a second
/// session, whose ids pin the path parameters so the generated requests reach the handlers. It
/// must find no 5xx (`not_a_server_error`) and no answer outside its documented schema
/// (`response_schema_conformance`). A webhook to the test receiver and one of its deliveries
/// are pinned too. SQLite only: the checks are of the HTTP edge, and the run (50 examples per
/// operation, about 45 s on a loaded two-core machine) would double per backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    crate::harness::run_with(
        crate::harness::Backend::Sqlite,
        crate::webhooks::with_receiver,
        |s| Box::pin(schemathesis_run(s)),
    )
    .await;
}

async fn schemathesis_run(server: &TestServer) {
    let owner = server.register("owner").await;
    let token = owner.access_token.as_str();
    let second_session =
        server.login(&owner).await.expect(200)["session_id"].as_str().unwrap().to_owned();
    let member = server.register("member").await;
    let org = server.create_org(&owner, "Acme").await;
    server.add_member(&owner, &org, &member, "member").await;
    let board = server
        .post(
            &format!("/api/v1/orgs/{org}/boards"),
            Some(token),
            &serde_json::json!({ "name": "Launch" }),
        )
        .await
        .expect(201)
        .clone();
    let board_id = board["id"].as_str().unwrap().to_owned();
    let group = board["groups"][0]["id"].as_str().unwrap().to_owned();
    let created =
        |reply: crate::harness::Reply| reply.expect(201)["id"].as_str().unwrap().to_owned();
    let column = created(
        server
            .post(
                &format!("/api/v1/boards/{board_id}/columns"),
                Some(token),
                &serde_json::json!({ "title": "Status", "type": "status", "settings": { "labels": ["Todo", "Done"] } }),
            )
            .await,
    );
    let item = created(
        server
            .post(
                &format!("/api/v1/boards/{board_id}/items"),
                Some(token),
                &serde_json::json!({ "group_id": group, "name": "Ship", "values": { &column: "Todo" } }),
            )
            .await,
    );
    let update = created(
        server
            .post(
                &format!("/api/v1/boards/{board_id}/items/{item}/updates"),
                Some(token),
                &serde_json::json!({ "body": "Looks good" }),
            )
            .await,
    );
    let (key, _) = server.create_key(&owner, &org, &["boards:read"]).await;
    // A webhook to the test receiver, and a delivery of it.
    let port = server.state().settings().webhook_allow.entries()[0].1;
    let webhook = created(
        server
            .post(
                &format!("/api/v1/boards/{board_id}/webhooks"),
                Some(token),
                &serde_json::json!({ "url": format!("http://127.0.0.1:{port}/hook"), "events": ["*"] }),
            )
            .await,
    );
    server
        .post(
            &format!("/api/v1/boards/{board_id}/groups"),
            Some(token),
            &serde_json::json!({ "title": "Later" }),
        )
        .await
        .expect(201);
    let deliveries = format!("/api/v1/boards/{board_id}/webhooks/{webhook}/deliveries");
    let mut delivery = None;
    for _ in 0..100 {
        let listed = server.get_as(&deliveries, token).await;
        if let Some(id) = listed.expect(200)["deliveries"][0]["id"].as_str() {
            delivery = Some(id.to_owned());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let delivery = delivery.expect("a delivery within 5 s");

    let dir = tempfile::tempdir().unwrap();
    let pins = [
        ("org", &org),
        ("board", &board_id),
        ("group", &group),
        ("column", &column),
        ("item", &item),
        ("update", &update),
        ("user", &member.id),
        ("key", &key),
        ("session", &second_session),
        ("webhook", &webhook),
        ("delivery", &delivery),
    ];
    let mut config = String::from("[parameters]\n");
    for (name, value) in pins {
        config.push_str(&format!("\"path.{name}\" = \"{value}\"\n"));
    }
    // Bodies naming a group (an item's creation, a move) name the real one.
    config.push_str(&format!("\"body.group_id\" = \"{group}\"\n"));
    std::fs::write(dir.path().join("schemathesis.toml"), config).unwrap();

    let args: Vec<String> = [
        "--config-file",
        "schemathesis.toml",
        "run",
        &server.url("/api/v1/openapi.json"),
        "--header",
        &format!("Authorization: Bearer {token}"),
        "--checks",
        "not_a_server_error,response_schema_conformance",
        "--max-examples",
        "50",
        // Hypothesis's lambda descriptions race between threads (a runtime error, not a
        // finding); one worker is enough for a few minutes' run.
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--generation-with-security-parameters",
        "false",
        "--no-color",
        // Ending the session or deleting the board, group or item everything else is pinned to
        // would leave the rest of the run at 401 and 404.
        "--exclude-operation-id",
        "logout",
        "--exclude-operation-id",
        "delete_board",
        "--exclude-operation-id",
        "delete_group",
        "--exclude-operation-id",
        "delete_item",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let cwd = dir.path().to_owned();
    let started = std::time::Instant::now();
    let output = tokio::task::spawn_blocking(move || {
        crate::harness::python()
            .current_dir(&cwd)
            .args([
                "-c",
                "import sys; from schemathesis.cli import schemathesis; sys.exit(schemathesis())",
            ])
            .args(&args)
            .output()
            .expect("run schemathesis")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let summary: Vec<&str> = stdout.lines().rev().take(12).collect();
    eprintln!(
        "schemathesis ran {:.0?}; its summary:\n{}",
        started.elapsed(),
        summary.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
    assert!(
        output.status.success(),
        "schemathesis found failures ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("passed"), "schemathesis tested nothing:\n{stdout}");
}

/// Found by schemathesis: a POST's `Idempotency-Key` reused on another kind of board write
/// answered the first write's result (a group to an item's POST). A key names one request.
async fn an_idempotency_key_is_scoped_to_its_kind_of_write(server: &TestServer) {
    let owner = server.register("owner").await;
    let org = server.create_org(&owner, "Acme").await;
    let board = server
        .post(
            &format!("/api/v1/orgs/{org}/boards"),
            Some(&owner.access_token),
            &serde_json::json!({ "name": "B" }),
        )
        .await
        .expect(201)
        .clone();
    let (id, group) = (board["id"].as_str().unwrap(), board["groups"][0]["id"].as_str().unwrap());
    let post = |path: String, body: Value| {
        server
            .call(Method::POST, &path)
            .bearer(&owner.access_token)
            .header("idempotency-key", "same-key")
            .json(&body)
            .send()
    };
    let first =
        post(format!("/api/v1/boards/{id}/groups"), serde_json::json!({ "title": "G" })).await;
    let item = post(
        format!("/api/v1/boards/{id}/items"),
        serde_json::json!({ "group_id": group, "name": "I" }),
    )
    .await;
    assert_eq!(item.expect(201)["name"], "I", "the item's POST answered: {}", item.body);
    // A retry of the same kind still answers the first result.
    let again =
        post(format!("/api/v1/boards/{id}/groups"), serde_json::json!({ "title": "G" })).await;
    assert_eq!(again.expect(201)["id"], first.expect(201)["id"]);
}

/// The published JSON Schema of the socket frames (`docs/protocol.schema.json`, generated by
/// `boardroom_protocol::schema`) accepts the frames `docs/PROTOCOL.md` shows and refuses
/// broken ones, as judged by another implementation (jsonschema-rs, in the tests' Python).
#[test]
fn socket_frames_validate_against_the_published_schema() {
    let schema = boardroom_protocol::schema::frames_json_schema();
    let id = "00000000-0000-0000-0000-000000000004";
    let valid = serde_json::json!([
        { "type": "ping", "id": 1 },
        { "type": "subscribe", "id": "a", "board_id": id, "after_seq": 3 },
        { "type": "create_item", "id": 2, "board_id": id, "group_id": id, "name": "Ship" },
        { "type": "update_item", "id": 3, "board_id": id, "item_id": id, "values": {}, "expected_version": 3 },
        { "type": "create_column", "id": 4, "board_id": id, "title": "S", "column_type": "status" },
        { "type": "hello", "protocol_version": 1, "heartbeat_secs": 60 },
        { "type": "reply", "id": 7, "ok": true, "data": {}, "seq": 42 },
        { "type": "reply", "id": null, "ok": false, "error": { "code": "version_conflict", "message": "m" } },
        { "type": "event", "board_id": id, "seq": 1, "kind": "item.created", "actor": null, "data": {},
          "created_at": "2026-01-01T00:00:00Z" },
        { "type": "presence", "board_id": id, "users": [id] },
        { "type": "unsubscribed", "board_id": id, "error": { "code": "not_found", "message": "m" } },
    ]);
    let invalid = serde_json::json!([
        { "type": "no_such_frame", "id": 1 },
        { "type": "hello" },
        { "type": "create_item", "id": 2, "board_id": id, "name": "no group" },
        { "type": "reply", "id": 7, "ok": "yes" },
    ]);
    let script = r#"
import json, sys, jsonschema_rs
validator = jsonschema_rs.validator_for(json.loads(sys.argv[1]))
wrong = [f for f in json.loads(sys.argv[2]) if not validator.is_valid(f)]
wrong += [f for f in json.loads(sys.argv[3]) if validator.is_valid(f)]
print(json.dumps(wrong))
"#;
    let out = crate::harness::python()
        .args(["-c", script, &schema.to_string(), &valid.to_string(), &invalid.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let misjudged: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(misjudged, serde_json::json!([]), "frames the schema judged wrongly");
}
