//! The refusal paths of an offline restore, at the daemon crate's entry point: a running daemon, existing data
//! without `--force`, and an interrupted restore rolled back before anything else.

use std::fs;
use std::path::PathBuf;

use super::*;

/// The committed v1 archive (`tests/fixtures/backup-v1/`): a real header, so the checks past `inspect` run.
fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/backup-v1/fixture.waiaas-backup")
}

/// Records what the restore asked and told; it never hands out a password, so a restore that gets past its
/// refusals fails loudly instead of decrypting.
#[derive(Default)]
struct Recorder {
    calls: Vec<&'static str>,
}

impl RestoreSteps for Recorder {
    fn rolled_back(&mut self) {
        self.calls.push("rolled_back");
    }

    fn password(&mut self) -> anyhow::Result<Zeroizing<String>> {
        self.calls.push("password");
        anyhow::bail!("no password in this test")
    }

    fn progress(&mut self, _done: u64, _total: u64) {
        self.calls.push("progress");
    }

    fn verified(&mut self, _manifest: &Manifest) {
        self.calls.push("verified");
    }
}

#[track_caller]
fn refusal(result: anyhow::Result<PathBuf>) -> RestoreRefused {
    match result {
        Ok(path) => panic!("restored into {}", path.display()),
        Err(e) => e.downcast::<RestoreRefused>().unwrap_or_else(|e| panic!("not a refusal: {e:#}")),
    }
}

#[test]
fn a_running_daemon_is_refused_before_the_lock_or_the_password() {
    let root = tempfile::tempdir().unwrap();
    let dir = DataDir::create(root.path()).unwrap();
    let daemon = PidLock::acquire(&dir).unwrap();
    let mut steps = Recorder::default();
    let refused = refusal(restore(root.path(), &fixture(), true, &mut steps));
    assert!(
        matches!(refused, RestoreRefused::DaemonRunning { pid: Some(pid), .. } if pid == daemon.pid()),
        "{refused:?}"
    );
    assert!(refused.to_string().contains("stop it first"), "{refused}");
    assert!(steps.calls.is_empty(), "{:?}", steps.calls);
    drop(daemon);
    assert!(PidLock::read_running(&dir).is_none(), "the refused restore left no lock behind");
}

#[test]
fn existing_data_is_kept_without_force() {
    let root = tempfile::tempdir().unwrap();
    let dir = DataDir::create(root.path()).unwrap();
    fs::create_dir_all(dir.db_file().parent().unwrap()).unwrap();
    fs::write(dir.db_file(), b"the current database").unwrap();
    let mut steps = Recorder::default();
    let refused = refusal(restore(root.path(), &fixture(), false, &mut steps));
    assert!(matches!(refused, RestoreRefused::HoldsData { .. }), "{refused:?}");
    assert!(refused.to_string().contains("--force"), "{refused}");
    assert!(steps.calls.is_empty(), "asked for nothing: {:?}", steps.calls);
    assert_eq!(fs::read(dir.db_file()).unwrap(), b"the current database");
    assert!(PidLock::read_running(&dir).is_none(), "the lock was released");
    // With --force the same call goes on to ask for the archive's password.
    let mut steps = Recorder::default();
    let err = restore(root.path(), &fixture(), true, &mut steps).unwrap_err();
    assert!(err.to_string().contains("no password in this test"), "{err:#}");
    assert_eq!(steps.calls, ["password"]);
    assert_eq!(fs::read(dir.db_file()).unwrap(), b"the current database");
}

#[test]
fn an_interrupted_restore_is_rolled_back_first() {
    let root = tempfile::tempdir().unwrap();
    let dir = DataDir::create(root.path()).unwrap();
    // A swap killed after moving the old config.toml into the safety copy, before moving the old data/ (the
    // journal names both as there before the swap).
    let safety = root.path().join("restore-backup-20250101T000000Z");
    fs::create_dir(&safety).unwrap();
    fs::write(safety.join("config.toml"), b"# the old config\n").unwrap();
    fs::write(root.path().join(fsb::JOURNAL), br#"{"stamp":"20250101T000000Z","existing":["config.toml","data"]}"#)
        .unwrap();
    fs::create_dir_all(dir.db_file().parent().unwrap()).unwrap();
    fs::write(dir.db_file(), b"the current database").unwrap();
    let mut steps = Recorder::default();
    let refused = refusal(restore(root.path(), &fixture(), false, &mut steps));
    assert!(matches!(refused, RestoreRefused::HoldsData { .. }), "{refused:?}");
    assert_eq!(steps.calls, ["rolled_back"]);
    assert_eq!(fs::read(root.path().join("config.toml")).unwrap(), b"# the old config\n");
    assert!(!root.path().join(fsb::JOURNAL).exists(), "the journal is gone once rolled back");
    assert_eq!(fs::read(dir.db_file()).unwrap(), b"the current database");
    // Nothing is left to roll back the next time.
    let mut steps = Recorder::default();
    refusal(restore(root.path(), &fixture(), false, &mut steps));
    assert!(steps.calls.is_empty(), "{:?}", steps.calls);
}
