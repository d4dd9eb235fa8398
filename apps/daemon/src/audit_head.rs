//! The audit head key and the master password check, shared by the daemon's unlock and the offline commands
//! (`waiaas backup` of a stopped data dir, `waiaas restore`), and the two audit operations on a data dir:
//! [`verify_log`] (the chain, then the log's end against its sealed head) and [`reseal`].

use anyhow::{Context, anyhow, bail};
use waiaas_core::ErrorCode;
use waiaas_core::audit::{ChainBreak, HEAD_SALT_KEY, HeadFinding, HeadKey};
use waiaas_core::event::{EventType, RequestContext};
use waiaas_core::ports::{AuditQuery, AuditRepo, Clock, SettingsRepo};
use waiaas_core::services::master_auth::{MASTER_HASH_KEY, verify_password};
use waiaas_fs::{DataDir, OsEntropy, SystemClock};
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
        Some(_) => Err(core_error(waiaas_core::Error::new(
            ErrorCode::InvalidMasterPassword,
            "INVALID_MASTER_PASSWORD: the master password does not match this data dir",
        ))),
    }
}

/// Rows verified per batch (memory stays bounded on large logs).
const VERIFY_BATCH: u32 = 10_000;

/// `AUDIT_HEAD_SEALED` rows reported by [`verify_log`] at most.
const SEALS_SHOWN: u32 = 20;

/// What [`verify_log`] found.
#[derive(Debug)]
pub struct Verdict {
    /// Rows whose hash and link verified (before the break, if any).
    pub verified: u64,
    /// The chain intact, or where it breaks.
    pub chain: Result<(), ChainBreak>,
    /// The last row's id when the head matches it, else what is wrong with the log's end.
    pub head: Result<i64, String>,
    /// Ids of `AUDIT_HEAD_SEALED` rows (heads sealed over existing rows), oldest first.
    pub seals: Vec<i64>,
}

/// Checks the password, walks the chain of the data dir's audit log, and compares the end of the log with its
/// sealed head (`waiaas audit verify`; a daemon may run meanwhile: its appends only lengthen the chain).
pub async fn verify_log(dir: &DataDir, password: &str) -> anyhow::Result<Verdict> {
    let db = Database::open(&dir.db_file()).await.map_err(core_error)?;
    let outcome = check_log(&db, password).await;
    db.close().await;
    outcome
}

async fn check_log(db: &Database, password: &str) -> anyhow::Result<Verdict> {
    check_password(db, password).await?;
    let key = head_key(db, password, false).await?;
    // The head and the log's end are read together, before the walk: rows a running daemon appends meanwhile
    // only lengthen the chain.
    let state = db.audit_head_state().await.map_err(core_error)?;
    let head = match (&key, &state.sealed) {
        (Some(key), _) => state.check(key).map(|()| state.last.last_id).map_err(|finding| finding.to_string()),
        (None, None) => Err(HeadFinding::Missing.to_string()),
        (None, Some(_)) => Err(format!("the head's salt ({HEAD_SALT_KEY}) was deleted: the head cannot be checked")),
    };
    let (verified, chain) = db.verify_audit_chain(VERIFY_BATCH).await.map_err(core_error)?;
    let query = AuditQuery { event_types: vec![EventType::AuditHeadSealed], limit: SEALS_SHOWN, ..Default::default() };
    let mut seals: Vec<i64> = db.audit().query(&query).await.map_err(core_error)?.iter().map(|r| r.id).collect();
    seals.sort_unstable();
    Ok(Verdict { verified, chain, head, seals })
}

/// Accepts the audit log as it stands (`waiaas audit reseal`; the caller holds the data dir's lock): records what
/// was found as an `AUDIT_HEAD_SEALED` row and seals the head after it. `None` when the log already ends at its
/// head.
pub async fn reseal(dir: &DataDir, password: &str) -> anyhow::Result<Option<HeadFinding>> {
    let db = Database::open(&dir.db_file()).await.map_err(core_error)?;
    let outcome = async {
        check_password(&db, password).await?;
        let key = head_key(&db, password, true).await?.context("no audit head salt")?;
        db.reseal_audit_head(key, &RequestContext::master(None), SystemClock.now()).await.map_err(core_error)
    }
    .await;
    db.close().await;
    Ok(outcome?.map(|(finding, _)| finding))
}
