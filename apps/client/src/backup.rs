//! OPS-03 over the API: create a backup archive on the daemon and list its archives (master password).

use serde::{Deserialize, Serialize};

use crate::{Auth, Client, Result};

/// Key-derivation function of a new archive (`argon2id` default, `pbkdf2` for FIPS environments).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BackupKdf {
    #[default]
    Argon2id,
    Pbkdf2,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreateBackup<'a> {
    kdf: BackupKdf,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_dir: Option<&'a str>,
}

/// One archive: `{name, path, size, createdAt}`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Backup {
    pub name: String,
    /// Path on the daemon's host.
    pub path: String,
    pub size: u64,
    pub created_at: i64,
}

/// `GET /v1/admin/backups`: `{data, lastSuccessAt?}`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupList {
    pub data: Vec<Backup>,
    #[serde(default)]
    pub last_success_at: Option<i64>,
}

impl Client {
    /// `POST /v1/admin/backup` (master): seals a consistent snapshot into the daemon's backup directory.
    pub fn create_backup(&self, kdf: BackupKdf) -> Result<Backup> {
        self.call("POST", "/v1/admin/backup", Auth::Master, Some(&CreateBackup { kdf, output_dir: None }))
    }

    /// `POST /v1/admin/backup` (master) into `output_dir`, an absolute directory on the daemon's host.
    pub fn create_backup_in(&self, kdf: BackupKdf, output_dir: &str) -> Result<Backup> {
        self.call("POST", "/v1/admin/backup", Auth::Master, Some(&CreateBackup { kdf, output_dir: Some(output_dir) }))
    }

    /// `GET /v1/admin/backups` (master), newest first.
    pub fn list_backups(&self) -> Result<BackupList> {
        self.call("GET", "/v1/admin/backups", Auth::Master, None::<&()>)
    }
}
