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
//!
//! The requests here are raw `json!` on purpose: the tests are about bytes no protocol type can
//! hold. Well-formed writes and every answer use the protocol types.

use std::process::Command;

use futures::future::join_all;
use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use boardroom_protocol::boards::Item;
use boardroom_protocol::{Encoding, RequestId};

use crate::harness::socket::{connect, error_code, msg, ok, JSON};
use crate::harness::{self, both_backends, both_backends_with, Reply, TestServer, TestUser};

both_backends!(
    malformed_emails_and_passwords_spend_no_login_attempts,
    a_refused_write_does_not_fail_its_batch,
    headers_queries_and_paths_refuse_hostile_text,
    admin_commands_normalize_and_check_emails,
);

both_backends_with!(unthrottled_sockets; socket_commands_refuse_hostile_strings);
both_backends_with!(unthrottled_password_checks; rest_text_fields_refuse_hostile_strings);

/// Every accepted row of the password-change request is a wrong current password, which counts
/// against the account's limit (`BOARDROOM_LOGIN_LIMIT`); the table sends dozens.
fn unthrottled_password_checks(settings: &mut boardroom::config::Settings) {
    settings.login_limit = 10_000;
}

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
    expect: Expect,
}

/// What a hostile string gets.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// The fields of these kinds accept it; the others refuse it 422.
    AcceptedBy(&'static [Kind]),
    /// 400: it is no JSON.
    Malformed,
    /// 413: past the body limit.
    TooLarge,
}

impl Hostile {
    fn verdict(&self, kind: Kind) -> Verdict {
        match self.expect {
            Expect::AcceptedBy(kinds) if kinds.contains(&kind) => Verdict::Accepted,
            Expect::AcceptedBy(_) => Verdict::Invalid,
            Expect::Malformed => Verdict::Malformed,
            Expect::TooLarge => Verdict::TooLarge,
        }
    }
}

const EVERY_KIND: &[Kind] =
    &[Kind::Line, Kind::Lines, Kind::Name, Kind::Email, Kind::Url, Kind::Password, Kind::Choice];
const FREE_TEXT: &[Kind] =
    &[Kind::Line, Kind::Lines, Kind::Name, Kind::Email, Kind::Url, Kind::Password];
const CONTENT: &[Kind] = &[Kind::Line, Kind::Lines, Kind::Password];
const SEVERAL_LINES: &[Kind] = &[Kind::Lines, Kind::Password];
const SECRETS: &[Kind] = &[Kind::Password];
const NO_KIND: &[Kind] = &[];

/// The table. `long` is the length of the longest string that still fits the transport.
fn hostile_strings(long: usize, over_the_limit: bool) -> Vec<Hostile> {
    use Expect::AcceptedBy;
    let text = |label, json: &str, text: &str, expect| Hostile {
        label,
        json: json.as_bytes().to_vec(),
        text: Some(text.to_owned()),
        expect,
    };
    let no_text = |label, json: Vec<u8>, expect| Hostile { label, json, text: None, expect };
    let mut rows = vec![
        text("nothing (the valid template)", "", "", AcceptedBy(EVERY_KIND)),
        text("printable Unicode", "é日本🎉", "é日本🎉", AcceptedBy(FREE_TEXT)),
        text("NUL", r"\u0000", "\0", AcceptedBy(NO_KIND)),
        text("SOH (C0)", r"\u0001", "\u{1}", AcceptedBy(SECRETS)),
        text("ESC (C0)", r"\u001b[31m", "\u{1b}[31m", AcceptedBy(SECRETS)),
        text("carriage return", r"\r", "\r", AcceptedBy(SECRETS)),
        text("newline", r"\n", "\n", AcceptedBy(SEVERAL_LINES)),
        text("tab", r"\t", "\t", AcceptedBy(SEVERAL_LINES)),
        text("DEL", r"\u007f", "\u{7f}", AcceptedBy(SECRETS)),
        text("NEL (C1)", r"\u0085", "\u{85}", AcceptedBy(SECRETS)),
        text("CSI (C1)", r"\u009b", "\u{9b}", AcceptedBy(SECRETS)),
        text("right-to-left override", r"\u202e", "\u{202e}", AcceptedBy(CONTENT)),
        text("a very long string", &"a".repeat(long), &"a".repeat(long), AcceptedBy(NO_KIND)),
        no_text("lone surrogate", br"\ud800".to_vec(), Expect::Malformed),
        // As long as MARK, so it can replace it inside MessagePack too.
        no_text("invalid UTF-8", vec![0xff, 0xfe, 0xc3, 0x28, 0xa0], Expect::Malformed),
    ];
    if over_the_limit {
        rows.push(no_text("a string over 1 MiB", vec![b'a'; 1 << 20], Expect::TooLarge));
    }
    rows
}

