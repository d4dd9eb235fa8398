//! `[anomaly]` (OPS-06): detection on/off, the tier floor a finding sets and for how long, the cold start, and
//! per standard rule `aNN_enabled`, `aNN_shadow` and `aNN_<parameter>` for each parameter the rule names in its
//! defaults (`a01_multiplier`, ...). Any other key is refused. Reloaded on SIGHUP.

use waiaas_core::anomaly::{AnomalySettings, standard_rules};
use waiaas_core::domain::Tier;

use super::Raw;

/// The fixed keys of `[anomaly]` besides the per-rule ones.
pub(super) const GENERAL_KEYS: &[&str] =
    &["enabled", "floor_tier", "floor_ttl_seconds", "min_transactions", "min_history_seconds"];

/// The config prefix of a rule id: `A-01` → `a01`.
fn prefix(rule: &str) -> String {
    rule.to_ascii_lowercase().replace('-', "")
}

/// Sets `[anomaly] key` from `raw`; the error does not name the key (the caller does).
pub(super) fn apply(settings: &mut AnomalySettings, key: &str, raw: Raw<'_>) -> Result<(), String> {
    match key {
        "enabled" => settings.enabled = raw.boolean()?,
        "floor_tier" => {
            let text = raw.string()?;
            settings.floor_tier = match Tier::parse(&text.to_ascii_uppercase()) {
                Some(tier @ (Tier::Notify | Tier::Delay | Tier::Approval)) => tier,
                _ => return Err(format!("expected \"NOTIFY\", \"DELAY\" or \"APPROVAL\", found {text:?}")),
            }
        }
        "floor_ttl_seconds" => {
            settings.floor_ttl_seconds = raw.integer("1..=31536000")?;
            if !(1..=31_536_000).contains(&settings.floor_ttl_seconds) {
                return Err("expected an integer 1..=31536000".to_owned());
            }
        }
        "min_transactions" => settings.cold_start.min_transactions = raw.integer(">= 0")?,
        "min_history_seconds" => settings.cold_start.min_history_seconds = raw.integer(">= 0")?,
        _ => return apply_rule(settings, key, raw),
    }
    Ok(())
}

fn apply_rule(settings: &mut AnomalySettings, key: &str, raw: Raw<'_>) -> Result<(), String> {
    for rule in standard_rules() {
        let Some(name) = key.strip_prefix(&prefix(rule.id())).and_then(|rest| rest.strip_prefix('_')) else {
            continue;
        };
        let config = settings.rules.entry(rule.id().to_owned()).or_default();
        match name {
            "enabled" => config.enabled = raw.boolean()?,
            "shadow" => config.shadow = raw.boolean()?,
            param if rule.default_params().get(param).is_some() => config.params.set(param, raw.number()?),
            _ => {
                let known: Vec<String> =
                    rule.default_params().iter().map(|(p, _)| format!("{}_{p}", prefix(rule.id()))).collect();
                return Err(format!(
                    "unknown key; {} takes {}_enabled, {}_shadow, {}",
                    rule.id(),
                    prefix(rule.id()),
                    prefix(rule.id()),
                    known.join(", ")
                ));
            }
        }
        return Ok(());
    }
    Err(format!("unknown key {key:?} in [anomaly]"))
}

/// Every `[anomaly]` key: the general ones, then each standard rule's.
pub(super) fn keys() -> Vec<String> {
    let mut keys: Vec<String> = GENERAL_KEYS.iter().map(|k| (*k).to_owned()).collect();
    for rule in standard_rules() {
        let p = prefix(rule.id());
        keys.push(format!("{p}_enabled"));
        keys.push(format!("{p}_shadow"));
        keys.extend(rule.default_params().iter().map(|(name, _)| format!("{p}_{name}")));
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::super::{Config, DEFAULT_CONFIG_TOML};
    use super::*;

    fn load(toml: &str) -> Result<Config, String> {
        Config::load(Some(("config.toml", toml)), Vec::new()).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_the_core_defaults() {
        assert_eq!(load("").unwrap().anomaly, AnomalySettings::default());
    }

    #[test]
    fn general_and_rule_keys_set_the_settings() {
        let config = load(
            "[anomaly]\nenabled = false\nfloor_tier = \"APPROVAL\"\nfloor_ttl_seconds = 600\nmin_transactions = 3\n\
             min_history_seconds = 60\na01_multiplier = 6.5\na01_min_usd = 10\na02_shadow = true\na05_enabled = false\n",
        )
        .unwrap();
        let anomaly = config.anomaly;
        assert!(!anomaly.enabled);
        assert_eq!((anomaly.floor_tier, anomaly.floor_ttl_seconds), (Tier::Approval, 600));
        assert_eq!((anomaly.cold_start.min_transactions, anomaly.cold_start.min_history_seconds), (3, 60));
        let a01 = &anomaly.rules["A-01"];
        assert_eq!((a01.params.get("multiplier"), a01.params.get("min_usd")), (Some(6.5), Some(10.0)));
        assert!(anomaly.rules["A-02"].shadow && !anomaly.rules["A-05"].enabled);
        let env = [("WAIAAS_ANOMALY_A04_SHARE".to_owned(), "0.9".to_owned())];
        let from_env = Config::load(None, env).unwrap();
        assert_eq!(from_env.anomaly.rules["A-04"].params.get("share"), Some(0.9));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        for (toml, expected) in [
            ("a01_nope = 1", "a01_multiplier"),
            ("a09_enabled = true", "unknown key \"a09_enabled\" in [anomaly]"),
            ("threshold = 2", "unknown key \"threshold\" in [anomaly]"),
            ("floor_tier = \"INSTANT\"", "expected \"NOTIFY\", \"DELAY\" or \"APPROVAL\""),
            ("floor_ttl_seconds = 0", "1..=31536000"),
            ("a02_multiplier = -1", "non-negative"),
            ("a03_shadow = 1", "boolean"),
        ] {
            let error = load(&format!("[anomaly]\n{toml}\n")).unwrap_err();
            assert!(error.contains("[anomaly]") && error.contains(expected), "{toml}: {error}");
        }
    }

    #[test]
    fn every_key_is_in_the_init_file() {
        for key in keys() {
            assert!(DEFAULT_CONFIG_TOML.contains(&format!("# {key} = ")), "{key} missing from the init file");
        }
    }
}
