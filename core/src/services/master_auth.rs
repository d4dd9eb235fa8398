//! Master-password authentication. The password is stored only as an Argon2id PHC hash and verified with
//! Argon2 once, at unlock. Per-request checks compare an HMAC of the candidate under a random in-memory key in
//! constant time, so a request never costs an Argon2 run. Failures are counted per client address in a bounded
//! table (entries expire with their window; at most [`TRACKED_SOURCES_CAP`] addresses), and their
//! `MASTER_AUTH_FAILED` rows are capped at [`AUDIT_ROWS_PER_WINDOW`] per window, so failures from any number of
//! addresses leave memory and the audit log bounded.
//!
//! Argon2 is therefore not a lever for a denial of service: the number of Argon2 verifications running at once
//! is bounded by zero per request, whatever the number of concurrent wrong passwords. [`verify_password`] counts
//! its runs ([`argon2_verifications`], exported as `waiaas_master_password_argon2_verifications_total`), so a
//! change that puts Argon2 on the request path shows in the metric (and fails the end-to-end test that floods
//! the daemon with wrong passwords).

use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::CoreConfig;
use crate::UnixSeconds;
use crate::error::{Error, ErrorCode, Result};
use crate::limiter::{AuditBudget, SourceWindows};
use crate::ports::{Entropy, SettingsRepo};

/// Most client addresses whose failures are remembered at once.
pub const TRACKED_SOURCES_CAP: usize = 10_000;
/// Most `MASTER_AUTH_FAILED` rows written per rate-limit window, whatever the number of addresses.
pub const AUDIT_ROWS_PER_WINDOW: u32 = 100;

/// Settings key of the stored Argon2id hash.
pub const MASTER_HASH_KEY: &str = "master_password_hash";

type HmacSha256 = Hmac<Sha256>;

pub(super) struct MasterAuth {
    key: Zeroizing<[u8; 32]>,
    digest: [u8; 32],
    failures: Mutex<SourceWindows<Option<IpAddr>>>,
    audit_budget: Mutex<AuditBudget>,
    max_failures: u32,
    window_seconds: i64,
    /// [`argon2_verifications`] as last added to the metric.
    argon2_reported: AtomicU64,
}

