//! OPS-03 acceptance with the real binary: T-06 (archive written, nothing readable in it), T-07 (restore into a
//! fresh data dir → same agents, policies, audit rows, and the restored key signs a real transfer on anvil),
//! T-08 (wrong password → refused, data dir byte-identical), S-02 (inspect shows only the header; a wrong password
//! cannot decrypt the archive the right one verifies), S-03 (tampering anywhere → refused, data dir
//! byte-identical), both KDFs, `--output` modes, an interrupted swap rolled back, the schedule with retention, and
//! the committed v1 fixture that must keep restoring.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::json;
use sha2::{Digest, Sha256};
use waiaas_client::types::{AuditLogFilter, CreateAgent, CreatePolicy, CreateSession, ListParams, PolicyFilter};
use waiaas_client::{BackupKdf, Client};

use crate::support::{Anvil, Daemon, DaemonOptions, MASTER_PASSWORD, eventually, run_cli};

const RECIPIENT: &str = "0x1111111111111111111111111111111111111111";
const ONE_ETH: u128 = 1_000_000_000_000_000_000;
/// Header length of format v1 (see docs/backup-format.md).
const HEADER_LEN: usize = 65;
const CHUNK: usize = 64 * 1024 + 16;

fn pw() -> [(&'static str, &'static str); 1] {
    [("WAIAAS_MASTER_PASSWORD", MASTER_PASSWORD)]
}

