//! Property tests of `Config::load`: arbitrary TOML text and arbitrary `WAIAAS_*` variables load or fail with an
//! error naming where the bad value came from, never a panic; and the defaults round-trip: the init file with
//! any of its documented defaults uncommented loads to exactly the built-in defaults (plus its anvil network).

use proptest::prelude::*;

use super::*;

/// Keys of the init file whose commented value is an example, not the default.
fn is_example(key: &str) -> bool {
    [EVM_PREFIX, NATIVE_PREFIX, EXPLORER_PREFIX, USD_PREFIX, TOKEN_PREFIX].iter().any(|p| key.starts_with(p))
}

/// `(section, line)` for every `# key = default` line of the init file.
fn documented_defaults() -> Vec<(String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in DEFAULT_CONFIG_TOML.lines() {
        let text = line.trim_start_matches('#').trim();
        if let Some(name) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            section = name.to_owned();
        } else if let Some((key, _)) = text.split_once(" = ")
            && line.starts_with("# ")
            && !key.contains(' ')
            && !is_example(key)
        {
            out.push((section.clone(), text.to_owned()));
        }
    }
    out
}

/// The config with `[anomaly]` rules as they run (a rule set to its defaults is an explicit entry, the same
/// as no entry).
fn effective(mut config: Config) -> (Config, Vec<waiaas_core::anomaly::RuleConfig>) {
    let registry = waiaas_core::anomaly::AnomalyRegistry::standard(config.anomaly.clone());
    let rules = waiaas_core::anomaly::standard_rules().iter().map(|r| registry.config_of(r.as_ref())).collect();
    config.anomaly.rules.clear();
    (config, rules)
}

/// A TOML value of any type.
fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        "\\PC{0,20}".prop_map(|s| format!("{s:?}")),
        prop::collection::vec("[0-9a-z./:]{0,12}", 0..3).prop_map(|v| format!("{v:?}")),
        Just("{ a = 1 }".to_owned()),
        Just("1979-05-27T07:32:00Z".to_owned()),
    ]
}

/// A key: one the daemon knows (in its own or another section), a prefixed one, or anything.
fn key() -> impl Strategy<Value = String> {
    let known: Vec<String> =
        KEYS.iter().map(|(_, k)| (*k).to_owned()).chain(anomaly::keys()).chain(notifications::keys()).collect();
    prop_oneof![
        3 => prop::sample::select(known),
        1 => "(evm|native|explorer|usd|token)_[a-z0-9_-]{0,20}",
        1 => "[a-z_]{1,12}",
    ]
}

fn section() -> impl Strategy<Value = String> {
    prop_oneof![4 => prop::sample::select(SECTIONS.to_vec()).prop_map(str::to_owned), 1 => "[a-z]{1,8}"]
}

/// TOML text: sections of `key = value` lines, or arbitrary text.
fn toml_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::collection::vec((section(), prop::collection::vec((key(), toml_value()), 0..4)), 0..4).prop_map(
            |sections| {
                sections
                    .into_iter()
                    .map(|(s, keys)| {
                        let lines: Vec<String> = keys.into_iter().map(|(k, v)| format!("{k:?} = {v}")).collect();
                        format!("[{s}]\n{}\n", lines.join("\n"))
                    })
                    .collect()
            }
        ),
        1 => "\\PC{0,120}",
    ]
}

fn env_pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop_oneof![
        (section(), key()).prop_map(|(s, k)| format!("WAIAAS_{}_{}", s.to_uppercase(), k.to_uppercase())),
        "WAIAAS_[A-Z_]{0,20}",
        "[A-Z_]{1,12}",
    ];
    let value =
        prop_oneof!["\\PC{0,24}", "-?[0-9]{1,24}", "(true|false|master|bearer|none|DELAY)", "[0-9./:,a-f]{0,30}"];
    prop::collection::vec((name, value), 0..5)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any file and any variables: a config, or an error whose origin is the file or one of the variables and
    /// whose message says something. A rule across keys (a session TTL above its maximum) belongs to no one
    /// source: its origin is `config` and its message names the `[section] key`.
    #[test]
    fn any_toml_and_env_load_or_fail_naming_the_origin(text in toml_text(), env in env_pairs()) {
        let names: Vec<String> = env.iter().map(|(k, _)| k.clone()).collect();
        match Config::load(Some(("config.toml", &text)), env) {
            Ok(config) => prop_assert!(config.validate().is_ok()),
            Err(e) => {
                let across_keys = e.origin == "config" && e.message.starts_with('[');
                prop_assert!(
                    e.origin == "config.toml" || names.contains(&e.origin) || across_keys,
                    "origin {:?}: {}",
                    e.origin,
                    e.message
                );
                prop_assert!(!e.message.is_empty());
            }
        }
    }

    /// Defaults → TOML → load: the init file with any subset of its documented defaults uncommented (with their
    /// section lines) is the built-in defaults plus the init file's anvil network.
    #[test]
    fn documented_defaults_load_as_the_defaults(picks in prop::collection::vec(any::<bool>(), 128)) {
        let mut by_section: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for ((section, line), pick) in documented_defaults().into_iter().zip(picks.iter().cycle()) {
            if *pick {
                by_section.entry(section).or_default().push(line);
            }
        }
        let mut text = DEFAULT_CONFIG_TOML.to_owned();
        for (section, lines) in &by_section {
            text.push_str(&format!("\n[{section}]\n{}\n", lines.join("\n")));
        }
        let config = Config::load(Some(("config.toml", &text)), Vec::new()).map_err(|e| e.to_string());
        let mut expected = Config::default();
        expected.rpc.evm.insert("anvil".into(), RpcUrl("http://127.0.0.1:8545".into()));
        prop_assert_eq!(config.map(effective), Ok(effective(expected)), "{}", text);
    }
}

/// Every documented default is found by the round trip above (a parsing slip would make it vacuous).
#[test]
fn the_init_file_documents_every_fixed_key() {
    let documented = documented_defaults();
    let fixed = KEYS.iter().map(|(s, k)| ((*s).to_owned(), (*k).to_owned()));
    let notifications = notifications::keys().into_iter().map(|k| ("notifications".to_owned(), k));
    for (section, key) in
        fixed.chain(anomaly::keys().into_iter().map(|k| ("anomaly".to_owned(), k))).chain(notifications)
    {
        assert!(
            documented.iter().any(|(s, l)| *s == section && l.starts_with(&format!("{key} = "))),
            "[{section}] {key}"
        );
    }
}
