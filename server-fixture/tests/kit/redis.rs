//! A real `redis-server` for backplane tests: a child process on a loopback port, killed when
//! dropped. Shared by the fixture's backplane tests (through `kit`) and the native client's
//! (`client-native/tests/backplane_reconnect.rs` includes this file by path).
#![allow(dead_code, unreachable_pub)]

use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// A `redis-server` child on a loopback port; killed when dropped.
pub struct Redis {
    child: tokio::process::Child,
    port: u16,
}

impl Redis {
    /// Starts one on a free port, or `None` (with a message) if redis-server is not installed.
    ///
    /// Under CI (`CI` set, as `.ci/run` does) a missing server fails the test instead: the test
    /// command installs it, so a skip there would hide that the backplane went untested.
    pub async fn start() -> Option<Redis> {
        let installed = std::process::Command::new("redis-server")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !installed {
            let why = "redis-server is not installed (scripts/redis-setup.sh installs it)";
            let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
            assert!(!ci, "{why}; under CI the backplane tests must run");
            eprintln!("SKIPPED: {why}");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Some(Redis::on_port(port).await)
    }

    /// Starts one on `port` and waits until it accepts connections.
    pub async fn on_port(port: u16) -> Redis {
        let mut child = tokio::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.contains("Ready to accept connections") {
                    return;
                }
            }
            panic!("redis-server ended before it was ready");
        };
        tokio::time::timeout(Duration::from_secs(10), ready)
            .await
            .expect("redis-server is ready within 10 s");
        // Keep reading its log so that the pipe never fills.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Redis { child, port }
    }

    /// Its `redis://` URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it at once (Redis lost); returns its port, to start another on it.
    pub async fn kill(mut self) -> u16 {
        self.child.kill().await.unwrap();
        self.port
    }
}