/// Where a template takes text that must differ per request (the email of a new account).
const FRESH: &str = "«N»";

/// One request, whose text fields are tried in turn.
struct Request {
    name: &'static str,
    method: Method,
    path: String,
    token: Option<String>,
    /// The body with every text field valid; a field's template replaces one key.
    base: Value,
    /// The status of the valid request's answer.
    accepted: u16,
    /// For a board write, the same write as a socket frame: its type and the ids REST carries
    /// in the path. The board's log moves exactly when such a write is accepted.
    socket: Option<(&'static str, Value)>,
}

impl Request {
    /// A request as `token`'s user with an empty body, answered 200 when valid.
    fn new(name: &'static str, method: Method, path: String, token: Option<&str>) -> Request {
        let token = token.map(str::to_owned);
        Request { name, method, path, token, base: json!({}), accepted: 200, socket: None }
    }

    fn base(self, base: Value) -> Request {
        Request { base, ..self }
    }

    fn accepts(self, accepted: u16) -> Request {
        Request { accepted, ..self }
    }

    fn socket(self, kind: &'static str, ids: Value) -> Request {
        Request { socket: Some((kind, ids)), ..self }
    }
}

/// One text field of one request.
struct Field {
    what: String,
    kind: Kind,
    /// A 422's message names the field with this (compared ignoring case).
    names: &'static str,
    request: std::rc::Rc<Request>,
    /// The request's body with [`MARK`] in the field.
    body: Value,
}

impl Field {
    /// The body to send: [`FRESH`] made unique, [`MARK`] left for the hostile string.
    fn body(&self) -> Value {
        replace_in_strings(&self.body, FRESH, &uuid::Uuid::now_v7().simple().to_string())
    }
}

/// A text field: its label, kind, what names it in a refusal, its key and its template.
type Text = (&'static str, Kind, &'static str, &'static str, Value);

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

/// `POST path` with `body` as `token`'s user; the id of what it created.
async fn create(server: &TestServer, token: &str, path: String, body: Value) -> String {
    let reply = server.post(&path, Some(token), &body).await;
    reply.expect(201)["id"].as_str().unwrap().to_owned()
}

async fn setup(server: &TestServer) -> Setup {
    let f = crate::boards::fixture(server).await;
    let token = f.owner.access_token.as_str();
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
        let body = json!({"title": title, "type": kind, "settings": settings});
        columns.push((title, create(server, token, format!("{b}/columns"), body).await));
    }
    let body = json!({"group_id": f.group, "name": "Existing"});
    let item = create(server, token, format!("{b}/items"), body).await;
    let body = json!({"body": "First"});
    let update = create(server, token, format!("{b}/items/{item}/updates"), body).await;
    let body = json!({"url": "https://example.com/hook", "events": ["board.deleted"]});
    let webhook = create(server, token, format!("{b}/webhooks"), body).await;
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

/// Every text field of every request, as REST requests (and socket frames for board writes).
fn fields(s: &Setup) -> Vec<Field> {
    let token = Some(s.owner.access_token.as_str());
    let (org, b, item, group) = (&s.org, s.board_path(), &s.item, &s.group);
    let post = |name, path: String| Request::new(name, Method::POST, path, token).accepts(201);
    let patch = |name, path: String| Request::new(name, Method::PATCH, path, token);
    let anonymous = |name, path: &str| Request::new(name, Method::POST, path.into(), None);
    let line = |label, key| -> Text { (label, Kind::Line, label, key, json!("ab«X»cd")) };
    let lines = |label, key| -> Text { (label, Kind::Lines, label, key, json!("ab«X»cd")) };
    let name = |label| -> Text { (label, Kind::Name, label, label, json!("ab«X»cd")) };
    let email = |template| -> Text { ("email", Kind::Email, "email", "email", json!(template)) };
    let password = |label, key| -> Text {
        (label, Kind::Password, "password", key, json!("long-enough-«X»-pw"))
    };
    let url = ("url", Kind::Url, "url", "url", json!("https://example.com/hooks/ab«X»cd"));
    let events = ("event names", Kind::Choice, "event", "events", json!(["board.deleted«X»"]));
    let account =
        json!({"email": "acct-«N»@example.com", "password": "long-enough-pw", "name": "N"});
    let hook = json!({"url": "https://example.com/hooks", "events": ["board.deleted"]});
    let labels_column = s.column("Labels");
    let labels = |labels: Value| -> Text {
        ("label", Kind::Line, "label", "settings", json!({ "labels": labels }))
    };
    let value = |label, kind, column: &'static str, value: Value| -> Text {
        (label, kind, column, "values", json!({ s.column(column): value }))
    };
    let item_texts = || {
        vec![
            line("name", "name"),
            value("text value", Kind::Line, "Notes", json!("ab«X»cd")),
            value("long_text value", Kind::Lines, "Details", json!("ab«X»cd")),
            value("link URL", Kind::Url, "Link", json!({"url": "https://example.com/ab«X»cd"})),
            value(
                "link text",
                Kind::Line,
                "Link",
                json!({"url": "https://x.example", "text": "ab«X»cd"}),
            ),
            value("status value", Kind::Choice, "Status", json!("Do«X»ne")),
            value("dropdown value", Kind::Choice, "Tags", json!(["Do«X»ne"])),
            value("date value", Kind::Choice, "Due", json!("2026-01-15«X»")),
            value("person value", Kind::Choice, "Owner", json!([format!("{}«X»", s.owner.id)])),
        ]
    };
    let requests: Vec<(Request, Vec<Text>)> = vec![
        (
            anonymous("register", "/api/v1/auth/register").base(account.clone()).accepts(201),
            vec![email("ab«X»cd-«N»@example.com"), password("password", "password"), name("name")],
        ),
        // Nobody has these addresses: once well-formed, a login answers 401.
        (
            anonymous("login", "/api/v1/auth/login").base(account).accepts(401),
            vec![email("ab«X»cd-«N»@example.com"), password("password", "password")],
        ),
        // The current password is wrong, so an accepted new one changes nothing.
        (
            post("password change", "/api/v1/auth/password".into())
                .base(json!({"current_password": "wrong-pw", "new_password": "long-enough-pw"}))
                .accepts(401),
            vec![password("current", "current_password"), password("new", "new_password")],
        ),
        (post("organization create", "/api/v1/orgs".into()), vec![name("name")]),
        // Nobody has this address: an accepted one is invited (202) instead of added.
        (
            post("member add", format!("/api/v1/orgs/{org}/members"))
                .base(json!({"role": "member"}))
                .accepts(202),
            vec![email("nobody-ab«X»cd@example.com")],
        ),
        (
            post("API key create", format!("/api/v1/orgs/{org}/api-keys"))
                .base(json!({"scopes": ["boards:read"]})),
            vec![name("name")],
        ),
        (
            post("board create", format!("/api/v1/orgs/{org}/boards")).base(json!({"name": "B"})),
            vec![line("name", "name"), lines("description", "description")],
        ),
        (
            post("webhook create", format!("{b}/webhooks")).base(hook),
            vec![url.clone(), events.clone()],
        ),
        (patch("webhook update", format!("{b}/webhooks/{}", s.webhook)), vec![url, events]),
        // Board writes, which the socket carries too.
        (
            patch("board update", b.clone()).socket("update_board", json!({})),
            vec![line("name", "name"), lines("description", "description")],
        ),
        (
            post("column create", format!("{b}/columns"))
                .base(json!({"title": "S", "type": "status", "settings": {"labels": ["Todo"]}}))
                .socket("create_column", json!({})),
            vec![line("title", "title"), labels(json!(["Todo", "ab«X»cd"]))],
        ),
        (
            patch("column update", format!("{b}/columns/{labels_column}"))
                .socket("update_column", json!({"column_id": labels_column})),
            vec![line("title", "title"), labels(json!(["Todo", "Done", "ab«X»cd"]))],
        ),
        (
            post("group create", format!("{b}/groups"))
                .base(json!({"title": "G"}))
                .socket("create_group", json!({})),
            vec![line("title", "title"), line("color", "color")],
        ),
        (
            patch("group update", format!("{b}/groups/{group}"))
                .socket("update_group", json!({"group_id": group})),
            vec![line("title", "title"), line("color", "color")],
        ),
        (
            post("update create", format!("{b}/items/{item}/updates"))
                .socket("create_update", json!({"item_id": item})),
            vec![lines("body", "body")],
        ),
        (
            patch("update edit", format!("{b}/items/{item}/updates/{}", s.update))
                .socket("edit_update", json!({"item_id": item, "update_id": s.update})),
            vec![lines("body", "body")],
        ),
        // An item's name and each column kind's value, at creation and at change.
        (
            post("item create", format!("{b}/items"))
                .base(json!({"group_id": group, "name": "Item"}))
                .socket("create_item", json!({})),
            item_texts(),
        ),
        (
            patch("item update", format!("{b}/items/{item}"))
                .socket("update_item", json!({"item_id": item})),
            item_texts(),
        ),
    ];
    let mut fields = Vec::new();
    for (request, texts) in requests {
        let request = std::rc::Rc::new(request);
        for (label, kind, names, key, template) in texts {
            let mut body = request.base.clone();
            body[key] = template;
            let what = format!("{}: {label}", request.name);
            fields.push(Field { what, kind, names, request: request.clone(), body });
        }
    }
    fields
}

/// `bytes` with its one [`MARK`] replaced by `with`.
fn splice(bytes: &[u8], with: &[u8]) -> Vec<u8> {
    let mark = MARK.as_bytes();
    let at: Vec<usize> = (0..=bytes.len().saturating_sub(mark.len()))
        .filter(|&i| bytes[i..].starts_with(mark))
        .collect();
    assert_eq!(
        at.len(),
        1,
        "a template holds MARK exactly once: {}",
        String::from_utf8_lossy(bytes)
    );
    [&bytes[..at[0]], with, &bytes[at[0] + mark.len()..]].concat()
}

/// `value` with `from` replaced by `to` in every string.
fn replace_in_strings(value: &Value, from: &str, to: &str) -> Value {
    match value {
        Value::String(s) => Value::String(s.replace(from, to)),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| replace_in_strings(v, from, to)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter().map(|(k, v)| (k.clone(), replace_in_strings(v, from, to))).collect(),
        ),
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
fn judge(
    context: &str,
    field: &Field,
    verdict: Verdict,
    status: u16,
    code: &str,
    message: &str,
) -> Option<String> {
    let expected: (u16, &str) = match verdict {
        Verdict::Accepted => (field.request.accepted, ""),
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
    if verdict == Verdict::Invalid && !message.to_lowercase().contains(&field.names.to_lowercase())
    {
        return Some(format!(
            "{context}: the message does not name {:?}: {}",
            field.names,
            cut(message)
        ));
    }
    None
}

fn cut(message: &str) -> String {
    message.chars().take(160).collect()
}

async fn send_raw(server: &TestServer, field: &Field, body: Vec<u8>) -> Reply {
    let mut call = server.call(field.request.method.clone(), &field.request.path);
    if let Some(token) = &field.request.token {
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
            let template = serde_json::to_vec(&field.body()).unwrap();
            let reply = send_raw(server, &field, splice(&template, &row.json)).await;
            let verdict = row.verdict(field.kind);
            let context = format!("{} with {}", field.what, row.label);
            let message = reply.body["error"]["message"].as_str().unwrap_or_default();
            if reply.status >= 500 {
                failures.push(format!("{context}: {} {}", reply.status, reply.body));
                continue;
            }
            failures.extend(judge(
                &context,
                &field,
                verdict,
                reply.status,
                reply.error_code(),
                message,
            ));
            if field.request.socket.is_some() {
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
            failures
                .push(format!("after {}: a plain write answered {}", field.what, sentinel.status));
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
        let Some((kind, ids)) = &field.request.socket else { continue };
        new_events(server, &s, &mut seen).await;
        let mut frame = field.body();
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
            let pack = |frame: &Value| Encoding::MessagePack.encode(frame).unwrap();
            let packed = match &row.text {
                Some(text) => pack(&replace_in_strings(&frame, MARK, text)),
                None if row.json.len() == MARK.len() => splice(&pack(&frame), &row.json),
                None => Vec::new(),
            };
            if !packed.is_empty() {
                messages.push(("MessagePack", Message::Binary(packed.into())));
            }
            for (encoding, message) in messages {
                client.send_raw(message).await;
                let reply = client.next_reply().await;
                let verdict = row.verdict(field.kind);
                let context = format!("socket {} ({encoding}) with {}", field.what, row.label);
                let (status, code) = match &reply.error {
                    None => (field.request.accepted, ""),
                    Some(error) => {
                        let code = error.code.as_str();
                        let status = match code {
                            "validation_failed" => 422,
                            "malformed_body" => 400,
                            "unavailable" | "internal" => 500,
                            _ => 499,
                        };
                        (status, code)
                    }
                };
                let message = reply.error.as_ref().map_or("", |e| e.message.as_str());
                failures.extend(judge(&context, &field, verdict, status, code, message));
                let logged = new_events(server, &s, &mut seen).await;
                if (logged > 0) != (verdict == Verdict::Accepted) {
                    failures.push(format!("{context}: the board logged {logged} events"));
                }
            }
        }
        let reply =
            client.request(msg::create_item(&s.board, harness::item(&s.group, "sentinel"))).await;
        if !reply.ok {
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
        let body =
            json!({"group_id": s.group, "name": format!("item {n}"), "values": { &notes: value }});
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
    let item = |name: &str, note: &str| {
        let mut item = harness::item(&s.group, name);
        item.values.insert(harness::id(&notes), json!(note));
        msg::create_item(&s.board, item)
    };
    let bad = client.send(item("bad", "a\u{0}b")).await;
    let good = client.send(item("good", "fine")).await;
    for _ in 0..2 {
        let reply = client.next_reply().await;
        if reply.id == Some(RequestId::Number(bad)) {
            assert_eq!(error_code(&reply), "validation_failed", "{reply:?}");
        } else {
            assert_eq!(reply.id, Some(RequestId::Number(good)), "{reply:?}");
            let _: Item = ok(&reply);
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
                .post(
                    "/api/v1/auth/login",
                    None,
                    &json!({"email": email, "password": alice.password}),
                )
                .await;
            reply.expect_error(422, "validation_failed");
            let message = reply.body["error"]["message"].as_str().unwrap();
            assert!(message.contains("email"), "{message}");
        }
    }
    let nul_password = format!("{}\u{0}", alice.password);
    for _ in 0..6 {
        let reply = server
            .post(
                "/api/v1/auth/login",
                None,
                &json!({"email": alice.email, "password": nul_password}),
            )
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
        assert_eq!(
            (reply.status, reply.error_code()),
            (400, "bad_request"),
            "{key:?}: {}",
            reply.body
        );
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
    for bad in
        [format!("{local}\u{202e}@{domain}"), format!("{local}\u{1}@{domain}"), "no-at-sign".into()]
    {
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
