//! The real `waiaas` binary as a test daemon: `init` a temporary data dir, `start` it on an ephemeral loopback
//! port, read the listening line, and drive it over HTTP. Stopping goes through `waiaas stop` (SIGTERM).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tempfile::TempDir;
use waiaas_client::Client;

use super::MASTER_PASSWORD;

/// The `waiaas` binary next to this test binary (`target/<profile>/waiaas`; `scripts/test` builds it).
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let path = profile_dir.join("waiaas");
    assert!(path.exists(), "{} is missing: run `cargo build --bins` first (scripts/test does)", path.display());
    path
}

/// Environment every test daemon gets: ephemeral port, cheap keystore KDF (tests only), no stray config.
fn base_env(command: &mut Command) {
    command
        .env_remove("WAIAAS_DATA_DIR")
        .env_remove("WAIAAS_MASTER_PASSWORD_FILE")
        .env("WAIAAS_DAEMON_PORT", "0")
        .env("WAIAAS_KEYSTORE_ARGON2_M_COST_KIB", "1024")
        .env("WAIAAS_KEYSTORE_ARGON2_T_COST", "1")
        .env("WAIAAS_KEYSTORE_ARGON2_P_COST", "1")
        .env("RUST_LOG", "info");
}

/// Runs one CLI command against `data_dir` to completion.
pub fn run_cli(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(binary());
    base_env(&mut command);
    command.arg("--data-dir").arg(data_dir).args(args).stdin(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run waiaas")
}

#[derive(Clone, Debug)]
pub struct DaemonOptions {
    pub password: String,
    /// `[rpc]` networks as (name, url).
    pub networks: Vec<(String, String)>,
    pub extra_env: Vec<(String, String)>,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        DaemonOptions {
            password: MASTER_PASSWORD.to_owned(),
            // A network whose node is not running: agents can be created; chain reads fail with CHAIN_ERROR.
            networks: vec![("anvil".to_owned(), "http://127.0.0.1:9".to_owned())],
            extra_env: Vec::new(),
        }
    }
}

/// A running daemon on its own temporary data dir.
pub struct Daemon {
    child: Option<Child>,
    pub url: String,
    pub options: DaemonOptions,
    data_dir: TempDir,
    stderr_log: PathBuf,
}

impl Daemon {
    pub fn start() -> Daemon {
        Daemon::start_with(DaemonOptions::default())
    }

    pub fn start_with(options: DaemonOptions) -> Daemon {
        let data_dir = tempfile::tempdir().expect("temp data dir");
        let init = run_cli(data_dir.path(), &["init"], &[]);
        assert!(init.status.success(), "waiaas init failed: {}", String::from_utf8_lossy(&init.stderr));
        Daemon::start_on(data_dir, options)
    }

    /// Starts a daemon on an existing data dir (e.g. one filled by `waiaas restore`).
    pub fn start_on(data_dir: TempDir, options: DaemonOptions) -> Daemon {
        let stderr_log = data_dir.path().join("test-daemon.stderr");
        let mut daemon = Daemon { child: None, url: String::new(), options, data_dir, stderr_log };
        daemon.spawn().unwrap_or_else(|log| panic!("daemon did not start:\n{log}"));
        daemon
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn command(&self) -> Command {
        let mut command = Command::new(binary());
        base_env(&mut command);
        command.arg("--data-dir").arg(self.data_dir.path()).arg("start");
        command.env("WAIAAS_MASTER_PASSWORD", &self.options.password);
        for (name, url) in &self.options.networks {
            command.env(format!("WAIAAS_RPC_EVM_{}", name.to_uppercase()), url);
        }
        for (key, value) in &self.options.extra_env {
            command.env(key, value);
        }
        command
    }

    /// Starts the process and waits for its listening line; on failure returns what it printed.
    fn spawn(&mut self) -> Result<(), String> {
        let stderr = std::fs::File::create(&self.stderr_log).expect("stderr log");
        let mut child = self
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn waiaas start");
        let stdout = child.stdout.take().expect("daemon stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("WAIaaS listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => {
                self.url = url;
                self.child = Some(child);
                Ok(())
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(self.stderr())
            }
        }
    }

    /// What the daemon wrote to stderr so far (its log).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// A client without credentials.
    pub fn client(&self) -> Client {
        Client::new(&self.url)
    }

    /// A client authenticated with the master password.
    pub fn admin(&self) -> Client {
        Client::new(&self.url).with_master_password(&self.options.password)
    }

    /// Stops the daemon with `waiaas stop` (SIGTERM, graceful) and waits for the process to exit.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let out = run_cli(self.data_dir.path(), &["stop"], &[]);
        assert!(out.status.success(), "waiaas stop failed: {}", String::from_utf8_lossy(&out.stderr));
        let status = child.wait().expect("wait for daemon");
        assert!(status.success(), "daemon exited with {status}; log:\n{}", self.stderr());
    }

    /// Kills the daemon with SIGKILL (no shutdown of any kind) and starts it again on the same data dir.
    pub fn kill_and_restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL the daemon");
            let _ = child.wait();
        }
        self.spawn().unwrap_or_else(|log| panic!("daemon did not restart after SIGKILL:\n{log}"));
    }

    /// Starts the daemon again after [`Daemon::stop`] (offline commands may run on the data dir in between).
    pub fn start_again(&mut self) {
        self.spawn().unwrap_or_else(|log| panic!("daemon did not start again:\n{log}"));
    }

    /// Stops and starts the daemon again on the same data dir.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn().unwrap_or_else(|log| panic!("daemon did not restart:\n{log}"));
    }

    /// Starts a second `waiaas start` on this data dir and returns how it ended (it must not stay up).
    pub fn start_another(&self, extra_env: &[(&str, &str)]) -> Output {
        let mut command = self.command();
        for (key, value) in extra_env {
            command.env(key, value);
        }
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = command.spawn().expect("spawn second daemon");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        rx.recv_timeout(Duration::from_secs(60))
            .expect("the second daemon stayed up on a data dir that is already in use")
            .expect("second daemon output")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
