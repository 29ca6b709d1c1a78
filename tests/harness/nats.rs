//! A test's own NATS server (`/usr/sbin/nats-server`, or `NATS_SERVER`) on a free port, so a
//! test may stop it (as a crash: `kill -9`) and start it again on the same port while nodes are
//! connected. Core NATS only: nothing of the cluster is stored in NATS. Killed when dropped.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running (or stopped) private NATS server.
pub struct Nats {
    port: u16,
    child: Option<Child>,
}

impl Nats {
    /// Starts one on a free port and waits until it takes connections.
    pub async fn start() -> Nats {
        let port = {
            let probe = TcpListener::bind("127.0.0.1:0").expect("bind a probe port");
            probe.local_addr().expect("probe address").port()
        };
        let mut nats = Nats { port, child: None };
        nats.resume().await;
        nats
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills it at once (`kill -9`): connected clients see the connection drop.
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (after [`Nats::crash`]) and waits until it takes
    /// connections.
    pub async fn resume(&mut self) {
        assert!(self.child.is_none(), "NATS is already running");
        let binary =
            std::env::var("NATS_SERVER").unwrap_or_else(|_| "/usr/sbin/nats-server".to_owned());
        let child = Command::new(&binary)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {binary}: {err}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            assert!(Instant::now() < deadline, "NATS did not listen on {} in 10 s", self.port);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.crash();
    }
}