#[track_caller]
fn ok(out: &Output) -> String {
    assert!(out.status.success(), "command failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// SHA-256 of every file under `root` (the test daemon's own log excluded), by relative path.
fn tree(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            if path.is_dir() {
                out.insert(format!("{rel}/"), String::new());
                walk(root, &path, out);
            } else if rel != "test-daemon.stderr" {
                out.insert(rel, hex::encode(Sha256::digest(std::fs::read(&path).unwrap())));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// A daemon on anvil with one funded agent, a policy and a confirmed transfer (so audit rows and a tx exist).
struct Source {
    anvil: Anvil,
    daemon: Daemon,
    agent_id: String,
    address: String,
}

fn source() -> Source {
    let anvil = Anvil::start();
    let daemon =
        Daemon::start_with(DaemonOptions { networks: vec![("anvil".into(), anvil.url.clone())], ..Default::default() });
    let admin = daemon.admin();
    let agent = admin.create_agent(&CreateAgent::ethereum("backup-agent", "anvil")).expect("agent");
    anvil.fund(&agent.address, 10 * ONE_ETH);
    admin
        .create_policy(&CreatePolicy {
            agent_id: Some(agent.id.clone()),
            policy_type: "SPENDING_LIMIT".into(),
            rules: json!({"instant_max": "1000000", "notify_max": "2000000", "delay_max": "3000000", "delay_seconds": 60}),
            enabled: None,
        })
        .expect("policy");
    let agent_client = session(&daemon, &agent.id);
    transfer_confirms(&agent_client, 1234);
    Source { anvil, daemon, agent_id: agent.id, address: agent.address }
}

fn session(daemon: &Daemon, agent_id: &str) -> Client {
    let token = daemon.admin().create_session(&CreateSession::for_agent(agent_id)).expect("session").token;
    daemon.client().with_session_token(&token)
}

fn transfer_confirms(agent: &Client, amount: u128) -> String {
    let sent = agent
        .send_transaction_raw(&json!({"type": "TRANSFER", "to": RECIPIENT, "amount": amount.to_string()}))
        .expect("send");
    let done = eventually(30, "a final status", || {
        let t = agent.get_transaction(&sent.id).expect("get");
        matches!(t.status.as_str(), "CONFIRMED" | "FAILED" | "CANCELLED" | "EXPIRED").then_some(t)
    });
    assert_eq!(done.status, "CONFIRMED", "{done:?}");
    sent.id
}

fn everything(admin: &Client) -> (Vec<String>, Vec<String>, Vec<String>) {
    let agents = admin.list_agents(&ListParams { limit: Some(200), ..Default::default() }).unwrap().data;
    let policies = admin.list_policies(&PolicyFilter { limit: Some(200), ..Default::default() }).unwrap().data;
    let audit = admin.audit_logs(&AuditLogFilter { limit: Some(200), ..Default::default() }).unwrap().data;
    (
        agents.iter().map(|a| format!("{a:?}")).collect(),
        policies.iter().map(|p| format!("{p:?}")).collect(),
        audit.iter().map(|r| format!("{r:?}")).collect(),
    )
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// T-06, T-07, S-02: an online backup while the daemon runs, restored into a fresh data dir; the restored
/// daemon holds the same data and its key still signs a real transfer.
#[test]
fn t06_t07_s02_online_backup_restores_into_a_fresh_data_dir_and_the_key_still_signs() {
    let mut src = source();
    let before = everything(&src.daemon.admin());
    let out = ok(&run_cli(src.daemon.data_dir(), &["backup"], &pw()));
    let archive = PathBuf::from(out.trim());
    assert!(archive.starts_with(src.daemon.data_dir().join("backups")), "{}", archive.display());
    assert!(archive.to_string_lossy().ends_with(".waiaas-backup"));
    // BACKUP_CREATED is audited and the list shows the archive.
    let listed = src.daemon.admin().list_backups().expect("list backups");
    assert_eq!(listed.data.len(), 1);
    assert_eq!(Path::new(&listed.data[0].path), archive);
    assert!(listed.last_success_at.is_some());
    let audit = src.daemon.admin().audit_logs(&AuditLogFilter { limit: Some(1), ..Default::default() }).unwrap();
    assert_eq!(audit.data[0].event_type, "BACKUP_CREATED");

    // T-06: nothing of the DB, the keys, the agent or the config is readable in the file.
    let bytes = std::fs::read(&archive).unwrap();
    let address_hex = src.address.trim_start_matches("0x").to_lowercase();
    let keystore_file = std::fs::read_dir(src.daemon.data_dir().join("keystore")).unwrap().next().unwrap().unwrap();
    let keystore = std::fs::read(keystore_file.path()).unwrap();
    let config = std::fs::read(src.daemon.data_dir().join("config.toml")).unwrap();
    for needle in [
        src.agent_id.as_bytes(),
        src.address.as_bytes(),
        address_hex.as_bytes(),
        b"SQLite format 3",
        b"backup-agent",
        b"SPENDING_LIMIT",
        b"ciphertext",
        b"keystore/",
        &keystore[..40],
        &config[..40],
    ] {
        assert!(!contains(&bytes, needle), "{:?} readable in the archive", String::from_utf8_lossy(needle));
    }

    // S-02: inspect needs no password and shows the header only.
    let shown = ok(&run_cli(src.daemon.data_dir(), &["backup", "inspect", archive.to_str().unwrap()], &[]));
    assert!(shown.contains("argon2id") && shown.contains("m=65536 KiB, t=3, p=4"), "{shown}");
    assert!(!shown.contains(&src.agent_id) && !shown.contains("keystore/"), "{shown}");
    // ... the content opens only with the password: a wrong one fails to decrypt the very file that the right one
    // then verifies.
    let verify = |password: &str| {
        run_cli(
            src.daemon.data_dir(),
            &["backup", "verify", archive.to_str().unwrap()],
            &[("WAIAAS_MASTER_PASSWORD", password)],
        )
    };
    let wrong = verify("not the master password");
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(!wrong.status.success(), "a wrong password verified the archive");
    assert!(err.contains("BACKUP_CORRUPTED") && err.contains("wrong password"), "{err}");
    let verified = ok(&verify(MASTER_PASSWORD));
    assert!(verified.starts_with("ok: "), "{verified}");

    // T-07: restore into a fresh data dir, start a daemon there.
    src.daemon.stop();
    let fresh = tempfile::tempdir().unwrap();
    let restored_out = run_cli(fresh.path(), &["restore", "--from", archive.to_str().unwrap()], &pw());
    ok(&restored_out);
    let restored = Daemon::start_on(
        fresh,
        DaemonOptions { networks: vec![("anvil".into(), src.anvil.url.clone())], ..Default::default() },
    );
    let after = everything(&restored.admin());
    assert_eq!(after.0, before.0, "agents");
    assert_eq!(after.1, before.1, "policies");
    // Every row present before the backup is there, identical (the archive was taken before BACKUP_CREATED).
    assert_eq!(&after.2[after.2.len() - before.2.len()..], &before.2[..], "audit rows");
    // The keystore key still signs: a new session and a real transfer from the same address.
    let agent = session(&restored, &src.agent_id);
    assert_eq!(agent.wallet_address().unwrap().address.to_lowercase(), src.address.to_lowercase());
    let nonce_before = src.anvil.nonce(&src.address);
    transfer_confirms(&agent, 777);
    assert_eq!(src.anvil.nonce(&src.address), nonce_before + 1);
}

/// T-08 and S-03: a wrong password, and an archive tampered anywhere, are refused by `verify` and `restore`
/// with the right code, and the data dir stays byte-identical.
#[test]
fn t08_s03_wrong_password_and_tampering_are_refused_and_change_nothing() {
    let mut daemon = Daemon::start();
    daemon.admin().create_agent(&CreateAgent::ethereum("a", "anvil")).expect("agent");
    let archive = PathBuf::from(ok(&run_cli(daemon.data_dir(), &["backup"], &pw())).trim());
    daemon.stop();
    let dir = daemon.data_dir().to_owned();
    let original = tree(&dir);
    let bytes = std::fs::read(&archive).unwrap();
    let work = tempfile::tempdir().unwrap();

    let restore = |file: &Path, password: &str| {
        run_cli(
            &dir,
            &["restore", "--force", "--from", file.to_str().unwrap()],
            &[("WAIAAS_MASTER_PASSWORD", password)],
        )
    };
    // T-08: wrong password.
    let out = restore(&archive, "not the password");
    assert_eq!(out.status.code(), Some(6), "bad archive (an AEAD cannot tell a wrong password from tampering)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("BACKUP_CORRUPTED") && err.contains("wrong password"), "{err}");
    assert_eq!(tree(&dir), original, "a wrong password changed the data dir");

    // S-03: each tampering, refused by verify and restore.
    let chunks = (bytes.len() - HEADER_LEN).div_ceil(CHUNK);
    assert!(chunks >= 2, "the test needs a multi-chunk archive ({} bytes)", bytes.len());
    let mut cases: Vec<(String, Vec<u8>, &str)> = Vec::new();
    let flip = |at: usize| {
        let mut t = bytes.clone();
        t[at] ^= 0x01;
        t
    };
    cases.push(("magic".into(), flip(0), "INVALID_BACKUP_FORMAT"));
    cases.push(("salt in the header".into(), flip(30), "BACKUP_CORRUPTED"));
    cases.push(("manifest (first record)".into(), flip(HEADER_LEN + 2), "BACKUP_CORRUPTED"));
    for c in 0..chunks {
        let at = (HEADER_LEN + c * CHUNK + 100).min(bytes.len() - 1);
        cases.push((format!("chunk {c}"), flip(at), "BACKUP_CORRUPTED"));
    }
    cases.push(("truncated at a chunk boundary".into(), bytes[..HEADER_LEN + CHUNK].to_vec(), "BACKUP_CORRUPTED"));
    cases.push(("truncated by one byte".into(), bytes[..bytes.len() - 1].to_vec(), "BACKUP_CORRUPTED"));
    let mut appended = bytes.clone();
    appended.extend_from_slice(b"extra");
    cases.push(("appended data".into(), appended, "BACKUP_CORRUPTED"));
    if chunks >= 3 {
        let mut swapped = bytes.clone();
        let (a, b) = (HEADER_LEN, HEADER_LEN + CHUNK);
        let first = bytes[a..a + CHUNK].to_vec();
        swapped.copy_within(b..b + CHUNK, a);
        swapped[b..b + CHUNK].copy_from_slice(&first);
        cases.push(("two chunks reordered".into(), swapped, "BACKUP_CORRUPTED"));
    }
    for (name, tampered, code) in cases {
        let file = work.path().join("tampered.waiaas-backup");
        std::fs::write(&file, &tampered).unwrap();
        let verify = run_cli(&dir, &["backup", "verify", file.to_str().unwrap()], &pw());
        let err = String::from_utf8_lossy(&verify.stderr);
        assert!(verify.status.code() == Some(6) && err.contains(code), "{name}: verify said {err}");
        let out = restore(&file, MASTER_PASSWORD);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.code() == Some(6) && err.contains(code), "{name}: restore said {err}");
        assert_eq!(tree(&dir), original, "{name}: the data dir changed");
    }
    // The untampered archive verifies.
    let verified = ok(&run_cli(&dir, &["backup", "verify", archive.to_str().unwrap()], &pw()));
    assert!(verified.starts_with("ok: "), "{verified}");
}

/// Both KDFs round-trip offline: `--kdf pbkdf2` on a stopped daemon, restored with the same password over the
/// existing data (`--force`), which is kept as a safety copy.
#[test]
fn both_kdfs_round_trip_offline_and_restore_keeps_a_safety_copy() {
    let mut daemon = Daemon::start();
    let agent = daemon.admin().create_agent(&CreateAgent::ethereum("kdf", "anvil")).expect("agent");
    daemon.stop();
    let dir = daemon.data_dir().to_owned();
    for kdf in ["pbkdf2", "argon2id"] {
        let out_dir = tempfile::tempdir().unwrap();
        let made = ok(&run_cli(&dir, &["backup", "--kdf", kdf, "--output", out_dir.path().to_str().unwrap()], &pw()));
        let archive = made.trim().to_owned();
        let shown = ok(&run_cli(&dir, &["backup", "inspect", &archive], &[]));
        let expected = if kdf == "pbkdf2" { "pbkdf2-sha256 (iterations=600000)" } else { "argon2id (m=65536" };
        assert!(shown.contains(expected), "{shown}");
        // Without --force, existing data is not replaced.
        let refused = run_cli(&dir, &["restore", "--from", &archive], &pw());
        assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("--force"));
        ok(&run_cli(&dir, &["restore", "--force", "--from", &archive], &pw()));
    }
    let safety: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("restore-backup-"))
        .collect();
    assert!(!safety.is_empty(), "no safety copy");
    assert!(dir.join(&safety[0]).join("data/waiaas.db").is_file());
    daemon.restart();
    assert_eq!(daemon.admin().get_agent(&agent.id).unwrap().address, agent.address);
}

/// `backup --output DIR` (here beside a running daemon): an existing directory is the operator's and keeps its
/// mode; directories the command creates are 0700; the archive is 0600 and nothing else (no plaintext snapshot)
/// is left in the directory.
#[test]
fn backup_output_keeps_an_existing_dirs_mode_and_makes_created_ones_private() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let daemon = Daemon::start();
    let out = tempfile::tempdir().unwrap();
    let shared = out.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    let created = shared.join("new/nested");
    for (target, expected) in [(&shared, 0o755), (&created, 0o700)] {
        let made = ok(&run_cli(daemon.data_dir(), &["backup", "--output", target.to_str().unwrap()], &pw()));
        let archive = PathBuf::from(made.trim());
        assert_eq!(archive.parent(), Some(target.as_path()));
        assert_eq!(mode(target), expected, "{}", target.display());
        assert_eq!(mode(&archive), 0o600);
        let left: Vec<_> = std::fs::read_dir(target).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(left, [archive], "only the archive is left in {}", target.display());
    }
    assert_eq!(mode(&shared.join("new")), 0o700, "a created parent is private too");
    assert_eq!(mode(&shared), 0o755, "the operator's directory keeps its mode");
}

/// While a daemon runs, `waiaas backup --output DIR --kdf pbkdf2` is made by the daemon, not beside it: the archive
/// lands in DIR sealed with PBKDF2, the daemon's last-backup time and its metric move to that backup, and the one
/// BACKUP_CREATED row is the daemon's (written for a master request from loopback, so it carries the peer's IP,
/// which a command opening the database itself has not).
#[test]
fn with_a_daemon_running_every_backup_is_made_by_the_daemon() {
    let daemon = Daemon::start();
    let metric = || crate::metrics::scrape(&daemon.client()).value("waiaas_backup_last_success_timestamp_seconds", &[]);
    assert_eq!(metric(), 0.0);
    let out = tempfile::tempdir().unwrap();
    let out_cmd =
        run_cli(daemon.data_dir(), &["backup", "--output", out.path().to_str().unwrap(), "--kdf", "pbkdf2"], &pw());
    let archive = PathBuf::from(ok(&out_cmd).trim());
    let err = String::from_utf8_lossy(&out_cmd.stderr);
    assert!(!err.contains('\r') && !err.contains("\x1b["), "no spinner when stderr is not a terminal: {err}");
    assert_eq!(archive.parent(), Some(out.path()));
    let shown = ok(&run_cli(daemon.data_dir(), &["backup", "inspect", archive.to_str().unwrap()], &[]));
    assert!(shown.contains("kdf: pbkdf2"), "{shown}");

    let last = daemon.admin().list_backups().expect("list").last_success_at.expect("the daemon recorded the backup");
    assert_eq!(metric(), last as f64, "the daemon's metric follows its last success");
    let filter = AuditLogFilter { event_types: vec!["BACKUP_CREATED".into()], ..Default::default() };
    let rows = daemon.admin().audit_logs(&filter).expect("audit").data;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].actor, "master");
    assert_eq!(rows[0].ip_address.as_deref(), Some("127.0.0.1"), "written by the daemon for the command's request");
    assert_eq!(rows[0].details["name"], archive.file_name().unwrap().to_str().unwrap());
    assert_eq!(rows[0].details["kdf"], "pbkdf2-sha256");
    // The daemon refuses a relative directory, which it would resolve against its own working directory.
    let (status, code, _) =
        crate::support::api_error(daemon.admin().create_backup_in(BackupKdf::Pbkdf2, "relative/dir"));
    assert_eq!((status, code.as_str()), (400, "VALIDATION_FAILED"));
}

