//! The attachment vault in a running server, on both backends: no plaintext anywhere on disk or
//! in the database, `boardroom keys rotate` and `keys retire` through the binary (files stay
//! readable, also to the server that was running meanwhile), the orphan sweep; and the S3 blob
//! store against a local S3 server (`moto`).

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use boardroom::attachments::SealedBlob;
use bytes::Bytes;
use futures::StreamExt;
use reqwest::Method;
use uuid::Uuid;

use crate::harness::{both_backends, id, item, TestServer, TestUser};

/// Where a test's rows hang: an organization, a board and an item made over the API.
struct Place {
    org: Uuid,
    board: Uuid,
    item: Uuid,
    owner: TestUser,
}

async fn place(server: &TestServer) -> Place {
    let owner = server.register("owner").await;
    let org = server.create_org(&owner, "Acme").await;
    board_in(server, owner, &org).await
}

/// A new board with one item in `org`, made by `owner`.
async fn board_in(server: &TestServer, owner: TestUser, org: &str) -> Place {
    let board = server.create_board(&owner, org, "Files").await;
    let group = board.groups[0].id.to_string();
    let board_id = board.board.id.to_string();
    let made = server.create_item(&owner, &board_id, &item(&group, "With files")).await;
    Place { org: id(org), board: board.board.id, item: made.id, owner }
}

/// The row an attachment's upload would write (the API's own insert lands with attach-api).
async fn insert_row(server: &TestServer, at: &Place, sealed: &SealedBlob) -> Uuid {
    let row = Uuid::now_v7();
    let store = server.state().store();
    boardroom::on_pool!(store, pool => {
        sqlx::query(
            "INSERT INTO attachments (id, organization_id, board_id, item_id, update_id, name, \
             size, content_type, sha256, blob_key, key_id, wrapped_key, created_by, created_at) \
             VALUES ($1, $2, $3, $4, NULL, $5, $6, $7, $8, $9, $10, $11, NULL, $12)",
        )
        .bind(row)
        .bind(at.org)
        .bind(at.board)
        .bind(at.item)
        .bind("notes.txt")
        .bind(sealed.size as i64)
        .bind("text/plain")
        .bind(&sealed.sha256)
        .bind(&sealed.blob_key)
        .bind(&sealed.key_id)
        .bind(&sealed.wrapped_key)
        .bind(boardroom::storage::now())
        .execute(pool)
        .await
        .map(|_| ())
    })
    .unwrap();
    row
}

/// (key id, wrapped key) of a row, as stored now.
async fn row_key(server: &TestServer, row: Uuid) -> (String, Vec<u8>) {
    let store = server.state().store();
    boardroom::on_pool!(store, pool => {
        sqlx::query_as("SELECT key_id, wrapped_key FROM attachments WHERE id = $1")
            .bind(row)
            .fetch_one(pool)
            .await
    })
    .unwrap()
}

fn body(data: Vec<u8>) -> impl futures::Stream<Item = Result<Bytes, Infallible>> + Send + Unpin {
    let pieces: Vec<Result<Bytes, Infallible>> =
        data.chunks(10_000).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    futures::stream::iter(pieces)
}

async fn seal(server: &TestServer, data: &[u8]) -> SealedBlob {
    server.state().vault().seal(body(data.to_vec()), u64::MAX).await.unwrap()
}

