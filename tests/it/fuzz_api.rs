//! schemathesis against a real daemon on a real anvil (`scripts/fuzz-api`, `--checks all`): every check passes,
//! and the fuzzer's positive paths reach creation, read back from the audit log (agents, policies, sessions,
//! sends, the kill switch) and the backup dir. The stateful phase follows the document's links.

use std::path::Path;
use std::process::Command;

use waiaas_client::types::{AuditLogFilter, CreateAgent, CreateSession};

use crate::support::{Anvil, Daemon, DaemonOptions, MASTER_PASSWORD, ONE_ETH};

#[test]
fn schemathesis_finds_no_failure_and_reaches_creation() {
    let anvil = Anvil::start();
    let daemon = Daemon::start_with(DaemonOptions {
        networks: vec![("anvil".into(), anvil.url.clone())],
        extra_env: vec![
            // schemathesis sends wrong and missing passwords on purpose; the limiter would then lock it out.
            ("WAIAAS_SECURITY_MASTER_AUTH_MAX_FAILURES".into(), "1000000000".into()),
            ("WAIAAS_PIPELINE_WORKER_INTERVAL_MS".into(), "100".into()),
        ],
        ..Default::default()
    });
    let admin = daemon.admin();
    let funded = admin.create_agent(&CreateAgent::ethereum("fuzz-funded", "anvil")).expect("agent");
    let policies = admin.create_agent(&CreateAgent::ethereum("fuzz-policies", "anvil")).expect("agent");
    anvil.fund(&funded.address, 1000 * ONE_ETH);
    let token = admin.create_session(&CreateSession::for_agent(&funded.id)).expect("session").token;
    let backups = tempfile::tempdir().expect("backup dir");
    // Any absolute dir is a valid `outputDir`: the hooks send every backup to `backups`, never to `/`.
    let archives_in_root = || -> Vec<std::path::PathBuf> {
        let entries = std::fs::read_dir("/").expect("list /").filter_map(Result::ok).map(|e| e.path());
        entries.filter(|p| p.to_string_lossy().ends_with(".waiaas-backup")).collect()
    };
    let in_root_before = archives_in_root();

    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = Command::new(workspace.join("scripts/fuzz-api"))
        .arg(&daemon.url)
        .env("WAIAAS_FUZZ_MASTER_PASSWORD", MASTER_PASSWORD)
        .env("WAIAAS_FUZZ_SESSION_TOKEN", &token)
        .env("WAIAAS_FUZZ_NETWORK", "anvil")
        .env("WAIAAS_FUZZ_AGENT_ID", &funded.id)
        .env("WAIAAS_FUZZ_POLICY_AGENT_ID", &policies.id)
        .env("WAIAAS_FUZZ_BACKUP_DIR", backups.path())
        .output()
        .expect("run scripts/fuzz-api");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "schemathesis failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("schemathesis: no failure"), "{stdout}\n{stderr}");

    let count = |event: &str, agent: Option<&str>| {
        let filter = AuditLogFilter {
            event_types: vec![event.to_owned()],
            agent_id: agent.map(str::to_owned),
            limit: Some(200),
            ..Default::default()
        };
        admin.audit_logs(&filter).expect("audit logs").data.len()
    };
    // Two agents and one session were made above; the rest is the fuzzer's.
    assert!(count("AGENT_CREATED", None) > 2, "the fuzzer created no agent");
    assert!(count("SESSION_CREATED", Some(&funded.id)) > 1, "the fuzzer issued no session");
    assert!(count("POLICY_CREATED", Some(&policies.id)) > 0, "the fuzzer created no policy");
    assert!(count("TX_REQUESTED", Some(&funded.id)) > 0, "the fuzzer's sends were all refused");
    assert!(count("KILL_SWITCH_ACTIVATED", None) > 0, "the fuzzer never tripped the kill switch");
    let archives = std::fs::read_dir(backups.path()).expect("backup dir").count();
    assert!(archives > 0, "the fuzzer made no backup");
    assert_eq!(archives_in_root(), in_root_before, "a fuzzed backup was written outside the test's dir");
}
