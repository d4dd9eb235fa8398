//! Transaction requests (the body of send and simulate), typed and validated. Both endpoints parse through
//! [`TxKind::parse`], so they accept exactly the same inputs.

use super::address::{Address, ChainFamily};
use crate::Amount;
use crate::error::{Error, Issue};

/// An ERC-20 token named by a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRef {
    /// The token's contract address (its mint on Solana).
    pub address: Address,
    /// Decimals as the agent wrote them (0..=36); must equal the chain's `decimals()` to be sent.
    pub decimals: u8,
    /// Symbol as the agent wrote it (1 to 16 characters); must equal the chain's `symbol()` when it has one.
    pub symbol: String,
}

/// What the agent asks the daemon to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxKind {
    /// `TRANSFER`: sends the network's native coin.
    Transfer {
        /// The recipient.
        to: Address,
        /// How much, in the native coin's smallest unit (wei for ETH).
        amount: Amount,
    },
    /// `TOKEN_TRANSFER`: an ERC-20 `transfer`.
    TokenTransfer {
        /// The recipient.
        to: Address,
        /// How much, in the token's smallest unit.
        amount: Amount,
        /// The token.
        token: TokenRef,
    },
    /// `CONTRACT_CALL`: calls a contract (a program on Solana); calldata with an ERC-20 selector, or a System /
    /// SPL Token instruction, is judged as the transfer or approval it performs.
    ContractCall {
        /// The contract (program) called.
        to: Address,
        /// The call's input: selector and ABI-encoded arguments on EVM, the instruction data on Solana.
        calldata: Vec<u8>,
        /// Native coin sent with the call, in its smallest unit (zero when the request names none).
        value: Amount,
        /// The accounts a Solana instruction reads and writes, in order; always empty on EVM.
        accounts: Vec<ProgramAccount>,
    },
    /// `APPROVE`: an ERC-20 `approve`.
    Approve {
        /// Who may spend the agent's tokens.
        spender: Address,
        /// The allowance, in the token's smallest unit; at least 2^255 counts as unlimited.
        amount: Amount,
        /// The token.
        token: TokenRef,
    },
    /// `BATCH`: several instructions judged together as one request.
    Batch {
        /// [`BATCH_MIN`]..=[`BATCH_MAX`] instructions, none of them a batch.
        instructions: Vec<TxKind>,
    },
}

/// One account of a Solana program call (`CONTRACT_CALL.accounts[i]`): the instruction's `AccountMeta`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgramAccount {
    /// The account's address.
    pub pubkey: Address,
    /// Whether the account signs; only the agent's own account can (the daemon holds no other key).
    pub signer: bool,
    /// Whether the instruction may change the account.
    pub writable: bool,
}

/// Fewest and most instructions of a BATCH.
pub const BATCH_MIN: usize = 2;
/// Most instructions of a BATCH.
pub const BATCH_MAX: usize = 20;

/// The asset an amount is counted in: the chain's native coin or one ERC-20 contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Asset {
    /// The network's native coin (ETH, POL, ...).
    Native,
    /// A token, by contract address (ERC-20) or mint.
    Token(Address),
}

