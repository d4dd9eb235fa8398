//! Owner authentication for approvals: a single-use nonce from `GET /v1/nonce`, and the owner's signature over a
//! message that names the transaction, the decision and that nonce. An EVM owner signs it the EIP-191
//! `personal_sign` way (`0x` + 65 bytes hex, the address recovered from it); a Solana owner signs its bytes with
//! ed25519, as Solana wallets' `signMessage` does (64 bytes in base58, checked against the owner's public key,
//! which is its address). A reused, forged or expired nonce is refused, as is a signature by anyone but the
//! agent's owner.
//!
//! `GET /v1/nonce` is public, so issuing a nonce stores nothing anyone could fill: a nonce is
//! `random (16 bytes) || expiry (8 bytes, big-endian Unix seconds) || tag (16 bytes)`, hex-encoded, where the tag
//! is HMAC-SHA256 of the first two parts under a random key held in memory for the life of the core (a restart
//! voids outstanding nonces). Only *consumed* nonces are remembered, each until its expiry, which makes them
//! single use; a nonce is consumed only after the signature is proven to be the owner's of the transaction's agent,
//! so no one else can grow that set either.

use std::collections::HashMap;
use std::sync::Mutex;

use alloy_primitives::Signature;
use ed25519_dalek::{Signature as Ed25519Signature, VerifyingKey};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::Waiaas;
use crate::domain::{Address, EvmAddress, SolanaAddress};
use crate::error::{Error, ErrorCode, Result};
use crate::ports::Entropy;
use crate::{TxId, UnixSeconds};

/// How long an issued nonce stays usable.
pub const NONCE_TTL_SECONDS: i64 = 300;

const RANDOM_BYTES: usize = 16;
const EXPIRY_BYTES: usize = 8;
const TAG_BYTES: usize = 16;
/// Bytes the tag covers: the random part and the expiry.
const BODY_BYTES: usize = RANDOM_BYTES + EXPIRY_BYTES;
/// Length of a nonce, in bytes (twice that in hex digits).
pub const NONCE_BYTES: usize = BODY_BYTES + TAG_BYTES;
/// Domain separation of the tag, so the key could never authenticate anything but a nonce.
const TAG_CONTEXT: &[u8] = b"WAIaaS owner nonce v1";

type HmacSha256 = Hmac<Sha256>;

/// A nonce whose tag and expiry were checked, not yet consumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct CheckedNonce {
    body: [u8; BODY_BYTES],
    expires_at: UnixSeconds,
}

/// The tag key and the consumed nonces (each with its expiry, forgotten once expired).
pub(super) struct NonceBook {
    key: Zeroizing<[u8; 32]>,
    consumed: Mutex<HashMap<[u8; BODY_BYTES], UnixSeconds>>,
}

