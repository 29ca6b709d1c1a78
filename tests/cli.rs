//! The binary itself: bad settings end in one clear line, `serve` answers `/readyz`, and
//! SIGTERM stops it with exit 0 inside 10 seconds.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{both_backends, TestDatabase, TestServer};

fn boardroom() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_boardroom"));
    for (key, _) in std::env::vars() {
        if key.starts_with("BOARDROOM_") || key == "DATABASE_URL" {
            cmd.env_remove(key);
        }
    }
    cmd.env("BOARDROOM_LOG", "warn");
    cmd
}

/// Runs the binary to completion; returns (exit code, stderr lines).
fn run_to_end(cmd: &mut Command) -> (i32, Vec<String>) {
    let output = cmd.stdin(Stdio::null()).output().expect("run boardroom");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines = stderr.lines().map(str::to_owned).filter(|l| !l.trim().is_empty()).collect();
    (output.status.code().unwrap_or(-1), lines)
}

#[test]
fn bad_listen_address_is_one_line_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let (code, lines) = run_to_end(
        boardroom()
            .arg("serve")
            .env("BOARDROOM_DATA_DIR", dir.path())
            .env("BOARDROOM_LISTEN", "not-an-address"),
    );
    assert_ne!(code, 0);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("BOARDROOM_LISTEN"), "{lines:?}");
}

#[test]
fn unsupported_database_url_is_one_line_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let (code, lines) = run_to_end(
        boardroom()
            .arg("serve")
            .env("BOARDROOM_DATA_DIR", dir.path())
            .env("DATABASE_URL", "mysql://x/y"),
    );
    assert_ne!(code, 0);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("error: DATABASE_URL"), "{lines:?}");
}

#[test]
fn unreachable_database_is_one_line_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let (code, lines) = run_to_end(
        boardroom()
            .arg("check-config")
            .env("BOARDROOM_DATA_DIR", dir.path())
            .env("DATABASE_URL", "postgres://boardroom:s3cret-pw@127.0.0.1:1/none"),
    );
    assert_ne!(code, 0);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("DATABASE_URL: cannot connect"), "{lines:?}");
    assert!(!lines[0].contains("s3cret-pw"), "password leaked: {lines:?}");
}

#[test]
fn weak_jwt_secret_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (code, lines) = run_to_end(
        boardroom()
            .arg("check-config")
            .env("BOARDROOM_DATA_DIR", dir.path())
            .env("BOARDROOM_JWT_SECRET", "short"),
    );
    assert_ne!(code, 0);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("BOARDROOM_JWT_SECRET"), "{lines:?}");
    assert!(!lines[0].contains("short\""), "the secret itself must not be echoed: {lines:?}");
}

/// The writers' thread count takes 1 to 64 and nothing else: none, too many, words and
/// control bytes each end in one line naming the setting, before anything starts.
#[test]
fn bad_delivery_thread_counts_are_one_line_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    for value in ["0", "65", "4294967297", "many", "-1", "2\u{1}", " 2"] {
        let (code, lines) = run_to_end(
            boardroom()
                .arg("serve")
                .env("BOARDROOM_DATA_DIR", dir.path())
                .env("BOARDROOM_WS_DELIVERY_THREADS", value),
        );
        assert_ne!(code, 0, "{value:?} was accepted");
        assert_eq!(lines.len(), 1, "{value:?}: {lines:?}");
        assert!(lines[0].contains("BOARDROOM_WS_DELIVERY_THREADS"), "{value:?}: {lines:?}");
    }
}

#[test]
fn bad_log_format_is_one_line() {
    let (code, lines) = run_to_end(boardroom().arg("serve").env("BOARDROOM_LOG_FORMAT", "xml"));
    assert_ne!(code, 0);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("BOARDROOM_LOG_FORMAT"), "{lines:?}");
}

#[test]
fn text_logs_into_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let output = boardroom()
        .arg("migrate")
        .env("DATABASE_URL", format!("sqlite://{}/logs.db", dir.path().display()))
        .env("BOARDROOM_DATA_DIR", dir.path())
        .env("BOARDROOM_LOG", "debug")
        .stdin(Stdio::null())
        .output()
        .expect("run boardroom migrate");
    assert_eq!(output.status.code(), Some(0));
    let logs = String::from_utf8_lossy(&output.stdout);
    assert!(logs.contains("DEBUG"), "expected debug lines: {logs}");
    assert!(!logs.contains('\u{1b}'), "colour codes in a piped log: {logs:?}");
}

both_backends!(serve_answers_readyz_and_stops_on_sigterm);

/// The test server only names the backend: the binary is started on a database of its own, as
/// a node never serves beside another that is live without NATS (`cluster::nodes`).
async fn serve_answers_readyz_and_stops_on_sigterm(server: &TestServer) {
    let Some(database) = TestDatabase::create(server.backend()).await else { return };
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut child = boardroom()
        .arg("serve")
        .env("BOARDROOM_LISTEN", format!("127.0.0.1:{port}"))
        .env("BOARDROOM_DATA_DIR", dir.path())
        .env("DATABASE_URL", &database.url)
        .env("BOARDROOM_LOG", "debug")
        .env("BOARDROOM_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn boardroom serve");
    // Read as it is written: a debug log fills a pipe's buffer long before the server is ready.
    let mut stdout = child.stdout.take().expect("piped stdout");
    let logged = std::thread::spawn(move || {
        let mut all = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut all).map(|_| all)
    });

    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/readyz");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        match client.get(&url).send().await {
            Ok(reply) => break reply.status().as_u16(),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(err) => panic!("server never answered: {err}"),
        }
    };
    assert_eq!(status, 200);

    // Credentials pass through the server; none of them may reach its logs.
    let password = "log-leak-check-password";
    let registered: serde_json::Value = client
        .post(format!("http://127.0.0.1:{port}/api/v1/auth/register"))
        .json(&serde_json::json!({"email": "logs@example.com", "password": password, "name": "L"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = registered["access_token"].as_str().unwrap().to_owned();
    let refresh = registered["refresh_token"].as_str().unwrap().to_owned();
    let me = client
        .get(format!("http://127.0.0.1:{port}/api/v1/me?ticket=secret-ticket-value"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status().as_u16(), 200);

    let pid = child.id().to_string();
    let sent = Instant::now();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let exit =
        tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    assert!(sent.elapsed() < Duration::from_secs(10), "shutdown took {:?}", sent.elapsed());
    assert_eq!(exit.status.code(), Some(0));

    let stdout = logged.join().unwrap().unwrap();
    let raw = String::from_utf8_lossy(&stdout);
    for secret in [password, access.as_str(), refresh.as_str(), "secret-ticket-value"] {
        assert!(!raw.contains(secret), "a secret reached the logs");
    }

    // One JSON line per request, with the fields operators need.
    let logs: Vec<serde_json::Value> = BufReader::new(&stdout[..])
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect();
    let request_line = logs
        .iter()
        .find(|l| l["message"] == "request" && l["status"] == 200)
        .unwrap_or_else(|| panic!("no request line in {logs:?}"));
    for field in ["status", "latency_ms"] {
        assert!(!request_line[field].is_null(), "{field} missing: {request_line}");
    }
    let span = &request_line["span"];
    for field in ["id", "method", "path"] {
        assert!(!span[field].is_null(), "{field} missing: {request_line}");
    }
}
