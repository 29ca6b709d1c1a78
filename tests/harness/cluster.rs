//! Several `boardroom serve` processes on one fresh Postgres database, joined by a NATS server
//! of the test's own (so a test may stop and restart it), each on its own 127.0.0.1 port.
//!
//! Nodes are real processes (`CARGO_BIN_EXE_boardroom`), never servers in the test's process:
//! actor names are process-wide, so two in-process nodes would share their actors. They share
//! one data dir, as nodes share a blob store and their secrets: the first node starts alone and
//! generates the audit key and master key there, the others read them. Each node's output goes
//! to `node-<n>.log` in that dir; a node that does not come up fails the test with its log's
//! tail.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, on_a_free_port, Api, Backend, TestDatabase};

/// A `nats-server` of the test's own, on a free port.
pub struct Nats {
    port: u16,
    child: Option<Child>,
}

/// Whether the NATS server named `name` answers on `port`: its greeting (`INFO {…}`) names it.
/// A bare connection would not tell: another test's listener may have taken the port.
fn nats_answers(port: u16, name: &str) -> bool {
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut greeting = [0u8; 4096];
    let read = std::io::Read::read(&mut stream, &mut greeting).unwrap_or(0);
    let greeting = String::from_utf8_lossy(&greeting[..read]);
    greeting.starts_with("INFO ") && greeting.contains(&format!("\"server_name\":\"{name}\""))
}

impl Nats {
    /// Starts one on a free port; waits until it answers.
    pub fn start() -> Nats {
        on_a_free_port("nats-server", |port| {
            let mut nats = Nats { port, child: None };
            nats.try_run().then_some(nats)
        })
    }

    fn run(&mut self) {
        assert!(self.try_run(), "nats-server could not listen on {}", self.port);
    }

