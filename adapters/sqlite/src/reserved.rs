//! Reservations: the amounts a transaction holds against its agent's limits while it is not final.
//!
//! Each row keeps its own as a JSON array (`reserved`, written by [`to_json`]). The `reserved_totals` table (0003)
//! keeps their per-agent, per-asset sum over the agent's non-final rows, so an admission reads one row per asset
//! instead of re-summing every waiting request. Every write that inserts a non-final row ([`reserve`]) or moves
//! one to a final status ([`release`]) changes the totals in the same transaction; [`rebuild`] fills the table
//! from the rows once, when the database is upgraded to the schema that adds it. Totals saturate at 2^256 - 1, like the sums they
//! stand for; releasing from a saturated total (whose true value is unknown) recomputes the agent from its rows.

use std::collections::BTreeMap;

use sqlx::{Row, SqliteConnection};
use waiaas_core::domain::Asset;
use waiaas_core::{Amount, Result};

use crate::error::{db_err, decode_err};
use crate::tx_rows::{asset_from_str, asset_to_str, from_json, status_list};

/// The statuses whose reservation counts: every status that is not final.
pub(crate) fn holding_statuses() -> String {
    status_list(|s| !s.is_final())
}

fn asset_order(asset: &Asset) -> Option<String> {
    match asset {
        Asset::Native => None,
        Asset::Token(address) => Some(address.to_string().to_lowercase()),
    }
}

/// Adds `more` into `totals`, per asset.
fn add(totals: &mut Vec<(Asset, Amount)>, more: &[(Asset, Amount)]) {
    for (asset, amount) in more {
        match totals.iter_mut().find(|(a, _)| a == asset) {
            Some((_, total)) => *total = total.saturating_add(*amount),
            None => totals.push((*asset, *amount)),
        }
    }
}

