//! Transaction dry-run (OPS-01). Simulate runs the same gates and the same decision function as send, on a
//! snapshot it only reads (the anomaly tier floor included), then builds the transaction and executes it against
//! the chain's current state.
//!
//! No side effects, by construction: [`simulate`] is handed only read-only capabilities — the snapshot value,
//! the price oracle and the [`ChainAdapter`] read port (which cannot broadcast). It has no access to the
//! keystore, the broadcaster, the transaction repository or the event sink, so it cannot sign, send, reserve,
//! count toward a limit or emit an event, whatever it does.

use futures_util::future::join_all;

use super::transactions::{Admissible, decide, warning_code};
use super::{SessionPrincipal, Waiaas};
use crate::Amount;
use crate::UnixSeconds;
use crate::domain::{Address, Asset};
use crate::error::{ErrorCode, Result};
use crate::policy_engine::PolicyDefaults;
use crate::policy_engine::{Decision, PolicyWarning, Tier, to_units};
use crate::ports::{AdmissionSnapshot, ChainAdapter, PriceKey, PriceOracle, SimulationOutcome};

/// A fee above this share of the moved native value earns a HIGH_FEE_RATIO warning.
const HIGH_FEE_RATIO: f64 = 0.1;

/// How serious a simulation warning is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WarningSeverity {
    /// Worth knowing, nothing wrong (e.g. the request would wait for a delay or an approval).
    Info,
    /// Worth a look before sending (e.g. a missing price, a high fee, a downgraded tier).
    Warning,
    /// The send would not go through.
    Error,
}

impl WarningSeverity {
    /// The wire name: `info`, `warning` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            WarningSeverity::Info => "info",
            WarningSeverity::Warning => "warning",
            WarningSeverity::Error => "error",
        }
    }
}

/// One finding of the dry-run.
#[derive(Clone, Debug, PartialEq)]
pub struct SimulationWarning {
    /// Stable machine-readable code, e.g. `INSUFFICIENT_BALANCE`, `DELAY_REQUIRED`, `HIGH_FEE_RATIO`.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// How serious it is; any `Error` makes the simulation unsuccessful.
    pub severity: WarningSeverity,
}

/// The network fee a send would pay now.
#[derive(Clone, Debug, PartialEq)]
pub struct FeeEstimate {
    /// Expected fee at the current base fee: estimated gas × (base fee + priority fee), in wei.
    pub estimated_fee: Amount,
    /// The gas limit the transaction would carry.
    pub gas_limit: u64,
    /// EIP-1559 fee cap per gas, in wei: `gas_limit` × this is the most the fee can be.
    pub max_fee_per_gas: u128,
    /// `estimated_fee` in USD; `None` when the native coin has no price.
    pub fee_usd: Option<f64>,
    /// The native coin the fee is paid in.
    pub asset: crate::ports::NativeAsset,
}

/// One asset's balance before and after the request (the fee is included for the native coin).
#[derive(Clone, Debug, PartialEq)]
pub struct BalanceChange {
    /// The asset.
    pub asset: Asset,
    /// Its symbol: the native coin's, or the token's as the chain reports it (its address when it has none).
    pub symbol: String,
    /// Its decimals, to display the amounts (the chain's; 0 when the token's metadata is unknown).
    pub decimals: u8,
    /// The wallet's balance at the latest block, in the asset's smallest unit.
    pub current: Amount,
    /// What leaves the wallet (shown negated on the wire).
    pub outflow: Amount,
    /// `current - outflow`, or zero when the balance does not cover it.
    pub after: Amount,
}

/// The dry-run's verdict on one request.
#[derive(Clone, Debug, PartialEq)]
pub struct Simulation {
    /// True only when send would be accepted by policy, the chain simulation succeeded and no error-severity
    /// warning exists.
    pub success: bool,
    /// The policy decision send would make now (the same decision function, over a read-only snapshot).
    pub decision: Decision,
    /// The estimated network fee.
    pub fee: FeeEstimate,
    /// One entry per asset the request moves whose balance the chain answers; the native coin is always listed.
    pub balance_changes: Vec<BalanceChange>,
    /// What the caller should know before sending.
    pub warnings: Vec<SimulationWarning>,
    /// The chain's execution of the built transaction at `block_number`.
    pub simulation: SimulationOutcome,
    /// The agent's chain family (e.g. `ethereum`).
    pub chain: &'static str,
    /// The network it was simulated on.
    pub network: String,
    /// The request as parsed (its type is `meta.transactionType`).
    pub kind: crate::domain::TxKind,
    /// The latest block when it ran: the state it was simulated against.
    pub block_number: u64,
    /// How long the dry-run took, in milliseconds by the core's clock.
    pub duration_ms: u64,
}

