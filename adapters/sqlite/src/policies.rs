//! [`PolicyRepo`] over SQLite: the `policies` table. Rules are stored as their canonical JSON and parsed back
//! with [`PolicyRules::parse`]; every change writes its audit row in the same transaction.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use waiaas_core::domain::{Policy, PolicyRules, PolicyType};
use waiaas_core::event::Event;
use waiaas_core::ports::PolicyRepo;
use waiaas_core::{AgentId, ErrorCode, PolicyId, Result, UnixSeconds};

use crate::error::{db_err, decode_err, is_foreign_key_violation, not_found, parse_column, parse_json};
use crate::{Pools, commit_with_audit, fetch_by_id, fetch_page, keyset_page, require_row};

const TABLE: &str = "policies";
pub(crate) const COLUMNS: &str = "id, agent_id, type, rules, enabled, created_at, updated_at";

pub(crate) fn policy_from_row(row: &SqliteRow) -> Result<Policy> {
    let text = |column: &'static str| row.try_get::<String, _>(column).map_err(db_err);
    let agent_id: Option<String> = row.try_get("agent_id").map_err(db_err)?;
    let policy_type = text("type")?;
    let policy_type = PolicyType::parse(&policy_type)
        .ok_or_else(|| decode_err(TABLE, "type", format!("unknown policy type {policy_type:?}")))?;
    let rules = parse_json(TABLE, "rules", &text("rules")?)?;
    Ok(Policy {
        id: parse_column(TABLE, "id", &text("id")?, str::parse::<PolicyId>)?,
        agent_id: agent_id.map(|raw| parse_column(TABLE, "agent_id", &raw, str::parse::<AgentId>)).transpose()?,
        rules: PolicyRules::parse(policy_type, &rules).map_err(|e| decode_err(TABLE, "rules", e))?,
        enabled: row.try_get("enabled").map_err(db_err)?,
        created_at: UnixSeconds(row.try_get("created_at").map_err(db_err)?),
        updated_at: UnixSeconds(row.try_get("updated_at").map_err(db_err)?),
    })
}

/// A write naming an agent that does not exist is `AGENT_NOT_FOUND`.
fn write_err(policy: &Policy) -> impl FnOnce(sqlx::Error) -> waiaas_core::Error + '_ {
    move |e| match policy.agent_id {
        Some(agent_id) if is_foreign_key_violation(&e) => not_found(ErrorCode::AgentNotFound, "agent", agent_id),
        _ => db_err(e),
    }
}

/// [`PolicyRepo`] over SQLite.
#[derive(Clone, Debug)]
pub struct SqlitePolicyRepo {
    pools: Pools,
}

impl SqlitePolicyRepo {
    pub(crate) fn new(pools: Pools) -> Self {
        SqlitePolicyRepo { pools }
    }
}

/// Enabled policies that apply to `agent` (global and its own), by id.
pub(crate) async fn in_force(conn: &mut sqlx::SqliteConnection, agent: AgentId) -> Result<Vec<Policy>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM policies WHERE enabled = 1 AND (agent_id IS NULL OR agent_id = ?) ORDER BY id"
    ))
    .bind(agent.to_string())
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    rows.iter().map(policy_from_row).collect()
}

#[async_trait]
impl PolicyRepo for SqlitePolicyRepo {
    async fn in_force(&self, agent: AgentId) -> Result<Vec<Policy>> {
        let mut conn = self.pools.reader.acquire().await.map_err(db_err)?;
        in_force(&mut conn, agent).await
    }

