//! The agent keystore (SPEC §2 "keystore"): one encrypted JSON file per agent, `keystore/<agentId>.json`.
//!
//! ```json
//! { "version": 1, "agentId": "<uuid>", "address": "0x<EIP-55> | <base58>", "keyType": "secp256k1 | ed25519",
//!   "crypto": { "cipher": "aes-256-gcm", "kdf": "argon2id",
//!               "kdfParams": { "mCostKib": 65536, "tCost": 3, "pCost": 4 },
//!               "salt": "<hex, 16 bytes>", "nonce": "<hex, 12 bytes>", "ciphertext": "<hex, 32 + 16 bytes>" } }
//! ```
//!
//! * The AES-256 key is Argon2id(master password, the file's salt, the file's params) → 32 bytes. Decryption
//!   always takes the parameters **from the file**, so files written with other parameters keep opening.
//! * `keyType` says what the secret is: a secp256k1 scalar (EVM agents; its address is EIP-55 hex) or an ed25519
//!   seed (Solana agents; its address is the base58 public key). Files written before key types existed have no
//!   `keyType` and are read as secp256k1.
//! * The ciphertext is the 32-byte secret followed by the GCM tag. The header — version, agentId, address,
//!   cipher, kdf, kdf params, salt and (when present) keyType — is the GCM associated data (see
//!   [`associated_data`]), so none of it can be edited, and a file copied over another agent's name is refused
//!   (its agentId no longer matches). The nonce is authenticated by GCM itself. After decryption the derived
//!   address must equal the file's.
//! * Key bytes, the derived AES key and decrypted buffers live in [`Zeroizing`] buffers; the signer's k256 key
//!   zeroizes itself on drop. Nothing here formats key material: errors name the agent only, and [`FsKeyStore`]'s
//!   `Debug` redacts the password.
//! * Files are written once, atomically, mode 0600, and never overwritten (an existing key is never replaced).
//!
//! Argon2 is CPU- and memory-heavy (64 MiB, ~0.1–0.5 s at the default). The async [`KeyStore`] methods that
//! derive a key run it on a dedicated thread; the synchronous methods ([`FsKeyStore::with_signer`],
//! [`FsKeyStore::create_key_blocking`]) must be called from a blocking context (`tokio::task::spawn_blocking`)
//! or use [`FsKeyStore::with_signer_async`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use argon2::{Algorithm, Argon2, Version};
use async_trait::async_trait;
use ed25519_dalek::{Signer as _, SigningKey};
use rand::RngCore;
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use waiaas_core::domain::{Address, ChainFamily, EvmAddress, SolanaAddress};
use waiaas_core::ports::KeyStore;
use waiaas_core::{AgentId, Error, ErrorCode, Result};
use zeroize::Zeroizing;

use crate::blocking::run_blocking;
use crate::datadir::{DataDir, ensure_private_dir, keystore_file_in, write_new_secret_file};
use crate::error::io_err;

/// The only file-format version written and read.
pub const KEYSTORE_VERSION: u32 = 1;
const CIPHER: &str = "aes-256-gcm";
const KDF: &str = "argon2id";
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 12;
const SECRET_LEN: usize = 32;
const TAG_LEN: usize = 16;
/// Domain-separation prefix of the associated data.
const AAD_PREFIX: &[u8] = b"waiaas-keystore";

/// What kind of secret a keystore file holds (`keyType`), which says how it signs and how its address looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// A secp256k1 scalar (EVM): signs 32-byte digests, 0x-hex address.
    Secp256k1,
    /// An ed25519 seed (Solana): signs messages, base58 address (the public key).
    Ed25519,
}

impl KeyType {
    /// The `keyType` value in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Secp256k1 => "secp256k1",
            KeyType::Ed25519 => "ed25519",
        }
    }

    /// The key type a chain family signs with.
    pub fn for_family(family: ChainFamily) -> KeyType {
        match family {
            ChainFamily::Evm => KeyType::Secp256k1,
            ChainFamily::Solana => KeyType::Ed25519,
        }
    }
}

/// A decrypted key, for the duration of one closure ([`FsKeyStore::with_key`]).
pub enum UnlockedKey<'a> {
    /// An EVM key.
    Secp256k1(&'a PrivateKeySigner),
    /// A Solana key.
    Ed25519(&'a SigningKey),
}

/// Argon2id parameters, stored in every keystore file (`kdfParams`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// The SPEC's production parameters: m = 64 MiB, t = 3, p = 4.
    fn default() -> Self {
        KdfParams { m_cost_kib: 64 * 1024, t_cost: 3, p_cost: 4 }
    }
}

impl KdfParams {
    /// Upper bounds accepted from a file, so a crafted file cannot make the daemon allocate or spin without
    /// limit before the (failing) authentication check: 1 GiB, 64 iterations, 64 lanes.
    pub const MAX_M_COST_KIB: u32 = 1024 * 1024;
    pub const MAX_T_COST: u32 = 64;
    pub const MAX_P_COST: u32 = 64;

