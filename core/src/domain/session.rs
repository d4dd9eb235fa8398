//! Sessions: bearer tokens the operator issues to one agent, with optional typed constraints that the policy
//! engine enforces on every request of the session (send and simulate alike).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::address::Address;
use super::effect::EffectKind;
use super::request::Asset;
use crate::error::{Error, Issue};
use crate::{AgentId, Amount, SessionId, UnixSeconds};

/// Limits attached to a session at issue time. Every field narrows what the session may do; an absent field
/// narrows nothing. Judged by what a transaction does ([`crate::domain::Effect`]), like policies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionConstraints {
    /// The kinds of effect allowed (`TRANSFER`, `TOKEN_TRANSFER`, `APPROVE`, `CONTRACT_CALL`).
    pub allowed_types: Option<Vec<EffectKind>>,
    /// Most one request may move or approve per asset, in the asset's smallest unit. An asset not named is not
    /// capped by this constraint.
    pub max_amount_per_tx: Option<Vec<(Asset, Amount)>>,
    /// Recipients, spenders and called contracts allowed.
    pub allowed_recipients: Option<Vec<Address>>,
    /// Networks the session may use.
    pub allowed_networks: Option<Vec<String>>,
    /// Client addresses the token may be used from (Vault's `token_bound_cidrs`); elsewhere it is refused with
    /// `ACCESS_DENIED_IP`.
    pub allowed_cidrs: Option<Vec<ipnet::IpNet>>,
}

/// The wire/storage form: camelCase keys, unknown keys refused.
#[derive(Deserialize, Serialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConstraintsJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    allowed_types: Option<Vec<String>>,
    /// Keys: `native` or a token contract address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_amount_per_tx: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    allowed_recipients: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    allowed_networks: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    allowed_cidrs: Option<Vec<String>>,
}

/// The key of the native coin in `maxAmountPerTx`.
pub const NATIVE_KEY: &str = "native";

impl SessionConstraints {
    /// Parses the operator's JSON; errors name the offending path under `constraints`.
    pub fn parse(value: &serde_json::Value) -> Result<SessionConstraints, Error> {
        let raw =
            ConstraintsJson::deserialize(value).map_err(|e| Error::invalid_field("constraints", e.to_string()))?;
        let mut issues = Vec::new();
        let mut issue = |path: String, message: String| issues.push(Issue { path, message });
        let allowed_types = raw.allowed_types.map(|names| {
            names
                .iter()
                .enumerate()
                .filter_map(|(i, name)| {
                    let kind = EffectKind::parse(name);
                    if kind.is_none() {
                        issue(
                            format!("constraints.allowedTypes[{i}]"),
                            "one of TRANSFER, TOKEN_TRANSFER, APPROVE, CONTRACT_CALL".into(),
                        );
                    }
                    kind
                })
                .collect()
        });
        let max_amount_per_tx = raw.max_amount_per_tx.map(|caps| {
            caps.iter()
                .filter_map(|(key, amount)| {
                    let path = format!("constraints.maxAmountPerTx.{key}");
                    let asset = if key == NATIVE_KEY {
                        Some(Asset::Native)
                    } else {
                        Address::parse_any(key)
                            .map(Asset::Token)
                            .map_err(|_| issue(path.clone(), "key must be \"native\" or a token address".into()))
                            .ok()
                    };
                    let amount = amount.parse::<Amount>().map_err(|e| issue(path, e.to_string())).ok();
                    Some((asset?, amount?))
                })
                .collect()
        });
        let allowed_recipients = raw.allowed_recipients.map(|list| {
            list.iter()
                .enumerate()
                .filter_map(|(i, text)| {
                    Address::parse_any(text).map_err(|m| issue(format!("constraints.allowedRecipients[{i}]"), m)).ok()
                })
                .collect()
        });
        if let Some(networks) = &raw.allowed_networks
            && let Some(i) = networks.iter().position(|n| n.is_empty())
        {
            issue(format!("constraints.allowedNetworks[{i}]"), "must not be empty".into());
        }
        if raw.allowed_cidrs.as_ref().is_some_and(Vec::is_empty) {
            issue("constraints.allowedCidrs".into(), "name at least one CIDR (or leave the field out)".into());
        }
        let allowed_cidrs = raw.allowed_cidrs.map(|list| {
            list.iter()
                .enumerate()
                .filter_map(|(i, text)| {
                    let path = format!("constraints.allowedCidrs[{i}]");
                    crate::acl::parse_cidrs(&path, std::slice::from_ref(text))
                        .map_err(|m| issue(path.clone(), m.trim_start_matches(&format!("{path}: ")).to_owned()))
                        .ok()
                })
                .flatten()
                .collect()
        });
        if !issues.is_empty() {
            return Err(Error::validation(issues));
        }
        Ok(SessionConstraints {
            allowed_types,
            max_amount_per_tx,
            allowed_recipients,
            allowed_networks: raw.allowed_networks,
            allowed_cidrs,
        })
    }