/// Progress bars are for terminals: with stderr captured (not a terminal), an offline backup, a verify and a
/// restore write their result lines only, no progress bytes (no bar, rate, ETA, carriage return or escape).
#[test]
fn backup_verify_and_restore_stay_quiet_when_stderr_is_not_a_terminal() {
    let mut daemon = Daemon::start();
    daemon.admin().create_agent(&CreateAgent::ethereum("kept", "anvil")).expect("agent");
    daemon.stop();
    let dir = daemon.data_dir().to_owned();
    let backup = run_cli(&dir, &["backup", "--kdf", "pbkdf2"], &pw());
    let archive = ok(&backup).trim().to_owned();
    let verify = run_cli(&dir, &["backup", "verify", &archive], &pw());
    ok(&verify);
    let restore = run_cli(&dir, &["restore", "--force", "--from", &archive], &pw());
    ok(&restore);
    for (name, out) in [("backup", &backup), ("verify", &verify), ("restore", &restore)] {
        let err = String::from_utf8_lossy(&out.stderr);
        for marker in ["ETA", "/s", "%", "\r", "\x1b["] {
            assert!(!err.contains(marker), "{name}: progress output {marker:?} in captured stderr:\n{err}");
        }
    }
    assert!(String::from_utf8_lossy(&restore.stderr).contains("archive verified"), "the result lines remain");
}