/// Opens a blob whose row is `row` and reads it whole.
async fn open_row(server: &TestServer, sealed: &SealedBlob, row: Uuid) -> Vec<u8> {
    let (key_id, wrapped) = row_key(server, row).await;
    let mut opened =
        server.state().vault().open(&sealed.blob_key, &key_id, &wrapped).await.unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = opened.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

/// Every regular file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

const MARKER: &[u8] = b"BOARDROOM-MARKER-4c1e9b-confidential";

async fn the_plaintext_reaches_neither_disk_nor_database(server: &TestServer) {
    let at = place(server).await;
    let data = [&b"quarterly numbers: "[..], MARKER].concat().repeat(3000);
    let sealed = seal(server, &data).await;
    let row = insert_row(server, &at, &sealed).await;
    assert_eq!(open_row(server, &sealed, row).await, data);

    // Nothing under the data dir holds the marker: not the blob, not the SQLite database or its
    // WAL, not the keyring.
    let files = files_under(server.database.dir.path());
    assert!(files.iter().any(|f| f.ends_with(&sealed.blob_key)), "the blob is under the data dir");
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        assert!(!contains(&bytes, MARKER), "the marker is in {}", file.display());
    }

    // The database, read as text row by row: the marker is in no column of the row (its name,
    // type and hash are the only things it says about the file), and the key is wrapped.
    let store = server.state().store();
    let dump: Vec<String> = boardroom::on_pool!(store, pool => {
        sqlx::query_scalar(match server.backend() {
            crate::harness::Backend::Postgres => "SELECT a::text FROM attachments a",
            crate::harness::Backend::Sqlite => {
                "SELECT quote(id) || quote(name) || quote(sha256) || quote(blob_key) || \
                 quote(key_id) || quote(wrapped_key) FROM attachments"
            }
        })
        .fetch_all(pool)
        .await
    })
    .unwrap();
    assert_eq!(dump.len(), 1);
    assert!(!dump[0].contains(std::str::from_utf8(MARKER).unwrap()), "{}", dump[0]);
    assert!(dump[0].contains(&sealed.blob_key) && dump[0].contains(&sealed.key_id));
    assert_eq!(sealed.wrapped_key.len(), boardroom::attachments::keyring::WRAPPED_LEN);

    // A request about the board still answers (the server kept working all along).
    server
        .call(Method::GET, &format!("/api/v1/boards/{}", at.board))
        .bearer(&at.owner.access_token)
        .send()
        .await
        .expect(200);
}

/// The binary, with this server's database and data dir and nothing from the environment.
fn keys_command(server: &TestServer, args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_boardroom"));
    for (key, _) in std::env::vars() {
        if key.starts_with("BOARDROOM_") || key == "DATABASE_URL" {
            cmd.env_remove(key);
        }
    }
    let output = cmd
        .env("BOARDROOM_LOG", "warn")
        .env("BOARDROOM_DATA_DIR", server.database.dir.path())
        .env("DATABASE_URL", &server.database.url)
        .env("BOARDROOM_JWT_SECRET", "test-secret-test-secret-test-secret-0123")
        .arg("keys")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn audit_rows(server: &TestServer, action: &str) -> i64 {
    let store = server.state().store();
    boardroom::on_pool!(store, pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = $1")
            .bind(action)
            .fetch_one(pool)
            .await
    })
    .unwrap()
}