    /// **For tests only**: m = 1 MiB, t = 1, p = 1 — fast and far too weak to protect a real key. Files written
    /// with it stay readable by a store configured with any parameters (they are read from the file).
    pub fn fast_for_tests() -> Self {
        KdfParams { m_cost_kib: 1024, t_cost: 1, p_cost: 1 }
    }

    /// Checks the parameters against Argon2's rules and this crate's upper bounds.
    pub fn validate(&self) -> Result<()> {
        let ok = (1..=Self::MAX_P_COST).contains(&self.p_cost)
            && (1..=Self::MAX_T_COST).contains(&self.t_cost)
            && self.m_cost_kib <= Self::MAX_M_COST_KIB
            && self.m_cost_kib >= 8 * self.p_cost;
        if ok {
            Ok(())
        } else {
            Err(Error::new(
                ErrorCode::KeystoreError,
                format!(
                    "unsupported Argon2id parameters m={} KiB t={} p={} (need 1<=t<={}, 1<=p<={}, 8p<=m<={} KiB)",
                    self.m_cost_kib,
                    self.t_cost,
                    self.p_cost,
                    Self::MAX_T_COST,
                    Self::MAX_P_COST,
                    Self::MAX_M_COST_KIB
                ),
            ))
        }
    }

    fn argon2(&self) -> Result<Argon2<'static>> {
        self.validate()?;
        let params = argon2::Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(SECRET_LEN))
            .map_err(|e| Error::new(ErrorCode::KeystoreError, format!("invalid Argon2id parameters: {e}")))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// The file as stored. Unknown fields are refused: nothing outside the authenticated header may ride along.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KeystoreFile {
    version: u32,
    agent_id: String,
    address: String,
    /// Absent in files written before key types existed: those are secp256k1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_type: Option<String>,
    crypto: CryptoSection,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CryptoSection {
    cipher: String,
    kdf: String,
    kdf_params: KdfParams,
    salt: String,
    nonce: String,
    ciphertext: String,
}

/// A file that parsed and passed every structural check (not yet authenticated).
struct Parsed {
    address: Address,
    /// The file's `keyType` as written (`None` for an old file), part of the associated data.
    recorded_type: Option<KeyType>,
    params: KdfParams,
    salt: Vec<u8>,
    nonce: [u8; NONCE_LEN],
    ciphertext: Vec<u8>,
}

/// [`KeyStore`] over `keystore/<agentId>.json` files. Cheap to clone (shared state behind an `Arc`).
#[derive(Clone)]
pub struct FsKeyStore {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    master_password: Zeroizing<String>,
    params: KdfParams,
}

impl fmt::Debug for FsKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FsKeyStore")
            .field("dir", &self.inner.dir)
            .field("params", &self.inner.params)
            .field("master_password", &"<redacted>")
            .finish()
    }
}

impl FsKeyStore {
    /// A store over the keystore directory `dir` (created 0700 on the first `create_key` if missing).
    /// `params` apply to keys created from now on; existing files keep their own.
    pub fn new(dir: impl Into<PathBuf>, master_password: Zeroizing<String>, params: KdfParams) -> Self {
        FsKeyStore { inner: Arc::new(Inner { dir: dir.into(), master_password, params }) }
    }

