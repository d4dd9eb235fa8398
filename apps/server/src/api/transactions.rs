//! Transactions of the calling agent (session token): send, list, read, cancel.
//!
//! The send body is handed to the core as raw JSON: `TxKind::parse` is the one parser of send (and of simulate),
//! so both accept exactly the same inputs and refuse every unknown field or flag (a `dryRun` the route did not
//! understand must never fall through to a real send). The typed shapes below only document that body in the
//! OpenAPI document (`TransactionRequest`, a `oneOf` discriminated by `type`); a test keeps them in step with the
//! core's canonical JSON.
//!
//! A policy denial is the core's `POLICY_DENIED` (403) with `details: {transactionId, reasonCode,
//! matchedPolicyIds}`; the denied request is stored (CANCELLED, `tier: null`) and readable by its id.

use std::borrow::Cow;
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, Union};
use serde_json::Value;
use uuid::Uuid;
use waiaas_core::TxId;
use waiaas_core::domain::{TxKind, TxStatus};
use waiaas_core::policy_engine::Tier;
use waiaas_core::ports::TxRecord;

use super::{ApiTags, page};
use crate::ServerState;
use crate::auth::SessionAuth;
use crate::body::RawJsonBody;
use crate::error::ApiResult;
use crate::wire::{AnyAddress, PageLimit, SolanaAddress, Wire};

// ----- the request body, for the document ---------------------------------------------------------------------

/// An ERC-20 token named by a request.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct TokenRefDto {
    /// The token contract (`0x` + 40 hex digits on EVM, mixed case a valid EIP-55 checksum), or the mint (base58)
    /// on Solana.
    pub address: AnyAddress,
    /// 0 to 36.
    #[oai(validator(maximum(value = "36")))]
    pub decimals: u8,
    /// 1 to 16 characters, e.g. `USDC` (also the key of the USD price table).
    #[oai(validator(min_length = 1, max_length = 16))]
    pub symbol: String,
}

/// One account of a Solana program call, as Solana's `AccountMeta`.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct ProgramAccountDto {
    /// The account's base58 address.
    pub pubkey: SolanaAddress,
    /// Whether it signs; only the agent's own account can. Default false.
    #[oai(skip_serializing_if_is_none)]
    pub signer: Option<bool>,
    /// Whether the instruction may change it. Default false.
    #[oai(skip_serializing_if_is_none)]
    pub writable: Option<bool>,
}

