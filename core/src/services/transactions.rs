//! The transaction pipeline: validate → auth re-check → policy + reservation (one write transaction) → wait
//! (DELAY / APPROVAL) → execute (build, simulate, sign, broadcast) → confirm.
//!
//! Stages 1–3 run in the request ([`Waiaas::send_transaction`]); stages 4–6 run in [`Waiaas::process_work`],
//! which the host calls periodically and whenever an event says new work exists. The gate list
//! ([`Waiaas::admission_gates`]) and the decision function ([`decide`]) are shared with simulate, which reads a
//! snapshot instead of admitting.

use std::sync::Arc;

use super::sessions::next_page;
use super::{SessionPrincipal, Waiaas, cursor, page_limit};
use crate::domain::session::SessionConstraints;
use crate::domain::{Address, Agent, AgentStatus, ChainFamily, Effect, TxKind, TxStatus, unobserved_effect};
use crate::error::{Error, ErrorCode, Issue, Result};
use crate::event::{Actor, Event, EventType, RequestContext};
use crate::policy_engine::{AgentHistory, Decision, Evaluation, PolicyDefaults, PolicyWarning, Tier, evaluate};
use crate::ports::{
    Admission, AdmissionSnapshot, Broadcast, NativeAsset, Page, PriceOracle, SimulationOutcome, Submission,
    TokenMetadata, TxOnChain, TxRecord, TxUpdate,
};
use crate::{TxId, UnixSeconds};

/// Attempts at preparing, signing and broadcasting before a transaction fails.
pub const MAX_ATTEMPTS: u32 = 5;
/// How long an APPROVAL-tier request waits for the owner.
pub const APPROVAL_TIMEOUT_SECONDS: i64 = 3_600;

/// What one round of [`Waiaas::process_work`] did.
#[derive(Debug, Default)]
pub struct WorkReport {
    /// Rows the round took up.
    pub rows: usize,
    /// Rows whose step failed in this round, with the error (the row is retried or failed by its own rules).
    pub errors: Vec<(TxId, Error)>,
    /// A row was broadcast or is waiting for its receipt: its outcome may be on chain within milliseconds, so the
    /// host should run another round soon (with a short backoff) instead of waiting a whole interval.
    pub follow_up: bool,
}

/// A request that passed every gate and is ready for policy evaluation.
#[derive(Clone, Debug)]
pub struct Admissible {
    /// The agent, ACTIVE when the gates passed.
    pub agent: Agent,
    /// The parsed request.
    pub kind: TxKind,
    /// The agent's network the request runs on.
    pub network: String,
    /// The constraints of the session that sent it.
    pub constraints: Option<SessionConstraints>,
    /// Metadata of the tokens the request touches, as the chain reports it (those that answer as ERC-20s).
    pub tokens: Vec<(Address, TokenMetadata)>,
    /// The network's native coin (symbol and decimals), from the chain adapter; `None` when the node did not
    /// answer (a send is still admitted — the worker retries — and the native coin counts as unpriced).
    pub native: Option<NativeAsset>,
}

/// Derives the engine's history from the snapshot: denied requests count toward nothing; failed, cancelled and
/// expired ones do not count as spent.
fn history(snapshot: &AdmissionSnapshot, now: UnixSeconds) -> AgentHistory {
    let day_ago = now.plus_seconds(-crate::policy_engine::DAY_SECONDS);
    let counted = snapshot.recent.iter().filter(|r| !r.denied);
    AgentHistory {
        request_times: counted.clone().map(|r| r.created_at).collect(),
        spent_usd_24h: counted
            .filter(|r| r.created_at > day_ago)
            .filter(|r| !matches!(r.status, TxStatus::Failed | TxStatus::Cancelled | TxStatus::Expired))
            .filter_map(|r| r.usd_value)
            .sum(),
    }
}

/// The one decision function of send and simulate. The anomaly tier floor comes from the snapshot, so both apply
/// the same one (an expired floor is ignored by `now`).
pub fn decide(
    snapshot: &AdmissionSnapshot,
    request: &Admissible,
    now: UnixSeconds,
    prices: &dyn PriceOracle,
    defaults: &PolicyDefaults,
) -> Decision {
    let history = history(snapshot, now);
    let tier_floor = crate::anomaly::TierFloor::tier_at(snapshot.tier_floor.as_ref(), now);
    evaluate(&Evaluation {
        policies: &snapshot.policies,
        request: &request.kind,
        network: &request.network,
        constraints: request.constraints.as_ref(),
        defaults,
        owner_set: request.agent.owner_address.is_some(),
        now,
        reserved: &snapshot.reserved,
        history: &history,
        prices,
        tokens: &request.tokens,
        native: request.native.as_ref(),
        tier_floor,
    })
}

/// A price oracle that knows no price: the re-check of deny rules needs none.
struct NoPrices;

