//! The daemon's configuration: loaded once at startup, validated, then passed explicitly (no globals).
//!
//! Layers, later wins: built-in defaults → `<data dir>/config.toml` (if present) → environment variables
//! `WAIAAS_<SECTION>_<KEY>` (upper snake case, e.g. `WAIAAS_DAEMON_PORT=0`, `WAIAAS_RPC_EVM_ANVIL=http://...`).
//!
//! Sections hold flat keys only; a nested table, an unknown section, an unknown key or a value of the wrong type
//! is a startup error that names the key. An environment variable is a config key only when it names a known
//! section (`WAIAAS_DAEMON_*`, `WAIAAS_RPC_*`, `WAIAAS_SECURITY_*`, `WAIAAS_KEYSTORE_*`); then an unknown key is
//! an error too. `WAIAAS_DATA_DIR`, `WAIAAS_MASTER_PASSWORD` and `WAIAAS_MASTER_PASSWORD_FILE` are not config keys.
//!
//! RPC URLs may carry provider API keys: they are kept in [`RpcUrl`], whose `Debug` redacts everything after the
//! host, so logging the config never leaks them.

mod anomaly;
pub mod notifications;

use std::collections::BTreeMap;
use std::fmt;

use waiaas_core::acl::{AclRules, parse_cidrs};
use waiaas_core::domain::{Address, ChainFamily};
use waiaas_core::services::CoreConfig;
use waiaas_fs::KdfParams;

/// The sections, in file order.
pub const SECTIONS: &[&str] = &[
    "daemon",
    "rpc",
    "security",
    "policy",
    "keystore",
    "oracle",
    "pipeline",
    "metrics",
    "backup",
    "acl",
    "webhooks",
    "anomaly",
    "notifications",
];

/// Environment variables with the `WAIAAS_` prefix that are not config keys.
pub const NON_CONFIG_ENV: &[&str] = &["WAIAAS_DATA_DIR", "WAIAAS_MASTER_PASSWORD", "WAIAAS_MASTER_PASSWORD_FILE"];

/// Prefix of `[rpc]` keys naming an EVM network.
const EVM_PREFIX: &str = "evm_";
const SOLANA_PREFIX: &str = "solana_";
/// Prefix of `[rpc]` keys setting a network's native coin symbol.
const NATIVE_PREFIX: &str = "native_";
/// Prefix of `[rpc]` keys naming a network's block explorer (links in notifications).
const EXPLORER_PREFIX: &str = "explorer_";
/// Prefix of `[oracle]` keys naming a native coin's USD price.
const USD_PREFIX: &str = "usd_";
/// Prefix of `[oracle]` keys naming an ERC-20 token's USD price: `token_<network>_<address>`.
const TOKEN_PREFIX: &str = "token_";

/// The whole configuration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    pub daemon: DaemonConfig,
    pub rpc: RpcConfig,
    pub security: CoreConfig,
    pub keystore: KdfParams,
    pub oracle: OracleConfig,
    pub pipeline: PipelineConfig,
    pub metrics: MetricsConfig,
    pub backup: BackupConfig,
    /// `[acl]`: IP access control per endpoint class (OPS-07).
    pub acl: AclRules,
    /// `[anomaly]`: anomaly detection (OPS-06), reloaded on SIGHUP.
    pub anomaly: waiaas_core::anomaly::AnomalySettings,
    /// `[webhooks]`: outbound deliveries (OPS-04).
    pub webhooks: WebhooksConfig,
    /// `[notifications]`: messages to people (ntfy, Slack, Discord, Telegram, email).
    pub notifications: notifications::NotificationsConfig,
}

/// `[webhooks]`: outbound webhook deliveries (OPS-04).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhooksConfig {
    /// Milliseconds before each retry (its length is the number of retries; jitter adds up to 10 %).
    pub retry_schedule: Vec<u64>,
    /// Per-attempt timeout, milliseconds.
    pub timeout_ms: u64,
    /// Refuse loopback and private targets too (link-local and metadata addresses are always refused).
    pub block_private_targets: bool,
    /// Deliveries in flight at most (one per webhook at a time, so each receiver gets its events in order).
    pub concurrency: u32,
    /// Seconds the previous secret keeps signing after a rotation.
    pub rotation_grace_seconds: u64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            retry_schedule: vec![1_000, 2_000, 4_000],
            timeout_ms: 10_000,
            block_private_targets: false,
            concurrency: 16,
            rotation_grace_seconds: 86_400,
        }
    }
}

/// `[metrics]`: the `GET /metrics` endpoint (OPS-05).
#[derive(Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    pub enabled: bool,
    /// `none`, `master` or `bearer`.
    pub auth: MetricsAuthMode,
    /// The token of `auth = "bearer"` (a secret: redacted in `Debug`).
    pub bearer_token: Option<String>,
}

/// Who may read `GET /metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricsAuthMode {
    None,
    Master,
    Bearer,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { enabled: true, auth: MetricsAuthMode::None, bearer_token: None }
    }
}

impl fmt::Debug for MetricsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsConfig")
            .field("enabled", &self.enabled)
            .field("auth", &self.auth)
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// `[oracle]`: a static USD price table: `usd_<symbol> = <price>` per native coin (e.g. `usd_eth = 3000.0`) and
/// `token_<network>_<address> = <price>` per ERC-20 token (priced by where it lives, never by a symbol a request
/// names). An asset without a price is unpriced, never free.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OracleConfig {
    /// Upper-case symbol → USD price of one whole native coin.
    pub usd: BTreeMap<String, f64>,
    /// (network, token address) → USD price of one whole token (in the decimals the chain reports).
    pub tokens: Vec<((String, Address), f64)>,
}

