//! Backup throughput and memory (SPEC §7 "backup ≥ 200 MB/s of DB"; OPS-03 "memory stays bounded"):
//! `cargo bench -p waiaas-tests --bench backup`. Seals a DB-sized file (default 1024 MiB, `WAIAAS_BENCH_BACKUP_MB`
//! to change) plus a keystore file and a config into an archive with the production code path
//! (`waiaas_fs::backup::create_archive`: hash pass + seal pass, default Argon2id), then verifies it (full
//! decrypt + hashes), and prints MB/s of DB and the process's peak RSS after each step. Asserts nothing.

use std::io::Write;
use std::time::Instant;

use waiaas_core::backup::Kdf;
use waiaas_fs::OsEntropy;
use waiaas_fs::backup::{CreateOptions, create_archive, verify};

/// Peak resident set size of this process so far (`VmHWM`), in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn main() {
    let mib: u64 = std::env::var("WAIAAS_BENCH_BACKUP_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024);
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("waiaas.db");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&db).unwrap());
        let mut block = vec![0u8; 1 << 20];
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..mib {
            for b in block.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b.copy_from_slice(&x.to_le_bytes()[..b.len()]);
            }
            f.write_all(&block).unwrap();
        }
        f.flush().unwrap();
    }
    std::fs::write(dir.path().join("k.json"), vec![b'k'; 600]).unwrap();
    std::fs::write(dir.path().join("config.toml"), vec![b'#'; 3000]).unwrap();
    let sources = vec![
        ("data/waiaas.db".to_owned(), db.clone()),
        ("config.toml".to_owned(), dir.path().join("config.toml")),
        ("keystore/k.json".to_owned(), dir.path().join("k.json")),
    ];
    let baseline = peak_rss_mib();
    let opts = CreateOptions {
        password: "bench password",
        kdf: Kdf::argon2id_default(),
        schema_version: 1,
        daemon_version: "bench".into(),
        created_at: 0,
        entropy: &OsEntropy,
    };
    let out = dir.path().join("out");
    let start = Instant::now();
    let archive = create_archive(&out, &sources, &opts, &mut |_, _| {}).expect("create");
    let create_s = start.elapsed().as_secs_f64();
    let after_create = peak_rss_mib();
    let start = Instant::now();
    verify(&archive, "bench password", &mut |_, _| {}).expect("verify");
    let verify_s = start.elapsed().as_secs_f64();
    let after_verify = peak_rss_mib();
    let mb = mib as f64 * 1.048_576;
    println!("backup archive of a {mib} MiB DB (default Argon2id m=64 MiB t=3 p=4, 64 KiB chunks)");
    println!("  create (hash + seal)   {create_s:>7.2} s  {:>8.1} MB/s of DB   reference: ≥ 200 MB/s", mb / create_s);
    println!("  verify (open + hashes) {verify_s:>7.2} s  {:>8.1} MB/s of DB", mb / verify_s);
    println!(
        "  peak RSS: {baseline:.1} MiB before, {after_create:.1} MiB after create, {after_verify:.1} MiB after verify \
         (includes Argon2id's 64 MiB; independent of the DB size)"
    );
}
