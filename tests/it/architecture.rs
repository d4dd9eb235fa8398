//! Architecture rules checked against the real dependency graph.

use std::process::Command;

/// The crate names in the normal dependency graph of `package` (itself included).
#[track_caller]
fn graph(package: &str) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["tree", "--offline", "-p", package, "-e", "normal", "--prefix", "none", "--format", "{p}"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(output.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&output.stderr));
    let tree = String::from_utf8(output.stdout).expect("utf-8");
    let crates: Vec<String> =
        tree.lines().filter_map(|line| line.split_whitespace().next()).map(str::to_owned).collect();
    assert!(crates.iter().any(|c| c == package), "the graph should list {package} itself: {tree}");
    crates
}

/// The core must never pull an IO, runtime, DB or HTTP crate, nor any adapter or app crate.
#[test]
fn core_depends_on_no_io_runtime_or_adapter_crate() {
    let crates = graph("waiaas-core");
    assert!(crates.iter().any(|c| c == "serde"), "sanity: the core uses serde: {crates:?}");
    let forbidden = ["tokio", "sqlx", "sqlx-core", "poem", "poem-openapi", "ureq", "hyper", "reqwest"];
    let offenders: Vec<&String> = crates
        .iter()
        .filter(|c| forbidden.contains(&c.as_str()) || (c.starts_with("waiaas-") && *c != "waiaas-core"))
        .collect();
    assert!(offenders.is_empty(), "waiaas-core depends on {offenders:?}");
}

/// cli → daemon → adapters → core, and nothing points back: the daemon knows no front end.
#[test]
fn the_daemon_composes_the_adapters_and_knows_no_front_end() {
    let daemon = graph("waiaas-daemon");
    for needed in ["waiaas-core", "waiaas-sqlite", "waiaas-fs", "waiaas-evm", "waiaas-metrics", "waiaas-server"] {
        assert!(daemon.iter().any(|c| c == needed), "waiaas-daemon should compose {needed}: {daemon:?}");
    }
    let front_ends: Vec<&String> =
        daemon.iter().filter(|c| ["waiaas-cli", "waiaas-client", "waiaas-mcp"].contains(&c.as_str())).collect();
    assert!(front_ends.is_empty(), "waiaas-daemon depends on {front_ends:?}");
    assert!(graph("waiaas-cli").iter().any(|c| c == "waiaas-daemon"), "waiaas-cli runs the daemon crate");
    // waiaas-http (outbound HTTP: the chain adapters' JSON-RPC client) is the one adapter others may use.
    for adapter in ["waiaas-sqlite", "waiaas-fs", "waiaas-evm", "waiaas-solana", "waiaas-metrics", "waiaas-http"] {
        let upward: Vec<String> = graph(adapter)
            .into_iter()
            .filter(|c| c.starts_with("waiaas-") && !["waiaas-core", "waiaas-http", adapter].contains(&c.as_str()))
            .collect();
        assert!(upward.is_empty(), "{adapter} depends on {upward:?}");
    }
}
