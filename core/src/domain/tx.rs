//! Transaction status machine: PENDING → QUEUED → EXECUTING → SUBMITTED → CONFIRMED, or FAILED / CANCELLED /
//! EXPIRED. Each move is a function that refuses an illegal step.

use super::TransitionError;
use crate::TxId;

/// The text an agent's owner signs (EIP-191) to approve or reject an APPROVAL-tier transaction, with a nonce from
/// `GET /v1/nonce`. Fixed layout so a signature for one transaction or decision cannot be reused for another.
pub fn approval_message(tx_id: TxId, approve: bool, nonce: &str) -> String {
    let action = if approve { "approve" } else { "reject" };
    format!("WAIaaS: {action} transaction {tx_id}\nNonce: {nonce}")
}

/// Where a transaction request is in the pipeline.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum TxStatus {
    /// Admitted, waiting for the worker (INSTANT, NOTIFY).
    Pending,
    /// Waiting for its DELAY or the owner (APPROVAL).
    Queued,
    /// Being built and signed (or waiting for a retry); not signed yet.
    Executing,
    /// Signed and broadcast; waiting for its receipt.
    Submitted,
    /// Included and succeeded.
    Confirmed,
    /// Gave up, reverted or could not be built.
    Failed,
    /// Denied, or cancelled before signing.
    Cancelled,
    /// The approval window passed.
    Expired,
}

impl TxStatus {
    /// Every status, in pipeline order.
    pub const ALL: [TxStatus; 8] = [
        TxStatus::Pending,
        TxStatus::Queued,
        TxStatus::Executing,
        TxStatus::Submitted,
        TxStatus::Confirmed,
        TxStatus::Failed,
        TxStatus::Cancelled,
        TxStatus::Expired,
    ];

    /// The wire name (`PENDING`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            TxStatus::Pending => "PENDING",
            TxStatus::Queued => "QUEUED",
            TxStatus::Executing => "EXECUTING",
            TxStatus::Submitted => "SUBMITTED",
            TxStatus::Confirmed => "CONFIRMED",
            TxStatus::Failed => "FAILED",
            TxStatus::Cancelled => "CANCELLED",
            TxStatus::Expired => "EXPIRED",
        }
    }

    /// The status of a wire name.
    pub fn parse(s: &str) -> Option<TxStatus> {
        TxStatus::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// CONFIRMED, FAILED, CANCELLED or EXPIRED: nothing happens to it any more.
    pub fn is_final(self) -> bool {
        matches!(self, TxStatus::Confirmed | TxStatus::Failed | TxStatus::Cancelled | TxStatus::Expired)
    }

    fn step(self, next: TxStatus, allowed_from: &[TxStatus]) -> Result<TxStatus, TransitionError> {
        if allowed_from.contains(&self) {
            Ok(next)
        } else {
            Err(TransitionError { from: self.as_str(), to: next.as_str() })
        }
    }

    /// Policy put the request into a DELAY or APPROVAL wait.
    pub fn queue(self) -> Result<TxStatus, TransitionError> {
        self.step(TxStatus::Queued, &[TxStatus::Pending])
    }

    /// Signing starts: straight from PENDING (INSTANT/NOTIFY) or after the wait.
    pub fn execute(self) -> Result<TxStatus, TransitionError> {
        self.step(TxStatus::Executing, &[TxStatus::Pending, TxStatus::Queued])
    }

    /// Signed and recorded before the broadcast.
    pub fn submit(self) -> Result<TxStatus, TransitionError> {
        self.step(TxStatus::Submitted, &[TxStatus::Executing])
    }

    /// Its receipt shows success.
    pub fn confirm(self) -> Result<TxStatus, TransitionError> {
        self.step(TxStatus::Confirmed, &[TxStatus::Submitted])
    }

    /// It failed for good.
    pub fn fail(self) -> Result<TxStatus, TransitionError> {
        self.step(TxStatus::Failed, &[TxStatus::Pending, TxStatus::Executing, TxStatus::Submitted])
    }

    /// Cancelled by the agent, the owner, the operator, a policy denial, the kill switch or the agent's suspension;
    /// only while unsigned. An EXECUTING row is unsigned: it is being built, or waits for a retry, or its earlier
    /// signed version provably did not land (the worker rebuilds only then); the signing step records SUBMITTED
    /// only if the row is still EXECUTING, so a signature made meanwhile is dropped, never broadcast.
    pub fn cancel(self) -> Result<TxStatus, TransitionError> {
        self.step(TxStatus::Cancelled, &[TxStatus::Pending, TxStatus::Queued, TxStatus::Executing])
    }

    /// An APPROVAL wait ran out.
    pub fn expire(self) -> Result<TxStatus, TransitionError> {
        self.step(TxStatus::Expired, &[TxStatus::Queued])
    }

    /// A submitted transaction the chain never took (its nonce was used by another) is built again.
    pub fn rebuild(self) -> Result<TxStatus, TransitionError> {
        self.step(TxStatus::Executing, &[TxStatus::Submitted])
    }

    /// Whether some step of the machine leads from `self` to `to` (`self == to` is an in-place update).
    pub fn can_become(self, to: TxStatus) -> bool {
        let steps: [fn(TxStatus) -> Result<TxStatus, TransitionError>; 8] = [
            TxStatus::queue,
            TxStatus::execute,
            TxStatus::submit,
            TxStatus::confirm,
            TxStatus::fail,
            TxStatus::cancel,
            TxStatus::expire,
            TxStatus::rebuild,
        ];
        self == to || steps.iter().any(|step| step(self) == Ok(to))
    }
}

#[cfg(test)]
mod tests {
    use super::TxStatus::{self, *};

    #[test]
    fn happy_path_and_refusals() {
        assert_eq!(
            Pending.queue().and_then(TxStatus::execute).and_then(TxStatus::submit).and_then(TxStatus::confirm),
            Ok(Confirmed)
        );
        assert_eq!(Pending.execute(), Ok(Executing));
        assert_eq!(Executing.cancel(), Ok(Cancelled), "unsigned work can be cancelled");
        assert!(Submitted.cancel().is_err(), "signed work cannot be cancelled");
        assert!(Confirmed.fail().is_err());
        assert!(Pending.expire().is_err());
        assert_eq!(Queued.expire(), Ok(Expired));
        assert_eq!(Submitted.rebuild(), Ok(Executing));
        assert!(Submitted.can_become(Executing) && Pending.can_become(Pending) && !Confirmed.can_become(Pending));
        for status in TxStatus::ALL {
            assert_eq!(TxStatus::parse(status.as_str()), Some(status));
        }
    }
}