/// `[backup]`: where archives go and the daemon's backup schedule (OPS-03).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupConfig {
    /// Archive directory; `None` (or an empty string in the file) means `<data dir>/backups`.
    pub dir: Option<std::path::PathBuf>,
    /// Seconds between scheduled backups; 0 turns the schedule off.
    pub interval: u64,
    /// Scheduled backups keep this many archives in `dir`, deleting the oldest.
    pub retention_count: u32,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig { dir: None, interval: 0, retention_count: 7 }
    }
}

/// `[pipeline]`: the transaction worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineConfig {
    /// How often the worker looks for due work (DELAY expiry, receipts) besides being woken by new requests.
    pub worker_interval_ms: u64,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig { worker_interval_ms: 500 }
    }
}

/// `[daemon]`: the listener and logging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonConfig {
    /// TCP port; 0 picks a free one (the daemon prints the real one).
    pub port: u16,
    /// Address (or name) to bind.
    pub hostname: String,
    /// Extra `Host` header values accepted besides loopback (DNS-rebinding guard).
    pub allowed_hosts: Vec<String>,
    /// A `tracing` filter directive such as `info` or `waiaas_server=debug,info`; `RUST_LOG` overrides it.
    pub log_level: String,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            port: 3100,
            hostname: "127.0.0.1".to_owned(),
            allowed_hosts: Vec::new(),
            log_level: "info".to_owned(),
        }
    }
}

/// `[rpc]`: one `evm_<network> = "<url>"` per EVM network, one `solana_<network> = "<url>"` per Solana network.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RpcConfig {
    /// Network name → RPC URL.
    pub evm: BTreeMap<String, RpcUrl>,
    /// Solana network name → RPC URL.
    pub solana: BTreeMap<String, RpcUrl>,
    /// Network name → native coin symbol, over what the chain id says (`native_<network> = "POL"`).
    pub native: BTreeMap<String, String>,
    /// Network name → block explorer base URL (`explorer_<network> = "https://sepolia.etherscan.io"`): notifications
    /// link `<base>/tx/<hash>` or `<base>/address/<address>`.
    pub explorers: BTreeMap<String, String>,
}

impl RpcConfig {
    /// The family of a configured network, by the prefix of its key (`evm_<name>`, `solana_<name>`); `None` when
    /// no network of that name is configured.
    pub fn family(&self, network: &str) -> Option<ChainFamily> {
        if self.evm.contains_key(network) {
            Some(ChainFamily::Evm)
        } else {
            self.solana.contains_key(network).then_some(ChainFamily::Solana)
        }
    }

    /// `(network, url)` pairs for the Solana adapter.
    pub fn solana_networks(&self) -> Vec<(String, String)> {
        self.solana.iter().map(|(name, url)| (name.clone(), url.expose().to_owned())).collect()
    }

    /// `(network, url)` pairs for the chain adapter.
    pub fn evm_networks(&self) -> Vec<(String, String)> {
        self.evm.iter().map(|(name, url)| (name.clone(), url.expose().to_owned())).collect()
    }
}

/// An RPC endpoint URL. It may embed an API key, so `Debug` and `Display` show only the scheme and host.
#[derive(Clone, PartialEq, Eq)]
pub struct RpcUrl(String);

impl RpcUrl {
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `scheme://host[:port]` without path, query or user info.
    pub fn redacted(&self) -> String {
        let (scheme, rest) = self.0.split_once("://").unwrap_or(("?", &self.0));
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
        let elided = if rest.len() > authority.len() || authority.contains('@') { "/…" } else { "" };
        format!("{scheme}://{host}{elided}")
    }
}

impl fmt::Debug for RpcUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RpcUrl({})", self.redacted())
    }
}

impl fmt::Display for RpcUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// A configuration error: where it came from (`config.toml`, an env var name) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct ConfigError {
    pub origin: String,
    pub message: String,
}

impl ConfigError {
    fn new(origin: &str, message: impl Into<String>) -> Self {
        ConfigError { origin: origin.to_owned(), message: message.into() }
    }
}

