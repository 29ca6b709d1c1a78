//! Backups and restore, on both backends, through the real binary: the restore drill (a server
//! filled through the API, backed up while writers write, restored into a fresh database and
//! data dir, served again and compared), a damaged snapshot refused, a non-empty target refused
//! without `--force`, and the scheduled backups with their retention and failures.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use boardroom::backup::schedule::{complete_snapshots, Run, Schedule};
use boardroom::backup::{Manifest, MANIFEST};
use boardroom::ssrf::Allowlist;
use boardroom_protocol::boards::CreateUpdate;
use boardroom_protocol::identity::Me;
use boardroom_protocol::webhooks::CreateWebhook;
use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{
    both_backends_with, column, item, Backend, TestDatabase, TestServer, TestUser,
};

both_backends_with!(allow_hooks; restore_drill);
both_backends_with!(scheduled; scheduled_backups_run_prune_and_fail);

fn allow_hooks(settings: &mut boardroom::config::Settings) {
    // Deliveries go nowhere (port 9, discard), and fail: their rows are data like any other.
    settings.webhook_allow = Allowlist::parse("127.0.0.1:9").unwrap();
}

/// The binary on `database` (its URL and data dir), with `args`.
fn boardroom(database: &TestDatabase, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_boardroom"))
        .args(args)
        .env("DATABASE_URL", &database.url)
        .env("BOARDROOM_DATA_DIR", database.dir.path())
        .env("BOARDROOM_LOG", "warn")
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The raw body of `GET path` as `token`'s holder: compared byte for byte.
async fn raw(server: &TestServer, path: &str, token: &str) -> (u16, String) {
    let response =
        reqwest::Client::new().get(server.url(path)).bearer_auth(token).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// What the drill compares: a board's snapshot and its whole event log, as raw JSON.
async fn board_texts(server: &TestServer, user: &TestUser, board: &str) -> (String, String) {
    let (status, snapshot) =
        raw(server, &format!("/api/v1/boards/{board}"), &user.access_token).await;
    assert_eq!(status, 200, "{snapshot}");
    let (status, log) = raw(
        server,
        &format!("/api/v1/boards/{board}/events?after=0&limit=1000"),
        &user.access_token,
    )
    .await;
    assert_eq!(status, 200, "{log}");
    assert!(log.contains("\"has_more\":false"), "one page holds the log: {log}");
    (snapshot, log)
}

const BOUNDARY: &str = "backup-boundary";

async fn attach(
    server: &TestServer,
    user: &TestUser,
    board: &str,
    item: &str,
    bytes: &[u8],
) -> String {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"notes.txt\"\r\n\
         Content-Type: text/plain\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let answer = server
        .call(Method::POST, &format!("/api/v1/boards/{board}/items/{item}/attachments"))
        .bearer(&user.access_token)
        .raw(&format!("multipart/form-data; boundary={BOUNDARY}"), body)
        .send()
        .await;
    answer.expect(201)["id"].as_str().unwrap().to_owned()
}

async fn download(server: &TestServer, user: &TestUser, board: &str, id: &str) -> Vec<u8> {
    let response = reqwest::Client::new()
        .get(server.url(&format!("/api/v1/boards/{board}/attachments/{id}")))
        .bearer_auth(&user.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    response.bytes().await.unwrap().to_vec()
}

/// A board with a column of every type and an item holding a value in each, a comment and a
/// reply, a webhook and an attachment.
async fn fill(
    server: &TestServer,
    owner: &TestUser,
    bob: &TestUser,
    org: &str,
) -> (String, String) {
    let created = server.create_board(owner, org, "Launch").await;
    let board = created.board.id.to_string();
    let group = created.groups[0].id.to_string();
    server.add_board_member(owner, &board, bob, "editor").await;
    let labelled = |title: &str, kind: &str| boardroom_protocol::boards::CreateColumn {
        settings: Some(json!({ "labels": ["red", "blue"] })),
        ..column(title, kind)
    };
    let kinds: [(boardroom_protocol::boards::CreateColumn, Value); 9] = [
        (column("Note", "text"), json!("hello")),
        (column("Long", "long_text"), json!("a\nlonger\ntext")),
        (column("Budget", "number"), json!(-3.5)),
        (labelled("Status", "status"), json!("red")),
        (column("Due", "date"), json!("2026-11-30")),
        (column("Owner", "person"), json!([bob.id])),
        (column("Signed", "checkbox"), json!(true)),
        (labelled("Tags", "dropdown"), json!(["red", "blue"])),
        (column("Spec", "link"), json!({ "url": "https://example.com/spec", "text": "spec" })),
    ];
    let mut first = item(&group, "Everything");
    for (body, value) in kinds {
        let col = server.create_column(owner, &board, &body).await;
        first.values.insert(col.id, value);
    }
    let first = server.create_item(owner, &board, &first).await.id.to_string();
    server.create_item(bob, &board, &item(&group, "Plain")).await;
    let updates = format!("/api/v1/boards/{board}/items/{first}/updates");
    let comment: Value = server
        .post(
            &updates,
            Some(&owner.access_token),
            &CreateUpdate { body: "looks good".into(), parent_id: None },
        )
        .await
        .expect(201)
        .clone();
    let parent = comment["id"].as_str().map(|id| crate::harness::id(id));
    server
        .post(
            &updates,
            Some(&bob.access_token),
            &CreateUpdate { body: "thanks".into(), parent_id: parent },
        )
        .await
        .expect(201);
    let hook = CreateWebhook {
        url: "http://127.0.0.1:9/hook".into(),
        events: vec!["item.created".into()],
    };
    server
        .post(&format!("/api/v1/boards/{board}/webhooks"), Some(&owner.access_token), &hook)
        .await
        .expect(201);
    let attachment = attach(server, owner, &board, &first, b"the minutes of the meeting").await;
    (board, attachment)
}

async fn restore_drill(server: &TestServer) {
    let owner = server.register("owner").await;
    let bob = server.register("bob").await;
    let org = server.create_org(&owner, "Acme").await;
    server.add_member(&owner, &org, &bob, "member").await;
    let (board, attachment) = fill(server, &owner, &bob, &org).await;
    let busy = server.create_board(&owner, &org, "Busy").await;
    let busy_id = busy.board.id.to_string();
    let busy_group = busy.groups[0].id.to_string();
    // A personal export (sealed in the vault like the attachments) goes into the snapshot too.
    let export: boardroom_protocol::exports::Export = server
        .send_as(Method::POST, "/api/v1/me/exports", &bob.access_token, None)
        .await
        .expect_as(202);
    let export_path = format!("/api/v1/me/exports/{}", export.id);
    crate::exports::until_built_at(server, &bob, &export_path).await;
    let exported = crate::exports::download(server, &export_path, &bob).await;
    server.flush_audit().await;
    let before = board_texts(server, &owner, &board).await;

    // Writers write through the API while the snapshot is taken.
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = tokio::spawn({
        let (acked, stop) = (acked.clone(), stop.clone());
        let url = server.url(&format!("/api/v1/boards/{busy_id}/items"));
        let token = owner.access_token.clone();
        async move {
            let client = reqwest::Client::new();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 2000 {
                let body = item(&busy_group, &format!("item {n}"));
                let answer =
                    client.post(&url).bearer_auth(&token).json(&body).send().await.unwrap();
                assert_eq!(answer.status().as_u16(), 201);
                let created: Value = answer.json().await.unwrap();
                acked.lock().unwrap().push(created["id"].as_str().unwrap().to_owned());
                n += 1;
            }
        }
    });
    while acked.lock().unwrap().len() < 5 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let acked_before: Vec<String> = acked.lock().unwrap().clone();
    let out = tempfile::tempdir().unwrap();
    let snapshot = out.path().join("snap");
    let database = &server.database;
    let backed = tokio::task::spawn_blocking({
        let (url, dir, snapshot) =
            (database.url.clone(), database.dir.path().to_owned(), snapshot.clone());
        move || {
            Command::new(env!("CARGO_BIN_EXE_boardroom"))
                .args(["backup", "--out", snapshot.to_str().unwrap()])
                .env("DATABASE_URL", url)
                .env("BOARDROOM_DATA_DIR", dir)
                .env("BOARDROOM_LOG", "warn")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
    assert!(backed.status.success(), "{}", text(&backed));
    let said = String::from_utf8_lossy(&backed.stdout);
    assert!(said.contains("holds no secret") && said.contains("BOARDROOM_MASTER_KEY"), "{said}");

    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(snapshot.join(MANIFEST)).unwrap()).unwrap();
    let expected_backend = match server.backend() {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(manifest.backend, expected_backend);
    let applied: i64 = boardroom::on_pool!(server.state().store(), pool => {
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations").fetch_one(pool).await.unwrap()
    });
    assert_eq!(manifest.schema_version, applied);
    assert_eq!(manifest.tables["users"], 2);
    assert_eq!(manifest.tables["attachments"], 1);
    assert!(manifest.files.iter().any(|f| f.path.starts_with("blobs/") && f.bytes > 0));
    // No secret went in: none of the data dir's secret files' contents is in any file.
    for secret in ["jwt-secret", "audit-key", "master-key"] {
        if let Ok(value) = std::fs::read(database.dir.path().join(secret)) {
            for entry in &manifest.files {
                let content = std::fs::read(snapshot.join(&entry.path)).unwrap();
                assert!(
                    !content.windows(value.len().min(32)).any(|w| value.starts_with(w)),
                    "{secret} found in {}",
                    entry.path
                );
            }
        }
    }

    // A one-byte flip anywhere is refused before anything is touched.
    let target = TestDatabase::create(server.backend()).await.unwrap();
    let damaged = out.path().join("damaged");
    copy_dir(&snapshot, &damaged);
    let victim = damaged.join(&manifest.files[0].path);
    let mut bytes = std::fs::read(&victim).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&victim, bytes).unwrap();
    let refused = boardroom(&target, &["restore", "--from", damaged.to_str().unwrap()]);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(text(&refused).contains("checksum mismatch"), "{}", text(&refused));
    assert!(
        !target.dir.path().join("boardroom.db").exists() || server.backend() == Backend::Postgres
    );

    // Restored into a fresh database and data dir, which gets the secrets the operator kept.
    for secret in ["audit-key", "master-key"] {
        std::fs::copy(database.dir.path().join(secret), target.dir.path().join(secret)).unwrap();
    }
    let restored = boardroom(&target, &["restore", "--from", snapshot.to_str().unwrap()]);
    assert!(restored.status.success(), "{}", text(&restored));
    assert!(!text(&restored).contains("MISMATCH"), "{}", text(&restored));
    // A second restore onto it is refused without --force, and goes through with it.
    let again = boardroom(&target, &["restore", "--from", snapshot.to_str().unwrap()]);
    assert!(!again.status.success() && text(&again).contains("--force"), "{}", text(&again));
    let forced = boardroom(&target, &["restore", "--from", snapshot.to_str().unwrap(), "--force"]);
    assert!(forced.status.success(), "{}", text(&forced));
    let verified = boardroom(&target, &["audit", "verify"]);
    assert!(verified.status.success(), "{}", text(&verified));

    let mut copy = TestServer::start_with(target, allow_hooks).await;
    let ready = copy.get("/readyz").await;
    ready.expect(200);
    // The same board, byte for byte, and the same log.
    assert_eq!(board_texts(&copy, &owner, &board).await, before);
    // Sessions signed in before the backup are still valid.
    let me: Me = copy.get_as("/api/v1/me", &bob.access_token).await.expect_as(200);
    assert_eq!(me.user.id.to_string(), bob.id);
    // Every write acknowledged before the snapshot began is there.
    let (_, log) = raw(
        &copy,
        &format!("/api/v1/boards/{busy_id}/events?after=0&limit=1000"),
        &owner.access_token,
    )
    .await;
    for id in &acked_before {
        assert!(log.contains(id.as_str()), "acknowledged item {id} missing after restore");
    }
    // The restored busy board's log is a prefix of the live one.
    let (_, live) = raw(
        server,
        &format!("/api/v1/boards/{busy_id}/events?after=0&limit=1000"),
        &owner.access_token,
    )
    .await;
    let events = |log: &str| {
        serde_json::from_str::<Value>(log).unwrap()["events"].as_array().unwrap().clone()
    };
    let (restored_events, live_events) = (events(&log), events(&live));
    assert!(restored_events.len() >= acked_before.len());
    assert_eq!(restored_events[..], live_events[..restored_events.len()]);
    // The attachment's blob came back and opens under the kept master key.
    assert_eq!(download(&copy, &owner, &board, &attachment).await, b"the minutes of the meeting");
    // So did the export's, byte for byte.
    assert_eq!(crate::exports::download(&copy, &export_path, &bob).await, exported);
    assert!(copy.stop_keeping_database().await);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if path.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()));
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).unwrap();
        }
    }
}

