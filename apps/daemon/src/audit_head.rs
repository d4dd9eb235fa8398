//! The audit head key and the master password check, shared by the daemon's unlock and the offline commands
//! (`waiaas audit verify|reseal`, `waiaas backup` of a stopped data dir, `waiaas restore`).

use anyhow::{anyhow, bail};
use waiaas_core::audit::{HEAD_SALT_KEY, HeadFinding, HeadKey};
use waiaas_core::ports::SettingsRepo;
use waiaas_core::services::master_auth::{MASTER_HASH_KEY, verify_password};
use waiaas_fs::OsEntropy;
use waiaas_sqlite::Database;

use crate::core_error;

/// The audit head key of `db` for `password` (one Argon2id run with the salt stored in the database). A database
/// without a salt gets a new one when `create` (the daemon's unlock); otherwise it has no key (`None`). The
/// password must already have been checked against the stored hash.
pub async fn head_key(db: &Database, password: &str, create: bool) -> anyhow::Result<Option<HeadKey>> {
    let settings = db.settings();
    let salt = match settings.get(HEAD_SALT_KEY).await.map_err(core_error)? {
        Some(salt) => salt,
        None if create => {
            let salt = HeadKey::new_salt(&OsEntropy);
            settings.put(HEAD_SALT_KEY, &salt).await.map_err(core_error)?;
            salt
        }
        None => return Ok(None),
    };
    Ok(Some(HeadKey::derive(password, &salt).map_err(core_error)?))
}

/// What to tell the operator when the sealed head does not match the log and the daemon will not go on.
pub fn head_refusal(finding: &HeadFinding) -> anyhow::Error {
    anyhow!(
        "the audit log does not match its sealed head: {finding}. `waiaas audit verify` checks the whole log; \
         restore a backup, or accept the log as it stands with `waiaas audit reseal`"
    )
}

/// The password must be the data's master password: an archive sealed with anything else could not be
/// restored into working data (the keystore files are sealed with the master password).
pub async fn check_password(db: &Database, password: &str) -> anyhow::Result<()> {
    let stored = db.settings().get(MASTER_HASH_KEY).await.map_err(core_error)?;
    match stored {
        None => bail!("this data dir has no master password yet; start the daemon once first"),
        Some(hash) if verify_password(password, &hash).map_err(core_error)? => Ok(()),
        Some(_) => bail!("INVALID_MASTER_PASSWORD: the master password does not match this data dir"),
    }
}
