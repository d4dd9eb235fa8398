//! Property tests of the one parser of send and simulate bodies: arbitrary JSON values (and near-valid bodies
//! with fields swapped for arbitrary values) are a request or `VALIDATION_FAILED` with at least one issue,
//! never a panic; and every request survives `to_json` → `parse` / `from_stored` unchanged.

use alloy_primitives::U256;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::super::address::{EvmAddress, SolanaAddress};
use super::super::effect::call_effect;
use super::*;
use crate::error::ErrorCode;

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,24}".prop_map(Value::String),
        "[0-9]{1,90}".prop_map(Value::String),
        "0x[0-9a-fA-F]{0,48}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,10}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn family() -> impl Strategy<Value = ChainFamily> {
    prop::sample::select(ChainFamily::ALL.to_vec())
}

fn address(family: ChainFamily) -> BoxedStrategy<Address> {
    match family {
        ChainFamily::Evm => any::<[u8; 20]>().prop_map(|b| Address::Evm(EvmAddress(b.into()))).boxed(),
        ChainFamily::Solana => any::<[u8; 32]>().prop_map(|b| Address::Solana(SolanaAddress(b))).boxed(),
    }
}

fn amount() -> impl Strategy<Value = Amount> {
    prop_oneof![
        any::<u64>().prop_map(|n| Amount(U256::from(n))),
        any::<[u64; 4]>().prop_map(|limbs| Amount(U256::from_limbs(limbs))),
    ]
}

fn token(family: ChainFamily) -> impl Strategy<Value = TokenRef> {
    (address(family), 0u8..=36, "[A-Za-z0-9.]{1,16}").prop_map(|(address, decimals, symbol)| TokenRef {
        address,
        decimals,
        symbol,
    })
}

/// A single (non-batch) request of `family`; calldata that carries an ERC-20 selector without decoding
/// strictly is refused by design, so it is not generated here.
fn single(family: ChainFamily) -> BoxedStrategy<TxKind> {
    prop_oneof![
        (address(family), amount()).prop_map(|(to, amount)| TxKind::Transfer { to, amount }),
        (address(family), amount(), token(family)).prop_map(|(to, amount, token)| TxKind::TokenTransfer {
            to,
            amount,
            token
        }),
        (address(family), prop::collection::vec(any::<u8>(), 0..72), amount())
            .prop_filter("calldata that decodes strictly", |(to, calldata, _)| call_effect(*to, calldata, &[]).is_ok())
            .prop_map(|(to, calldata, value)| TxKind::ContractCall { to, calldata, value, accounts: Vec::new() }),
        (address(family), amount(), token(family)).prop_map(|(spender, amount, token)| TxKind::Approve {
            spender,
            amount,
            token
        }),
    ]
    .boxed()
}

fn request() -> impl Strategy<Value = (ChainFamily, TxKind)> {
    family().prop_flat_map(|family| {
        let kind = prop_oneof![
            3 => single(family),
            1 => prop::collection::vec(single(family), BATCH_MIN..=BATCH_MAX)
                .prop_map(|instructions| TxKind::Batch { instructions }),
        ];
        (Just(family), kind)
    })
}

/// The outcome of parsing is a request or a validation error naming at least one field.
fn check_outcome(result: Result<(TxKind, Option<String>), Error>) -> Result<(), TestCaseError> {
    if let Err(e) = result {
        prop_assert_eq!(e.code, ErrorCode::ValidationFailed);
        let issues = e.details.as_ref().and_then(|d| d.get("issues")).and_then(Value::as_array);
        prop_assert!(issues.is_some_and(|i| !i.is_empty()), "no issues in {:?}", e);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_json_is_a_request_or_validation_failed(body in json_value(), family in family()) {
        check_outcome(TxKind::parse(&body, family))?;
        check_outcome(TxKind::from_stored(&body))?;
    }

    /// A valid body with one field (at any depth of a batch) replaced by, or added as, an arbitrary value.
    #[test]
    fn near_valid_bodies_are_a_request_or_validation_failed(
        (family, kind) in request(),
        field in "type|to|amount|token|calldata|value|spender|instructions|network|address|decimals|symbol|extra",
        value in json_value(),
        which in any::<prop::sample::Index>(),
    ) {
        let mut body = kind.to_json();
        let target = match body.get_mut("instructions").and_then(Value::as_array_mut) {
            Some(list) if which.index(2) == 0 => {
                let i = which.index(list.len());
                &mut list[i]
            }
            _ => &mut body,
        };
        if let Some(object) = target.as_object_mut() {
            match object.get_mut("token").and_then(Value::as_object_mut) {
                Some(token) if ["address", "decimals", "symbol"].contains(&field.as_str()) => {
                    token.insert(field.clone(), value);
                }
                _ => {
                    object.insert(field.clone(), value);
                }
            }
        }
        check_outcome(TxKind::parse(&body, family))?;
    }

    #[test]
    fn every_request_round_trips_through_its_json((family, kind) in request(), network in proptest::option::of("[a-z-]{1,12}")) {
        let mut body = kind.to_json();
        if let Some(network) = &network {
            body["network"] = json!(network);
        }
        let parsed = TxKind::parse(&body, family);
        prop_assert_eq!(parsed.as_ref().ok(), Some(&(kind.clone(), network.clone())), "{:?}", parsed);
        prop_assert_eq!(TxKind::from_stored(&body).ok(), Some((kind, network)));
    }

    /// A body of the other family's addresses is refused, naming the field.
    #[test]
    fn the_other_familys_addresses_are_refused((family, kind) in request()) {
        let other = if family == ChainFamily::Evm { ChainFamily::Solana } else { ChainFamily::Evm };
        let err = TxKind::parse(&kind.to_json(), other).unwrap_err();
        prop_assert_eq!(err.code, ErrorCode::ValidationFailed);
    }
}