/// A complete snapshot as the schedule would have left it, taken `days` ago.
fn old_snapshot(dir: &Path, name: &str, days: i64) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(&path).unwrap();
    let manifest = Manifest {
        format_version: 1,
        backend: "sqlite".into(),
        schema_version: 1,
        created_at: chrono::Utc::now() - chrono::Duration::days(days),
        server_version: "0.1.0".into(),
        files: Vec::new(),
        tables: Default::default(),
        blobs_missing: Vec::new(),
    };
    std::fs::write(path.join(MANIFEST), serde_json::to_vec(&manifest).unwrap()).unwrap();
    path
}

fn scheduled(settings: &mut boardroom::config::Settings) {
    settings.backup_dir = Some(settings.data_dir.join("backups"));
    settings.backup_interval = Duration::from_secs(1);
}

/// A schedule on `server`'s database writing into `dir`, one snapshot an hour at most.
fn schedule(server: &TestServer, dir: &Path) -> Schedule {
    Schedule {
        store: server.state().store().clone(),
        database_url: server.database.url.clone(),
        blobs: server.state().vault().store().clone(),
        dir: dir.to_owned(),
        interval: Duration::from_secs(3600),
        retention: chrono::Duration::days(30),
        status: Arc::default(),
    }
}

/// `run_once` until it is this node's turn (the server's own schedule may hold the lock).
async fn run_when_free(schedule: &Schedule) -> Run {
    for _ in 0..200 {
        match schedule.run_once().await.unwrap() {
            Run::Skipped => tokio::time::sleep(Duration::from_millis(25)).await,
            done => return done,
        }
    }
    panic!("the backup lock was never free");
}