/// Everything the dry-run may read — and nothing it could write with.
pub struct ReadOnly<'a> {
    /// The agent's admission snapshot (policies, reservations, recent requests), read beforehand.
    pub snapshot: &'a AdmissionSnapshot,
    /// USD prices for the policy thresholds and the fee.
    pub prices: &'a dyn PriceOracle,
    /// Chain reads and transaction building; this port cannot broadcast.
    pub chain: &'a dyn ChainAdapter,
    /// The time the policy decision is made at.
    pub now: UnixSeconds,
    /// What holds when no policy of a type is in force.
    pub defaults: &'a PolicyDefaults,
}

fn warn(code: &'static str, severity: WarningSeverity, message: impl Into<String>) -> SimulationWarning {
    SimulationWarning { code, message: message.into(), severity }
}

fn policy_warnings(decision: &Decision) -> Vec<SimulationWarning> {
    let mut warnings = Vec::new();
    if decision.allowed {
        match decision.tier {
            Tier::Delay => warnings.push(warn(
                "DELAY_REQUIRED",
                WarningSeverity::Info,
                format!("the transfer would wait {} s before it executes", decision.delay_seconds.unwrap_or(0)),
            )),
            Tier::Approval => {
                warnings.push(warn("APPROVAL_REQUIRED", WarningSeverity::Info, "the owner must approve the transfer"))
            }
            Tier::Instant | Tier::Notify => {}
        }
        if decision.downgraded {
            warnings.push(warn(
                "DOWNGRADED_NO_OWNER",
                WarningSeverity::Warning,
                "APPROVAL was lowered to DELAY because the agent has no owner",
            ));
        }
    }
    for warning in &decision.warnings {
        let message = match warning {
            PolicyWarning::OraclePriceUnavailable { symbol } => {
                format!("no USD price for {symbol}: the tier is at least NOTIFY")
            }
            PolicyWarning::CumulativeLimit { spent_usd, request_usd, limit_usd } => {
                format!(
                    "{spent_usd:.2} USD spent in 24 h + {request_usd:.2} USD exceeds the daily limit {limit_usd:.2} USD"
                )
            }
            PolicyWarning::AnomalyTierRaised { from, to } => {
                format!("an anomaly detection raised the tier from {} to {}", from.as_str(), to.as_str())
            }
        };
        warnings.push(warn(warning_code(warning), WarningSeverity::Warning, message));
    }
    warnings
}

async fn balance_of(chain: &dyn ChainAdapter, network: &str, owner: Address, asset: Asset) -> Result<Amount> {
    match asset {
        Asset::Native => chain.native_balance(network, owner).await,
        Asset::Token(token) => chain.token_balance(network, token, owner).await,
    }
}

