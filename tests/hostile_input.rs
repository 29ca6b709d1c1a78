//! Hostile strings at every text field a client can send, on both backends, over REST and the
//! WebSocket. A table of strings (NUL, other C0 controls, DEL and C1 controls, line breaks, a
//! right-to-left override, a lone surrogate, invalid UTF-8, a string near and one over 1 MiB)
//! is put into every field; each answer is 4xx, never 5xx: `422 validation_failed` naming the
//! field for characters the field does not take, `400 malformed_body` for JSON that does not
//! parse, `413` past the body limit. A refused write changes nothing (the board's `seq` stays),
//! and the board keeps accepting writes, also those committed in the same batch as a refusal.
//! Malformed emails and passwords spend no login attempt and write no audit row.
//!
//! Each field's template holds [`MARK`] where the hostile string goes; with nothing put there the
//! template is a valid request, so a refusal is the hostile string's doing.

use std::process::Command;

use futures::future::join_all;
use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{both_backends, both_backends_with, Reply, TestServer, TestUser};
use crate::realtime::{connect, JSON};

both_backends!(
    rest_text_fields_refuse_hostile_strings,
    malformed_emails_and_passwords_spend_no_login_attempts,
    a_refused_write_does_not_fail_its_batch,
    headers_queries_and_paths_refuse_hostile_text,
    admin_commands_normalize_and_check_emails,
);

both_backends_with!(unthrottled_sockets; socket_commands_refuse_hostile_strings);

/// The table sends hundreds of frames as fast as they are answered.
fn unthrottled_sockets(settings: &mut boardroom::config::Settings) {
    settings.ws_frames_per_sec = 100_000;
}

/// Where a template takes the hostile string: 5 bytes of UTF-8, which JSON leaves as they are.
const MARK: &str = "«X»";

/// What a field holds, which decides which strings it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// One line of board content: titles, names, labels, colors, text values, link texts.
    Line,
    /// Board content of several lines: descriptions, long_text values, update bodies.
    Lines,
    /// The name of a person, organization or API key: one line, no bidi controls.
    Name,
    /// An email address.
    Email,
    /// A URL: webhook URLs and link values.
    Url,
    /// A password: a secret that is only hashed; NUL is its one refused character.
    Password,
    /// One of a fixed set or a format: labels as values, dates, user ids, event names.
    Choice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// The field's usual answer (not necessarily 2xx: a login with a wrong password is 401).
    Accepted,
    /// 422 `validation_failed`, naming the field.
    Invalid,
    /// 400 `malformed_body`.
    Malformed,
    /// 413 `payload_too_large`.
    TooLarge,
}

/// A hostile string and what each kind of field answers to it.
struct Hostile {
    label: &'static str,
    /// What replaces [`MARK`] inside the JSON string literal.
    json: Vec<u8>,
    /// The text it decodes to; `None` where it is no text at all.
    text: Option<String>,
    verdict: fn(Kind) -> Verdict,
}

fn accepted(_: Kind) -> Verdict {
    Verdict::Accepted
}

fn printable(kind: Kind) -> Verdict {
    if kind == Kind::Choice {
        Verdict::Invalid
    } else {
        Verdict::Accepted
    }
}

fn refused(_: Kind) -> Verdict {
    Verdict::Invalid
}

fn control(kind: Kind) -> Verdict {
    if kind == Kind::Password {
        Verdict::Accepted
    } else {
        Verdict::Invalid
    }
}

fn line_break(kind: Kind) -> Verdict {
    match kind {
        Kind::Lines | Kind::Password => Verdict::Accepted,
        _ => Verdict::Invalid,
    }
}

fn bidi(kind: Kind) -> Verdict {
    match kind {
        Kind::Line | Kind::Lines | Kind::Password => Verdict::Accepted,
        _ => Verdict::Invalid,
    }
}

fn malformed(_: Kind) -> Verdict {
    Verdict::Malformed
}

fn too_large(_: Kind) -> Verdict {
    Verdict::TooLarge
}