impl PriceOracle for NoPrices {
    fn usd_price<'a>(&self, _asset: crate::ports::PriceKey<'a>) -> Option<crate::ports::PriceQuote> {
        None
    }
}

/// The deny rules in force now, for a row leaving a wait ([`crate::policy_engine::recheck`]).
pub fn recheck_denial(
    policies: &[crate::domain::Policy],
    row: &TxRecord,
    constraints: Option<&SessionConstraints>,
    defaults: &PolicyDefaults,
    now: UnixSeconds,
) -> Option<Decision> {
    crate::policy_engine::recheck(&Evaluation {
        policies,
        request: &row.kind,
        network: &row.network,
        constraints,
        defaults,
        owner_set: true,
        now,
        reserved: &[],
        history: &AgentHistory::default(),
        prices: &NoPrices,
        tokens: &[],
        native: None,
        tier_floor: None,
    })
}

fn request_details(request: &Admissible) -> serde_json::Value {
    serde_json::json!({
        "type": request.kind.type_name(),
        "network": request.network,
        "request": request.kind.to_json(),
    })
}

fn decision_details(decision: &Decision) -> serde_json::Value {
    serde_json::json!({
        "tier": decision.tier.as_str(),
        "allowed": decision.allowed,
        "reasonCode": decision.reason_code.map(|r| r.as_str()),
        "reason": decision.reason,
        "matchedPolicyIds": decision.matched_policy_ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "delaySeconds": decision.delay_seconds,
        "downgraded": decision.downgraded,
        "warnings": decision.warnings.iter().map(warning_code).collect::<Vec<_>>(),
    })
}

/// The stable code of an engine warning.
pub fn warning_code(warning: &PolicyWarning) -> &'static str {
    match warning {
        PolicyWarning::OraclePriceUnavailable { .. } => "ORACLE_PRICE_UNAVAILABLE",
        PolicyWarning::CumulativeLimit { .. } => "CUMULATIVE_LIMIT_WARNING",
        PolicyWarning::AnomalyTierRaised { .. } => "ANOMALY_TIER_RAISED",
    }
}

/// Builds the row and events for an admission decision (pure).
fn admission(
    id: TxId,
    principal: &SessionPrincipal,
    request: &Admissible,
    decision: &Decision,
    now: UnixSeconds,
) -> (TxRecord, Vec<Event>) {
    let ctx = &principal.context;
    let base = |event_type| Event::new(event_type, ctx, now).agent(request.agent.id).tx(id);
    let mut events = vec![base(EventType::TxRequested).details(request_details(request))];
    let mut record = TxRecord {
        tier: decision.allowed.then_some(decision.tier),
        usd_value: decision.request_usd,
        ..TxRecord::pending(
            id,
            request.agent.id,
            Some(principal.session_id),
            request.network.clone(),
            request.kind.clone(),
            now,
        )
    };
    if !decision.allowed {
        record.status = TxStatus::Cancelled;
        record.reason_code = decision.reason_code.map(|r| r.as_str().to_owned());
        record.error = decision.reason.clone();
        events.push(base(EventType::PolicyDenied).details(decision_details(decision)));
        return (record, events);
    }
    record.reserved = request.kind.outflows();
    match decision.tier {
        Tier::Instant | Tier::Notify => {}
        Tier::Delay => {
            record.status = TxStatus::Queued;
            let delay = i64::try_from(decision.delay_seconds.unwrap_or(0)).unwrap_or(i64::MAX);
            record.execute_after = Some(now.plus_seconds(delay));
            events.push(base(EventType::TxQueued).details(decision_details(decision)));
        }
        Tier::Approval => {
            record.status = TxStatus::Queued;
            record.approval_deadline = Some(now.plus_seconds(APPROVAL_TIMEOUT_SECONDS));
            events.push(base(EventType::TxApprovalRequired).details(decision_details(decision)));
        }
    }
    if matches!(decision.tier, Tier::Instant | Tier::Notify) {
        events[0].details["decision"] = decision_details(decision);
    }
    (record, events)
}

/// The request's leaves with the path of each in the body (`""` for a single request).
fn leaf_paths(kind: &TxKind) -> Vec<(String, &TxKind)> {
    match kind {
        TxKind::Batch { instructions } => {
            instructions.iter().enumerate().map(|(i, leaf)| (format!("instructions[{i}]"), leaf)).collect()
        }
        single => vec![(String::new(), single)],
    }
}

