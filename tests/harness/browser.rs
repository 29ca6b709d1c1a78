//! The browser tests' side of a script in `tests/browser/` (Selenium driving Debian's
//! Chromium, `tests/browser/common.py`): [`BrowserScript::start`] installs the browser when it is
//! missing ([`super::chromium`]), runs the script with [`super::python`], and talks to it in JSON
//! lines: the script `say`s what it reached (a path, an id), the test answers through
//! [`BrowserScript::send`] when the script `hear`s. Screenshots go to `target/web-screenshots`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// How long a script may take to say its next line (a browser start and a page or two).
const LINE_WAIT: Duration = Duration::from_secs(90);
/// How long a script may take to finish after its last line.
const EXIT_WAIT: Duration = Duration::from_secs(120);

/// A running browser script.
pub struct BrowserScript {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
}

/// Where the scripts save screenshots: `target/web-screenshots` of this workspace.
pub fn screenshots_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("web-screenshots")
}

impl BrowserScript {
    /// Starts `tests/browser/{name}.py` with `args`.
    pub fn start(name: &str, args: &[&str]) -> BrowserScript {
        super::chromium();
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser").join(format!("{name}.py"));
        let mut command = Command::from(super::python());
        command
            .arg(&script)
            .args(args)
            .env("BOARDROOM_SCREENSHOTS", screenshots_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child =
            command.spawn().unwrap_or_else(|e| panic!("start {}: {e}", script.display()));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("the script's stdout");
        BrowserScript { name: name.to_owned(), child, stdin, lines: BufReader::new(stdout).lines() }
    }

    /// The script's next JSON line; panics when it ends or says nothing in time.
    pub async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(LINE_WAIT, self.lines.next_line()).await;
        match line {
            Ok(Ok(Some(line))) => serde_json::from_str(&line)
                .unwrap_or_else(|_| panic!("{}: not a JSON line: {line:?}", self.name)),
            Ok(Ok(None)) => {
                let status = self.child.wait().await;
                panic!("{}: ended before its next line: {status:?}", self.name)
            }
            Ok(Err(e)) => panic!("{}: reading its output: {e}", self.name),
            Err(_) => panic!("{}: said nothing for {LINE_WAIT:?}", self.name),
        }
    }

    /// Sends one JSON line to the script (read by `hear()`).
    pub async fn send(&mut self, value: &Value) {
        let stdin = self.stdin.as_mut().expect("the script's stdin");
        let mut line = serde_json::to_vec(value).expect("a JSON line");
        line.push(b'\n');
        stdin.write_all(&line).await.expect("write to the script");
        stdin.flush().await.expect("write to the script");
    }

    /// Waits for the script to end and asserts that everything it checked held.
    pub async fn finish(mut self) {
        drop(self.stdin.take());
        let status = tokio::time::timeout(EXIT_WAIT, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{}: did not finish in {EXIT_WAIT:?}", self.name))
            .expect("wait for the script");
        assert!(status.success(), "{}: a check in the browser failed ({status})", self.name);
    }
}
