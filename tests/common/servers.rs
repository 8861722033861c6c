//! Brokers of a test's own: a real `nats-server` or `mosquitto` process on free loopback ports,
//! which the test may inspect (NATS monitoring, MQTT `$SYS`) and restart without disturbing
//! other tests. Outside CI a machine without the binary skips with a loud line; in CI it fails.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{wait_for, PATIENCE};

/// True when `binary` runs here.
pub fn binary_available(binary: &str) -> bool {
    let found = Command::new(binary).arg("--help").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
    if !found {
        assert!(std::env::var_os("CI").is_none(), "{binary} is required in CI; .ci/run installs it");
        eprintln!("SKIPPED: this test needs {binary} (apt install nats-server mosquitto)");
    }
    found
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn answering(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

async fn wait_answering(port: u16, what: &str) {
    let up = wait_for(PATIENCE, || async move { answering(port) }).await;
    assert!(up, "{what} did not start on port {port}");
}

fn scratch(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(super::unique(prefix));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// A `nats-server` with JetStream (its store in a scratch directory) and monitoring.
pub struct NatsServer {
    pub port: u16,
    pub monitor: u16,
    store: PathBuf,
    child: Option<Child>,
}

impl NatsServer {
    pub async fn start() -> Self {
        let mut server = NatsServer { port: free_port(), monitor: free_port(), store: scratch("nats"), child: None };
        server.spawn().await;
        server
    }

    async fn spawn(&mut self) {
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-m", &self.monitor.to_string(), "-js", "-sd"])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        wait_answering(self.port, "nats-server").await;
        wait_answering(self.monitor, "nats-server monitoring").await;
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server outright (no goodbye to its clients) and starts it again on the same
    /// ports with the same store.
    pub async fn restart(&mut self) {
        self.kill();
        let gone = wait_for(PATIENCE, || async { !answering(self.port) }).await;
        assert!(gone, "nats-server did not stop");
        self.spawn().await;
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Subscriptions the server holds for connections whose name starts with `prefix`, by subject.
    pub async fn subscriptions(&self, prefix: &str) -> Vec<String> {
        let url = format!("http://127.0.0.1:{}/connz?subs=1", self.monitor);
        let connz: Value = reqwest::get(url).await.expect("connz").json().await.expect("connz JSON");
        let mut subjects = Vec::new();
        for connection in connz["connections"].as_array().into_iter().flatten() {
            if connection["name"].as_str().is_some_and(|name| name.starts_with(prefix)) {
                for subject in connection["subscriptions_list"].as_array().into_iter().flatten() {
                    subjects.push(subject.as_str().unwrap_or_default().to_owned());
                }
            }
        }
        subjects.sort();
        subjects
    }

    /// Waits until the hub's connections hold exactly these subscriptions (the inboxes of
    /// JetStream consumers included, as `_INBOX.…`).
    pub async fn wait_subscriptions(&self, prefix: &str, want: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let subscriptions = self.subscriptions(prefix).await;
            if want(&subscriptions) {
                return subscriptions;
            }
            assert!(std::time::Instant::now() < deadline, "the server holds {subscriptions:?} for {prefix}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// A `mosquitto` on its own port, publishing `$SYS` figures every second.
pub struct Mosquitto {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Mosquitto {
    pub async fn start() -> Self {
        let mut server = Mosquitto { port: free_port(), dir: scratch("mosquitto"), child: None };
        server.spawn().await;
        server
    }

    async fn spawn(&mut self) {
        let config = self.dir.join("mosquitto.conf");
        let text =
            format!("listener {} 127.0.0.1\nallow_anonymous true\nsys_interval 1\npersistence false\n", self.port);
        std::fs::write(&config, text).expect("mosquitto.conf");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        wait_answering(self.port, "mosquitto").await;
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    pub async fn restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let gone = wait_for(PATIENCE, || async { !answering(self.port) }).await;
        assert!(gone, "mosquitto did not stop");
        self.spawn().await;
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How long a broker's own figures may take to follow (mosquitto's `$SYS` comes every second).
pub const BROKER_FIGURES: Duration = Duration::from_secs(15);
