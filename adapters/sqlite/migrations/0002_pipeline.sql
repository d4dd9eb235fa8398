-- WAIaaS schema, version 2: what the transaction pipeline stores per request (`TxRecord`). Forward-only: never edit
-- this file once released; add 0003_*.sql.
--
-- Columns of 0001 kept as they are:
--   * `request` holds the canonical request JSON (`TxKind::to_json`) and is the only source the row's kind is read
--     back from; `type`, `to_address` (counterparty) and `amount` (the leaf amount or value; NULL for a batch) are
--     written from it for people reading the table and are never read back.
--   * `reserved_amount` is unused and stays NULL: a single amount cannot say which asset it is counted in. No
--     released version wrote transaction rows, so nothing is carried over. (Dropping a column of a STRICT table
--     with CHECK constraints means rebuilding the table; an unused NULL column costs nothing.)
-- The CHECK lists of `status` and `tier` in 0001 are exactly the `TxStatus::as_str` and `Tier::as_str` forms.

-- The amounts held against the agent's limits while the row is not final (PENDING, QUEUED, EXECUTING,
-- SUBMITTED), as a JSON array of {"asset": "native" | "<0x token address>", "amount": "<decimal string>"}.
-- A final row keeps its array for the record; readers sum only non-final rows.
ALTER TABLE transactions ADD COLUMN reserved TEXT NOT NULL DEFAULT '[]'
    CHECK (json_valid(reserved) AND json_type(reserved) = 'array');
-- The request's USD value when a price was known at admission.
ALTER TABLE transactions ADD COLUMN usd_value REAL;
-- Not executed before this time (Unix seconds): the DELAY tier's wait, or the backoff of a retry.
ALTER TABLE transactions ADD COLUMN execute_after INTEGER;
-- APPROVAL tier: expires at this time unless approved.
ALTER TABLE transactions ADD COLUMN approval_deadline INTEGER;
ALTER TABLE transactions ADD COLUMN approved_at INTEGER;
-- The structured denial code of a request refused by policy (stored CANCELLED); NULL for every other row.
ALTER TABLE transactions ADD COLUMN reason_code TEXT;
-- The signed transaction, from signing on, so a lost broadcast can be repeated.
ALTER TABLE transactions ADD COLUMN raw_tx BLOB;
-- Transient failures counted by the worker.
ALTER TABLE transactions ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0);

-- The worker's query: non-final statuses by equality, due QUEUED rows by `execute_after`. Replaces the
-- status-only index of 0001 (a prefix of this one).
DROP INDEX idx_transactions_status;
CREATE INDEX idx_transactions_work ON transactions (status, execute_after);
-- The admission snapshot's recent requests of one agent (`created_at >= since`, in `(created_at, id)` order); its
-- reservations use idx_transactions_agent_status of 0001, so final rows are never read.
CREATE INDEX idx_transactions_agent_time ON transactions (agent_id, created_at, id);
-- An agent's transactions newest first, keyset on the (time-ordered) id.
CREATE INDEX idx_transactions_agent_id ON transactions (agent_id, id);
