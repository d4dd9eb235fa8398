//! Building, simulating, signing-attachment and tracking of EIP-1559 transactions. Independent RPC calls of one
//! preparation run concurrently (nonce, fees, block, `eth_call`, `eth_estimateGas`); the simulation always runs
//! from the agent's own address, so ERC-20 calls see the real sender.
//!
//! Every number a node answers (nonce, gas, fees, block numbers) is untrusted: it is read into a type that holds
//! any value the wire format allows, narrowed with a checked conversion, and combined only with checked or
//! saturating arithmetic, so a hostile node's extreme answer is an error or a clamped value, never a panic or a wrap.

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, Bytes, Signature, TxKind as CallKind, U64, U256};
use alloy_sol_types::{SolCall, sol};
use serde::Deserialize;
use waiaas_core::domain::{Address as AnyAddress, Effect, EvmAddress, TxKind};
use waiaas_core::error::Issue;
use waiaas_core::ports::{Broadcast, PreparedTx, SignedTx, SimulationOutcome, TokenLog, TokenMetadata, TxOnChain};
use waiaas_core::{Amount, Error, ErrorCode, Result};

use crate::rpc::{RpcClient, RpcFailure};

sol! {
    function transfer(address to, uint256 value) returns (bool);
    function approve(address spender, uint256 value) returns (bool);
    function balanceOf(address owner) returns (uint256);
    function decimals() returns (uint8);
    function symbol() returns (string);
}

/// Gas headroom over the node's estimate, in percent.
const GAS_HEADROOM_PERCENT: u64 = 20;
/// Gas limit used to price a transaction whose estimate failed (it will not be sent).
const FALLBACK_GAS_LIMIT: u64 = 21_000;

/// The EVM address of `address`; another family's address is refused (`VALIDATION_FAILED`, naming the family):
/// the core parses a request in its network's family, so one reaching this adapter is a composition error.
pub fn evm(address: &AnyAddress) -> Result<EvmAddress> {
    match address {
        AnyAddress::Evm(address) => Ok(*address),
        AnyAddress::Solana(_) => Err(Error::new(
            ErrorCode::ValidationFailed,
            format!("{address} is a {} address; an EVM network takes 0x-prefixed hex addresses", address.family()),
        )),
    }
}