/// One value to apply, from TOML or from an environment variable (always a string there).
#[derive(Clone, Copy)]
enum Raw<'a> {
    Toml(&'a toml::Value),
    Env(&'a str),
}

impl Raw<'_> {
    fn type_name(&self) -> &'static str {
        match self {
            Raw::Toml(v) => v.type_str(),
            Raw::Env(_) => "string",
        }
    }

    fn string(self) -> Result<String, String> {
        match self {
            Raw::Toml(toml::Value::String(s)) => Ok(s.clone()),
            Raw::Env(s) => Ok(s.to_owned()),
            other => Err(format!("expected a string, found {}", other.type_name())),
        }
    }

    fn integer<T: TryFrom<i64>>(self, range: &str) -> Result<T, String> {
        let n = match self {
            Raw::Toml(toml::Value::Integer(n)) => *n,
            Raw::Env(s) => s.trim().parse::<i64>().map_err(|_| format!("expected an integer {range}, found {s:?}"))?,
            other => {
                return Err(format!("expected an integer {range}, found {}", other.type_name()));
            }
        };
        T::try_from(n).map_err(|_| format!("expected an integer {range}, found {n}"))
    }

    /// TOML: an array of strings. Env: a comma-separated list (empty string = empty list).
    fn number(self) -> Result<f64, String> {
        let n = match self {
            Raw::Toml(toml::Value::Float(f)) => *f,
            Raw::Toml(toml::Value::Integer(n)) => *n as f64,
            Raw::Env(s) => s.trim().parse::<f64>().map_err(|_| format!("expected a number, found {s:?}"))?,
            other => return Err(format!("expected a number, found {}", other.type_name())),
        };
        if n.is_finite() && n >= 0.0 { Ok(n) } else { Err(format!("expected a finite non-negative number, found {n}")) }
    }

    fn boolean(self) -> Result<bool, String> {
        match self {
            Raw::Toml(toml::Value::Boolean(b)) => Ok(*b),
            Raw::Env(s) => match s.trim() {
                "true" => Ok(true),
                "false" => Ok(false),
                other => Err(format!("expected true or false, found {other:?}")),
            },
            other => Err(format!("expected a boolean, found {}", other.type_name())),
        }
    }

    /// TOML: an array of integers (or strings). Env: a comma-separated list. Each item as text.
    fn string_list_or_integers(self) -> Result<Vec<String>, String> {
        match self {
            Raw::Toml(toml::Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    toml::Value::Integer(n) => Ok(n.to_string()),
                    toml::Value::String(s) => Ok(s.clone()),
                    other => {
                        Err(format!("expected an array of integers, found an array holding a {}", other.type_str()))
                    }
                })
                .collect(),
            other => other.string_list(),
        }
    }

    fn string_list(self) -> Result<Vec<String>, String> {
        match self {
            Raw::Toml(toml::Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    toml::Value::String(s) => Ok(s.clone()),
                    other => {
                        Err(format!("expected an array of strings, found an array holding a {}", other.type_str()))
                    }
                })
                .collect(),
            Raw::Env(s) => Ok(s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()),
            other => Err(format!("expected an array of strings, found {}", other.type_name())),
        }
    }
}

impl Config {
    /// Loads the configuration: defaults, then `file` (`(display name, contents)`) if given, then the
    /// `WAIAAS_*` variables among `env`, then validation.
    pub fn load<I>(file: Option<(&str, &str)>, env: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let mut config = Config::default();
        if let Some((name, text)) = file {
            config.apply_toml(name, text)?;
        }
        let mut vars: Vec<(String, String)> = env.into_iter().filter(|(k, _)| k.starts_with("WAIAAS_")).collect();
        // Deterministic order: the first error reported is the same on every run.
        vars.sort();
        for (name, value) in &vars {
            config.apply_env(name, value)?;
        }
        config.validate()?;
        Ok(config)
    }

    fn apply_toml(&mut self, origin: &str, text: &str) -> Result<(), ConfigError> {
        let table: toml::Table =
            text.parse().map_err(|e: toml::de::Error| ConfigError::new(origin, e.message().to_owned()))?;
        for (section, value) in &table {
            let toml::Value::Table(keys) = value else {
                return Err(ConfigError::new(
                    origin,
                    format!(
                        "key {section:?} must be inside a section{}",
                        match home_of(section) {
                            Some(home) => format!(" (it belongs in [{home}])"),
                            None => format!(" ({})", section_list()),
                        }
                    ),
                ));
            };
            if !SECTIONS.contains(&section.as_str()) {
                return Err(ConfigError::new(
                    origin,
                    format!("unknown section [{section}] (known: {})", section_list()),
                ));
            }
            for (key, value) in keys {
                if value.is_table() {
                    return Err(ConfigError::new(
                        origin,
                        format!("[{section}] {key} is a table; sections take flat keys only"),
                    ));
                }
                self.apply(section, key, Raw::Toml(value)).map_err(|m| ConfigError::new(origin, m))?;
            }
        }
        Ok(())
    }

    fn apply_env(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        if NON_CONFIG_ENV.contains(&name) {
            return Ok(());
        }
        let rest = &name["WAIAAS_".len()..];
        for section in SECTIONS {
            let prefix = format!("{}_", section.to_ascii_uppercase());
            if let Some(key) = rest.strip_prefix(&prefix) {
                let key = key.to_ascii_lowercase();
                return self.apply(section, &key, Raw::Env(value)).map_err(|m| ConfigError::new(name, m));
            }
        }
        // Not a config section: some other tool's variable (or a reserved one); not ours to judge.
        Ok(())
    }

