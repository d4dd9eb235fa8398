-- WAIaaS schema, version 9: notifications for people (ntfy, Slack, Discord, Telegram, email). Forward-only: never
-- edit this file once released. Nothing here holds a credential: channels are named, never their URLs or tokens.
--
-- `notification_cursor`: the last audit row the notifier has routed (one row). The notifier reads the audit rows
-- after it and writes its queue entries together with the new cursor in one transaction of its own, so an event's
-- transaction pays nothing for notifications, and an event committed is notified after a crash (at least once).
-- It starts at the log's end: an upgraded database does not send its history.
CREATE TABLE notification_cursor (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    last_audit_id INTEGER NOT NULL CHECK (last_audit_id >= 0)
) STRICT;

INSERT INTO notification_cursor (id, last_audit_id) SELECT 1, COALESCE(MAX(id), 0) FROM audit_logs;

-- What still has to be sent: one entry per event (the channels to try in priority order, a JSON array of
-- channel names), or per (critical event, channel). `rounds` made so far; `next_attempt_at` in Unix milliseconds.
-- An entry stays until its round is settled, so a crash mid-send sends it again after the restart.
CREATE TABLE notification_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    audit_id        INTEGER NOT NULL,
    channels        TEXT    NOT NULL,
    rounds          INTEGER NOT NULL DEFAULT 0 CHECK (rounds >= 0),
    next_attempt_at INTEGER NOT NULL
) STRICT;

CREATE INDEX idx_notification_outbox_due ON notification_outbox (next_attempt_at, id);
CREATE INDEX idx_notification_outbox_audit ON notification_outbox (audit_id);

-- Messages a channel's rate limit held back, counted per event type until the channel's next digest.
CREATE TABLE notification_digests (
    channel    TEXT    NOT NULL,
    event_type TEXT    NOT NULL,
    count      INTEGER NOT NULL CHECK (count > 0),
    first_at   INTEGER NOT NULL,
    PRIMARY KEY (channel, event_type)
) STRICT, WITHOUT ROWID;

-- One row per attempt on a channel, message held back, digest or test message. `error` never holds a URL or a
-- credential; `response_time` in milliseconds. Keyset pages newest first, overall or by channel or status.
CREATE TABLE notification_logs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    channel       TEXT    NOT NULL CHECK (channel IN ('ntfy', 'slack', 'discord', 'telegram', 'email')),
    kind          TEXT    NOT NULL CHECK (kind IN ('event', 'digest', 'test')),
    audit_id      INTEGER,
    event_type    TEXT,
    attempt       INTEGER NOT NULL CHECK (attempt >= 1),
    status        TEXT    NOT NULL CHECK (status IN ('sent', 'failed', 'held')),
    error         TEXT,
    response_time INTEGER NOT NULL CHECK (response_time >= 0),
    created_at    INTEGER NOT NULL
) STRICT;

CREATE INDEX idx_notification_logs_channel ON notification_logs (channel, id);
CREATE INDEX idx_notification_logs_status ON notification_logs (status, id);
CREATE INDEX idx_notification_logs_audit ON notification_logs (audit_id) WHERE audit_id IS NOT NULL;