impl Waiaas {
    /// Stages 1–2, shared by send and simulate: parse the body (unknown fields refused), re-check the kill
    /// switch and the agent, resolve the network, refuse what the chain cannot do.
    pub async fn admission_gates(&self, principal: &SessionPrincipal, body: &serde_json::Value) -> Result<Admissible> {
        let agent = principal.agent.clone();
        let family = agent.chain.family();
        let (kind, network) = TxKind::parse(body, family)?;
        self.ensure_not_locked()?;
        super::sessions::ensure_agent_usable(agent.status)?;
        let network = network.unwrap_or_else(|| agent.network.clone());
        match self.ports.chain.networks().into_iter().find(|n| n.name == network) {
            None => {
                return Err(Error::new(
                    ErrorCode::NetworkNotConfigured,
                    format!("network {network:?} is not configured"),
                ));
            }
            Some(configured) if configured.family != family => {
                return Err(Error::invalid_field(
                    "network",
                    format!("{network} is a {} network; this agent's addresses are {family}", configured.family),
                ));
            }
            Some(_) => {}
        }
        // What a family's accounts can execute: an EVM account cannot run several calls atomically.
        match (family, &kind) {
            (ChainFamily::Evm, TxKind::Batch { .. }) => {
                return Err(Error::validation(vec![Issue {
                    path: "type".into(),
                    message: "BATCH is not supported on EVM networks: an externally owned account cannot execute \
                              several calls atomically; send the instructions one by one"
                        .into(),
                }]));
            }
            (ChainFamily::Evm | ChainFamily::Solana, _) => {}
        }
        if let Some(signer) = kind.foreign_signer(agent.address) {
            return Err(Error::invalid_field(
                "accounts",
                format!("{signer} cannot sign: only the agent's own account {} signs its transactions", agent.address),
            ));
        }
        let tokens = self.check_tokens(&network, &kind).await?;
        let native = match self.native_asset(&network).await {
            Ok(native) => Some(native),
            Err(error) if error.info().retryable => None,
            Err(error) => return Err(error),
        };
        Ok(Admissible { agent, kind, network, constraints: principal.constraints.clone(), tokens, native })
    }

    /// Reads the metadata of every token the request touches from the chain (once per network and token) and
    /// refuses a request whose named token is not an ERC-20 or whose `decimals` / `symbol` differ from what the
    /// chain says: nothing the agent writes may change how its request is valued.
    async fn check_tokens(&self, network: &str, kind: &TxKind) -> Result<Vec<(Address, TokenMetadata)>> {
        let mut known = Vec::new();
        for token in kind.tokens() {
            if let Some(metadata) = self.token_metadata(network, token).await? {
                known.push((token, metadata));
            }
        }
        let mut issues = Vec::new();
        for (path, leaf) in leaf_paths(kind) {
            let (TxKind::TokenTransfer { token, .. } | TxKind::Approve { token, .. }) = leaf else { continue };
            let at =
                |field: &str| if path.is_empty() { format!("token.{field}") } else { format!("{path}.token.{field}") };
            match known.iter().find(|(address, _)| *address == token.address).map(|(_, m)| m) {
                None => issues.push(Issue {
                    path: at("address"),
                    message: format!("{} does not answer as an ERC-20 token on network {network}", token.address),
                }),
                Some(metadata) => {
                    if metadata.decimals != token.decimals {
                        issues.push(Issue {
                            path: at("decimals"),
                            message: format!(
                                "the token reports {} decimals on chain, not {}",
                                metadata.decimals, token.decimals
                            ),
                        });
                    }
                    if let Some(symbol) = &metadata.symbol
                        && *symbol != token.symbol
                    {
                        issues.push(Issue {
                            path: at("symbol"),
                            message: format!(
                                "the token reports the symbol {symbol:?} on chain, not {:?}",
                                token.symbol
                            ),
                        });
                    }
                }
            }
        }
        if issues.is_empty() { Ok(known) } else { Err(Error::validation(issues)) }
    }

    /// A network's native coin, asked of the chain adapter the first time and remembered.
    pub async fn native_asset(&self, network: &str) -> Result<NativeAsset> {
        if let Some(found) = self.native_cache.read().ok().and_then(|cache| cache.get(network).cloned()) {
            return Ok(found);
        }
        let native = self.ports.chain.native_asset(network).await?;
        if let Ok(mut cache) = self.native_cache.write() {
            cache.insert(network.to_owned(), native.clone());
        }
        Ok(native)
    }

    /// A token's metadata, read from the chain the first time and remembered per (network, token). A contract that
    /// does not answer as an ERC-20 is asked again next time (it may be deployed later at that address).
    async fn token_metadata(&self, network: &str, token: Address) -> Result<Option<TokenMetadata>> {
        let key = (network.to_owned(), token);
        if let Some(found) = self.token_cache.read().ok().and_then(|cache| cache.get(&key).cloned()) {
            return Ok(Some(found));
        }
        let read = self.ports.chain.token_metadata(network, token).await?;
        if let (Some(metadata), Ok(mut cache)) = (&read, self.token_cache.write()) {
            cache.insert(key, metadata.clone());
        }
        Ok(read)
    }