/// The table. `long` is the length of the longest string that still fits the transport.
fn hostile_strings(long: usize, over_the_limit: bool) -> Vec<Hostile> {
    let text = |label, json: &str, text: &str, verdict| Hostile {
        label,
        json: json.as_bytes().to_vec(),
        text: Some(text.to_owned()),
        verdict,
    };
    let mut rows = vec![
        text("nothing (the valid template)", "", "", accepted as fn(Kind) -> Verdict),
        text("printable Unicode", "é日本🎉", "é日本🎉", printable),
        text("NUL", r"\u0000", "\0", refused),
        text("SOH (C0)", r"\u0001", "\u{1}", control),
        text("ESC (C0)", r"\u001b[31m", "\u{1b}[31m", control),
        text("carriage return", r"\r", "\r", control),
        text("newline", r"\n", "\n", line_break),
        text("tab", r"\t", "\t", line_break),
        text("DEL", r"\u007f", "\u{7f}", control),
        text("NEL (C1)", r"\u0085", "\u{85}", control),
        text("CSI (C1)", r"\u009b", "\u{9b}", control),
        text("right-to-left override", r"\u202e", "\u{202e}", bidi),
        Hostile { label: "lone surrogate", json: br"\ud800".to_vec(), text: None, verdict: malformed },
        Hostile {
            label: "invalid UTF-8",
            // As long as MARK, so it can replace it inside MessagePack too.
            json: vec![0xff, 0xfe, 0xc3, 0x28, 0xa0],
            text: None,
            verdict: malformed,
        },
        Hostile {
            label: "a very long string",
            json: vec![b'a'; long],
            text: Some("a".repeat(long)),
            verdict: refused,
        },
    ];
    if over_the_limit {
        rows.push(Hostile {
            label: "a string over 1 MiB",
            json: vec![b'a'; 1 << 20],
            text: None,
            verdict: too_large,
        });
    }
    rows
}

/// One field of one request.
struct Field {
    what: String,
    kind: Kind,
    /// A 422's message names the field with this (compared ignoring case).
    names: &'static str,
    method: Method,
    path: String,
    token: Option<String>,
    /// The body, with [`MARK`] in the field; a fresh one per request (emails must be new).
    body: Box<dyn Fn() -> Value>,
    /// The status of the template's answer.
    accepted: u16,
    /// A write to the fixture board: its `seq` moves exactly when the write is accepted.
    on_board: bool,
    /// The same write as a socket frame: its type and the ids REST carries in the path.
    socket: Option<(&'static str, Value)>,
}

/// A board with a column of each kind that takes text, an item, an update and a webhook.
struct Setup {
    owner: TestUser,
    org: String,
    board: String,
    group: String,
    item: String,
    update: String,
    webhook: String,
    /// Column title → id.
    columns: Vec<(&'static str, String)>,
}

impl Setup {
    fn column(&self, title: &str) -> String {
        self.columns.iter().find(|(t, _)| *t == title).unwrap().1.clone()
    }