impl TxKind {
    /// The wire `type`: `TRANSFER`, `TOKEN_TRANSFER`, `CONTRACT_CALL`, `APPROVE` or `BATCH`.
    pub fn type_name(&self) -> &'static str {
        match self {
            TxKind::Transfer { .. } => "TRANSFER",
            TxKind::TokenTransfer { .. } => "TOKEN_TRANSFER",
            TxKind::ContractCall { .. } => "CONTRACT_CALL",
            TxKind::Approve { .. } => "APPROVE",
            TxKind::Batch { .. } => "BATCH",
        }
    }

    /// The beneficiary shown to the operator: recipient, spender or contract.
    pub fn counterparty(&self) -> Option<Address> {
        match self {
            TxKind::Transfer { to, .. } | TxKind::TokenTransfer { to, .. } | TxKind::ContractCall { to, .. } => {
                Some(*to)
            }
            TxKind::Approve { spender, .. } => Some(*spender),
            TxKind::Batch { .. } => None,
        }
    }

    /// The first account a program call (or a batch member) marks as a signer that is not `agent`: the daemon
    /// holds the agent's key only, so such a transaction could never be signed.
    pub fn foreign_signer(&self, agent: Address) -> Option<Address> {
        match self {
            TxKind::ContractCall { accounts, .. } => {
                accounts.iter().find(|a| a.signer && a.pubkey != agent).map(|a| a.pubkey)
            }
            TxKind::Batch { instructions } => instructions.iter().find_map(|leaf| leaf.foreign_signer(agent)),
            TxKind::Transfer { .. } | TxKind::TokenTransfer { .. } | TxKind::Approve { .. } => None,
        }
    }

    /// The canonical JSON body (as [`TxKind::parse`] accepts it), for storage and display.
    pub fn to_json(&self) -> serde_json::Value {
        fn token_json(token: &TokenRef) -> serde_json::Value {
            serde_json::json!({"address": token.address.to_string(), "decimals": token.decimals, "symbol": token.symbol})
        }
        match self {
            TxKind::Transfer { to, amount } => {
                serde_json::json!({"type": "TRANSFER", "to": to.to_string(), "amount": amount.to_string()})
            }
            TxKind::TokenTransfer { to, amount, token } => serde_json::json!({
                "type": "TOKEN_TRANSFER", "to": to.to_string(), "amount": amount.to_string(), "token": token_json(token)
            }),
            TxKind::ContractCall { to, calldata, value, accounts } => {
                let mut body = serde_json::json!({
                    "type": "CONTRACT_CALL", "to": to.to_string(), "calldata": format!("0x{}", hex::encode(calldata)),
                    "value": value.to_string()
                });
                if !accounts.is_empty() {
                    body["accounts"] = accounts
                        .iter()
                        .map(|a| serde_json::json!({"pubkey": a.pubkey.to_string(), "signer": a.signer, "writable": a.writable}))
                        .collect();
                }
                body
            }
            TxKind::Approve { spender, amount, token } => serde_json::json!({
                "type": "APPROVE", "spender": spender.to_string(), "amount": amount.to_string(), "token": token_json(token)
            }),
            TxKind::Batch { instructions } => serde_json::json!({
                "type": "BATCH", "instructions": instructions.iter().map(TxKind::to_json).collect::<Vec<_>>()
            }),
        }
    }

    /// Parses a request body (already JSON) for a network of `family`: its addresses are read in that family's
    /// form. Unknown fields and unknown types are refused, never ignored.
    pub fn parse(body: &serde_json::Value, family: ChainFamily) -> Result<(TxKind, Option<String>), Error> {
        TxKind::parse_as(body, Form::Family(family))
    }

    /// Reads back a body stored by [`TxKind::to_json`] (already checked at admission), each address by its own
    /// form.
    pub fn from_stored(body: &serde_json::Value) -> Result<(TxKind, Option<String>), Error> {
        TxKind::parse_as(body, Form::Own)
    }

    fn parse_as(body: &serde_json::Value, family: Form) -> Result<(TxKind, Option<String>), Error> {
        let mut issues = Vec::new();
        let object = match body.as_object() {
            Some(o) => o,
            None => return Err(Error::invalid_field("body", "must be a JSON object")),
        };
        let network = match object.get("network") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(_) => {
                issues.push(Issue { path: "network".into(), message: "must be a string".into() });
                None
            }
        };
        let kind = parse_kind(body, "", true, family, &mut issues);
        match kind {
            Some(kind) if issues.is_empty() => Ok((kind, network)),
            _ => Err(Error::validation(issues)),
        }
    }
}

/// How the addresses of a body are read: in the family of the request's network, or each by its own form.
#[derive(Clone, Copy)]
enum Form {
    Family(ChainFamily),
    Own,
}

impl Form {
    fn parse(self, text: &str) -> Result<Address, String> {
        match self {
            Form::Family(family) => Address::parse(family, text),
            Form::Own => Address::parse_any(text),
        }
    }

