//! The `waiaas` binary through its front door: a real daemon process on a temporary data dir and port 0, driven
//! by the subcommands and by `waiaas-client`. Checks the process contract the end-to-end tests and operators rely
//! on: the one "listening" line, exit codes, one daemon per data dir, a wrong password changing nothing, clean
//! shutdown on `waiaas stop`.
//!
//! No sleeps: the test waits for the "listening" line on the child's stdout and for the child's exit.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};

use waiaas_client::{AuditLogFilter, Client, ClientError, CreateAgent, CreateSession, ListParams};

const PASSWORD: &str = "correct horse battery staple";

/// The environment of every child: nothing inherited but `PATH`, weak (fast) keystore KDF parameters.
fn command(data_dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_waiaas"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("WAIAAS_KEYSTORE_ARGON2_M_COST_KIB", "1024")
        .env("WAIAAS_KEYSTORE_ARGON2_T_COST", "1")
        .env("WAIAAS_KEYSTORE_ARGON2_P_COST", "1")
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .stdin(Stdio::null());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}

#[track_caller]
fn run(data_dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Output {
    command(data_dir, args, vars).output().expect("run waiaas")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A daemon child: its stdout reader (after the listening line) and the file collecting its stderr.
struct Daemon {
    child: Child,
    stdout: BufReader<ChildStdout>,
    stderr_path: PathBuf,
    url: String,
}

impl Daemon {
    fn start(data_dir: &Path, log_dir: &Path) -> Daemon {
        let stderr_path = log_dir.join("daemon.stderr");
        let stderr = File::create(&stderr_path).unwrap();
        let mut child =
            command(data_dir, &["start"], &[("WAIAAS_MASTER_PASSWORD", PASSWORD), ("WAIAAS_DAEMON_PORT", "0")])
                .stdout(Stdio::piped())
                .stderr(stderr)
                .spawn()
                .expect("spawn daemon");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let url = line
            .trim_end()
            .strip_prefix("WAIaaS listening on ")
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("unexpected first line {line:?}; stderr: {}", std::fs::read_to_string(&stderr_path).unwrap())
            })
            .to_owned();
        Daemon { child, stdout, stderr_path, url }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Only reached with a live child when an assertion failed.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn daemon_lifecycle_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    // Not created yet: `start` runs `init` implicitly.
    let data_dir = tmp.path().join("waiaas-home");
    let mut daemon = Daemon::start(&data_dir, tmp.path());
    assert!(daemon.url.starts_with("http://127.0.0.1:"), "{}", daemon.url);
    assert!(data_dir.join("config.toml").is_file());

    // The pid file names the daemon and its URL.
    let pid_file = std::fs::read_to_string(data_dir.join("daemon.pid")).unwrap();
    let mut lines = pid_file.lines();
    assert_eq!(lines.next(), Some(daemon.child.id().to_string().as_str()));
    assert_eq!(lines.next(), Some(daemon.url.as_str()));

    let public = Client::new(&daemon.url);
    let health = public.health().unwrap();
    assert_eq!(health.status, "ok");
    assert_eq!(health.version, env!("CARGO_PKG_VERSION"));
    assert!(health.schema_version >= 1);

    // One daemon per data dir.
    let second = run(&data_dir, &["start"], &[("WAIAAS_MASTER_PASSWORD", PASSWORD), ("WAIAAS_DAEMON_PORT", "0")]);
    assert_eq!(second.status.code(), Some(4), "{}", text(&second.stderr));
    assert!(text(&second.stderr).contains("already running"), "{}", text(&second.stderr));
    assert!(second.stdout.is_empty());

    let status = run(&data_dir, &["status"], &[]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status.stderr));
    let shown = text(&status.stdout);
    assert!(shown.contains(&format!("waiaas is running (pid {}) at {}", daemon.child.id(), daemon.url)), "{shown}");
    assert!(shown.contains(&format!("schema version: {}", health.schema_version)), "{shown}");
    assert!(shown.contains("kill switch:    ACTIVE"), "{shown}");

    // The client against the real daemon: typed calls, typed errors, the raw escape hatch.
    let admin = Client::new(&daemon.url).with_master_password(PASSWORD);
    let agent = admin.create_agent(&CreateAgent::ethereum("lifecycle-bot", "anvil")).unwrap();
    assert_eq!((agent.status.as_str(), agent.network.as_str()), ("ACTIVE", "anvil"));
    let listed = admin.list_agents(&ListParams::default()).unwrap();
    assert_eq!(listed.data.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), [agent.id.as_str()]);
    assert!(!listed.has_more);
    let issued = admin.create_session(&CreateSession::for_agent(&agent.id)).unwrap();
    assert!(issued.token.starts_with("wai_sess_"));
    let bot = Client::new(&daemon.url).with_session_token(&issued.token);
    assert_eq!(bot.wallet_address().unwrap().address, agent.address);

    match Client::new(&daemon.url).with_master_password("wrong").list_agents(&ListParams::default()) {
        Err(ClientError::Api { status, code, request_id, .. }) => {
            assert_eq!((status, code.as_str()), (401, "INVALID_MASTER_PASSWORD"));
            assert!(request_id.is_some());
        }
        other => panic!("expected INVALID_MASTER_PASSWORD, got {other:?}"),
    }
    let audit = admin
        .audit_logs(&AuditLogFilter {
            agent_id: Some(agent.id.clone()),
            event_types: vec!["AGENT_CREATED".into()],
            ..AuditLogFilter::default()
        })
        .unwrap();
    assert_eq!(audit.data.len(), 1);
    assert_eq!(audit.data[0].event_type, "AGENT_CREATED");
    let (status, _, body) = admin
        .request_raw(
            "POST",
            "/v1/agents",
            &[("X-Master-Password", PASSWORD), ("Content-Type", "application/json")],
            Some(b"{not json"),
        )
        .unwrap();
    assert_eq!(status, 400, "{}", text(&body));

    // Events are logged by type only.
    let log = daemon.stderr();
    assert!(log.contains("AGENT_CREATED"), "{log}");
    assert!(!log.contains(PASSWORD) && !log.contains(&issued.token), "a secret reached the log");

    let stop = run(&data_dir, &["stop"], &[]);
    assert_eq!(stop.status.code(), Some(0), "{}", text(&stop.stderr));
    assert!(text(&stop.stdout).contains("waiaas stopped"));
    let exit = daemon.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}: {}", daemon.stderr());
    let mut rest = String::new();
    daemon.stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "", "stdout holds only the listening line");

    let status = run(&data_dir, &["status"], &[]);
    assert_eq!(status.status.code(), Some(3));
    let stop = run(&data_dir, &["stop"], &[]);
    assert_eq!(stop.status.code(), Some(0));
    assert!(text(&stop.stdout).contains("not running"));
}

