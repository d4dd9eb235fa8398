//! Building, simulating, sending and tracking Solana transactions (see the crate docs for how they map onto the
//! chain-neutral ports).

use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use solana_compute_budget_interface::ComputeBudgetInstruction;
use solana_hash::Hash;
use solana_instruction::{AccountMeta, Instruction};
use solana_message::Message;
use solana_program_pack::Pack;
use solana_pubkey::Pubkey;
use solana_signature::Signature;
use solana_transaction::Transaction;
use spl_associated_token_account_interface::address::get_associated_token_address;
use spl_associated_token_account_interface::instruction::create_associated_token_account_idempotent;
use spl_token_interface::instruction::TokenInstruction;
use spl_token_interface::state::{Account as TokenAccount, Mint};
use waiaas_core::domain::{Address, SolanaAddress, TokenLog, TxKind};
use waiaas_core::ports::{Broadcast, PreparedTx, SignedTx, SimulationOutcome, TxOnChain};
use waiaas_core::{Amount, Error, ErrorCode, Result};

use crate::rpc::RpcClient;

/// The commitment every read and confirmation uses: voted on by a supermajority, not yet finalized.
pub const COMMITMENT: &str = "confirmed";
/// Compute units asked per instruction of the request (the runtime's default allotment), capped at the
/// transaction maximum.
const UNITS_PER_INSTRUCTION: u32 = 200_000;
const MAX_UNITS: u32 = 1_400_000;
/// Size of an SPL token account: what the rent of an associated token account created for a recipient is for.
const TOKEN_ACCOUNT_LEN: u64 = TokenAccount::LEN as u64;

/// The Solana form of an address; another family is refused with `VALIDATION_FAILED` naming it.
pub fn solana(address: &Address) -> Result<Pubkey> {
    match address {
        Address::Solana(SolanaAddress(bytes)) => Ok(Pubkey::new_from_array(*bytes)),
        other => Err(Error::new(
            ErrorCode::ValidationFailed,
            format!("{other} is a {} address; this network is a Solana one", other.family()),
        )),
    }
}

fn address(pubkey: &Pubkey) -> Address {
    Address::Solana(SolanaAddress(pubkey.to_bytes()))
}

fn amount_u64(amount: Amount, what: &str) -> Result<u64> {
    u64::try_from(amount.0).map_err(|_| {
        Error::new(ErrorCode::ValidationFailed, format!("{what} {amount} does not fit in a Solana amount (u64)"))
    })
}

fn chain_error(message: impl Into<String>) -> Error {
    Error::new(ErrorCode::ChainError, message)
}

#[derive(Deserialize)]
struct WithContext<T> {
    context: Context,
    value: T,
}

#[derive(Deserialize)]
struct Context {
    slot: u64,
}

#[derive(Deserialize)]
struct AccountInfo {
    owner: String,
    /// `[base64 data, "base64"]`.
    data: (String, String),
}

async fn account(client: &RpcClient, pubkey: &Pubkey) -> Result<Option<(Pubkey, Vec<u8>)>> {
    let info: WithContext<Option<AccountInfo>> = client
        .call(
            "getAccountInfo",
            serde_json::json!([pubkey.to_string(), {"encoding": "base64", "commitment": COMMITMENT}]),
        )
        .await?;
    let Some(info) = info.value else { return Ok(None) };
    let owner = Pubkey::from_str(&info.owner).map_err(|_| chain_error("getAccountInfo answered a malformed owner"))?;
    let data = B64.decode(&info.data.0).map_err(|_| chain_error("getAccountInfo answered malformed data"))?;
    Ok(Some((owner, data)))
}

/// The SPL Token mint at `mint`, as the chain holds it; `None` when there is no initialized mint of the SPL Token
/// program there.
pub async fn mint(client: &RpcClient, mint: &Pubkey) -> Result<Option<Mint>> {
    match account(client, mint).await? {
        Some((owner, data)) if owner == spl_token_interface::id() => Ok(Mint::unpack(&data).ok()),
        _ => Ok(None),
    }
}

pub async fn native_balance(client: &RpcClient, owner: Pubkey) -> Result<Amount> {
    let balance: WithContext<u64> =
        client.call("getBalance", serde_json::json!([owner.to_string(), {"commitment": COMMITMENT}])).await?;
    Ok(Amount::from_u128(u128::from(balance.value)))
}

