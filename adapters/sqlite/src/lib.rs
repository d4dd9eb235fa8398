//! SQLite implementations of the WAIaaS repository ports (sqlx, runtime-bound queries, embedded migrations).
//!
//! [`Database::open`] opens (or creates, mode 0600) the database file in WAL mode, applies the forward-only
//! migrations in `./migrations`, and hands out the repositories. Two pools share the file:
//!
//! * the **writer** pool has exactly one connection and every write runs in a `BEGIN IMMEDIATE` transaction on it,
//!   so writes are serialized (no `SQLITE_BUSY` lock-upgrade races, and read-then-write inside a transaction —
//!   such as reading the audit chain's last hash — is safe);
//! * the **reader** pool has a few read-only connections for queries; WAL lets them run beside the writer.
//!
//! Every state-changing repository method writes its [`waiaas_core::event::Event`] as an audit row in the same
//! transaction as the change (see [`audit`]): both are committed, or neither.
//!
//! The transaction pipeline's storage ([`transactions`]) runs each admission (snapshot, policy decision, insert,
//! events) inside one write transaction, grouped with the admissions queued meanwhile and run one after the
//! other, so concurrent requests of an agent see each other's reservations.

mod admission;
pub mod agents;
pub mod anomalies;
#[cfg(test)]
mod atomicity_tests;
pub mod audit;
mod error;
#[cfg(test)]
mod head_tests;
pub mod kill_switch;
mod notifications;
#[cfg(test)]
mod notifications_tests;
pub mod policies;
mod reserved;
pub mod sessions;
pub mod settings;
#[cfg(test)]
mod test_support;
pub mod transactions;
mod tx_rows;
mod unsigned;
pub mod webhooks;
#[cfg(test)]
mod webhooks_tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteQueryResult, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, Transaction};
use waiaas_core::audit::{ChainBreak, ChainLink, GENESIS_HASH, HeadFinding, HeadKey, SealReason, verify_chain};
use waiaas_core::event::{Event, RequestContext};
use waiaas_core::ports::AuditRecord;
use waiaas_core::{Error, Result, UnixSeconds};

pub use agents::SqliteAgentRepo;
pub use anomalies::SqliteAnomalyRepo;
pub use audit::{AuditHeadState, HeadInstalled, SqliteAuditRepo};
pub use kill_switch::SqliteKillSwitchRepo;
pub use notifications::SqliteNotificationRepo;
pub use policies::SqlitePolicyRepo;
pub use sessions::SqliteSessionRepo;
pub use settings::SqliteSettingsRepo;
pub use transactions::SqliteTxRepo;
pub use webhooks::SqliteWebhookRepo;

use error::db_err;

/// The embedded migrations (forward-only).
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How long a connection waits on a lock held by another connection (or process) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Read-only connections for queries.
const READER_CONNECTIONS: u32 = 4;

/// The two pools every repository shares, and the audit head key once installed.
#[derive(Clone, Debug)]
pub(crate) struct Pools {
    /// One connection: all write transactions, in order.
    pub(crate) writer: SqlitePool,
    /// Read-only connections.
    pub(crate) reader: SqlitePool,
    /// The key that seals the audit chain's head ([`Database::install_audit_head_key`]); every write transaction
    /// carries it to the audit appends.
    pub(crate) head_key: Arc<audit::HeadKeySlot>,
    /// How far each webhook's stream is known to hold nothing for it (memory only; see [`webhooks`]).
    pub(crate) stream_hints: Arc<webhooks::StreamHints>,
}

impl Pools {
    /// Starts a write transaction holding SQLite's write lock from its first statement.
    pub(crate) async fn begin_write(&self) -> Result<WriteTx> {
        let tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
        Ok(WriteTx { tx, head_key: self.head_key.get() })
    }
}

