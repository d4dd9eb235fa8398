//! [`SettingsRepo`] over SQLite: the `settings` key-value table (master password hash, token signing key, ...).
//! Values are written as given; the port carries no event, so a put is not audited here.

use async_trait::async_trait;
use waiaas_core::Result;
use waiaas_core::ports::SettingsRepo;

use crate::Pools;
use crate::error::db_err;

/// [`SettingsRepo`] over SQLite.
#[derive(Clone, Debug)]
pub struct SqliteSettingsRepo {
    pools: Pools,
}

impl SqliteSettingsRepo {
    pub(crate) fn new(pools: Pools) -> Self {
        SqliteSettingsRepo { pools }
    }
}

#[async_trait]
impl SettingsRepo for SqliteSettingsRepo {
    async fn get(&self, key: &str) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pools.reader)
            .await
            .map_err(db_err)
    }

    /// Inserts or replaces the value of `key`.
    async fn put(&self, key: &str, value: &str) -> Result<()> {
        let mut tx = self.pools.begin_write().await?;
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{TestDb, count_audit_rows};

    #[tokio::test]
    async fn put_inserts_then_replaces() {
        let t = TestDb::new().await;
        let settings = t.db.settings();
        assert_eq!(settings.get("master_password_hash").await.unwrap(), None);
        settings.put("master_password_hash", "$argon2id$one").await.unwrap();
        settings.put("other", "x").await.unwrap();
        assert_eq!(settings.get("master_password_hash").await.unwrap().as_deref(), Some("$argon2id$one"));
        settings.put("master_password_hash", "$argon2id$two").await.unwrap();
        assert_eq!(settings.get("master_password_hash").await.unwrap().as_deref(), Some("$argon2id$two"));
        assert_eq!(settings.get("other").await.unwrap().as_deref(), Some("x"));
        assert_eq!(count_audit_rows(&t.db).await, 0, "settings carry no event");
    }
}
