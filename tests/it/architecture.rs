//! Architecture rules checked against the real dependency graph.

use std::process::Command;

/// The core must never pull an IO, runtime, DB or HTTP crate, nor any adapter or app crate.
#[test]
fn core_depends_on_no_io_runtime_or_adapter_crate() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["tree", "--offline", "-p", "waiaas-core", "-e", "normal", "--prefix", "none", "--format", "{p}"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(output.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&output.stderr));
    let tree = String::from_utf8(output.stdout).expect("utf-8");
    let crates: Vec<&str> = tree.lines().filter_map(|line| line.split_whitespace().next()).collect();
    assert!(crates.contains(&"waiaas-core"), "the graph should list the core itself: {tree}");
    assert!(crates.contains(&"serde"), "sanity: the core uses serde: {tree}");
    let forbidden = ["tokio", "sqlx", "sqlx-core", "poem", "poem-openapi", "ureq", "hyper", "reqwest"];
    let offenders: Vec<&&str> =
        crates.iter().filter(|c| forbidden.contains(c) || (c.starts_with("waiaas-") && **c != "waiaas-core")).collect();
    assert!(offenders.is_empty(), "waiaas-core depends on {offenders:?}");
}