/// A write transaction on the writer connection, with the audit head key as it was when the transaction began
/// (the audit appends inside it seal the head with it). Dereferences to the connection, so statements run on
/// `&mut *tx` as on a plain transaction; dropped without [`WriteTx::commit`], it rolls back.
pub(crate) struct WriteTx {
    tx: Transaction<'static, Sqlite>,
    head_key: Option<Arc<HeadKey>>,
}

impl WriteTx {
    pub(crate) async fn commit(self) -> std::result::Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    pub(crate) async fn rollback(self) -> std::result::Result<(), sqlx::Error> {
        self.tx.rollback().await
    }

    /// The audit head key, when installed.
    pub(crate) fn head_key(&self) -> Option<Arc<HeadKey>> {
        self.head_key.clone()
    }
}

impl std::ops::Deref for WriteTx {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.tx
    }
}

/// The last step of every state change: its audit row, then the commit — one transaction, all or nothing.
pub(crate) async fn commit_with_audit(mut tx: WriteTx, event: &Event) -> Result<()> {
    audit::append_audit(&mut tx, event).await?;
    tx.commit().await.map_err(db_err)
}

/// A one-row change must have found its row; otherwise `missing` (the transaction is dropped, so rolled back).
pub(crate) fn require_row(done: &SqliteQueryResult, missing: impl FnOnce() -> Error) -> Result<()> {
    if done.rows_affected() == 0 { Err(missing()) } else { Ok(()) }
}

/// One keyset page of `table`, newest first by id (UUID v7 ids sort by time): rows of `agent_id` when given,
/// older than `before` when given.
pub(crate) fn keyset_page(
    columns: &str,
    table: &str,
    agent_id: Option<String>,
    before: Option<String>,
    limit: u32,
) -> QueryBuilder<'static, Sqlite> {
    let mut sql = QueryBuilder::<Sqlite>::new(format!("SELECT {columns} FROM {table} WHERE 1 = 1"));
    if let Some(agent_id) = agent_id {
        sql.push(" AND agent_id = ").push_bind(agent_id);
    }
    if let Some(before) = before {
        sql.push(" AND id < ").push_bind(before);
    }
    sql.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(limit));
    sql
}

/// Runs a [`keyset_page`] on the reader pool and maps its rows with `from_row`.
pub(crate) async fn fetch_page<T>(
    reader: &SqlitePool,
    mut page: QueryBuilder<'_, Sqlite>,
    from_row: impl Fn(&SqliteRow) -> Result<T>,
) -> Result<Vec<T>> {
    page.build().fetch_all(reader).await.map_err(db_err)?.iter().map(from_row).collect()
}

/// The row of `table` whose id is `id`, read on the reader pool and mapped with `from_row`.
pub(crate) async fn fetch_by_id<T>(
    reader: &SqlitePool,
    columns: &str,
    table: &str,
    id: impl std::fmt::Display,
    from_row: impl Fn(&SqliteRow) -> Result<T>,
) -> Result<Option<T>> {
    let row = sqlx::query(&format!("SELECT {columns} FROM {table} WHERE id = ?"))
        .bind(id.to_string())
        .fetch_optional(reader)
        .await
        .map_err(db_err)?;
    row.as_ref().map(from_row).transpose()
}

/// An open WAIaaS database: its pools and the repositories over them. Cloning shares the pools.
#[derive(Clone, Debug)]
pub struct Database {
    path: PathBuf,
    pools: Pools,
    schema_version: i64,
    agents: Arc<SqliteAgentRepo>,
    sessions: Arc<SqliteSessionRepo>,
    policies: Arc<SqlitePolicyRepo>,
    settings: Arc<SqliteSettingsRepo>,
    kill_switch: Arc<SqliteKillSwitchRepo>,
    audit: Arc<SqliteAuditRepo>,
    transactions: Arc<SqliteTxRepo>,
    webhooks: Arc<SqliteWebhookRepo>,
    anomalies: Arc<SqliteAnomalyRepo>,
    notifications: Arc<SqliteNotificationRepo>,
}