async fn rotation_keeps_files_readable_and_retire_waits_for_it(server: &TestServer) {
    let at = place(server).await;
    let old = server.state().vault().keyring().active().id().to_owned();
    let small = seal(server, b"small file").await;
    let large_data: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let large = seal(server, &large_data).await;
    let small_row = insert_row(server, &at, &small).await;
    let large_row = insert_row(server, &at, &large).await;
    let blob_before = std::fs::read(blob_path(server, &large)).unwrap();

    // The old key is in use: retiring it is refused, saying how many files still use it.
    let (ok, _, err) = keys_command(server, &["retire", &old]);
    assert!(!ok, "{err}");
    assert!(err.contains("2 attachment(s) still use") && err.contains(&old), "{err}");
    // So is a key the keyring does not hold.
    let (ok, _, err) = keys_command(server, &["retire", "mk_00000000000000ff"]);
    assert!(!ok && err.contains("not in the keyring"), "{err}");

    let (ok, out, err) = keys_command(server, &["rotate"]);
    assert!(ok, "{err}");
    assert!(out.contains("re-wrapped 2 data key(s)"), "{out}");
    let (new, wrapped) = row_key(server, small_row).await;
    assert_ne!(new, old);
    assert!(out.contains(&format!("added {new}")), "{out}");
    assert_ne!(wrapped, small.wrapped_key);
    assert_eq!(row_key(server, large_row).await.0, new);
    // The blobs were not rewritten.
    assert_eq!(std::fs::read(blob_path(server, &large)).unwrap(), blob_before);

    // The running server reads the changed keyring: old files open, new ones use the new key.
    assert_eq!(open_row(server, &small, small_row).await, b"small file");
    assert_eq!(open_row(server, &large, large_row).await, large_data);
    assert_eq!(seal(server, b"after").await.key_id, new);

    // The active key cannot be retired; the old one now can, and is gone from the keyring.
    let (ok, _, err) = keys_command(server, &["retire", &new]);
    assert!(
        !ok && err.contains("2 attachment(s) still use") && err.contains("the active"),
        "{err}"
    );
    let (ok, out, err) = keys_command(server, &["retire", &old]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("retired {old}")), "{out}");
    let keyring = server.state().vault().keyring();
    assert_eq!(keyring.ids().collect::<Vec<_>>(), vec![new.as_str()]);
    assert_eq!(open_row(server, &large, large_row).await, large_data);

    // Running rotate twice in a row adds one key each time, and nothing is left behind.
    let (ok, out, err) = keys_command(server, &["rotate"]);
    assert!(ok && out.contains("re-wrapped 2 data key(s)"), "{out} {err}");
    assert_eq!(server.state().vault().keyring().ids().count(), 2);

    assert_eq!(audit_rows(server, "master_key.rotated").await, 2);
    assert_eq!(audit_rows(server, "master_key.retired").await, 1);
}

fn blob_path(server: &TestServer, sealed: &SealedBlob) -> PathBuf {
    server.database.dir.path().join("attachments").join(&sealed.blob_key)
}

/// Backdates the file at `path` by `by`. A file already gone stays gone: a blob of a deleted
/// board may have been removed by the reaper the deletion poked.
fn age(path: &Path, by: Duration) {
    match std::fs::File::options().write(true).open(path) {
        Ok(file) => file.set_modified(SystemTime::now() - by).unwrap(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => panic!("{}: {err}", path.display()),
    }
}

async fn the_sweep_removes_old_orphans_only(server: &TestServer) {
    let at = place(server).await;
    let used = seal(server, b"used").await;
    let old_orphan = seal(server, b"old orphan").await;
    let young_orphan = seal(server, b"young orphan").await;
    let on_deleted_board = seal(server, b"on a deleted board").await;
    insert_row(server, &at, &used).await;

    let doomed = board_in(server, at.owner.clone(), &at.org.to_string()).await;
    insert_row(server, &doomed, &on_deleted_board).await;
    server
        .call(Method::DELETE, &format!("/api/v1/boards/{}", doomed.board))
        .bearer(&at.owner.access_token)
        .send()
        .await
        .expect(204);
    // A file no vault would have made is left alone, whatever its age.
    let stranger = server.database.dir.path().join("attachments").join("README");
    std::fs::write(&stranger, b"not a blob").unwrap();

    let hour_and_more = Duration::from_secs(2 * 3600);
    for sealed in [&used, &old_orphan, &on_deleted_board] {
        age(&blob_path(server, sealed), hour_and_more);
    }
    age(&stranger, hour_and_more);

    // A pass poked by the deletion may have run meanwhile; what is left is the same.
    let report = server.state().sweeper().run_once().await.unwrap();
    assert_eq!(report.young, 1, "{report:?}");
    assert!(blob_path(server, &used).exists());
    assert!(blob_path(server, &young_orphan).exists());
    assert!(!blob_path(server, &old_orphan).exists());
    assert!(!blob_path(server, &on_deleted_board).exists());
    assert!(stranger.exists());
    // A second pass finds nothing more to do.
    let again = server.state().sweeper().run_once().await.unwrap();
    assert_eq!((again.seen, again.deleted, again.young), (2, 0, 1), "{again:?}");
}

both_backends!(
    the_plaintext_reaches_neither_disk_nor_database,
    rotation_keeps_files_readable_and_retire_waits_for_it,
    the_sweep_removes_old_orphans_only,
);

/// A local S3 server (`moto` in server mode, from the tests' Python environment) with one
/// bucket; stopped when dropped.
struct LocalS3 {
    child: std::process::Child,
    endpoint: String,
}

const MOTO: &str = r#"
import sys, boto3
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
endpoint = f"http://{host}:{port}"
boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
             aws_secret_access_key="test").create_bucket(Bucket=sys.argv[1])
