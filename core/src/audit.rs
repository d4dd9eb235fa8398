//! The audit log's tamper-evidence chain: each row's hash covers the previous row's hash and the row's canonical
//! content, so an edited, inserted or deleted row breaks every hash after it.
//!
//! The chain alone cannot show that rows were cut off its end: the shortened log is a valid chain. So its **head**
//! (the last row's id and hash) is kept sealed with an HMAC under a [`HeadKey`] derived from the master password,
//! and every append moves the sealed head in the same transaction. [`check_head`] compares a sealed head with the
//! end of the log: deleted trailing rows, rows added without the key, a replaced last row and an edited head are
//! each a [`HeadFinding`]. Whoever can write the database but does not know the master password cannot re-seal.

use argon2::{Algorithm, Argon2, Params, Version};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::UnixSeconds;
use crate::error::{Error, Result};
use crate::event::{Event, EventType, RequestContext};
use crate::ports::Entropy;

/// The `prev_hash` of the first row.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Canonical content of an event: a JSON array with a fixed field order (object keys in `details` are sorted,
/// as `serde_json` keeps them).
pub fn canonical_content(event: &Event) -> String {
    serde_json::json!([
        event.created_at.0,
        event.event_type.as_str(),
        event.agent_id.map(|id| id.to_string()),
        event.session_id.map(|id| id.to_string()),
        event.tx_id.map(|id| id.to_string()),
        event.actor.to_wire(),
        event.severity.as_str(),
        event.details,
        event.ip_address.map(|ip| ip.to_string()),
    ])
    .to_string()
}

/// `hex(SHA-256(prev_hash || "\n" || canonical_content(event)))`.
pub fn chain_hash(prev_hash: &str, event: &Event) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical_content(event).as_bytes());
    hex::encode(hasher.finalize())
}

/// A row as read back for verification.
#[derive(Clone, Debug)]
pub struct ChainLink<'a> {
    /// The row's id.
    pub id: i64,
    /// The event the row records.
    pub event: &'a Event,
    /// The previous row's hash.
    pub prev_hash: &'a str,
    /// This row's hash.
    pub hash: &'a str,
}

/// Why the chain is broken at a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainBreak {
    /// The row's content no longer matches its hash: it was edited.
    ContentAltered {
        /// The edited row.
        id: i64,
    },
    /// The row does not follow the previous one: a row before it was deleted or inserted.
    LinkBroken {
        /// The first row after the gap.
        id: i64,
    },
}

/// Walks rows in id order (the first must follow `expected_prev`) and returns the first break, if any.
pub fn verify_chain<'a>(
    expected_prev: &str,
    rows: impl IntoIterator<Item = ChainLink<'a>>,
) -> Result<String, ChainBreak> {
    let mut prev = expected_prev.to_owned();
    for row in rows {
        if row.prev_hash != prev {
            return Err(ChainBreak::LinkBroken { id: row.id });
        }
        if chain_hash(row.prev_hash, row.event) != row.hash {
            return Err(ChainBreak::ContentAltered { id: row.id });
        }
        prev = row.hash.to_owned();
    }
    Ok(prev)
}

/// Settings key of the random salt (hex) the [`HeadKey`] is derived with. It lives in the database, so a restored
/// backup opens with the same password.
pub const HEAD_SALT_KEY: &str = "audit_head_salt";

/// Bytes of a fresh head salt.
const HEAD_SALT_LEN: usize = 16;

/// Argon2id cost of the head key: memory KiB, passes, lanes. The same as the stored master-password hash
/// (argon2's defaults), so the sealed head is no cheaper oracle for guessing the password than that hash is.
/// Fixed here, not stored: a database whose stored cost could be lowered would offer a cheaper one.
const HEAD_KDF_COST: (u32, u32, u32) = (19_456, 2, 1);

/// Domain separation of the head MAC.
const HEAD_MAC_CONTEXT: &[u8] = b"waiaas audit head v1";

type HmacSha256 = Hmac<Sha256>;

/// The key that seals the chain head: Argon2id of the master password with the database's head salt. Held in
/// memory only and wiped on drop; never stored, never logged.
#[derive(Clone)]
pub struct HeadKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for HeadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeadKey(..)")
    }
}