/// The dry-run itself: policy decision on the snapshot, then build + simulate + balances on the chain.
pub async fn simulate(request: &Admissible, inputs: ReadOnly<'_>) -> Result<Simulation> {
    let decision = decide(inputs.snapshot, request, inputs.now, inputs.prices, inputs.defaults);
    let network = request.network.as_str();
    let owner = request.agent.address;
    let mut outflows = request.kind.movements();
    if !outflows.iter().any(|(asset, _)| *asset == Asset::Native) {
        outflows.insert(0, (Asset::Native, Amount::ZERO));
    }
    let prepare = inputs.chain.prepare(network, owner, &request.kind);
    let balances = join_all(outflows.iter().map(|(asset, _)| balance_of(inputs.chain, network, owner, *asset)));
    let (prepared, balances) = futures_util::join!(prepare, balances);
    let prepared = prepared?;

    let gas_estimate = prepared.simulation.gas_used.unwrap_or(prepared.gas_limit);
    let price_now = prepared.base_fee_per_gas.saturating_add(prepared.max_priority_fee_per_gas);
    let estimated_fee = Amount(alloy_primitives::U256::from(gas_estimate) * alloy_primitives::U256::from(price_now));
    let native = match &request.native {
        Some(native) => native.clone(),
        None => inputs.chain.native_asset(network).await?,
    };
    let native = &native;
    let native_usd = inputs.prices.usd_price(PriceKey::Native { symbol: &native.symbol }).map(|q| q.usd);
    let fee = FeeEstimate {
        estimated_fee,
        gas_limit: prepared.gas_limit,
        max_fee_per_gas: prepared.max_fee_per_gas,
        fee_usd: native_usd.map(|usd| to_units(estimated_fee, native.decimals) * usd),
        asset: native.clone(),
    };

    let mut warnings = policy_warnings(&decision);
    let mut balance_changes = Vec::with_capacity(outflows.len());
    for ((asset, outflow), balance) in outflows.iter().zip(balances) {
        let current = match balance {
            // A call whose calldata reads as an ERC-20 transfer to an address that is no token: the chain's
            // simulation says whether the call itself goes through; only this balance change is unknown.
            Err(error) if error.code == ErrorCode::NotAToken => {
                warnings.push(warn("NOT_A_TOKEN", WarningSeverity::Warning, error.message));
                continue;
            }
            other => other?,
        };
        let (symbol, decimals) = match asset {
            Asset::Native => (native.symbol.clone(), native.decimals),
            Asset::Token(address) => request
                .tokens
                .iter()
                .find(|(token, _)| token == address)
                .map(|(_, meta)| (meta.symbol.clone().unwrap_or_else(|| address.to_string()), meta.decimals))
                .unwrap_or_else(|| (address.to_string(), 0)),
        };
        if *outflow > current {
            warnings.push(warn(
                "INSUFFICIENT_BALANCE",
                WarningSeverity::Error,
                format!("the wallet holds {current} of {symbol} but the request moves {outflow}"),
            ));
        } else if *asset == Asset::Native && outflow.saturating_add(prepared.max_fee()) > current {
            warnings.push(warn(
                "INSUFFICIENT_BALANCE_WITH_FEE",
                WarningSeverity::Error,
                format!("{current} wei does not cover {outflow} wei plus a fee of up to {} wei", prepared.max_fee()),
            ));
        }
        let total_out = if *asset == Asset::Native { outflow.saturating_add(estimated_fee) } else { *outflow };
        balance_changes.push(BalanceChange {
            asset: *asset,
            symbol,
            decimals,
            current,
            outflow: total_out,
            after: current.saturating_sub(total_out),
        });
    }
    // A token that answers `true` and moves nothing: the simulated execution's logs (when the node reports them)
    // show no transfer, as the receipt would not; send refuses it for the same reason.
    if let Some(effect) = super::transactions::unobserved_in_simulation(&request.kind, owner, &prepared.simulation) {
        let what = super::transactions::describe_effect(&effect);
        warnings.push(warn(
            "EFFECT_NOT_OBSERVED",
            WarningSeverity::Error,
            format!("the simulated execution logs no {what}: the token contract would move nothing"),
        ));
    }
    let insufficient = warnings.iter().any(|w| w.code.starts_with("INSUFFICIENT_BALANCE"));
    if !prepared.simulation.success && !insufficient {
        let reason = prepared.simulation.error.clone().unwrap_or_else(|| "the chain refused the call".into());
        warnings.push(warn("SIMULATION_FAILED", WarningSeverity::Error, reason));
    }
    let native_out = outflows.iter().find(|(a, _)| *a == Asset::Native).map(|(_, v)| *v).unwrap_or(Amount::ZERO);
    if native_out > Amount::ZERO && to_units(estimated_fee, 0) > to_units(native_out, 0) * HIGH_FEE_RATIO {
        warnings.push(warn(
            "HIGH_FEE_RATIO",
            WarningSeverity::Warning,
            format!("the fee ({estimated_fee} wei) is more than {}% of the value moved", HIGH_FEE_RATIO * 100.0),
        ));
    }
    let success = decision.allowed
        && prepared.simulation.success
        && !warnings.iter().any(|w| w.severity == WarningSeverity::Error);
    Ok(Simulation {
        success,
        decision,
        fee,
        balance_changes,
        warnings,
        simulation: prepared.simulation.clone(),
        chain: request.agent.chain.as_str(),
        network: request.network.clone(),
        kind: request.kind.clone(),
        block_number: prepared.block_number,
        duration_ms: 0,
    })
}

impl Waiaas {
    /// `POST /v1/transactions/simulate`: the gates of send, a read-only policy evaluation and a chain dry-run.
    pub async fn simulate_transaction(
        &self,
        principal: &SessionPrincipal,
        body: &serde_json::Value,
    ) -> Result<Simulation> {
        let started = self.ports.clock.now_millis();
        let request = self.admission_gates(principal, body).await?;
        let now = self.now();
        let snapshot = self.ports.transactions.snapshot(request.agent.id, now).await?;
        let inputs = ReadOnly {
            snapshot: &snapshot,
            prices: self.ports.prices.as_ref(),
            chain: self.ports.chain.as_ref(),
            now,
            defaults: &self.config.policy_defaults,
        };
        let mut result = simulate(&request, inputs).await?;
        result.duration_ms = self.ports.clock.now_millis().saturating_sub(started);
        Ok(result)
    }
}