    /// Sets `[section] key` from `raw`. Errors name the key.
    fn apply(&mut self, section: &str, key: &str, raw: Raw<'_>) -> Result<(), String> {
        let named = |e: String| format!("[{section}] {key}: {e}");
        match (section, key) {
            ("daemon", "port") => self.daemon.port = raw.integer("0..=65535").map_err(named)?,
            ("daemon", "hostname") => self.daemon.hostname = raw.string().map_err(named)?,
            ("daemon", "allowed_hosts") => self.daemon.allowed_hosts = raw.string_list().map_err(named)?,
            ("daemon", "log_level") => self.daemon.log_level = raw.string().map_err(named)?,
            ("rpc", key) if key.starts_with(EVM_PREFIX) => {
                let network = &key[EVM_PREFIX.len()..];
                if !valid_network_name(network) {
                    return Err(named(
                        "the network name after evm_ must be lowercase letters, digits, '_' or '-', starting with a letter or digit"
                            .to_owned(),
                    ));
                }
                let url = raw.string().map_err(named)?;
                self.rpc.evm.insert(network.to_owned(), RpcUrl(url));
            }
            ("rpc", key) if key.starts_with(SOLANA_PREFIX) => {
                let network = &key[SOLANA_PREFIX.len()..];
                if !valid_network_name(network) {
                    return Err(named(
                        "the network name after solana_ must be lowercase letters, digits, '_' or '-', starting with a letter or digit"
                            .to_owned(),
                    ));
                }
                let url = raw.string().map_err(named)?;
                self.rpc.solana.insert(network.to_owned(), RpcUrl(url));
            }
            ("rpc", key) if key.starts_with(EXPLORER_PREFIX) => {
                let network = &key[EXPLORER_PREFIX.len()..];
                let url = raw.string().map_err(named)?;
                let is_url = url.split_once("://").is_some_and(|(scheme, rest)| {
                    matches!(scheme, "http" | "https") && !rest.is_empty() && !rest.starts_with('/')
                });
                if !valid_network_name(network) || !is_url {
                    return Err(named("expected explorer_<network> = \"<http:// or https:// URL>\"".to_owned()));
                }
                self.rpc.explorers.insert(network.to_owned(), url.trim_end_matches('/').to_owned());
            }
            ("rpc", key) if key.starts_with(NATIVE_PREFIX) => {
                let network = &key[NATIVE_PREFIX.len()..];
                let symbol = raw.string().map_err(named)?;
                if !valid_network_name(network) || symbol.is_empty() || symbol.len() > 16 {
                    return Err(named("expected native_<network> = \"<symbol, 1 to 16 characters>\"".to_owned()));
                }
                self.rpc.native.insert(network.to_owned(), symbol);
            }
            ("security", "session_ttl_seconds") => {
                self.security.session_ttl_seconds = raw.integer(">= 0").map_err(named)?
            }
            ("security", "session_max_ttl_seconds") => {
                self.security.session_max_ttl_seconds = raw.integer(">= 0").map_err(named)?
            }
            ("security", "session_absolute_lifetime_seconds") => {
                self.security.session_absolute_lifetime_seconds = raw.integer(">= 0").map_err(named)?
            }
            ("security", "master_auth_max_failures") => {
                self.security.master_auth_max_failures = raw.integer("0..=4294967295").map_err(named)?
            }
            ("security", "master_auth_window_seconds") => {
                self.security.master_auth_window_seconds = raw.integer(">= 0").map_err(named)?
            }
            ("keystore", "argon2_m_cost_kib") => {
                self.keystore.m_cost_kib = raw.integer("0..=4294967295").map_err(named)?
            }
            ("keystore", "argon2_t_cost") => self.keystore.t_cost = raw.integer("0..=4294967295").map_err(named)?,
            ("policy", "default_deny_contracts") => {
                self.security.policy_defaults.deny_contracts = raw.boolean().map_err(named)?
            }
            ("policy", "default_deny_tokens") => {
                self.security.policy_defaults.deny_tokens = raw.boolean().map_err(named)?
            }
            ("policy", "default_deny_spenders") => {
                self.security.policy_defaults.deny_spenders = raw.boolean().map_err(named)?
            }
            ("oracle", key) if key.starts_with(TOKEN_PREFIX) => {
                let rest = &key[TOKEN_PREFIX.len()..];
                let parsed = rest
                    .rsplit_once('_')
                    .filter(|(network, _)| valid_network_name(network))
                    .and_then(|(network, address)| Some((network.to_owned(), Address::parse_any(address).ok()?)));
                let Some(key) = parsed else {
                    return Err(named("expected token_<network>_<0x token address>".to_owned()));
                };
                let price = raw.number().map_err(named)?;
                self.oracle.tokens.retain(|(k, _)| *k != key);
                self.oracle.tokens.push((key, price));
            }
            ("oracle", key) if key.starts_with(USD_PREFIX) && key.len() > USD_PREFIX.len() => {
                let symbol = key[USD_PREFIX.len()..].to_ascii_uppercase();
                self.oracle.usd.insert(symbol, raw.number().map_err(named)?);
            }
            ("pipeline", "worker_interval_ms") => {
                self.pipeline.worker_interval_ms = raw.integer("10..=60000").map_err(named)?
            }
            ("backup", "dir") => {
                let dir = raw.string().map_err(named)?;
                self.backup.dir = (!dir.trim().is_empty()).then(|| dir.into());
            }
            ("backup", "interval") => self.backup.interval = raw.integer(">= 0").map_err(named)?,
            ("backup", "retention_count") => {
                self.backup.retention_count = raw.integer("1..=10000").map_err(named)?;
                if !(1..=10_000).contains(&self.backup.retention_count) {
                    return Err(named("expected an integer 1..=10000".to_owned()));
                }
            }
            ("keystore", "argon2_p_cost") => self.keystore.p_cost = raw.integer("0..=4294967295").map_err(named)?,
            ("metrics", "enabled") => self.metrics.enabled = raw.boolean().map_err(named)?,
            ("metrics", "auth") => {
                self.metrics.auth = match raw.string().map_err(named)?.as_str() {
                    "none" => MetricsAuthMode::None,
                    "master" => MetricsAuthMode::Master,
                    "bearer" => MetricsAuthMode::Bearer,
                    other => {
                        return Err(named(format!("expected \"none\", \"master\" or \"bearer\", found {other:?}")));
                    }
                }
            }
            ("metrics", "bearer_token") => {
                let token = raw.string().map_err(named)?;
                self.metrics.bearer_token = (!token.is_empty()).then_some(token);
            }
            ("acl", key) if ACL_KEYS.contains(&key) => {
                let nets = parse_cidrs(&format!("[acl] {key}"), &raw.string_list().map_err(named)?)?;
                let acl = &mut self.acl;
                let slot = match key {
                    "session_allowed_cidrs" => &mut acl.session.allowed,
                    "session_denied_cidrs" => &mut acl.session.denied,
                    "owner_allowed_cidrs" => &mut acl.owner.allowed,
                    "owner_denied_cidrs" => &mut acl.owner.denied,
                    "metrics_allowed_cidrs" => &mut acl.metrics.allowed,
                    "metrics_denied_cidrs" => &mut acl.metrics.denied,
                    _ => &mut acl.trusted_proxies,
                };
                *slot = nets;
            }
            ("webhooks", "retry_schedule") => {
                let items = raw.string_list_or_integers().map_err(named)?;
                let schedule = items
                    .iter()
                    .map(|s| s.trim().parse::<u64>().ok().filter(|n| (1..=86_400_000).contains(n)))
                    .collect::<Option<Vec<_>>>()
                    .filter(|v| v.len() <= 20)
                    .ok_or_else(|| named("expected at most 20 delays in milliseconds, each 1..=86400000".to_owned()))?;
                self.webhooks.retry_schedule = schedule;
            }
            ("webhooks", "timeout_ms") => self.webhooks.timeout_ms = raw.integer("100..=120000").map_err(named)?,
            ("webhooks", "block_private_targets") => {
                self.webhooks.block_private_targets = raw.boolean().map_err(named)?
            }
            ("webhooks", "concurrency") => self.webhooks.concurrency = raw.integer("1..=256").map_err(named)?,
            ("webhooks", "rotation_grace_seconds") => {
                self.webhooks.rotation_grace_seconds = raw.integer(">= 0").map_err(named)?
            }
            ("anomaly", key) => anomaly::apply(&mut self.anomaly, key, raw).map_err(named)?,
            ("notifications", key) => notifications::apply(&mut self.notifications, key, raw).map_err(named)?,
            (section, key) => {
                return Err(format!("unknown key {key:?} in [{section}]{}", belongs_hint(key)));
            }
        }
        Ok(())
    }

