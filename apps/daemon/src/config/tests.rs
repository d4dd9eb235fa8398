//! Tests of configuration loading: defaults, the TOML file, the environment and their validation.

use super::*;
use waiaas_core::policy_engine::PolicyDefaults;

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// Loads `toml` (if any) and `vars`, then checks the outcome: `Ok(f)` runs `f` on the config, `Err(text)`
/// expects an error whose display contains `text`.
#[track_caller]
fn check(toml: Option<&str>, vars: &[(&str, &str)], expected: Result<fn(&Config), &str>) {
    let result = Config::load(toml.map(|t| ("config.toml", t)), env(vars));
    match (result, expected) {
        (Ok(config), Ok(assertions)) => assertions(&config),
        (Err(err), Err(text)) => {
            let shown = err.to_string();
            assert!(shown.contains(text), "error {shown:?} does not contain {text:?}");
        }
        (Ok(config), Err(text)) => {
            panic!("expected an error containing {text:?}, got {config:?}")
        }
        (Err(err), Ok(_)) => panic!("expected a config, got error: {err}"),
    }
}

#[test]
fn defaults() {
    check(
        None,
        &[],
        Ok(|c| {
            assert_eq!(c.daemon, DaemonConfig::default());
            assert_eq!(c.daemon.port, 3100);
            assert_eq!(c.daemon.hostname, "127.0.0.1");
            assert!(c.daemon.allowed_hosts.is_empty());
            assert_eq!(c.daemon.log_level, "info");
            assert!(c.rpc.evm.is_empty());
            assert_eq!(c.security.session_ttl_seconds, 86_400);
            assert_eq!(c.security.session_max_ttl_seconds, 2_592_000);
            assert_eq!(c.security.session_absolute_lifetime_seconds, 2_592_000);
            assert_eq!(c.security.master_auth_max_failures, 5);
            assert_eq!(c.security.master_auth_window_seconds, 60);
            assert_eq!(c.keystore, KdfParams { m_cost_kib: 65_536, t_cost: 3, p_cost: 4 });
        }),
    );
    check(Some(""), &[], Ok(|c| assert_eq!(*c, Config::default())));
}

#[test]
fn the_init_file_parses_to_the_defaults_plus_anvil() {
    check(
        Some(DEFAULT_CONFIG_TOML),
        &[],
        Ok(|c| {
            let mut expected = Config::default();
            expected.rpc.evm.insert("anvil".into(), RpcUrl("http://127.0.0.1:8545".into()));
            assert_eq!(*c, expected);
        }),
    );
}

#[test]
fn every_key_is_accepted_and_documented_in_the_init_file() {
    for (section, key) in KEYS {
        let mut config = Config::default();
        let sample = if *key == "allowed_hosts" {
            "a.example"
        } else if key.ends_with("level") {
            "debug"
        } else if *key == "enabled"
            || key.starts_with("default_deny_")
            || key.starts_with("block_")
            || key.ends_with("_enabled")
            || key.ends_with("_shadow")
        {
            "true"
        } else if *key == "auth" {
            "master"
        } else if *key == "floor_tier" {
            "APPROVAL"
        } else if *section == "acl" {
            "10.0.0.0/8,fd00::/8"
        } else {
            "7"
        };
        config.apply(section, key, Raw::Env(sample)).unwrap_or_else(|e| panic!("[{section}] {key}: {e}"));
        assert!(DEFAULT_CONFIG_TOML.contains(&format!("# {key} = ")), "{key} missing from the init file");
        assert!(DEFAULT_CONFIG_TOML.contains(&format!("[{section}]")), "[{section}] missing from the init file");
    }
}

#[test]
fn a_native_symbol_override_names_a_configured_network() {
    let vars = [("WAIAAS_RPC_EVM_MYCHAIN", "http://127.0.0.1:9"), ("WAIAAS_RPC_NATIVE_MYCHAIN", "MYC")];
    check(None, &vars, Ok(|c| assert_eq!(c.rpc.native.get("mychain").map(String::as_str), Some("MYC"))));
    check(None, &[("WAIAAS_RPC_NATIVE_ELSEWHERE", "MYC")], Err("[rpc] native_elsewhere"));
}

