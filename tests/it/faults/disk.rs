//! The backup dir's disk full: a small tmpfs mounted for the test (root, as in CI; skipped with a message where
//! mounting is not permitted).

use std::path::Path;
use std::process::Command;

use waiaas_client::BackupKdf;
use waiaas_client::types::{AuditLogFilter, CreateAgent};

use super::assert_consistent;
use crate::support::{Daemon, MASTER_PASSWORD, run_cli};

/// A tmpfs of `size` at `dir`, unmounted on drop.
struct Tmpfs<'a>(&'a Path);

impl<'a> Tmpfs<'a> {
    fn mount(dir: &'a Path, size: &str) -> Option<Tmpfs<'a>> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir)
            .output()
            .ok()?;
        out.status.success().then_some(Tmpfs(dir))
    }
}

impl Drop for Tmpfs<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

/// A backup into a directory whose disk fills up is refused with `507 STORAGE_FULL` (retryable, a hint naming
/// the cure) and audited `BACKUP_FAILED` with that code; nothing is left in the full directory (no partial
/// archive, no plaintext snapshot), the database is intact, and the next backup into a roomy directory works and
/// verifies.
#[test]
fn a_full_backup_disk_is_a_clear_error_and_the_next_backup_works() {
    let mut daemon = Daemon::start();
    let admin = daemon.admin();
    for i in 0..20 {
        admin.create_agent(&CreateAgent::ethereum(format!("agent-{i}"), "anvil")).expect("agent");
    }
    let work = tempfile::tempdir().expect("temp dir");
    let small = work.path().join("small");
    std::fs::create_dir(&small).expect("mount point");
    let Some(_tmpfs) = Tmpfs::mount(&small, "48k") else {
        eprintln!("SKIPPED: mounting a tmpfs is not permitted here (run as root, as CI does)");
        return;
    };

    let refused = admin.create_backup_in(BackupKdf::Pbkdf2, small.to_str().expect("utf-8"));
    match refused {
        Err(waiaas_client::ClientError::Api { status, code, retryable, hint, .. }) => {
            assert_eq!((status, code.as_str(), retryable), (507, "STORAGE_FULL", true));
            assert!(hint.unwrap_or_default().contains("space"), "the hint names the cure");
        }
        other => panic!("a backup into a full disk answered {other:?}"),
    }
    let left: Vec<_> = std::fs::read_dir(&small).expect("read").map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "left in the full directory: {left:?}");
    let failed = admin
        .audit_logs(&AuditLogFilter { event_types: vec!["BACKUP_FAILED".into()], ..Default::default() })
        .expect("audit");
    assert_eq!(failed.data.len(), 1);
    assert_eq!(failed.data[0].details["code"], "STORAGE_FULL");

    // The CLI says the same, with a non-zero exit.
    let out = run_cli(
        daemon.data_dir(),
        &["backup", "--kdf", "pbkdf2", "--output", small.to_str().expect("utf-8")],
        &[("WAIAAS_MASTER_PASSWORD", MASTER_PASSWORD)],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("STORAGE_FULL"), "{}", String::from_utf8_lossy(&out.stderr));

    let roomy = work.path().join("roomy");
    let made = admin.create_backup_in(BackupKdf::Pbkdf2, roomy.to_str().expect("utf-8")).expect("the next backup");
    let verified =
        run_cli(daemon.data_dir(), &["backup", "verify", &made.path], &[("WAIAAS_MASTER_PASSWORD", MASTER_PASSWORD)]);
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stderr));
    daemon.stop();
    assert_consistent(daemon.data_dir());
}