    /// Cross-field and range checks, after all layers are applied.
    fn validate(&self) -> Result<(), ConfigError> {
        let fail = |key: &str, message: String| Err(ConfigError::new("config", format!("{key}: {message}")));
        if self.daemon.hostname.trim().is_empty() {
            return fail("[daemon] hostname", "must not be empty".to_owned());
        }
        if let Some(bad) =
            self.daemon.allowed_hosts.iter().find(|h| h.trim().is_empty() || h.contains(char::is_whitespace))
        {
            return fail("[daemon] allowed_hosts", format!("{bad:?} is not a host name"));
        }
        if let Some(network) = self.rpc.explorers.keys().find(|network| !self.rpc.evm.contains_key(*network)) {
            return fail(
                &format!("[rpc] explorer_{network}"),
                format!("no network {network:?} (evm_{network}) is configured"),
            );
        }
        if let Err(message) = self.notifications.validate() {
            return Err(ConfigError::new("config", message));
        }
        if let Some(network) = self.rpc.native.keys().find(|network| !self.rpc.evm.contains_key(*network)) {
            return fail(
                &format!("[rpc] native_{network}"),
                format!("no network {network:?} (evm_{network}) is configured"),
            );
        }
        for ((network, token), _) in &self.oracle.tokens {
            if let Some(family) = self.rpc.family(network)
                && token.family() != family
            {
                return fail(
                    &format!("[oracle] token_{network}_{token}"),
                    format!("{token} is a {} address; network {network:?} is {family}", token.family()),
                );
            }
        }
        if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&self.daemon.log_level) {
            return fail("[daemon] log_level", format!("{:?} is not a log filter: {e}", self.daemon.log_level));
        }
        if let Some(network) = self.rpc.solana.keys().find(|network| self.rpc.evm.contains_key(*network)) {
            return fail(
                &format!("[rpc] solana_{network}"),
                format!("network {network:?} is also configured as evm_{network}: a network name names one network"),
            );
        }
        let urls = self
            .rpc
            .evm
            .iter()
            .map(|(n, u)| ("evm", n, u))
            .chain(self.rpc.solana.iter().map(|(n, u)| ("solana", n, u)));
        for (prefix, network, url) in urls {
            let text = url.expose();
            let has_host = text.split_once("://").is_some_and(|(scheme, rest)| {
                matches!(scheme, "http" | "https") && !rest.is_empty() && !rest.starts_with('/')
            });
            if !has_host {
                return fail(
                    &format!("[rpc] {prefix}_{network}"),
                    format!("{} is not an http:// or https:// URL", url.redacted()),
                );
            }
        }
        let s = &self.security;
        if s.session_ttl_seconds < 60 {
            return fail("[security] session_ttl_seconds", "must be at least 60".to_owned());
        }
        if s.session_max_ttl_seconds < s.session_ttl_seconds {
            return fail("[security] session_max_ttl_seconds", "must be at least session_ttl_seconds".to_owned());
        }
        if s.session_absolute_lifetime_seconds < s.session_max_ttl_seconds {
            return fail(
                "[security] session_absolute_lifetime_seconds",
                "must be at least session_max_ttl_seconds".to_owned(),
            );
        }
        if s.master_auth_max_failures == 0 {
            return fail("[security] master_auth_max_failures", "must be at least 1".to_owned());
        }
        if s.master_auth_window_seconds == 0 {
            return fail("[security] master_auth_window_seconds", "must be at least 1".to_owned());
        }
        if !(10..=60_000).contains(&self.pipeline.worker_interval_ms) {
            return fail("[pipeline] worker_interval_ms", "must be between 10 and 60000".to_owned());
        }
        if self.metrics.auth == MetricsAuthMode::Bearer
            && self.metrics.bearer_token.as_deref().is_none_or(|t| t.trim().len() < 16)
        {
            return fail(
                "[metrics] bearer_token",
                "auth = \"bearer\" needs a token of at least 16 characters (WAIAAS_METRICS_BEARER_TOKEN)".to_owned(),
            );
        }
        if !(100..=120_000).contains(&self.webhooks.timeout_ms) {
            return fail("[webhooks] timeout_ms", "must be between 100 and 120000".to_owned());
        }
        if !(1..=256).contains(&self.webhooks.concurrency) {
            return fail("[webhooks] concurrency", "must be between 1 and 256".to_owned());
        }
        if let Err(e) = self.keystore.validate() {
            return fail("[keystore] argon2_*", e.message);
        }
        Ok(())
    }
}