    /// The canonical JSON form, as stored and returned (parses back to the same value).
    pub fn to_json(&self) -> serde_json::Value {
        let raw = ConstraintsJson {
            allowed_types: self.allowed_types.as_ref().map(|k| k.iter().map(|k| k.as_str().to_owned()).collect()),
            max_amount_per_tx: self.max_amount_per_tx.as_ref().map(|caps| {
                caps.iter()
                    .map(|(asset, amount)| {
                        let key = match asset {
                            Asset::Native => NATIVE_KEY.to_owned(),
                            Asset::Token(address) => address.to_string(),
                        };
                        (key, amount.to_string())
                    })
                    .collect()
            }),
            allowed_recipients: self.allowed_recipients.as_ref().map(|l| l.iter().map(ToString::to_string).collect()),
            allowed_networks: self.allowed_networks.clone(),
            allowed_cidrs: self.allowed_cidrs.as_ref().map(|l| l.iter().map(ToString::to_string).collect()),
        };
        serde_json::to_value(raw).unwrap_or_default()
    }
}

/// A session. The token itself is never stored: only its SHA-256 hash.
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    /// The session's id.
    pub id: SessionId,
    /// The agent the session acts for.
    pub agent_id: AgentId,
    /// SHA-256 (hex) of the bearer token; the token itself is never stored.
    pub token_hash: String,
    /// Limits the operator set on this session, on top of the agent's policies.
    pub constraints: Option<SessionConstraints>,
    /// When it was issued.
    pub created_at: UnixSeconds,
    /// When it stops being accepted (moved by each renewal).
    pub expires_at: UnixSeconds,
    /// When it was revoked, if it was.
    pub revoked_at: Option<UnixSeconds>,
    /// How many times it was renewed.
    pub renewal_count: u32,
}

impl Session {
    /// True when neither revoked nor expired at `now`.
    pub fn is_active(&self, now: UnixSeconds) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[track_caller]
    fn check(value: serde_json::Value, error_path: Option<&str>) {
        match (SessionConstraints::parse(&value), error_path) {
            (Ok(parsed), None) => {
                assert_eq!(SessionConstraints::parse(&parsed.to_json()).unwrap(), parsed, "round trip");
            }
            (Err(e), Some(path)) => {
                let text = format!("{} {}", e.message, e.details.map(|d| d.to_string()).unwrap_or_default());
                assert!(text.contains(path), "{text} should name {path}");
            }
            (got, want) => panic!("{value}: got {got:?}, want error at {want:?}"),
        }
    }

    #[test]
    fn constraints_are_typed_and_unknown_keys_refused() {
        check(json!({}), None);
        check(
            json!({"allowedTypes":["TRANSFER"],"maxAmountPerTx":{"native":"100",
                   "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed":"5"},
                   "allowedRecipients":["0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"],"allowedNetworks":["anvil"]}),
            None,
        );
        check(json!({"maxAmount":"100"}), Some("maxAmount"));
        check(json!({"allowedTypes":["SWAP"]}), Some("constraints.allowedTypes[0]"));
        check(json!({"maxAmountPerTx":{"eth":"1"}}), Some("constraints.maxAmountPerTx.eth"));
        check(json!({"maxAmountPerTx":{"native":"-1"}}), Some("constraints.maxAmountPerTx.native"));
        check(json!({"allowedRecipients":["0x12"]}), Some("constraints.allowedRecipients[0]"));
        check(json!({"allowedNetworks":[""]}), Some("constraints.allowedNetworks[0]"));
        check(json!({"allowedTypes":"TRANSFER"}), Some("constraints"));
        check(json!({"allowedCidrs":["10.0.0.0/8", "fd00::/8", "192.0.2.7", "::ffff:192.0.2.8"]}), None);
        check(json!({"allowedCidrs":["10.0.0.0/8", "10.0.0.0/33"]}), Some("constraints.allowedCidrs[1]"));
        check(json!({"allowedCidrs":[]}), Some("constraints.allowedCidrs"));
    }
}
