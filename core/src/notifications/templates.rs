//! The messages, in English and Korean: one template per event type people are told about, a generic one for the
//! rest, the digest of what a rate limit held back, and the test message.
//!
//! A message names the agent, the amount in whole units with the asset's symbol (exact decimal text, never a
//! float), the counterparty, the network, the tier, the reason code, and an explorer link when the network has
//! one (`[rpc] explorer_<network>`: `<base>/tx/<hash>`, else `<base>/address/<counterparty>`). An approval message
//! says exactly what the owner signs ([`approval_message`]) and where to send it. Messages carry nothing secret:
//! only what the audit row and the transaction row hold.
//!
//! Which types have their own template is an exhaustive `match` (`phrases`): a new event type does not compile
//! until it is placed, and `templates/tests.rs` renders every type in every locale.

use std::time::{Duration, UNIX_EPOCH};

use super::{ChannelKind, Locale, Message, Priority};
use crate::domain::Tier;
use crate::domain::tx::approval_message;
use crate::event::{Event, EventType, Severity};
use crate::{TxId, UnixSeconds};

#[cfg(test)]
mod tests;

/// What the notifier knows of the transaction an event is about (read from its row, never from the agent's words
/// alone: token symbols and decimals were checked against the chain at admission).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxFacts {
    /// `TRANSFER`, `TOKEN_TRANSFER`, `CONTRACT_CALL`, `APPROVE` or `BATCH`.
    pub tx_type: String,
    /// The amount in whole units with its symbol (`1.5 ETH`); `None` when it has none (a batch).
    pub amount: Option<String>,
    /// The recipient, spender or contract.
    pub counterparty: Option<String>,
    /// The configured network.
    pub network: String,
    /// The tier it was admitted at.
    pub tier: Option<Tier>,
    /// Its hash, once signed.
    pub tx_hash: Option<String>,
    /// APPROVAL: when it expires unless approved.
    pub approval_deadline: Option<UnixSeconds>,
    /// DELAY: not before this time.
    pub execute_after: Option<UnixSeconds>,
}

/// Everything a message is rendered from.
#[derive(Clone, Debug)]
pub struct Facts<'a> {
    /// The event as recorded.
    pub event: &'a Event,
    /// Its audit row id (shown so the operator finds the row).
    pub audit_id: i64,
    /// The agent's name, when the event names an agent that exists.
    pub agent_name: Option<String>,
    /// The transaction, when the event names one that exists.
    pub tx: Option<TxFacts>,
    /// The block explorer's base URL for the transaction's network, when configured.
    pub explorer: Option<String>,
}

