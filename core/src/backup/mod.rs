//! The backup archive, format v1 (byte-by-byte description in `docs/backup-format.md`).
//!
//! Pure logic over `std::io::Read` / `Write`: the fs adapter opens the files, the core seals and opens them.
//!
//! ```text
//! header (65 bytes, cleartext, the associated data of every chunk)
//!   magic "WAIAASBK" | version u8 = 1 | kdf id u8 | kdf params 3 × u32 BE | salt [32] | nonce prefix [7]
//!   | chunk size u32 BE
//! sealed stream (AES-256-GCM, STREAM construction: nonce = prefix ‖ counter u32 BE ‖ last-flag u8)
//!   plaintext = manifest length u32 BE ‖ manifest JSON ‖ file 1 bytes ‖ file 2 bytes ‖ …
//!   every chunk but the last holds exactly `chunk size` plaintext bytes; the last holds 0..=chunk size
//! ```
//!
//! Truncation (a non-last chunk opened as last), appended bytes (the last chunk opened as non-last), reordering
//! (counter), header edits (AAD) and any bit flip fail authentication: `BACKUP_CORRUPTED`. A file that is not an
//! archive, an unknown version or a header outside the sane bounds is `INVALID_BACKUP_FORMAT`. Memory is bounded
//! by one chunk and the manifest (≤ 1 MiB), whatever the size of the data.

use std::io::{self, Read, Write};

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Error, ErrorCode, Result};
use crate::system::Entropy;

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

/// First 8 bytes of every archive.
pub const MAGIC: &[u8; 8] = b"WAIAASBK";
/// The format version this build writes (and the only one it reads so far).
pub const FORMAT_VERSION: u8 = 1;
/// Length of the cleartext header.
pub const HEADER_LEN: usize = 8 + 1 + 1 + 12 + SALT_LEN + NONCE_PREFIX_LEN + 4;
/// Plaintext bytes per chunk written by this build.
pub const CHUNK_SIZE: u32 = 64 * 1024;
/// File-name extension of an archive.
pub const ARCHIVE_EXTENSION: &str = "waiaas-backup";

const SALT_LEN: usize = 32;
const NONCE_PREFIX_LEN: usize = 7;
const TAG_LEN: usize = 16;
const KEY_LEN: usize = 32;
const MIN_CHUNK: u32 = 4 * 1024;
const MAX_CHUNK: u32 = 1024 * 1024;
const MAX_MANIFEST: u32 = 1024 * 1024;
const MAX_FILES: usize = 100_000;

const KDF_ARGON2ID: u8 = 1;
const KDF_PBKDF2_SHA256: u8 = 2;

/// Bounds on KDF params accepted from a header: a crafted header cannot make the reader allocate more than
/// 1 GiB or spin for hours.
const ARGON2_MAX_M_KIB: u32 = 1024 * 1024;
const ARGON2_MAX_T: u32 = 64;
const ARGON2_MAX_P: u32 = 64;
const PBKDF2_MAX_ITERATIONS: u32 = 50_000_000;
/// The minimum PBKDF2 iteration count for new archives (OWASP 2023 for HMAC-SHA256).
pub const PBKDF2_DEFAULT_ITERATIONS: u32 = 600_000;

/// The key-derivation function of an archive and its parameters (stored in the header).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "id", rename_all = "camelCase")]
pub enum Kdf {
    /// Argon2id v0x13: memory in KiB, iterations, parallelism.
    Argon2id {
        /// Memory cost in KiB (at least 8 × `p_cost`, at most 1 GiB when read).
        m_cost_kib: u32,
        /// Iterations (passes over the memory), 1..=64.
        t_cost: u32,
        /// Parallelism (lanes), 1..=64.
        p_cost: u32,
    },
    /// PBKDF2-HMAC-SHA256.
    Pbkdf2Sha256 {
        /// Iteration count, 1..=50,000,000 when read.
        iterations: u32,
    },
}

impl Kdf {
    /// Argon2id, m = 64 MiB, t = 3, p = 4 (the default for new archives).
    pub const fn argon2id_default() -> Kdf {
        Kdf::Argon2id { m_cost_kib: 64 * 1024, t_cost: 3, p_cost: 4 }
    }