    /// A store over `datadir`'s `keystore/` directory.
    pub fn for_data_dir(datadir: &DataDir, master_password: Zeroizing<String>, params: KdfParams) -> Self {
        Self::new(datadir.keystore_dir(), master_password, params)
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    pub fn params(&self) -> KdfParams {
        self.inner.params
    }

    /// The path of `agent`'s keystore file.
    pub fn key_file(&self, agent: AgentId) -> PathBuf {
        keystore_file_in(&self.inner.dir, agent)
    }

    /// Whether a keystore file exists for `agent` (does not check it).
    pub fn contains(&self, agent: AgentId) -> bool {
        self.key_file(agent).is_file()
    }

    /// [`KeyStore::create_key`] of a secp256k1 (EVM) key, synchronously: runs Argon2 on the calling thread (call
    /// from a blocking context). Fails with `KEYSTORE_ERROR` when `agent` already has a key (it is never replaced).
    pub fn create_key_blocking(&self, agent: AgentId) -> Result<EvmAddress> {
        match self.create_typed_key_blocking(agent, KeyType::Secp256k1)? {
            Address::Evm(address) => Ok(address),
            Address::Solana(_) => Err(Error::internal_msg("a secp256k1 key has an EVM address")),
        }
    }

    /// [`KeyStore::create_key`], synchronously, for a key of type `key_type` (recorded in the file).
    pub fn create_typed_key_blocking(&self, agent: AgentId, key_type: KeyType) -> Result<Address> {
        let params = self.inner.params;
        params.validate()?;
        ensure_private_dir(&self.inner.dir)?;
        let path = self.key_file(agent);
        if path.exists() {
            return Err(already_exists(agent));
        }

        let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
        let address = match key_type {
            KeyType::Secp256k1 => {
                // A uniformly random scalar; out-of-range values (zero or >= the group order, p ~ 2^-128) are
                // redrawn.
                let signer = loop {
                    OsRng.fill_bytes(&mut secret[..]);
                    if let Ok(signer) = PrivateKeySigner::from_slice(&secret[..]) {
                        break signer;
                    }
                };
                Address::Evm(EvmAddress(signer.address()))
            }
            KeyType::Ed25519 => {
                // Every 32-byte seed is a valid ed25519 key.
                OsRng.fill_bytes(&mut secret[..]);
                Address::Solana(SolanaAddress(SigningKey::from_bytes(&secret).verifying_key().to_bytes()))
            }
        };

        let mut salt = [0u8; SALT_LEN];
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut salt);
        OsRng.fill_bytes(&mut nonce);

        let key = derive_key(&self.inner.master_password, &params, &salt)?;
        let aad = associated_data_typed(agent, &address, Some(key_type), &params, &salt);
        // Capacity for the tag up front: growing the buffer would leave a plaintext copy in freed memory.
        let mut buffer = Zeroizing::new(Vec::with_capacity(SECRET_LEN + TAG_LEN));
        buffer.extend_from_slice(&secret[..]);
        Aes256Gcm::new((&*key).into())
            .encrypt_in_place(Nonce::from_slice(&nonce), &aad, &mut *buffer)
            .map_err(|_| Error::new(ErrorCode::KeystoreError, "encryption failed"))?;
        drop(secret);

        let file = KeystoreFile {
            version: KEYSTORE_VERSION,
            agent_id: agent.to_string(),
            address: address.to_string(),
            key_type: Some(key_type.as_str().to_owned()),
            crypto: CryptoSection {
                cipher: CIPHER.to_owned(),
                kdf: KDF.to_owned(),
                kdf_params: params,
                salt: hex::encode(salt),
                nonce: hex::encode(nonce),
                ciphertext: hex::encode(&buffer[..]),
            },
        };
        let mut json = serde_json::to_vec_pretty(&file).map_err(Error::internal)?;
        json.push(b'\n');
        if !write_new_secret_file(&path, &json)? {
            return Err(already_exists(agent));
        }
        Ok(address)
    }

    /// [`KeyStore::address`], synchronously (reads and checks the file; decrypts nothing). `KEYSTORE_ERROR` for a
    /// key that is not secp256k1 (use [`FsKeyStore::any_address_blocking`]).
    pub fn address_blocking(&self, agent: AgentId) -> Result<EvmAddress> {
        match self.load(agent)?.address {
            Address::Evm(address) => Ok(address),
            Address::Solana(_) => Err(keystore_error(agent, "the key is ed25519, not secp256k1")),
        }
    }

    /// The address of the stored key of any type (reads and checks the file; decrypts nothing).
    pub fn any_address_blocking(&self, agent: AgentId) -> Result<Address> {
        Ok(self.load(agent)?.address)
    }