/// (English title, English sentence, Korean title, Korean sentence) of an event type with its own template;
/// `None` for the generic one. Exhaustive on purpose.
fn phrases(event_type: EventType) -> Option<[&'static str; 4]> {
    use EventType::*;
    Some(match event_type {
        TxApprovalRequired => [
            "Approval needed",
            "A transaction waits for its owner's approval.",
            "승인 필요",
            "거래가 소유자의 승인을 기다리고 있습니다.",
        ],
        TxQueued => [
            "Transaction delayed",
            "A transaction is queued (DELAY tier) and runs when its delay ends, unless it is cancelled.",
            "거래 지연",
            "거래가 지연 대기열(DELAY 등급)에 들어갔습니다. 취소하지 않으면 대기 시간이 끝난 뒤 실행됩니다.",
        ],
        TxFailed => ["Transaction failed", "A transaction failed.", "거래 실패", "거래가 실패했습니다."],
        PolicyDenied => [
            "Transaction denied by policy",
            "A policy denied a transaction the agent asked for.",
            "정책에 의한 거래 거부",
            "에이전트가 요청한 거래를 정책이 거부했습니다.",
        ],
        KillSwitchActivated => [
            "Kill switch activated",
            "The kill switch is on: every session is revoked, every agent suspended, unsigned transactions cancelled.",
            "킬 스위치 작동",
            "킬 스위치가 작동했습니다. 모든 세션이 폐기되고 모든 에이전트가 정지되었으며 서명 전 거래는 취소되었습니다.",
        ],
        KillSwitchRecovered => [
            "Kill switch recovered",
            "The kill switch is off again. Agents stay suspended until each is resumed.",
            "킬 스위치 해제",
            "킬 스위치가 해제되었습니다. 에이전트는 하나씩 재개할 때까지 정지 상태로 남습니다.",
        ],
        AnomalyDetected => [
            "Anomaly detected",
            "An abnormal pattern was detected in an agent's transactions.",
            "이상 징후 탐지",
            "에이전트의 거래에서 비정상적인 패턴이 탐지되었습니다.",
        ],
        AgentSuspended => ["Agent suspended", "An agent was suspended.", "에이전트 정지", "에이전트가 정지되었습니다."],
        BackupFailed => ["Backup failed", "A backup failed.", "백업 실패", "백업이 실패했습니다."],
        WebhookDisabled => [
            "Webhook disabled",
            "A webhook was disabled: its receiver answered 410 Gone.",
            "웹훅 비활성화",
            "수신자가 410 Gone으로 응답하여 웹훅이 비활성화되었습니다.",
        ],
        TxConfirmed => ["Transaction confirmed", "A transaction was confirmed.", "거래 확정", "거래가 확정되었습니다."],
        TxCancelled => ["Transaction cancelled", "A transaction was cancelled.", "거래 취소", "거래가 취소되었습니다."],
        TxApproved => {
            ["Transaction approved", "The owner approved a transaction.", "거래 승인", "소유자가 거래를 승인했습니다."]
        }
        TxRejected => {
            ["Transaction rejected", "The owner rejected a transaction.", "거래 거절", "소유자가 거래를 거절했습니다."]
        }
        TxExpired => [
            "Approval expired",
            "A transaction expired without the owner's approval.",
            "승인 만료",
            "소유자의 승인 없이 거래가 만료되었습니다.",
        ],
        AgentResumed => ["Agent resumed", "An agent was resumed.", "에이전트 재개", "에이전트가 재개되었습니다."],
        AgentTerminated => {
            ["Agent terminated", "An agent was terminated.", "에이전트 종료", "에이전트가 종료되었습니다."]
        }
        AnomalyCleared => [
            "Tier floor cleared",
            "The operator cleared an agent's anomaly tier floor.",
            "등급 하한 해제",
            "운영자가 에이전트의 이상 징후 등급 하한을 해제했습니다.",
        ],
        BackupCreated => ["Backup created", "A backup was created.", "백업 생성", "백업이 생성되었습니다."],
        MasterAuthFailed => [
            "Wrong master password",
            "A request came with a wrong master password.",
            "마스터 비밀번호 오류",
            "잘못된 마스터 비밀번호로 요청이 들어왔습니다.",
        ],
        AuditHeadSealed => [
            "Audit log sealed",
            "The audit log's head was sealed over existing rows (first start after an upgrade, or a deleted head).",
            "감사 로그 봉인",
            "기존 행 위에 감사 로그의 헤드가 봉인되었습니다(업그레이드 후 첫 시작이거나 헤드가 삭제됨).",
        ],
        TxRequested | TxSubmitted | SessionCreated | SessionRenewed | SessionRevoked | AgentCreated | OwnerSet
        | AccessDeniedIp | WebhookCreated | WebhookDeleted | WebhookUpdated | WebhookSecretRotated | WebhookTest
        | PolicyCreated | PolicyUpdated | PolicyDeleted | NotificationFailed => return None,
    })
}

/// Whether `event_type` has its own template (else the generic one).
pub fn has_own_template(event_type: EventType) -> bool {
    phrases(event_type).is_some()
}

/// The labels of the fact lines.
struct Labels {
    agent: &'static str,
    amount: &'static str,
    to: &'static str,
    network: &'static str,
    tier: &'static str,
    reason: &'static str,
    error: &'static str,
    explorer: &'static str,
    event: &'static str,
    at: &'static str,
}