    /// PBKDF2-HMAC-SHA256 with 600,000 iterations.
    pub const fn pbkdf2_default() -> Kdf {
        Kdf::Pbkdf2Sha256 { iterations: PBKDF2_DEFAULT_ITERATIONS }
    }

    /// Tiny params for tests only (never for real archives).
    pub const fn argon2id_fast_for_tests() -> Kdf {
        Kdf::Argon2id { m_cost_kib: 64, t_cost: 1, p_cost: 1 }
    }

    /// Short name: `argon2id` or `pbkdf2-sha256`.
    pub fn name(&self) -> &'static str {
        match self {
            Kdf::Argon2id { .. } => "argon2id",
            Kdf::Pbkdf2Sha256 { .. } => "pbkdf2-sha256",
        }
    }

    fn encode(&self) -> (u8, [u32; 3]) {
        match *self {
            Kdf::Argon2id { m_cost_kib, t_cost, p_cost } => (KDF_ARGON2ID, [m_cost_kib, t_cost, p_cost]),
            Kdf::Pbkdf2Sha256 { iterations } => (KDF_PBKDF2_SHA256, [iterations, 0, 0]),
        }
    }

    fn decode(id: u8, p: [u32; 3]) -> Result<Kdf> {
        let kdf = match id {
            KDF_ARGON2ID => Kdf::Argon2id { m_cost_kib: p[0], t_cost: p[1], p_cost: p[2] },
            KDF_PBKDF2_SHA256 if p[1] == 0 && p[2] == 0 => Kdf::Pbkdf2Sha256 { iterations: p[0] },
            _ => return Err(invalid("unknown key-derivation function")),
        };
        kdf.validate()?;
        Ok(kdf)
    }

    /// Checks the params are within the bounds a reader accepts.
    pub fn validate(&self) -> Result<()> {
        let ok = match *self {
            Kdf::Argon2id { m_cost_kib, t_cost, p_cost } => {
                (1..=ARGON2_MAX_T).contains(&t_cost)
                    && (1..=ARGON2_MAX_P).contains(&p_cost)
                    && m_cost_kib >= 8 * p_cost
                    && m_cost_kib <= ARGON2_MAX_M_KIB
            }
            Kdf::Pbkdf2Sha256 { iterations } => (1..=PBKDF2_MAX_ITERATIONS).contains(&iterations),
        };
        if ok { Ok(()) } else { Err(invalid("key-derivation parameters out of bounds")) }
    }

    fn derive(&self, password: &str, salt: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        match *self {
            Kdf::Argon2id { m_cost_kib, t_cost, p_cost } => {
                let params = argon2::Params::new(m_cost_kib, t_cost, p_cost, Some(KEY_LEN))
                    .map_err(|_| invalid("key-derivation parameters out of bounds"))?;
                argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
                    .hash_password_into(password.as_bytes(), salt, &mut *key)
                    .map_err(|_| invalid("key derivation failed"))?;
            }
            Kdf::Pbkdf2Sha256 { iterations } => {
                pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut *key);
            }
        }
        Ok(key)
    }
}

/// The cleartext header: everything needed to derive the key, and nothing about the contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The archive format version ([`FORMAT_VERSION`]).
    pub version: u8,
    /// How the key is derived from the master password.
    pub kdf: Kdf,
    /// The KDF's random salt (32 bytes).
    pub salt: [u8; SALT_LEN],
    /// The random first 7 bytes of every chunk's AES-GCM nonce.
    pub nonce_prefix: [u8; NONCE_PREFIX_LEN],
    /// Plaintext bytes per chunk (4 KiB..=1 MiB); the last chunk may hold fewer.
    pub chunk_size: u32,
}

impl Header {
    /// A fresh header for a new archive: random salt and nonce prefix.
    pub fn new(kdf: Kdf, entropy: &dyn Entropy) -> Result<Header> {
        kdf.validate()?;
        let mut salt = [0u8; SALT_LEN];
        entropy.fill(&mut salt);
        let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
        entropy.fill(&mut nonce_prefix);
        Ok(Header { version: FORMAT_VERSION, kdf, salt, nonce_prefix, chunk_size: CHUNK_SIZE })
    }