impl HeadKey {
    /// A fresh random salt, hex-encoded (stored under [`HEAD_SALT_KEY`]).
    pub fn new_salt(entropy: &dyn Entropy) -> String {
        let mut salt = [0u8; HEAD_SALT_LEN];
        entropy.fill(&mut salt);
        hex::encode(salt)
    }

    /// Derives the key from the master password and the stored salt (one Argon2id run).
    pub fn derive(password: &str, salt_hex: &str) -> Result<HeadKey> {
        let salt = hex::decode(salt_hex).ok().filter(|salt| salt.len() >= HEAD_SALT_LEN).ok_or_else(|| {
            Error::internal_msg(format!("the stored {HEAD_SALT_KEY} is not at least {HEAD_SALT_LEN} hex-encoded bytes"))
        })?;
        let (memory, passes, lanes) = HEAD_KDF_COST;
        let params = Params::new(memory, passes, lanes, Some(32))
            .map_err(|e| Error::internal_msg(format!("argon2 params: {e}")))?;
        let mut key = Zeroizing::new([0u8; 32]);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(password.as_bytes(), &salt, key.as_mut())
            .map_err(|e| Error::internal_msg(format!("argon2 key derivation: {e}")))?;
        Ok(HeadKey(key))
    }

    /// A 32-byte key for another purpose, derived from this one with HMAC-SHA256 over `label` (no second
    /// Argon2 run; distinct labels give independent keys, and none reveals this key).
    pub fn subkey(&self, label: &[u8]) -> Zeroizing<[u8; 32]> {
        let mut mac = HmacSha256::new_from_slice(self.0.as_ref()).expect("HMAC takes any key length");
        mac.update(label);
        Zeroizing::new(mac.finalize().into_bytes().into())
    }

    fn mac(&self, head: &ChainHead) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(self.0.as_ref()).expect("HMAC takes any key length");
        mac.update(HEAD_MAC_CONTEXT);
        mac.update(format!("\n{}\n{}", head.last_id, head.last_hash).as_bytes());
        mac
    }

    /// The hex MAC that seals `head`.
    pub fn seal(&self, head: &ChainHead) -> String {
        hex::encode(self.mac(head).finalize().into_bytes())
    }

    /// Whether `mac` seals `head` under this key (constant-time comparison).
    pub fn verifies(&self, head: &ChainHead, mac: &str) -> bool {
        hex::decode(mac).is_ok_and(|mac| self.mac(head).verify_slice(&mac).is_ok())
    }
}

/// The end of the chain: the id and hash of its last row (`0` and [`GENESIS_HASH`] for an empty log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainHead {
    /// The id of the log's last row.
    pub last_id: i64,
    /// That row's hash.
    pub last_hash: String,
}

impl ChainHead {
    /// The head of an empty log.
    pub fn genesis() -> ChainHead {
        ChainHead { last_id: 0, last_hash: GENESIS_HASH.to_owned() }
    }
}

/// A head as stored: the head and its hex MAC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedHead {
    /// The row the head records.
    pub head: ChainHead,
    /// HMAC-SHA256 of the head under the head key, hex.
    pub mac: String,
}

/// What is wrong with the log's end, found by [`check_head`].
/// How the log's end disagrees with its sealed head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadFinding {
    /// No sealed head: the log was not unlocked since the upgrade that added heads, or the head was deleted.
    Missing,
    /// The head's MAC does not verify: the head (or the salt) was edited.
    Forged,
    /// The log ends before the row the head records: trailing rows were deleted.
    Truncated {
        /// The log's last row.
        last_id: i64,
        /// The row the head records.
        head_id: i64,
    },
    /// The row the head records is not the row it sealed: it was replaced, or its hash edited.
    Replaced {
        /// The row the head records.
        head_id: i64,
    },
    /// Rows follow the row the head records: they were added without the key, behind the daemon's back.
    Unsealed {
        /// The row the head records.
        head_id: i64,
        /// The log's last row.
        last_id: i64,
    },
}

