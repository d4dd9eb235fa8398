//! Chain-side helpers for the end-to-end tests, talking JSON-RPC to anvil directly (never through the daemon):
//! deploy the committed test contracts from anvil's first dev account, fund agents, read balances.

use alloy_primitives::{Address, U256};
use alloy_sol_types::{SolCall, sol};
use serde_json::json;

use super::Anvil;

sol! {
    function transfer(address to, uint256 value) returns (bool);
    function approve(address spender, uint256 value) returns (bool);
    function balanceOf(address owner) returns (uint256);
    function allowance(address owner, address spender) returns (uint256);
    function fail();
    function store(uint256 value);
    function stored() returns (uint256);
}

/// Anvil's first dev account: unlocked and funded, so `eth_sendTransaction` from it needs no key.
pub const DEV_ACCOUNT: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";

const TEST_TOKEN_BIN: &str = include_str!("../../contracts/TestToken.bin");
const REVERTER_BIN: &str = include_str!("../../contracts/Reverter.bin");
const SILENT_TOKEN_BIN: &str = include_str!("../../contracts/SilentToken.bin");

pub fn hex_u256(value: &serde_json::Value) -> U256 {
    let text = value.as_str().unwrap_or_else(|| panic!("not a hex quantity: {value}"));
    U256::from_str_radix(text.trim_start_matches("0x"), 16).expect("hex quantity")
}

impl Anvil {
    /// Sends a transaction from the dev account and returns its receipt (anvil mines at once).
    pub fn send_from_dev(&self, to: Option<&str>, data: &[u8], value: U256) -> serde_json::Value {
        let mut tx =
            json!({"from": DEV_ACCOUNT, "data": format!("0x{}", hex::encode(data)), "value": format!("{value:#x}")});
        if let Some(to) = to {
            tx["to"] = json!(to);
        }
        let hash = self.rpc("eth_sendTransaction", json!([tx]));
        // Anvil mines at once, but the receipt can lag the call's answer by a moment.
        let receipt = super::eventually(10, "the dev transaction's receipt", || {
            let receipt = self.rpc("eth_getTransactionReceipt", json!([hash]));
            (!receipt.is_null()).then_some(receipt)
        });
        assert_eq!(receipt["status"], "0x1", "dev transaction failed: {receipt}");
        receipt
    }

    fn deploy(&self, bin: &str, constructor_args: &[u8]) -> String {
        let mut code = hex::decode(bin.trim()).expect("committed bytecode is hex");
        code.extend_from_slice(constructor_args);
        let receipt = self.send_from_dev(None, &code, U256::ZERO);
        receipt["contractAddress"].as_str().expect("contract address").to_owned()
    }

    /// Deploys the test ERC-20 (6 decimals) with `supply` minted to the dev account.
    pub fn deploy_token(&self, supply: u128) -> String {
        self.deploy(TEST_TOKEN_BIN, &U256::from(supply).to_be_bytes::<32>())
    }

    /// Deploys `SilentToken`: it answers as an ERC-20 (6 decimals, "SLNT") and says `true` to `transfer` and
    /// `approve`, but moves and logs nothing.
    pub fn deploy_silent_token(&self) -> String {
        self.deploy(SILENT_TOKEN_BIN, &[])
    }

    /// Deploys a contract whose `fail()` reverts with "always fails".
    pub fn deploy_reverter(&self) -> String {
        self.deploy(REVERTER_BIN, &[])
    }

    pub fn native_balance(&self, address: &str) -> U256 {
        hex_u256(&self.rpc("eth_getBalance", json!([address, "latest"])))
    }

    pub fn nonce(&self, address: &str) -> u64 {
        u64::try_from(hex_u256(&self.rpc("eth_getTransactionCount", json!([address, "latest"])))).unwrap()
    }

    /// Gives `address` `wei` of native balance.
    pub fn fund(&self, address: &str, wei: u128) {
        self.rpc("anvil_setBalance", json!([address, format!("{:#x}", U256::from(wei))]));
    }

    fn call(&self, to: &str, data: Vec<u8>) -> Vec<u8> {
        let result = self.rpc("eth_call", json!([{"to": to, "data": format!("0x{}", hex::encode(data))}, "latest"]));
        hex::decode(result.as_str().unwrap().trim_start_matches("0x")).unwrap()
    }

    pub fn token_balance(&self, token: &str, owner: &str) -> U256 {
        let owner: Address = owner.parse().unwrap();
        balanceOfCall::abi_decode_returns(&self.call(token, balanceOfCall { owner }.abi_encode())).unwrap()
    }

    pub fn allowance(&self, token: &str, owner: &str, spender: &str) -> U256 {
        let (owner, spender): (Address, Address) = (owner.parse().unwrap(), spender.parse().unwrap());
        allowanceCall::abi_decode_returns(&self.call(token, allowanceCall { owner, spender }.abi_encode())).unwrap()
    }

    /// Moves `amount` tokens from the dev account to `to`.
    pub fn give_tokens(&self, token: &str, to: &str, amount: u128) {
        let data = transferCall { to: to.parse().unwrap(), value: U256::from(amount) }.abi_encode();
        self.send_from_dev(Some(token), &data, U256::ZERO);
    }
}

/// Calldata of `fail()` on the reverter.
pub fn fail_calldata() -> String {
    format!("0x{}", hex::encode(failCall {}.abi_encode()))
}

/// Calldata of `store(value)` on the reverter.
pub fn store_calldata(value: u64) -> String {
    format!("0x{}", hex::encode(storeCall { value: U256::from(value) }.abi_encode()))
}

/// Calldata of an ERC-20 `transfer(to, amount)`.
pub fn transfer_calldata(to: &str, amount: u128) -> String {
    format!("0x{}", hex::encode(transferCall { to: to.parse().unwrap(), value: U256::from(amount) }.abi_encode()))
}

/// Calldata of an ERC-20 `approve(spender, amount)`.
pub fn approve_calldata(spender: &str, amount: U256) -> String {
    format!("0x{}", hex::encode(approveCall { spender: spender.parse().unwrap(), value: amount }.abi_encode()))
}
