-- WAIaaS schema, version 8: webhook deliveries read from the audit log. Forward-only.
--
-- Writing an event no longer queues its deliveries: each webhook reads the audit rows after `delivered_through`
-- (the last row its in-order stream has handled: delivered, given up, or moved to the retry queue) that its
-- subscription matches, and moves the mark forward when it settles them. `webhook_outbox` keeps only the
-- deliveries to try again (a failed attempt, a redelivery); rows queued by schema 6/7 stay there and are
-- delivered as before. An existing webhook's stream starts at the end of the log: what was written until now is
-- already queued.
ALTER TABLE webhooks ADD COLUMN delivered_through INTEGER NOT NULL DEFAULT 0;
UPDATE webhooks SET delivered_through = (SELECT COALESCE(MAX(id), 0) FROM audit_logs);