fn section_list() -> String {
    SECTIONS.iter().map(|s| format!("[{s}]")).collect::<Vec<_>>().join(", ")
}

fn valid_network_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'0'..=b'9'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
}

/// Every fixed key, by section (`[rpc]` takes any `evm_<network>` key instead). Used for "belongs in" hints; a
/// test checks that each is accepted and appears in [`DEFAULT_CONFIG_TOML`].
pub const KEYS: &[(&str, &str)] = &[
    ("daemon", "port"),
    ("daemon", "hostname"),
    ("daemon", "allowed_hosts"),
    ("daemon", "log_level"),
    ("security", "session_ttl_seconds"),
    ("security", "session_max_ttl_seconds"),
    ("security", "session_absolute_lifetime_seconds"),
    ("security", "master_auth_max_failures"),
    ("security", "master_auth_window_seconds"),
    ("policy", "default_deny_contracts"),
    ("policy", "default_deny_tokens"),
    ("policy", "default_deny_spenders"),
    ("keystore", "argon2_m_cost_kib"),
    ("keystore", "argon2_t_cost"),
    ("keystore", "argon2_p_cost"),
    ("pipeline", "worker_interval_ms"),
    ("backup", "dir"),
    ("backup", "interval"),
    ("backup", "retention_count"),
    ("metrics", "enabled"),
    ("metrics", "auth"),
    ("metrics", "bearer_token"),
    ("acl", "session_allowed_cidrs"),
    ("acl", "session_denied_cidrs"),
    ("acl", "owner_allowed_cidrs"),
    ("acl", "owner_denied_cidrs"),
    ("acl", "metrics_allowed_cidrs"),
    ("acl", "metrics_denied_cidrs"),
    ("acl", "trusted_proxies"),
    ("webhooks", "retry_schedule"),
    ("webhooks", "timeout_ms"),
    ("webhooks", "block_private_targets"),
    ("webhooks", "concurrency"),
    ("webhooks", "rotation_grace_seconds"),
    ("anomaly", "enabled"),
    ("anomaly", "floor_tier"),
    ("anomaly", "floor_ttl_seconds"),
    ("anomaly", "min_transactions"),
    ("anomaly", "min_history_seconds"),
];

/// The `[acl]` keys; each takes a list of CIDRs (a bare address is one host).
const ACL_KEYS: &[&str] = &[
    "session_allowed_cidrs",
    "session_denied_cidrs",
    "owner_allowed_cidrs",
    "owner_denied_cidrs",
    "metrics_allowed_cidrs",
    "metrics_denied_cidrs",
    "trusted_proxies",
];

/// The section a key belongs to, for hints.
fn home_of(key: &str) -> Option<&'static str> {
    if key.starts_with(EVM_PREFIX) || key.starts_with(NATIVE_PREFIX) || key.starts_with(EXPLORER_PREFIX) {
        return Some("rpc");
    }
    if key.starts_with(USD_PREFIX) || key.starts_with(TOKEN_PREFIX) {
        return Some("oracle");
    }
    if anomaly::keys().iter().any(|k| k == key) {
        return Some("anomaly");
    }
    if notifications::keys().iter().any(|k| k == key) {
        return Some("notifications");
    }
    KEYS.iter().find(|(_, k)| *k == key).map(|(section, _)| *section)
}

/// `" (it belongs in [daemon])"` when `key` is known in another section.
fn belongs_hint(key: &str) -> String {
    home_of(key).map(|section| format!(" (it belongs in [{section}])")).unwrap_or_default()
}

/// The `config.toml` written by `waiaas init`: every key with its default, commented out together with its
/// section header, so that uncommenting a key without its header, or appending a section at the end, gives a
/// precise error or just works. The one active section is `[rpc]`, last, with a local EVM network (`evm_anvil`)
/// so a fresh daemon can create agents right away.
pub const DEFAULT_CONFIG_TOML: &str = r#"# WAIaaS daemon configuration.
#
# Every key is shown with its default value, commented out. To change one, uncomment it together with its
# [section] line. Each key can also be set by an environment variable WAIAAS_<SECTION>_<KEY>, which wins over
# this file, e.g. WAIAAS_DAEMON_PORT=3200 or WAIAAS_RPC_EVM_SEPOLIA=https://...
# Sections take flat keys only; an unknown section or key stops the daemon at startup.

