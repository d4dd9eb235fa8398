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

pub mod agents;
#[cfg(test)]
mod atomicity_tests;
pub mod audit;
mod error;
pub mod kill_switch;
pub mod policies;
pub mod sessions;
pub mod settings;
#[cfg(test)]
mod test_support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, Transaction};
use waiaas_core::ports::AuditRecord;
use waiaas_core::{Error, Result};

pub use agents::SqliteAgentRepo;
pub use audit::SqliteAuditRepo;
pub use kill_switch::SqliteKillSwitchRepo;
pub use policies::SqlitePolicyRepo;
pub use sessions::SqliteSessionRepo;
pub use settings::SqliteSettingsRepo;

use error::db_err;

/// The embedded migrations (forward-only).
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How long a connection waits on a lock held by another connection (or process) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Read-only connections for queries.
const READER_CONNECTIONS: u32 = 4;

/// The two pools every repository shares.
#[derive(Clone, Debug)]
pub(crate) struct Pools {
    /// One connection: all write transactions, in order.
    pub(crate) writer: SqlitePool,
    /// Read-only connections.
    pub(crate) reader: SqlitePool,
}

impl Pools {
    /// Starts a write transaction holding SQLite's write lock from its first statement.
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>> {
        self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)
    }
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
}

impl Database {
    /// Opens the database at `path`, creating the file (mode 0600 on Unix: it holds the password hash and the
    /// token signing key) if it does not exist, and applies pending migrations. The parent directory must exist.
    pub async fn open(path: &Path) -> Result<Database> {
        create_private_file(path)?;
        let base = SqliteConnectOptions::new().filename(path).busy_timeout(BUSY_TIMEOUT).foreign_keys(true);
        let writer_options = base
            .clone()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(writer_options)
            .await
            .map_err(db_err)?;
        MIGRATOR.run(&writer).await.map_err(Error::internal)?;
        // The journal mode is persistent (set by the writer above); readers only read.
        let reader = SqlitePoolOptions::new()
            .max_connections(READER_CONNECTIONS)
            .connect_with(base.read_only(true))
            .await
            .map_err(db_err)?;
        let pools = Pools { writer, reader };
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

    /// Audit rows with `id > after_id`, oldest first, at most `limit`: the input of
    /// [`waiaas_core::audit::verify_chain`] (start with `after_id = 0` and
    /// [`waiaas_core::audit::GENESIS_HASH`], then continue from the last id and hash of each batch).
    pub async fn audit_chain(&self, after_id: i64, limit: u32) -> Result<Vec<AuditRecord>> {
        audit::chain_after(&self.pools.reader, after_id, limit).await
    }

    /// Writes a consistent copy of the live database to `dest` (`VACUUM INTO`), without blocking writers for
    /// longer than the copy's read transaction. `dest` must not exist.
    pub async fn snapshot_to(&self, dest: &Path) -> Result<()> {
        let dest = dest.to_str().ok_or_else(|| Error::internal_msg("snapshot path is not valid UTF-8"))?;
        sqlx::query("VACUUM INTO ?").bind(dest).execute(&self.pools.reader).await.map_err(db_err)?;
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
        assert_eq!(db.schema_version(), 1);
        assert_eq!(db.schema_version(), Database::latest_schema_version());
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             AND name != '_sqlx_migrations' ORDER BY name",
        )
        .fetch_all(&db.pools.reader)
        .await
        .unwrap();
        assert_eq!(tables, ["agents", "audit_logs", "kill_switch", "policies", "sessions", "settings", "transactions"]);
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
        assert_eq!(db.schema_version(), 1);
        let applied: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations").fetch_one(&db.pools.reader).await.unwrap();
        assert_eq!(applied, 1, "reopening applies nothing again");
        let kill_rows: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM kill_switch").fetch_one(&db.pools.reader).await.unwrap();
        assert_eq!(kill_rows, 1, "the seed row is not duplicated");
        let value: String =
            sqlx::query_scalar("SELECT value FROM settings WHERE key = 'k'").fetch_one(&db.pools.reader).await.unwrap();
        assert_eq!(value, "v", "data survives a reopen");
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