/// A crash in the middle of the swap (the process aborts at a test hook, as kill -9 would) leaves a journal;
/// the next `start` rolls back, so the data dir is the old state, never a mix.
#[test]
fn a_restore_killed_mid_swap_is_rolled_back_on_the_next_start() {
    let mut daemon = Daemon::start();
    let kept = daemon.admin().create_agent(&CreateAgent::ethereum("kept", "anvil")).expect("agent");
    let archive = PathBuf::from(ok(&run_cli(daemon.data_dir(), &["backup"], &pw())).trim());
    let later = daemon.admin().create_agent(&CreateAgent::ethereum("later", "anvil")).expect("agent");
    daemon.stop();
    let dir = daemon.data_dir().to_owned();
    for point in ["swap:1", "swap:4", "swap:done"] {
        let before = tree(&dir);
        let out = run_cli(
            &dir,
            &["restore", "--force", "--from", archive.to_str().unwrap()],
            &[("WAIAAS_MASTER_PASSWORD", MASTER_PASSWORD), ("WAIAAS_TEST_CRASH_AT", point)],
        );
        assert!(!out.status.success(), "{point}: the hook did not fire");
        assert!(dir.join("restore-journal.json").exists(), "{point}: no journal");
        daemon.restart();
        assert!(!dir.join("restore-journal.json").exists());
        // The old state: both agents.
        assert_eq!(daemon.admin().get_agent(&later.id).unwrap().id, later.id, "{point}");
        assert_eq!(daemon.admin().get_agent(&kept.id).unwrap().id, kept.id, "{point}");
        daemon.stop();
        let after = tree(&dir);
        let keys = |t: &BTreeMap<String, String>| {
            t.keys().filter(|k| k.starts_with("keystore/") || k.as_str() == "config.toml").cloned().collect::<Vec<_>>()
        };
        assert_eq!(keys(&after), keys(&before), "{point}: keystore/config differ");
    }
}