    /// The header's [`HEADER_LEN`] bytes as written at the start of the archive.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let (id, params) = self.kdf.encode();
        out[..8].copy_from_slice(MAGIC);
        out[8] = self.version;
        out[9] = id;
        for (i, p) in params.iter().enumerate() {
            out[10 + 4 * i..14 + 4 * i].copy_from_slice(&p.to_be_bytes());
        }
        out[22..22 + SALT_LEN].copy_from_slice(&self.salt);
        out[54..54 + NONCE_PREFIX_LEN].copy_from_slice(&self.nonce_prefix);
        out[61..65].copy_from_slice(&self.chunk_size.to_be_bytes());
        out
    }

    /// Parses and bounds-checks a header. Errors are `INVALID_BACKUP_FORMAT`.
    pub fn parse(bytes: &[u8; HEADER_LEN]) -> Result<Header> {
        if &bytes[..8] != MAGIC {
            return Err(invalid("not a WAIaaS backup archive"));
        }
        if bytes[8] != FORMAT_VERSION {
            return Err(invalid(format!("unsupported archive format version {}", bytes[8])));
        }
        let u32_at = |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let kdf = Kdf::decode(bytes[9], [u32_at(10), u32_at(14), u32_at(18)])?;
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&bytes[22..22 + SALT_LEN]);
        let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
        nonce_prefix.copy_from_slice(&bytes[54..54 + NONCE_PREFIX_LEN]);
        let chunk_size = u32_at(61);
        if !(MIN_CHUNK..=MAX_CHUNK).contains(&chunk_size) {
            return Err(invalid("chunk size out of bounds"));
        }
        Ok(Header { version: bytes[8], kdf, salt, nonce_prefix, chunk_size })
    }

    /// Reads the header from the start of `input`.
    pub fn read_from(input: &mut dyn Read) -> Result<Header> {
        let mut bytes = [0u8; HEADER_LEN];
        if read_full(input, &mut bytes).map_err(io_error)? != HEADER_LEN {
            return Err(invalid("file too short to be a WAIaaS backup archive"));
        }
        Header::parse(&bytes)
    }
}

/// One file in the archive, in payload order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManifestFile {
    /// Path relative to the data dir, `/`-separated (e.g. `data/waiaas.db`, `keystore/<agentId>.json`).
    pub path: String,
    /// The file's length in bytes.
    pub size: u64,
    /// Lowercase hex SHA-256 of the file's bytes.
    pub sha256: String,
}

/// The encrypted manifest: the first record of the sealed stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    /// Highest DB migration applied in the snapshot.
    pub schema_version: i64,
    /// Version of the daemon that wrote the archive.
    pub daemon_version: String,
    /// Unix seconds.
    pub created_at: i64,
    /// The files whose bytes follow the manifest, in that order.
    pub files: Vec<ManifestFile>,
}

impl Manifest {
    /// Total payload bytes (saturating: a manifest whose sizes overflow `u64` never validates).
    pub fn total_size(&self) -> u64 {
        self.files.iter().fold(0u64, |total, f| total.saturating_add(f.size))
    }

    fn validate(&self) -> Result<()> {
        if self.files.len() > MAX_FILES {
            return Err(corrupted("manifest lists too many files"));
        }
        if self.files.iter().try_fold(0u64, |total, f| total.checked_add(f.size)).is_none() {
            return Err(corrupted("manifest file sizes add up to more than 2^64 bytes"));
        }
        let mut seen = std::collections::BTreeSet::new();
        for f in &self.files {
            if !is_safe_relative_path(&f.path) || !seen.insert(f.path.as_str()) {
                return Err(corrupted("manifest holds an unsafe or duplicate path"));
            }
            if f.sha256.len() != 64 || !f.sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                return Err(corrupted("manifest holds a malformed hash"));
            }
        }
        Ok(())
    }
}

