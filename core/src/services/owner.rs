//! Owner authentication for approvals: a single-use nonce from `GET /v1/nonce`, and an EIP-191 `personal_sign`
//! signature over a message that names the transaction, the decision and that nonce. A reused, unknown or
//! expired nonce is refused, as is a signature by anyone but the agent's owner.

use std::collections::HashMap;
use std::sync::Mutex;

use alloy_primitives::Signature;

use super::Waiaas;
use crate::domain::EvmAddress;
use crate::error::{Error, ErrorCode, Result};
use crate::{TxId, UnixSeconds};

/// How long an issued nonce stays usable.
pub const NONCE_TTL_SECONDS: i64 = 300;
/// Most nonces outstanding at once (oldest dropped first), so the table cannot grow without bound.
const MAX_OUTSTANDING: usize = 10_000;

/// Outstanding nonces and when each expires.
#[derive(Default)]
pub(super) struct NonceBook(Mutex<HashMap<String, UnixSeconds>>);

/// The text the owner signs. Fixed layout so a signature for one transaction or decision cannot be reused for
/// another.
pub fn approval_message(tx_id: TxId, approve: bool, nonce: &str) -> String {
    let action = if approve { "approve" } else { "reject" };
    format!("WAIaaS: {action} transaction {tx_id}\nNonce: {nonce}")
}

impl Waiaas {
    /// Issues a fresh single-use nonce.
    pub fn issue_nonce(&self) -> (String, UnixSeconds) {
        let mut bytes = [0u8; 16];
        self.ports.entropy.fill(&mut bytes);
        let nonce = hex::encode(bytes);
        let expires_at = self.now().plus_seconds(NONCE_TTL_SECONDS);
        if let Ok(mut book) = self.nonces.0.lock() {
            let now = self.now();
            book.retain(|_, expiry| *expiry > now);
            if book.len() >= MAX_OUTSTANDING
                && let Some(oldest) = book.iter().min_by_key(|(_, expiry)| **expiry).map(|(k, _)| k.clone())
            {
                book.remove(&oldest);
            }
            book.insert(nonce.clone(), expires_at);
        }
        (nonce, expires_at)
    }

    /// Verifies an owner's signed decision and consumes its nonce. `message` is the signed text (already
    /// base64-decoded), `signature` 65 bytes hex (`0x` optional). Returns the recovered owner address.
    pub fn verify_owner_signature(
        &self,
        claimed: &str,
        message: &str,
        signature: &str,
        tx_id: TxId,
        approve: bool,
    ) -> Result<EvmAddress> {
        let unauthorized = |why: &str| Error::new(ErrorCode::Unauthorized, format!("owner signature refused: {why}"));
        let claimed: EvmAddress = claimed.parse().map_err(|_| unauthorized("X-Owner-Address is not an address"))?;
        let nonce = message
            .rsplit_once("\nNonce: ")
            .map(|(_, nonce)| nonce.to_owned())
            .ok_or_else(|| unauthorized("the message does not carry a nonce"))?;
        if message != approval_message(tx_id, approve, &nonce) {
            return Err(unauthorized("the message does not name this transaction and decision"));
        }
        let bytes =
            hex::decode(signature.trim_start_matches("0x")).map_err(|_| unauthorized("signature is not hex"))?;
        let signature = Signature::try_from(bytes.as_slice()).map_err(|_| unauthorized("signature is not 65 bytes"))?;
        let recovered = signature
            .recover_address_from_msg(message.as_bytes())
            .map_err(|_| unauthorized("signature does not recover"))?;
        if recovered != claimed.0 {
            return Err(unauthorized("the signature was made by another address"));
        }
        let now = self.now();
        let mut book = self.nonces.0.lock().map_err(|_| Error::internal_msg("nonce table poisoned"))?;
        match book.remove(&nonce) {
            Some(expiry) if expiry > now => Ok(claimed),
            Some(_) => Err(unauthorized("the nonce expired")),
            None => Err(unauthorized("the nonce is unknown or was already used")),
        }
    }
}
