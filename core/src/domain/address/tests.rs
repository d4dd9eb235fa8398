//! Parsing and display by chain family: EIP-55 hex on EVM, base58 of 32 bytes on Solana, each family refusing the
//! other's form with a message that says so, and requests parsed for a network's family.

use serde_json::json;

use super::*;
use crate::domain::{Effect, TxKind};

const EVM: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
/// The SPL Token program id.
const SOL: &str = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA";

#[track_caller]
fn check(family: ChainFamily, text: &str, expected: Result<&str, &str>) {
    match (Address::parse(family, text), expected) {
        (Ok(address), Ok(shown)) => {
            assert_eq!(address.family(), family);
            assert_eq!(address.to_string(), shown);
        }
        (Err(message), Err(part)) => assert!(message.contains(part), "{text}: {message:?} should say {part:?}"),
        (got, want) => panic!("{family:?} {text:?}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn evm_addresses_are_hex_with_their_eip55_checksum() {
    check(ChainFamily::Evm, EVM, Ok(EVM));
    check(ChainFamily::Evm, &EVM.to_lowercase(), Ok(EVM));
    check(ChainFamily::Evm, "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", Err("checksum (EIP-55)"));
    check(ChainFamily::Evm, "5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", Err("must start with 0x"));
    check(ChainFamily::Evm, "0x1234", Err("40 hex digits"));
    check(ChainFamily::Evm, SOL, Err("must start with 0x"));
}

#[test]
fn solana_addresses_are_base58_of_32_bytes() {
    check(ChainFamily::Solana, SOL, Ok(SOL));
    check(ChainFamily::Solana, "11111111111111111111111111111111", Ok("11111111111111111111111111111111"));
    // 0, O, I and l are not base58 digits.
    check(ChainFamily::Solana, "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ50A", Err("not a base58 Solana address"));
    check(ChainFamily::Solana, "", Err("decodes to 0"));
    check(ChainFamily::Solana, &bs58::encode([7u8; 20]).into_string(), Err("decodes to 20"));
    check(ChainFamily::Solana, &bs58::encode([7u8; 33]).into_string(), Err("decodes to more"));
    check(ChainFamily::Solana, EVM, Err("base58, not 0x-prefixed hex"));
}

#[test]
fn lists_read_each_entry_by_its_own_form_and_families_never_compare_equal() {
    assert_eq!(Address::parse_any(EVM).unwrap().family(), ChainFamily::Evm);
    assert_eq!(Address::parse_any(SOL).unwrap().family(), ChainFamily::Solana);
    assert!(Address::parse_any("0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed").unwrap_err().contains("EIP-55"));
    assert!(Address::parse_any("not an address").unwrap_err().contains("EVM address"));
    let evm: EvmAddress = EVM.parse().unwrap();
    let mut bytes = [0u8; 32];
    bytes[12..].copy_from_slice(evm.0.as_slice());
    assert_ne!(Address::Evm(evm), Address::Solana(SolanaAddress(bytes)), "same bytes, another family");
    assert_eq!(Address::Solana(SolanaAddress(bytes)).evm(), None);
    assert_eq!(Address::from(evm).evm(), Some(evm));
}

#[test]
fn requests_are_parsed_in_the_family_of_their_network() {
    let transfer = |to: &str| json!({"type": "TRANSFER", "to": to, "amount": "1"});
    let issue = |body, family| TxKind::parse(&body, family).unwrap_err().details.unwrap().to_string();
    assert!(TxKind::parse(&transfer(SOL), ChainFamily::Solana).is_ok());
    assert!(TxKind::parse(&transfer(EVM), ChainFamily::Evm).is_ok());
    let refused = issue(transfer(EVM), ChainFamily::Solana);
    assert!(refused.contains("\"to\"") && refused.contains("not 0x-prefixed hex"), "{refused}");
    let refused = issue(transfer(SOL), ChainFamily::Evm);
    assert!(refused.contains("\"to\"") && refused.contains("must start with 0x"), "{refused}");
    let missing = issue(json!({"type": "TRANSFER", "amount": "1"}), ChainFamily::Solana);
    assert!(missing.contains("required: a base58 address"), "{missing}");
}

#[test]
fn calldata_is_decoded_by_the_family_of_the_called_address() {
    // An ERC-20 `transfer` selector means a token transfer only when an EVM contract is called.
    let erc20_transfer = {
        let mut data = vec![0xa9, 0x05, 0x9c, 0xbb];
        data.extend([0u8; 12]);
        data.extend([0x11; 20]);
        data.extend([0u8; 31]);
        data.push(5);
        data
    };
    let on = |to: Address| TxKind::ContractCall {
        to,
        calldata: erc20_transfer.clone(),
        value: crate::Amount::ZERO,
        accounts: Vec::new(),
    };
    let evm = Address::parse(ChainFamily::Evm, EVM).unwrap();
    assert_eq!(on(evm).effects().len(), 2, "the call and the token transfer it makes");
    let program = Address::parse(ChainFamily::Solana, SOL).unwrap();
    assert_eq!(on(program).effects(), [Effect::ContractCall { contract: program }], "no Solana decoder yet");
}
