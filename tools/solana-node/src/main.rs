//! `waiaas-solana-node`: a real Solana JSON-RPC for the end-to-end tests, the way anvil is one for EVM.
//!
//! Embeds a Surfnet (surfpool's in-process Solana runtime, offline) bound to a free loopback port, prints its
//! RPC URL on stdout as one line, and runs until its stdin closes (the test that spawned it exits or drops the
//! pipe) or it is killed. With `--forever` it ignores stdin and runs until killed (for use from a shell).
//!
//! Blocks are produced per transaction and per airdrop, so a test ages a blockhash past its 150-block window
//! by requesting airdrops.

use std::io::{Read, Write};

use surfpool_sdk::Surfnet;

fn main() {
    let forever = std::env::args().skip(1).any(|a| a == "--forever");
    if std::env::args().skip(1).any(|a| a == "--help" || a == "-h") {
        println!("usage: waiaas-solana-node [--forever]\nprints the RPC URL of a fresh offline Surfnet, runs until stdin closes");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let surfnet = match runtime.block_on(Surfnet::builder().offline(true).start()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("waiaas-solana-node: surfnet failed to start: {e}");
            std::process::exit(1);
        }
    };
    // Drain the runtime's event channel so it does not grow for the life of the process.
    let events = surfnet.events().clone();
    std::thread::spawn(move || while events.recv().is_ok() {});
    let mut out = std::io::stdout();
    if writeln!(out, "{}", surfnet.rpc_url()).and_then(|()| out.flush()).is_err() {
        std::process::exit(1);
    }
    if forever {
        loop {
            std::thread::park();
        }
    }
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(surfnet);
}