impl NonceBook {
    pub(super) fn new(entropy: &dyn Entropy) -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        entropy.fill(key.as_mut());
        NonceBook { key, consumed: Mutex::default() }
    }

    fn mac(&self, body: &[u8; BODY_BYTES]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(self.key.as_ref()).expect("HMAC takes any key length");
        mac.update(TAG_CONTEXT);
        mac.update(body);
        mac
    }

    /// A fresh nonce valid until `now` + [`NONCE_TTL_SECONDS`]. Stores nothing.
    pub(super) fn issue(&self, entropy: &dyn Entropy, now: UnixSeconds) -> (String, UnixSeconds) {
        let expires_at = now.plus_seconds(NONCE_TTL_SECONDS);
        let mut nonce = [0u8; NONCE_BYTES];
        entropy.fill(&mut nonce[..RANDOM_BYTES]);
        nonce[RANDOM_BYTES..BODY_BYTES].copy_from_slice(&expires_at.0.to_be_bytes());
        let mut body = [0u8; BODY_BYTES];
        body.copy_from_slice(&nonce[..BODY_BYTES]);
        let tag = self.mac(&body).finalize().into_bytes();
        nonce[BODY_BYTES..].copy_from_slice(&tag[..TAG_BYTES]);
        (hex::encode(nonce), expires_at)
    }

    /// Checks that `text` is a nonce this book issued and that it has not expired at `now`; the refusal says why.
    pub(super) fn check(&self, text: &str, now: UnixSeconds) -> Result<CheckedNonce, &'static str> {
        const FORGED: &str = "the nonce is not one this daemon issued";
        let bytes: [u8; NONCE_BYTES] = hex::decode(text).ok().and_then(|b| b.try_into().ok()).ok_or(FORGED)?;
        let mut body = [0u8; BODY_BYTES];
        body.copy_from_slice(&bytes[..BODY_BYTES]);
        self.mac(&body).verify_truncated_left(&bytes[BODY_BYTES..]).map_err(|_| FORGED)?;
        let mut expiry = [0u8; EXPIRY_BYTES];
        expiry.copy_from_slice(&body[RANDOM_BYTES..]);
        let expires_at = UnixSeconds(i64::from_be_bytes(expiry));
        if expires_at <= now {
            return Err("the nonce expired");
        }
        Ok(CheckedNonce { body, expires_at })
    }

    /// Marks a checked nonce used; refused if it was used before or has expired by `now`. Expired entries are
    /// forgotten here: an expired nonce is refused by [`NonceBook::check`] without them.
    pub(super) fn consume(&self, nonce: CheckedNonce, now: UnixSeconds) -> Result<(), &'static str> {
        if nonce.expires_at <= now {
            return Err("the nonce expired");
        }
        let mut consumed = self.consumed.lock().map_err(|_| "the nonce table is unavailable")?;
        consumed.retain(|_, expiry| *expiry > now);
        match consumed.insert(nonce.body, nonce.expires_at) {
            None => Ok(()),
            Some(_) => Err("the nonce was already used"),
        }
    }
}

pub use crate::domain::tx::approval_message;

impl Waiaas {
    /// Issues a fresh single-use nonce (nothing is stored until it is used).
    pub fn issue_nonce(&self) -> (String, UnixSeconds) {
        self.nonces.issue(self.ports.entropy.as_ref(), self.now())
    }

    /// Verifies an owner's signed decision on transaction `tx_id` and consumes its nonce. `claimed` is the signer's
    /// address (its form says its family), `message` the signed text (already base64-decoded), `signature` as
    /// the module docs say for that family. A flaw in the message, nonce or signature is `UNAUTHORIZED`; a valid
    /// signature by someone other than the agent's owner is `FORBIDDEN` and leaves the nonce unused. Returns the
    /// owner's address.
    pub async fn verify_owner_signature(
        &self,
        claimed: &str,
        message: &str,
        signature: &str,
        tx_id: TxId,
        approve: bool,
    ) -> Result<Address> {
        let unauthorized = |why: &str| Error::new(ErrorCode::Unauthorized, format!("owner signature refused: {why}"));
        let claimed = Address::parse_any(claimed).map_err(|_| unauthorized("X-Owner-Address is not an address"))?;
        let nonce = message
            .rsplit_once("\nNonce: ")
            .map(|(_, nonce)| nonce.to_owned())
            .ok_or_else(|| unauthorized("the message does not carry a nonce"))?;
        if message != approval_message(tx_id, approve, &nonce) {
            return Err(unauthorized("the message does not name this transaction and decision"));
        }
        let nonce = self.nonces.check(&nonce, self.now()).map_err(unauthorized)?;
        match claimed {
            Address::Evm(address) => verify_eip191(address, message, signature),
            Address::Solana(address) => verify_ed25519(address, message, signature),
        }
        .map_err(unauthorized)?;
        let record = self
            .ports
            .transactions
            .get(tx_id)
            .await?
            .ok_or_else(|| Error::new(ErrorCode::TxNotFound, format!("transaction {tx_id} not found")))?;
        if self.agent(record.agent_id).await?.owner_address != Some(claimed) {
            return Err(Error::new(ErrorCode::Forbidden, "the signer is not this agent's owner"));
        }
        self.nonces.consume(nonce, self.now()).map_err(unauthorized)?;
        Ok(claimed)
    }
}

