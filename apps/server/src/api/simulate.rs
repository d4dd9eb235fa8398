//! `POST /v1/transactions/simulate` (OPS-01): the same body as send, parsed by the same core parser, answered with
//! a fully typed `SimulationResult`. A policy denial is a 200 with `success: false` and the denial in `policy`;
//! nothing is stored, reserved, counted, signed, sent or emitted (the core's dry-run has no access to any of it).

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};
use waiaas_core::domain::Asset;
use waiaas_core::policy_engine::{PolicyWarning, Tier};
use waiaas_core::services::simulate::{Simulation, WarningSeverity};

use super::ApiTags;
use super::transactions::{TransactionRequest, TransactionType};
use crate::ServerState;
use crate::auth::SessionAuth;
use crate::body::RawJsonBody;
use crate::error::ApiResult;
use crate::wire::Wire;

/// What policy would do with the request.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct SimulatedPolicyDto {
    /// False when a policy denies the request.
    pub allowed: bool,
    /// The tier the request would get (INSTANT when denied).
    pub tier: Wire<Tier>,
    /// Structured denial reason, e.g. `ADDRESS_NOT_WHITELISTED`.
    #[oai(skip_serializing_if_is_none)]
    pub reason_code: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub reason: Option<String>,
    /// Ids of the policies that decided.
    pub matched_policy_ids: Vec<String>,
    /// DELAY tier: how long the request would wait.
    #[oai(skip_serializing_if_is_none)]
    pub delay_seconds: Option<u64>,
    /// APPROVAL lowered to DELAY because the agent has no owner.
    pub downgraded: bool,
    /// Set when the rolling 24 h USD spend would pass the daily limit.
    #[oai(skip_serializing_if_is_none)]
    pub cumulative_warning: Option<String>,
}

/// The fee the transaction would pay.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct FeeDto {
    /// Estimated gas × (current base fee + priority fee), in wei (decimal string).
    pub estimated_fee: String,
    pub fee_symbol: String,
    pub fee_decimals: u8,
    /// Gas limit the transaction would be signed with (estimate plus headroom).
    pub gas_limit: u64,
    /// EIP-1559 max fee per gas, wei (decimal string).
    #[oai(skip_serializing_if_is_none)]
    pub max_fee_per_gas: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub fee_usd: Option<f64>,
}

/// One asset's balance before and after (the native line includes the estimated fee).
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct BalanceChangeDto {
    /// `native` or the token contract address.
    pub asset: String,
    pub symbol: String,
    pub decimals: u8,
    /// Smallest unit, decimal string.
    pub current_balance: String,
    /// Negative decimal string: what leaves the wallet (`-0` when nothing does).
    pub change_amount: String,
    /// Smallest unit, decimal string (0 when the balance does not cover the change).
    pub after_balance: String,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum WarningSeverityDto {
    Info,
    Warning,
    Error,
}

/// A note on the request; an `error` one means the send would not go through.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct SimulationWarningDto {
    /// INSUFFICIENT_BALANCE, INSUFFICIENT_BALANCE_WITH_FEE, SIMULATION_FAILED, HIGH_FEE_RATIO, DELAY_REQUIRED,
    /// APPROVAL_REQUIRED, DOWNGRADED_NO_OWNER, CUMULATIVE_LIMIT_WARNING, ORACLE_PRICE_UNAVAILABLE,
    /// ANOMALY_TIER_RAISED, NOT_A_TOKEN (calldata moves a token the chain says is no ERC-20; its balance change is
    /// left out).
    pub code: String,
    pub message: String,
    pub severity: WarningSeverityDto,
}

/// The on-chain dry run (`eth_call` + `eth_estimateGas` from the agent's address at the latest block).
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct ChainSimulationDto {
    pub success: bool,
    /// The revert reason or the node's message.
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub gas_used: Option<u64>,
}

#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct SimulationMetaDto {
    pub chain: String,
    pub network: String,
    pub transaction_type: TransactionType,
    /// The block the simulation ran against.
    pub block_number: u64,
    pub duration_ms: u64,
}