    async fn insert(&self, policy: &Policy, event: &Event) -> Result<()> {
        let mut tx = self.pools.begin_write().await?;
        sqlx::query(
            "INSERT INTO policies (id, agent_id, type, rules, enabled, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(policy.id.to_string())
        .bind(policy.agent_id.map(|id| id.to_string()))
        .bind(policy.rules.policy_type().as_str())
        .bind(policy.rules.to_json().to_string())
        .bind(policy.enabled)
        .bind(policy.created_at.0)
        .bind(policy.updated_at.0)
        .execute(&mut *tx)
        .await
        .map_err(write_err(policy))?;
        commit_with_audit(tx, event).await
    }

    async fn get(&self, id: PolicyId) -> Result<Option<Policy>> {
        fetch_by_id(&self.pools.reader, COLUMNS, TABLE, id, policy_from_row).await
    }

    async fn list(&self, agent_id: Option<AgentId>, before: Option<PolicyId>, limit: u32) -> Result<Vec<Policy>> {
        let page =
            keyset_page(COLUMNS, TABLE, agent_id.map(|id| id.to_string()), before.map(|id| id.to_string()), limit);
        fetch_page(&self.pools.reader, page, policy_from_row).await
    }

    /// Stores `policy` over the row with its id (everything but `created_at`).
    async fn update(&self, policy: &Policy, event: &Event) -> Result<()> {
        let mut tx = self.pools.begin_write().await?;
        let done = sqlx::query(
            "UPDATE policies SET agent_id = ?, type = ?, rules = ?, enabled = ?, updated_at = ? WHERE id = ?",
        )
        .bind(policy.agent_id.map(|id| id.to_string()))
        .bind(policy.rules.policy_type().as_str())
        .bind(policy.rules.to_json().to_string())
        .bind(policy.enabled)
        .bind(policy.updated_at.0)
        .bind(policy.id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(write_err(policy))?;
        require_row(&done, || not_found(ErrorCode::PolicyNotFound, "policy", policy.id))?;
        commit_with_audit(tx, event).await
    }

    async fn delete(&self, id: PolicyId, event: &Event) -> Result<()> {
        let mut tx = self.pools.begin_write().await?;
        let done = sqlx::query("DELETE FROM policies WHERE id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        require_row(&done, || not_found(ErrorCode::PolicyNotFound, "policy", id))?;
        commit_with_audit(tx, event).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use waiaas_core::event::EventType;

    use super::*;
    use crate::test_support::{TestDb, audit_types, count_audit_rows};

    #[tokio::test]
    async fn every_rule_type_round_trips() {
        let t = TestDb::new().await;
        let agent = t.agent();
        t.insert_agent(&agent).await;
        let address = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        let samples = [
            (
                PolicyType::SpendingLimit,
                json!({"instant_max":"10","notify_max":"20","delay_max":"30","delay_seconds":60,"instant_max_usd":1.5}),
            ),
            (PolicyType::Whitelist, json!({"allowed_addresses":[address]})),
            (PolicyType::AllowedTokens, json!({"tokens":[address]})),
            (PolicyType::ContractWhitelist, json!({"contracts":[]})),
            (PolicyType::ApprovedSpenders, json!({"spenders":[address]})),
            (PolicyType::RateLimit, json!({"max_requests":5,"window_seconds":60})),
            (PolicyType::TimeRestriction, json!({"allowed_hours":[9,10],"allowed_days":[1,2,3]})),
        ];
        for (i, (policy_type, rules)) in samples.into_iter().enumerate() {
            let policy = Policy {
                agent_id: (i % 2 == 0).then_some(agent.id),
                enabled: i % 3 != 0,
                ..t.policy(PolicyRules::parse(policy_type, &rules).unwrap())
            };
            let event = t.event(EventType::PolicyCreated);
            t.db.policies().insert(&policy, &event).await.unwrap();
            assert_eq!(t.db.policies().get(policy.id).await.unwrap(), Some(policy));
        }
        assert_eq!(count_audit_rows(&t.db).await, 8);
    }

    #[tokio::test]
    async fn list_filters_by_agent_newest_first_with_keyset_pages() {
        let t = TestDb::new().await;
        let agent = t.agent();
        t.insert_agent(&agent).await;
        let mut all = Vec::new();
        for i in 0..5 {
            let policy = Policy { agent_id: (i % 2 == 1).then_some(agent.id), ..t.rate_limit_policy() };
            t.db.policies().insert(&policy, &t.event(EventType::PolicyCreated)).await.unwrap();
            all.push(policy);
        }
        all.reverse();
        assert_eq!(t.db.policies().list(None, None, 10).await.unwrap(), all);
        let page = t.db.policies().list(None, None, 2).await.unwrap();
        assert_eq!(page, all[..2]);
        assert_eq!(t.db.policies().list(None, Some(page[1].id), 2).await.unwrap(), all[2..4]);
        let own: Vec<Policy> = all.iter().filter(|p| p.agent_id == Some(agent.id)).cloned().collect();
        assert_eq!(own.len(), 2);
        assert_eq!(t.db.policies().list(Some(agent.id), None, 10).await.unwrap(), own);
        assert_eq!(t.db.policies().list(Some(agent.id), Some(own[0].id), 10).await.unwrap(), own[1..]);
    }

    #[tokio::test]
    async fn update_and_delete_change_the_row_and_audit() {
        let t = TestDb::new().await;
        let policy = t.rate_limit_policy();
        t.db.policies().insert(&policy, &t.event(EventType::PolicyCreated)).await.unwrap();
        let changed = Policy {
            rules: PolicyRules::parse(PolicyType::RateLimit, &json!({"max_requests":9,"window_seconds":10})).unwrap(),
            enabled: false,
            updated_at: UnixSeconds(policy.updated_at.0 + 5),
            created_at: UnixSeconds(0),
            ..policy.clone()
        };
        t.db.policies().update(&changed, &t.event(EventType::PolicyUpdated)).await.unwrap();
        let stored = t.db.policies().get(policy.id).await.unwrap().unwrap();
        assert_eq!(stored, Policy { created_at: policy.created_at, ..changed });
        t.db.policies().delete(policy.id, &t.event(EventType::PolicyDeleted)).await.unwrap();
        assert_eq!(t.db.policies().get(policy.id).await.unwrap(), None);
        assert_eq!(
            audit_types(&t.db).await,
            [EventType::PolicyCreated, EventType::PolicyUpdated, EventType::PolicyDeleted]
        );
    }

    #[tokio::test]
    async fn missing_policies_and_agents_are_not_found_and_not_audited() {
        let t = TestDb::new().await;
        let policy = t.rate_limit_policy();
        let err = t.db.policies().update(&policy, &t.event(EventType::PolicyUpdated)).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::PolicyNotFound);
        let err = t.db.policies().delete(policy.id, &t.event(EventType::PolicyDeleted)).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::PolicyNotFound);
        let orphan = Policy { agent_id: Some(t.agent().id), ..t.rate_limit_policy() };
        let err = t.db.policies().insert(&orphan, &t.event(EventType::PolicyCreated)).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::AgentNotFound);
        assert_eq!(count_audit_rows(&t.db).await, 0);
    }
}