/// A relative, `/`-separated path made of plain components (no `..`, `.`, empty or absolute parts).
pub fn is_safe_relative_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 255
        && path.split('/').all(|c| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && c.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        })
}

/// SHA-256 and length of everything `input` yields (the first pass of writing an archive).
pub fn hash_reader(input: &mut dyn Read) -> Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK_SIZE as usize];
    let mut total = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::internal(e)),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((total, hex::encode(hasher.finalize())))
}

/// Progress callback: (bytes of payload done, bytes of payload in total).
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

/// Writes a complete archive to `out`: header, sealed manifest, then each file of `manifest.files` in order,
/// read from `open(file)`. Each source must yield exactly the size and hash the manifest states (a file that
/// changed since it was hashed fails the backup rather than producing an archive that cannot be verified).
pub fn write_archive(
    out: &mut dyn Write,
    password: &str,
    header: &Header,
    manifest: &Manifest,
    open: &mut dyn FnMut(&ManifestFile) -> Result<Box<dyn Read + '_>>,
    progress: Progress<'_>,
) -> Result<()> {
    manifest.validate().map_err(|e| Error::internal_msg(e.message))?;
    let header_bytes = header.to_bytes();
    out.write_all(&header_bytes).map_err(Error::from_io)?;
    let key = header.kdf.derive(password, &header.salt)?;
    let mut sealer = Sealer::new(out, &key, header, header_bytes);
    let manifest_json = Zeroizing::new(serde_json::to_vec(manifest).map_err(Error::internal)?);
    let manifest_len = u32::try_from(manifest_json.len())
        .ok()
        .filter(|l| *l <= MAX_MANIFEST)
        .ok_or_else(|| Error::internal_msg("manifest too large"))?;
    sealer.write(&manifest_len.to_be_bytes())?;
    sealer.write(&manifest_json)?;
    let total = manifest.total_size();
    let mut done = 0u64;
    let mut buf = Zeroizing::new(vec![0u8; header.chunk_size as usize]);
    for file in &manifest.files {
        let mut src = open(file)?;
        let mut hasher = Sha256::new();
        let mut len = 0u64;
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::internal(e)),
            };
            len += n as u64;
            if len > file.size {
                return Err(Error::internal_msg(format!("{} grew while it was being archived", file.path)));
            }
            hasher.update(&buf[..n]);
            sealer.write(&buf[..n])?;
            done += n as u64;
            progress(done, total);
        }
        if len != file.size || hex::encode(hasher.finalize()) != file.sha256 {
            return Err(Error::internal_msg(format!("{} changed while it was being archived", file.path)));
        }
    }
    sealer.finish()?;
    Ok(())
}

/// Opens an archive: authenticates and decrypts everything, hands each file's plaintext to `sink` as a reader,
/// and checks each file's size and SHA-256 and the end of the stream. Returns the manifest.
///
/// `sink` receives plaintext *before* the file's hash is known to match: a caller that writes it somewhere
/// must treat everything as untrusted until this function returns `Ok` (restore writes into a staging dir that
/// it removes on error). `manifest_check` runs right after the manifest is authenticated (before any file is
/// handed out), e.g. to refuse an archive whose schema is newer than this build.
pub fn read_archive(
    input: &mut dyn Read,
    password: &str,
    manifest_check: &mut dyn FnMut(&Manifest) -> Result<()>,
    sink: &mut dyn FnMut(&ManifestFile, &mut dyn Read) -> Result<()>,
    progress: Progress<'_>,
) -> Result<Manifest> {
    let header = Header::read_from(input)?;
    let key = header.kdf.derive(password, &header.salt)?;
    let mut opener = Opener::new(input, &key, &header);
    let mut len_bytes = [0u8; 4];
    opener.read_exact(&mut len_bytes)?;
    let manifest_len = u32::from_be_bytes(len_bytes);
    if manifest_len > MAX_MANIFEST {
        return Err(corrupted("manifest length out of bounds"));
    }
    let mut manifest_json = Zeroizing::new(vec![0u8; manifest_len as usize]);
    opener.read_exact(&mut manifest_json)?;
    let manifest: Manifest =
        serde_json::from_slice(&manifest_json).map_err(|_| corrupted("the manifest is not valid"))?;
    manifest.validate()?;
    manifest_check(&manifest)?;
    let total = manifest.total_size();
    let mut done = 0u64;
    for file in &manifest.files {
        let mut reader = FileReader { opener: &mut opener, remaining: file.size, hasher: Sha256::new(), failure: None };
        let sunk = sink(file, &mut reader);
        if let Some(e) = reader.failure.take() {
            return Err(e);
        }
        sunk?;
        // Drain whatever the sink did not read, so the hash covers the whole file.
        io::copy(&mut reader, &mut io::sink()).map_err(|_| corrupted("the archive is corrupted"))?;
        if let Some(e) = reader.failure.take() {
            return Err(e);
        }
        if hex::encode(reader.hasher.finalize()) != file.sha256 {
            return Err(corrupted(format!("{} does not match its hash", file.path)));
        }
        done += file.size;
        progress(done, total);
    }
    opener.expect_end()?;
    Ok(manifest)
}

