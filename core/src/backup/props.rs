//! Property tests of the archive reader on hostile input: arbitrary bytes, mutated valid archives, arbitrary
//! headers, and sealed streams whose plaintext (manifest length, manifest, payload) is arbitrary but
//! authenticates (what someone who knows the password could craft). Every outcome is `Ok` or an error with a
//! backup code, never a panic, and every size the reader allocates from is bounded before use.

use std::io::Cursor;

use proptest::prelude::*;
use proptest::sample::Index;

use super::*;
use crate::ports::testing::CountingEntropy;

const PASSWORD: &str = "correct horse battery staple";

/// The codes a refused archive may carry.
fn is_backup_code(code: ErrorCode) -> bool {
    matches!(code, ErrorCode::InvalidBackupFormat | ErrorCode::BackupCorrupted)
}

fn header() -> Header {
    let mut header = Header::new(Kdf::argon2id_fast_for_tests(), &CountingEntropy::default()).unwrap();
    header.chunk_size = MIN_CHUNK;
    header
}

/// A valid archive of two small files (three chunks at the minimum chunk size).
fn small_archive() -> Vec<u8> {
    let files = [("data/waiaas.db", vec![7u8; 9_000]), ("config.toml", b"[daemon]\n".to_vec())];
    let manifest = Manifest {
        schema_version: 3,
        daemon_version: "0.1.0".into(),
        created_at: 1_700_000_000,
        files: files
            .iter()
            .map(|(p, b)| {
                let (size, sha256) = hash_reader(&mut b.as_slice()).unwrap();
                ManifestFile { path: (*p).into(), size, sha256 }
            })
            .collect(),
    };
    let mut out = Vec::new();
    write_archive(
        &mut out,
        PASSWORD,
        &header(),
        &manifest,
        &mut |f| Ok(Box::new(Cursor::new(files.iter().find(|(p, _)| *p == f.path).unwrap().1.clone()))),
        &mut |_, _| {},
    )
    .unwrap();
    out
}

/// An archive whose sealed stream holds `plaintext` as is: it authenticates under [`PASSWORD`], whatever it says.
fn sealed(plaintext: &[u8]) -> Vec<u8> {
    let header = header();
    let header_bytes = header.to_bytes();
    let key = header.kdf.derive(PASSWORD, &header.salt).unwrap();
    let mut out = header_bytes.to_vec();
    let mut sealer = Sealer::new(&mut out, &key, &header, header_bytes);
    sealer.write(plaintext).unwrap();
    sealer.finish().unwrap();
    out
}

/// Opens `bytes`, reading every file handed out to its end; the outcome's code when refused.
fn open(bytes: &[u8]) -> std::result::Result<Manifest, ErrorCode> {
    read_archive(
        &mut Cursor::new(bytes),
        PASSWORD,
        &mut |_| Ok(()),
        &mut |_, r| {
            io::copy(r, &mut io::sink()).map_err(Error::internal)?;
            Ok(())
        },
        &mut |_, _| {},
    )
    .map_err(|e| e.code)
}

/// Whether the KDF a header asks for is cheap enough to run in a test (a mutation can turn the test
/// parameters into valid but expensive ones, up to the 1 GiB bound).
fn cheap_kdf(bytes: &[u8]) -> bool {
    bytes.len() < HEADER_LEN
        || Header::parse(bytes[..HEADER_LEN].try_into().unwrap()).map_or(true, |h| match h.kdf {
            Kdf::Argon2id { m_cost_kib, t_cost, .. } => m_cost_kib <= 4096 && t_cost <= 4,
            Kdf::Pbkdf2Sha256 { iterations } => iterations <= 10_000,
        })
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip(Index, u8),
    Truncate(Index),
    Insert(Index, u8),
    Remove(Index),
    Overwrite(Index, Vec<u8>),
    Append(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 0..8u8).prop_map(|(i, bit)| Mutation::Flip(i, bit)),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<Index>().prop_map(Mutation::Remove),
        (any::<Index>(), prop::collection::vec(any::<u8>(), 1..64)).prop_map(|(i, b)| Mutation::Overwrite(i, b)),
        prop::collection::vec(any::<u8>(), 1..64).prop_map(Mutation::Append),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    match m {
        Mutation::Flip(i, bit) => {
            let at = i.index(bytes.len());
            bytes[at] ^= 1 << bit;
        }
        Mutation::Truncate(i) => bytes.truncate(i.index(bytes.len())),
        Mutation::Insert(i, b) => bytes.insert(i.index(bytes.len() + 1), *b),
        Mutation::Remove(i) => {
            bytes.remove(i.index(bytes.len()));
        }
        Mutation::Overwrite(i, piece) => {
            let at = i.index(bytes.len());
            let end = (at + piece.len()).min(bytes.len());
            bytes[at..end].copy_from_slice(&piece[..end - at]);
        }
        Mutation::Append(tail) => bytes.extend_from_slice(tail),
    }
}

