//! Hosts that embed `waiaas-core` without the REST server, as cargo examples that are also tests:
//!
//! - `embed_evm`: the core over the SQLite, fs and EVM adapters, with a policy of the host's own, sends a native
//!   transfer on a real anvil node and checks the recipient's on-chain balance
//!   (`cargo run -p waiaas-examples --example embed_evm`);
//! - `embed_mocks`: the core entirely in memory over the `mockall` mocks of its ports (feature `mocks`), checking
//!   the calls it makes (`cargo run -p waiaas-examples --example embed_mocks`).
//!
//! `cargo test -p waiaas-examples` (part of `scripts/test`) runs both.