    fn board_path(&self) -> String {
        format!("/api/v1/boards/{}", self.board)
    }
}

async fn setup(server: &TestServer) -> Setup {
    let f = crate::boards::fixture(server).await;
    let token = f.owner.access_token.clone();
    let b = format!("/api/v1/boards/{}", f.board);
    let mut columns = Vec::new();
    for (title, kind, labels) in [
        ("Notes", "text", None),
        ("Details", "long_text", None),
        ("Link", "link", None),
        ("Status", "status", Some(json!(["Todo", "Done"]))),
        ("Tags", "dropdown", Some(json!(["Todo", "Done"]))),
        ("Due", "date", None),
        ("Owner", "person", None),
        ("Labels", "status", Some(json!(["Todo", "Done"]))),
    ] {
        let settings = labels.map(|l| json!({ "labels": l }));
        let reply = server
            .post(
                &format!("{b}/columns"),
                Some(&token),
                &json!({"title": title, "type": kind, "settings": settings}),
            )
            .await;
        columns.push((title, reply.expect(201)["id"].as_str().unwrap().to_owned()));
    }
    let item = server
        .post(&format!("{b}/items"), Some(&token), &json!({"group_id": f.group, "name": "Existing"}))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let update = server
        .post(&format!("{b}/items/{item}/updates"), Some(&token), &json!({"body": "First"}))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let webhook = server
        .post(
            &format!("{b}/webhooks"),
            Some(&token),
            &json!({"url": "https://example.com/hook", "events": ["board.deleted"]}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    Setup {
        owner: f.owner,
        org: f.org,
        board: f.board,
        group: f.group,
        item,
        update,
        webhook,
        columns,
    }
}

fn unique_email(local: &str) -> String {
    format!("{local}-{}@example.com", uuid::Uuid::now_v7().simple())
}

/// Every text field of every request, REST paths and bodies (and socket frames for board
/// writes).
fn fields(s: &Setup) -> Vec<Field> {
    let token = Some(s.owner.access_token.clone());
    let b = s.board_path();
    let item = &s.item;
    let mut fields = vec![
        Field {
            what: "register: email".into(),
            kind: Kind::Email,
            names: "email",
            method: Method::POST,
            path: "/api/v1/auth/register".into(),
            token: None,
            body: Box::new(|| {
                json!({"email": unique_email("ab«X»cd"), "password": "long-enough-pw", "name": "N"})
            }),
            accepted: 201,
            on_board: false,
            socket: None,
        },
        Field {
            what: "register: password".into(),
            kind: Kind::Password,
            names: "password",
            method: Method::POST,
            path: "/api/v1/auth/register".into(),
            token: None,
            body: Box::new(|| {
                json!({"email": unique_email("pw"), "password": "long-enough-«X»-pw", "name": "N"})
            }),
            accepted: 201,
            on_board: false,
            socket: None,
        },
        Field {
            what: "register: name".into(),
            kind: Kind::Name,
            names: "name",
            method: Method::POST,
            path: "/api/v1/auth/register".into(),
            token: None,
            body: Box::new(|| {
                json!({"email": unique_email("name"), "password": "long-enough-pw", "name": "ab«X»cd"})
            }),
            accepted: 201,
            on_board: false,
            socket: None,
        },
        Field {
            what: "login: email".into(),
            kind: Kind::Email,
            names: "email",
            method: Method::POST,
            path: "/api/v1/auth/login".into(),
            token: None,
            body: Box::new(|| json!({"email": unique_email("ab«X»cd"), "password": "long-enough-pw"})),
            accepted: 401,
            on_board: false,
            socket: None,
        },
        Field {
            what: "login: password".into(),
            kind: Kind::Password,
            names: "password",
            method: Method::POST,
            path: "/api/v1/auth/login".into(),
            token: None,
            body: Box::new(|| {
                json!({"email": unique_email("login"), "password": "long-enough-«X»-pw"})
            }),
            accepted: 401,
            on_board: false,
            socket: None,
        },
        // The current password is wrong, so an accepted new one changes nothing.
        Field {
            what: "password change: current password".into(),
            kind: Kind::Password,
            names: "password",
            method: Method::POST,
            path: "/api/v1/auth/password".into(),
            token: token.clone(),
            body: Box::new(|| {
                json!({"current_password": "not-«X»-the-password", "new_password": "long-enough-pw"})
            }),
            accepted: 401,
            on_board: false,
            socket: None,
        },
        Field {
            what: "password change: new password".into(),
            kind: Kind::Password,
            names: "password",
            method: Method::POST,
            path: "/api/v1/auth/password".into(),
            token: token.clone(),
            body: Box::new(|| {
                json!({"current_password": "not-the-password", "new_password": "long-enough-«X»-pw"})
            }),
            accepted: 401,
            on_board: false,
            socket: None,
        },
        Field {
            what: "organization create: name".into(),
            kind: Kind::Name,
            names: "name",
            method: Method::POST,
            path: "/api/v1/orgs".into(),
            token: token.clone(),
            body: Box::new(|| json!({"name": "ab«X»cd"})),
            accepted: 201,
            on_board: false,
            socket: None,
        },
        Field {
            what: "member add: email".into(),
            kind: Kind::Email,
            names: "email",
            method: Method::POST,
            path: format!("/api/v1/orgs/{}/members", s.org),
            token: token.clone(),
            // Nobody has this address: an accepted one is looked up and not found.
            body: Box::new(|| json!({"email": "nobody-ab«X»cd@example.com", "role": "member"})),
            accepted: 404,
            on_board: false,
            socket: None,
        },
        Field {
            what: "API key create: name".into(),
            kind: Kind::Name,
            names: "name",
            method: Method::POST,
            path: format!("/api/v1/orgs/{}/api-keys", s.org),
            token: token.clone(),
            body: Box::new(|| json!({"name": "ab«X»cd", "scopes": ["boards:read"]})),
            accepted: 201,
            on_board: false,
            socket: None,
        },
        Field {
            what: "board create: name".into(),
            kind: Kind::Line,
            names: "name",
            method: Method::POST,
            path: format!("/api/v1/orgs/{}/boards", s.org),
            token: token.clone(),
            body: Box::new(|| json!({"name": "ab«X»cd"})),
            accepted: 201,
            on_board: false,
            socket: None,
        },
        Field {
            what: "board create: description".into(),
            kind: Kind::Lines,
            names: "description",
            method: Method::POST,
            path: format!("/api/v1/orgs/{}/boards", s.org),
            token: token.clone(),
            body: Box::new(|| json!({"name": "Board", "description": "ab«X»cd"})),
            accepted: 201,
            on_board: false,
            socket: None,
        },
        Field {
            what: "webhook create: url".into(),
            kind: Kind::Url,
            names: "url",
            method: Method::POST,
            path: format!("{b}/webhooks"),
            token: token.clone(),
            body: Box::new(|| {
                json!({"url": "https://example.com/hooks/ab«X»cd", "events": ["board.deleted"]})
            }),
            accepted: 201,
            on_board: false,
            socket: None,
        },
        Field {
            what: "webhook create: event names".into(),
            kind: Kind::Choice,
            names: "event",
            method: Method::POST,
            path: format!("{b}/webhooks"),
            token: token.clone(),
            body: Box::new(|| {
                json!({"url": "https://example.com/hooks", "events": ["board.deleted«X»"]})
            }),
            accepted: 201,
            on_board: false,
            socket: None,
        },
        Field {
            what: "webhook update: url".into(),
            kind: Kind::Url,
            names: "url",
            method: Method::PATCH,
            path: format!("{b}/webhooks/{}", s.webhook),
            token: token.clone(),
            body: Box::new(|| json!({"url": "https://example.com/hooks/ab«X»cd"})),
            accepted: 200,
            on_board: false,
            socket: None,
        },
        Field {
            what: "webhook update: event names".into(),
            kind: Kind::Choice,
            names: "event",
            method: Method::PATCH,
            path: format!("{b}/webhooks/{}", s.webhook),
            token: token.clone(),
            body: Box::new(|| json!({"events": ["board.deleted«X»"]})),
            accepted: 200,
            on_board: false,
            socket: None,
        },
    ];
    // Board writes, which the socket carries too.
    let board_write = |what: &str, kind, names, method, path: String, body: Value, accepted, socket| {
        Field {
            what: what.to_owned(),
            kind,
            names,
            method,
            path,
            token: token.clone(),
            body: Box::new(move || body.clone()),
            accepted,
            on_board: true,
            socket: Some(socket),
        }
    };
    let column = |title: &str| s.column(title);
    let labels_column = column("Labels");
    fields.extend([
        board_write(
            "board update: name",
            Kind::Line,
            "name",
            Method::PATCH,
            b.clone(),
            json!({"name": "ab«X»cd"}),
            200,
            ("update_board", json!({})),
        ),
        board_write(
            "board update: description",
            Kind::Lines,
            "description",
            Method::PATCH,
            b.clone(),
            json!({"description": "ab«X»cd"}),
            200,
            ("update_board", json!({})),
        ),
        board_write(
            "column create: title",
            Kind::Line,
            "title",
            Method::POST,
            format!("{b}/columns"),
            json!({"title": "ab«X»cd", "type": "text"}),
            201,
            ("create_column", json!({})),
        ),
        board_write(
            "column create: label",
            Kind::Line,
            "label",
            Method::POST,
            format!("{b}/columns"),
            json!({"title": "S", "type": "status", "settings": {"labels": ["Todo", "ab«X»cd"]}}),
            201,
            ("create_column", json!({})),
        ),
        board_write(
            "column update: title",
            Kind::Line,
            "title",
            Method::PATCH,
            format!("{b}/columns/{labels_column}"),
            json!({"title": "ab«X»cd"}),
            200,
            ("update_column", json!({"column_id": labels_column})),
        ),
        board_write(
            "column update: label",
            Kind::Line,
            "label",
            Method::PATCH,
            format!("{b}/columns/{labels_column}"),
            json!({"settings": {"labels": ["Todo", "Done", "ab«X»cd"]}}),
            200,
            ("update_column", json!({"column_id": labels_column})),
        ),
        board_write(
            "group create: title",
            Kind::Line,
            "title",
            Method::POST,
            format!("{b}/groups"),
            json!({"title": "ab«X»cd"}),
            201,
            ("create_group", json!({})),
        ),
        board_write(
            "group create: color",
            Kind::Line,
            "color",
            Method::POST,
            format!("{b}/groups"),
            json!({"title": "G", "color": "ab«X»cd"}),
            201,
            ("create_group", json!({})),
        ),
        board_write(
            "group update: title",
            Kind::Line,
            "title",
            Method::PATCH,
            format!("{b}/groups/{}", s.group),
            json!({"title": "ab«X»cd"}),
            200,
            ("update_group", json!({"group_id": s.group})),
        ),
        board_write(
            "group update: color",
            Kind::Line,
            "color",
            Method::PATCH,
            format!("{b}/groups/{}", s.group),
            json!({"color": "ab«X»cd"}),
            200,
            ("update_group", json!({"group_id": s.group})),
        ),
        board_write(
            "update create: body",
            Kind::Lines,
            "body",
            Method::POST,
            format!("{b}/items/{item}/updates"),
            json!({"body": "ab«X»cd"}),
            201,
            ("create_update", json!({"item_id": item})),
        ),
        board_write(
            "update edit: body",
            Kind::Lines,
            "body",
            Method::PATCH,
            format!("{b}/items/{item}/updates/{}", s.update),
            json!({"body": "ab«X»cd"}),
            200,
            ("edit_update", json!({"item_id": item, "update_id": s.update})),
        ),
    ]);
    // An item's name and each column kind's value, at creation and at change.
    let owner = &s.owner.id;
    let values: [(&'static str, Kind, &'static str, Value); 9] = [
        ("name", Kind::Line, "name", json!("ab«X»cd")),
        ("text value", Kind::Line, "Notes", json!("ab«X»cd")),
        ("long_text value", Kind::Lines, "Details", json!("ab«X»cd")),
        ("link URL", Kind::Url, "Link", json!({"url": "https://example.com/ab«X»cd"})),
        ("link text", Kind::Line, "Link", json!({"url": "https://example.com", "text": "ab«X»cd"})),
        ("status value", Kind::Choice, "Status", json!("Do«X»ne")),
        ("dropdown value", Kind::Choice, "Tags", json!(["Do«X»ne"])),
        ("date value", Kind::Choice, "Due", json!("2026-01-15«X»")),
        ("person value", Kind::Choice, "Owner", json!([format!("{owner}«X»")])),
    ];
    for (what, kind, names, value) in values {
        let (create, update) = if what == "name" {
            (
                json!({"group_id": s.group, "name": value}),
                json!({"name": value}),
            )
        } else {
            let values = json!({ column(names): value });
            (json!({"group_id": s.group, "name": "Item", "values": values}), json!({"values": values}))
        };
        fields.push(board_write(
            &format!("item create: {what}"),
            kind,
            names,
            Method::POST,
            format!("{b}/items"),
            create,
            201,
            ("create_item", json!({})),
        ));
        fields.push(board_write(
            &format!("item update: {what}"),
            kind,
            names,
            Method::PATCH,
            format!("{b}/items/{item}"),
            update,
            200,
            ("update_item", json!({"item_id": item})),
        ));
    }
    fields
}

/// `bytes` with its one [`MARK`] replaced by `with`.
fn splice(bytes: &[u8], with: &[u8]) -> Vec<u8> {
    let mark = MARK.as_bytes();
    let at: Vec<usize> =
        (0..=bytes.len().saturating_sub(mark.len())).filter(|&i| bytes[i..].starts_with(mark)).collect();
    assert_eq!(at.len(), 1, "a template holds MARK exactly once: {}", String::from_utf8_lossy(bytes));
    [&bytes[..at[0]], with, &bytes[at[0] + mark.len()..]].concat()
}

/// `value` with [`MARK`] replaced by `text` in every string.
fn replace_mark(value: &Value, text: &str) -> Value {
    match value {
        Value::String(s) => Value::String(s.replace(MARK, text)),
        Value::Array(items) => Value::Array(items.iter().map(|v| replace_mark(v, text)).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), replace_mark(v, text))).collect())
        }
        other => other.clone(),
    }
}