/// The agent's reserved totals, native coin first, then tokens by address.
pub(crate) async fn totals(conn: &mut SqliteConnection, agent: &str) -> Result<Vec<(Asset, Amount)>> {
    let rows = sqlx::query("SELECT asset, amount FROM reserved_totals WHERE agent_id = ?")
        .bind(agent)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
    let bad = |what| decode_err("reserved_totals", "amount", what);
    let mut totals = rows
        .iter()
        .map(|row| {
            let asset: String = row.try_get("asset").map_err(db_err)?;
            let amount: String = row.try_get("amount").map_err(db_err)?;
            Ok((
                asset_from_str(&asset).map_err(|what| decode_err("reserved_totals", "asset", what))?,
                amount.parse::<Amount>().map_err(|_| bad("not a decimal string"))?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    totals.sort_by_cached_key(|(asset, _)| asset_order(asset));
    Ok(totals)
}

/// Writes one total: a zero total has no row.
async fn store(conn: &mut SqliteConnection, agent: &str, asset: &Asset, amount: Amount) -> Result<()> {
    let query = if amount == Amount::ZERO {
        sqlx::query("DELETE FROM reserved_totals WHERE agent_id = ? AND asset = ?")
            .bind(agent)
            .bind(asset_to_str(asset))
    } else {
        sqlx::query(
            "INSERT INTO reserved_totals (agent_id, asset, amount) VALUES (?, ?, ?) \
             ON CONFLICT (agent_id, asset) DO UPDATE SET amount = excluded.amount",
        )
        .bind(agent)
        .bind(asset_to_str(asset))
        .bind(amount.to_string())
    };
    query.execute(&mut *conn).await.map_err(db_err)?;
    Ok(())
}

/// Adds a new non-final row's reservation to its agent's totals, `current` (read or written in the same
/// transaction). Returns the new totals, in [`totals`] order.
pub(crate) async fn reserve(
    conn: &mut SqliteConnection,
    agent: &str,
    current: Vec<(Asset, Amount)>,
    reserved: &[(Asset, Amount)],
) -> Result<Vec<(Asset, Amount)>> {
    let mut updated = current;
    add(&mut updated, reserved);
    for (asset, amount) in updated.iter().filter(|(asset, _)| reserved.iter().any(|(a, _)| a == asset)) {
        store(conn, agent, asset, *amount).await?;
    }
    updated.sort_by_cached_key(|(asset, _)| asset_order(asset));
    Ok(updated)
}

/// Takes a row's reservation off its agent's totals as the row becomes final.
pub(crate) async fn release(conn: &mut SqliteConnection, agent: &str, reserved: &[(Asset, Amount)]) -> Result<()> {
    if reserved.is_empty() {
        return Ok(());
    }
    let current = totals(conn, agent).await?;
    let mut released = Vec::new();
    add(&mut released, reserved);
    let mut left = Vec::with_capacity(released.len());
    for (asset, amount) in &released {
        let total = current.iter().find(|(a, _)| a == asset).map_or(Amount::ZERO, |(_, t)| *t);
        match total.checked_sub(*amount) {
            Some(rest) if total != Amount::MAX => left.push((asset, rest)),
            // Saturated: its true value is unknown.
            Some(_) => return recompute(conn, Some(agent)).await,
            None => {
                tracing::warn!(agent, "reserved total below a row's reservation; recomputed from the rows");
                return recompute(conn, Some(agent)).await;
            }
        }
    }
    for (asset, rest) in left {
        store(conn, agent, asset, rest).await?;
    }
    Ok(())
}

/// The non-final rows' reservations, of one agent (`?`, by `idx_transactions_agent_status`) or of all.
pub(crate) fn rows_sql(of_one_agent: bool) -> String {
    let sql = format!("SELECT agent_id, reserved FROM transactions WHERE status IN ({})", holding_statuses());
    if of_one_agent { format!("{sql} AND agent_id = ?") } else { sql }
}

/// Sums the `reserved` arrays of the non-final rows, per agent (one agent, or every agent).
async fn sum_rows(conn: &mut SqliteConnection, agent: Option<&str>) -> Result<BTreeMap<String, Vec<(Asset, Amount)>>> {
    let rows = match agent {
        Some(agent) => sqlx::query(&rows_sql(true)).bind(agent).fetch_all(&mut *conn).await,
        None => sqlx::query(&rows_sql(false)).fetch_all(&mut *conn).await,
    }
    .map_err(db_err)?;
    let mut sums: BTreeMap<String, Vec<(Asset, Amount)>> = BTreeMap::new();
    for row in &rows {
        let owner: String = row.try_get("agent_id").map_err(db_err)?;
        let raw: String = row.try_get("reserved").map_err(db_err)?;
        let reserved = from_json(&raw).map_err(|what| decode_err("transactions", "reserved", what))?;
        add(sums.entry(owner).or_default(), &reserved);
    }
    Ok(sums)
}

/// Recomputes the totals of one agent, or of every agent, from the rows.
async fn recompute(conn: &mut SqliteConnection, agent: Option<&str>) -> Result<()> {
    match agent {
        Some(agent) => {
            sqlx::query("DELETE FROM reserved_totals WHERE agent_id = ?").bind(agent).execute(&mut *conn).await
        }
        None => sqlx::query("DELETE FROM reserved_totals").execute(&mut *conn).await,
    }
    .map_err(db_err)?;
    for (owner, sums) in sum_rows(conn, agent).await? {
        for (asset, amount) in sums {
            store(conn, &owner, &asset, amount).await?;
        }
    }
    Ok(())
}

/// The schema version (migration 0003) that added `reserved_totals`.
pub(crate) const TOTALS_SINCE_SCHEMA: i64 = 3;

/// Recomputes the whole table from the rows (on the writer, inside a write transaction): when an upgrade adds it.
pub(crate) async fn rebuild(conn: &mut SqliteConnection) -> Result<()> {
    recompute(conn, None).await
}

#[cfg(test)]
mod tests {
    use crate::tx_rows::to_json;
    use serde_json::json;
    use waiaas_core::domain::{KillSwitch, KillSwitchState, TokenRef, TxKind, TxStatus};
    use waiaas_core::ports::{KillSwitchRepo, TxRecord, TxRepo, TxUpdate};
    use waiaas_core::{AgentId, TxId, UnixSeconds};

    use super::*;
    use crate::Database;
    use crate::test_support::{TestDb, address};

    #[test]
    fn the_reservation_format_round_trips_and_refuses_what_it_does_not_know() {
        let reserved = vec![(Asset::Native, Amount::MAX), (Asset::Token(address(0xabc)), Amount::ZERO)];
        let stored = to_json(&reserved);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&stored).unwrap(),
            json!([{"asset": "native", "amount": Amount::MAX.to_string()}, {"asset": address(0xabc).to_string(), "amount": "0"}])
        );
        assert_eq!(from_json(&stored), Ok(reserved));
        assert_eq!(from_json("[]"), Ok(vec![]));
        let lower = format!(r#"[{{"asset":"0x{:040x}","amount":"1"}}]"#, 0xabc);
        assert_eq!(from_json(&lower), Ok(vec![(Asset::Token(address(0xabc)), Amount::from_u128(1))]));
        for bad in [
            "{}",
            r#"[{"asset":"native"}]"#,
            r#"[{"asset":"native","amount":"-1"}]"#,
            r#"[{"asset":"native","amount":1}]"#,
            r#"[{"asset":"ether","amount":"1"}]"#,
            r#"[{"asset":"native","amount":"1","extra":true}]"#,
        ] {
            assert!(from_json(bad).is_err(), "{bad}");
        }
    }

    /// A queued approval of `amount` of token 101: it reserves the whole amount.
    fn approval(t: &TestDb, agent: AgentId, amount: Amount) -> TxRecord {
        let token = TokenRef { address: address(101), decimals: 6, symbol: "T".into() };
        let kind = TxKind::Approve { spender: address(4), amount, token };
        TxRecord { reserved: kind.outflows(), kind, ..t.tx(agent, TxStatus::Queued, 0) }
    }

    /// The stored totals of each agent, next to the sum over its rows.
    async fn stored_and_summed(db: &Database, agents: &[AgentId]) -> Vec<(Vec<(Asset, Amount)>, Vec<(Asset, Amount)>)> {
        let mut conn = db.pools.reader.acquire().await.unwrap();
        let mut out = Vec::new();
        for agent in agents {
            let agent = agent.to_string();
            let stored = totals(&mut conn, &agent).await.unwrap();
            let mut summed = sum_rows(&mut conn, Some(&agent)).await.unwrap().remove(&agent).unwrap_or_default();
            summed.sort_by_cached_key(|(asset, _)| asset_order(asset));
            out.push((stored, summed));
        }
        out
    }

    async fn assert_in_step(db: &Database, agents: &[AgentId], step: &str) {
        for (stored, summed) in stored_and_summed(db, agents).await {
            assert_eq!(stored, summed, "after {step}");
        }
    }

    /// Every write that changes what is held keeps the totals equal to the sum over the non-final rows:
    /// admissions in each status, moves between non-final statuses and to final ones, the kill switch, releasing
    /// from a saturated total, and a reopen after the table was damaged.
    #[tokio::test]
    async fn the_totals_follow_every_write_and_equal_the_sum_over_the_rows() {
        let t = TestDb::new().await;
        let repo = t.db.transactions();
        let (a, b) = (t.agent(), t.agent());
        t.insert_agent(&a).await;
        t.insert_agent(&b).await;
        let agents = [a.id, b.id];
        let mut rows: Vec<(TxId, TxStatus)> = Vec::new();
        let mut b_rows: Vec<(TxId, TxStatus)> = Vec::new();
        for (i, status) in TxStatus::ALL.into_iter().enumerate() {
            let record = t.tx(a.id, status, 1 << i);
            t.admit(&record).await;
            rows.push((record.id, status));
            let record = t.tx(b.id, status, 1_000);
            t.admit(&record).await;
            b_rows.push((record.id, status));
        }
        assert_in_step(&t.db, &agents, "admissions").await;
        // PENDING, QUEUED, EXECUTING and SUBMITTED are the first four statuses: 1+2+4+8.
        assert_eq!(stored_and_summed(&t.db, &[a.id]).await[0].0, [(Asset::Native, Amount::from_u128(15))]);

        let moves = [
            (TxStatus::Pending, TxStatus::Queued),
            (TxStatus::Executing, TxStatus::Failed),
            (TxStatus::Submitted, TxStatus::Confirmed),
        ];
        for (from, to) in moves {
            let (id, _) = rows.iter().find(|(_, s)| *s == from).copied().unwrap();
            assert!(repo.transition(id, from, to, &TxUpdate::default(), None).await.unwrap());
            assert_in_step(&t.db, &agents, &format!("{from:?} -> {to:?}")).await;
        }
        // Left: the queued rows, 1 + 2.
        assert_eq!(stored_and_summed(&t.db, &[a.id]).await[0].0, [(Asset::Native, Amount::from_u128(3))]);

        // 2^255 + 2^255 + 1 saturates; releasing one 2^255 leaves exactly 2^255 + 1.
        let half: Amount =
            "57896044618658097711785492504343953926634992332820282019728792003956564819968".parse().unwrap();
        let huge = [approval(&t, a.id, half), approval(&t, a.id, half), approval(&t, a.id, Amount::from_u128(1))];
        for record in &huge {
            t.admit(record).await;
        }
        let token = Asset::Token(address(101));
        assert_eq!(stored_and_summed(&t.db, &[a.id]).await[0].0[1], (token, Amount::MAX));
        assert!(
            repo.transition(huge[0].id, TxStatus::Queued, TxStatus::Cancelled, &TxUpdate::default(), None)
                .await
                .unwrap()
        );
        assert_eq!(stored_and_summed(&t.db, &[a.id]).await[0].0[1], (token, half.saturating_add(Amount::from_u128(1))));
        assert_in_step(&t.db, &agents, "a release from a saturated total").await;

        // A total found below what a row holds (never expected) is recomputed from the rows, not underflowed.
        sqlx::query("UPDATE reserved_totals SET amount = '1' WHERE agent_id = ?")
            .bind(b.id.to_string())
            .execute(&t.db.pools.writer)
            .await
            .unwrap();
        let (executing, _) = b_rows.iter().find(|(_, s)| *s == TxStatus::Executing).copied().unwrap();
        let none = TxUpdate::default();
        assert!(repo.transition(executing, TxStatus::Executing, TxStatus::Failed, &none, None).await.unwrap());
        assert_in_step(&t.db, &agents, "a release from a total out of step").await;
        assert_eq!(stored_and_summed(&t.db, &[b.id]).await[0].0, [(Asset::Native, Amount::from_u128(3_000))]);

        // The kill switch cancels every PENDING, QUEUED and EXECUTING row: only SUBMITTED rows hold anything.
        t.admit(&t.tx(a.id, TxStatus::Executing, 64)).await;
        assert_in_step(&t.db, &agents, "an EXECUTING admission").await;
        let tripped = KillSwitch { state: KillSwitchState::Suspended, reason: None, changed_at: Some(UnixSeconds(1)) };
        t.db.kill_switch().activate(&tripped, t.activation()).await.unwrap();
        assert_in_step(&t.db, &agents, "the kill switch").await;
        assert_eq!(stored_and_summed(&t.db, &[a.id]).await[0].0, [], "a held only unsigned rows");
        assert_eq!(stored_and_summed(&t.db, &[b.id]).await[0].0, [(Asset::Native, Amount::from_u128(1_000))]);

        // The totals are stored, not recomputed at open: a reopen reads them as written.
        t.db.close().await;
        let reopened = Database::open(&t.dir.path().join("waiaas.db")).await.unwrap();
        assert_in_step(&reopened, &agents, "a reopen").await;
        assert_eq!(stored_and_summed(&reopened, &[b.id]).await[0].0, [(Asset::Native, Amount::from_u128(1_000))]);
    }

    /// A database written before the totals existed (schema 2) gets them filled from its rows by the upgrade.
    #[tokio::test]
    async fn the_upgrade_that_adds_the_totals_fills_them_from_the_rows() {
        let t = TestDb::new().await;
        let (agent, other) = (t.agent(), t.agent());
        let dir = tempfile::TempDir::new().unwrap();
        let before_totals = dir.path().join("migrations");
        std::fs::create_dir(&before_totals).unwrap();
        for file in ["0001_init.sql", "0002_pipeline.sql"] {
            let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(file);
            std::fs::copy(source, before_totals.join(file)).unwrap();
        }
        let path = dir.path().join("schema-2.db");
        {
            let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path).create_if_missing(true);
            let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect_with(options).await.unwrap();
            sqlx::migrate::Migrator::new(before_totals.as_path()).await.unwrap().run(&pool).await.unwrap();
            let mut conn = pool.acquire().await.unwrap();
            for owner in [&agent, &other] {
                sqlx::query(
                    "INSERT INTO agents (id, name, chain, network, address, status, created_at, updated_at) \
                     VALUES (?, 'old', 'ethereum', 'anvil', ?, 'ACTIVE', 1, 1)",
                )
                .bind(owner.id.to_string())
                .bind(owner.address.to_string())
                .execute(&mut *conn)
                .await
                .unwrap();
            }
            for (owner, status, amount) in [
                (agent.id, TxStatus::Queued, 5),
                (agent.id, TxStatus::Submitted, 7),
                (agent.id, TxStatus::Confirmed, 100),
                (other.id, TxStatus::Pending, 11),
            ] {
                // The columns of schema 2.
                let record = t.tx(owner, status, amount);
                sqlx::query(
                    "INSERT INTO transactions (id, agent_id, type, status, tier, network, request, reserved, \
                     created_at, updated_at) VALUES (?, ?, 'TRANSFER', ?, 'INSTANT', 'anvil', ?, ?, 1, 1)",
                )
                .bind(record.id.to_string())
                .bind(owner.to_string())
                .bind(status.as_str())
                .bind(record.kind.to_json().to_string())
                .bind(to_json(&record.reserved))
                .execute(&mut *conn)
                .await
                .unwrap();
            }
            drop(conn);
            pool.close().await;
        }
        let upgraded = Database::open(&path).await.unwrap();
        assert_eq!(upgraded.schema_version(), Database::latest_schema_version());
        let stored = stored_and_summed(&upgraded, &[agent.id, other.id]).await;
        assert_eq!(stored[0].0, [(Asset::Native, Amount::from_u128(12))]);
        assert_eq!(stored[1].0, [(Asset::Native, Amount::from_u128(11))]);
    }
}
