//! WAIaaS core: the pure domain of the wallet daemon.
//!
//! Domain types, the error-code table, the event model, the port traits that adapters implement, and the
//! services (agents, sessions, policies, kill switch, master auth) that run over those ports. This crate does no
//! IO and knows no runtime, database or HTTP library: time and randomness come in through [`ports::Clock`] and
//! [`ports::Entropy`], persistence through the repository ports.

#![warn(missing_docs)]

pub mod acl;
pub mod amount;
pub mod anomaly;
pub mod audit;
pub mod backup;
pub mod domain;
pub mod error;
pub mod event;
pub mod ids;
pub mod limiter;
pub mod metrics;
pub mod notifications;
pub mod policy_engine;
pub mod ports;
pub mod prices;
pub mod services;
pub mod system;
pub mod time;
pub mod webhooks;

pub use amount::Amount;
pub use error::{Error, ErrorCode, Result};
pub use ids::{AgentId, PolicyId, SessionId, TxId, WebhookId};
pub use time::UnixSeconds;