    /// Decrypts `agent`'s key, hands it to `f`, and wipes it when `f` returns.
    ///
    /// Runs Argon2 on the calling thread (see [`FsKeyStore::with_signer`]). Errors: `AGENT_NOT_FOUND` (no file),
    /// `KEYSTORE_ERROR` (wrong master password, modified or malformed file, file of another agent).
    pub fn with_key<R>(&self, agent: AgentId, f: impl FnOnce(UnlockedKey<'_>) -> R) -> Result<R> {
        let parsed = self.load(agent)?;
        let key = derive_key(&self.inner.master_password, &parsed.params, &parsed.salt)?;
        let aad = associated_data_typed(agent, &parsed.address, parsed.recorded_type, &parsed.params, &parsed.salt);
        let mut buffer = Zeroizing::new(parsed.ciphertext);
        Aes256Gcm::new((&*key).into()).decrypt_in_place(Nonce::from_slice(&parsed.nonce), &aad, &mut *buffer).map_err(
            |_| keystore_error(agent, "cannot decrypt the key: wrong master password or modified keystore file"),
        )?;
        drop(key);
        match parsed.address {
            Address::Evm(address) => {
                let signer = PrivateKeySigner::from_slice(&buffer[..])
                    .map_err(|_| keystore_error(agent, "the decrypted key is not a valid secp256k1 key"))?;
                drop(buffer);
                if signer.address() != address.0 {
                    return Err(keystore_error(agent, "the decrypted key does not match the file's address"));
                }
                Ok(f(UnlockedKey::Secp256k1(&signer)))
            }
            Address::Solana(address) => {
                let seed: Zeroizing<[u8; SECRET_LEN]> = Zeroizing::new(
                    buffer[..].try_into().map_err(|_| keystore_error(agent, "the decrypted key has a wrong length"))?,
                );
                drop(buffer);
                // `SigningKey` zeroizes itself on drop (ed25519-dalek's `zeroize` feature).
                let signing = SigningKey::from_bytes(&seed);
                if signing.verifying_key().to_bytes() != address.0 {
                    return Err(keystore_error(agent, "the decrypted key does not match the file's address"));
                }
                Ok(f(UnlockedKey::Ed25519(&signing)))
            }
        }
    }

    /// Decrypts `agent`'s secp256k1 key, hands a signer for it to `f`, and wipes the key when `f` returns.
    ///
    /// Runs Argon2 on the calling thread: from async code, call it inside `spawn_blocking` or use
    /// [`FsKeyStore::with_signer_async`]. Errors: `AGENT_NOT_FOUND` (no file), `KEYSTORE_ERROR` (wrong master
    /// password, modified or malformed file, file of another agent, a key that is not secp256k1).
    pub fn with_signer<R>(&self, agent: AgentId, f: impl FnOnce(&PrivateKeySigner) -> R) -> Result<R> {
        self.with_key(agent, |key| match key {
            UnlockedKey::Secp256k1(signer) => Ok(f(signer)),
            UnlockedKey::Ed25519(_) => Err(keystore_error(agent, "the key is ed25519, not secp256k1")),
        })?
    }

    /// [`FsKeyStore::with_signer`] on a dedicated thread, awaitable from any executor.
    pub async fn with_signer_async<R, F>(&self, agent: AgentId, f: F) -> Result<R>
    where
        F: FnOnce(&PrivateKeySigner) -> R + Send + 'static,
        R: Send + 'static,
    {
        let store = self.clone();
        run_blocking("waiaas-keystore", move || store.with_signer(agent, f)).await
    }

    /// Reads and structurally checks `agent`'s file.
    fn load(&self, agent: AgentId) -> Result<Parsed> {
        let path = self.key_file(agent);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::new(ErrorCode::AgentNotFound, format!("no key is stored for agent {agent}")));
            }
            Err(e) => return Err(io_err("read keystore file", &path, e)),
        };
        parse(agent, &bytes)
    }
}

#[async_trait]
impl KeyStore for FsKeyStore {
    /// Runs key generation and Argon2 on a dedicated thread.
    async fn create_key(&self, agent: AgentId, family: ChainFamily) -> Result<Address> {
        let store = self.clone();
        run_blocking("waiaas-keystore", move || store.create_typed_key_blocking(agent, KeyType::for_family(family)))
            .await
    }

    /// Reads one small file inline (no key derivation).
    async fn address(&self, agent: AgentId) -> Result<Address> {
        self.any_address_blocking(agent)
    }

    /// Decrypts the key on a dedicated thread, signs, and wipes the key: a secp256k1 key signs the 32-byte
    /// digest (65 bytes `r || s || v` out), an ed25519 key the message (64 bytes out).
    async fn sign(&self, agent: AgentId, payload: Vec<u8>) -> Result<Vec<u8>> {
        let store = self.clone();
        run_blocking("waiaas-keystore", move || {
            store.with_key(agent, |key| match key {
                UnlockedKey::Secp256k1(signer) => {
                    let digest: [u8; 32] = payload
                        .as_slice()
                        .try_into()
                        .map_err(|_| keystore_error(agent, "a secp256k1 key signs a 32-byte digest, not a message"))?;
                    let signature = signer.sign_hash_sync(&alloy_primitives::B256::from(digest)).map_err(|e| {
                        Error::new(ErrorCode::KeystoreError, format!("signing failed for agent {agent}: {e}"))
                    })?;
                    let mut bytes = vec![0u8; 65];
                    bytes[..32].copy_from_slice(&signature.r().to_be_bytes::<32>());
                    bytes[32..64].copy_from_slice(&signature.s().to_be_bytes::<32>());
                    bytes[64] = u8::from(signature.v());
                    Ok(bytes)
                }
                UnlockedKey::Ed25519(signing) => Ok(signing.sign(&payload).to_bytes().to_vec()),
            })?
        })
        .await
    }
}

/// Argon2id(password, salt, params) → 32-byte AES key.
fn derive_key(password: &str, params: &KdfParams, salt: &[u8]) -> Result<Zeroizing<[u8; SECRET_LEN]>> {
    let mut key = Zeroizing::new([0u8; SECRET_LEN]);
    params
        .argon2()?
        .hash_password_into(password.as_bytes(), salt, &mut key[..])
        .map_err(|e| Error::new(ErrorCode::KeystoreError, format!("key derivation failed: {e}")))?;
    Ok(key)
}

/// The GCM associated data of a file without `keyType` (a secp256k1 key written before key types existed).
pub fn associated_data(agent: AgentId, address: EvmAddress, params: &KdfParams, salt: &[u8]) -> Vec<u8> {
    associated_data_typed(agent, &Address::Evm(address), None, params, salt)
}

