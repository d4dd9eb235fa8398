-- WAIaaS schema, version 7: OPS-06 anomaly detection. Forward-only: never edit this file once released.
--
-- `anomaly_findings`: one row per finding of an anomaly rule (shadow ones included), listed newest first by
-- `(created_at, id)`, for all agents or one (keyset pages over the two indexes below). No foreign keys, as for the
-- audit log: a finding outlives whatever it is about.
CREATE TABLE anomaly_findings (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id       TEXT    NOT NULL,
    tx_id          TEXT,
    rule           TEXT    NOT NULL,
    observed       REAL    NOT NULL,
    threshold      REAL    NOT NULL,
    window_seconds INTEGER NOT NULL CHECK (window_seconds >= 0),
    unit           TEXT    NOT NULL,
    shadow         INTEGER NOT NULL CHECK (shadow IN (0, 1)),
    created_at     INTEGER NOT NULL
) STRICT;

CREATE INDEX idx_anomaly_findings_time ON anomaly_findings (created_at, id);
CREATE INDEX idx_anomaly_findings_agent_time ON anomaly_findings (agent_id, created_at, id);

-- `tier_floors`: at most one floor per agent, read into every admission snapshot (send and simulate). A floor
-- applies while `expires_at` is after the daemon's clock; an expired row is ignored, not deleted, and replaced by
-- the next finding. A finding never lowers a floor in force: the higher tier and the later expiry win.
CREATE TABLE tier_floors (
    agent_id   TEXT    PRIMARY KEY NOT NULL REFERENCES agents (id),
    tier       TEXT    NOT NULL CHECK (tier IN ('INSTANT', 'NOTIFY', 'DELAY', 'APPROVAL')),
    expires_at INTEGER NOT NULL,
    rule       TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

-- The startup rebuild of the anomaly state reads the final transactions of the last 7 days in
-- `(updated_at, id)` order (a row's `updated_at` is the time of its final status).
CREATE INDEX idx_transactions_final_time ON transactions (updated_at, id) WHERE status IN ('CONFIRMED', 'FAILED');