/// Declares each request shape twice: at the top level (with the optional `network`) and as a BATCH
/// instruction (without it: a batch runs on one network).
macro_rules! request_shapes {
    ($(
        $(#[$doc:meta])*
        $top:ident / $leaf:ident { $( $(#[$field_meta:meta])* $field:ident : $ty:ty ),* $(,)? }
    )*) => {$(
        $(#[$doc])*
        #[derive(Object, Debug, Clone, PartialEq)]
        #[oai(rename_all = "camelCase")]
        pub struct $top {
            $( $(#[$field_meta])* pub $field: $ty, )*
            /// A configured network name (`[rpc] evm_<name>`); null or absent: the agent's network.
            #[oai(nullable, skip_serializing_if_is_none)]
            pub network: Option<String>,
        }

        $(#[$doc])*
        ///
        /// Inside a BATCH: no `network` (the batch's applies).
        #[derive(Object, Debug, Clone, PartialEq)]
        #[oai(rename_all = "camelCase")]
        pub struct $leaf {
            $( $(#[$field_meta])* pub $field: $ty, )*
        }
    )*};
}

request_shapes! {
    /// Send the native coin.
    TransferRequest / TransferInstruction {
        /// Recipient (`0x` + 40 hex digits on EVM, mixed case a valid EIP-55 checksum; base58 on Solana).
        to: AnyAddress,
        /// Wei, a decimal string (`^[0-9]+$`).
        #[oai(validator(pattern = "^[0-9]+$"))]
        amount: String,
    }

    /// Send an ERC-20 token (`transfer(to, amount)` on the token contract).
    TokenTransferRequest / TokenTransferInstruction {
        /// Recipient.
        to: AnyAddress,
        /// In the token's smallest unit, a decimal string.
        #[oai(validator(pattern = "^[0-9]+$"))]
        amount: String,
        token: TokenRefDto,
    }

    /// Call a contract.
    ContractCallRequest / ContractCallInstruction {
        /// The contract (the program on Solana).
        to: AnyAddress,
        /// ABI-encoded call data, `0x`-prefixed hex (`0x` for none).
        #[oai(validator(pattern = "^0x([0-9a-fA-F]{2})*$"))]
        calldata: String,
        /// Wei (lamports on Solana) sent with the call, a decimal string; default 0.
        #[oai(validator(pattern = "^[0-9]+$"), skip_serializing_if_is_none)]
        value: Option<String>,
        /// Solana only: the accounts the instruction uses, in order (refused on EVM). A System or SPL Token
        /// instruction is judged as the transfer or approval it performs over these accounts.
        #[oai(nullable, skip_serializing_if_is_none)]
        accounts: Option<Vec<ProgramAccountDto>>,
    }

    /// Let `spender` move up to `amount` of an ERC-20 token (`approve(spender, amount)`); counts toward spending
    /// limits as the exposure it creates.
    ApproveRequest / ApproveInstruction {
        spender: AnyAddress,
        /// In the token's smallest unit, a decimal string.
        #[oai(validator(pattern = "^[0-9]+$"))]
        amount: String,
        token: TokenRefDto,
    }
}

/// Several instructions evaluated by policy as a whole. An EVM externally owned account cannot execute calls
/// atomically, so on EVM networks a BATCH is refused with `VALIDATION_FAILED` (path `type`): send the
/// instructions one by one.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct BatchRequest {
    /// 2 to 20 instructions; a batch cannot contain a batch.
    #[oai(validator(min_items = 2, max_items = 20))]
    pub instructions: Vec<BatchInstruction>,
    /// A configured network name; null or absent: the agent's network.
    #[oai(nullable, skip_serializing_if_is_none)]
    pub network: Option<String>,
}

/// The body of `POST /v1/transactions/send` (and of simulate), selected by `type`. Parsed strictly by the
/// core: an unknown `type`, an unknown field anywhere (e.g. `dryRun`) or a malformed value fails with
/// `VALIDATION_FAILED` and one `details.issues[{path, message}]` per problem; nothing is ignored.
#[derive(Union, Debug, Clone, PartialEq)]
#[oai(one_of, discriminator_name = "type", rename = "TransactionRequest")]
pub enum TransactionRequest {
    #[oai(mapping = "TRANSFER")]
    Transfer(TransferRequest),
    #[oai(mapping = "TOKEN_TRANSFER")]
    TokenTransfer(TokenTransferRequest),
    #[oai(mapping = "CONTRACT_CALL")]
    ContractCall(ContractCallRequest),
    #[oai(mapping = "APPROVE")]
    Approve(ApproveRequest),
    #[oai(mapping = "BATCH")]
    Batch(BatchRequest),
}

/// One instruction of a BATCH, selected by `type` (any type but BATCH).
#[derive(Union, Debug, Clone, PartialEq)]
#[oai(one_of, discriminator_name = "type")]
pub enum BatchInstruction {
    #[oai(mapping = "TRANSFER")]
    Transfer(TransferInstruction),
    #[oai(mapping = "TOKEN_TRANSFER")]
    TokenTransfer(TokenTransferInstruction),
    #[oai(mapping = "CONTRACT_CALL")]
    ContractCall(ContractCallInstruction),
    #[oai(mapping = "APPROVE")]
    Approve(ApproveInstruction),
}

/// A stored request's canonical JSON (`TxKind::to_json`), documented as a [`TransactionRequest`].
#[derive(Debug, Clone, PartialEq)]
pub struct CanonicalRequest(pub Value);

impl Type for CanonicalRequest {
    const IS_REQUIRED: bool = true;
    type RawValueType = Value;
    type RawElementValueType = Value;

    fn name() -> Cow<'static, str> {
        TransactionRequest::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        TransactionRequest::schema_ref()
    }

    fn register(registry: &mut Registry) {
        TransactionRequest::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl ParseFromJSON for CanonicalRequest {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(value @ Value::Object(_)) => Ok(CanonicalRequest(value)),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl ToJSON for CanonicalRequest {
    fn to_json(&self) -> Option<Value> {
        Some(self.0.clone())
    }
}

// ----- responses ------------------------------------------------------------------------------------------------

/// The request's `type`.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TransactionType {
    Transfer,
    TokenTransfer,
    ContractCall,
    Approve,
    Batch,
}

impl TransactionType {
    pub fn of(kind: &TxKind) -> Self {
        match kind {
            TxKind::Transfer { .. } => TransactionType::Transfer,
            TxKind::TokenTransfer { .. } => TransactionType::TokenTransfer,
            TxKind::ContractCall { .. } => TransactionType::ContractCall,
            TxKind::Approve { .. } => TransactionType::Approve,
            TxKind::Batch { .. } => TransactionType::Batch,
        }
    }
}

/// A transaction request and its progress.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct TransactionDto {
    pub id: Uuid,
    pub agent_id: Uuid,
    #[oai(rename = "type")]
    pub tx_type: TransactionType,
    pub status: Wire<TxStatus>,
    /// The policy tier; null for a request denied by policy.
    #[oai(nullable)]
    pub tier: Option<Wire<Tier>>,
    pub network: String,
    /// The counterparty: recipient (TRANSFER, TOKEN_TRANSFER), spender (APPROVE) or contract (CONTRACT_CALL),
    /// EIP-55 checksummed; null for BATCH.
    #[oai(nullable)]
    pub to: Option<String>,
    /// The request's main amount, a decimal string in the smallest unit: `amount` (TRANSFER, TOKEN_TRANSFER,
    /// APPROVE) or `value` (CONTRACT_CALL); null for BATCH.
    #[oai(nullable)]
    pub amount: Option<String>,
    /// The request in canonical form (checksummed addresses, every default filled in).
    pub request: CanonicalRequest,
    /// `0x`-prefixed hash, once signed.
    #[oai(skip_serializing_if_is_none)]
    pub tx_hash: Option<String>,
    /// Why it failed, was cancelled by the system, or was denied.
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<String>,
    /// The structured denial reason of a request denied by policy (e.g. `ADDRESS_NOT_WHITELISTED`).
    #[oai(skip_serializing_if_is_none)]
    pub reason_code: Option<String>,
    /// Not executed before this time (Unix seconds): the DELAY tier's wait, or the backoff before a retry.
    #[oai(skip_serializing_if_is_none)]
    pub execute_after: Option<i64>,
    /// APPROVAL tier: expires at this time unless the owner approves (Unix seconds).
    #[oai(skip_serializing_if_is_none)]
    pub approval_deadline: Option<i64>,
    /// When the owner approved (Unix seconds).
    #[oai(skip_serializing_if_is_none)]
    pub approved_at: Option<i64>,
    /// Failed execution attempts so far (transient chain errors are retried with backoff).
    pub attempts: u32,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// The request's main amount: what TRANSFER, TOKEN_TRANSFER and APPROVE name as `amount`, CONTRACT_CALL as
/// `value`.
fn main_amount(kind: &TxKind) -> Option<String> {
    match kind {
        TxKind::Transfer { amount, .. } | TxKind::TokenTransfer { amount, .. } | TxKind::Approve { amount, .. } => {
            Some(amount.to_string())
        }
        TxKind::ContractCall { value, .. } => Some(value.to_string()),
        TxKind::Batch { .. } => None,
    }
}

impl From<TxRecord> for TransactionDto {
    fn from(record: TxRecord) -> Self {
        TransactionDto {
            id: record.id.as_uuid(),
            agent_id: record.agent_id.as_uuid(),
            tx_type: TransactionType::of(&record.kind),
            status: Wire(record.status),
            tier: record.tier.map(Wire),
            network: record.network,
            to: record.kind.counterparty().map(|a| a.to_string()),
            amount: main_amount(&record.kind),
            request: CanonicalRequest(record.kind.to_json()),
            tx_hash: record.tx_hash,
            error: record.error,
            reason_code: record.reason_code,
            execute_after: record.execute_after.map(|t| t.0),
            approval_deadline: record.approval_deadline.map(|t| t.0),
            approved_at: record.approved_at.map(|t| t.0),
            attempts: record.attempts,
            created_at: record.created_at.0,
            updated_at: record.updated_at.0,
        }
    }
}

#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct TransactionPage {
    pub data: Vec<TransactionDto>,
    /// Pass back as `cursor` to get the next page; null on the last page.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

/// The answer to a send: the rest of the pipeline runs asynchronously; poll `GET /v1/transactions/{id}`.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct SendResultDto {
    pub id: Uuid,
    /// PENDING (INSTANT / NOTIFY: executes next) or QUEUED (DELAY / APPROVAL: waits).
    pub status: Wire<TxStatus>,
}

#[derive(ApiResponse)]
pub enum SendResponse {
    /// Admitted by policy and stored; a denial is the error `POLICY_DENIED` (403) with
    /// `details: {transactionId, reasonCode, matchedPolicyIds}`.
    #[oai(status = 201)]
    Created(Json<SendResultDto>),
}

pub struct TransactionsApi;

#[OpenApi(tag = "ApiTags::Transactions")]
impl TransactionsApi {
    /// Ask the daemon to send a transaction: validated, checked against the kill switch and the agent's status,
    /// tiered by policy (with the reservation of in-flight amounts) in one write, then executed asynchronously.
    #[oai(path = "/v1/transactions/send", method = "post", operation_id = "sendTransaction")]
    async fn send(
        &self,
        auth: SessionAuth,
        state: Data<&Arc<ServerState>>,
        body: RawJsonBody<TransactionRequest>,
    ) -> ApiResult<SendResponse> {
        let record = state.core.send_transaction(&auth.0, &body.into_inner()).await?;
        Ok(SendResponse::Created(Json(SendResultDto { id: record.id.as_uuid(), status: Wire(record.status) })))
    }

    /// The calling agent's transactions, newest first (denied requests included).
    #[oai(path = "/v1/transactions", method = "get", operation_id = "listTransactions")]
    async fn list(
        &self,
        auth: SessionAuth,
        state: Data<&Arc<ServerState>>,
        /// `nextCursor` of the previous page.
        cursor: Query<Option<String>>,
        /// Page size, 1 to 200 (default 50).
        limit: Query<Option<PageLimit>>,
    ) -> ApiResult<Json<TransactionPage>> {
        let result = state.core.list_transactions(&auth.0, cursor.0.as_deref(), limit.0.map(|l| l.0)).await?;
        let (data, next_cursor, has_more) = page(result, TransactionDto::from);
        Ok(Json(TransactionPage { data, next_cursor, has_more }))
    }

    /// One of the calling agent's transactions (another agent's is `TX_NOT_FOUND`).
    #[oai(path = "/v1/transactions/:id", method = "get", operation_id = "getTransaction")]
    async fn get(
        &self,
        auth: SessionAuth,
        state: Data<&Arc<ServerState>>,
        id: Path<Uuid>,
    ) -> ApiResult<Json<TransactionDto>> {
        Ok(Json(state.core.transaction(&auth.0, TxId::from_uuid(id.0)).await?.into()))
    }

    /// Cancel a QUEUED transaction (waiting for its DELAY or for the owner's approval) before it executes; any
    /// other state is `INVALID_STATE_TRANSITION` (once EXECUTING, only the operator can cancel it:
    /// `POST /v1/admin/transactions/{id}/cancel`).
    #[oai(path = "/v1/transactions/:id/cancel", method = "post", operation_id = "cancelTransaction")]
    async fn cancel(
        &self,
        auth: SessionAuth,
        state: Data<&Arc<ServerState>>,
        id: Path<Uuid>,
    ) -> ApiResult<Json<TransactionDto>> {
        Ok(Json(state.core.cancel_transaction(&auth.0, TxId::from_uuid(id.0)).await?.into()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use waiaas_core::domain::{ChainFamily, TxKind};

    use super::*;

    const A: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";

    fn samples() -> Vec<Value> {
        let token = json!({"address": A, "decimals": 6, "symbol": "USDC"});
        vec![
            json!({"type": "TRANSFER", "to": A, "amount": "1"}),
            json!({"type": "TOKEN_TRANSFER", "to": A, "amount": "5", "token": token}),
            json!({"type": "CONTRACT_CALL", "to": A, "calldata": "0xdeadbeef"}),
            json!({"type": "CONTRACT_CALL", "to": A, "calldata": "0x", "value": "7"}),
            json!({"type": "APPROVE", "spender": A, "amount": "5", "token": token}),
            json!({"type": "BATCH", "instructions": [
                {"type": "TRANSFER", "to": A, "amount": "1"},
                {"type": "APPROVE", "spender": A, "amount": "2", "token": token},
            ]}),
        ]
    }

    /// The documented shapes accept what the core accepts and emits: every canonical request (and the same with
    /// `network`) parses as the documented union and renders back unchanged.
    #[test]
    fn documented_request_matches_the_core_parser() {
        for body in samples() {
            let (kind, _) = TxKind::parse(&body, ChainFamily::Evm).unwrap_or_else(|e| panic!("{body}: {e:?}"));
            let canonical = kind.to_json();
            let documented = TransactionRequest::parse_from_json(Some(canonical.clone()))
                .unwrap_or_else(|e| panic!("{canonical}: {}", e.into_message()));
            assert_eq!(documented.to_json(), Some(canonical.clone()), "round trip");
            let mut with_network = canonical.clone();
            with_network["network"] = json!("anvil");
            assert!(TransactionRequest::parse_from_json(Some(with_network.clone())).is_ok(), "{with_network}");
            assert!(TxKind::parse(&with_network, ChainFamily::Evm).is_ok(), "{with_network}");
        }
    }

    /// Each documented variant lists exactly the fields the core allows for that type.
    #[test]
    fn documented_fields_are_the_core_fields() {
        let mut registry = Registry::new();
        TransactionRequest::register(&mut registry);
        for body in samples() {
            let (kind, _) = TxKind::parse(&body, ChainFamily::Evm).expect("sample parses");
            let schema_name = match TransactionType::of(&kind) {
                TransactionType::Transfer => "TransferRequest",
                TransactionType::TokenTransfer => "TokenTransferRequest",
                TransactionType::ContractCall => "ContractCallRequest",
                TransactionType::Approve => "ApproveRequest",
                TransactionType::Batch => "BatchRequest",
            };
            let schema = &registry.schemas[schema_name];
            for (field, _) in &schema.properties {
                // A documented field the core does not know fails as "unknown field".
                let mut probe = kind.to_json();
                if probe.get(*field).is_none() {
                    probe[*field] = json!(null);
                }
                let refused = TxKind::parse(&probe, ChainFamily::Evm).err().and_then(|e| e.details).unwrap_or_default();
                assert!(!refused.to_string().contains("unknown field"), "{schema_name}.{field}: {refused}");
            }
            for key in kind.to_json().as_object().expect("object").keys().filter(|k| *k != "type") {
                assert!(schema.properties.iter().any(|(f, _)| f == key), "{schema_name} lacks {key}");
            }
        }
    }

    #[test]
    fn transaction_dto_names_counterparty_and_main_amount() {
        let kind = TxKind::parse(&samples()[3], ChainFamily::Evm).expect("contract call").0;
        assert_eq!(main_amount(&kind).as_deref(), Some("7"));
        assert_eq!(kind.counterparty().map(|a| a.to_string()).as_deref(), Some(A));
        let batch = TxKind::parse(&samples()[5], ChainFamily::Evm).expect("batch").0;
        assert_eq!((main_amount(&batch), batch.counterparty()), (None, None));
    }
}