/// The balance of `owner`'s associated token account of `mint` (zero when it has none); `NOT_A_TOKEN` when
/// `mint` is no SPL Token mint.
pub async fn token_balance(client: &RpcClient, mint_key: Pubkey, owner: Pubkey) -> Result<Amount> {
    if mint(client, &mint_key).await?.is_none() {
        return Err(Error::new(ErrorCode::NotAToken, format!("{mint_key} is not an SPL Token mint")));
    }
    let ata = get_associated_token_address(&owner, &mint_key);
    match account(client, &ata).await? {
        Some((program, data)) if program == spl_token_interface::id() => {
            let account = TokenAccount::unpack(&data).map_err(|_| chain_error("malformed token account"))?;
            Ok(Amount::from_u128(u128::from(account.amount)))
        }
        _ => Ok(Amount::ZERO),
    }
}

pub async fn block_height(client: &RpcClient) -> Result<u64> {
    client.call("getBlockHeight", serde_json::json!([{"commitment": COMMITMENT}])).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LatestBlockhash {
    blockhash: String,
    last_valid_block_height: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PrioritizationFee {
    prioritization_fee: u64,
}

/// The instructions of `kind` paid by `from`, and the rent of the accounts they create (part of the fee).
async fn instructions(client: &RpcClient, from: Pubkey, kind: &TxKind) -> Result<(Vec<Instruction>, u64)> {
    let mut out = Vec::new();
    let mut rent = 0u64;
    push_instructions(client, from, kind, &mut out, &mut rent).await?;
    Ok((out, rent))
}

async fn push_instructions(
    client: &RpcClient,
    from: Pubkey,
    kind: &TxKind,
    out: &mut Vec<Instruction>,
    rent: &mut u64,
) -> Result<()> {
    match kind {
        TxKind::Transfer { to, amount } => out.push(solana_system_interface::instruction::transfer(
            &from,
            &solana(to)?,
            amount_u64(*amount, "amount")?,
        )),
        TxKind::TokenTransfer { to, amount, token } => {
            let (mint_key, to) = (solana(&token.address)?, solana(to)?);
            let decimals = mint_decimals(client, &mint_key).await?;
            let (source, destination) =
                (get_associated_token_address(&from, &mint_key), get_associated_token_address(&to, &mint_key));
            if account(client, &destination).await?.is_none() {
                out.push(create_associated_token_account_idempotent(&from, &to, &mint_key, &spl_token_interface::id()));
                *rent = rent.saturating_add(rent_exemption(client, TOKEN_ACCOUNT_LEN).await?);
            }
            out.push(
                spl_token_interface::instruction::transfer_checked(
                    &spl_token_interface::id(),
                    &source,
                    &mint_key,
                    &destination,
                    &from,
                    &[],
                    amount_u64(*amount, "amount")?,
                    decimals,
                )
                .map_err(Error::internal)?,
            );
        }
        TxKind::Approve { spender, amount, token } => {
            let mint_key = solana(&token.address)?;
            let decimals = mint_decimals(client, &mint_key).await?;
            // An allowance beyond what SPL can hold is the largest it can.
            let amount = u64::try_from(amount.0).unwrap_or(u64::MAX);
            out.push(
                spl_token_interface::instruction::approve_checked(
                    &spl_token_interface::id(),
                    &get_associated_token_address(&from, &mint_key),
                    &mint_key,
                    &solana(spender)?,
                    &from,
                    &[],
                    amount,
                    decimals,
                )
                .map_err(Error::internal)?,
            );
        }
        TxKind::ContractCall { to, calldata, value, accounts } => {
            let program = solana(to)?;
            // As the effects say: value goes to `to`, and empty calldata is a plain transfer.
            if *value > Amount::ZERO || calldata.is_empty() {
                out.push(solana_system_interface::instruction::transfer(&from, &program, amount_u64(*value, "value")?));
            }
            if !calldata.is_empty() {
                let mut metas = Vec::with_capacity(accounts.len());
                for account in accounts {
                    let pubkey = solana(&account.pubkey)?;
                    // The daemon holds the agent's key only: another signer could never sign.
                    if account.signer && pubkey != from {
                        return Err(Error::invalid_field(
                            "accounts",
                            format!("{pubkey} cannot sign: only the agent's own account {from} signs its transactions"),
                        ));
                    }
                    metas.push(AccountMeta { pubkey, is_signer: account.signer, is_writable: account.writable });
                }
                out.push(Instruction::new_with_bytes(program, calldata, metas));
            }
        }
        TxKind::Batch { instructions } => {
            for leaf in instructions {
                Box::pin(push_instructions(client, from, leaf, out, rent)).await?;
            }
        }
    }
    Ok(())
}

async fn mint_decimals(client: &RpcClient, mint_key: &Pubkey) -> Result<u8> {
    match mint(client, mint_key).await? {
        Some(mint) => Ok(mint.decimals),
        None => Err(Error::new(ErrorCode::NotAToken, format!("{mint_key} is not an SPL Token mint"))),
    }
}

async fn rent_exemption(client: &RpcClient, len: u64) -> Result<u64> {
    client.call("getMinimumBalanceForRentExemption", serde_json::json!([len, {"commitment": COMMITMENT}])).await
}

/// The median of the recent prioritization fees (micro-lamports per compute unit); 0 when the node has none.
async fn priority_fee(client: &RpcClient) -> Result<u64> {
    let fees: Vec<PrioritizationFee> =
        client.try_call("getRecentPrioritizationFees", serde_json::json!([])).await?.unwrap_or_default();
    let mut fees: Vec<u64> = fees.into_iter().map(|f| f.prioritization_fee).collect();
    fees.sort_unstable();
    Ok(fees.get(fees.len() / 2).copied().unwrap_or(0))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SimulateResult {
    err: Option<serde_json::Value>,
    #[serde(default)]
    logs: Option<Vec<String>>,
}

/// Builds the agent's transaction for `kind` over a recent blockhash and simulates it from the agent's account.
pub async fn prepare(client: &RpcClient, network: &str, from: Pubkey, kind: &TxKind) -> Result<PreparedTx> {
    let (request, rent) = instructions(client, from, kind).await?;
    let units = u32::try_from(request.len()).unwrap_or(u32::MAX).saturating_mul(UNITS_PER_INSTRUCTION).min(MAX_UNITS);
    // Two round trips: the fee price and the blockhash together, then the fee and the simulation of the message.
    let (price, latest) = tokio::try_join!(
        priority_fee(client),
        client.call::<WithContext<LatestBlockhash>>(
            "getLatestBlockhash",
            serde_json::json!([{"commitment": COMMITMENT}])
        ),
    )?;
    let mut all = vec![
        ComputeBudgetInstruction::set_compute_unit_limit(units),
        ComputeBudgetInstruction::set_compute_unit_price(price),
    ];
    all.extend(request);
    let blockhash =
        Hash::from_str(&latest.value.blockhash).map_err(|_| chain_error("getLatestBlockhash answered a bad hash"))?;
    let message = Message::new_with_blockhash(&all, Some(&from), &blockhash);
    let message_bytes = message.serialize();
    let unsigned_tx = Transaction::new_unsigned(message);
    let wire = bincode::serialize(&unsigned_tx).map_err(Error::internal)?;
    let (fee, simulated) = tokio::try_join!(
        client.call::<WithContext<Option<u64>>>(
            "getFeeForMessage",
            serde_json::json!([B64.encode(&message_bytes), {"commitment": COMMITMENT}])
        ),
        client.call::<WithContext<SimulateResult>>(
            "simulateTransaction",
            serde_json::json!([B64.encode(&wire), {
                "encoding": "base64", "sigVerify": false, "commitment": COMMITMENT, "replaceRecentBlockhash": false
            }]),
        ),
    )?;
    let fee = fee.value.ok_or_else(|| chain_error("getFeeForMessage: the blockhash expired meanwhile"))?;
    let total_fee = fee.saturating_add(rent);
    let simulation = match simulated.value.err {
        None => SimulationOutcome { success: true, error: None, gas_used: None, logs: None },
        Some(err) => {
            let last_log = simulated.value.logs.unwrap_or_default().into_iter().rev().find(|l| l.contains("rror"));
            let error = match last_log {
                Some(log) => format!("{err}: {log}"),
                None => err.to_string(),
            };
            SimulationOutcome { success: false, error: Some(error), gas_used: None, logs: None }
        }
    };
    Ok(PreparedTx {
        network: network.to_owned(),
        chain_id: 0,
        nonce: latest.value.last_valid_block_height,
        gas_limit: 1,
        base_fee_per_gas: u128::from(total_fee),
        max_fee_per_gas: u128::from(total_fee),
        max_priority_fee_per_gas: 0,
        unsigned: message_bytes.clone(),
        signing_payload: message_bytes,
        simulation,
        block_number: latest.context.slot,
    })
}

/// The signed transaction: the message with the agent's 64-byte ed25519 signature. Its id is the signature in
/// base58.
pub fn attach_signature(prepared: &PreparedTx, signature: &[u8]) -> Result<SignedTx> {
    let Ok(signature) = <[u8; 64]>::try_from(signature) else {
        return Err(Error::new(
            ErrorCode::KeystoreError,
            format!("a Solana signature has 64 bytes, not {}: the agent's key is not ed25519", signature.len()),
        ));
    };
    let message: Message = bincode::deserialize(&prepared.unsigned).map_err(Error::internal)?;
    let signature = Signature::from(signature);
    let tx = Transaction { signatures: vec![signature], message };
    let raw = bincode::serialize(&tx).map_err(Error::internal)?;
    Ok(SignedTx { raw, hash: signature.to_string() })
}

pub async fn broadcast(client: &RpcClient, signed: &SignedTx) -> Result<Broadcast> {
    let params =
        serde_json::json!([B64.encode(&signed.raw), {"encoding": "base64", "preflightCommitment": COMMITMENT}]);
    match client.try_call::<String>("sendTransaction", params).await? {
        Ok(_) => Ok(Broadcast::Accepted),
        Err(failure) => {
            let text =
                format!("{} {}", failure.message, failure.data.as_ref().map(ToString::to_string).unwrap_or_default());
            if text.contains("BlockhashNotFound") || text.to_lowercase().contains("blockhash not found") {
                Ok(Broadcast::NonceAlreadyUsed)
            } else if text.contains("AlreadyProcessed") || text.contains("already been processed") {
                Ok(Broadcast::Accepted)
            } else {
                Err(chain_error(format!("sendTransaction failed: {}", failure.message))
                    .with_details(serde_json::json!({ "rpcCode": failure.code })))
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignatureStatus {
    slot: u64,
    err: Option<serde_json::Value>,
    confirmation_status: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FetchedTx {
    transaction: FetchedInner,
    meta: Option<FetchedMeta>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FetchedInner {
    message: FetchedMessage,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FetchedMessage {
    account_keys: Vec<String>,
    instructions: Vec<FetchedInstruction>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FetchedInstruction {
    program_id_index: usize,
    accounts: Vec<usize>,
    data: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FetchedMeta {
    #[serde(default)]
    pre_token_balances: Vec<TokenBalance>,
    #[serde(default)]
    post_token_balances: Vec<TokenBalance>,
    #[serde(default)]
    compute_units_consumed: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenBalance {
    mint: String,
    #[serde(default)]
    owner: Option<String>,
    ui_token_amount: UiTokenAmount,
}

#[derive(Deserialize)]
struct UiTokenAmount {
    amount: String,
}

/// Where the transaction with this signature is, at the `confirmed` commitment.
pub async fn status(client: &RpcClient, signature: &str) -> Result<TxOnChain> {
    let statuses: WithContext<Vec<Option<SignatureStatus>>> = client
        .call("getSignatureStatuses", serde_json::json!([[signature], {"searchTransactionHistory": true}]))
        .await?;
    let Some(Some(status)) = statuses.value.into_iter().next() else { return Ok(TxOnChain::Pending { known: false }) };
    if !matches!(status.confirmation_status.as_deref(), Some("confirmed" | "finalized")) {
        return Ok(TxOnChain::Pending { known: true });
    }
    let success = status.err.is_none();
    let (logs, units) = if success { token_logs(client, signature).await? } else { (Vec::new(), 0) };
    Ok(TxOnChain::Included { success, gas_used: units, block_number: status.slot, logs })
}

/// The token movements of a confirmed transaction: each owner's balance change per mint (from its pre and post
/// token balances) as transfers from the owner whose balance fell, every SPL `transfer_checked` it executed as a
/// transfer to its destination token account, and every SPL `approve_checked` as an approval.
async fn token_logs(client: &RpcClient, signature: &str) -> Result<(Vec<TokenLog>, u64)> {
    let fetched: Option<FetchedTx> = client
        .call(
            "getTransaction",
            serde_json::json!([signature, {"encoding": "json", "commitment": COMMITMENT, "maxSupportedTransactionVersion": 0}]),
        )
        .await?;
    let Some(fetched) = fetched else { return Ok((Vec::new(), 0)) };
    let meta = fetched.meta.unwrap_or(FetchedMeta {
        pre_token_balances: Vec::new(),
        post_token_balances: Vec::new(),
        compute_units_consumed: None,
    });
    let mut logs = Vec::new();
    // (mint, owner) -> post - pre
    let mut deltas: Vec<(String, String, i128)> = Vec::new();
    for (balances, sign) in [(&meta.pre_token_balances, -1i128), (&meta.post_token_balances, 1i128)] {
        for balance in balances {
            let Some(owner) = balance.owner.clone() else { continue };
            let amount: i128 = balance.ui_token_amount.amount.parse().unwrap_or(0);
            match deltas.iter_mut().find(|(m, o, _)| *m == balance.mint && *o == owner) {
                Some((_, _, delta)) => *delta += sign * amount,
                None => deltas.push((balance.mint.clone(), owner, sign * amount)),
            }
        }
    }
    let parse = |text: &str| Pubkey::from_str(text).ok();
    for (mint_key, owner, delta) in deltas.iter().filter(|(_, _, d)| *d > 0) {
        let sender = deltas.iter().filter(|(m, _, d)| m == mint_key && *d < 0).min_by_key(|(_, _, d)| *d);
        if let (Some(mint_key), Some(to), Some((_, from, _))) = (parse(mint_key), parse(owner), sender)
            && let Some(from) = parse(from)
        {
            logs.push(TokenLog::Transfer {
                token: address(&mint_key),
                from: address(&from),
                to: address(&to),
                amount: Amount::from_u128(u128::try_from(*delta).unwrap_or(0)),
            });
        }
    }
    // SPL Token and Token-2022 (whose base instructions are SPL Token's).
    let token_programs =
        [spl_token_interface::id(), Pubkey::from_str_const("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")];
    let keys: Vec<Option<Pubkey>> = fetched.transaction.message.account_keys.iter().map(|k| parse(k)).collect();
    let key = |i: Option<&usize>| i.and_then(|i| keys.get(*i).copied().flatten());
    for ix in &fetched.transaction.message.instructions {
        if !key(Some(&ix.program_id_index)).is_some_and(|program| token_programs.contains(&program)) {
            continue;
        }
        let Ok(data) = bs58::decode(&ix.data).into_vec() else { continue };
        let (amount, mint_key, delegate, owner) = match TokenInstruction::unpack(&data) {
            Ok(TokenInstruction::ApproveChecked { amount, .. }) => {
                (amount, key(ix.accounts.get(1)), key(ix.accounts.get(2)), key(ix.accounts.get(3)))
            }
            // A `transfer_checked` the agent called directly names its destination token account, not its owner
            // (which the balance changes above show): that account is what the request's effect names.
            Ok(TokenInstruction::TransferChecked { amount, .. }) => {
                let (mint_key, to, from) = (key(ix.accounts.get(1)), key(ix.accounts.get(2)), key(ix.accounts.get(3)));
                if let (Some(mint_key), Some(to), Some(from)) = (mint_key, to, from) {
                    logs.push(TokenLog::Transfer {
                        token: address(&mint_key),
                        from: address(&from),
                        to: address(&to),
                        amount: Amount::from_u128(u128::from(amount)),
                    });
                }
                continue;
            }
            _ => continue,
        };
        if let (Some(mint_key), Some(delegate), Some(owner)) = (mint_key, delegate, owner) {
            logs.push(TokenLog::Approval {
                token: address(&mint_key),
                owner: address(&owner),
                spender: address(&delegate),
                amount: Amount::from_u128(u128::from(amount)),
            });
        }
    }
    Ok((logs, meta.compute_units_consumed.unwrap_or(0)))
}
