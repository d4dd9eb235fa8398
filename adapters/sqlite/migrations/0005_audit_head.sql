-- WAIaaS schema, version 5: the sealed head of the audit chain, so that rows cut off the end of the log are
-- detected (the shortened log alone is still a valid chain). Forward-only.
--
-- One row once sealed: the id and hash of the chain's last audit row, and `mac`, the hex HMAC-SHA256 of both under a
-- key derived from the master password (Argon2id with the salt stored in `settings.audit_head_salt`). Every append
-- moves it in the same write transaction as the rows. The table starts empty: the first unlock after this upgrade
-- seals the log as it stands then (deletions before that moment cannot be detected) and records that as an
-- AUDIT_HEAD_SEALED row when the log already had rows.
CREATE TABLE audit_head (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    last_id   INTEGER NOT NULL,
    last_hash TEXT    NOT NULL,
    mac       TEXT    NOT NULL
) STRICT;