impl Database {
    /// Opens the database at `path`, creating the file (mode 0600 on Unix: it holds the password hash and the
    /// token signing key) if it does not exist, applies pending migrations and, when that upgrade added the
    /// reserved totals, fills them from the rows. The parent directory must exist.
    pub async fn open(path: &Path) -> Result<Database> {
        create_private_file(path)?;
        let base = SqliteConnectOptions::new().filename(path).busy_timeout(BUSY_TIMEOUT).foreign_keys(true);
        let writer_options = base
            .clone()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal);
        // No ping before each use: a connection to a local file does not go stale, and the ping is a round trip
        // to the connection's thread that costs as much as a small query.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .test_before_acquire(false)
            .connect_with(writer_options)
            .await
            .map_err(db_err)?;
        // A fresh file has no migrations table yet: version 0.
        let before = read_schema_version(&writer).await.unwrap_or(0);
        MIGRATOR.run(&writer).await.map_err(Error::internal)?;
        if before < reserved::TOTALS_SINCE_SCHEMA {
            let mut fill = writer.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
            reserved::rebuild(&mut fill).await?;
            fill.commit().await.map_err(db_err)?;
        }
        // The journal mode is persistent (set by the writer above); readers only read.
        let reader = SqlitePoolOptions::new()
            .max_connections(READER_CONNECTIONS)
            .test_before_acquire(false)
            .connect_with(base.read_only(true))
            .await
            .map_err(db_err)?;
        let pools = Pools { writer, reader, head_key: Arc::default(), stream_hints: Arc::default() };
        let schema_version = read_schema_version(&pools.reader).await?;
        tracing::info!(path = %path.display(), schema_version, "database open");
        Ok(Database {
            path: path.to_owned(),
            schema_version,
            agents: Arc::new(SqliteAgentRepo::new(pools.clone())),
            sessions: Arc::new(SqliteSessionRepo::new(pools.clone())),
            policies: Arc::new(SqlitePolicyRepo::new(pools.clone())),
            settings: Arc::new(SqliteSettingsRepo::new(pools.clone())),
            kill_switch: Arc::new(SqliteKillSwitchRepo::new(pools.clone())),
            audit: Arc::new(SqliteAuditRepo::new(pools.clone())),
            transactions: Arc::new(SqliteTxRepo::new(pools.clone())),
            webhooks: Arc::new(SqliteWebhookRepo::new(pools.clone())),
            anomalies: Arc::new(SqliteAnomalyRepo::new(pools.clone())),
            notifications: Arc::new(SqliteNotificationRepo::new(pools.clone())),
            pools,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The highest migration version applied (read once, at open).
    pub fn schema_version(&self) -> i64 {
        self.schema_version
    }

    /// The highest migration version this build embeds.
    pub fn latest_schema_version() -> i64 {
        MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
    }

    /// Closes both pools, waiting for connections in use to be returned (checkpoints the WAL).
    pub async fn close(&self) {
        self.pools.reader.close().await;
        self.pools.writer.close().await;
    }

    pub fn agents(&self) -> Arc<SqliteAgentRepo> {
        Arc::clone(&self.agents)
    }

    pub fn sessions(&self) -> Arc<SqliteSessionRepo> {
        Arc::clone(&self.sessions)
    }

    pub fn policies(&self) -> Arc<SqlitePolicyRepo> {
        Arc::clone(&self.policies)
    }

    pub fn settings(&self) -> Arc<SqliteSettingsRepo> {
        Arc::clone(&self.settings)
    }

    pub fn kill_switch(&self) -> Arc<SqliteKillSwitchRepo> {
        Arc::clone(&self.kill_switch)
    }

    pub fn audit(&self) -> Arc<SqliteAuditRepo> {
        Arc::clone(&self.audit)
    }

    pub fn transactions(&self) -> Arc<SqliteTxRepo> {
        Arc::clone(&self.transactions)
    }

    pub fn webhooks(&self) -> Arc<SqliteWebhookRepo> {
        Arc::clone(&self.webhooks)
    }

    /// OPS-06: findings, tier floors and the anomaly rebuild's reads.
    pub fn anomalies(&self) -> Arc<SqliteAnomalyRepo> {
        Arc::clone(&self.anomalies)
    }

    /// The notifier's cursor, queue, held-back counts and log.
    pub fn notifications(&self) -> Arc<SqliteNotificationRepo> {
        Arc::clone(&self.notifications)
    }

    /// Audit rows with `id > after_id`, oldest first, at most `limit`: the input of
    /// [`waiaas_core::audit::verify_chain`] (start with `after_id = 0` and
    /// [`waiaas_core::audit::GENESIS_HASH`], then continue from the last id and hash of each batch).
    pub async fn audit_chain(&self, after_id: i64, limit: u32) -> Result<Vec<AuditRecord>> {
        audit::chain_after(&self.pools.reader, after_id, limit).await
    }

    /// Walks the whole audit chain in batches of `batch` rows and reports how many rows verified and the first
    /// break, if any (`waiaas audit verify`). Memory stays bounded by the batch.
    pub async fn verify_audit_chain(&self, batch: u32) -> Result<(u64, std::result::Result<(), ChainBreak>)> {
        let (mut prev, mut after, mut verified) = (GENESIS_HASH.to_owned(), 0, 0u64);
        loop {
            let rows = self.audit_chain(after, batch).await?;
            let Some(last) = rows.last() else { return Ok((verified, Ok(()))) };
            after = last.id;
            let links =
                rows.iter().map(|r| ChainLink { id: r.id, event: &r.event, prev_hash: &r.prev_hash, hash: &r.hash });
            match verify_chain(&prev, links) {
                Ok(hash) => prev = hash,
                Err(broken) => return Ok((verified, Err(broken))),
            }
            verified += rows.len() as u64;
        }
    }

    /// Installs the key that seals the audit chain's head (derived from the master password at unlock) after
    /// checking the stored head with it, in one write transaction:
    ///
    /// * no head yet (a fresh database, or the first unlock after the upgrade that added heads): the log is sealed
    ///   as it stands, after an `AUDIT_HEAD_SEALED` row (`now`) when it already has rows;
    /// * a head that matches the end of the log: nothing is written;
    /// * a head that does not ([`HeadInstalled::Broken`]): nothing is written and the key is **not** installed,
    ///   so the finding stays in place for `waiaas audit verify`; the host should not go on.
    pub async fn install_audit_head_key(&self, key: HeadKey, now: UnixSeconds) -> Result<HeadInstalled> {
        let mut tx = self.pools.begin_write().await?;
        let state = audit::head_state(&mut tx).await?;
        let installed = if state.sealed.is_none() {
            let system = RequestContext::system();
            let record = (state.last.last_id > 0).then_some((&system, now, SealReason::NoHead));
            let (end, recorded) = audit::seal_log_end(&mut tx, &key, state.last, record).await?;
            HeadInstalled::Sealed { last_id: end.last_id, recorded }
        } else {
            match state.check(&key) {
                Ok(()) => HeadInstalled::Intact { last_id: state.last.last_id },
                Err(finding) => return Ok(HeadInstalled::Broken(finding)),
            }
        };
        tx.commit().await.map_err(db_err)?;
        self.pools.head_key.install(key);
        Ok(installed)
    }

    /// `waiaas audit reseal`: accepts the log as it stands. When the stored head does not match the end of the log
    /// under `key`, records the finding as an `AUDIT_HEAD_SEALED` row (by `ctx`, at `now`) and seals the head after
    /// it; returns the finding and the recorded event, or `None` when the head already matched. Installs the key.
    pub async fn reseal_audit_head(
        &self,
        key: HeadKey,
        ctx: &RequestContext,
        now: UnixSeconds,
    ) -> Result<Option<(HeadFinding, Event)>> {
        let mut tx = self.pools.begin_write().await?;
        let state = audit::head_state(&mut tx).await?;
        let resealed = match state.check(&key) {
            Ok(()) => None,
            Err(finding) => {
                let record = Some((ctx, now, SealReason::Reseal(finding.clone())));
                let (_, recorded) = audit::seal_log_end(&mut tx, &key, state.last, record).await?;
                tx.commit().await.map_err(db_err)?;
                recorded.map(|event| (finding, event))
            }
        };
        self.pools.head_key.install(key);
        Ok(resealed)
    }

    /// The sealed audit head and the end of the log, read in one read transaction (`waiaas audit verify` checks
    /// them with [`AuditHeadState::check`]).
    pub async fn audit_head_state(&self) -> Result<AuditHeadState> {
        let mut tx = self.pools.reader.begin().await.map_err(db_err)?;
        audit::head_state(&mut tx).await
    }

    /// `PRAGMA integrity_check`: `Ok(())` when SQLite answers exactly `ok`, else the first problems it reports
    /// as an internal error.
    pub async fn integrity_check(&self) -> Result<()> {
        let rows: Vec<String> =
            sqlx::query_scalar("PRAGMA integrity_check").fetch_all(&self.pools.reader).await.map_err(db_err)?;
        match rows.as_slice() {
            [ok] if ok == "ok" => Ok(()),
            _ => Err(Error::internal_msg(format!("integrity check failed: {}", rows.join("; ")))),
        }
    }

    /// Writes a consistent copy of the live database to `dest` (`VACUUM INTO`), without blocking writers for
    /// longer than the copy's read transaction. `dest` must not exist.
    pub async fn snapshot_to(&self, dest: &Path) -> Result<()> {
        let dest = dest.to_str().ok_or_else(|| Error::internal_msg("snapshot path is not valid UTF-8"))?;
        sqlx::query("VACUUM INTO ?").bind(dest).execute(&self.pools.reader).await.map_err(|e| {
            // SQLITE_FULL: the snapshot's device is full, which the operator can act on.
            let full = e.as_database_error().is_some_and(|d| d.code().is_some_and(|c| c == "13"));
            match full {
                true => Error {
                    code: waiaas_core::ErrorCode::StorageFull,
                    message: "no space left on the device".into(),
                    ..db_err(e)
                },
                false => db_err(e),
            }
        })?;
        Ok(())
    }
}

async fn read_schema_version(pool: &SqlitePool) -> Result<i64> {
    let version: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = 1")
        .fetch_one(pool)
        .await
        .map_err(db_err)?;
    Ok(version.unwrap_or(0))
}

/// Creates an empty database file readable by the owner only; leaves an existing file alone.
fn create_private_file(path: &Path) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::internal(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{TestDb, count_audit_rows};

    #[tokio::test]
    async fn migrations_apply_on_a_fresh_file_and_reopen_is_idempotent() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("waiaas.db");
        assert!(!path.exists());
        let db = Database::open(&path).await.unwrap();
        assert!(path.exists());
        assert_eq!(db.schema_version(), 9);
        assert_eq!(db.schema_version(), Database::latest_schema_version());
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             AND name != '_sqlx_migrations' ORDER BY name",
        )
        .fetch_all(&db.pools.reader)
        .await
        .unwrap();
        assert_eq!(
            tables,
            [
                "agents",
                "anomaly_findings",
                "audit_head",
                "audit_logs",
                "kill_switch",
                "notification_cursor",
                "notification_digests",
                "notification_logs",
                "notification_outbox",
                "policies",
                "reserved_totals",
                "sessions",
                "settings",
                "tier_floors",
                "transactions",
                "webhook_logs",
                "webhook_outbox",
                "webhooks"
            ]
        );
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&db.pools.writer).await.unwrap();
        assert_eq!(mode, "wal");
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(&db.pools.writer).await.unwrap();
        assert_eq!(synchronous, 1, "NORMAL");
        let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys").fetch_one(&db.pools.writer).await.unwrap();
        assert_eq!(foreign_keys, 1);
        use waiaas_core::ports::SettingsRepo;
        db.settings().put("k", "v").await.unwrap();
        db.close().await;