async fn scheduled_backups_run_prune_and_fail(server: &TestServer) {
    let owner = server.register("owner").await;
    server.create_org(&owner, "Acme").await;

    // The server's own schedule (BOARDROOM_BACKUP_DIR, every second) writes complete snapshots;
    // two more than were done at registration: the newest began after it.
    let status = server.state().backups().clone();
    let at_registration = status.successes();
    wait_for(|| status.successes() >= at_registration + 2).await;
    assert!(status.last_success().is_some());
    let own = server.database.dir.path().join("backups");
    let written: Vec<_> = complete_snapshots(&own);
    assert!(written.len() >= 2, "{:?}", snapshot_names(&own));
    for (path, _) in &written {
        boardroom::backup::restore::verify(path).unwrap();
    }
    let (newest, _) = written.iter().max_by_key(|(_, at)| *at).unwrap();
    let manifest = boardroom::backup::restore::verify(newest).unwrap();
    assert_eq!((manifest.tables["users"], manifest.tables["organizations"]), (1, 1));

    // Retention: older than 30 days goes, younger stays, other names and partial runs.
    let dir = tempfile::tempdir().unwrap();
    old_snapshot(dir.path(), "backup-old", 40);
    old_snapshot(dir.path(), "backup-recent", 10);
    old_snapshot(dir.path(), "keep-me", 400);
    let partial = dir.path().join(".partial-backup-crashed");
    std::fs::create_dir_all(&partial).unwrap();
    let manual = schedule(server, dir.path());
    let Run::Done { snapshot, pruned } = run_when_free(&manual).await else { unreachable!() };
    assert_eq!(pruned, [dir.path().join("backup-old")]);
    let names = snapshot_names(dir.path());
    let new_name = snapshot.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(names, [new_name, "backup-recent".to_owned(), "keep-me".to_owned()]);
    boardroom::backup::restore::verify(&snapshot).unwrap();
    assert_eq!(manual.status.successes(), 1);
    // Less than an interval after the newest: nothing to do.
    assert_eq!(manual.run_once().await.unwrap(), Run::Skipped);

    // Only snapshots older than the retention: the newest is never pruned.
    let stale = tempfile::tempdir().unwrap();
    old_snapshot(stale.path(), "backup-a", 400);
    old_snapshot(stale.path(), "backup-b", 300);
    let mut one_day = schedule(server, stale.path());
    one_day.retention = chrono::Duration::days(1);
    let Run::Done { pruned, .. } = run_when_free(&one_day).await else { unreachable!() };
    assert_eq!(pruned.len(), 2, "both old ones go once a new one is complete");
    assert_eq!(snapshot_names(stale.path()).len(), 1);

    // Two nodes never at once: while another holds the lock, a run is skipped.
    if server.backend() == Backend::Postgres {
        use sqlx::Connection;
        let mut other = sqlx::PgConnection::connect(&server.database.url).await.unwrap();
        loop {
            let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, 1)")
                .bind(0x6272_626b_i32)
                .fetch_one(&mut other)
                .await
                .unwrap();
            if taken {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(schedule(server, empty.path()).run_once().await.unwrap(), Run::Skipped);
        assert!(snapshot_names(empty.path()).is_empty());
        other.close().await.unwrap();
    }

    // A failing backup: logged, counted, retried at the next tick, never a success.
    let blocked = tempfile::tempdir().unwrap();
    let file = blocked.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let mut failing = schedule(server, &file.join("backups"));
    failing.interval = Duration::from_millis(1000);
    let failing_status = failing.status.clone();
    let task = failing.spawn();
    wait_for(|| failing_status.failures() >= 2).await;
    task.abort();
    assert_eq!(failing_status.successes(), 0);
    assert!(failing_status.last_success().is_none());
}

/// Polls `done` for up to 90 s (a `pg_dump` on a machine busy with other tests can take many
/// seconds, and the schedule needs two; a quick one returns at once).
async fn wait_for(mut done: impl FnMut() -> bool) {
    for _ in 0..1800 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out");
}

fn snapshot_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