    fn required(self) -> String {
        match self {
            Form::Family(family) => format!("required: {}", family.address_form()),
            Form::Own => "required: an address".into(),
        }
    }
}

fn parse_kind(
    value: &serde_json::Value,
    prefix: &str,
    top: bool,
    family: Form,
    issues: &mut Vec<Issue>,
) -> Option<TxKind> {
    let path = |field: &str| if prefix.is_empty() { field.to_owned() } else { format!("{prefix}.{field}") };
    let Some(object) = value.as_object() else {
        issues.push(Issue {
            path: if prefix.is_empty() { "body".into() } else { prefix.to_owned() },
            message: "must be an object".into(),
        });
        return None;
    };
    let Some(type_name) = object.get("type").and_then(|t| t.as_str()) else {
        issues.push(Issue {
            path: path("type"),
            message: "required: TRANSFER, TOKEN_TRANSFER, CONTRACT_CALL, APPROVE or BATCH".into(),
        });
        return None;
    };
    let allowed: &[&str] = match type_name {
        "TRANSFER" => &["type", "to", "amount"],
        "TOKEN_TRANSFER" => &["type", "to", "amount", "token"],
        "CONTRACT_CALL" => &["type", "to", "calldata", "value", "accounts"],
        "APPROVE" => &["type", "spender", "amount", "token"],
        "BATCH" if top => &["type", "instructions"],
        "BATCH" => {
            issues.push(Issue { path: path("type"), message: "a batch cannot contain a batch".into() });
            return None;
        }
        other => {
            issues.push(Issue { path: path("type"), message: format!("unknown transaction type {other:?}") });
            return None;
        }
    };
    let top_level_extra: &[&str] = if top { &["network"] } else { &[] };
    for key in object.keys() {
        if !allowed.contains(&key.as_str()) && !top_level_extra.contains(&key.as_str()) {
            issues.push(Issue { path: path(key), message: "unknown field".into() });
        }
    }
    let before = issues.len();
    let address = |field: &str, issues: &mut Vec<Issue>| -> Option<Address> {
        match object.get(field).and_then(|v| v.as_str()) {
            Some(text) => family.parse(text).map_err(|m| issues.push(Issue { path: path(field), message: m })).ok(),
            None => {
                issues.push(Issue { path: path(field), message: family.required() });
                None
            }
        }
    };
    let amount = |field: &str, required: bool, issues: &mut Vec<Issue>| -> Option<Amount> {
        match object.get(field) {
            None if !required => Some(Amount::ZERO),
            Some(serde_json::Value::String(text)) => text
                .parse()
                .map_err(|e: crate::amount::AmountError| {
                    issues.push(Issue { path: path(field), message: e.to_string() })
                })
                .ok(),
            _ => {
                issues.push(Issue {
                    path: path(field),
                    message: "required: a decimal string in the smallest unit".into(),
                });
                None
            }
        }
    };
    let token = |issues: &mut Vec<Issue>| -> Option<TokenRef> {
        parse_token(object.get("token"), &path("token"), family, issues)
    };
    let kind = match type_name {
        "TRANSFER" => {
            let (to, amount) = (address("to", issues), amount("amount", true, issues));
            Some(TxKind::Transfer { to: to?, amount: amount? })
        }
        "TOKEN_TRANSFER" => {
            let (to, amount, token) = (address("to", issues), amount("amount", true, issues), token(issues));
            Some(TxKind::TokenTransfer { to: to?, amount: amount?, token: token? })
        }
        "CONTRACT_CALL" => {
            let to = address("to", issues);
            let value = amount("value", false, issues);
            let calldata = match object.get("calldata").and_then(|v| v.as_str()) {
                Some(text) => match text.strip_prefix("0x").map(hex::decode) {
                    Some(Ok(bytes)) => Some(bytes),
                    _ => {
                        issues.push(Issue { path: path("calldata"), message: "must be 0x-prefixed hex".into() });
                        None
                    }
                },
                None => {
                    issues.push(Issue { path: path("calldata"), message: "required: 0x-prefixed hex".into() });
                    None
                }
            };
            let accounts = parse_accounts(object.get("accounts"), &path("accounts"), family, issues);
            let (to, calldata, value, accounts) = (to?, calldata?, value?, accounts?);
            if let Err(super::effect::MalformedCalldata(what)) = super::effect::call_effect(to, &calldata, &accounts) {
                let message = match to {
                    Address::Evm(_) => format!(
                        "carries an ERC-20 selector but does not decode strictly ({what}): refused rather than guessed"
                    ),
                    Address::Solana(_) => format!("{what}: refused rather than guessed"),
                };
                issues.push(Issue { path: path("calldata"), message });
                return None;
            }
            Some(TxKind::ContractCall { to, calldata, value, accounts })
        }
        "APPROVE" => {
            let (spender, amount, token) = (address("spender", issues), amount("amount", true, issues), token(issues));
            Some(TxKind::Approve { spender: spender?, amount: amount?, token: token? })
        }
        _ => {
            let Some(list) = object.get("instructions").and_then(|v| v.as_array()) else {
                issues.push(Issue { path: path("instructions"), message: "required: an array".into() });
                return None;
            };
            if list.len() < BATCH_MIN || list.len() > BATCH_MAX {
                issues.push(Issue {
                    path: path("instructions"),
                    message: format!("must hold {BATCH_MIN} to {BATCH_MAX} instructions"),
                });
            }
            let instructions: Vec<Option<TxKind>> = list
                .iter()
                .enumerate()
                .map(|(i, item)| parse_kind(item, &path(&format!("instructions[{i}]")), false, family, issues))
                .collect();
            Some(TxKind::Batch { instructions: instructions.into_iter().collect::<Option<Vec<_>>>()? })
        }
    };
    if issues.len() > before { None } else { kind }
}