/// Decrypts and checks a whole archive, keeping nothing.
pub fn verify_archive(input: &mut dyn Read, password: &str, progress: Progress<'_>) -> Result<Manifest> {
    read_archive(input, password, &mut |_| Ok(()), &mut |_, _| Ok(()), progress)
}

fn nonce_for(prefix: &[u8; NONCE_PREFIX_LEN], counter: u32, last: bool) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[..NONCE_PREFIX_LEN].copy_from_slice(prefix);
    nonce[7..11].copy_from_slice(&counter.to_be_bytes());
    nonce[11] = u8::from(last);
    nonce
}

/// Seals plaintext into chunks of exactly `chunk_size` bytes; `finish` seals the rest as the last chunk.
struct Sealer<'a> {
    out: &'a mut dyn Write,
    cipher: Aes256Gcm,
    aad: [u8; HEADER_LEN],
    prefix: [u8; NONCE_PREFIX_LEN],
    chunk_size: usize,
    buf: Zeroizing<Vec<u8>>,
    counter: u32,
}

impl<'a> Sealer<'a> {
    fn new(out: &'a mut dyn Write, key: &[u8; KEY_LEN], header: &Header, aad: [u8; HEADER_LEN]) -> Self {
        let chunk_size = header.chunk_size as usize;
        Sealer {
            out,
            cipher: Aes256Gcm::new(key.into()),
            aad,
            prefix: header.nonce_prefix,
            chunk_size,
            buf: Zeroizing::new(Vec::with_capacity(chunk_size + TAG_LEN)),
            counter: 0,
        }
    }

    fn write(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            if self.buf.len() == self.chunk_size {
                // A full chunk followed by more data: it is not the last one.
                self.seal(false)?;
            }
            let take = (self.chunk_size - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    fn seal(&mut self, last: bool) -> Result<()> {
        let nonce = nonce_for(&self.prefix, self.counter, last);
        self.cipher
            .encrypt_in_place(Nonce::from_slice(&nonce), &self.aad, &mut *self.buf)
            .map_err(|_| Error::internal_msg("encryption failed"))?;
        self.out.write_all(&self.buf).map_err(Error::from_io)?;
        self.buf.clear();
        self.counter = self.counter.checked_add(1).ok_or_else(|| Error::internal_msg("archive too large"))?;
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        self.seal(true)?;
        self.out.flush().map_err(Error::from_io)
    }
}

/// Opens chunks in order, one chunk of plaintext in memory at a time.
struct Opener<'a> {
    input: &'a mut dyn Read,
    cipher: Aes256Gcm,
    aad: [u8; HEADER_LEN],
    prefix: [u8; NONCE_PREFIX_LEN],
    chunk_size: usize,
    /// Decrypted plaintext of the current chunk and how much of it was consumed.
    plain: Zeroizing<Vec<u8>>,
    pos: usize,
    counter: u32,
    /// One byte read past a full chunk to learn whether more follows.
    lookahead: Option<u8>,
    done: bool,
}

impl<'a> Opener<'a> {
    fn new(input: &'a mut dyn Read, key: &[u8; KEY_LEN], header: &Header) -> Self {
        let chunk_size = header.chunk_size as usize;
        Opener {
            input,
            cipher: Aes256Gcm::new(key.into()),
            aad: header.to_bytes(),
            prefix: header.nonce_prefix,
            chunk_size,
            plain: Zeroizing::new(Vec::with_capacity(chunk_size + TAG_LEN)),
            pos: 0,
            counter: 0,
            lookahead: None,
            done: false,
        }
    }