#[test]
fn policy_defaults_and_token_prices() {
    check(None, &[], Ok(|c| assert_eq!(c.security.policy_defaults, PolicyDefaults::default())));
    let vars = [
        ("WAIAAS_POLICY_DEFAULT_DENY_TOKENS", "false"),
        ("WAIAAS_ORACLE_TOKEN_BASE_SEPOLIA_0X5AAEB6053F3E94C9B9A09F33669435E7EF1BEAED", "1.5"),
    ];
    check(
        None,
        &vars,
        Ok(|c| {
            assert!(!c.security.policy_defaults.deny_tokens && c.security.policy_defaults.deny_contracts);
            let token: waiaas_core::domain::Address = "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed".parse().unwrap();
            assert_eq!(c.oracle.tokens, vec![(("base_sepolia".to_owned(), token), 1.5)]);
        }),
    );
    check(None, &[("WAIAAS_ORACLE_TOKEN_ANVIL_0X12", "1")], Err("token_<network>_<0x token address>"));
    check(None, &[("WAIAAS_POLICY_DEFAULT_DENY_CONTRACT", "false")], Err("default_deny_contract"));
}

#[test]
fn appending_a_section_to_the_init_file_works() {
    let text = format!("{DEFAULT_CONFIG_TOML}\n[daemon]\nport = 4000\n");
    check(Some(&text), &[], Ok(|c| assert_eq!(c.daemon.port, 4000)));
    let text = format!("{DEFAULT_CONFIG_TOML}\n[daemon]\nlisten_everywhere = true\n");
    check(Some(&text), &[], Err(r#"unknown key "listen_everywhere" in [daemon]"#));
}

#[test]
fn toml_values() {
    let toml = r#"
        [daemon]
        port = 0
        hostname = "0.0.0.0"
        allowed_hosts = ["wallet.internal", "10.0.0.5:3100"]
        log_level = "waiaas_server=debug,info"
        [rpc]
        evm_anvil = "http://127.0.0.1:8545"
        evm_base-sepolia = "https://base.example/key123"
        [security]
        session_ttl_seconds = 3600
        master_auth_max_failures = 3
        [keystore]
        argon2_m_cost_kib = 1024
        argon2_t_cost = 1
        argon2_p_cost = 1
    "#;
    check(
        Some(toml),
        &[],
        Ok(|c| {
            assert_eq!(c.daemon.port, 0);
            assert_eq!(c.daemon.hostname, "0.0.0.0");
            assert_eq!(c.daemon.allowed_hosts, ["wallet.internal", "10.0.0.5:3100"]);
            assert_eq!(c.daemon.log_level, "waiaas_server=debug,info");
            assert_eq!(
                c.rpc.evm_networks(),
                [
                    ("anvil".to_owned(), "http://127.0.0.1:8545".to_owned()),
                    ("base-sepolia".to_owned(), "https://base.example/key123".to_owned())
                ]
            );
            assert_eq!(c.security.session_ttl_seconds, 3600);
            assert_eq!(c.security.master_auth_max_failures, 3);
            assert_eq!(c.security.session_max_ttl_seconds, 2_592_000);
            assert_eq!(c.keystore, KdfParams { m_cost_kib: 1024, t_cost: 1, p_cost: 1 });
        }),
    );
}

#[test]
fn env_overrides_toml() {
    let toml = "[daemon]\nport = 4000\nhostname = \"127.0.0.1\"\n[rpc]\nevm_anvil = \"http://127.0.0.1:8545\"\n";
    let vars = [
        ("WAIAAS_DAEMON_PORT", "0"),
        ("WAIAAS_DAEMON_ALLOWED_HOSTS", "a.example, b.example,"),
        ("WAIAAS_RPC_EVM_ANVIL", "http://127.0.0.1:9545"),
        ("WAIAAS_RPC_EVM_BASE_SEPOLIA", "https://base.example"),
        ("WAIAAS_SECURITY_SESSION_TTL_SECONDS", "120"),
        ("WAIAAS_KEYSTORE_ARGON2_T_COST", "2"),
    ];
    check(
        Some(toml),
        &vars,
        Ok(|c| {
            assert_eq!(c.daemon.port, 0);
            assert_eq!(c.daemon.hostname, "127.0.0.1");
            assert_eq!(c.daemon.allowed_hosts, ["a.example", "b.example"]);
            assert_eq!(c.rpc.evm["anvil"].expose(), "http://127.0.0.1:9545");
            assert_eq!(c.rpc.evm["base_sepolia"].expose(), "https://base.example");
            assert_eq!(c.security.session_ttl_seconds, 120);
            assert_eq!(c.keystore.t_cost, 2);
        }),
    );
    check(None, &[("WAIAAS_DAEMON_ALLOWED_HOSTS", "")], Ok(|c| assert!(c.daemon.allowed_hosts.is_empty())));
}

#[test]
fn non_config_env_vars_are_ignored() {
    let vars = [
        ("WAIAAS_DATA_DIR", "/tmp/x"),
        ("WAIAAS_MASTER_PASSWORD", "pw"),
        ("WAIAAS_MASTER_PASSWORD_FILE", "/tmp/pw"),
        ("WAIAAS_URL", "http://127.0.0.1:3100"),
        ("RUST_LOG", "debug"),
        ("HOME", "/root"),
    ];
    check(None, &vars, Ok(|c| assert_eq!(*c, Config::default())));
}

#[test]
fn unknown_sections_and_keys_fail_naming_the_key() {
    check(Some("[daemon]\nprot = 3100\n"), &[], Err(r#"config.toml: unknown key "prot" in [daemon]"#));
    check(Some("[deamon]\nport = 3100\n"), &[], Err("config.toml: unknown section [deamon]"));
    check(Some("port = 3100\n"), &[], Err(r#"key "port" must be inside a section"#));
    check(Some("[rpc]\nbitcoin_main = \"http://x\"\n"), &[], Err(r#"unknown key "bitcoin_main" in [rpc]"#));
    check(Some("[rpc]\nsolana_ = \"http://x\"\n"), &[], Err("[rpc] solana_: the network name"));
    check(Some("[rpc]\nevm_ = \"http://x\"\n"), &[], Err("[rpc] evm_: the network name"));
    check(Some("[rpc]\nevm_Main = \"http://x\"\n"), &[], Err("[rpc] evm_Main: the network name"));
    check(None, &[("WAIAAS_DAEMON_PROT", "3100")], Err(r#"WAIAAS_DAEMON_PROT: unknown key "prot" in [daemon]"#));
    check(None, &[("WAIAAS_SECURITY_", "1")], Err(r#"WAIAAS_SECURITY_: unknown key "" in [security]"#));
    check(None, &[("WAIAAS_KEYSTORE_KDF", "pbkdf2")], Err(r#"unknown key "kdf" in [keystore]"#));
}

#[test]
fn nested_tables_fail() {
    check(Some("[daemon.tls]\ncert = \"x\"\n"), &[], Err("[daemon] tls is a table; sections take flat keys only"));
    check(Some("[rpc]\nevm_anvil = { url = \"http://x\" }\n"), &[], Err("[rpc] evm_anvil is a table"));
}

#[test]
fn wrong_types_fail_naming_the_key() {
    check(Some("[daemon]\nport = \"3100\"\n"), &[], Err("[daemon] port: expected an integer 0..=65535, found string"));
    check(Some("[daemon]\nport = 70000\n"), &[], Err("[daemon] port: expected an integer 0..=65535, found 70000"));
    check(Some("[daemon]\nport = -1\n"), &[], Err("[daemon] port: expected an integer"));
    check(Some("[daemon]\nhostname = 127\n"), &[], Err("[daemon] hostname: expected a string, found integer"));
    check(Some("[daemon]\nallowed_hosts = \"a\"\n"), &[], Err("[daemon] allowed_hosts: expected an array of strings"));
    check(Some("[daemon]\nallowed_hosts = [1]\n"), &[], Err("[daemon] allowed_hosts: expected an array of strings"));
    check(Some("[rpc]\nevm_anvil = 8545\n"), &[], Err("[rpc] evm_anvil: expected a string, found integer"));
    check(
        Some("[security]\nsession_ttl_seconds = 1.5\n"),
        &[],
        Err("[security] session_ttl_seconds: expected an integer"),
    );
    check(
        None,
        &[("WAIAAS_DAEMON_PORT", "abc")],
        Err(r#"WAIAAS_DAEMON_PORT: [daemon] port: expected an integer 0..=65535, found "abc""#),
    );
    check(Some("[daemon\n"), &[], Err("config.toml: "));
}

#[test]
fn invalid_values_fail_validation() {
    check(Some("[daemon]\nhostname = \"\"\n"), &[], Err("[daemon] hostname: must not be empty"));
    check(Some("[daemon]\nlog_level = \"[[[\"\n"), &[], Err("[daemon] log_level"));
    check(Some("[rpc]\nevm_anvil = \"127.0.0.1:8545\"\n"), &[], Err("[rpc] evm_anvil"));
    check(Some("[security]\nsession_ttl_seconds = 10\n"), &[], Err("session_ttl_seconds: must be at least 60"));
    check(Some("[security]\nsession_max_ttl_seconds = 100\n"), &[], Err("session_max_ttl_seconds"));
    check(Some("[security]\nmaster_auth_max_failures = 0\n"), &[], Err("master_auth_max_failures"));
    check(Some("[keystore]\nargon2_p_cost = 0\n"), &[], Err("[keystore] argon2_*"));
}

#[test]
fn acl_section() {
    check(None, &[], Ok(|c| assert_eq!(c.acl, AclRules::default())));
    check(
        Some("[acl]\nsession_allowed_cidrs = [\"10.0.0.0/8\", \"fd00::/8\"]\ntrusted_proxies = [\"192.0.2.1\"]\n"),
        &[("WAIAAS_ACL_METRICS_DENIED_CIDRS", "127.0.0.2")],
        Ok(|c| {
            assert_eq!(c.acl.session.allowed, ["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()]);
            assert_eq!(c.acl.trusted_proxies, ["192.0.2.1/32".parse().unwrap()]);
            assert_eq!(c.acl.metrics.denied, ["127.0.0.2/32".parse().unwrap()]);
            assert_eq!(c.acl.owner, AclRules::default().owner);
        }),
    );
    check(
        Some("[acl]\nowner_allowed_cidrs = [\"10.0.0.0/33\"]\n"),
        &[],
        Err("[acl] owner_allowed_cidrs: \"10.0.0.0/33\" is not a CIDR"),
    );
    check(None, &[("WAIAAS_ACL_TRUSTED_PROXIES", "proxy.local")], Err("[acl] trusted_proxies: "));
    check(Some("[acl]\nadmin_allowed_cidrs = []\n"), &[], Err("unknown key \"admin_allowed_cidrs\" in [acl]"));
}

#[test]
fn metrics_section() {
    check(None, &[], Ok(|c| assert_eq!(c.metrics, MetricsConfig::default())));
    let toml = "[metrics]\nenabled = false\nauth = \"master\"\n";
    check(Some(toml), &[], Ok(|c| assert!(!c.metrics.enabled && c.metrics.auth == MetricsAuthMode::Master)));
    let vars = [("WAIAAS_METRICS_AUTH", "bearer"), ("WAIAAS_METRICS_BEARER_TOKEN", "0123456789abcdef-secret")];
    check(
        None,
        &vars,
        Ok(|c| {
            assert_eq!(c.metrics.auth, MetricsAuthMode::Bearer);
            assert_eq!(c.metrics.bearer_token.as_deref(), Some("0123456789abcdef-secret"));
            assert!(!format!("{c:?}").contains("0123456789abcdef-secret"), "the token is redacted in Debug");
        }),
    );
    check(None, &[("WAIAAS_METRICS_AUTH", "bearer")], Err("[metrics] bearer_token: auth = \"bearer\" needs"));
    check(Some("[metrics]\nauth = \"basic\"\n"), &[], Err("[metrics] auth: expected"));
    check(None, &[("WAIAAS_METRICS_ENABLED", "yes")], Err("[metrics] enabled: expected true or false"));
}

#[test]
fn debug_redacts_rpc_urls() {
    let url = RpcUrl("https://user:pw@mainnet.example/v3/SECRETKEY?x=1".into());
    assert_eq!(url.redacted(), "https://mainnet.example/…");
    let mut config = Config::default();
    config.rpc.evm.insert("mainnet".into(), url);
    let shown = format!("{config:?}");
    assert!(!shown.contains("SECRETKEY") && !shown.contains("pw@"), "{shown}");
    assert_eq!(RpcUrl("http://127.0.0.1:8545".into()).redacted(), "http://127.0.0.1:8545");
}