/// Hashes a password with Argon2id and a fresh salt (PHC string form).
pub fn hash_password(password: &str, entropy: &dyn Entropy) -> Result<String> {
    let mut salt = [0u8; 16];
    entropy.fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::internal_msg(format!("salt encoding: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| Error::internal_msg(format!("argon2 hashing: {e}")))
}

/// Argon2 verifications run by [`verify_password`] in this process.
static ARGON2_VERIFICATIONS: AtomicU64 = AtomicU64::new(0);

/// How many Argon2 verifications [`verify_password`] has run in this process (monotonic).
pub fn argon2_verifications() -> u64 {
    ARGON2_VERIFICATIONS.load(Ordering::Relaxed)
}

/// Verifies a password against a stored PHC hash (one Argon2 run, with the params stored in the hash; counted in
/// [`argon2_verifications`]).
pub fn verify_password(password: &str, stored: &str) -> Result<bool> {
    ARGON2_VERIFICATIONS.fetch_add(1, Ordering::Relaxed);
    let parsed = PasswordHash::new(stored).map_err(|e| Error::internal_msg(format!("stored hash unreadable: {e}")))?;
    Ok(Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

impl MasterAuth {
    pub(super) async fn unlock(
        password: &str,
        settings: &dyn SettingsRepo,
        entropy: &dyn Entropy,
        config: &CoreConfig,
    ) -> Result<MasterAuth> {
        if password.is_empty() {
            return Err(Error::new(ErrorCode::InvalidMasterPassword, "the master password must not be empty"));
        }
        match settings.get(MASTER_HASH_KEY).await? {
            Some(stored) => {
                if !verify_password(password, &stored)? {
                    return Err(Error::new(
                        ErrorCode::InvalidMasterPassword,
                        "the master password does not match this data dir",
                    ));
                }
            }
            None => settings.put(MASTER_HASH_KEY, &hash_password(password, entropy)?).await?,
        }
        let mut key = Zeroizing::new([0u8; 32]);
        entropy.fill(key.as_mut());
        let digest = keyed_digest(&key, password);
        let window_seconds = i64::try_from(config.master_auth_window_seconds).unwrap_or(i64::MAX);
        Ok(MasterAuth {
            key,
            digest,
            failures: Mutex::new(SourceWindows::new(window_seconds, TRACKED_SOURCES_CAP)),
            audit_budget: Mutex::new(AuditBudget::new(window_seconds, AUDIT_ROWS_PER_WINDOW)),
            max_failures: config.master_auth_max_failures,
            window_seconds,
            argon2_reported: AtomicU64::new(0),
        })
    }

    /// Constant-time comparison of `candidate` with the unlocked password.
    pub(super) fn matches(&self, candidate: &str) -> bool {
        let mut mac = HmacSha256::new_from_slice(self.key.as_ref()).expect("HMAC takes any key length");
        mac.update(candidate.as_bytes());
        mac.verify_slice(&self.digest).is_ok()
    }

    /// `RATE_LIMITED` while `ip` has used up its failures in the current window.
    pub(super) fn check_not_limited(&self, ip: Option<IpAddr>, now: UnixSeconds) -> Result<()> {
        let failures = self.failures.lock().map_err(|_| Error::internal_msg("failure table poisoned"))?;
        match failures.get(&ip, now) {
            Some((start, count)) if count >= self.max_failures => {
                Err(Error::new(ErrorCode::RateLimited, "too many failed master-password attempts; wait and retry")
                    .with_details(serde_json::json!({
                        "retryAfterSeconds": self.window_seconds - now.seconds_since(start)
                    })))
            }
            _ => Ok(()),
        }
    }

    /// Counts a failure; `Some(n)` when its audit row may be written (`n` rows were held back before it).
    pub(super) fn record_failure(&self, ip: Option<IpAddr>, now: UnixSeconds) -> Option<u64> {
        if let Ok(mut failures) = self.failures.lock() {
            failures.hit(ip, now);
        }
        self.audit_budget.lock().ok()?.admit(now)
    }

    /// Client addresses whose failures are remembered (at most [`TRACKED_SOURCES_CAP`]).
    pub(super) fn tracked_sources(&self) -> usize {
        self.failures.lock().map(|f| f.len()).unwrap_or(0)
    }
}

fn keyed_digest(key: &[u8; 32], password: &str) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(password.as_bytes());
    mac.finalize().into_bytes().into()
}

impl super::Waiaas {
    /// Checks the `X-Master-Password` value of a request from `ip` (the socket peer). A wrong password is
    /// counted, audited (`MASTER_AUTH_FAILED`, no password in the row) and answered `INVALID_MASTER_PASSWORD`.
    pub async fn authenticate_master(
        &self,
        candidate: &str,
        ip: Option<IpAddr>,
    ) -> Result<crate::event::RequestContext> {
        let now = self.now();
        self.master.check_not_limited(ip, now)?;
        if self.master.matches(candidate) {
            return Ok(crate::event::RequestContext::master(ip));
        }
        let refused = Error::new(ErrorCode::InvalidMasterPassword, "invalid master password");
        let Some(suppressed) = self.master.record_failure(ip, now) else {
            return Err(refused);
        };
        let ctx = crate::event::RequestContext { actor: crate::event::Actor::Anonymous, ip };
        let mut details = serde_json::json!({ "reason": "wrong_password" });
        if suppressed > 0 {
            details["suppressedRows"] = suppressed.into();
        }
        let event = crate::event::Event::new(crate::event::EventType::MasterAuthFailed, &ctx, now).details(details);
        if let Err(error) = self.ports.audit.append(&event).await {
            self.record_audit_write_failure();
            return Err(error);
        }
        self.publish(&event);
        Err(refused)
    }

    /// Brings `waiaas_master_password_argon2_verifications_total` up to [`argon2_verifications`] (at unlock and at
    /// each scrape; concurrent callers add each run once).
    pub fn record_master_password_verifications(&self) {
        let total = argon2_verifications();
        let before = self.master.argon2_reported.fetch_max(total, Ordering::Relaxed);
        if total > before {
            self.ports.metrics.increment_counter(
                crate::metrics::MASTER_PASSWORD_ARGON2_VERIFICATIONS_TOTAL,
                &[],
                total - before,
            );
        }
    }

    /// How many client addresses the master-password failure tracker holds (bounded; for tests and diagnostics).
    pub fn master_auth_tracked_sources(&self) -> usize {
        self.master.tracked_sources()
    }
}