#[test]
fn startup_errors_exit_with_their_kind_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("home");
    // First start stores the password hash.
    let daemon = Daemon::start(&data_dir, tmp.path());
    assert_eq!(run(&data_dir, &["stop"], &[]).status.code(), Some(0));
    drop(daemon);
    let db = std::fs::read(data_dir.join("data/waiaas.db")).unwrap();

    let wrong = run(&data_dir, &["start"], &[("WAIAAS_MASTER_PASSWORD", "not it"), ("WAIAAS_DAEMON_PORT", "0")]);
    assert_eq!(wrong.status.code(), Some(5), "wrong password");
    assert!(text(&wrong.stderr).contains("the master password does not match"), "{}", text(&wrong.stderr));
    assert!(wrong.stdout.is_empty());
    assert_eq!(std::fs::read(data_dir.join("data/waiaas.db")).unwrap(), db, "a wrong password changed the database");

    let typo = run(&data_dir, &["start"], &[("WAIAAS_MASTER_PASSWORD", PASSWORD), ("WAIAAS_DAEMON_PROT", "0")]);
    assert_eq!(typo.status.code(), Some(7), "bad config");
    assert!(
        text(&typo.stderr).contains(r#"WAIAAS_DAEMON_PROT: unknown key "prot" in [daemon]"#),
        "{}",
        text(&typo.stderr)
    );

    let no_password = run(&data_dir, &["start"], &[("WAIAAS_DAEMON_PORT", "0")]);
    assert_eq!(no_password.status.code(), Some(1));
    assert!(text(&no_password.stderr).contains("no master password"), "{}", text(&no_password.stderr));

    std::fs::write(data_dir.join("config.toml"), "[daemon]\nport = \"3100\"\n").unwrap();
    let bad_type = run(&data_dir, &["start"], &[("WAIAAS_MASTER_PASSWORD", PASSWORD)]);
    assert_eq!(bad_type.status.code(), Some(7), "bad config");
    assert!(text(&bad_type.stderr).contains("[daemon] port: expected an integer"), "{}", text(&bad_type.stderr));
}

#[test]
fn init_is_idempotent_and_openapi_prints_the_document() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("fresh");
    let first = run(&data_dir, &["init"], &[]);
    assert_eq!(first.status.code(), Some(0));
    assert!(text(&first.stdout).contains("wrote"));
    std::fs::write(data_dir.join("config.toml"), "# mine\n").unwrap();
    let second = run(&data_dir, &["init"], &[]);
    assert_eq!(second.status.code(), Some(0));
    assert!(text(&second.stdout).contains("left unchanged"));
    assert_eq!(std::fs::read_to_string(data_dir.join("config.toml")).unwrap(), "# mine\n");

    let openapi = run(&data_dir, &["openapi"], &[]);
    assert_eq!(openapi.status.code(), Some(0));
    let document: serde_json::Value = serde_json::from_slice(&openapi.stdout).unwrap();
    assert!(document["paths"]["/health"].is_object());
}
