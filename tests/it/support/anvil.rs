//! A real anvil EVM node on a free loopback port, from the npm package pinned in `tests/evm/package.json`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct Anvil {
    child: Child,
    pub url: String,
}

fn binary() -> PathBuf {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("evm/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
    assert!(path.exists(), "anvil is not installed: run `npm ci --prefix tests/evm` (scripts/test does)");
    path
}

impl Anvil {
    pub fn start() -> Anvil {
        Anvil::start_on(0)
    }

    /// A node on `port` (0: any free port), e.g. to bring a stopped node back where the daemon expects it.
    pub fn start_on(port: u16) -> Anvil {
        Anvil::spawn(&["--port", &port.to_string()])
    }

    /// A node that reports `chain_id` (e.g. 137 to stand for Polygon), on any free port.
    pub fn with_chain_id(chain_id: u64) -> Anvil {
        Anvil::spawn(&["--port", "0", "--chain-id", &chain_id.to_string()])
    }

    /// A node started with extra arguments (e.g. `--state <file>` to keep its chain across a restart), on `port`.
    pub fn start_with(port: u16, args: &[&str]) -> Anvil {
        let port = port.to_string();
        let mut all = vec!["--port", port.as_str()];
        all.extend_from_slice(args);
        Anvil::spawn(&all)
    }

    fn spawn(args: &[&str]) -> Anvil {
        let mut child = Command::new(binary())
            .args(["--host", "127.0.0.1"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn anvil");
        // The banner ends with `Listening on 127.0.0.1:<port>`; keep draining stdout afterwards so anvil never
        // blocks on a full pipe.
        let stdout = child.stdout.take().expect("anvil stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(address) = line.strip_prefix("Listening on ") {
                    let _ = tx.send(address.trim().to_owned());
                }
            }
        });
        let address = rx.recv_timeout(Duration::from_secs(30)).expect("anvil did not report its listening address");
        Anvil { child, url: format!("http://{address}") }
    }

    pub fn port(&self) -> u16 {
        self.url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("anvil port")
    }

    /// One JSON-RPC call; panics on an RPC error.
    pub fn rpc(&self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let mut response = ureq::post(&self.url).send_json(&body).expect("anvil rpc");
        let value: serde_json::Value = response.body_mut().read_json().expect("anvil json");
        assert!(value.get("error").is_none(), "{method} failed: {value}");
        value["result"].clone()
    }

    /// Stops the node with SIGTERM and waits for it: a node started with `--state` writes its chain out first.
    pub fn terminate(&mut self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("run kill");
        assert!(status.success(), "kill -TERM anvil");
        let _ = self.child.wait();
    }

    /// Stops the node (e.g. to see how the daemon copes with a dead chain).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        self.stop();
    }
}