/// How many events the fixture board logged after `seen`, which moves to the last of them.
async fn new_events(server: &TestServer, s: &Setup, seen: &mut i64) -> usize {
    let path = format!("{}/events?after={seen}", s.board_path());
    let reply = server.get_as(&path, &s.owner.access_token).await;
    let body = reply.expect(200);
    if let Some(last) = body["last_seq"].as_i64() {
        *seen = last;
    }
    body["events"].as_array().unwrap().len()
}

/// Checks an answer against its verdict; returns what is wrong, if anything.
fn judge(context: &str, field: &Field, verdict: Verdict, status: u16, code: &str, message: &str) -> Option<String> {
    let expected: (u16, &str) = match verdict {
        Verdict::Accepted => (field.accepted, ""),
        Verdict::Invalid => (422, "validation_failed"),
        Verdict::Malformed => (400, "malformed_body"),
        Verdict::TooLarge => (413, "payload_too_large"),
    };
    let code_matches = verdict == Verdict::Accepted || code == expected.1;
    if status != expected.0 || !code_matches {
        return Some(format!(
            "{context}: expected {} {}, got {status} {code} ({})",
            expected.0,
            expected.1,
            cut(message)
        ));
    }
    if verdict == Verdict::Invalid && !message.to_lowercase().contains(&field.names.to_lowercase()) {
        return Some(format!("{context}: the message does not name {:?}: {}", field.names, cut(message)));
    }
    None
}