/// The GCM associated data: `"waiaas-keystore"` then, each as a 4-byte big-endian length and the bytes, the
/// version (decimal), agentId (hyphenated lowercase), address (EIP-55 or base58), cipher, kdf, mCostKib, tCost,
/// pCost (decimal), the raw salt and, when the file records one, the key type.
pub fn associated_data_typed(
    agent: AgentId,
    address: &Address,
    key_type: Option<KeyType>,
    params: &KdfParams,
    salt: &[u8],
) -> Vec<u8> {
    let mut aad = AAD_PREFIX.to_vec();
    let mut push = |field: &[u8]| {
        aad.extend_from_slice(&u32::try_from(field.len()).unwrap_or(u32::MAX).to_be_bytes());
        aad.extend_from_slice(field);
    };
    push(KEYSTORE_VERSION.to_string().as_bytes());
    push(agent.to_string().as_bytes());
    push(address.to_string().as_bytes());
    push(CIPHER.as_bytes());
    push(KDF.as_bytes());
    push(params.m_cost_kib.to_string().as_bytes());
    push(params.t_cost.to_string().as_bytes());
    push(params.p_cost.to_string().as_bytes());
    push(salt);
    if let Some(key_type) = key_type {
        push(key_type.as_str().as_bytes());
    }
    aad
}

/// Parses and structurally validates a keystore file for `agent`.
fn parse(agent: AgentId, bytes: &[u8]) -> Result<Parsed> {
    let file: KeystoreFile = serde_json::from_slice(bytes).map_err(|e| {
        // Category and position only: serde's message may quote field values.
        keystore_error(
            agent,
            &format!("malformed keystore file ({:?} error at line {} column {})", e.classify(), e.line(), e.column()),
        )
    })?;
    if file.version != KEYSTORE_VERSION {
        return Err(keystore_error(agent, &format!("unsupported keystore version {}", file.version)));
    }
    if file.crypto.cipher != CIPHER || file.crypto.kdf != KDF {
        return Err(keystore_error(agent, "unsupported cipher or kdf in keystore file"));
    }
    match file.agent_id.parse::<AgentId>() {
        Ok(id) if id == agent => {}
        _ => {
            return Err(keystore_error(agent, "the keystore file belongs to another agent"));
        }
    }
    let recorded_type = match file.key_type.as_deref() {
        None => None,
        Some("secp256k1") => Some(KeyType::Secp256k1),
        Some("ed25519") => Some(KeyType::Ed25519),
        Some(_) => return Err(keystore_error(agent, "unsupported keyType in keystore file")),
    };
    let address = match recorded_type.unwrap_or(KeyType::Secp256k1) {
        KeyType::Secp256k1 => match file.address.parse::<EvmAddress>() {
            Ok(address) if address.to_string() == file.address => Address::Evm(address),
            _ => {
                return Err(keystore_error(agent, "the keystore file's address is not a checksummed EVM address"));
            }
        },
        KeyType::Ed25519 => match file.address.parse::<SolanaAddress>() {
            Ok(address) if address.to_string() == file.address => Address::Solana(address),
            _ => return Err(keystore_error(agent, "the keystore file's address is not a base58 ed25519 key")),
        },
    };
    file.crypto.kdf_params.validate().map_err(|e| keystore_error(agent, &e.message))?;
    let salt = hex::decode(&file.crypto.salt)
        .ok()
        .filter(|s| (SALT_LEN..=64).contains(&s.len()))
        .ok_or_else(|| keystore_error(agent, "malformed salt in keystore file"))?;
    let nonce: [u8; NONCE_LEN] = hex::decode(&file.crypto.nonce)
        .ok()
        .and_then(|n| n.try_into().ok())
        .ok_or_else(|| keystore_error(agent, "malformed nonce in keystore file"))?;
    let ciphertext = hex::decode(&file.crypto.ciphertext)
        .ok()
        .filter(|c| c.len() == SECRET_LEN + TAG_LEN)
        .ok_or_else(|| keystore_error(agent, "malformed ciphertext in keystore file"))?;
    Ok(Parsed { address, recorded_type, params: file.crypto.kdf_params, salt, nonce, ciphertext })
}

fn keystore_error(agent: AgentId, what: &str) -> Error {
    Error::new(ErrorCode::KeystoreError, format!("keystore of agent {agent}: {what}"))
}

