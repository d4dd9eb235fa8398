-- WAIaaS schema, version 6: outbound webhooks (OPS-04). Forward-only.
--
-- `webhooks`: one row per subscription. The secret is never stored in plaintext: `secret_hash` is the hex SHA-256
-- of the `whsec_...` text (to identify it), `secret_encrypted` is nonce || AES-256-GCM of it under a key derived
-- from the master password (a sub-key of the audit head key), bound to the webhook id. During a rotation's grace
-- period the previous secret is kept the same way until `previous_secret_expires_at` (Unix seconds).
-- `event_types` is the JSON list of subscribed wire names, or ["*"].
CREATE TABLE webhooks (
    id                         TEXT    PRIMARY KEY,
    url                        TEXT    NOT NULL,
    secret_hash                TEXT    NOT NULL,
    secret_encrypted           BLOB    NOT NULL,
    previous_secret_encrypted  BLOB,
    previous_secret_expires_at INTEGER,
    event_types                TEXT    NOT NULL,
    active                     INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    description                TEXT,
    created_at                 INTEGER NOT NULL,
    updated_at                 INTEGER NOT NULL
) STRICT;

-- One row per delivery attempt. `delivery_id` is `evt_<audit row id>` (the `webhook-id` header); `status` is the
-- delivery's state after the attempt: success, pending (another attempt is scheduled) or failed (given up).
-- `response_time` is in milliseconds. No foreign key: deleting a webhook keeps its log.
CREATE TABLE webhook_logs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id    TEXT    NOT NULL,
    delivery_id   TEXT    NOT NULL,
    event_type    TEXT    NOT NULL,
    attempt       INTEGER NOT NULL CHECK (attempt >= 1),
    status        TEXT    NOT NULL CHECK (status IN ('success', 'pending', 'failed')),
    status_code   INTEGER,
    response_time INTEGER NOT NULL,
    error         TEXT,
    created_at    INTEGER NOT NULL
) STRICT;

-- Newest-first keyset pages of one webhook's log, with or without the status filter.
CREATE INDEX idx_webhook_logs_webhook ON webhook_logs (webhook_id, id);
CREATE INDEX idx_webhook_logs_webhook_status ON webhook_logs (webhook_id, status, id);
-- Redelivery looks a delivery up by webhook and id.
CREATE INDEX idx_webhook_logs_delivery ON webhook_logs (webhook_id, delivery_id);

-- The durable queue: one row per (webhook, audit row) still to deliver, written by the audit append in the same
-- transaction as the event. `attempts` made so far; `next_attempt_at` in Unix milliseconds. A delivery in flight
-- keeps its row until its attempt is logged, so a crash sends it again after the restart (at least once, with the
-- same webhook-id).
CREATE TABLE webhook_outbox (
    webhook_id      TEXT    NOT NULL,
    audit_id        INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at INTEGER NOT NULL,
    PRIMARY KEY (webhook_id, audit_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX idx_webhook_outbox_due ON webhook_outbox (next_attempt_at);
