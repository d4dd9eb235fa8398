//! The Docker guide against the real CLI (CI cannot run Docker; `scripts/check-docker` lints the Dockerfile): every
//! `waiaas` command of `docs/docker.md`, the image's entry point and the compose file's one-off commands parse with
//! the CLI's own argument parser, every `WAIAAS_*` variable they name is a configuration key (or one of the
//! documented non-config variables), the values the image and the compose file set load as a configuration, and
//! every TOML example of the guide is a valid `config.toml`.

use std::path::Path;

use clap::Parser;
use waiaas_cli::Cli;
use waiaas_daemon::config::{Config, KEYS, NON_CONFIG_ENV, SECTIONS};

fn repo_file(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The fenced blocks of `markdown` in `language`.
fn blocks(markdown: &str, language: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start().strip_prefix("```")) {
            (None, Some(lang)) if lang.trim() == language => current = Some(String::new()),
            (Some(_), Some(_)) => out.extend(current.take()),
            (Some(block), None) => {
                block.push_str(line);
                block.push('\n');
            }
            _ => {}
        }
    }
    out
}

/// The `waiaas` argument lists in a shell line: after each `waiaas` word, and after `docker compose run --rm
/// <service>` (the image's entry point is `waiaas`), up to the end of the command.
fn invocations(line: &str) -> Vec<Vec<String>> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut found = Vec::new();
    for (i, word) in words.iter().enumerate() {
        let start = if *word == "waiaas" {
            i + 1
        } else if words[i..].starts_with(&["docker", "compose", "run", "--rm"]) && words.len() > i + 4 {
            i + 5
        } else {
            continue;
        };
        let args = words[start..]
            .iter()
            .take_while(|w| !matches!(**w, "|" | "&&" | ";" | ">" | "||"))
            .map(|w| (*w).to_owned())
            .collect();
        found.push(args);
    }
    found
}

#[track_caller]
fn assert_parses(args: &[String], origin: &str) {
    let argv = std::iter::once("waiaas".to_owned()).chain(args.iter().cloned());
    if let Err(e) = Cli::try_parse_from(argv) {
        panic!("{origin}: `waiaas {}` does not parse:\n{e}", args.join(" "));
    }
}

/// Whether `WAIAAS_<NAME>` is a configuration key or a documented non-config variable.
fn known_variable(name: &str) -> bool {
    if NON_CONFIG_ENV.contains(&name) {
        return true;
    }
    let rest = &name["WAIAAS_".len()..];
    SECTIONS.iter().any(|section| {
        let Some(key) = rest.strip_prefix(&format!("{}_", section.to_ascii_uppercase())) else { return false };
        let key = key.to_ascii_lowercase();
        KEYS.contains(&(section, key.as_str()))
            || (*section == "rpc" && (key.starts_with("evm_") || key.starts_with("native_")))
    })
}

fn variables(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("WAIAAS_") {
        let tail = &rest[at..];
        let end =
            tail.find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')).unwrap_or(tail.len());
        out.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

#[test]
fn every_command_of_the_docker_guide_parses_with_the_real_cli() {
    let guide = repo_file("docs/docker.md");
    let mut count = 0;
    for block in blocks(&guide, "sh") {
        for line in block.lines() {
            for args in invocations(line) {
                assert_parses(&args, "docs/docker.md");
                count += 1;
            }
        }
    }
    assert!(count >= 7, "only {count} waiaas commands found in docs/docker.md");

    // The image's entry point and default command.
    let dockerfile = repo_file("Dockerfile");
    let exec_form = |instruction: &str| -> Vec<String> {
        let line = dockerfile
            .lines()
            .find_map(|l| l.strip_prefix(instruction))
            .unwrap_or_else(|| panic!("no {instruction} in the Dockerfile"));
        serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{instruction} is not exec form: {e}"))
    };
    assert_eq!(exec_form("ENTRYPOINT "), ["waiaas"]);
    assert_parses(&exec_form("CMD "), "Dockerfile CMD");
    // The health check asks the daemon's health route.
    assert!(dockerfile.contains("HEALTHCHECK") && dockerfile.contains("http://127.0.0.1:3100/health"));
}

#[test]
fn the_guide_the_image_and_the_compose_file_set_only_real_configuration() {
    let texts = [
        ("docs/docker.md", repo_file("docs/docker.md")),
        ("Dockerfile", repo_file("Dockerfile")),
        ("docker-compose.yml", repo_file("docker-compose.yml")),
    ];
    for (origin, text) in &texts {
        let names = variables(text);
        assert!(!names.is_empty(), "{origin} names no WAIAAS_ variable");
        for name in names {
            assert!(known_variable(&name), "{origin}: {name} is not a configuration key");
        }
    }

    // The values set by the image (ENV) and the compose service (environment) load as a configuration.
    let dockerfile = &texts[1].1;
    let mut vars: Vec<(String, String)> = dockerfile
        .lines()
        .map(|l| l.trim().trim_start_matches("ENV ").trim_end_matches('\\').trim())
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.starts_with("WAIAAS_"))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert!(vars.len() >= 3, "{vars:?}");
    let compose = &texts[2].1;
    vars.extend(
        compose
            .lines()
            .filter_map(|l| l.trim().split_once(": "))
            .filter(|(k, _)| k.starts_with("WAIAAS_"))
            .map(|(k, v)| (k.to_owned(), v.trim().to_owned())),
    );
    let config = Config::load(None, vars.clone()).unwrap_or_else(|e| panic!("{vars:?}: {e}"));
    assert_eq!(config.daemon.hostname, "0.0.0.0");
    assert_eq!(config.acl.session.allowed, ["172.30.0.0/24".parse().unwrap()]);
    assert!(config.rpc.evm.contains_key("anvil"));

    // Every TOML example is a valid config.toml.
    let examples = blocks(&texts[0].1, "toml");
    assert!(!examples.is_empty());
    for example in examples {
        Config::load(Some(("docs/docker.md", &example)), Vec::new()).unwrap_or_else(|e| panic!("{example}\n{e}"));
    }
}