impl std::fmt::Display for HeadFinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeadFinding::Missing => f.write_str(
                "the log has no sealed head: it was not unlocked since the upgrade that added heads, or the head \
                 was deleted; deleted trailing rows cannot be detected",
            ),
            HeadFinding::Forged => {
                f.write_str("the sealed head was edited: its MAC does not verify under this master password")
            }
            HeadFinding::Truncated { last_id: 0, head_id } => {
                write!(f, "the log is empty but the head records row {head_id}: every row was deleted")
            }
            HeadFinding::Truncated { last_id, head_id } => write!(
                f,
                "the log ends at row {last_id} but the head records row {head_id}: trailing rows were deleted"
            ),
            HeadFinding::Replaced { head_id } => write!(
                f,
                "row {head_id}, the last row the head records, is not the row it sealed: it was replaced or its \
                 hash edited"
            ),
            HeadFinding::Unsealed { head_id, last_id } => write!(
                f,
                "the log ends at row {last_id} but the head records row {head_id}: the rows after it were added \
                 without the key"
            ),
        }
    }
}

/// Compares the sealed head with the log's end: `last` is the log's last row (or [`ChainHead::genesis`]),
/// `at_head` the stored hash of the row whose id the head records ([`GENESIS_HASH`] for id 0; `None` when no such
/// row exists).
pub fn check_head(
    key: &HeadKey,
    sealed: Option<&SealedHead>,
    last: &ChainHead,
    at_head: Option<&str>,
) -> std::result::Result<(), HeadFinding> {
    let Some(SealedHead { head, mac }) = sealed else { return Err(HeadFinding::Missing) };
    if !key.verifies(head, mac) {
        return Err(HeadFinding::Forged);
    }
    if last.last_id < head.last_id {
        return Err(HeadFinding::Truncated { last_id: last.last_id, head_id: head.last_id });
    }
    if at_head != Some(head.last_hash.as_str()) {
        return Err(HeadFinding::Replaced { head_id: head.last_id });
    }
    if last.last_id > head.last_id {
        return Err(HeadFinding::Unsealed { head_id: head.last_id, last_id: last.last_id });
    }
    Ok(())
}

/// Why a head was sealed over a log that already had rows (recorded as `AUDIT_HEAD_SEALED`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SealReason {
    /// The log had no sealed head (the first unlock after the upgrade that added heads, or a deleted head).
    NoHead,
    /// The operator accepted the log as it stands (`waiaas audit reseal`) despite this finding.
    Reseal(HeadFinding),
}

