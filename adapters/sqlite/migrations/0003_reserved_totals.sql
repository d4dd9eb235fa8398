-- WAIaaS schema, version 3: the per-agent, per-asset sum of what the agent's non-final transactions reserve, so an
-- admission reads one row per asset instead of re-summing every waiting request. Forward-only.
--
-- Invariant: for every agent and asset, `amount` is the sum (saturating at 2^256 - 1) of that asset's amounts in
-- the `reserved` arrays of the agent's rows whose status is not final; an asset with nothing reserved has no row.
-- The adapter keeps it in the same write transaction as every insert and every move to a final status, and fills
-- it from the rows when it opens a database that this migration has just upgraded.
-- `amount` is a decimal string: 256-bit amounts do not fit SQLite's integers.
CREATE TABLE reserved_totals (
    agent_id TEXT NOT NULL REFERENCES agents (id),
    asset TEXT NOT NULL,
    amount TEXT NOT NULL,
    PRIMARY KEY (agent_id, asset)
) STRICT, WITHOUT ROWID;
