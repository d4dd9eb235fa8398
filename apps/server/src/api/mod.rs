//! The REST operations, one module per resource, each an `#[OpenApi]` impl with its wire DTOs.
//!
//! DTOs are converted from core types by hand here (serialization stays at the edge). Handlers take their
//! authentication extractor first, so an unauthenticated request is refused before its parameters or body are
//! looked at.

pub mod admin;
pub mod agents;
pub mod anomaly;
pub mod audit;
pub mod backup;
pub mod health;
pub mod notifications;
pub mod owner;
pub mod policies;
pub mod sessions;
pub mod simulate;
pub mod transactions;
pub mod wallet;
pub mod webhooks;

use poem_openapi::Tags;
use waiaas_core::ports::Page;

/// Operation groups in the document.
#[derive(Tags)]
pub enum ApiTags {
    /// Liveness and version.
    Health,
    /// Agent wallets (master password).
    Agents,
    /// Agent session tokens.
    Sessions,
    /// Policies that tier or deny transactions (master password).
    Policies,
    /// The calling agent's own wallet (session token).
    Wallet,
    /// The calling agent's transactions (session token).
    Transactions,
    /// The owner's approval or rejection of APPROVAL-tier transactions (EIP-191 signature).
    Owner,
    /// Kill switch.
    Admin,
    /// Audit-log queries (master password).
    Audit,
    /// Outbound webhooks (master password).
    Webhooks,
    /// Anomaly findings and tier floors (master password).
    Anomalies,
    /// Notifications for people: the log and test messages (master password).
    Notifications,
}

/// Every operation of the API, in document order.
pub type Apis = (
    health::HealthApi,
    agents::AgentsApi,
    sessions::SessionsApi,
    policies::PoliciesApi,
    wallet::WalletApi,
    transactions::TransactionsApi,
    simulate::SimulateApi,
    owner::OwnerApi,
    admin::AdminApi,
    backup::BackupApi,
    audit::AuditApi,
    webhooks::WebhooksApi,
    anomaly::AnomalyApi,
    notifications::NotificationsApi,
);

/// All operation groups.
pub fn apis() -> Apis {
    (
        health::HealthApi,
        agents::AgentsApi,
        sessions::SessionsApi,
        policies::PoliciesApi,
        wallet::WalletApi,
        transactions::TransactionsApi,
        simulate::SimulateApi,
        owner::OwnerApi,
        admin::AdminApi,
        backup::BackupApi,
        audit::AuditApi,
        webhooks::WebhooksApi,
        anomaly::AnomalyApi,
        notifications::NotificationsApi,
    )
}

/// Splits a core page into `(data, nextCursor, hasMore)`.
pub(crate) fn page<T, D>(page: Page<T>, convert: impl Fn(T) -> D) -> (Vec<D>, Option<String>, bool) {
    let has_more = page.next_cursor.is_some();
    (page.items.into_iter().map(convert).collect(), page.next_cursor, has_more)
}