/// The dry-run's answer. `success` is true only when the real send would be accepted by policy, the on-chain
/// simulation succeeded and no warning has severity `error`.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct SimulationResultDto {
    pub success: bool,
    pub policy: SimulatedPolicyDto,
    pub fee: FeeDto,
    pub balance_changes: Vec<BalanceChangeDto>,
    pub warnings: Vec<SimulationWarningDto>,
    pub simulation: ChainSimulationDto,
    pub meta: SimulationMetaDto,
}

impl From<Simulation> for SimulationResultDto {
    fn from(s: Simulation) -> Self {
        let d = &s.decision;
        let cumulative_warning = d.warnings.iter().find_map(|w| match w {
            PolicyWarning::CumulativeLimit { spent_usd, request_usd, limit_usd } => Some(format!(
                "{spent_usd:.2} USD spent in 24 h + {request_usd:.2} USD exceeds the daily limit of {limit_usd:.2} USD"
            )),
            _ => None,
        });
        SimulationResultDto {
            success: s.success,
            policy: SimulatedPolicyDto {
                allowed: d.allowed,
                tier: Wire(d.tier),
                reason_code: d.reason_code.map(|r| r.as_str().to_owned()),
                reason: d.reason.clone(),
                matched_policy_ids: d.matched_policy_ids.iter().map(ToString::to_string).collect(),
                delay_seconds: d.delay_seconds,
                downgraded: d.downgraded,
                cumulative_warning,
            },
            fee: FeeDto {
                estimated_fee: s.fee.estimated_fee.to_string(),
                fee_symbol: s.fee.asset.symbol.clone(),
                fee_decimals: s.fee.asset.decimals,
                gas_limit: s.fee.gas_limit,
                max_fee_per_gas: Some(s.fee.max_fee_per_gas.to_string()),
                fee_usd: s.fee.fee_usd,
            },
            balance_changes: s
                .balance_changes
                .iter()
                .map(|b| BalanceChangeDto {
                    asset: match b.asset {
                        Asset::Native => "native".to_owned(),
                        Asset::Token(address) => address.to_string(),
                    },
                    symbol: b.symbol.clone(),
                    decimals: b.decimals,
                    current_balance: b.current.to_string(),
                    change_amount: format!("-{}", b.outflow),
                    after_balance: b.after.to_string(),
                })
                .collect(),
            warnings: s
                .warnings
                .iter()
                .map(|w| SimulationWarningDto {
                    code: w.code.to_owned(),
                    message: w.message.clone(),
                    severity: match w.severity {
                        WarningSeverity::Info => WarningSeverityDto::Info,
                        WarningSeverity::Warning => WarningSeverityDto::Warning,
                        WarningSeverity::Error => WarningSeverityDto::Error,
                    },
                })
                .collect(),
            simulation: ChainSimulationDto {
                success: s.simulation.success,
                error: s.simulation.error.clone(),
                gas_used: s.simulation.gas_used,
            },
            meta: SimulationMetaDto {
                chain: s.chain.to_owned(),
                network: s.network.clone(),
                transaction_type: TransactionType::of(&s.kind),
                block_number: s.block_number,
                duration_ms: s.duration_ms,
            },
        }
    }
}

pub struct SimulateApi;

#[OpenApi(tag = "ApiTags::Transactions")]
impl SimulateApi {
    /// Dry-run a transaction: the same gates and policy evaluation as send (read-only), the transaction built
    /// and executed against the chain's latest state from the agent's address, the fee and the balance changes.
    /// Nothing is stored, reserved, counted toward a limit, signed, sent or emitted.
    #[oai(path = "/v1/transactions/simulate", method = "post", operation_id = "simulateTransaction")]
    async fn simulate(
        &self,
        auth: SessionAuth,
        state: Data<&Arc<ServerState>>,
        body: RawJsonBody<TransactionRequest>,
    ) -> ApiResult<Json<SimulationResultDto>> {
        Ok(Json(state.core.simulate_transaction(&auth.0, &body.into_inner()).await?.into()))
    }
}
