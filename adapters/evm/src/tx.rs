//! Building, simulating, signing-attachment and tracking of EIP-1559 transactions. Independent RPC calls of one
//! preparation run concurrently (nonce, fees, block, `eth_call`, `eth_estimateGas`); the simulation always runs
//! from the agent's own address, so ERC-20 calls see the real sender.

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, Bytes, Signature, TxKind as CallKind, U64, U256};
use alloy_sol_types::{SolCall, sol};
use serde::Deserialize;
use waiaas_core::domain::{EvmAddress, TxKind};
use waiaas_core::error::Issue;
use waiaas_core::ports::{Broadcast, PreparedTx, SignedTx, SimulationOutcome, TxOnChain};
use waiaas_core::{Amount, Error, ErrorCode, Result};

use crate::rpc::{RpcClient, RpcFailure};

sol! {
    function transfer(address to, uint256 value) returns (bool);
    function approve(address spender, uint256 value) returns (bool);
    function balanceOf(address owner) returns (uint256);
}

/// Gas headroom over the node's estimate, in percent.
const GAS_HEADROOM_PERCENT: u64 = 20;
/// Gas limit used to price a transaction whose estimate failed (it will not be sent).
const FALLBACK_GAS_LIMIT: u64 = 21_000;

/// The call an EVM transaction makes for a request: destination, value, calldata.
pub fn call_of(kind: &TxKind) -> Result<(Address, U256, Bytes)> {
    Ok(match kind {
        TxKind::Transfer { to, amount } => (to.0, amount.0, Bytes::new()),
        TxKind::TokenTransfer { to, amount, token } => {
            (token.address.0, U256::ZERO, transferCall { to: to.0, value: amount.0 }.abi_encode().into())
        }
        TxKind::Approve { spender, amount, token } => {
            (token.address.0, U256::ZERO, approveCall { spender: spender.0, value: amount.0 }.abi_encode().into())
        }
        TxKind::ContractCall { to, calldata, value } => (to.0, value.0, Bytes::from(calldata.clone())),
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
}

/// The gas limit for a node's estimate: [`GAS_HEADROOM_PERCENT`] more, saturating (the estimate is the node's
/// answer, and a hostile node can answer anything up to `u64::MAX`).
fn with_headroom(estimate: u64) -> u64 {
    estimate.saturating_add(estimate.saturating_mul(GAS_HEADROOM_PERCENT) / 100)
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
    Ok(id.to())
}

pub async fn token_balance(client: &RpcClient, token: EvmAddress, owner: EvmAddress) -> Result<Amount> {
    let data: Bytes = balanceOfCall { owner: owner.0 }.abi_encode().into();
    let result: Bytes = client.call("eth_call", serde_json::json!([{"to": token.0, "data": data}, "latest"])).await?;
    let balance = balanceOfCall::abi_decode_returns(&result)
        .map_err(|_| Error::new(ErrorCode::ChainError, format!("{token} did not answer balanceOf like an ERC-20")))?;
    Ok(Amount(balance))
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
    let (nonce, block, priority, simulated, estimate) = tokio::join!(
        client.call::<U64>("eth_getTransactionCount", serde_json::json!([from.0, "pending"])),
        client.call::<Block>("eth_getBlockByNumber", serde_json::json!(["latest", false])),
        client.call::<U256>("eth_maxPriorityFeePerGas", serde_json::json!([])),
        client.try_call::<Bytes>("eth_call", serde_json::json!([call, "latest"])),
        client.try_call::<U64>("eth_estimateGas", serde_json::json!([call, "latest"])),
    );
    let (nonce, block, priority) = (nonce?.to::<u64>(), block?, to_u128(priority?, "priority fee")?);
    let base_fee = to_u128(block.base_fee_per_gas.unwrap_or_default(), "base fee")?;
    let max_fee_per_gas = base_fee.saturating_mul(2).saturating_add(priority);
    let (simulation, gas_limit) = match (simulated?, estimate?) {
        (Ok(_), Ok(gas)) => {
            let gas = gas.to::<u64>();
            (SimulationOutcome { success: true, error: None, gas_used: Some(gas) }, with_headroom(gas))
        }
        (Err(failure), _) | (Ok(_), Err(failure)) => (
            SimulationOutcome { success: false, error: Some(revert_reason(&failure)), gas_used: None },
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
        digest: tx.signature_hash().0,
        simulation,
        block_number: block.number.to(),
    })
}

/// Combines the prepared transaction with a 65-byte `r || s || v` signature (v = 0/1 or 27/28).
pub fn attach_signature(prepared: &PreparedTx, signature: [u8; 65]) -> Result<SignedTx> {
    let tx: TxEip1559 = serde_json::from_slice(&prepared.unsigned).map_err(Error::internal)?;
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
            success: receipt.status.is_some_and(|s| s.to::<u64>() == 1),
            gas_used: receipt.gas_used.to(),
            block_number: receipt.block_number.to(),
        });
    }
    let known: Option<serde_json::Value> = client.call("eth_getTransactionByHash", serde_json::json!([hash])).await?;
    Ok(TxOnChain::Pending { known: known.is_some() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gas_headroom_saturates_on_a_hostile_estimate() {
        assert_eq!(with_headroom(100_000), 120_000);
        assert_eq!(with_headroom(0), 0);
        assert_eq!(with_headroom(u64::MAX), u64::MAX);
        assert_eq!(with_headroom(u64::MAX / 2), u64::MAX / 2 + u64::MAX / 100);
    }

    #[test]
    fn revert_reasons_are_decoded_from_error_data() {
        let data = "0x08c379a00000000000000000000000000000000000000000000000000000000000000020000000000000000000000000000000000000000000000000000000000000000c616c77617973206661696c730000000000000000000000000000000000000000";
        let failure = RpcFailure { code: 3, message: "execution reverted".into(), data: Some(serde_json::json!(data)) };
        assert_eq!(revert_reason(&failure), "revert: always fails");
        let bare = RpcFailure { code: -32000, message: "out of gas".into(), data: None };
        assert_eq!(revert_reason(&bare), "out of gas");
    }
}