/// The daemon's schedule writes archives every `interval` seconds, audits each, and keeps `retention_count`.
#[test]
fn scheduled_backups_are_audited_and_pruned_to_the_retention_count() {
    let daemon = Daemon::start_with(DaemonOptions {
        extra_env: vec![
            ("WAIAAS_BACKUP_INTERVAL".into(), "1".into()),
            ("WAIAAS_BACKUP_RETENTION_COUNT".into(), "2".into()),
        ],
        ..Default::default()
    });
    let admin = daemon.admin();
    let audited = || {
        admin
            .audit_logs(&AuditLogFilter { limit: Some(200), ..Default::default() })
            .unwrap()
            .data
            .into_iter()
            .filter(|r| r.event_type == "BACKUP_CREATED")
            .count()
    };
    eventually(60, "four scheduled backups", || (audited() >= 4).then_some(()));
    let listed = admin.list_backups().unwrap();
    assert!(listed.data.len() <= 3, "retention not applied: {:?}", listed.data);
    assert!(listed.last_success_at.is_some());
    // API-made archives with PBKDF2, several at once while the schedule keeps running and pruning: each one
    // succeeds under its own name.
    let made: Vec<_> = std::thread::scope(|s| {
        let calls: Vec<_> =
            (0..4).map(|_| s.spawn(|| admin.create_backup(BackupKdf::Pbkdf2).expect("create backup"))).collect();
        calls.into_iter().map(|c| c.join().expect("backup thread")).collect()
    });
    let names: std::collections::BTreeSet<_> = made.iter().map(|m| m.name.clone()).collect();
    assert_eq!(names.len(), made.len(), "two backups share a name: {names:?}");
    let shown = ok(&run_cli(daemon.data_dir(), &["backup", "inspect", &made[0].path], &[]));
    assert!(shown.contains("pbkdf2-sha256"), "{shown}");
}

