-- WAIaaS schema, version 4: the account nonce a transaction was signed with. Forward-only: never edit this file
-- once released; add 0005_*.sql.
--
-- Written with SUBMITTED (the signature's nonce) and kept when a row is built again. Before the worker rebuilds a
-- transaction whose broadcast was answered "nonce too low", it proves that the signed one cannot land: the account's
-- nonce at the latest block has moved past this value and the stored hash has no receipt. Rows signed before this
-- version have NULL here: for them that proof is not possible, so they are never rebuilt.
ALTER TABLE transactions ADD COLUMN nonce INTEGER CHECK (nonce IS NULL OR nonce >= 0);