/// A manifest file entry, mostly well formed, sometimes hostile (huge sizes, bad paths, bad hashes).
fn manifest_file() -> impl Strategy<Value = serde_json::Value> {
    let path = prop_oneof!["[a-z]{1,8}(/[a-z.]{1,8}){0,2}", "\\PC{0,12}", Just("../x".to_owned())];
    let size = prop_oneof![0u64..64, Just(u64::MAX), Just(u64::MAX / 2 + 1), any::<u64>()];
    let sha = prop_oneof!["[0-9a-f]{64}", "\\PC{0,70}"];
    (path, size, sha).prop_map(|(path, size, sha256)| serde_json::json!({"path": path, "size": size, "sha256": sha256}))
}

fn manifest_json() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => prop::collection::vec(manifest_file(), 0..4).prop_map(|files| {
            serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 1, "daemonVersion": "0.1.0", "createdAt": 0, "files": files
            }))
            .unwrap()
        }),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Arbitrary bytes, with or without the magic and version in front: refused with a backup code.
    #[test]
    fn arbitrary_bytes_are_refused_with_a_backup_code(
        magic in any::<bool>(),
        rest in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        let mut bytes = if magic { [&MAGIC[..], &[FORMAT_VERSION]].concat() } else { Vec::new() };
        bytes.extend_from_slice(&rest);
        prop_assume!(cheap_kdf(&bytes));
        let code = open(&bytes).expect_err("arbitrary bytes accepted as an archive");
        prop_assert!(is_backup_code(code), "{code:?}");
    }

    /// Any 65 header bytes: a header that parses is within the bounds every allocation and the KDF rely on,
    /// and writes back to the same bytes.
    #[test]
    fn a_parsed_header_is_within_bounds_and_round_trips(
        kdf_id in prop_oneof![Just(KDF_ARGON2ID), Just(KDF_PBKDF2_SHA256), any::<u8>()],
        params in any::<[u32; 3]>(),
        chunk in prop_oneof![MIN_CHUNK..=MAX_CHUNK, any::<u32>()],
        noise in any::<[u8; 39]>(),
    ) {
        let mut bytes = [0u8; HEADER_LEN];
        bytes[..8].copy_from_slice(MAGIC);
        bytes[8] = FORMAT_VERSION;
        bytes[9] = kdf_id;
        for (i, p) in params.iter().enumerate() {
            bytes[10 + 4 * i..14 + 4 * i].copy_from_slice(&p.to_be_bytes());
        }
        bytes[22..61].copy_from_slice(&noise);
        bytes[61..65].copy_from_slice(&chunk.to_be_bytes());
        match Header::parse(&bytes) {
            Ok(header) => {
                prop_assert!((MIN_CHUNK..=MAX_CHUNK).contains(&header.chunk_size));
                prop_assert!(header.kdf.validate().is_ok());
                if let Kdf::Argon2id { m_cost_kib, .. } = header.kdf {
                    prop_assert!(m_cost_kib <= ARGON2_MAX_M_KIB);
                }
                prop_assert_eq!(header.to_bytes(), bytes);
            }
            Err(e) => prop_assert_eq!(e.code, ErrorCode::InvalidBackupFormat),
        }
    }

    /// One to three mutations of a valid archive: refused with a backup code unless the bytes are unchanged.
    #[test]
    fn mutated_archives_are_refused_with_a_backup_code(mutations in prop::collection::vec(mutation(), 1..4)) {
        let original = small_archive();
        let mut bytes = original.clone();
        for m in &mutations {
            if !bytes.is_empty() {
                apply(&mut bytes, m);
            }
        }
        prop_assume!(bytes != original && cheap_kdf(&bytes));
        let code = open(&bytes).expect_err("mutated archive accepted");
        prop_assert!(is_backup_code(code), "{code:?}");
    }

    /// Authenticated but hostile plaintext: any manifest length (up to u32::MAX), any manifest (huge or
    /// overflowing sizes, unsafe paths, malformed hashes), any payload. Opened or refused with a backup code;
    /// a length above the manifest bound is refused before anything is allocated for it.
    #[test]
    fn authenticated_hostile_plaintext_is_refused_with_a_backup_code(
        declared in prop_oneof![Just(None), any::<u32>().prop_map(Some)],
        manifest in manifest_json(),
        payload in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let len = declared.unwrap_or(manifest.len() as u32);
        let plaintext = [&len.to_be_bytes()[..], &manifest, &payload].concat();
        match open(&sealed(&plaintext)) {
            Ok(m) => prop_assert!(m.validate().is_ok()),
            Err(code) => prop_assert!(is_backup_code(code), "{code:?}"),
        }
    }
}

/// Found by the property above: file sizes that overflow `u64` when added made the reader panic (debug builds)
/// or wrap (release) before any file was read. They are `BACKUP_CORRUPTED` now.
#[test]
fn manifest_sizes_that_overflow_are_corrupted() {
    let manifest = serde_json::json!({
        "schemaVersion": 1, "daemonVersion": "0.1.0", "createdAt": 0,
        "files": [
            {"path": "a", "size": u64::MAX, "sha256": "0".repeat(64)},
            {"path": "b", "size": 1, "sha256": "0".repeat(64)},
        ]
    });
    let json = serde_json::to_vec(&manifest).unwrap();
    let plaintext = [&(json.len() as u32).to_be_bytes()[..], &json].concat();
    assert_eq!(open(&sealed(&plaintext)).unwrap_err(), ErrorCode::BackupCorrupted);
}
