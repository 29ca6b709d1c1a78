//! A real SMTP server for the mail tests: `aiosmtpd` (pinned in `tests/requirements.txt`) run
//! by [`python`](super::python) as a subprocess on 127.0.0.1. Each message it receives is parsed
//! by Python's own `email` package and written as one JSON file (recipients, subject, the
//! decoded plain-text and HTML parts) into a directory the test reads ([`SmtpSink::messages`]).
//!
//! [`both_backends_with_mail!`] runs a test on both backends against a server whose
//! `BOARDROOM_SMTP_URL` points at a fresh sink (retries after 100 ms, so a test waits little).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{on_a_free_port, Backend, TestServer};

/// The sink: aiosmtpd's controller, a handler that writes each message as JSON (to a temporary
/// name, then renamed, so a reader never sees half a file).
const SINK: &str = r#"
import email, email.policy, json, os, sys, time
from aiosmtpd.controller import Controller

out, port = sys.argv[1], int(sys.argv[2])

class Handler:
    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content or envelope.content,
                                       policy=email.policy.default)
        parts = {}
        for part in msg.walk():
            if part.get_content_maintype() == "text":
                parts[part.get_content_subtype()] = part.get_content()
        record = {
            "rcpt_to": list(envelope.rcpt_tos),
            "mail_from": envelope.mail_from,
            "from": str(msg["from"]),
            "to": str(msg["to"]),
            "subject": str(msg["subject"]),
            "text": parts.get("plain", ""),
            "html": parts.get("html", ""),
        }
        name = os.path.join(out, "%d-%d.json" % (time.time_ns(), os.getpid()))
        with open(name + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(name + ".tmp", name)
        return "250 OK"

controller = Controller(Handler(), hostname="127.0.0.1", port=port)
controller.start()
print("ready", flush=True)
sys.stdin.read()
controller.stop()
"#;

/// A message as the SMTP server received it.
#[derive(Debug, Clone, Deserialize)]
pub struct Received {
    /// Envelope recipients.
    pub rcpt_to: Vec<String>,
    /// Envelope sender.
    pub mail_from: String,
    /// The `From` header.
    pub from: String,
    /// The `To` header.
    pub to: String,
    /// The `Subject` header.
    pub subject: String,
    /// The decoded text/plain part.
    pub text: String,
    /// The decoded text/html part.
    pub html: String,
}

impl Received {
    /// The `token` of the message's link (`…?token=…`).
    pub fn token(&self) -> String {
        let at = self.text.find("token=").unwrap_or_else(|| panic!("no token in {:?}", self.text));
        self.text[at + "token=".len()..]
            .split(|c: char| c.is_whitespace())
            .next()
            .unwrap()
            .to_owned()
    }
}

/// A running aiosmtpd, stopped when dropped.
pub struct SmtpSink {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl SmtpSink {
    /// A sink on a free port.
    pub fn start() -> SmtpSink {
        on_a_free_port("aiosmtpd", |port| {
            let mut sink = SmtpSink::down(port);
            sink.try_up().then_some(sink)
        })
    }

    /// A sink that will listen on `port` once [`SmtpSink::up`] is called: until then nothing
    /// answers there.
    pub fn down(port: u16) -> SmtpSink {
        SmtpSink { port, dir: tempfile::tempdir().unwrap(), child: None }
    }

    /// Starts the server on its port and waits until it listens.
    pub fn up(&mut self) {
        assert!(self.try_up(), "aiosmtpd could not bind port {}", self.port);
    }

    /// Starts the server and waits for its `ready` line, printed once it has bound the port
    /// (a connection would not tell: another process may have taken the port). False when it
    /// exited without it, its traceback on stderr: the port was taken.
    fn try_up(&mut self) -> bool {
        assert!(self.child.is_none(), "already up");
        let mut child = super::python()
            .args(["-c", SINK, self.dir.path().to_str().unwrap(), &self.port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start aiosmtpd");
        let stdout = child.stdout.take().unwrap();
        let (said, first_line) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = said.send(line);
        });
        match first_line.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if line.trim() == "ready" => {
                self.child = Some(child);
                true
            }
            Ok(_) => {
                let _ = child.wait();
                false
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("aiosmtpd did not start in 30 s");
            }
        }
    }

    /// `smtp://127.0.0.1:<port>` (plain SMTP).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, in arrival order.
    pub fn messages(&self) -> Vec<Received> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }

    /// The messages to `to`, once there are at least `count` of them (waits up to 15 s).
    pub async fn wait_for(&self, to: &str, count: usize) -> Vec<Received> {
        let started = Instant::now();
        loop {
            let found: Vec<Received> =
                self.messages().into_iter().filter(|m| m.rcpt_to.iter().any(|r| r == to)).collect();
            if found.len() >= count {
                return found;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "{count} message(s) to {to} did not arrive; got {found:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The latest message to `to` (waits for one).
    pub async fn last_to(&self, to: &str) -> Received {
        self.wait_for(to, 1).await.pop().unwrap()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `test` against a fresh server on `backend` that sends its mail to a fresh sink.
pub async fn run_with_mail<F>(backend: Backend, test: F)
where
    F: for<'a> FnOnce(
        &'a TestServer,
        &'a SmtpSink,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>>,
{
    let Some(database) = super::TestDatabase::create(backend).await else { return };
    let sink = SmtpSink::start();
    let server = TestServer::start_with(database, |s| {
        s.smtp_url = Some(sink.url());
        s.mail_retry_base = Duration::from_millis(100);
    })
    .await;
    test(&server, &sink).await;
    server.stop().await;
}

/// Defines a `sqlite` and a `postgres` test for each named
/// `async fn(&TestServer, &SmtpSink)`, the server sending its mail to the sink.
macro_rules! both_backends_with_mail {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $crate::harness::smtp::run_with_mail(crate::harness::Backend::Sqlite, |s, m| Box::pin(super::$name(s, m))).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $crate::harness::smtp::run_with_mail(crate::harness::Backend::Postgres, |s, m| Box::pin(super::$name(s, m))).await;
            }
        }
    )+};
}
pub(crate) use both_backends_with_mail;