    /// Stages 1–3 of a send. Answers with the stored row: PENDING (INSTANT/NOTIFY), QUEUED (DELAY/APPROVAL);
    /// a policy denial is stored as CANCELLED and answered `POLICY_DENIED` with the reason code.
    pub async fn send_transaction(&self, principal: &SessionPrincipal, body: &serde_json::Value) -> Result<TxRecord> {
        let request = self.admission_gates(principal, body).await?;
        let now = self.now();
        let id = TxId::generate(self.ports.clock.as_ref(), self.ports.entropy.as_ref());
        let prices = Arc::clone(&self.ports.prices);
        let defaults = self.config.policy_defaults;
        let principal_for_decision = principal.clone();
        let request_for_decision = request.clone();
        let Admission { record, events, decision } = self
            .ports
            .transactions
            .admit(
                request.agent.id,
                now,
                Box::new(move |snapshot: &AdmissionSnapshot| {
                    let decision = decide(snapshot, &request_for_decision, now, prices.as_ref(), &defaults);
                    let (record, events) =
                        admission(id, &principal_for_decision, &request_for_decision, &decision, now);
                    Admission { record, events, decision }
                }),
            )
            .await?;
        for event in &events {
            self.publish(event);
        }
        self.record_policy_evaluation(decision.allowed.then_some(decision.tier), decision.allowed);
        if record.status.is_final() {
            self.record_final(&record, request.agent.chain, record.status);
        }
        if !decision.allowed {
            return Err(Error::new(
                ErrorCode::PolicyDenied,
                decision.reason.clone().unwrap_or_else(|| "denied by policy".into()),
            )
            .with_details(serde_json::json!({
                "transactionId": record.id.to_string(),
                "reasonCode": decision.reason_code.map(|r| r.as_str()),
                "matchedPolicyIds": decision.matched_policy_ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
            })));
        }
        Ok(record)
    }

    /// One of the caller's transactions (another agent's id is `TX_NOT_FOUND`).
    pub async fn transaction(&self, principal: &SessionPrincipal, id: TxId) -> Result<TxRecord> {
        match self.ports.transactions.get(id).await? {
            Some(record) if record.agent_id == principal.agent.id => Ok(record),
            _ => Err(Error::new(ErrorCode::TxNotFound, format!("transaction {id} not found"))),
        }
    }