# [daemon]
# TCP port of the REST API; 0 picks a free port (the daemon prints the one it got).
# port = 3100
# Address to bind. Keep the loopback address unless the daemon must be reachable from elsewhere.
# hostname = "127.0.0.1"
# Host header values accepted besides localhost / 127.0.0.1 / [::1] (DNS-rebinding guard).
# allowed_hosts = []
# Log filter (trace, debug, info, warn, error, or tracing directives); RUST_LOG overrides it.
# log_level = "info"

# [security]
# Lifetime of a session token when the request names none, and of each renewal.
# session_ttl_seconds = 86400
# Longest lifetime a session may be issued with.
# session_max_ttl_seconds = 2592000
# A session can be renewed until this long after its creation.
# session_absolute_lifetime_seconds = 2592000
# Failed master-password attempts allowed per client address within the window.
# master_auth_max_failures = 5
# master_auth_window_seconds = 60

# [policy]
# Default deny: with no policy of the matching type in force, a contract call needs a CONTRACT_WHITELIST, a token
# transfer an ALLOWED_TOKENS and an approval an APPROVED_SPENDERS policy (see docs/policies.md). Turning one off
# allows that kind of transaction to anyone until a policy of the type exists.
# default_deny_contracts = true
# default_deny_tokens = true
# default_deny_spenders = true

# [keystore]
# Argon2id parameters for new agent key files (existing files keep the parameters stored in them).
# argon2_m_cost_kib = 65536
# argon2_t_cost = 3
# argon2_p_cost = 4

# [oracle]
# Static USD prices. Native coins by symbol: usd_<symbol> = <price of one whole coin>. ERC-20 tokens by network
# and contract address: token_<network>_<address> = <price of one whole token> (the token's decimals are read
# from the chain). USD policy thresholds use them; an asset without a price is treated as unpriced (the tier is
# raised to at least NOTIFY), never as free.
# usd_eth = 3000.0
# token_anvil_0x5fbdb2315678afecb367f032d93f642f64180aa3 = 1.0

# [pipeline]
# How often the transaction worker looks for due work (DELAY expiry, receipts), besides being woken at once by
# new requests and approvals.
# worker_interval_ms = 500

# [backup]
# Directory of encrypted backup archives (`waiaas backup`, the schedule below); empty: <data dir>/backups.
# dir = ""
# Seconds between automatic backups by the running daemon; 0 turns them off.
# interval = 0
# Automatic backups keep this many archives in dir, deleting the oldest.
# retention_count = 7

# [metrics]
# GET /metrics: Prometheus text exposition on the API listener. Disabled → 404.
# enabled = true
# Who may scrape: "none", "master" (X-Master-Password) or "bearer" (Authorization: Bearer <bearer_token>).
# auth = "none"
# The scrape token of auth = "bearer" (at least 16 characters); prefer WAIAAS_METRICS_BEARER_TOKEN.
# bearer_token = ""

# [acl]
# IP access control, checked before authentication (CIDRs; a bare address is one host; IPv4-mapped IPv6 addresses
# match IPv4 CIDRs). Master-password (admin) endpoints answer loopback clients only, whatever is set here.
# SIGHUP (`kill -HUP <pid>`) applies a changed [acl] without a restart; a file that does not load is ignored.
# Agent endpoints (session token):
# session_allowed_cidrs = ["0.0.0.0/0", "::/0"]
# Owner endpoints (nonce, approve, reject):
# owner_allowed_cidrs = ["0.0.0.0/0", "::/0"]
# GET /metrics:
# metrics_allowed_cidrs = ["127.0.0.0/8", "::1/128"]
# Refused even when allowed above (checked first):
# session_denied_cidrs = []
# owner_denied_cidrs = []
# metrics_denied_cidrs = []
# Reverse proxies whose X-Forwarded-For is believed (the rightmost address that is not a trusted proxy is the
# client). A proxy on loopback still does not make a remote client local.
# trusted_proxies = []