fn labels(locale: Locale) -> Labels {
    match locale {
        Locale::En => Labels {
            agent: "Agent",
            amount: "Amount",
            to: "To",
            network: "Network",
            tier: "Tier",
            reason: "Reason",
            error: "Error",
            explorer: "Explorer",
            event: "Event",
            at: "at",
        },
        Locale::Ko => Labels {
            agent: "에이전트",
            amount: "금액",
            to: "상대 주소",
            network: "네트워크",
            tier: "등급",
            reason: "사유 코드",
            error: "오류",
            explorer: "탐색기",
            event: "이벤트",
            at: "시각",
        },
    }
}

/// A Unix time as people read it (`Tue, 15 Nov 1994 08:12:31 GMT`).
pub fn human_time(t: UnixSeconds) -> String {
    let at = UNIX_EPOCH + Duration::from_secs(u64::try_from(t.0).unwrap_or(0));
    httpdate::fmt_http_date(at)
}

fn priority(event: &Event) -> Priority {
    if super::routing::is_critical(event.event_type) {
        return Priority::Urgent;
    }
    match event.severity {
        Severity::Critical => Priority::Urgent,
        Severity::Warning => Priority::High,
        Severity::Info => Priority::Default,
    }
}

fn tags(event_type: EventType) -> Vec<String> {
    use EventType::*;
    let emoji = match event_type {
        KillSwitchActivated => "rotating_light",
        KillSwitchRecovered => "white_check_mark",
        AnomalyDetected => "warning",
        TxApprovalRequired => "lock",
        TxQueued => "hourglass",
        TxFailed | BackupFailed | NotificationFailed => "x",
        PolicyDenied => "no_entry",
        AgentSuspended | AgentTerminated => "pause_button",
        _ => "bell",
    };
    vec![emoji.to_owned(), "waiaas".to_owned(), event_type.as_str().to_ascii_lowercase()]
}

fn detail<'a>(event: &'a Event, key: &str) -> Option<&'a serde_json::Value> {
    event.details.get(key).filter(|v| !v.is_null())
}