print(endpoint, flush=True)
sys.stdin.read()
server.stop()
"#;

impl LocalS3 {
    fn start(bucket: &str) -> LocalS3 {
        use std::io::BufRead;
        let mut child = crate::harness::python()
            .args(["-c", MOTO, bucket])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start moto");
        let stdout = child.stdout.take().expect("moto's stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line).expect("moto's endpoint");
        let endpoint = line.trim().to_owned();
        assert!(endpoint.starts_with("http://127.0.0.1:"), "moto did not start: {line:?}");
        LocalS3 { child, endpoint }
    }
}

impl Drop for LocalS3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_s3_store_round_trips_and_deletes() {
    let s3 = tokio::task::spawn_blocking(|| LocalS3::start("boardroom-files")).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut settings =
        boardroom::config::Settings::for_tests(dir.path().to_owned(), "sqlite::memory:".into());
    settings.attachment_store = Some("s3://boardroom-files/tenant-files".into());
    settings.attachment_s3_endpoint = Some(s3.endpoint.parse().unwrap());
    settings.attachment_s3_allow_http = true;
    settings.attachment_s3_access_key_id = Some("test".into());
    settings.attachment_s3_secret_access_key = Some("test".to_owned().into());
    let vault = boardroom::attachments::Vault::from_settings(
        &settings,
        boardroom::server::IfMissing::Generate,
    )
    .unwrap();

    // Over 5 MiB: the upload goes in two parts.
    let data = [&b"s3 part "[..], MARKER].concat().repeat(200_000);
    assert!(data.len() > 5 * 1024 * 1024);
    let sealed = vault.seal(body(data.clone()), u64::MAX).await.unwrap();
    assert_eq!(sealed.size, data.len() as u64);
    let mut opened =
        vault.open(&sealed.blob_key, &sealed.key_id, &sealed.wrapped_key).await.unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = opened.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    assert!(out == data, "the bytes differ");

    // The bucket holds the sealed blob under the prefix, and not the plaintext.
    let listed: Vec<_> = vault.store().list(None).map(|m| m.unwrap()).collect().await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].location.as_ref(), sealed.blob_key);
    let raw = {
        use object_store::ObjectStoreExt;
        let path = object_store::path::Path::from(sealed.blob_key.as_str());
        vault.store().get(&path).await.unwrap().bytes().await.unwrap()
    };
    assert!(!contains(&raw, MARKER));

    // Too large: refused, and the bucket keeps nothing of it.
    let err = vault.seal(body(data.clone()), 1024 * 1024).await.unwrap_err();
    assert!(matches!(err, boardroom::attachments::VaultError::TooLarge { .. }), "{err:?}");
    assert_eq!(vault.store().list(None).count().await, 1);

    vault.delete(&sealed.blob_key).await.unwrap();
    vault.delete(&sealed.blob_key).await.unwrap();
    assert_eq!(vault.store().list(None).count().await, 0);
    let err = vault.open(&sealed.blob_key, &sealed.key_id, &sealed.wrapped_key).await.err();
    assert!(matches!(err, Some(boardroom::attachments::VaultError::NotFound)), "{err:?}");
    drop(s3);
}