fn already_exists(agent: AgentId) -> Error {
    keystore_error(agent, "a key already exists and is never replaced")
}

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use waiaas_core::ports::KeyStore;

    use super::*;
    use crate::system::{OsEntropy, SystemClock};

    fn password(p: &str) -> Zeroizing<String> {
        Zeroizing::new(p.to_owned())
    }

    fn setup() -> (tempfile::TempDir, DataDir, FsKeyStore) {
        let tmp = tempfile::tempdir().unwrap();
        let dd = DataDir::create(tmp.path().join("waiaas")).unwrap();
        let store =
            FsKeyStore::for_data_dir(&dd, password("correct horse battery staple"), KdfParams::fast_for_tests());
        (tmp, dd, store)
    }

    fn new_agent() -> AgentId {
        AgentId::generate(&SystemClock, &OsEntropy)
    }

    fn secret_hex(store: &FsKeyStore, agent: AgentId) -> String {
        store.with_signer(agent, |s| hex::encode(s.to_bytes())).unwrap()
    }

    #[tokio::test]
    async fn round_trip() {
        let (_tmp, _dd, store) = setup();
        let agent = new_agent();
        let any = store.create_key(agent, ChainFamily::Evm).await.unwrap();
        let address = any.evm().expect("an EVM key");
        assert_eq!(store.address(agent).await.unwrap(), any);
        assert_eq!(store.with_signer(agent, |s| s.address()).unwrap(), address.0);
        assert_eq!(store.with_signer_async(agent, |s| s.address()).await.unwrap(), address.0);

        // The key signs, and the signature recovers to the stored address.
        let signature = store.with_signer(agent, |s| s.sign_message_sync(b"hello").unwrap()).unwrap();
        assert_eq!(signature.recover_address_from_msg(b"hello").unwrap(), address.0);

        // The port's digest signing: r || s || v (v = 0/1) that recovers to the stored address.
        let digest = [7u8; 32];
        let bytes = store.sign(agent, digest.to_vec()).await.unwrap();
        assert_eq!(bytes.len(), 65);
        assert!(bytes[64] <= 1, "v is the parity bit");
        let parsed = alloy_primitives::Signature::try_from(&bytes[..]).unwrap();
        let recovered = parsed.recover_address_from_prehash(&alloy_primitives::B256::from(digest)).unwrap();
        assert_eq!(recovered, address.0);

        // Another agent gets another key.
        let other = store.create_key(new_agent(), ChainFamily::Evm).await.unwrap();
        assert_ne!(other, any);
        // A secp256k1 key signs digests only.
        assert_eq!(store.sign(agent, b"a message".to_vec()).await.unwrap_err().code, ErrorCode::KeystoreError);
    }

    #[tokio::test]
    async fn an_ed25519_key_records_its_type_and_signs_messages() {
        let (_tmp, dd, store) = setup();
        let agent = new_agent();
        let address = store.create_key(agent, ChainFamily::Solana).await.unwrap();
        let Address::Solana(public) = address else { panic!("a Solana address: {address:?}") };
        assert_eq!(store.address(agent).await.unwrap(), address);
        let json: Value = serde_json::from_slice(&std::fs::read(dd.keystore_file(agent)).unwrap()).unwrap();
        assert_eq!(json["keyType"], "ed25519");
        assert_eq!(json["address"], address.to_string());

        let message = b"a solana message of any length".to_vec();
        let signature = store.sign(agent, message.clone()).await.unwrap();
        let signature = ed25519_dalek::Signature::from_slice(&signature).expect("64 bytes");
        let key = ed25519_dalek::VerifyingKey::from_bytes(&public.0).unwrap();
        key.verify_strict(&message, &signature).expect("the signature verifies under the file's address");
        assert!(store.with_signer(agent, |_| ()).is_err(), "not a secp256k1 signer");
        assert_eq!(store.address_blocking(agent).unwrap_err().code, ErrorCode::KeystoreError);

        // The key type is authenticated: dropping or changing it makes the file unreadable.
        let original = std::fs::read(dd.keystore_file(agent)).unwrap();
        edit(&dd, agent, |json| drop(json.as_object_mut().unwrap().remove("keyType")));
        assert_keystore_error(&store, agent, "no keyType");
        std::fs::write(dd.keystore_file(agent), &original).unwrap();
        edit(&dd, agent, |json| json["keyType"] = "secp256k1".into());
        assert_keystore_error(&store, agent, "keyType secp256k1");
        std::fs::write(dd.keystore_file(agent), &original).unwrap();
        assert_eq!(store.sign(agent, message).await.unwrap().len(), 64, "the untouched file still signs");
    }

    #[tokio::test]
    async fn a_file_without_key_type_is_secp256k1() {
        let (_tmp, dd, store) = setup();
        let agent = new_agent();
        let address = store.create_key_blocking(agent).unwrap();
        // Rewrite the file as before key types: no keyType, the secret re-sealed under the old associated data.
        let secret = store.with_signer(agent, |s| s.to_bytes()).unwrap();
        let path = dd.keystore_file(agent);
        let mut json: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        json.as_object_mut().unwrap().remove("keyType");
        let params: KdfParams = serde_json::from_value(json["crypto"]["kdfParams"].clone()).unwrap();
        let salt = hex::decode(json["crypto"]["salt"].as_str().unwrap()).unwrap();
        let nonce = hex::decode(json["crypto"]["nonce"].as_str().unwrap()).unwrap();
        let key = derive_key("correct horse battery staple", &params, &salt).unwrap();
        let mut buffer = secret.to_vec();
        Aes256Gcm::new((&*key).into())
            .encrypt_in_place(Nonce::from_slice(&nonce), &associated_data(agent, address, &params, &salt), &mut buffer)
            .unwrap();
        json["crypto"]["ciphertext"] = hex::encode(&buffer).into();
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
        assert_eq!(store.address(agent).await.unwrap(), Address::Evm(address));
        assert_eq!(store.sign(agent, vec![7; 32]).await.unwrap().len(), 65);
    }

    #[test]
    fn file_format_and_permissions() {
        let (_tmp, dd, store) = setup();
        let agent = new_agent();
        let address = store.create_key_blocking(agent).unwrap();
        let path = dd.keystore_file(agent);
        assert_eq!(store.key_file(agent), path);
        let json: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(json["version"], 1);
        assert_eq!(json["agentId"], agent.to_string());
        assert_eq!(json["address"], address.to_string());
        let crypto = &json["crypto"];
        assert_eq!(crypto["cipher"], "aes-256-gcm");
        assert_eq!(crypto["kdf"], "argon2id");
        assert_eq!(crypto["kdfParams"], serde_json::json!({ "mCostKib": 1024, "tCost": 1, "pCost": 1 }));
        assert_eq!(crypto["salt"].as_str().unwrap().len(), 32);
        assert_eq!(crypto["nonce"].as_str().unwrap().len(), 24);
        assert_eq!(crypto["ciphertext"].as_str().unwrap().len(), 96);

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(&dd.keystore_dir()), 0o700);
            assert_eq!(mode(dd.root()), 0o700);
        }
    }

    #[test]
    fn private_key_never_appears_in_the_file() {
        let (_tmp, dd, store) = setup();
        let agent = new_agent();
        store.create_key_blocking(agent).unwrap();
        let secret = secret_hex(&store, agent);
        assert_eq!(secret.len(), 64);
        let text = std::fs::read_to_string(dd.keystore_file(agent)).unwrap().to_lowercase();
        assert!(!text.contains(&secret));
        assert!(!format!("{store:?}").contains("correct horse"));
    }

    #[test]
    fn wrong_password_fails_without_leaking() {
        let (_tmp, dd, store) = setup();
        let agent = new_agent();
        store.create_key_blocking(agent).unwrap();
        let secret = secret_hex(&store, agent);
        let wrong =
            FsKeyStore::for_data_dir(&dd, password("Correct horse battery staple"), KdfParams::fast_for_tests());
        let err = wrong.with_signer(agent, |_| ()).unwrap_err();
        assert_eq!(err.code, ErrorCode::KeystoreError);
        let shown = format!("{err} {err:?}");
        assert!(!shown.to_lowercase().contains(&secret));
        assert!(!shown.contains("orrect horse"));
        // The address needs no password.
        assert!(wrong.address_blocking(agent).is_ok());
    }

    #[test]
    fn params_are_read_from_the_file() {
        let (_tmp, dd, store) = setup();
        let agent = new_agent();
        let address = store.create_key_blocking(agent).unwrap();
        let other_params = KdfParams { m_cost_kib: 2048, t_cost: 2, p_cost: 2 };
        let reopened = FsKeyStore::for_data_dir(&dd, password("correct horse battery staple"), other_params);
        assert_eq!(reopened.with_signer(agent, |s| s.address()).unwrap(), address.0);
    }

    #[test]
    fn missing_key_is_agent_not_found() {
        let (_tmp, _dd, store) = setup();
        let agent = new_agent();
        assert_eq!(store.address_blocking(agent).unwrap_err().code, ErrorCode::AgentNotFound);
        assert_eq!(store.with_signer(agent, |_| ()).unwrap_err().code, ErrorCode::AgentNotFound);
        assert!(!store.contains(agent));
    }

    #[test]
    fn existing_key_is_never_replaced() {
        let (_tmp, dd, store) = setup();
        let agent = new_agent();
        store.create_key_blocking(agent).unwrap();
        let before = std::fs::read(dd.keystore_file(agent)).unwrap();
        assert_eq!(store.create_key_blocking(agent).unwrap_err().code, ErrorCode::KeystoreError);
        assert_eq!(std::fs::read(dd.keystore_file(agent)).unwrap(), before);
    }

    /// Rewrites one JSON field of `agent`'s file.
    fn edit(dd: &DataDir, agent: AgentId, change: impl FnOnce(&mut Value)) {
        let path = dd.keystore_file(agent);
        let mut json: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        change(&mut json);
        std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    }

    fn assert_keystore_error(store: &FsKeyStore, agent: AgentId, what: &str) {
        let err = store.with_key(agent, |_| ()).expect_err(what);
        assert_eq!(err.code, ErrorCode::KeystoreError, "{what}: {err}");
    }

    #[test]
    fn flipping_any_byte_of_ciphertext_salt_or_nonce_fails() {
        let (_tmp, dd, store) = setup();
        let agent = new_agent();
        store.create_key_blocking(agent).unwrap();
        let original = std::fs::read(dd.keystore_file(agent)).unwrap();
        for field in ["ciphertext", "salt", "nonce"] {
            let len = {
                let json: Value = serde_json::from_slice(&original).unwrap();
                json["crypto"][field].as_str().unwrap().len() / 2
            };
            for i in 0..len {
                std::fs::write(dd.keystore_file(agent), &original).unwrap();
                edit(&dd, agent, |json| {
                    let mut bytes = hex::decode(json["crypto"][field].as_str().unwrap()).unwrap();
                    bytes[i] ^= 0x01;
                    json["crypto"][field] = Value::String(hex::encode(bytes));
                });
                assert_keystore_error(&store, agent, &format!("{field}[{i}]"));
            }
        }
        std::fs::write(dd.keystore_file(agent), &original).unwrap();
        assert!(store.with_signer(agent, |_| ()).is_ok());
    }

    #[test]
    fn editing_the_header_fails() {
        let (_tmp, dd, store) = setup();
        let agent = new_agent();
        let address = store.create_key_blocking(agent).unwrap();
        let original = std::fs::read(dd.keystore_file(agent)).unwrap();

        // Every single-character change of the address: either not a valid checksum any more, or another
        // (checksummed) address that the associated data does not match.
        let addr = address.to_string();
        for i in 2..addr.len() {
            std::fs::write(dd.keystore_file(agent), &original).unwrap();
            let mut chars: Vec<char> = addr.chars().collect();
            chars[i] = if chars[i] == '0' { '1' } else { '0' };
            let tampered: String = chars.into_iter().collect();
            edit(&dd, agent, |json| json["address"] = Value::String(tampered));
            assert_keystore_error(&store, agent, &format!("address[{i}]"));
        }
        // A different but validly checksummed address: only the associated data catches it.
        std::fs::write(dd.keystore_file(agent), &original).unwrap();
        let other = store.create_key_blocking(new_agent()).unwrap();
        edit(&dd, agent, |json| json["address"] = Value::String(other.to_string()));
        assert_keystore_error(&store, agent, "checksummed other address");

        type Edit = fn(&mut Value);
        let edits: [(&str, Edit); 8] = [
            ("tCost", |j| j["crypto"]["kdfParams"]["tCost"] = 2.into()),
            ("mCostKib", |j| j["crypto"]["kdfParams"]["mCostKib"] = 2048.into()),
            ("pCost", |j| j["crypto"]["kdfParams"]["pCost"] = 2.into()),
            ("version", |j| j["version"] = 2.into()),
            ("cipher", |j| j["crypto"]["cipher"] = "aes-128-gcm".into()),
            ("extra field", |j| j["note"] = "x".into()),
            ("huge memory", |j| j["crypto"]["kdfParams"]["mCostKib"] = 4_000_000_000u32.into()),
            ("short salt", |j| j["crypto"]["salt"] = "00".into()),
        ];
        for (what, change) in edits {
            std::fs::write(dd.keystore_file(agent), &original).unwrap();
            edit(&dd, agent, change);
            assert_keystore_error(&store, agent, what);
        }

        std::fs::write(dd.keystore_file(agent), b"not json").unwrap();
        assert_keystore_error(&store, agent, "not json");
        assert_eq!(store.address_blocking(agent).unwrap_err().code, ErrorCode::KeystoreError);
    }

    #[test]
    fn a_file_copied_over_another_agent_is_refused() {
        let (_tmp, dd, store) = setup();
        let a = new_agent();
        let b = new_agent();
        store.create_key_blocking(a).unwrap();
        std::fs::copy(dd.keystore_file(a), dd.keystore_file(b)).unwrap();
        assert_eq!(store.address_blocking(b).unwrap_err().code, ErrorCode::KeystoreError);
        assert_keystore_error(&store, b, "copied file");
        // Even with the agentId rewritten, the associated data binds the original agent.
        edit(&dd, b, |j| j["agentId"] = Value::String(b.to_string()));
        assert_keystore_error(&store, b, "copied file, agentId rewritten");
    }

    #[test]
    fn kdf_params_bounds() {
        assert_eq!(KdfParams::default(), KdfParams { m_cost_kib: 65536, t_cost: 3, p_cost: 4 });
        KdfParams::default().validate().unwrap();
        KdfParams::fast_for_tests().validate().unwrap();
        for bad in [
            KdfParams { m_cost_kib: 7, t_cost: 1, p_cost: 1 },
            KdfParams { m_cost_kib: 1024, t_cost: 0, p_cost: 1 },
            KdfParams { m_cost_kib: 1024, t_cost: 1, p_cost: 0 },
            KdfParams { m_cost_kib: KdfParams::MAX_M_COST_KIB + 1, t_cost: 1, p_cost: 1 },
        ] {
            assert_eq!(bad.validate().unwrap_err().code, ErrorCode::KeystoreError, "{bad:?}");
        }
    }
}