/// An EIP-191 `personal_sign` signature of `message` (`0x` optional + 65 bytes hex) that recovers to `signer`.
fn verify_eip191(signer: EvmAddress, message: &str, signature: &str) -> Result<(), &'static str> {
    let bytes = hex::decode(signature.trim_start_matches("0x")).map_err(|_| "signature is not hex")?;
    let signature = Signature::try_from(bytes.as_slice()).map_err(|_| "signature is not 65 bytes")?;
    let recovered = signature.recover_address_from_msg(message.as_bytes()).map_err(|_| "signature does not recover")?;
    if recovered != signer.0 {
        return Err("the signature was made by another address");
    }
    Ok(())
}

/// An ed25519 signature of `message`'s bytes (base58 of 64 bytes) by `signer`'s key, checked strictly (no
/// malleable or small-order forms).
fn verify_ed25519(signer: SolanaAddress, message: &str, signature: &str) -> Result<(), &'static str> {
    const NOT_BASE58: &str = "a Solana owner's signature is base58 of 64 bytes";
    let bytes: [u8; 64] = bs58::decode(signature).into_vec().ok().and_then(|b| b.try_into().ok()).ok_or(NOT_BASE58)?;
    let key = VerifyingKey::from_bytes(&signer.0).map_err(|_| "the owner's address is not an ed25519 public key")?;
    key.verify_strict(message.as_bytes(), &Ed25519Signature::from_bytes(&bytes))
        .map_err(|_| "the signature was made by another key, or over another message")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Clock;
    use crate::ports::testing::{CountingEntropy, FixedClock};

    const T0: i64 = 1_700_000_000;

    fn book() -> (NonceBook, CountingEntropy, FixedClock) {
        let entropy = CountingEntropy::default();
        (NonceBook::new(&entropy), entropy, FixedClock::at(T0))
    }

    #[track_caller]
    fn assert_refused(outcome: Result<impl std::fmt::Debug, &'static str>, why: &str) {
        match outcome {
            Err(refusal) => assert_eq!(refusal, why),
            Ok(accepted) => panic!("accepted {accepted:?}, expected the refusal {why:?}"),
        }
    }

    #[test]
    fn a_nonce_is_hex_of_its_fixed_length_and_expires_after_the_ttl() {
        let (book, entropy, clock) = book();
        let (nonce, expires_at) = book.issue(&entropy, clock.now());
        assert_eq!(expires_at, UnixSeconds(T0 + NONCE_TTL_SECONDS));
        assert_eq!(nonce.len(), 2 * NONCE_BYTES);
        assert!(nonce.bytes().all(|b| b.is_ascii_hexdigit()), "{nonce}");
        assert_ne!(book.issue(&entropy, clock.now()).0, nonce, "each nonce is fresh");
    }

    #[test]
    fn issuing_a_hundred_thousand_nonces_stores_nothing_and_invalidates_none() {
        let (book, entropy, clock) = book();
        let (first, _) = book.issue(&entropy, clock.now());
        let mut last = String::new();
        for _ in 0..100_000 {
            last = book.issue(&entropy, clock.now()).0;
        }
        assert!(book.consumed.lock().unwrap().is_empty(), "issuing stores nothing");
        clock.advance(NONCE_TTL_SECONDS - 1);
        for nonce in [&first, &last] {
            let checked = book.check(nonce, clock.now()).expect("still valid");
            book.consume(checked, clock.now()).expect("consumed once");
        }
    }

    #[test]
    fn a_nonce_is_single_use() {
        let (book, entropy, clock) = book();
        let (nonce, _) = book.issue(&entropy, clock.now());
        let checked = book.check(&nonce, clock.now()).unwrap();
        assert_eq!(book.check(&nonce, clock.now()), Ok(checked), "checking does not consume");
        book.consume(checked, clock.now()).unwrap();
        clock.advance(NONCE_TTL_SECONDS - 1);
        let again = book.check(&nonce, clock.now()).expect("the nonce itself is still authentic");
        assert_refused(book.consume(again, clock.now()), "the nonce was already used");
        assert_refused(book.consume(checked, clock.now()), "the nonce was already used");
    }

    #[test]
    fn an_expired_nonce_is_refused_and_its_use_forgotten() {
        let (book, entropy, clock) = book();
        let (unused, _) = book.issue(&entropy, clock.now());
        let (used, _) = book.issue(&entropy, clock.now());
        let checked = book.check(&used, clock.now()).unwrap();
        book.consume(checked, clock.now()).unwrap();
        let late = book.check(&unused, clock.now()).unwrap();
        clock.advance(NONCE_TTL_SECONDS);
        assert_refused(book.check(&unused, clock.now()), "the nonce expired");
        assert_refused(book.check(&used, clock.now()), "the nonce expired");
        assert_refused(book.consume(late, clock.now()), "the nonce expired");
        // A later consumption forgets the expired entries: the set holds only live nonces.
        let (fresh, _) = book.issue(&entropy, clock.now());
        book.consume(book.check(&fresh, clock.now()).unwrap(), clock.now()).unwrap();
        assert_eq!(book.consumed.lock().unwrap().len(), 1);
    }

    #[test]
    fn forged_and_malformed_nonces_are_refused() {
        let (book, entropy, clock) = book();
        let (nonce, _) = book.issue(&entropy, clock.now());
        let forged = "the nonce is not one this daemon issued";
        let mut bytes = hex::decode(&nonce).unwrap();
        // Any flipped bit: in the random part, the expiry (a longer life) or the tag.
        for index in [0, RANDOM_BYTES + EXPIRY_BYTES - 1, NONCE_BYTES - 1] {
            bytes[index] ^= 1;
            assert_refused(book.check(&hex::encode(&bytes), clock.now()), forged);
            bytes[index] ^= 1;
        }
        // Another daemon's nonce (another key), shorter or longer ones, non-hex, the old 32-digit format.
        let (foreign, _) =
            NonceBook { key: Zeroizing::new([9; 32]), consumed: Mutex::default() }.issue(&entropy, clock.now());
        for text in [foreign.as_str(), &nonce[..nonce.len() - 2], &format!("{nonce}00"), "zz", "", &nonce[..32]] {
            assert_refused(book.check(text, clock.now()), forged);
        }
        assert!(book.check(&nonce, clock.now()).is_ok(), "the original is untouched");
    }

    /// A Solana owner's decision: ed25519 over the text's bytes, base58; any other key, text or encoding is refused.
    #[test]
    fn an_ed25519_signature_verifies_only_for_its_key_and_text() {
        use ed25519_dalek::{Signer, SigningKey};
        let owner = SigningKey::from_bytes(&[7; 32]);
        let address = SolanaAddress(owner.verifying_key().to_bytes());
        let message = "WAIaaS: approve transaction x\nNonce: n";
        let signature = bs58::encode(owner.sign(message.as_bytes()).to_bytes()).into_string();
        assert_eq!(verify_ed25519(address, message, &signature), Ok(()));

        let other = SolanaAddress(SigningKey::from_bytes(&[8; 32]).verifying_key().to_bytes());
        let wrong = "the signature was made by another key, or over another message";
        assert_refused(verify_ed25519(other, message, &signature), wrong);
        assert_refused(verify_ed25519(address, "WAIaaS: reject transaction x\nNonce: n", &signature), wrong);
        let not_base58 = "a Solana owner's signature is base58 of 64 bytes";
        let hex = hex::encode(owner.sign(message.as_bytes()).to_bytes());
        for text in [hex.as_str(), &signature[..signature.len() - 2], "", "0OIl"] {
            assert_refused(verify_ed25519(address, message, text), not_base58);
        }
    }
}