/// The committed v1 archive (tests/fixtures/backup-v1/) keeps restoring: a format change that breaks old
/// archives fails here.
#[test]
fn the_committed_v1_fixture_still_restores() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/backup-v1/fixture.waiaas-backup");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.with_file_name("expected.json")).expect("expected.json"))
            .unwrap();
    let password = expected["password"].as_str().unwrap();
    let fresh = tempfile::tempdir().unwrap();
    ok(&run_cli(
        fresh.path(),
        &["restore", "--from", fixture.to_str().unwrap()],
        &[("WAIAAS_MASTER_PASSWORD", password)],
    ));
    let restored = Daemon::start_on(fresh, DaemonOptions { password: password.to_owned(), ..Default::default() });
    let admin = restored.admin();
    let agent = admin.get_agent(expected["agentId"].as_str().unwrap()).expect("fixture agent");
    assert_eq!(agent.address, expected["address"].as_str().unwrap());
    let policies = admin.list_policies(&PolicyFilter::default()).unwrap().data;
    assert!(policies.iter().any(|p| p.id == expected["policyId"].as_str().unwrap()), "{policies:?}");
    let audit = admin.audit_logs(&AuditLogFilter { limit: Some(200), ..Default::default() }).unwrap().data;
    assert!(audit.len() as u64 >= expected["auditRows"].as_u64().unwrap());
    // The restored key file still opens with the password: the address the keystore reports matches.
    let token = admin.create_session(&CreateSession::for_agent(&agent.id)).expect("session").token;
    let wallet = restored.client().with_session_token(&token).wallet_address().unwrap();
    assert_eq!(wallet.address, agent.address);
}

