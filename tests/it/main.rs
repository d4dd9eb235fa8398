//! End-to-end tests: one binary, one module per area. Each test starts its own daemon (the real `waiaas`
//! binary on an ephemeral loopback port with a temporary data dir) and, where a chain is involved, its own anvil
//! node, and drives them through `waiaas-client` or raw HTTP.

mod support;

mod acl;
mod anomaly;
mod architecture;
mod audit;
mod backup;
mod clients;
mod coverage;
mod docker;
mod error_classes;
mod faults;
mod foundation;
mod fuzz_api;
mod hygiene;
mod mcp;
mod metrics;
mod monitoring;
mod notifications;
mod pipeline;
mod policy;
mod simulate;
mod solana;
mod webhooks;