/// The call an EVM transaction makes for a request: destination, value, calldata.
pub fn call_of(kind: &TxKind) -> Result<(Address, U256, Bytes)> {
    Ok(match kind {
        TxKind::Transfer { to, amount } => (evm(to)?.0, amount.0, Bytes::new()),
        TxKind::TokenTransfer { to, amount, token } => {
            let call = transferCall { to: evm(to)?.0, value: amount.0 };
            (evm(&token.address)?.0, U256::ZERO, call.abi_encode().into())
        }
        TxKind::Approve { spender, amount, token } => {
            let call = approveCall { spender: evm(spender)?.0, value: amount.0 };
            (evm(&token.address)?.0, U256::ZERO, call.abi_encode().into())
        }
        TxKind::ContractCall { to, calldata, value, .. } => (evm(to)?.0, value.0, Bytes::from(calldata.clone())),
        TxKind::Batch { .. } => {
            return Err(Error::validation(vec![Issue {
                path: "type".into(),
                message: "BATCH is not supported on EVM networks: an externally owned account cannot execute \
                          several calls atomically; send the instructions one by one"
                    .into(),
            }]));
        }
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Block {
    number: U64,
    base_fee_per_gas: Option<U256>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Receipt {
    status: Option<U64>,
    gas_used: U64,
    block_number: U64,
    #[serde(default)]
    logs: Vec<Log>,
}

#[derive(Deserialize)]
struct Log {
    address: Address,
    #[serde(default)]
    topics: Vec<B256>,
    #[serde(default)]
    data: Bytes,
}

sol! {
    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);
}

/// The ERC-20 `Transfer` and `Approval` events among a receipt's logs (three topics, a 32-byte value); anything
/// else, or anything malformed, is not a token movement and is skipped.
fn token_logs(logs: &[Log]) -> Vec<TokenLog> {
    use alloy_sol_types::SolEvent;
    let address = |topic: &B256| AnyAddress::Evm(EvmAddress(Address::from_word(*topic)));
    logs.iter()
        .filter(|log| log.topics.len() == 3 && log.data.len() == 32)
        .filter_map(|log| {
            let token = AnyAddress::Evm(EvmAddress(log.address));
            let amount = Amount(U256::from_be_slice(&log.data));
            let (first, second) = (address(&log.topics[1]), address(&log.topics[2]));
            if log.topics[0] == Transfer::SIGNATURE_HASH {
                Some(TokenLog::Transfer { token, from: first, to: second, amount })
            } else if log.topics[0] == Approval::SIGNATURE_HASH {
                Some(TokenLog::Approval { token, owner: first, spender: second, amount })
            } else {
                None
            }
        })
        .collect()
}

/// The gas limit for a node's estimate: the estimate plus [`GAS_HEADROOM_PERCENT`], clamped to `u64::MAX`.
fn gas_limit_for(estimate: u64) -> u64 {
    // Widened first: u64::MAX × 120 fits in a u128 by far.
    let padded = u128::from(estimate) * u128::from(100 + GAS_HEADROOM_PERCENT) / 100;
    u64::try_from(padded).unwrap_or(u64::MAX)
}

fn to_u128(value: U256, what: &str) -> Result<u128> {
    u128::try_from(value).map_err(|_| Error::new(ErrorCode::ChainError, format!("{what} out of range")))
}

/// The revert reason in a node's error answer: the decoded `Error(string)` of its data, else its message.
fn revert_reason(failure: &RpcFailure) -> String {
    let data = failure
        .data
        .as_ref()
        .and_then(|d| d.as_str())
        .and_then(|hex_text| hex::decode(hex_text.trim_start_matches("0x")).ok());
    data.as_deref().and_then(alloy_sol_types::decode_revert_reason).unwrap_or_else(|| failure.message.clone())
}

pub async fn chain_id(client: &RpcClient) -> Result<u64> {
    let id: U64 = client.call("eth_chainId", serde_json::json!([])).await?;
    Ok(id.saturating_to())
}

/// `balanceOf(owner)` of `token` on `network`. An address the chain says is no ERC-20 is `NOT_A_TOKEN` (final):
/// no code there (the call answers empty data), `balanceOf` reverts, or it answers something that is not one
/// `uint256`. Only a transport failure or another node error stays `CHAIN_ERROR` (retryable).
pub async fn token_balance(client: &RpcClient, network: &str, token: EvmAddress, owner: EvmAddress) -> Result<Amount> {
    let data: Bytes = balanceOfCall { owner: owner.0 }.abi_encode().into();
    let answer = client.try_call::<Bytes>("eth_call", serde_json::json!([{"to": token.0, "data": data}, "latest"]));
    let not_a_token = |why: String| {
        Error::new(ErrorCode::NotAToken, format!("{token} is not an ERC-20 token on network {network}: {why}"))
            .with_details(serde_json::json!({ "token": token.to_string(), "network": network }))
    };
    match answer.await? {
        Ok(result) if result.is_empty() => Err(not_a_token("no contract answers there".into())),
        Ok(result) => balanceOfCall::abi_decode_returns_validate(&result)
            .map(Amount)
            .map_err(|_| not_a_token("its balanceOf answer is not a uint256".into())),
        Err(failure) if is_revert(&failure) => {
            Err(not_a_token(format!("balanceOf reverts ({})", revert_reason(&failure))))
        }
        Err(failure) => Err(node_failed(network, "eth_call", &failure)),
    }
}

/// `CHAIN_ERROR` (retryable) for a node's error answer that is not the call failing: the node's code in the
/// details, its message named with the network and method.
fn node_failed(network: &str, method: &str, failure: &RpcFailure) -> Error {
    Error::new(ErrorCode::ChainError, format!("the node on network {network} failed {method}: {}", failure.message))
        .with_details(serde_json::json!({ "rpcCode": failure.code }))
}

/// Whether a node's error answer to `eth_call` is the call reverting (code 3, or geth's and anvil's
/// "execution reverted" message for a revert without data), rather than the node failing.
fn is_revert(failure: &RpcFailure) -> bool {
    failure.code == 3 || failure.message.to_lowercase().contains("revert")
}

/// Whether a node's error answer to `eth_call` or `eth_estimateGas` says the node could not run the call, as
/// opposed to the call failing (a revert, insufficient funds, out of gas): the state it was asked for is gone or
/// not there (anvil's `BlockOutOfRangeError` when a new block pruned the one "latest" named, geth's "header not
/// found" and "missing trie node"), or EIP-1474's resource-not-found, resource-unavailable and limit-exceeded
/// codes, or JSON-RPC's internal error.
fn node_could_not_run(failure: &RpcFailure) -> bool {
    const STATE_GONE: [&str; 5] =
        ["blockoutofrange", "block out of range", "header not found", "missing trie node", "unknown block"];
    let message = failure.message.to_lowercase();
    matches!(failure.code, -32001 | -32002 | -32005 | -32603) || STATE_GONE.iter().any(|m| message.contains(m))
}

/// `decimals()` and `symbol()` of `token`, asked concurrently; `None` when the contract does not answer
/// `decimals()` as an ERC-20 (it reverts, or an address without code answers empty data, which does not decode).
/// Any other error answer is the node failing, `CHAIN_ERROR`: a node's hiccup must not refuse a request as "not
/// an ERC-20".
pub async fn token_metadata(client: &RpcClient, network: &str, token: EvmAddress) -> Result<Option<TokenMetadata>> {
    let ask = |data: Vec<u8>| {
        let data: Bytes = data.into();
        client.try_call::<Bytes>("eth_call", serde_json::json!([{"to": token.0, "data": data}, "latest"]))
    };
    let (decimals, symbol) = tokio::join!(ask(decimalsCall {}.abi_encode()), ask(symbolCall {}.abi_encode()));
    let answered = |answer: std::result::Result<Bytes, RpcFailure>| match answer {
        Ok(data) => Ok(Some(data)),
        Err(failure) if is_revert(&failure) => Ok(None),
        Err(failure) => Err(node_failed(network, "eth_call", &failure)),
    };
    let Some(answer) = answered(decimals?)? else { return Ok(None) };
    let Ok(decimals) = decimalsCall::abi_decode_returns_validate(&answer) else { return Ok(None) };
    let symbol = answered(symbol?)?
        .and_then(|answer| symbolCall::abi_decode_returns_validate(&answer).ok())
        .filter(|s| !s.is_empty());
    Ok(Some(TokenMetadata { decimals, symbol }))
}

/// Builds and simulates the transaction for `kind` from `from`.
pub async fn prepare(
    client: &RpcClient,
    network: &str,
    chain_id: u64,
    from: EvmAddress,
    kind: &TxKind,
) -> Result<PreparedTx> {
    let (to, value, input) = call_of(kind)?;
    let call = serde_json::json!({"from": from.0, "to": to, "value": value, "data": input});
    let token_effect =
        kind.effects().iter().any(|e| matches!(e, Effect::TokenTransfer { .. } | Effect::TokenApproval { .. }));
    let (nonce, block, priority, simulated, estimate, logs) = tokio::join!(
        client.call::<U64>("eth_getTransactionCount", serde_json::json!([from.0, "pending"])),
        client.call::<Block>("eth_getBlockByNumber", serde_json::json!(["latest", false])),
        client.call::<U256>("eth_maxPriorityFeePerGas", serde_json::json!([])),
        client.try_call::<Bytes>("eth_call", serde_json::json!([call, "latest"])),
        client.try_call::<U64>("eth_estimateGas", serde_json::json!([call, "latest"])),
        async {
            match token_effect {
                true => simulated_logs(client, &call).await,
                false => None,
            }
        },
    );
    let (nonce, block, priority) = (nonce?.saturating_to::<u64>(), block?, to_u128(priority?, "priority fee")?);
    let base_fee = to_u128(block.base_fee_per_gas.unwrap_or_default(), "base fee")?;
    let max_fee_per_gas = base_fee.saturating_mul(2).saturating_add(priority);
    let (simulated, estimate) = (simulated?, estimate?);
    // The node could not run the call at all (it lost the block it resolved "latest" to, it is rate-limited, it
    // failed inside): nothing is known about the transaction, so the worker tries again later instead of failing it.
    if let Some(failure) =
        [simulated.as_ref().err(), estimate.as_ref().err()].into_iter().flatten().find(|f| node_could_not_run(f))
    {
        return Err(node_failed(network, "to simulate the transaction", failure));
    }
    let (simulation, gas_limit) = match (simulated, estimate) {
        (Ok(_), Ok(gas)) => {
            let gas = gas.saturating_to::<u64>();
            (SimulationOutcome { success: true, error: None, gas_used: Some(gas), logs }, gas_limit_for(gas))
        }
        (Err(failure), _) | (Ok(_), Err(failure)) => (
            SimulationOutcome { success: false, error: Some(revert_reason(&failure)), gas_used: None, logs: None },
            FALLBACK_GAS_LIMIT,
        ),
    };
    let tx = TxEip1559 {
        chain_id,
        nonce,
        gas_limit,
        max_fee_per_gas,
        max_priority_fee_per_gas: priority,
        to: CallKind::Call(to),
        value,
        access_list: Default::default(),
        input,
    };
    Ok(PreparedTx {
        network: network.to_owned(),
        chain_id,
        nonce,
        gas_limit,
        base_fee_per_gas: base_fee,
        max_fee_per_gas,
        max_priority_fee_per_gas: priority,
        unsigned: serde_json::to_vec(&tx).map_err(Error::internal)?,
        signing_payload: tx.signature_hash().0.to_vec(),
        simulation,
        block_number: block.number.saturating_to(),
    })
}

#[derive(Deserialize)]
struct SimulatedBlock {
    calls: Vec<SimulatedCall>,
}

#[derive(Deserialize)]
struct SimulatedCall {
    status: U64,
    #[serde(default)]
    logs: Vec<Log>,
}

/// The token logs of `call` executed on the latest state (`eth_simulateV1`, without fee or balance validation,
/// so it answers for any sender), or `None` when the node cannot tell: it lacks the method, fails, answers
/// something else, or the call reverted there (the `eth_call` beside it reports that).
async fn simulated_logs(client: &RpcClient, call: &serde_json::Value) -> Option<Vec<TokenLog>> {
    let params = serde_json::json!([{"blockStateCalls": [{"calls": [call]}], "validation": false}, "latest"]);
    let blocks = client.try_call::<Vec<SimulatedBlock>>("eth_simulateV1", params).await.ok()?.ok()?;
    let [block] = blocks.as_slice() else { return None };
    let [call] = block.calls.as_slice() else { return None };
    (call.status.saturating_to::<u64>() == 1).then(|| token_logs(&call.logs))
}

/// Combines the prepared transaction with a 65-byte `r || s || v` signature (v = 0/1 or 27/28).
pub fn attach_signature(prepared: &PreparedTx, signature: &[u8]) -> Result<SignedTx> {
    let tx: TxEip1559 = serde_json::from_slice(&prepared.unsigned).map_err(Error::internal)?;
    let Ok(signature) = <[u8; 65]>::try_from(signature) else {
        return Err(Error::new(
            ErrorCode::KeystoreError,
            format!("an EVM signature has 65 bytes, not {}: the agent's key is not secp256k1", signature.len()),
        ));
    };
    let parity = match signature[64] {
        0 | 27 => false,
        1 | 28 => true,
        other => return Err(Error::internal_msg(format!("signature has recovery byte {other}"))),
    };
    let signature =
        Signature::new(U256::from_be_slice(&signature[..32]), U256::from_be_slice(&signature[32..64]), parity);
    let signed = tx.into_signed(signature);
    let hash: B256 = *signed.hash();
    let envelope = TxEnvelope::from(signed);
    Ok(SignedTx { raw: envelope.encoded_2718(), hash: format!("{hash:#x}") })
}

pub async fn broadcast(client: &RpcClient, signed: &SignedTx) -> Result<Broadcast> {
    let raw = format!("0x{}", hex::encode(&signed.raw));
    match client.try_call::<B256>("eth_sendRawTransaction", serde_json::json!([raw])).await? {
        Ok(_) => Ok(Broadcast::Accepted),
        // The node already has it (a re-broadcast after a lost answer): that is success.
        Err(failure) if failure.message.contains("already known") => Ok(Broadcast::Accepted),
        Err(failure) if failure.message.to_lowercase().contains("nonce too low") => Ok(Broadcast::NonceAlreadyUsed),
        Err(failure) => Err(Error::new(ErrorCode::ChainError, format!("broadcast refused: {}", failure.message))
            .with_details(serde_json::json!({ "rpcCode": failure.code }))),
    }
}

/// `eth_getTransactionCount` at the latest block: the account's transactions included so far (not the pending
/// count that `prepare` builds with).
pub async fn account_nonce(client: &RpcClient, address: EvmAddress) -> Result<u64> {
    let nonce: U64 = client.call("eth_getTransactionCount", serde_json::json!([address.0, "latest"])).await?;
    Ok(nonce.to())
}

pub async fn status(client: &RpcClient, hash: &str) -> Result<TxOnChain> {
    let receipt: Option<Receipt> = client.call("eth_getTransactionReceipt", serde_json::json!([hash])).await?;
    if let Some(receipt) = receipt {
        return Ok(TxOnChain::Included {
            success: receipt.status.is_some_and(|s| s.saturating_to::<u64>() == 1),
            gas_used: receipt.gas_used.saturating_to(),
            block_number: receipt.block_number.saturating_to(),
            logs: token_logs(&receipt.logs),
        });
    }
    let known: Option<serde_json::Value> = client.call("eth_getTransactionByHash", serde_json::json!([hash])).await?;
    Ok(TxOnChain::Pending { known: known.is_some() })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};

    use serde_json::{Value, json};

    use super::*;

    /// A JSON-RPC node on loopback answering each method with a fixed result (`null` for any other method): the
    /// hostile node of these tests. Keep-alive connections are served one request after the other.
    fn fake_node(answers: HashMap<&'static str, Value>) -> RpcClient {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(|s| s.ok()) {
                let answers = answers.clone();
                std::thread::spawn(move || serve(stream, &answers));
            }
        });
        RpcClient::new("ethereum", crate::rpc::METHODS, "hostile".to_owned(), url)
    }

    fn serve(stream: TcpStream, answers: &HashMap<&'static str, Value>) {
        let Ok(read_half) = stream.try_clone() else { return };
        let (mut reader, mut writer) = (BufReader::new(read_half), stream);
        loop {
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                match line.trim_end().split_once(':') {
                    Some((name, value)) if name.eq_ignore_ascii_case("content-length") => {
                        length = value.trim().parse().expect("content-length");
                    }
                    None if line.trim_end().is_empty() => break,
                    _ => {}
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            let request: Value = serde_json::from_slice(&body).expect("a JSON-RPC request");
            let result = request["method"].as_str().and_then(|m| answers.get(m)).cloned().unwrap_or(Value::Null);
            // An answer `{"error": ...}` alone is sent as the JSON-RPC error.
            let answer = match result.as_object().filter(|o| o.len() == 1).and_then(|o| o.get("error")) {
                Some(error) => json!({ "jsonrpc": "2.0", "id": request["id"], "error": error }),
                None => json!({ "jsonrpc": "2.0", "id": request["id"], "result": result }),
            }
            .to_string();
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                answer.len()
            );
            if writer.write_all(head.as_bytes()).and_then(|()| writer.write_all(answer.as_bytes())).is_err() {
                return;
            }
        }
    }

    const U64_MAX: &str = "0xffffffffffffffff";
    const U128_MAX: &str = "0xffffffffffffffffffffffffffffffff";
    const U256_MAX: &str = "0xffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

    /// The answers of a node that puts every number at the top of its range (base fee at u128::MAX, the largest
    /// a transaction can carry).
    fn extreme_answers() -> HashMap<&'static str, Value> {
        HashMap::from([
            ("eth_getTransactionCount", json!(U64_MAX)),
            ("eth_getBlockByNumber", json!({ "number": U64_MAX, "baseFeePerGas": U128_MAX })),
            ("eth_maxPriorityFeePerGas", json!(U128_MAX)),
            ("eth_call", json!("0x")),
            ("eth_estimateGas", json!(U64_MAX)),
        ])
    }

    fn transfer() -> TxKind {
        TxKind::Transfer { to: EvmAddress(Address::repeat_byte(0x22)).into(), amount: Amount(U256::from(1u8)) }
    }

    #[test]
    fn another_familys_address_is_refused_with_its_family_named() {
        let solana = AnyAddress::Solana(waiaas_core::domain::SolanaAddress([7; 32]));
        let refused = call_of(&TxKind::Transfer { to: solana, amount: Amount(U256::from(1u8)) }).unwrap_err();
        assert_eq!(refused.code, ErrorCode::ValidationFailed);
        assert!(refused.message.contains("is a Solana address"), "{}", refused.message);
        assert!(call_of(&transfer()).is_ok());
    }

    #[test]
    fn the_gas_margin_saturates_instead_of_overflowing() {
        #[track_caller]
        fn check(estimate: u64, limit: u64) {
            assert_eq!(gas_limit_for(estimate), limit, "estimate {estimate}");
        }
        check(0, 0);
        check(1, 1);
        check(21_000, 25_200);
        check(u64::MAX / 6 * 5, u64::MAX / 6 * 6);
        check(u64::MAX / 6 * 5 + 6, u64::MAX);
        check(u64::MAX - 1, u64::MAX);
        check(u64::MAX, u64::MAX);
    }

    #[tokio::test]
    async fn a_node_answering_extreme_numbers_is_clamped_not_wrapped() {
        let node = fake_node(extreme_answers());
        let from = EvmAddress(Address::repeat_byte(0x11));
        let prepared = prepare(&node, "hostile", 1, from, &transfer()).await.expect("prepared");
        assert_eq!(prepared.nonce, u64::MAX);
        assert_eq!(prepared.block_number, u64::MAX);
        assert_eq!(prepared.simulation.gas_used, Some(u64::MAX));
        assert_eq!(prepared.gas_limit, u64::MAX);
        assert_eq!(prepared.base_fee_per_gas, u128::MAX);
        assert_eq!(prepared.max_priority_fee_per_gas, u128::MAX);
        assert_eq!(prepared.max_fee_per_gas, u128::MAX);
        assert_eq!(prepared.max_fee(), Amount(U256::from(u64::MAX) * U256::from(u128::MAX)));
        // The transaction built from those numbers still encodes: a signature attaches and raw bytes come out.
        let mut signature = [7u8; 65];
        signature[64] = 27;
        assert!(!attach_signature(&prepared, &signature).expect("signed").raw.is_empty());
    }

    #[tokio::test]
    async fn fees_beyond_what_a_transaction_can_carry_are_a_chain_error() {
        #[track_caller]
        fn assert_chain_error(outcome: Result<PreparedTx>, what: &str) {
            match outcome {
                Err(e) => {
                    assert_eq!(e.code, ErrorCode::ChainError);
                    assert!(e.message.contains(what), "{e}");
                }
                Ok(p) => panic!("{what} of 2^256-1 was accepted: {p:?}"),
            }
        }
        let from = EvmAddress(Address::repeat_byte(0x11));
        let mut answers = extreme_answers();
        answers.insert("eth_getBlockByNumber", json!({ "number": U64_MAX, "baseFeePerGas": U256_MAX }));
        assert_chain_error(prepare(&fake_node(answers), "hostile", 1, from, &transfer()).await, "base fee");
        let mut answers = extreme_answers();
        answers.insert("eth_maxPriorityFeePerGas", json!(U256_MAX));
        assert_chain_error(prepare(&fake_node(answers), "hostile", 1, from, &transfer()).await, "priority fee");
        // A number wider than its field (a 65-bit nonce) is refused as a malformed answer.
        let mut answers = extreme_answers();
        answers.insert("eth_getTransactionCount", json!("0x1ffffffffffffffff"));
        assert_chain_error(prepare(&fake_node(answers), "hostile", 1, from, &transfer()).await, "did not answer");
    }

    #[tokio::test]
    async fn a_receipt_with_extreme_numbers_is_read_as_is() {
        let receipt = json!({ "status": U64_MAX, "gasUsed": U64_MAX, "blockNumber": U64_MAX });
        let node = fake_node(HashMap::from([("eth_getTransactionReceipt", receipt)]));
        let status = status(&node, "0x01").await.expect("status");
        assert_eq!(
            status,
            TxOnChain::Included { success: false, gas_used: u64::MAX, block_number: u64::MAX, logs: Vec::new() }
        );
    }

    #[test]
    fn revert_reasons_are_decoded_from_error_data() {
        let data = "0x08c379a00000000000000000000000000000000000000000000000000000000000000020000000000000000000000000000000000000000000000000000000000000000c616c77617973206661696c730000000000000000000000000000000000000000";
        let failure = RpcFailure { code: 3, message: "execution reverted".into(), data: Some(serde_json::json!(data)) };
        assert_eq!(revert_reason(&failure), "revert: always fails");
        let bare = RpcFailure { code: -32000, message: "out of gas".into(), data: None };
        assert_eq!(revert_reason(&bare), "out of gas");
    }

    #[tokio::test]
    async fn a_balance_answer_that_is_no_uint256_is_not_a_token() {
        let token: EvmAddress = "0x1111111111111111111111111111111111111111".parse().unwrap();
        for answer in ["0x", "0x01"] {
            let node = fake_node(HashMap::from([("eth_call", json!(answer))]));
            let error = token_balance(&node, "hostile", token, token).await.expect_err(answer);
            assert_eq!((error.code, error.info().retryable), (ErrorCode::NotAToken, false), "{answer}: {error}");
            assert!(error.message.contains("hostile"), "names the network: {error}");
        }
    }

    #[test]
    fn a_call_the_node_could_not_run_is_told_from_a_failing_call() {
        let failure = |code: i64, message: &str| RpcFailure { code, message: message.into(), data: None };
        for (code, message) in [
            (-32602, "BlockOutOfRangeError: block height is 14468 but requested was 14467"),
            (-32000, "header not found"),
            (-32000, "missing trie node 1f2e (path ) state 0x1f2e is not available"),
            (-32005, "rate limit exceeded"),
            (-32603, "internal error"),
        ] {
            assert!(node_could_not_run(&failure(code, message)), "{code} {message}");
        }
        for (code, message) in [
            (3, "execution reverted: always fails"),
            (-32000, "execution reverted"),
            (-32003, "Insufficient funds for gas * price + value"),
            (-32000, "insufficient funds for gas * price + value: balance 0"),
            (-32000, "gas required exceeds allowance (30000000)"),
        ] {
            assert!(!node_could_not_run(&failure(code, message)), "{code} {message}");
        }
    }

    #[tokio::test]
    async fn token_metadata_tells_a_revert_from_a_node_failure() {
        let token = EvmAddress(Address::repeat_byte(0x33));
        let revert = json!({"error": {"code": 3, "message": "execution reverted"}});
        let node = fake_node(HashMap::from([("eth_call", revert)]));
        assert_eq!(token_metadata(&node, "anvil", token).await.expect("an answer"), None, "not an ERC-20");
        let lost = json!({"error": {"code": -32602, "message": "BlockOutOfRangeError: block height is 9 but requested was 8"}});
        let node = fake_node(HashMap::from([("eth_call", lost)]));
        let error = token_metadata(&node, "anvil", token).await.expect_err("the node failed");
        assert_eq!((error.code, error.info().retryable), (ErrorCode::ChainError, true), "{error}");
    }

    #[tokio::test]
    async fn preparing_against_a_node_that_lost_its_block_is_retryable() {
        let lost = json!({"code": -32602, "message": "BlockOutOfRangeError: block height is 9 but requested was 8"});
        let node = fake_node(HashMap::from([
            ("eth_getTransactionCount", json!("0x0")),
            ("eth_getBlockByNumber", json!({"number": "0x9", "baseFeePerGas": "0x1"})),
            ("eth_maxPriorityFeePerGas", json!("0x1")),
            ("eth_call", json!({"error": lost})),
            ("eth_estimateGas", json!("0x5208")),
        ]));
        let from = EvmAddress(Address::repeat_byte(0x11));
        let error = prepare(&node, "anvil", 31337, from, &transfer()).await.expect_err("not a simulation result");
        assert_eq!((error.code, error.info().retryable), (ErrorCode::ChainError, true), "{error}");
    }

    #[test]
    fn reverts_are_told_from_node_failures() {
        let failure = |code: i64, message: &str| RpcFailure { code, message: message.into(), data: None };
        assert!(is_revert(&failure(3, "execution reverted: always fails")));
        assert!(is_revert(&failure(-32000, "execution reverted")));
        assert!(!is_revert(&failure(-32000, "header not found")));
        assert!(!is_revert(&failure(-32005, "rate limit exceeded")));
    }
}