/// The `accounts` of a program call: absent or an array of `{pubkey, signer, writable}`; Solana only.
fn parse_accounts(
    value: Option<&serde_json::Value>,
    path: &str,
    family: Form,
    issues: &mut Vec<Issue>,
) -> Option<Vec<ProgramAccount>> {
    let list = match value {
        None | Some(serde_json::Value::Null) => return Some(Vec::new()),
        Some(serde_json::Value::Array(list)) => list,
        Some(_) => {
            issues.push(Issue {
                path: path.to_owned(),
                message: "must be an array of {pubkey, signer, writable}".into(),
            });
            return None;
        }
    };
    if matches!(family, Form::Family(ChainFamily::Evm)) && !list.is_empty() {
        issues.push(Issue {
            path: path.to_owned(),
            message: "accounts belong to Solana program calls; an EVM call takes calldata only".into(),
        });
        return None;
    }
    let before = issues.len();
    let mut out = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let Some(object) = item.as_object() else {
            issues.push(Issue { path: at, message: "must be {pubkey, signer, writable}".into() });
            continue;
        };
        for key in object.keys() {
            if !["pubkey", "signer", "writable"].contains(&key.as_str()) {
                issues.push(Issue { path: format!("{at}.{key}"), message: "unknown field".into() });
            }
        }
        let pubkey = match object.get("pubkey").and_then(|v| v.as_str()) {
            Some(text) => {
                family.parse(text).map_err(|m| issues.push(Issue { path: format!("{at}.pubkey"), message: m })).ok()
            }
            None => {
                issues.push(Issue { path: format!("{at}.pubkey"), message: family.required() });
                None
            }
        };
        let flag = |name: &str, issues: &mut Vec<Issue>| match object.get(name) {
            None => Some(false),
            Some(serde_json::Value::Bool(b)) => Some(*b),
            Some(_) => {
                issues.push(Issue { path: format!("{at}.{name}"), message: "must be a boolean".into() });
                None
            }
        };
        let (signer, writable) = (flag("signer", issues), flag("writable", issues));
        if let (Some(pubkey), Some(signer), Some(writable)) = (pubkey, signer, writable) {
            out.push(ProgramAccount { pubkey, signer, writable });
        }
    }
    (issues.len() == before).then_some(out)
}