    /// Starts it on its port; false when it exited instead (the port was taken).
    fn try_run(&mut self) -> bool {
        let name = format!("test-nats-{}", uuid::Uuid::now_v7().simple());
        let mut child = Command::new(nats_server())
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-n", &name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            if nats_answers(self.port, &name) {
                self.child = Some(child);
                return true;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("nats-server did not come up on {}", self.port);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills it (the nodes lose their connection and keep trying).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The `nats-server` binary: `NATS_SERVER`, else on `PATH`, else Debian's (installed when
/// missing, [`super::debian_packages`]).
fn nats_server() -> PathBuf {
    if let Ok(path) = std::env::var("NATS_SERVER") {
        return path.into();
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let candidate = PathBuf::from(dir).join("nats-server");
        if candidate.is_file() {
            return candidate;
        }
    }
    super::debian_packages(&["/usr/sbin/nats-server"], &["nats-server"], "the cluster tests");
    PathBuf::from("/usr/sbin/nats-server")
}

/// One node: a `boardroom serve` process and a client of it (which it derefs to).
pub struct Node {
    /// Its `BOARDROOM_NODE_ID`.
    pub id: String,
    child: Option<Child>,
    api: Api,
    log: PathBuf,
}

impl std::ops::Deref for Node {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Node {
    /// Kills it with SIGKILL: no shutdown, nothing flushed or released.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops it with SIGTERM and waits for it to exit; answers whether it exited 0.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else { return true };
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The end of its log.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What every node of a test cluster is started with, beyond its id, port and NATS.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// `BOARDROOM_LEASE_SECS`.
    pub lease_secs: u64,
    /// Extra environment.
    pub env: Vec<(String, String)>,
}

impl Default for NodeSettings {
    fn default() -> Self {
        NodeSettings { lease_secs: 3, env: Vec::new() }
    }
}

/// Several nodes on one database.
pub struct Cluster {
    /// The nodes, in the order started.
    pub nodes: Vec<Node>,
    /// Their NATS.
    pub nats: Nats,
    settings: NodeSettings,
    /// Their database (and shared data dir), dropped last.
    pub database: TestDatabase,
}

impl Cluster {
    /// `n` nodes on a fresh Postgres database, all up; `None` when Postgres is unreachable
    /// outside CI.
    pub async fn start(n: usize) -> Option<Cluster> {
        Self::start_with(n, NodeSettings::default()).await
    }

    /// [`Cluster::start`] with `settings`.
    pub async fn start_with(n: usize, settings: NodeSettings) -> Option<Cluster> {
        let database = TestDatabase::create(Backend::Postgres).await?;
        let mut cluster = Cluster { nodes: Vec::new(), nats: Nats::start(), settings, database };
        // The first alone: it generates the shared secrets and applies the migrations.
        cluster.add_node().await;
        let rest: Vec<Node> = (1..n).map(|i| cluster.spawn_node(i)).collect();
        for (i, mut node) in (1..n).zip(rest) {
            if let Err(why) = wait_ready(&mut node).await {
                node = cluster.respawn_if_port_taken(i, node, why).await;
            }
            cluster.nodes.push(node);
        }
        Some(cluster)
    }

    /// Starts one more node and waits until it is ready; answers its index.
    pub async fn add_node(&mut self) -> usize {
        let index = self.nodes.len();
        let mut node = self.spawn_node(index);
        if let Err(why) = wait_ready(&mut node).await {
            node = self.respawn_if_port_taken(index, node, why).await;
        }
        self.nodes.push(node);
        index
    }

    /// A node's free port is not reserved: another process may take it (an outgoing
    /// connection's local port, say) before the node binds it, and the node exits. Then the
    /// node is started again on another port, up to four times; any other failure fails the
    /// test with `why`.
    async fn respawn_if_port_taken(&self, index: usize, failed: Node, mut why: String) -> Node {
        drop(failed);
        for _ in 0..4 {
            if !why.contains("Address already in use") {
                break;
            }
            let mut node = self.spawn_node(index);
            match wait_ready(&mut node).await {
                Ok(()) => return node,
                Err(again) => why = again,
            }
        }
        panic!("{why}");
    }

    /// A process like the nodes' (same database, data dir and NATS), not yet started: for
    /// tests of what a node refuses.
    pub fn command(&self, node_id: &str, listen: SocketAddr) -> Command {
        // `BOARDROOM_TEST_BIN` may name a copy: a target dir shared by several work trees holds
        // the binary of whichever built last.
        let binary = std::env::var("BOARDROOM_TEST_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_boardroom").to_owned());
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &self.database.url)
            .env("BOARDROOM_DATA_DIR", self.database.dir.path())
            .env("BOARDROOM_LISTEN", listen.to_string())
            .env("BOARDROOM_NATS_URL", self.nats.url())
            .env("BOARDROOM_NODE_ID", node_id)
            .env("BOARDROOM_LEASE_SECS", self.settings.lease_secs.to_string())
            .env("BOARDROOM_JWT_SECRET", "test-secret-test-secret-test-secret-0123")
            .env("BOARDROOM_REGISTER_LIMIT", "10000")
            .env("BOARDROOM_WS_AUTH_RECHECK_SECS", "1")
            .env("BOARDROOM_SHUTDOWN_GRACE_SECS", "5")
            .env("BOARDROOM_PLAN_FREE", "boards=unlimited,members=unlimited,api_keys=unlimited,webhooks=unlimited,storage=unlimited")
            .env("BOARDROOM_LOG", "warn,boardroom=info");
        for (name, value) in &self.settings.env {
            command.env(name, value);
        }
        command
    }

    fn spawn_node(&self, index: usize) -> Node {
        let id = format!("node-{index}");
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let log = self.database.dir.path().join(format!("{id}.log"));
        let out = std::fs::File::create(&log).expect("node log");
        let err = out.try_clone().expect("node log");
        let child = self
            .command(&id, addr)
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("start a node");
        Node { id, child: Some(child), api: Api::at(addr), log }
    }

    /// Runs `command` (from [`Cluster::command`]) expecting it to exit by itself within 30 s;
    /// answers whether it succeeded and everything it printed.
    pub fn run_to_exit(mut command: Command) -> (bool, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.log");
        let out = std::fs::File::create(&path).expect("output file");
        let err = out.try_clone().expect("output file");
        let mut child =
            command.stdout(Stdio::from(out)).stderr(Stdio::from(err)).spawn().expect("spawn");
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("it did not exit: {}", std::fs::read_to_string(&path).unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        (status.success(), std::fs::read_to_string(&path).unwrap_or_default())
    }

    /// Node `i`.
    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[i]
    }

    /// The database's URL, for reading it behind the nodes' backs.
    pub fn database_url(&self) -> &str {
        &self.database.url
    }
}

/// Waits until `node` answers `/readyz` 200, at most a minute; otherwise why not, with the
/// tail of its log.
async fn wait_ready(node: &mut Node) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = reqwest::get(format!("http://{}/readyz", node.addr()))
            .await
            .is_ok_and(|r| r.status() == 200);
        // Exited, it was not it that answered (another process may hold its port).
        if ready && node.is_running() {
            return Ok(());
        }
        if Instant::now() > deadline || !node.is_running() {
            return Err(format!(
                "node {} did not become ready; its log ends:\n{}",
                node.id,
                node.log_tail()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