        let db = Database::open(&path).await.unwrap();
        assert_eq!(db.schema_version(), 9);
        let applied: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations").fetch_one(&db.pools.reader).await.unwrap();
        assert_eq!(applied, MIGRATOR.iter().count() as i64, "reopening applies nothing again");
        let kill_rows: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM kill_switch").fetch_one(&db.pools.reader).await.unwrap();
        assert_eq!(kill_rows, 1, "the seed row is not duplicated");
        let value: String =
            sqlx::query_scalar("SELECT value FROM settings WHERE key = 'k'").fetch_one(&db.pools.reader).await.unwrap();
        assert_eq!(value, "v", "data survives a reopen");
        db.close().await;
    }

    /// A database left at schema 1 (as the previous release wrote it) upgrades in place: its rows survive and
    /// read back as pipeline records with the new columns at their defaults.
    /// A database file at `path` built by only the given `migrations` (an older release's schema), holding
    /// `agent`; `scratch` keeps the copied migration files.
    async fn older_database(
        scratch: &Path,
        path: &Path,
        migrations: &[&str],
        agent: &waiaas_core::domain::Agent,
    ) -> SqlitePool {
        let only = scratch.join("migrations");
        std::fs::create_dir(&only).unwrap();
        for file in migrations {
            std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(file), only.join(file))
                .unwrap();
        }
        let options = SqliteConnectOptions::new().filename(path).create_if_missing(true).foreign_keys(true);
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await.unwrap();
        sqlx::migrate::Migrator::new(only.as_path()).await.unwrap().run(&pool).await.unwrap();
        sqlx::query(
            "INSERT INTO agents (id, name, chain, network, address, status, created_at, updated_at) \
             VALUES (?, 'old', 'ethereum', 'anvil', ?, 'ACTIVE', 1, 1)",
        )
        .bind(agent.id.to_string())
        .bind(agent.address.to_string())
        .execute(&pool)
        .await
        .unwrap();
        pool
    }

    /// The migration files numbered below `version`, in order: the schema of the release before that migration,
    /// whatever other migrations exist by then.
    fn migrations_before(version: i64) -> Vec<String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.split('_').next().and_then(|n| n.parse::<i64>().ok()).is_some_and(|n| n < version))
            .collect();
        files.sort();
        files
    }

    /// A database from before the anomaly tables (0007) upgrades in place: its final transactions are what the
    /// anomaly rebuild reads, and its agents take findings and floors.
    #[tokio::test]
    async fn a_database_before_the_anomaly_tables_upgrades_and_takes_findings_and_floors() {
        use waiaas_core::anomaly::{Finding, FindingRecord, TierFloor};
        use waiaas_core::domain::{Tier, TxStatus};
        use waiaas_core::event::EventType;
        use waiaas_core::ports::{AnomalyRepo, TxRepo};

        let t = TestDb::new().await;
        let agent = t.agent();
        let confirmed = t.tx(agent.id, TxStatus::Confirmed, 3);
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("before-anomaly.db");
        {
            let before = migrations_before(7);
            assert!(before.len() >= 5 && before.iter().all(|f| !f.starts_with("0007")), "{before:?}");
            let pool =
                older_database(dir.path(), &path, &before.iter().map(String::as_str).collect::<Vec<_>>(), &agent).await;
            sqlx::query(
                "INSERT INTO transactions (id, agent_id, type, status, tier, network, request, reserved, created_at, \
                 updated_at) VALUES (?, ?, 'TRANSFER', 'CONFIRMED', 'INSTANT', 'anvil', ?, '[]', 5, 6)",
            )
            .bind(confirmed.id.to_string())
            .bind(agent.id.to_string())
            .bind(confirmed.kind.to_json().to_string())
            .execute(&pool)
            .await
            .unwrap();
            pool.close().await;
        }
        let db = Database::open(&path).await.unwrap();
        assert_eq!(db.schema_version(), Database::latest_schema_version());
        let rebuilt = db.anomalies().final_since(waiaas_core::UnixSeconds(0), None, 10).await.unwrap();
        assert_eq!(rebuilt.iter().map(|r| r.id).collect::<Vec<_>>(), [confirmed.id]);
        let now = waiaas_core::UnixSeconds(100);
        let floor = TierFloor {
            agent_id: agent.id,
            tier: Tier::Delay,
            expires_at: now.plus_seconds(60),
            rule: "A-01".into(),
            updated_at: now,
        };
        let finding = FindingRecord {
            id: 0,
            agent_id: agent.id,
            tx_id: Some(confirmed.id),
            finding: Finding::new("A-01", 2.0, 1.0, 3_600, "USD"),
            shadow: false,
            created_at: now,
        };
        let event = Box::new(move |_: &FindingRecord, _: Option<&TierFloor>| {
            waiaas_core::event::Event::new(EventType::AnomalyDetected, &RequestContext::system(), now)
        });
        db.anomalies().record(&finding, Some(floor.clone()), event).await.unwrap();
        assert_eq!(db.transactions().snapshot(agent.id, now).await.unwrap().tier_floor, Some(floor));
        db.close().await;
    }

    #[tokio::test]
    async fn a_version_1_database_upgrades_with_its_rows() {
        use waiaas_core::domain::{Asset, TxKind, TxStatus};
        use waiaas_core::ports::TxRepo;
        use waiaas_core::{Amount, TxId};

        let t = TestDb::new().await;
        let (agent, old_id) = (t.agent(), TxId::generate(&t.clock, &t.entropy));
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("old.db");
        {
            let pool = older_database(dir.path(), &path, &["0001_init.sql"], &agent).await;
            let request = TxKind::Transfer { to: agent.address, amount: Amount::from_u128(9) }.to_json();
            sqlx::query(
                "INSERT INTO transactions (id, agent_id, type, status, tier, network, request, reserved_amount, \
                 tx_hash, created_at, updated_at) \
                 VALUES (?, ?, 'TRANSFER', 'CONFIRMED', 'INSTANT', 'anvil', ?, '9', '0xfeed', 5, 6)",
            )
            .bind(old_id.to_string())
            .bind(agent.id.to_string())
            .bind(request.to_string())
            .execute(&pool)
            .await
            .unwrap();
            let version: i64 =
                sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations").fetch_one(&pool).await.unwrap();
            assert_eq!(version, 1, "the fixture stops at schema 1");
            pool.close().await;
        }

        let db = Database::open(&path).await.unwrap();
        assert_eq!(db.schema_version(), Database::latest_schema_version());
        let old = db.transactions().get(old_id).await.unwrap().expect("the old row survives");
        assert_eq!(
            (old.status, old.tx_hash.as_deref(), old.reserved.as_slice(), old.attempts, old.raw_tx, old.usd_value),
            (TxStatus::Confirmed, Some("0xfeed"), &[][..], 0, None, None)
        );
        assert_eq!((old.created_at.0, old.updated_at.0), (5, 6));
        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'transactions' \
             AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .fetch_all(&db.pools.reader)
        .await
        .unwrap();
        assert_eq!(
            indexes,
            [
                "idx_transactions_agent_id",
                "idx_transactions_agent_status",
                "idx_transactions_agent_time",
                "idx_transactions_final_time",
                "idx_transactions_work"
            ]
        );
        // The upgraded file takes pipeline rows.
        let new = TestDb { dir, db, clock: t.clock, entropy: t.entropy };
        let record = new.tx(agent.id, TxStatus::Pending, 4);
        new.admit(&record).await;
        let snapshot = new.db.transactions().snapshot(agent.id, waiaas_core::UnixSeconds(0)).await.unwrap();
        assert_eq!(snapshot.reserved, [(Asset::Native, Amount::from_u128(4))]);
        assert_eq!(new.db.transactions().list(agent.id, None, 10).await.unwrap().len(), 2);
        new.db.close().await;
    }

    /// A database at schema 3 (before the nonce was stored) upgrades in place: a row signed then reads back with
    /// no nonce (so the worker never rebuilds it, [`waiaas_core::ports::TxRecord::nonce`]), and the column takes
    /// the nonce of the next signature.
    #[tokio::test]
    async fn a_version_3_database_upgrades_and_its_signed_rows_have_no_nonce() {
        use waiaas_core::domain::TxStatus;
        use waiaas_core::event::EventType;
        use waiaas_core::ports::{Submission, TxRepo, TxUpdate};

        let t = TestDb::new().await;
        let agent = t.agent();
        let (signed, executing) = (t.tx(agent.id, TxStatus::Submitted, 3), t.tx(agent.id, TxStatus::Executing, 4));
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("schema-3.db");
        {
            let migrations = ["0001_init.sql", "0002_pipeline.sql", "0003_reserved_totals.sql"];
            let pool = older_database(dir.path(), &path, &migrations, &agent).await;
            for record in [&signed, &executing] {
                sqlx::query(
                    "INSERT INTO transactions (id, agent_id, type, status, tier, network, request, reserved, \
                     tx_hash, raw_tx, created_at, updated_at) VALUES (?, ?, 'TRANSFER', ?, 'INSTANT', 'anvil', ?, \
                     '[]', ?, ?, 5, 6)",
                )
                .bind(record.id.to_string())
                .bind(agent.id.to_string())
                .bind(record.status.as_str())
                .bind(record.kind.to_json().to_string())
                .bind((record.status == TxStatus::Submitted).then_some("0xfeed"))
                .bind((record.status == TxStatus::Submitted).then_some(vec![2u8, 0xf8]))
                .execute(&pool)
                .await
                .unwrap();
            }
            pool.close().await;
        }

        let db = Database::open(&path).await.unwrap();
        assert_eq!(db.schema_version(), Database::latest_schema_version());
        let old = db.transactions().get(signed.id).await.unwrap().expect("the signed row survives");
        assert_eq!((old.status, old.tx_hash.as_deref(), old.nonce), (TxStatus::Submitted, Some("0xfeed"), None));
        let negative = sqlx::query("UPDATE transactions SET nonce = -1 WHERE id = ?")
            .bind(signed.id.to_string())
            .execute(&db.pools.writer)
            .await;
        assert!(negative.is_err(), "a nonce is never negative");
        let update = TxUpdate { tx_hash: Some("0xbeef".into()), nonce: Some(12), ..TxUpdate::default() };
        let event = t.event(EventType::TxSubmitted).agent(agent.id).tx(executing.id);
        assert_eq!(db.transactions().submit(executing.id, &update, event).await.unwrap(), Submission::Recorded);
        assert_eq!(db.transactions().get(executing.id).await.unwrap().unwrap().nonce, Some(12));
        db.close().await;
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_new_database_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let t = TestDb::new().await;
        let mode = std::fs::metadata(t.db.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[tokio::test]
    async fn readers_cannot_write() {
        let t = TestDb::new().await;
        let result =
            sqlx::query("INSERT INTO settings (key, value) VALUES ('a', 'b')").execute(&t.db.pools.reader).await;
        assert!(result.is_err(), "the reader pool is read-only");
    }

    #[tokio::test]
    async fn snapshot_is_a_consistent_copy() {
        let t = TestDb::new().await;
        let agent = t.agent();
        t.insert_agent(&agent).await;
        let dest = t.dir.path().join("copy.db");
        t.db.snapshot_to(&dest).await.unwrap();
        let copy = Database::open(&dest).await.unwrap();
        use waiaas_core::ports::AgentRepo;
        assert_eq!(copy.agents().get(agent.id).await.unwrap(), Some(agent));
        assert_eq!(count_audit_rows(&copy).await, 1);
        copy.close().await;
    }
}