fn parse_token(
    value: Option<&serde_json::Value>,
    path: &str,
    family: Form,
    issues: &mut Vec<Issue>,
) -> Option<TokenRef> {
    let Some(object) = value.and_then(|v| v.as_object()) else {
        issues.push(Issue { path: path.to_owned(), message: "required: {address, decimals, symbol}".into() });
        return None;
    };
    for key in object.keys() {
        if !["address", "decimals", "symbol"].contains(&key.as_str()) {
            issues.push(Issue { path: format!("{path}.{key}"), message: "unknown field".into() });
        }
    }
    // A present address that does not parse (a wrong EIP-55 checksum) says why, like every other address field.
    let address = match object.get("address").and_then(|v| v.as_str()) {
        Some(text) => {
            family.parse(text).map_err(|m| issues.push(Issue { path: format!("{path}.address"), message: m })).ok()
        }
        None => {
            issues.push(Issue { path: format!("{path}.address"), message: family.required() });
            None
        }
    };
    let decimals =
        object.get("decimals").and_then(|v| v.as_u64()).and_then(|d| u8::try_from(d).ok()).filter(|d| *d <= 36);
    // Characters, as the document's `maxLength` counts them (not UTF-8 bytes).
    let symbol = object.get("symbol").and_then(|v| v.as_str()).filter(|s| !s.is_empty() && s.chars().count() <= 16);
    if decimals.is_none() {
        issues.push(Issue { path: format!("{path}.decimals"), message: "required: an integer 0..=36".into() });
    }
    if symbol.is_none() {
        issues.push(Issue { path: format!("{path}.symbol"), message: "required: 1 to 16 characters".into() });
    }
    Some(TokenRef { address: address?, decimals: decimals?, symbol: symbol?.to_owned() })
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const A: &str = "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed";

    #[track_caller]
    fn check(body: serde_json::Value, expected: Result<&str, &str>) {
        match (TxKind::parse(&body, ChainFamily::Evm), expected) {
            (Ok((kind, _)), Ok(type_name)) => assert_eq!(kind.type_name(), type_name),
            (Err(e), Err(path)) => {
                let issues = e.details.unwrap();
                assert!(issues.to_string().contains(path), "{issues} should name {path}");
            }
            (got, want) => panic!("{body}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn parses_every_type_and_refuses_unknown_fields() {
        let token = json!({"address": A, "decimals": 6, "symbol": "USDC"});
        check(json!({"type":"TRANSFER","to":A,"amount":"1"}), Ok("TRANSFER"));
        check(json!({"type":"TRANSFER","to":A,"amount":"1","network":"anvil"}), Ok("TRANSFER"));
        check(json!({"type":"TRANSFER","to":A,"amount":"1","dryRun":true}), Err("dryRun"));
        check(json!({"type":"TRANSFER","to":A,"amount":1}), Err("amount"));
        check(json!({"type":"TRANSFER","to":"0x12","amount":"1"}), Err("to"));
        check(json!({"type":"TOKEN_TRANSFER","to":A,"amount":"5","token":token}), Ok("TOKEN_TRANSFER"));
        check(json!({"type":"TOKEN_TRANSFER","to":A,"amount":"5","token":{"address":A}}), Err("token.decimals"));
        // Found by schemathesis: a symbol of 16 characters is valid however many bytes they take, and a token
        // address with a wrong checksum says so instead of "required".
        let wide = json!({"address": A, "decimals": 6, "symbol": "éééééééééééééééé"});
        check(json!({"type":"TOKEN_TRANSFER","to":A,"amount":"5","token":wide}), Ok("TOKEN_TRANSFER"));
        let bad_checksum =
            json!({"address": "0x5AAeb6053f3e94c9b9a09f33669435e7ef1beaed", "decimals": 6, "symbol": "T"});
        let body = json!({"type":"TOKEN_TRANSFER","to":A,"amount":"5","token":bad_checksum});
        let issues = TxKind::parse(&body, ChainFamily::Evm).unwrap_err().details.unwrap().to_string();
        assert!(issues.contains("checksum") && !issues.contains("required"), "{issues}");
        check(json!({"type":"CONTRACT_CALL","to":A,"calldata":"0xdeadbeef"}), Ok("CONTRACT_CALL"));
        check(json!({"type":"CONTRACT_CALL","to":A,"calldata":"0xa9059cbb"}), Err("calldata"));
        check(json!({"type":"CONTRACT_CALL","to":A,"calldata":"zz"}), Err("calldata"));
        check(json!({"type":"CONTRACT_CALL","to":A,"calldata":"0x01","accounts":[{"pubkey":A}]}), Err("accounts"));
        check(json!({"type":"CONTRACT_CALL","to":A,"calldata":"0x01","accounts":[]}), Ok("CONTRACT_CALL"));
        check(json!({"type":"APPROVE","spender":A,"amount":"5","token":token}), Ok("APPROVE"));
        check(
            json!({"type":"BATCH","instructions":[{"type":"TRANSFER","to":A,"amount":"1"},{"type":"TRANSFER","to":A,"amount":"2"}]}),
            Ok("BATCH"),
        );
        check(json!({"type":"BATCH","instructions":[{"type":"TRANSFER","to":A,"amount":"1"}]}), Err("instructions"));
        check(
            json!({"type":"BATCH","instructions":[{"type":"TRANSFER","to":A,"amount":"1"},{"type":"TRANSFER","to":A,"amount":"1","x":1}]}),
            Err("instructions[1].x"),
        );
        check(
            json!({"type":"BATCH","instructions":[{"type":"BATCH","instructions":[]},{"type":"TRANSFER","to":A,"amount":"1"}]}),
            Err("instructions[0].type"),
        );
        check(json!({"type":"SWAP"}), Err("type"));
        check(json!([1]), Err("body"));
    }

    #[test]
    fn solana_program_calls_carry_their_accounts_and_round_trip() {
        let (program, agent) =
            ("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr", "4Nd1mBQtrMJVYVfKf2PJy9NZUZdTAsp7D4xWLs4gDB4T");
        let body = json!({"type":"CONTRACT_CALL","to":program,"calldata":"0x68",
                          "accounts":[{"pubkey":agent,"signer":true,"writable":true},{"pubkey":program}]});
        let (kind, _) = TxKind::parse(&body, ChainFamily::Solana).unwrap();
        let TxKind::ContractCall { accounts, .. } = &kind else { panic!("{kind:?}") };
        assert_eq!((accounts.len(), accounts[0].signer, accounts[1].writable), (2, true, false));
        assert_eq!(TxKind::from_stored(&kind.to_json()).unwrap().0, kind, "to_json round-trips");
        assert_eq!(kind.foreign_signer(Address::parse(ChainFamily::Solana, agent).unwrap()), None);
        assert!(kind.foreign_signer(Address::parse(ChainFamily::Solana, program).unwrap()).is_some());
        let bad = json!({"type":"CONTRACT_CALL","to":program,"calldata":"0x68","accounts":[{"pubkey":agent,"signer":1,"x":0}]});
        let issues = TxKind::parse(&bad, ChainFamily::Solana).unwrap_err().details.unwrap().to_string();
        assert!(issues.contains("accounts[0].signer") && issues.contains("accounts[0].x"), "{issues}");
    }

    #[test]
    fn outflows_sum_per_asset() {
        let body = json!({"type":"BATCH","instructions":[
            {"type":"TRANSFER","to":A,"amount":"1"},
            {"type":"CONTRACT_CALL","to":A,"calldata":"0x","value":"2"},
            {"type":"TOKEN_TRANSFER","to":A,"amount":"7","token":{"address":A,"decimals":6,"symbol":"T"}}]});
        let (kind, _) = TxKind::parse(&body, ChainFamily::Evm).unwrap();
        assert_eq!(TxKind::parse(&kind.to_json(), ChainFamily::Evm).unwrap().0, kind, "to_json round-trips");
        let flows = kind.outflows();
        assert_eq!(flows[0], (Asset::Native, Amount::from_u128(3)));
        assert_eq!(flows[1].1, Amount::from_u128(7));
    }
}