fn cut(message: &str) -> String {
    message.chars().take(160).collect()
}

async fn send_raw(server: &TestServer, field: &Field, body: Vec<u8>) -> Reply {
    let mut call = server.call(field.method.clone(), &field.path);
    if let Some(token) = &field.token {
        call = call.bearer(token);
    }
    call.raw("application/json", body).send().await
}

async fn rest_text_fields_refuse_hostile_strings(server: &TestServer) {
    let s = setup(server).await;
    let rows = hostile_strings((1 << 20) - 4096, true);
    let mut failures = Vec::new();
    let mut seen = 0;
    for field in fields(&s) {
        new_events(server, &s, &mut seen).await;
        for row in &rows {
            let template = serde_json::to_vec(&(field.body)()).unwrap();
            let reply = send_raw(server, &field, splice(&template, &row.json)).await;
            let verdict = (row.verdict)(field.kind);
            let context = format!("{} with {}", field.what, row.label);
            let message = reply.body["error"]["message"].as_str().unwrap_or_default();
            if reply.status >= 500 {
                failures.push(format!("{context}: {} {}", reply.status, reply.body));
                continue;
            }
            failures.extend(judge(&context, &field, verdict, reply.status, reply.error_code(), message));
            if field.on_board {
                let logged = new_events(server, &s, &mut seen).await;
                if (logged > 0) != (verdict == Verdict::Accepted) {
                    failures.push(format!("{context}: the board logged {logged} events"));
                }
            }
        }
        // The board still takes writes.
        let sentinel = server
            .post(
                &format!("{}/items", s.board_path()),
                Some(&s.owner.access_token),
                &json!({"group_id": s.group, "name": format!("after {}", field.what)}),
            )
            .await;
        if sentinel.status != 201 {
            failures.push(format!("after {}: a plain write answered {}", field.what, sentinel.status));
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

async fn socket_commands_refuse_hostile_strings(server: &TestServer) {
    let s = setup(server).await;
    // A socket message is at most 64 KiB: long enough to pass every field's limit.
    let rows = hostile_strings(30_000, false);
    let mut client = connect(server, &s.owner.access_token, JSON).await;
    let mut failures = Vec::new();
    let mut next_id = 1000u64;
    let mut seen = 0;
    for field in fields(&s) {
        let Some((kind, ids)) = &field.socket else { continue };
        new_events(server, &s, &mut seen).await;
        let mut frame = (field.body)();
        // REST's column `type` is the socket's `column_type`: `type` names the frame.
        if let Some(column_type) = frame.as_object_mut().unwrap().remove("type") {
            frame["column_type"] = column_type;
        }
        for (key, value) in ids.as_object().unwrap() {
            frame[key] = value.clone();
        }
        frame["type"] = json!(kind);
        frame["board_id"] = json!(s.board);
        for row in &rows {
            let mut messages = Vec::new();
            next_id += 1;
            frame["id"] = json!(next_id);
            let template = serde_json::to_vec(&frame).unwrap();
            if let Ok(text) = String::from_utf8(splice(&template, &row.json)) {
                messages.push(("JSON", Message::Text(text.into())));
            }
            let packed = match &row.text {
                Some(text) => rmp_serde::to_vec_named(&replace_mark(&frame, text)).unwrap(),
                None if row.json.len() == MARK.len() => {
                    splice(&rmp_serde::to_vec_named(&frame).unwrap(), &row.json)
                }
                None => Vec::new(),
            };
            if !packed.is_empty() {
                messages.push(("MessagePack", Message::Binary(packed.into())));
            }
            for (encoding, message) in messages {
                client.send_raw(message).await;
                let reply = client.next_of("reply").await;
                let verdict = (row.verdict)(field.kind);
                let context = format!("socket {} ({encoding}) with {}", field.what, row.label);
                let (status, code) = if reply["ok"] == true {
                    (field.accepted, "")
                } else {
                    let code = reply["error"]["code"].as_str().unwrap_or("?");
                    let status = match code {
                        "validation_failed" => 422,
                        "malformed_body" => 400,
                        "unavailable" | "internal" => 500,
                        _ => 499,
                    };
                    (status, code)
                };
                let message = reply["error"]["message"].as_str().unwrap_or_default();
                failures.extend(judge(&context, &field, verdict, status, code, message));
                let logged = new_events(server, &s, &mut seen).await;
                if (logged > 0) != (verdict == Verdict::Accepted) {
                    failures.push(format!("{context}: the board logged {logged} events"));
                }
            }
        }
        let reply = client
            .request(json!({"type": "create_item", "board_id": s.board, "group_id": s.group, "name": "sentinel"}))
            .await;
        if reply["ok"] != true {
            failures.push(format!("after socket {}: a plain write failed", field.what));
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// A write committed in the same batch as a refused one keeps its own result: the refusal
/// happens before anything is queued, never in the database.
async fn a_refused_write_does_not_fail_its_batch(server: &TestServer) {
    let s = setup(server).await;
    let items = format!("{}/items", s.board_path());
    let notes = s.column("Notes");
    let token = &s.owner.access_token;
    let writes = (0..8).map(|n| {
        let value = if n % 2 == 0 { "bad\u{0}value" } else { "good value" };
        let body = json!({"group_id": s.group, "name": format!("item {n}"), "values": { &notes: value }});
        let items = items.clone();
        async move { (n, server.post(&items, Some(token), &body).await) }
    });
    for (n, reply) in join_all(writes).await {
        if n % 2 == 0 {
            reply.expect_error(422, "validation_failed");
        } else {
            reply.expect(201);
        }
    }
    // Over one socket, pipelined: the refused frame and the good one after it.
    let mut client = connect(server, token, JSON).await;
    let bad = client
        .send(json!({"type": "create_item", "board_id": s.board, "group_id": s.group, "name": "bad", "values": { &notes: "a\u{0}b" }}))
        .await;
    let good = client
        .send(json!({"type": "create_item", "board_id": s.board, "group_id": s.group, "name": "good", "values": { &notes: "fine" }}))
        .await;
    for _ in 0..2 {
        let reply = client.next_of("reply").await;
        if reply["id"] == json!(bad) {
            assert_eq!(reply["error"]["code"], "validation_failed", "{reply}");
        } else {
            assert_eq!(reply["id"], json!(good), "{reply}");
            assert_eq!(reply["ok"], true, "{reply}");
        }
    }
    let listed = server.get_as(&items, token).await;
    let names: Vec<&str> = listed.expect(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert!(names.contains(&"good") && !names.contains(&"bad"), "{names:?}");
    assert_eq!(names.iter().filter(|n| n.starts_with("item ")).count(), 4, "{names:?}");
}

async fn login_failures_in_audit(server: &TestServer) -> i64 {
    server.flush_audit().await;
    boardroom::on_pool!(server.state().store(), pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'login.failed'")
            .fetch_one(pool).await.unwrap()
    })
}

/// A malformed email or password is refused before the login limit is asked or an audit row
/// written: six tries with each (one over the limit of five) all answer 422, and the account's
/// owner still signs in.
async fn malformed_emails_and_passwords_spend_no_login_attempts(server: &TestServer) {
    let alice = server.register("alice").await;
    let (local, domain) = alice.email.split_once('@').unwrap();
    let long_local = "a".repeat(250);
    let emails = [
        format!("{local}\u{0}@{domain}"),
        format!("{local}\u{202e}@{domain}"),
        format!("{local}\n@{domain}"),
        format!("{local} x@{domain}"),
        format!("{local}@@{domain}"),
        format!("{local}{domain}"),
        format!("@{domain}"),
        format!("{local}@"),
        format!("{long_local}@{domain}"),
    ];
    for email in &emails {
        for _ in 0..6 {
            let reply = server
                .post("/api/v1/auth/login", None, &json!({"email": email, "password": alice.password}))
                .await;
            reply.expect_error(422, "validation_failed");
            let message = reply.body["error"]["message"].as_str().unwrap();
            assert!(message.contains("email"), "{message}");
        }
    }
    let nul_password = format!("{}\u{0}", alice.password);
    for _ in 0..6 {
        let reply = server
            .post("/api/v1/auth/login", None, &json!({"email": alice.email, "password": nul_password}))
            .await;
        reply.expect_error(422, "validation_failed");
        assert!(reply.body["error"]["message"].as_str().unwrap().contains("password"));
    }
    assert_eq!(login_failures_in_audit(server).await, 0, "a refused login wrote an audit row");
    // The address is trimmed and lower-cased, then it is alice's.
    let padded = format!("  {}  ", alice.email.to_uppercase());
    server
        .post("/api/v1/auth/login", None, &json!({"email": padded, "password": alice.password}))
        .await
        .expect(200);
    // Registration refuses the same addresses before its limit too.
    for email in &emails {
        server
            .post(
                "/api/v1/auth/register",
                None,
                &json!({"email": email, "password": "long-enough-pw", "name": "M"}),
            )
            .await
            .expect_error(422, "validation_failed");
    }
}

/// Headers the server reads, query strings and path segments: hostile text is a 4xx.
async fn headers_queries_and_paths_refuse_hostile_text(server: &TestServer) {
    let s = setup(server).await;
    let token = &s.owner.access_token;
    let items = format!("{}/items", s.board_path());
    let body = json!({"group_id": s.group, "name": "x"});
    // Header values cannot carry NUL or other controls but tab; bytes past ASCII they can.
    for key in ["a\tb", "ké"] {
        let reply = server
            .call(Method::POST, &items)
            .bearer(token)
            .header("idempotency-key", key)
            .json(&body)
            .send()
            .await;
        assert_eq!((reply.status, reply.error_code()), (400, "bad_request"), "{key:?}: {}", reply.body);
    }
    let reply = server
        .call(Method::PATCH, &format!("{items}/{}", s.item))
        .bearer(token)
        .header("if-match", "\"1é\"")
        .json(&json!({"name": "y"}))
        .send()
        .await;
    reply.expect_error(400, "bad_request");
    let org = &s.org;
    for (path, status) in [
        (format!("/api/v1/orgs/{org}/audit-log?action=a%00b"), 422),
        // A query is decoded lossily: invalid UTF-8 arrives as U+FFFD, an unknown action.
        (format!("/api/v1/orgs/{org}/audit-log?action=%FF%FE"), 422),
        (format!("{items}?cursor=%00"), 400),
        (format!("{}/events?after=%00", s.board_path()), 400),
        ("/api/v1/boards/%00".to_owned(), 404),
        ("/api/v1/boards/%E2%80%AE".to_owned(), 404),
        ("/api/v1/boards/%FF".to_owned(), 404),
    ] {
        let reply = server.get_as(&path, token).await;
        assert_eq!(reply.status, status, "{path}: {}", reply.body);
    }
    // A body that is not UTF-8 at all, and a refresh token with a NUL.
    server
        .call(Method::POST, "/api/v1/auth/login")
        .raw("application/json", vec![0xff, 0xfe, 0x00, 0x7b])
        .send()
        .await
        .expect_error(400, "malformed_body");
    server
        .post("/api/v1/auth/refresh", None, &json!({"refresh_token": "brr_\u{0}.1.x"}))
        .await
        .expect_error(401, "unauthenticated");
    server.post(&items, Some(token), &body).await.expect(201);
}

/// The admin commands that take an email normalize it like sign-in does and refuse a malformed
/// one in one line, writing nothing.
async fn admin_commands_normalize_and_check_emails(server: &TestServer) {
    let root = server.register("root").await;
    let admin = |email: &str| {
        Command::new(env!("CARGO_BIN_EXE_boardroom"))
            .args(["admin", "grant-superadmin", email])
            .env("DATABASE_URL", &server.database.url)
            .env("BOARDROOM_DATA_DIR", server.database.dir.path())
            .env("BOARDROOM_LOG", "error")
            .output()
            .unwrap()
    };
    let (local, domain) = root.email.split_once('@').unwrap();
    for bad in [format!("{local}\u{202e}@{domain}"), format!("{local}\u{1}@{domain}"), "no-at-sign".into()] {
        let out = admin(&bad);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("not a valid"), "{stderr}");
    }
    let out = admin(&format!(" {} ", root.email.to_uppercase()));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let granted: Vec<String> = boardroom::on_pool!(server.state().store(), pool => {
        sqlx::query_scalar("SELECT action FROM audit_log WHERE action LIKE 'superadmin.%'")
            .fetch_all(pool).await.unwrap()
    });
    assert_eq!(granted, vec!["superadmin.granted".to_owned()]);
}