    /// Reads and opens the next chunk. Returns false at the end of the stream.
    fn next_chunk(&mut self) -> Result<bool> {
        if self.done {
            return Ok(false);
        }
        let want = self.chunk_size + TAG_LEN;
        self.plain.clear();
        self.plain.resize(want, 0);
        let mut got = 0;
        if let Some(b) = self.lookahead.take() {
            self.plain[0] = b;
            got = 1;
        }
        got += read_full(self.input, &mut self.plain[got..]).map_err(io_error)?;
        let last = if got < want {
            true
        } else {
            let mut one = [0u8; 1];
            match read_full(self.input, &mut one).map_err(io_error)? {
                0 => true,
                _ => {
                    self.lookahead = Some(one[0]);
                    false
                }
            }
        };
        if got < TAG_LEN {
            return Err(corrupted("the archive is truncated"));
        }
        self.plain.truncate(got);
        let nonce = nonce_for(&self.prefix, self.counter, last);
        self.cipher
            .decrypt_in_place(Nonce::from_slice(&nonce), &self.aad, &mut *self.plain)
            .map_err(|_| corrupted("wrong password, or the archive is corrupted or was tampered with"))?;
        self.counter = self.counter.checked_add(1).ok_or_else(|| corrupted("the archive is too long"))?;
        self.pos = 0;
        self.done = last;
        Ok(true)
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        while self.pos == self.plain.len() {
            if !self.next_chunk()? {
                return Ok(0);
            }
        }
        let n = (self.plain.len() - self.pos).min(buf.len());
        buf[..n].copy_from_slice(&self.plain[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<()> {
        let mut at = 0;
        while at < buf.len() {
            match self.read(&mut buf[at..])? {
                0 => return Err(corrupted("the archive ends early")),
                n => at += n,
            }
        }
        Ok(())
    }

    /// After the last file: the stream must end here (the last chunk included).
    fn expect_end(&mut self) -> Result<()> {
        let mut one = [0u8; 1];
        match self.read(&mut one)? {
            0 => Ok(()),
            _ => Err(corrupted("the archive holds data beyond its manifest")),
        }
    }
}

/// A `Read` over one file's plaintext: stops at the file's size, hashes what it yields, and keeps the domain
/// error of a failed chunk (an `io::Error` would lose its code).
struct FileReader<'o, 'a> {
    opener: &'o mut Opener<'a>,
    remaining: u64,
    hasher: Sha256,
    failure: Option<Error>,
}

impl Read for FileReader<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(self.remaining).unwrap_or(usize::MAX).min(buf.len());
        match self.opener.read(&mut buf[..want]) {
            Ok(0) => {
                self.failure = Some(corrupted("the archive ends early"));
                Err(io::Error::other("the archive ends early"))
            }
            Ok(n) => {
                self.hasher.update(&buf[..n]);
                self.remaining -= n as u64;
                Ok(n)
            }
            Err(e) => {
                let msg = e.message.clone();
                self.failure = Some(e);
                Err(io::Error::other(msg))
            }
        }
    }
}

/// Reads until `buf` is full or end of input; returns the bytes read.
fn read_full(input: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut at = 0;
    while at < buf.len() {
        match input.read(&mut buf[at..]) {
            Ok(0) => break,
            Ok(n) => at += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(at)
}

fn io_error(e: io::Error) -> Error {
    Error::internal(e)
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorCode::InvalidBackupFormat, message)
}

fn corrupted(message: impl Into<String>) -> Error {
    Error::new(ErrorCode::BackupCorrupted, message)
}
