//! Webhook secrets (S-04) and signatures.
//!
//! A secret is `whsec_` + base64 of 32 random bytes (the Standard Webhooks form); the HMAC key is those bytes.
//! It is shown once, at creation or rotation. The database keeps its SHA-256 (to identify it) and a copy sealed
//! with AES-256-GCM under a [`SecretKey`] — a sub-key of the audit head key, so derived from the master password
//! with no extra Argon2 run — bound to the webhook's id as associated data, to sign deliveries with.
//!
//! A delivery is signed over `"<webhook-id>.<webhook-timestamp>.<body>"` with HMAC-SHA256; the
//! `webhook-signature` header lists `v1,<base64>` per secret in force, space-separated (the new one, and during a
//! rotation's grace period the previous one too).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::WebhookId;
use crate::audit::HeadKey;
use crate::error::{Error, Result};
use crate::ports::Entropy;

/// The prefix of every secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a secret.
const SECRET_BYTES: usize = 32;
/// AES-GCM nonce bytes, stored before the ciphertext.
const NONCE_BYTES: usize = 12;
/// The label of the webhook sub-key ([`HeadKey::subkey`]).
const SUBKEY_LABEL: &[u8] = b"waiaas webhook secrets v1";

type HmacSha256 = Hmac<Sha256>;

/// A webhook secret in plaintext (`whsec_...`): memory only, wiped on drop, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Zeroizing<String>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

impl WebhookSecret {
    /// A fresh secret from `entropy`.
    pub fn generate(entropy: &dyn Entropy) -> WebhookSecret {
        let mut bytes = Zeroizing::new([0u8; SECRET_BYTES]);
        entropy.fill(bytes.as_mut());
        WebhookSecret(Zeroizing::new(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes.as_ref()))))
    }

    /// The secret's text (`whsec_...`), to show the operator once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The HMAC key: the bytes after the prefix.
    fn key(&self) -> Zeroizing<Vec<u8>> {
        let body = self.0.strip_prefix(SECRET_PREFIX).unwrap_or(&self.0);
        Zeroizing::new(STANDARD.decode(body).unwrap_or_else(|_| body.as_bytes().to_vec()))
    }

    /// Hex SHA-256 of the secret's text: identifies it without revealing it.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }

    /// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.key()).expect("HMAC takes any key length");
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// The key webhook secrets are sealed with at rest: held in memory only.
#[derive(Clone)]
pub struct SecretKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    /// The webhook sub-key of the audit head key (both follow the master password and the database's salt, so a
    /// restored backup opens with the same password).
    pub fn from_head_key(key: &HeadKey) -> SecretKey {
        SecretKey(key.subkey(SUBKEY_LABEL))
    }

    /// A key from raw bytes (tests and embedding hosts with their own key management).
    pub fn from_bytes(bytes: [u8; 32]) -> SecretKey {
        SecretKey(Zeroizing::new(bytes))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new_from_slice(self.0.as_ref()).expect("a 32-byte key")
    }

    /// `nonce || AES-256-GCM(secret)` with the webhook's id as associated data.
    pub fn seal(&self, secret: &WebhookSecret, webhook: WebhookId, entropy: &dyn Entropy) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_BYTES];
        entropy.fill(&mut nonce);
        let aad = webhook.to_string();
        let sealed = self
            .cipher()
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: secret.expose().as_bytes(), aad: aad.as_bytes() })
            .expect("AES-GCM encryption of a short message");
        [nonce.as_slice(), &sealed].concat()
    }

    /// Seals a given secret text (tests of reference vectors).
    #[cfg(test)]
    pub(crate) fn seal_text_for_test(&self, text: &str, webhook: WebhookId) -> Vec<u8> {
        let secret = WebhookSecret(Zeroizing::new(text.to_owned()));
        self.seal(&secret, webhook, &crate::ports::testing::CountingEntropy::default())
    }

    /// Opens what [`SecretKey::seal`] sealed for `webhook`; another key, another webhook or altered bytes fail.
    pub fn open(&self, sealed: &[u8], webhook: WebhookId) -> Result<WebhookSecret> {
        let fail = || Error::internal_msg("a webhook secret does not open with this key (another master password?)");
        if sealed.len() <= NONCE_BYTES {
            return Err(fail());
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        let aad = webhook.to_string();
        let plain = Zeroizing::new(
            self.cipher()
                .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: aad.as_bytes() })
                .map_err(|_| fail())?,
        );
        let text = String::from_utf8(plain.to_vec()).map_err(|_| fail())?;
        Ok(WebhookSecret(Zeroizing::new(text)))
    }
}
