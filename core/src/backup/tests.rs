//! Round trips, every tampering the format promises to detect, and a mutation sweep that must never panic.

use std::io::Cursor;

use super::*;
use crate::ports::testing::CountingEntropy;

const PASSWORD: &str = "correct horse battery staple";

fn files() -> Vec<(String, Vec<u8>)> {
    vec![
        ("config.toml".to_owned(), b"[daemon]\nport = 3100\n".to_vec()),
        ("data/waiaas.db".to_owned(), (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect()),
        ("keystore/0190-agent.json".to_owned(), b"{\"secret\":\"shh\"}".to_vec()),
        ("keystore/empty.json".to_owned(), Vec::new()),
    ]
}

fn manifest_of(files: &[(String, Vec<u8>)]) -> Manifest {
    Manifest {
        schema_version: 3,
        daemon_version: "0.1.0".to_owned(),
        created_at: 1_700_000_000,
        files: files
            .iter()
            .map(|(p, b)| {
                let (size, sha256) = hash_reader(&mut b.as_slice()).unwrap();
                ManifestFile { path: p.clone(), size, sha256 }
            })
            .collect(),
    }
}

fn archive_with(kdf: Kdf, chunk_size: u32, files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut header = Header::new(kdf, &CountingEntropy::default()).unwrap();
    header.chunk_size = chunk_size;
    let manifest = manifest_of(files);
    let mut out = Vec::new();
    write_archive(
        &mut out,
        PASSWORD,
        &header,
        &manifest,
        &mut |f| {
            let bytes = files.iter().find(|(p, _)| *p == f.path).unwrap().1.clone();
            Ok(Box::new(Cursor::new(bytes)))
        },
        &mut |_, _| {},
    )
    .unwrap();
    out
}

fn archive() -> Vec<u8> {
    archive_with(Kdf::argon2id_fast_for_tests(), MIN_CHUNK, &files())
}

fn open(bytes: &[u8], password: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let mut got = Vec::new();
    read_archive(
        &mut Cursor::new(bytes),
        password,
        &mut |_| Ok(()),
        &mut |f, r| {
            let mut buf = Vec::new();
            r.read_to_end(&mut buf).map_err(Error::internal)?;
            got.push((f.path.clone(), buf));
            Ok(())
        },
        &mut |_, _| {},
    )?;
    Ok(got)
}

#[track_caller]
fn check_refused(bytes: &[u8], expected: ErrorCode) {
    let err = open(bytes, PASSWORD).expect_err("tampered archive was accepted");
    assert_eq!(err.code, expected, "{err}");
}

/// Offsets of each sealed chunk of an archive written with `chunk_size`.
fn chunk_offsets(len: usize, chunk_size: usize) -> Vec<usize> {
    (HEADER_LEN..len).step_by(chunk_size + TAG_LEN).collect()
}

#[test]
fn round_trips_every_file_byte_for_byte() {
    let bytes = archive();
    assert_eq!(open(&bytes, PASSWORD).unwrap(), files());
}

#[test]
fn round_trips_with_pbkdf2_and_with_an_exact_multiple_of_the_chunk_size() {
    let exact = vec![("data/waiaas.db".to_owned(), vec![9u8; 3 * MIN_CHUNK as usize - 4 - 200])];
    for kdf in [Kdf::Pbkdf2Sha256 { iterations: 1000 }, Kdf::argon2id_fast_for_tests()] {
        for set in [files(), exact.clone(), Vec::new()] {
            let bytes = archive_with(kdf, MIN_CHUNK, &set);
            assert_eq!(open(&bytes, PASSWORD).unwrap(), set);
        }
    }
}

#[test]
fn default_kdf_params_round_trip() {
    for kdf in [Kdf::argon2id_default(), Kdf::pbkdf2_default()] {
        let set = files()[..1].to_vec();
        let bytes = archive_with(kdf, CHUNK_SIZE, &set);
        assert_eq!(Header::parse(bytes[..HEADER_LEN].try_into().unwrap()).unwrap().kdf, kdf);
        assert_eq!(open(&bytes, PASSWORD).unwrap(), set);
    }
}

#[test]
fn wrong_password_is_backup_corrupted() {
    let err = open(&archive(), "wrong").unwrap_err();
    assert_eq!(err.code, ErrorCode::BackupCorrupted);
}

#[test]
fn nothing_of_the_contents_is_readable_in_the_file() {
    let bytes = archive();
    for needle in [&b"horse"[..], b"keystore", b"waiaas.db", b"secret", b"schemaVersion", b"port = 3100"] {
        assert!(!bytes.windows(needle.len()).any(|w| w == needle), "{:?} leaked", String::from_utf8_lossy(needle));
    }
}

#[test]
fn header_edits_are_refused() {
    let bytes = archive();
    // magic, version, kdf id → format errors
    for (at, code) in [(0, ErrorCode::InvalidBackupFormat), (8, ErrorCode::InvalidBackupFormat)] {
        let mut t = bytes.clone();
        t[at] ^= 1;
        check_refused(&t, code);
    }
    // every other header byte: either out of bounds (format) or a different key / AAD (corrupted)
    for at in 9..HEADER_LEN {
        let mut t = bytes.clone();
        t[at] ^= 0x01;
        let err = open(&t, PASSWORD).unwrap_err();
        assert!(matches!(err.code, ErrorCode::InvalidBackupFormat | ErrorCode::BackupCorrupted), "byte {at}: {err}");
    }
}

#[test]
fn a_flip_in_any_chunk_is_refused() {
    let bytes = archive();
    let offsets = chunk_offsets(bytes.len(), MIN_CHUNK as usize);
    assert!(offsets.len() > 10);
    for at in offsets.iter().flat_map(|o| [*o, *o + 100]).chain([bytes.len() - 1]) {
        let mut t = bytes.clone();
        t[at] ^= 0x80;
        check_refused(&t, ErrorCode::BackupCorrupted);
    }
}

#[test]
fn truncation_reordering_and_appended_data_are_refused() {
    let bytes = archive();
    let step = MIN_CHUNK as usize + TAG_LEN;
    let offsets = chunk_offsets(bytes.len(), MIN_CHUNK as usize);
    // truncated at each chunk boundary, mid-chunk, and to the bare header
    for cut in offsets.iter().copied().chain([bytes.len() - 1, HEADER_LEN + 5]) {
        check_refused(&bytes[..cut], ErrorCode::BackupCorrupted);
    }
    check_refused(&bytes[..HEADER_LEN - 1], ErrorCode::InvalidBackupFormat);
    check_refused(b"", ErrorCode::InvalidBackupFormat);
    // two chunks swapped
    let mut t = bytes.clone();
    let (a, b) = (offsets[1], offsets[2]);
    let chunk_a = bytes[a..a + step].to_vec();
    t.copy_within(b..b + step, a);
    t[b..b + step].copy_from_slice(&chunk_a);
    check_refused(&t, ErrorCode::BackupCorrupted);
    // appended bytes, and an appended copy of the last chunk
    for extra in [vec![0u8], bytes[offsets[offsets.len() - 1]..].to_vec()] {
        let mut t = bytes.clone();
        t.extend_from_slice(&extra);
        check_refused(&t, ErrorCode::BackupCorrupted);
    }
}

#[test]
fn crafted_headers_are_bounded() {
    let mut bytes = archive();
    // m_cost = u32::MAX KiB would allocate 4 TiB: refused before any KDF runs
    bytes[10..14].copy_from_slice(&u32::MAX.to_be_bytes());
    check_refused(&bytes, ErrorCode::InvalidBackupFormat);
    let mut bytes = archive();
    bytes[61..65].copy_from_slice(&u32::MAX.to_be_bytes());
    check_refused(&bytes, ErrorCode::InvalidBackupFormat);
}

#[test]
fn unsafe_manifest_paths_are_refused() {
    for p in ["../etc/passwd", "/abs", "a//b", "a/./b", "", "a\\b"] {
        assert!(!is_safe_relative_path(p), "{p}");
    }
    for p in ["config.toml", "data/waiaas.db", "keystore/0190a-b.json"] {
        assert!(is_safe_relative_path(p), "{p}");
    }
}

/// 300 random mutations (flips, truncations, insertions, splices) of a small archive: always a clean
/// `INVALID_BACKUP_FORMAT` / `BACKUP_CORRUPTED`, never a panic, never success.
#[test]
fn random_mutations_never_panic_and_always_fail_cleanly() {
    let small = vec![("data/waiaas.db".to_owned(), vec![1u8; 10_000]), ("config.toml".to_owned(), b"x".to_vec())];
    let bytes = archive_with(Kdf::argon2id_fast_for_tests(), MIN_CHUNK, &small);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..300 {
        let mut t = bytes.clone();
        let at = (next() as usize) % t.len();
        match round % 4 {
            0 => t[at] ^= 1 << (next() % 8),
            1 => t.truncate(at),
            2 => t.insert(at, next() as u8),
            _ => {
                let len = (next() as usize % 64).min(t.len() - at);
                let from = (next() as usize) % (t.len() - len);
                let piece = t[from..from + len].to_vec();
                t.splice(at..at + len, piece.iter().map(|b| b.wrapping_add(1)));
            }
        }
        if t == bytes {
            continue;
        }
        let err = open(&t, PASSWORD).expect_err("mutated archive accepted");
        assert!(
            matches!(err.code, ErrorCode::InvalidBackupFormat | ErrorCode::BackupCorrupted),
            "round {round}: {err}"
        );
    }
}

#[test]
fn a_source_that_changed_after_hashing_fails_the_backup() {
    let set = files();
    let header = Header::new(Kdf::argon2id_fast_for_tests(), &CountingEntropy::default()).unwrap();
    let manifest = manifest_of(&set);
    let err = write_archive(
        &mut Vec::new(),
        PASSWORD,
        &header,
        &manifest,
        &mut |_| Ok(Box::new(Cursor::new(b"different".to_vec()))),
        &mut |_, _| {},
    )
    .unwrap_err();
    assert_eq!(err.code, ErrorCode::InternalError);
}

#[test]
fn the_manifest_check_can_refuse_before_any_file_is_handed_out() {
    let mut handed = 0;
    let err = read_archive(
        &mut Cursor::new(archive()),
        PASSWORD,
        &mut |m| {
            assert_eq!(m.schema_version, 3);
            Err(Error::new(ErrorCode::InvalidBackupFormat, "schema too new"))
        },
        &mut |_, _| {
            handed += 1;
            Ok(())
        },
        &mut |_, _| {},
    )
    .unwrap_err();
    assert_eq!((err.code, handed), (ErrorCode::InvalidBackupFormat, 0));
}