# [webhooks]
# Outbound webhooks (POST /v1/webhooks): each event is signed the Standard Webhooks way and delivered at least once.
# Milliseconds before each retry of a failed delivery (3 retries by default; up to 10 % jitter is added). 408, 429
# (its Retry-After is honoured), 5xx, timeouts and connection errors are retried; other answers are final.
# retry_schedule = [1000, 2000, 4000]
# Timeout of one delivery attempt, milliseconds.
# timeout_ms = 10000
# Refuse loopback and private addresses as targets too (link-local and cloud-metadata addresses always are).
# block_private_targets = false
# Deliveries in flight at most (each webhook gets one at a time, in event order).
# concurrency = 16
# After a secret rotation, the previous secret keeps signing (a second signature) for this many seconds.
# rotation_grace_seconds = 86400
# [anomaly]
# Anomaly detection (OPS-06, docs/anomaly.md): five rules judge each agent's transactions once they are final. A
# finding is audited (ANOMALY_DETECTED) and, unless its rule is in shadow mode, raises the agent's tier to at least
# floor_tier for floor_ttl_seconds (a repeated finding extends it; `waiaas anomaly clear <agent>` ends it).
# SIGHUP (`kill -HUP <pid>`) applies a changed [anomaly] without a restart.
# enabled = true
# floor_tier = "DELAY"
# floor_ttl_seconds = 86400
# Cold start: no verdict on an agent before it has this many final transactions in 7 days and this much history.
# min_transactions = 20
# min_history_seconds = 86400
# Each rule: aNN_enabled, aNN_shadow (detect and report, raise no tier), and its parameters.
# A-01 spend spike: the last hour's spend above multiplier x the 24 h hourly average, and above a floor
# (min_usd for priced transfers, min_base_units of the asset, e.g. wei, for unpriced ones).
# a01_enabled = true
# a01_shadow = false
# a01_multiplier = 5.0
# a01_min_usd = 50.0
# a01_min_base_units = 1e16
# A-02 frequency spike: transactions in the last 10 minutes above multiplier x the 10-minute average of the hour
# before, and above floor.
# a02_enabled = true
# a02_shadow = false
# a02_multiplier = 3.0
# a02_floor = 5.0
# A-03 unusual hour: a transaction in a UTC hour of day holding less than max_share of the last 7 days' activity,
# once the agent has min_history_seconds of history.
# a03_enabled = true
# a03_shadow = false
# a03_max_share = 0.02
# a03_min_history_seconds = 259200.0
# A-04 new-recipient concentration: at least min_count payments in the last hour, at least share of them to
# recipients not paid in the 7 days before.
# a04_enabled = true
# a04_shadow = false
# a04_share = 0.8
# a04_min_count = 5.0
# A-05 balance drop: the native balance down by at least drop within an hour (balances read at confirmation).
# a05_enabled = true
# a05_shadow = false
# a05_drop = 0.5

# [notifications]
# Messages to people through the channels they watch: ntfy, Slack, Discord, Telegram, email. A channel is on when
# its required keys are set. Each credential (ntfy_url, ntfy_token, slack_webhook_url, discord_webhook_url,
# telegram_bot_token, smtp_password) can instead be read from a file: <key>_file = "/run/secrets/..." (prefer that,
# or WAIAAS_NOTIFICATIONS_<KEY>). Credentials never appear in logs, errors, the audit log or the notification log.
# Events sent by default: TX_APPROVAL_REQUIRED, TX_QUEUED (DELAY), TX_FAILED, POLICY_DENIED, KILL_SWITCH_ACTIVATED,
# KILL_SWITCH_RECOVERED, ANOMALY_DETECTED, AGENT_SUSPENDED, BACKUP_FAILED, WEBHOOK_DISABLED. The kill switch and
# anomalies go to every channel; the others to the first channel in `channels` order that takes them, the next one
# when it fails. Applied at start (a restart applies changes).
# Priority order; empty: every configured channel in the order ntfy, slack, discord, telegram, email.
# channels = []
# Message language: "en" or "ko".
# locale = "en"
# Milliseconds before each further round when every channel failed (up to 10 % jitter); then NOTIFICATION_FAILED.
# retry_schedule = [1000, 5000, 30000]
# Timeout of one attempt, milliseconds.
# timeout_ms = 10000
# Each channel sends at most rate_limit messages per rate_limit_window_seconds (0: no limit); what it holds back is
# summed up in a digest message as soon as the channel may send again. The kill switch and anomalies are never held.
# rate_limit = 10
# rate_limit_window_seconds = 60
# ntfy: the topic URL (the topic name is a secret of its own on a public server), and an access token if needed.
# ntfy_url = ""
# ntfy_url_file = ""
# ntfy_token = ""
# ntfy_token_file = ""
# Slack incoming webhook URL.
# slack_webhook_url = ""
# slack_webhook_url_file = ""
# Discord webhook URL.
# discord_webhook_url = ""
# discord_webhook_url_file = ""
# Telegram: the bot's token (from @BotFather), the chat to write to (a numeric id or @channel), the Bot API's URL.
# telegram_bot_token = ""
# telegram_bot_token_file = ""
# telegram_chat_id = ""
# telegram_api_url = "https://api.telegram.org"
# Email over SMTP; smtp_tls: "none", "starttls" (port 587) or "tls" (port 465).
# smtp_host = ""
# smtp_port = 587
# smtp_username = ""
# smtp_password = ""
# smtp_password_file = ""
# smtp_from = ""
# smtp_to = []
# smtp_tls = "starttls"
# A channel's own event list instead of the default set (empty: the default set), for example
# (email also told of confirmations) email_events = ["ANOMALY_DETECTED", "KILL_SWITCH_ACTIVATED", "TX_CONFIRMED"]
# ntfy_events = []
# slack_events = []
# discord_events = []
# telegram_events = []
# email_events = []

[rpc]
# One line per EVM network: evm_<network> = "<JSON-RPC URL>". The chain id is read from the node.
# One line per Solana network: solana_<network> = "<JSON-RPC URL>" (native coin SOL, 9 decimals).
# Agents are created on a network by its name, e.g. {"network": "anvil"}.
# This local development node (anvil) is enabled so a fresh daemon works out of the box;
# remove or replace it in production.
evm_anvil = "http://127.0.0.1:8545"
# evm_sepolia = "https://sepolia.example/v1/<api key>"
# The native coin's symbol is looked up by the node's chain id (ETH, POL on Polygon, BNB, ...); set it for a chain
# the registry does not know: native_<network> = "<symbol>".
# native_mychain = "MYC"
# A block explorer per network, for links in notifications: explorer_<network> = "<base URL>".
# explorer_sepolia = "https://sepolia.etherscan.io"
"#;

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