    /// A page of the session's agent's transactions, newest first.
    pub async fn list_transactions(
        &self,
        principal: &SessionPrincipal,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page<TxRecord>> {
        let limit = page_limit(limit)?;
        let before = cursor.map(|c| cursor::decode_parsed::<TxId>("transactions", c)).transpose()?;
        let mut items = self.ports.transactions.list(principal.agent.id, before, limit + 1).await?;
        let next_cursor = next_page(&mut items, limit, |t| cursor::encode("transactions", &t.id.to_string()));
        Ok(Page { items, next_cursor })
    }

    /// The agent cancels one of its QUEUED transactions (waiting for its DELAY or for the owner's approval) before
    /// it executes. Once the worker has taken it (EXECUTING) only the operator can cancel it
    /// ([`Waiaas::admin_cancel_transaction`]).
    pub async fn cancel_transaction(&self, principal: &SessionPrincipal, id: TxId) -> Result<TxRecord> {
        let record = self.transaction(principal, id).await?;
        if record.status != TxStatus::Queued {
            return Err(Error::new(
                ErrorCode::InvalidStateTransition,
                format!(
                    "only a QUEUED (DELAY or APPROVAL) transaction can be cancelled by the agent (this one is {})",
                    record.status.as_str()
                ),
            ));
        }
        let event = Event::new(EventType::TxCancelled, &principal.context, self.now())
            .agent(record.agent_id)
            .tx(id)
            .details(serde_json::json!({ "by": "agent" }));
        self.move_tx(&record, record.status.cancel()?, TxUpdate::default(), event).await?;
        self.transaction(principal, id).await
    }

    /// The operator cancels any transaction not yet signed (PENDING, QUEUED or EXECUTING), audited as `TX_CANCELLED`
    /// with `details.by = "operator"`; a signed or final one is `INVALID_STATE_TRANSITION`. An EXECUTING row being
    /// signed at this moment loses its signature: the SUBMITTED write ([`crate::ports::TxRepo::submit`]) finds
    /// the row CANCELLED and nothing is broadcast.
    pub async fn admin_cancel_transaction(&self, ctx: &RequestContext, id: TxId) -> Result<TxRecord> {
        let not_found = || Error::new(ErrorCode::TxNotFound, format!("transaction {id} not found"));
        let record = self.ports.transactions.get(id).await?.ok_or_else(not_found)?;
        let cancelled = record.status.cancel().map_err(|_| {
            Error::new(
                ErrorCode::InvalidStateTransition,
                format!(
                    "only a transaction not yet signed (PENDING, QUEUED, EXECUTING) can be cancelled (this one is {})",
                    record.status.as_str()
                ),
            )
        })?;
        let event = Event::new(EventType::TxCancelled, ctx, self.now())
            .agent(record.agent_id)
            .tx(id)
            .details(serde_json::json!({ "by": "operator" }));
        let update = TxUpdate { error: Some("cancelled by the operator".into()), ..TxUpdate::default() };
        self.move_tx(&record, cancelled, update, event).await?;
        self.ports.transactions.get(id).await?.ok_or_else(not_found)
    }

    /// Compare-and-set a row's status with its event; a lost race is `INVALID_STATE_TRANSITION`.
    async fn move_tx(&self, record: &TxRecord, to: TxStatus, update: TxUpdate, event: Event) -> Result<()> {
        if self.ports.transactions.transition(record.id, record.status, to, &update, Some(event.clone())).await? {
            self.publish(&event);
            if to.is_final() {
                self.record_final_of(record, to).await;
            }
            Ok(())
        } else {
            Err(Error::new(ErrorCode::InvalidStateTransition, "the transaction changed state meanwhile"))
        }
    }

    /// Owner approval of an APPROVAL-queued transaction (the signature was verified by the caller of
    /// [`Waiaas::verify_owner_signature`]).
    pub async fn approve_transaction(
        &self,
        owner: &crate::domain::Address,
        ip: Option<std::net::IpAddr>,
        id: TxId,
        approve: bool,
    ) -> Result<TxRecord> {
        let record = self
            .ports
            .transactions
            .get(id)
            .await?
            .ok_or_else(|| Error::new(ErrorCode::TxNotFound, format!("transaction {id} not found")))?;
        let agent = self.agent(record.agent_id).await?;
        if agent.owner_address.as_ref() != Some(owner) {
            return Err(Error::new(ErrorCode::Forbidden, "the signer is not this agent's owner"));
        }
        if record.status != TxStatus::Queued || record.tier != Some(Tier::Approval) || record.approved_at.is_some() {
            return Err(Error::new(ErrorCode::InvalidStateTransition, "the transaction is not waiting for approval"));
        }
        let now = self.now();
        if record.approval_deadline.is_some_and(|deadline| deadline <= now) {
            return Err(Error::new(ErrorCode::InvalidStateTransition, "the approval window has closed"));
        }
        let ctx = RequestContext { actor: Actor::Owner(*owner), ip };
        if approve {
            let event = Event::new(EventType::TxApproved, &ctx, now).agent(record.agent_id).tx(id);
            let update = TxUpdate { approved_at: Some(now), ..TxUpdate::default() };
            self.move_tx(&record, TxStatus::Queued, update, event).await?;
        } else {
            let event = Event::new(EventType::TxRejected, &ctx, now).agent(record.agent_id).tx(id);
            self.move_tx(&record, record.status.cancel()?, TxUpdate::default(), event).await?;
        }
        self.ports.transactions.get(id).await?.ok_or_else(|| Error::internal_msg("approved row vanished"))
    }

    /// Stages 4–6 for every row that has work at this moment. An error on one row never stops the others; the
    /// report lists them for the host's log (retryable ones are retried on a later round).
    pub async fn process_work(&self) -> Result<WorkReport> {
        let now = self.now();
        let rows = self.ports.transactions.work(now).await?;
        let mut report = WorkReport::default();
        for row in rows {
            let id = row.id;
            let outcome = match row.status {
                TxStatus::Queued if row.approved_at.is_none() && row.approval_deadline.is_some_and(|d| d <= now) => {
                    self.expire(&row).await
                }
                TxStatus::Pending | TxStatus::Queued | TxStatus::Executing => {
                    report.follow_up = true;
                    self.execute(row).await
                }
                TxStatus::Submitted => {
                    report.follow_up = true;
                    self.confirm(row).await
                }
                _ => Ok(()),
            };
            report.rows += 1;
            if let Err(error) = outcome {
                report.errors.push((id, error));
            }
        }
        Ok(report)
    }

    async fn expire(&self, row: &TxRecord) -> Result<()> {
        let event =
            Event::new(EventType::TxExpired, &RequestContext::system(), self.now()).agent(row.agent_id).tx(row.id);
        self.move_tx(row, row.status.expire()?, TxUpdate::default(), event).await
    }

    async fn fail(&self, row: &TxRecord, reason: String) -> Result<()> {
        self.fail_with(row, None, reason).await
    }

    /// FAILED with the reason; `code` (the last error's) is recorded in the event's details.
    async fn fail_with(&self, row: &TxRecord, code: Option<ErrorCode>, reason: String) -> Result<()> {
        let mut details = serde_json::json!({ "error": reason });
        if let Some(code) = code {
            details["code"] = code.as_str().into();
        }
        let event = Event::new(EventType::TxFailed, &RequestContext::system(), self.now())
            .agent(row.agent_id)
            .tx(row.id)
            .details(details);
        let update = TxUpdate { error: Some(reason), ..TxUpdate::default() };
        self.move_tx(row, row.status.fail()?, update, event).await
    }

    async fn cancel_by_system(&self, row: &TxRecord, reason: &str) -> Result<()> {
        let event = Event::new(EventType::TxCancelled, &RequestContext::system(), self.now())
            .agent(row.agent_id)
            .tx(row.id)
            .details(serde_json::json!({ "by": "system", "reason": reason }));
        let update = TxUpdate { error: Some(reason.to_owned()), ..TxUpdate::default() };
        self.move_tx(row, row.status.cancel()?, update, event).await
    }

    /// The deny rules in force now (policies and the session's constraints) applied to a row about to execute.
    async fn recheck(&self, row: &TxRecord) -> Result<Option<Decision>> {
        let policies = self.ports.policies.in_force(row.agent_id).await?;
        let constraints = match row.session_id {
            Some(id) => self.ports.sessions.get(id).await?.and_then(|session| session.constraints),
            None => None,
        };
        let now = self.now();
        Ok(recheck_denial(&policies, row, constraints.as_ref(), &self.config.policy_defaults, now))
    }

    /// Cancels a row that the deny rules now refuse, with the reason code (a POLICY_DENIED then TX_CANCELLED).
    async fn cancel_denied(&self, row: &TxRecord, denial: &Decision) -> Result<()> {
        let code = denial.reason_code.map(|r| r.as_str());
        let event = Event::new(EventType::TxCancelled, &RequestContext::system(), self.now())
            .agent(row.agent_id)
            .tx(row.id)
            .details(serde_json::json!({
                "by": "policy",
                "reasonCode": code,
                "reason": denial.reason,
                "matchedPolicyIds": denial.matched_policy_ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }));
        let update =
            TxUpdate { error: denial.reason.clone(), reason_code: code.map(str::to_owned), ..TxUpdate::default() };
        self.move_tx(row, row.status.cancel()?, update, event).await
    }

    /// Counts a transient failure and schedules the next attempt after an exponential backoff (2, 4, 8, 16 s by
    /// the core's clock); fails the row after [`MAX_ATTEMPTS`], with the last error's code.
    ///
    /// Except a signed transaction whose nonce is stored (SUBMITTED): it may be in a node's pool and be included
    /// whatever the node answers now, so FAILED (which releases its reservation and tells the agent it did not
    /// pay) would be a guess. It is checked again every 16 s for as long as the node fails; it leaves SUBMITTED
    /// by its receipt, or by the proof that its nonce went to another transaction ([`Waiaas::nonce_taken`]).
    async fn retry_later(&self, row: &TxRecord, error: &Error) -> Result<()> {
        let attempts = row.attempts.saturating_add(1);
        let may_still_land = row.status == TxStatus::Submitted && row.nonce.is_some();
        if attempts >= MAX_ATTEMPTS && !may_still_land {
            let reason = format!("gave up after {attempts} attempts ({}): {}", error.code, error.message);
            return self.fail_with(row, Some(error.code), reason).await;
        }
        let update = TxUpdate {
            attempts: Some(attempts),
            error: Some(error.message.clone()),
            execute_after: Some(self.now().plus_seconds(1 << attempts.min(MAX_ATTEMPTS - 1))),
            ..TxUpdate::default()
        };
        self.ports.transactions.transition(row.id, row.status, row.status, &update, None).await.map(|_| ())
    }

    /// A signing or key error (`sign`, `attach_signature`) is counted like a chain error, so the row fails
    /// with the error's code (e.g. `KEYSTORE_ERROR`) after [`MAX_ATTEMPTS`] instead of being tried again every
    /// round, each try paying a key decryption (an Argon2 run). The error is still returned, for the host's log.
    async fn signing_failed(&self, row: &TxRecord, error: Error) -> Result<()> {
        let counted = Error::new(error.code, format!("signing failed: {}", error.message));
        self.retry_later(row, &counted).await?;
        Err(error)
    }

    /// Stage 5: build, simulate, sign, record SUBMITTED (with the raw bytes and the nonce) in the same write
    /// transaction that re-checks the kill switch, the agent and the row ([`crate::ports::TxRepo::submit`]),
    /// broadcast.
    async fn execute(&self, mut row: TxRecord) -> Result<()> {
        if self.kill_switch_state().state.is_tripped() {
            return if row.status.cancel().is_ok() {
                self.cancel_by_system(&row, "kill switch active").await
            } else {
                Ok(())
            };
        }
        let agent = self.agent(row.agent_id).await?;
        if agent.status != AgentStatus::Active {
            return if row.status.cancel().is_ok() {
                self.cancel_by_system(&row, "agent not active").await
            } else {
                Ok(())
            };
        }
        // Work that waited (DELAY, APPROVAL, a retry backoff) is judged again by the deny rules in force now.
        if let Some(denial) = self.recheck(&row).await? {
            return self.cancel_denied(&row, &denial).await;
        }
        if row.status != TxStatus::Executing {
            let to = row.status.execute()?;
            if !self.ports.transactions.transition(row.id, row.status, to, &TxUpdate::default(), None).await? {
                return Ok(());
            }
            row.status = to;
        }
        let prepared = match self.ports.chain.prepare(&row.network, agent.address, &row.kind).await {
            Ok(prepared) => prepared,
            Err(error) if error.info().retryable => return self.retry_later(&row, &error).await,
            Err(error) => return self.fail(&row, error.message).await,
        };
        if !prepared.simulation.success {
            let reason = prepared.simulation.error.unwrap_or_else(|| "simulation failed".into());
            return self.fail(&row, format!("simulation failed: {reason}")).await;
        }
        // The simulated execution already shows a token effect missing: nothing is signed (no fee is paid for a
        // call that would move nothing), with the code the receipt check would give.
        if let Some(effect) = unobserved_in_simulation(&row.kind, agent.address, &prepared.simulation) {
            let reason = format!("the simulated execution logs no {}: nothing would move", describe_effect(&effect));
            return self.fail_with(&row, Some(ErrorCode::EffectNotObserved), reason).await;
        }
        // Spare the key decryption when the row was cancelled meanwhile (the check that counts is in `submit`).
        let current = self.ports.transactions.get(row.id).await?.map(|r| r.status);
        if self.kill_switch_state().state.is_tripped() || current != Some(TxStatus::Executing) {
            return Ok(());
        }
        let signature = match self.ports.keystore.sign(row.agent_id, prepared.signing_payload.clone()).await {
            Ok(signature) => signature,
            Err(error) => return self.signing_failed(&row, error).await,
        };
        let signed = match self.ports.chain.attach_signature(&prepared, &signature) {
            Ok(signed) => signed,
            Err(error) => return self.signing_failed(&row, error).await,
        };
        let event = Event::new(EventType::TxSubmitted, &RequestContext::system(), self.now())
            .agent(row.agent_id)
            .tx(row.id)
            .details(
                serde_json::json!({ "txHash": signed.hash, "nonce": prepared.nonce, "gasLimit": prepared.gas_limit }),
            );
        let update = TxUpdate {
            tx_hash: Some(signed.hash.clone()),
            raw_tx: Some(signed.raw.clone()),
            nonce: Some(prepared.nonce),
            clear_error: true,
            ..TxUpdate::default()
        };
        // The kill switch, a suspension or the operator got there first: the signature is dropped, unsent.
        if self.ports.transactions.submit(row.id, &update, event.clone()).await? != Submission::Recorded {
            return Ok(());
        }
        self.publish(&event);
        row.status = row.status.submit()?;
        row.tx_hash = Some(signed.hash.clone());
        row.nonce = Some(prepared.nonce);
        // A lost broadcast is repaired by `confirm`, which re-sends the stored raw transaction.
        match self.ports.broadcaster.broadcast(&row.network, &signed).await {
            Ok(Broadcast::NonceAlreadyUsed) => self.nonce_taken(&row).await,
            Ok(Broadcast::Accepted) | Err(_) => Ok(()),
        }
    }

    /// The node refused a broadcast because the row's nonce is used. Building it again while the signed
    /// transaction could still be included would pay twice (a load-balanced RPC can answer "nonce too low" for a
    /// transaction another of its nodes mined), so the original must first be proven lost. The account's nonce at
    /// the latest block is read first, then the stored hash's receipt: in that order, a transaction included
    /// between the two reads shows its receipt. A receipt settles the row as [`Waiaas::confirm`] does; the row is
    /// rebuilt only when the account nonce moved past the row's nonce and there is no receipt (then that nonce is
    /// used by another transaction for good). Anything else is checked again after a backoff, counted like a
    /// chain error (a row signed before the nonce was stored can never be proven lost, so it ends FAILED).
    async fn nonce_taken(&self, row: &TxRecord) -> Result<()> {
        let Some(hash) = row.tx_hash.clone() else { return self.fail(row, "submitted without a hash".into()).await };
        let agent = self.agent(row.agent_id).await?;
        let account_nonce = match self.ports.chain.account_nonce(&row.network, agent.address).await {
            Ok(nonce) => nonce,
            Err(error) => return self.retry_later(row, &error).await,
        };
        match self.ports.chain.status(&row.network, &hash).await {
            Ok(included @ TxOnChain::Included { .. }) => self.settle(row, hash, included).await,
            Ok(TxOnChain::Pending { .. }) if row.nonce.is_some_and(|nonce| account_nonce > nonce) => {
                self.rebuild(row).await
            }
            Ok(TxOnChain::Pending { .. }) => {
                let error = Error::new(
                    ErrorCode::ChainError,
                    "the node reports the nonce as used, but the signed transaction is not proven lost",
                );
                self.retry_later(row, &error).await
            }
            Err(error) => self.retry_later(row, &error).await,
        }
    }

    /// The nonce of a submitted transaction was taken by another one for good ([`Waiaas::nonce_taken`]): build it
    /// again with a fresh nonce (counted as an attempt, so this cannot loop).
    async fn rebuild(&self, row: &TxRecord) -> Result<()> {
        let attempts = row.attempts + 1;
        if attempts >= MAX_ATTEMPTS {
            return self.fail(row, format!("gave up after {attempts} attempts: the nonce kept being taken")).await;
        }
        let update = TxUpdate { attempts: Some(attempts), ..TxUpdate::default() };
        self.ports.transactions.transition(row.id, row.status, row.status.rebuild()?, &update, None).await.map(|_| ())
    }

    /// Stage 6: receipt → CONFIRMED or FAILED; an unknown transaction is re-broadcast.
    async fn confirm(&self, row: TxRecord) -> Result<()> {
        let Some(hash) = row.tx_hash.clone() else { return self.fail(&row, "submitted without a hash".into()).await };
        match self.ports.chain.status(&row.network, &hash).await {
            Ok(included @ TxOnChain::Included { .. }) => self.settle(&row, hash, included).await,
            Ok(TxOnChain::Pending { known: true }) => Ok(()),
            Ok(TxOnChain::Pending { known: false }) => {
                let signed = crate::ports::SignedTx { raw: row.raw_tx.clone().unwrap_or_default(), hash };
                match self.ports.broadcaster.broadcast(&row.network, &signed).await {
                    Ok(Broadcast::Accepted) => Ok(()),
                    Ok(Broadcast::NonceAlreadyUsed) => self.nonce_taken(&row).await,
                    Err(error) => self.retry_later(&row, &error).await,
                }
            }
            Err(error) => self.retry_later(&row, &error).await,
        }
    }

    /// A submitted transaction is in a block: CONFIRMED, or FAILED if it reverted.
    async fn settle(&self, row: &TxRecord, hash: String, included: TxOnChain) -> Result<()> {
        match included {
            TxOnChain::Included { success: true, gas_used, block_number, logs } => {
                // A receipt with status 1 proves the call ran, not that a token moved: a contract that only says
                // `true` leaves no log.
                // Only token effects need a log (and the agent's address, read only then).
                let effects = row.kind.effects();
                let token_effect =
                    |e: &Effect| matches!(e, Effect::TokenTransfer { .. } | Effect::TokenApproval { .. });
                let unobserved = match effects.iter().any(token_effect) {
                    true => unobserved_effect(&effects, self.agent(row.agent_id).await?.address, &logs),
                    false => None,
                };
                if let Some(effect) = unobserved {
                    let reason = format!(
                        "included in block {block_number} ({hash}), but no log shows {}: nothing moved",
                        describe_effect(&effect)
                    );
                    return self.fail_with(row, Some(ErrorCode::EffectNotObserved), reason).await;
                }
                let event = Event::new(EventType::TxConfirmed, &RequestContext::system(), self.now())
                    .agent(row.agent_id)
                    .tx(row.id)
                    .details(serde_json::json!({ "txHash": hash, "gasUsed": gas_used, "blockNumber": block_number }));
                self.move_tx(row, row.status.confirm()?, TxUpdate::default(), event).await
            }
            TxOnChain::Included { success: false, block_number, .. } => {
                self.fail(row, format!("reverted on chain in block {block_number}")).await
            }
            TxOnChain::Pending { .. } => Ok(()),
        }
    }
}

/// The first token effect of `kind` that a successful simulation's logs do not show, when the node reported logs
/// (`None` when it did not, when the simulation failed, or when everything is shown).
pub(crate) fn unobserved_in_simulation(
    kind: &TxKind,
    owner: Address,
    simulation: &SimulationOutcome,
) -> Option<Effect> {
    let logs = simulation.logs.as_ref().filter(|_| simulation.success)?;
    unobserved_effect(&kind.effects(), owner, logs)
}

/// An effect for a message: what should have moved, to whom.
pub(crate) fn describe_effect(effect: &Effect) -> String {
    match effect {
        Effect::TokenTransfer { token, to, amount } => format!("the transfer of {amount} of token {token} to {to}"),
        Effect::TokenApproval { token, spender, .. } => format!("the approval of {spender} on token {token}"),
        Effect::NativeTransfer { to, amount } => format!("the transfer of {amount} to {to}"),
        Effect::ContractCall { contract } => format!("the call of {contract}"),
    }
}