/// An online backup taken while transfers run is a consistent snapshot: the restore passes its integrity check,
/// every transfer CONFIRMED before the backup started is there and CONFIRMED, and every restored transfer's
/// status agrees with its audit rows (no change without its row).
#[test]
fn an_online_backup_taken_while_transfers_run_is_consistent() {
    let mut src = source();
    let token = src.daemon.admin().create_session(&CreateSession::for_agent(&src.agent_id)).expect("session").token;
    let agent = src.daemon.client().with_session_token(&token);
    let confirmed_before: Vec<String> = (0..3).map(|i| transfer_confirms(&agent, 100 + i)).collect();
    let sender = {
        let agent = agent.clone();
        std::thread::spawn(move || (0..8).map(|i| transfer_confirms(&agent, 200 + i)).collect::<Vec<_>>())
    };
    let archive = PathBuf::from(ok(&run_cli(src.daemon.data_dir(), &["backup"], &pw())).trim());
    let sent_during = sender.join().expect("sender thread");
    src.daemon.stop();
    let fresh = tempfile::tempdir().unwrap();
    ok(&run_cli(fresh.path(), &["restore", "--from", archive.to_str().unwrap()], &pw()));
    let restored = Daemon::start_on(
        fresh,
        DaemonOptions { networks: vec![("anvil".into(), src.anvil.url.clone())], ..Default::default() },
    );
    let admin = restored.admin();
    let rows_of = |tx: &str| -> Vec<String> {
        admin
            .audit_logs(&AuditLogFilter { tx_id: Some(tx.to_owned()), limit: Some(50), ..Default::default() })
            .unwrap()
            .data
            .into_iter()
            .map(|r| r.event_type)
            .collect()
    };
    for id in &confirmed_before {
        assert_eq!(agent_on(&restored, &token, id).as_deref(), Some("CONFIRMED"), "{id}");
        assert!(rows_of(id).contains(&"TX_CONFIRMED".to_owned()), "{id}");
    }
    for id in &sent_during {
        // Either absent (requested after the snapshot) or present with its rows; CONFIRMED only with its row.
        match agent_on(&restored, &token, id).as_deref() {
            None => assert!(rows_of(id).is_empty(), "{id}: rows without the transaction"),
            Some(status) => {
                let rows = rows_of(id);
                assert!(rows.contains(&"TX_REQUESTED".to_owned()), "{id}: {rows:?}");
                assert_eq!(status == "CONFIRMED", rows.contains(&"TX_CONFIRMED".to_owned()), "{id}: {status} {rows:?}");
            }
        }
    }
}

/// The status of `id` on `daemon` through the agent's session token (restored with the DB), or `None`.
fn agent_on(daemon: &Daemon, token: &str, id: &str) -> Option<String> {
    daemon.client().with_session_token(token).get_transaction(id).ok().map(|t| t.status)
}

/// Restore refuses an archive whose schema is newer than this build, and one whose password does not unlock the
/// data inside it; both leave the data dir byte-identical.
#[test]
fn restore_refuses_a_newer_schema_and_data_the_password_does_not_unlock() {
    use waiaas_core::backup::{Header, Kdf, Manifest, ManifestFile, hash_reader, write_archive};
    let mut daemon = Daemon::start();
    daemon.stop();
    let dir = daemon.data_dir().to_owned();
    let db = std::fs::read(dir.join("data/waiaas.db")).unwrap();
    let (size, sha256) = hash_reader(&mut db.as_slice()).unwrap();
    let seal = |schema_version: i64, password: &str| {
        let manifest = Manifest {
            schema_version,
            daemon_version: "9.9.9".into(),
            created_at: 0,
            files: vec![ManifestFile { path: "data/waiaas.db".into(), size, sha256: sha256.clone() }],
        };
        let header = Header::new(Kdf::argon2id_fast_for_tests(), &waiaas_fs::OsEntropy).unwrap();
        let mut out = Vec::new();
        write_archive(
            &mut out,
            password,
            &header,
            &manifest,
            &mut |_| Ok(Box::new(std::io::Cursor::new(db.clone()))),
            &mut |_, _| {},
        )
        .unwrap();
        out
    };
    let original = tree(&dir);
    let work = tempfile::tempdir().unwrap();
    for (name, bytes, password, expected, exit) in [
        ("newer schema", seal(9999, MASTER_PASSWORD), MASTER_PASSWORD, "INVALID_BACKUP_FORMAT", 6),
        ("other password", seal(1, "another password"), "another password", "does not unlock", 5),
    ] {
        let file = work.path().join("crafted.waiaas-backup");
        std::fs::write(&file, bytes).unwrap();
        let out = run_cli(
            &dir,
            &["restore", "--force", "--from", file.to_str().unwrap()],
            &[("WAIAAS_MASTER_PASSWORD", password)],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.code() == Some(exit) && err.contains(expected), "{name}: {:?} {err}", out.status);
        assert_eq!(tree(&dir), original, "{name}: the data dir changed");
    }
}