fn detail_text(event: &Event, key: &str) -> Option<String> {
    detail(event, key).map(|v| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// The explorer link of a transaction: its hash's page, else the counterparty's.
fn explorer_link(facts: &Facts<'_>) -> Option<String> {
    let base = facts.explorer.as_deref()?.trim_end_matches('/');
    let tx = facts.tx.as_ref()?;
    match (&tx.tx_hash, &tx.counterparty) {
        (Some(hash), _) => Some(format!("{base}/tx/{hash}")),
        (None, Some(address)) => Some(format!("{base}/address/{address}")),
        (None, None) => None,
    }
}

/// What the owner does to approve or reject (the exact text to sign, where to send it, until when).
fn approval_steps(locale: Locale, tx_id: TxId, deadline: Option<UnixSeconds>) -> String {
    let approve = approval_message(tx_id, true, "<nonce>");
    let reject = approval_message(tx_id, false, "<nonce>");
    let deadline = deadline.map(human_time).unwrap_or_else(|| "-".to_owned());
    match locale {
        Locale::En => format!(
            "To approve, the owner signs (EIP-191 personal_sign, with the owner's key) exactly this text, \
             <nonce> being a fresh nonce from GET /v1/nonce:\n{approve}\n\
             then sends it to POST /v1/transactions/{tx_id}/approve with the headers X-Owner-Address, \
             X-Owner-Message (the signed text in base64) and X-Owner-Signature.\n\
             To reject, sign instead:\n{reject}\nand send it to POST /v1/transactions/{tx_id}/reject.\n\
             Without an answer it expires at {deadline}."
        ),
        Locale::Ko => format!(
            "승인하려면 소유자가 소유자 키로 아래 문구를 그대로 서명(EIP-191 personal_sign)합니다. \
             <nonce>는 GET /v1/nonce에서 새로 받은 값입니다:\n{approve}\n\
             그런 다음 X-Owner-Address, X-Owner-Message(서명한 문구의 base64), X-Owner-Signature 헤더와 함께 \
             POST /v1/transactions/{tx_id}/approve로 보냅니다.\n\
             거절하려면 대신 다음 문구에 서명하여:\n{reject}\nPOST /v1/transactions/{tx_id}/reject로 보냅니다.\n\
             응답이 없으면 {deadline}에 만료됩니다."
        ),
    }
}

/// Event-specific lines (besides the common facts).
fn specifics(locale: Locale, facts: &Facts<'_>, lines: &mut Vec<String>) {
    let event = facts.event;
    let ko = locale == Locale::Ko;
    match event.event_type {
        EventType::TxApprovalRequired => {
            if let Some(tx_id) = event.tx_id {
                let deadline = facts.tx.as_ref().and_then(|t| t.approval_deadline);
                lines.push(approval_steps(locale, tx_id, deadline));
            }
        }
        EventType::TxQueued => {
            if let Some(at) = facts.tx.as_ref().and_then(|t| t.execute_after) {
                let at = human_time(at);
                lines.push(if ko { format!("실행 예정: {at}") } else { format!("Runs at: {at}") });
            }
        }
        EventType::KillSwitchActivated => {
            if let Some(reason) = detail_text(event, "reason") {
                lines.push(if ko { format!("사유: {reason}") } else { format!("Reason given: {reason}") });
            }
            if let Some(effects) = detail(event, "effects") {
                let n = |key: &str| effects.get(key).and_then(serde_json::Value::as_u64).unwrap_or(0);
                let (s, a, t) = (n("sessionsRevoked"), n("agentsSuspended"), n("transactionsCancelled"));
                lines.push(if ko {
                    format!("세션 {s}개 폐기, 에이전트 {a}개 정지, 거래 {t}건 취소")
                } else {
                    format!("{s} sessions revoked, {a} agents suspended, {t} transactions cancelled")
                });
            }
        }
        EventType::AnomalyDetected => {
            let rule = detail_text(event, "rule").unwrap_or_default();
            let observed = detail_text(event, "observed").unwrap_or_default();
            let threshold = detail_text(event, "threshold").unwrap_or_default();
            let unit = detail_text(event, "unit").unwrap_or_default();
            let window = detail_text(event, "windowSeconds").unwrap_or_default();
            lines.push(if ko {
                format!("규칙 {rule}: 관측값 {observed} > 기준값 {threshold} ({unit}, {window}초 구간)")
            } else {
                format!("Rule {rule}: observed {observed} > threshold {threshold} ({unit}, {window} s window)")
            });
            if detail(event, "shadow").and_then(serde_json::Value::as_bool) == Some(true) {
                lines.push(if ko {
                    "섀도 모드: 등급은 바뀌지 않았습니다.".to_owned()
                } else {
                    "Shadow mode: no tier was raised.".to_owned()
                });
            } else if let Some(floor) = detail(event, "tierFloor") {
                let tier = floor.get("tier").and_then(serde_json::Value::as_str).unwrap_or("-");
                let until = floor.get("expiresAt").and_then(serde_json::Value::as_i64).map(UnixSeconds);
                let until = until.map(human_time).unwrap_or_default();
                lines.push(if ko {
                    format!("이 에이전트의 거래는 {until}까지 최소 {tier} 등급입니다 (waiaas anomaly clear로 해제).")
                } else {
                    format!(
                        "This agent's transactions are at least {tier} until {until} (waiaas anomaly clear ends it)."
                    )
                });
            }
        }
        EventType::WebhookDisabled => {
            if let Some(target) = detail_text(event, "target") {
                lines.push(if ko { format!("대상: {target}") } else { format!("Target: {target}") });
            }
        }
        EventType::AgentSuspended => {
            if let Some(by) = detail_text(event, "by") {
                lines.push(if ko { format!("원인: {by}") } else { format!("By: {by}") });
            }
        }
        _ => {}
    }
}

/// The message about one event.
pub fn render(locale: Locale, facts: &Facts<'_>) -> Message {
    let event = facts.event;
    let l = labels(locale);
    let name = event.event_type.as_str();
    let (title, sentence) = match (phrases(event.event_type), locale) {
        (Some([title, sentence, _, _]), Locale::En) => (title.to_owned(), sentence.to_owned()),
        (Some([_, _, title, sentence]), Locale::Ko) => (title.to_owned(), sentence.to_owned()),
        (None, Locale::En) => (format!("Event {name}"), format!("The daemon recorded a {name} event.")),
        (None, Locale::Ko) => (format!("{name} 이벤트"), format!("데몬이 {name} 이벤트를 기록했습니다.")),
    };
    let title = match &facts.agent_name {
        Some(agent) => format!("[WAIaaS] {title}: {agent}"),
        None => format!("[WAIaaS] {title}"),
    };
    let mut lines = vec![sentence];
    if let Some(agent) = &facts.agent_name {
        lines.push(format!("{}: {agent}", l.agent));
    }
    if let Some(tx) = &facts.tx {
        if let Some(amount) = &tx.amount {
            lines.push(format!("{}: {amount} ({})", l.amount, tx.tx_type));
        }
        if let Some(to) = &tx.counterparty {
            lines.push(format!("{}: {to}", l.to));
        }
        lines.push(format!("{}: {}", l.network, tx.network));
    }
    let tier =
        facts.tx.as_ref().and_then(|t| t.tier).map(|t| t.as_str().to_owned()).or_else(|| detail_text(event, "tier"));
    if let Some(tier) = tier {
        lines.push(format!("{}: {tier}", l.tier));
    }
    if let Some(code) = detail_text(event, "reasonCode") {
        let reason = detail_text(event, "reason").map(|r| format!(" ({r})")).unwrap_or_default();
        lines.push(format!("{}: {code}{reason}", l.reason));
    }
    let error = match (detail_text(event, "code"), detail_text(event, "error")) {
        (Some(code), Some(error)) => Some(format!("{code}: {error}")),
        (code, error) => code.or(error),
    };
    if let Some(error) = error.filter(|_| event.event_type != EventType::KillSwitchActivated) {
        lines.push(format!("{}: {error}", l.error));
    }
    specifics(locale, facts, &mut lines);
    let link = explorer_link(facts);
    if let Some(link) = &link {
        lines.push(format!("{}: {link}", l.explorer));
    }
    let tx = event.tx_id.map(|id| format!(", tx {id}")).unwrap_or_default();
    lines.push(format!("{}: {name} #{}{tx}, {} {}", l.event, facts.audit_id, l.at, human_time(event.created_at)));
    Message { title, body: lines.join("\n"), priority: priority(event), tags: tags(event.event_type), link }
}

/// The digest of what a channel's rate limit held back: per event type, how many.
pub fn render_digest(locale: Locale, held: &[(EventType, u64)]) -> Message {
    let total: u64 = held.iter().map(|(_, n)| n).sum();
    let lines: Vec<String> = held.iter().map(|(t, n)| format!("- {n}× {}", t.as_str())).collect();
    let (title, head) = match locale {
        Locale::En => (
            format!("[WAIaaS] {total} notifications held back"),
            format!("This channel's rate limit held back {total} notifications:"),
        ),
        Locale::Ko => (
            format!("[WAIaaS] 알림 {total}건 보류됨"),
            format!("이 채널의 전송 한도 때문에 알림 {total}건이 보류되었습니다:"),
        ),
    };
    let tail = match locale {
        Locale::En => "Each is in the audit log (GET /v1/audit-logs).",
        Locale::Ko => "각 이벤트는 감사 로그(GET /v1/audit-logs)에 있습니다.",
    };
    Message {
        title,
        body: format!("{head}\n{}\n{tail}", lines.join("\n")),
        priority: Priority::Default,
        tags: vec!["inbox_tray".to_owned(), "waiaas".to_owned(), "digest".to_owned()],
        link: None,
    }
}

/// The test message of a channel.
pub fn render_test(locale: Locale, channel: ChannelKind) -> Message {
    let channel = channel.as_str();
    let (title, body) = match locale {
        Locale::En => (
            "[WAIaaS] Test notification".to_owned(),
            format!("This is a test message from your WAIaaS daemon through the {channel} channel."),
        ),
        Locale::Ko => {
            ("[WAIaaS] 테스트 알림".to_owned(), format!("WAIaaS 데몬이 {channel} 채널로 보낸 테스트 메시지입니다."))
        }
    };
    Message {
        title,
        body,
        priority: Priority::Default,
        tags: vec!["bell".to_owned(), "waiaas".to_owned(), "test".to_owned()],
        link: None,
    }
}
