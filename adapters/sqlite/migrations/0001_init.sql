-- WAIaaS schema, version 1. Migrations are forward-only: never edit this file once released; add 0002_*.sql.
-- Times are INTEGER Unix seconds; ids are UUID v7 strings (time ordered) except audit_logs.id (the cursor).

CREATE TABLE agents (
    id            TEXT    PRIMARY KEY NOT NULL,
    name          TEXT    NOT NULL,
    chain         TEXT    NOT NULL,
    network       TEXT    NOT NULL,
    address       TEXT    NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('ACTIVE', 'SUSPENDED', 'TERMINATED')),
    owner_address TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;

CREATE INDEX idx_agents_status ON agents (status);

CREATE TABLE sessions (
    id            TEXT    PRIMARY KEY NOT NULL,
    agent_id      TEXT    NOT NULL REFERENCES agents (id),
    token_hash    TEXT    NOT NULL UNIQUE,
    constraints   TEXT    CHECK (constraints IS NULL OR json_valid(constraints)),
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    revoked_at    INTEGER,
    renewal_count INTEGER NOT NULL DEFAULT 0 CHECK (renewal_count >= 0)
) STRICT;

CREATE INDEX idx_sessions_agent ON sessions (agent_id, id);

CREATE TABLE policies (
    id         TEXT    PRIMARY KEY NOT NULL,
    agent_id   TEXT    REFERENCES agents (id),
    type       TEXT    NOT NULL,
    rules      TEXT    NOT NULL CHECK (json_valid(rules)),
    enabled    INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE INDEX idx_policies_agent ON policies (agent_id, id);

-- Filled by the transaction pipeline; the kill switch already cancels rows that are not yet signed.
CREATE TABLE transactions (
    id              TEXT    PRIMARY KEY NOT NULL,
    agent_id        TEXT    NOT NULL REFERENCES agents (id),
    session_id      TEXT,
    type            TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('PENDING', 'QUEUED', 'EXECUTING', 'SUBMITTED', 'CONFIRMED',
                                                       'FAILED', 'CANCELLED', 'EXPIRED')),
    tier            TEXT    CHECK (tier IS NULL OR tier IN ('INSTANT', 'NOTIFY', 'DELAY', 'APPROVAL')),
    network         TEXT    NOT NULL,
    to_address      TEXT,
    amount          TEXT,
    request         TEXT    NOT NULL CHECK (json_valid(request)),
    reserved_amount TEXT,
    tx_hash         TEXT,
    error           TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;

CREATE INDEX idx_transactions_agent_status ON transactions (agent_id, status);
CREATE INDEX idx_transactions_status ON transactions (status);

-- Append-only, hash-chained. No foreign keys: removing an agent, session or transaction never touches its rows.
CREATE TABLE audit_logs (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at INTEGER NOT NULL,
    event_type TEXT    NOT NULL,
    agent_id   TEXT,
    session_id TEXT,
    tx_id      TEXT,
    actor      TEXT    NOT NULL,
    severity   TEXT    NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    details    TEXT    NOT NULL CHECK (json_valid(details)),
    ip_address TEXT,
    prev_hash  TEXT    NOT NULL,
    hash       TEXT    NOT NULL
) STRICT;

-- Every index ends in (created_at, id) so that a filtered page, newest first, is an index range walk with the
-- keyset `(created_at, id) < (?, ?)` as its bound: no sort, no OFFSET, same cost at any depth.
CREATE INDEX idx_audit_agent_type_time ON audit_logs (agent_id, event_type, created_at, id);
CREATE INDEX idx_audit_agent_time      ON audit_logs (agent_id, created_at, id);
CREATE INDEX idx_audit_time            ON audit_logs (created_at, id);
CREATE INDEX idx_audit_type_time       ON audit_logs (event_type, created_at, id);
CREATE INDEX idx_audit_tx              ON audit_logs (tx_id);
CREATE INDEX idx_audit_severity_time   ON audit_logs (severity, created_at, id);
CREATE INDEX idx_audit_actor_time      ON audit_logs (actor, created_at, id);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE kill_switch (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    state      TEXT    NOT NULL CHECK (state IN ('ACTIVE', 'SUSPENDED', 'LOCKED')),
    reason     TEXT,
    changed_at INTEGER
) STRICT;

INSERT INTO kill_switch (id, state, reason, changed_at) VALUES (1, 'ACTIVE', NULL, NULL);