/// A restore killed while decrypting (before any swap) leaves only a staging dir, which the next start removes;
/// the live data was never touched.
#[test]
fn a_restore_killed_while_staging_leaves_the_data_untouched() {
    let mut daemon = Daemon::start();
    let agent = daemon.admin().create_agent(&CreateAgent::ethereum("kept", "anvil")).expect("agent");
    let archive = PathBuf::from(ok(&run_cli(daemon.data_dir(), &["backup"], &pw())).trim());
    daemon.stop();
    let dir = daemon.data_dir().to_owned();
    let before = tree(&dir);
    let out = run_cli(
        &dir,
        &["restore", "--force", "--from", archive.to_str().unwrap()],
        &[("WAIAAS_MASTER_PASSWORD", MASTER_PASSWORD), ("WAIAAS_TEST_CRASH_AT", "staged")],
    );
    assert!(!out.status.success(), "the hook did not fire");
    let staging = |t: &BTreeMap<String, String>| t.keys().any(|k| k.starts_with(".restore-staging-"));
    let after = tree(&dir);
    assert!(staging(&after), "no staging dir at the crash point");
    // (The killed process's pid stays in the unlocked pid file, which means "not running".)
    let live = |t: &BTreeMap<String, String>| {
        t.iter()
            .filter(|(k, _)| !k.starts_with(".restore-staging-") && k.as_str() != "daemon.pid")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(live(&after), live(&before), "live data changed before the swap");
    daemon.restart();
    assert!(!staging(&tree(&dir)), "the stale staging dir was not removed");
    assert_eq!(daemon.admin().get_agent(&agent.id).unwrap().address, agent.address);
}

/// An archive of an older schema (a database the previous release wrote, at schema 1) restores and is migrated
/// forward: the daemon starts on it at the current schema with the old rows.
#[test]
fn restore_migrates_an_older_schema_forward() {
    use sqlx::Connection;
    use waiaas_core::backup::{Header, Kdf, Manifest, ManifestFile, hash_reader, write_archive};
    use waiaas_core::services::master_auth::{MASTER_HASH_KEY, hash_password};

    let work = tempfile::tempdir().unwrap();
    let migrations = work.path().join("migrations");
    std::fs::create_dir(&migrations).unwrap();
    let v1 = Path::new(env!("CARGO_MANIFEST_DIR")).join("../adapters/sqlite/migrations/0001_init.sql");
    std::fs::copy(v1, migrations.join("0001_init.sql")).unwrap();
    let old_db = work.path().join("old.db");
    let agent_id = "01900000-0000-7000-8000-0000000000aa";
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut conn =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", old_db.display())).await.unwrap();
        sqlx::migrate::Migrator::new(migrations.as_path()).await.unwrap().run(&mut conn).await.unwrap();
        let hash = hash_password(MASTER_PASSWORD, &waiaas_fs::OsEntropy).unwrap();
        sqlx::query("INSERT INTO settings (key, value) VALUES (?, ?)")
            .bind(MASTER_HASH_KEY)
            .bind(hash)
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO agents (id, name, chain, network, address, status, created_at, updated_at) \
             VALUES (?, 'from-v1', 'ethereum', 'anvil', '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed', 'ACTIVE', 1, 1)",
        )
        .bind(agent_id)
        .execute(&mut conn)
        .await
        .unwrap();
        let version: i64 =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations").fetch_one(&mut conn).await.unwrap();
        assert_eq!(version, 1, "the archived database stops at schema 1");
        conn.close().await.unwrap();
    });
    let db = std::fs::read(&old_db).unwrap();
    let (size, sha256) = hash_reader(&mut db.as_slice()).unwrap();
    let manifest = Manifest {
        schema_version: 1,
        daemon_version: "0.0.9".into(),
        created_at: 0,
        files: vec![ManifestFile { path: "data/waiaas.db".into(), size, sha256 }],
    };
    let header = Header::new(Kdf::argon2id_fast_for_tests(), &waiaas_fs::OsEntropy).unwrap();
    let mut archive = Vec::new();
    write_archive(
        &mut archive,
        MASTER_PASSWORD,
        &header,
        &manifest,
        &mut |_| Ok(Box::new(std::io::Cursor::new(db.clone()))),
        &mut |_, _| {},
    )
    .unwrap();
    let file = work.path().join("v1.waiaas-backup");
    std::fs::write(&file, archive).unwrap();

    let target = tempfile::tempdir().unwrap();
    assert!(run_cli(target.path(), &["init"], &[]).status.success());
    ok(&run_cli(target.path(), &["restore", "--force", "--from", file.to_str().unwrap()], &pw()));
    let daemon = Daemon::start_on(target, DaemonOptions::default());
    assert_eq!(
        daemon.client().health().unwrap().schema_version,
        waiaas_sqlite::Database::latest_schema_version(),
        "migrated forward"
    );
    let agents = daemon.admin().list_agents(&ListParams::default()).unwrap();
    assert_eq!(agents.data.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), [agent_id]);
}