/// The `AUDIT_HEAD_SEALED` event recorded when a head is sealed over existing rows: rows up to `unprotected_through`
/// were not covered by a sealed head, so deletions among them before this moment cannot be detected.
pub fn head_sealed_event(
    ctx: &RequestContext,
    now: UnixSeconds,
    unprotected_through: i64,
    reason: &SealReason,
) -> Event {
    let details = match reason {
        SealReason::NoHead => serde_json::json!({ "reason": "no_head", "unprotectedThrough": unprotected_through }),
        SealReason::Reseal(finding) => serde_json::json!({
            "reason": "reseal",
            "unprotectedThrough": unprotected_through,
            "finding": finding.to_string(),
        }),
    };
    Event::new(EventType::AuditHeadSealed, ctx, now).details(details)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: i64) -> Event {
        Event::new(EventType::AgentCreated, &RequestContext::system(), UnixSeconds(n))
            .details(serde_json::json!({"n": n}))
    }

    #[test]
    fn detects_edit_and_deletion() {
        let events: Vec<Event> = (0..4).map(event).collect();
        let mut hashes = Vec::new();
        let mut prev = GENESIS_HASH.to_owned();
        for e in &events {
            let h = chain_hash(&prev, e);
            hashes.push((prev.clone(), h.clone()));
            prev = h;
        }
        let links = |events: &[Event], skip: Option<usize>| -> Result<String, ChainBreak> {
            let rows = events.iter().enumerate().filter(|(i, _)| Some(*i) != skip).map(|(i, e)| ChainLink {
                id: i as i64 + 1,
                event: e,
                prev_hash: &hashes[i].0,
                hash: &hashes[i].1,
            });
            verify_chain(GENESIS_HASH, rows.collect::<Vec<_>>())
        };
        assert_eq!(links(&events, None), Ok(prev.clone()));
        assert_eq!(links(&events, Some(1)), Err(ChainBreak::LinkBroken { id: 3 }));
        let mut edited = events.clone();
        edited[2].details = serde_json::json!({"n": 99});
        assert_eq!(links(&edited, None), Err(ChainBreak::ContentAltered { id: 3 }));
    }

    const SALT: &str = "000102030405060708090a0b0c0d0e0f";

    fn head(id: i64, hash: &str) -> ChainHead {
        ChainHead { last_id: id, last_hash: hash.to_owned() }
    }

    #[test]
    fn the_head_key_depends_on_the_password_and_the_salt_only() {
        let key = HeadKey::derive("pw", SALT).unwrap();
        let h = head(7, "ab");
        let mac = key.seal(&h);
        assert!(HeadKey::derive("pw", SALT).unwrap().verifies(&h, &mac), "same password and salt, same key");
        assert!(!HeadKey::derive("pw2", SALT).unwrap().verifies(&h, &mac));
        assert!(!HeadKey::derive("pw", "ff0102030405060708090a0b0c0d0e0f").unwrap().verifies(&h, &mac));
        assert!(!key.verifies(&head(8, "ab"), &mac), "the MAC covers the id");
        assert!(!key.verifies(&head(7, "ac"), &mac), "and the hash");
        assert!(!key.verifies(&h, "not hex"));
        assert_eq!(format!("{key:?}"), "HeadKey(..)");
        for bad in ["", "0011", "zz0102030405060708090a0b0c0d0e0f"] {
            assert!(HeadKey::derive("pw", bad).is_err(), "{bad:?}");
        }
        let salt = HeadKey::new_salt(&crate::ports::testing::CountingEntropy::default());
        assert_eq!(salt.len(), 32);
        assert!(HeadKey::derive("pw", &salt).is_ok());
    }

    #[test]
    fn check_head_names_what_happened_to_the_end_of_the_log() {
        let key = HeadKey::derive("pw", SALT).unwrap();
        let sealed = |h: ChainHead| SealedHead { mac: key.seal(&h), head: h };
        let at_5 = sealed(head(5, "h5"));
        #[track_caller]
        fn check(
            key: &HeadKey,
            sealed: Option<&SealedHead>,
            last: ChainHead,
            at_head: Option<&str>,
            want: std::result::Result<(), HeadFinding>,
        ) {
            assert_eq!(check_head(key, sealed, &last, at_head), want);
        }
        check(&key, Some(&at_5), head(5, "h5"), Some("h5"), Ok(()));
        check(&key, Some(&sealed(ChainHead::genesis())), ChainHead::genesis(), Some(GENESIS_HASH), Ok(()));
        check(&key, None, head(5, "h5"), None, Err(HeadFinding::Missing));
        let moved = SealedHead { head: head(3, "h3"), mac: at_5.mac.clone() };
        check(&key, Some(&moved), head(3, "h3"), Some("h3"), Err(HeadFinding::Forged));
        check(&key, Some(&at_5), head(3, "h3"), None, Err(HeadFinding::Truncated { last_id: 3, head_id: 5 }));
        check(&key, Some(&at_5), ChainHead::genesis(), None, Err(HeadFinding::Truncated { last_id: 0, head_id: 5 }));
        check(&key, Some(&at_5), head(5, "x5"), Some("x5"), Err(HeadFinding::Replaced { head_id: 5 }));
        check(&key, Some(&at_5), head(9, "h9"), None, Err(HeadFinding::Replaced { head_id: 5 }));
        check(&key, Some(&at_5), head(9, "h9"), Some("h5"), Err(HeadFinding::Unsealed { head_id: 5, last_id: 9 }));
        assert_eq!(
            HeadFinding::Truncated { last_id: 3, head_id: 5 }.to_string(),
            "the log ends at row 3 but the head records row 5: trailing rows were deleted"
        );
    }
}
