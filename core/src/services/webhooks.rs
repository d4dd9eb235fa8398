//! OPS-04 in the core: webhook administration (create, list, read, update, delete, rotate the secret, test,
//! redeliver, the delivery log) and deliveries: an attempt ([`Waiaas::attempt_webhook`]: sign, send through the
//! [`WebhookSender`] port, decide with [`crate::webhooks::retry::decide`]) and the settling of attempts
//! ([`Waiaas::settle_webhooks`]: their log rows and what becomes of each delivery, several in one write).
//!
//! Writing an event queues nothing: each active webhook reads the audit log past the last row it handled (its
//! stream, see [`WebhookRepo`]), and only failed deliveries wait in a retry queue. A host drives the deliveries:
//! it asks for due runs ([`Waiaas::due_webhook_runs`]: per webhook, its next events in order), attempts them one
//! after another and settles what it attempted, with its own concurrency bounds; the daemon's delivery task does.
//!
//! The hub is attached after unlock ([`Waiaas::attach_webhooks`]), since its secret key follows from the master
//! password; a host without webhooks never attaches one and the calls answer `NOT_FOUND`.

use std::sync::Arc;

use super::sessions::next_page;
use super::{Waiaas, cursor, page_limit};
use crate::error::{Error, ErrorCode, Result};
use crate::event::{Event, EventType, RequestContext};
use crate::metrics as m;
use crate::ports::{
    DeliveryStatus, DueDelivery, OutboxNext, Page, StoredSecret, WebhookAttempt, WebhookLogQuery, WebhookRepo,
    WebhookRequest, WebhookResponse, WebhookSender, WebhookSettlement,
};
use crate::webhooks::retry::{RetryPolicy, Verdict, decide};
use crate::webhooks::secret::{SecretKey, WebhookSecret};
use crate::webhooks::target::{check_address, parse_url};
use crate::webhooks::{EventFilter, Webhook, check_description, delivery_id, parse_delivery_id, payload};
use crate::{UnixSeconds, WebhookId};

const CURSOR_KIND: &str = "webhooks";
const LOG_CURSOR_KIND: &str = "webhook-logs";

/// The `User-Agent` of deliveries.
pub const USER_AGENT: &str = concat!("waiaas/", env!("CARGO_PKG_VERSION"));

/// Tunables of deliveries (the `[webhooks]` config section).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookSettings {
    /// The retry schedule.
    pub retry: RetryPolicy,
    /// How long the previous secret still signs after a rotation, in seconds.
    pub rotation_grace_seconds: u64,
    /// Refuse loopback and private targets too.
    pub block_private_targets: bool,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings { retry: RetryPolicy::default(), rotation_grace_seconds: 86_400, block_private_targets: false }
    }
}

/// What the core needs for webhooks: storage, the sender, the key secrets are sealed with, the settings.
pub struct WebhookHub {
    /// Webhooks, log and outbox.
    pub repo: Arc<dyn WebhookRepo>,
    /// The HTTP side.
    pub sender: Arc<dyn WebhookSender>,
    /// Seals and opens the stored secrets.
    pub key: SecretKey,
    /// Retry schedule, rotation grace, target rules.
    pub settings: WebhookSettings,
}

/// A partial update of a webhook; absent fields stay.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WebhookPatch {
    /// A new URL (checked like at creation).
    pub url: Option<String>,
    /// New event types.
    pub event_types: Option<Vec<String>>,
    /// Enable or disable.
    pub active: Option<bool>,
    /// A new description (`Some(None)` clears it).
    pub description: Option<Option<String>>,
}

/// `scheme://host[:port]` of a URL: what events and logs say about a target (paths and queries often hold a
/// receiver's token).
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "<invalid>".to_owned(),
    }
}

fn details(webhook: &Webhook) -> serde_json::Value {
    serde_json::json!({
        "webhookId": webhook.id.to_string(),
        "target": redacted(&webhook.url),
        "eventTypes": webhook.events.to_wire(),
        "active": webhook.active,
    })
}

impl Waiaas {
    /// Attaches the webhook hub. Returns false when one was attached already (the first stays).
    pub fn attach_webhooks(&self, hub: WebhookHub) -> bool {
        self.webhooks.set(Arc::new(hub)).is_ok()
    }

    fn hub(&self) -> Result<&Arc<WebhookHub>> {
        self.webhooks.get().ok_or_else(|| Error::new(ErrorCode::NotFound, "webhooks are not configured on this host"))
    }

    /// Checks a URL and every address its host resolves to (`VALIDATION_FAILED` on `url` for syntax or a host
    /// that does not resolve; `WEBHOOK_URL_FORBIDDEN` for a forbidden address).
    async fn check_target(&self, hub: &WebhookHub, url: &str) -> Result<()> {
        let target = parse_url(url)?;
        let block = hub.settings.block_private_targets;
        let addresses = match target.ip {
            Some(ip) => vec![ip],
            None => hub
                .sender
                .resolve(&target.host, target.port)
                .await
                .map_err(|e| Error::invalid_field("url", format!("the host does not resolve: {e}")))?,
        };
        if addresses.is_empty() {
            return Err(Error::invalid_field("url", "the host does not resolve"));
        }
        addresses.into_iter().try_for_each(|ip| check_address(ip, block))
    }

    /// Registers a webhook; the secret is returned here only.
    pub async fn create_webhook(
        &self,
        ctx: &RequestContext,
        url: &str,
        event_types: &[String],
        description: Option<String>,
    ) -> Result<(Webhook, WebhookSecret)> {
        let hub = self.hub()?;
        let events = EventFilter::parse(event_types)?;
        check_description(description.as_deref())?;
        self.check_target(hub, url).await?;
        let now = self.now();
        let webhook = Webhook {
            id: WebhookId::generate(self.ports.clock.as_ref(), self.ports.entropy.as_ref()),
            url: url.to_owned(),
            events,
            active: true,
            description,
            created_at: now,
            updated_at: now,
        };
        let secret = WebhookSecret::generate(self.ports.entropy.as_ref());
        let stored = StoredSecret {
            hash: secret.hash(),
            sealed: hub.key.seal(&secret, webhook.id, self.ports.entropy.as_ref()),
        };
        let event = Event::new(EventType::WebhookCreated, ctx, now).details(details(&webhook));
        hub.repo.insert(&webhook, &stored, &event).await?;
        self.publish(&event);
        Ok((webhook, secret))
    }

    /// One webhook (`WEBHOOK_NOT_FOUND` when there is none).
    pub async fn webhook(&self, id: WebhookId) -> Result<Webhook> {
        self.hub()?
            .repo
            .get(id)
            .await?
            .ok_or_else(|| Error::new(ErrorCode::WebhookNotFound, format!("webhook {id} not found")))
    }

    /// A page of webhooks, newest first.
    pub async fn list_webhooks(&self, cursor: Option<&str>, limit: Option<u32>) -> Result<Page<Webhook>> {
        let hub = self.hub()?;
        let limit = page_limit(limit)?;
        let before = cursor.map(|c| cursor::decode_parsed::<WebhookId>(CURSOR_KIND, c)).transpose()?;
        let mut items = hub.repo.list(before, limit + 1).await?;
        let next_cursor = next_page(&mut items, limit, |w| cursor::encode(CURSOR_KIND, &w.id.to_string()));
        Ok(Page { items, next_cursor })
    }

    /// Changes a webhook (audited `WEBHOOK_UPDATED`); deactivating it drops its pending deliveries.
    pub async fn update_webhook(&self, ctx: &RequestContext, id: WebhookId, patch: WebhookPatch) -> Result<Webhook> {
        let hub = self.hub()?;
        let mut webhook = self.webhook(id).await?;
        if let Some(url) = patch.url {
            self.check_target(hub, &url).await?;
            webhook.url = url;
        }
        if let Some(types) = patch.event_types {
            webhook.events = EventFilter::parse(&types)?;
        }
        if let Some(description) = patch.description {
            check_description(description.as_deref())?;
            webhook.description = description;
        }
        if let Some(active) = patch.active {
            webhook.active = active;
        }
        let now = self.now();
        webhook.updated_at = now;
        let event = Event::new(EventType::WebhookUpdated, ctx, now).details(details(&webhook));
        hub.repo.update(&webhook, &event).await?;
        self.publish(&event);
        Ok(webhook)
    }

    /// Deletes a webhook and its pending deliveries (its log stays); returns it as it was.
    pub async fn delete_webhook(&self, ctx: &RequestContext, id: WebhookId) -> Result<Webhook> {
        let hub = self.hub()?;
        let webhook = self.webhook(id).await?;
        let event = Event::new(EventType::WebhookDeleted, ctx, self.now()).details(details(&webhook));
        hub.repo.delete(id, &event).await?;
        self.publish(&event);
        Ok(webhook)
    }

    /// A new secret, returned here only; the previous one keeps signing (as a second signature) until the
    /// returned time.
    pub async fn rotate_webhook_secret(
        &self,
        ctx: &RequestContext,
        id: WebhookId,
    ) -> Result<(Webhook, WebhookSecret, UnixSeconds)> {
        let hub = self.hub()?;
        let webhook = self.webhook(id).await?;
        let secret = WebhookSecret::generate(self.ports.entropy.as_ref());
        let stored = StoredSecret {
            hash: secret.hash(),
            sealed: hub.key.seal(&secret, webhook.id, self.ports.entropy.as_ref()),
        };
        let now = self.now();
        let grace = i64::try_from(hub.settings.rotation_grace_seconds).unwrap_or(i64::MAX);
        let until = UnixSeconds(now.0.saturating_add(grace));
        let event = Event::new(EventType::WebhookSecretRotated, ctx, now)
            .details(serde_json::json!({ "webhookId": id.to_string(), "previousValidUntil": until.0 }));
        hub.repo.rotate_secret(id, &stored, until, &event).await?;
        self.publish(&event);
        Ok((webhook, secret, until))
    }

    /// Sends a `WEBHOOK_TEST` event to this webhook only, through the real delivery path; returns its delivery id.
    pub async fn test_webhook(&self, ctx: &RequestContext, id: WebhookId) -> Result<String> {
        let hub = self.hub()?;
        let webhook = self.webhook(id).await?;
        let event = Event::new(EventType::WebhookTest, ctx, self.now()).details(details(&webhook));
        let audit_id = hub.repo.test(id, &event).await?;
        self.publish(&event);
        Ok(delivery_id(audit_id))
    }

    /// Queues a delivery of this webhook again (a new series of attempts, the same `webhook-id`).
    pub async fn redeliver_webhook(&self, id: WebhookId, delivery: &str) -> Result<()> {
        let hub = self.hub()?;
        self.webhook(id).await?;
        let audit_id = parse_delivery_id(delivery)?;
        if !hub.repo.redeliver(id, audit_id, self.ports.clock.now_millis()).await? {
            return Err(Error::new(ErrorCode::DeliveryNotFound, format!("webhook {id} has no delivery {delivery}")));
        }
        Ok(())
    }

    /// A page of the webhook's delivery attempts, newest first; `status` is `success`, `failed` or `pending`.
    pub async fn webhook_logs(
        &self,
        id: WebhookId,
        status: Option<&str>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page<WebhookAttempt>> {
        let hub = self.hub()?;
        let limit = page_limit(limit)?;
        let status = status
            .map(|s| {
                DeliveryStatus::parse(s)
                    .ok_or_else(|| Error::invalid_field("status", "one of success, failed, pending"))
            })
            .transpose()?;
        self.webhook(id).await?;
        let before = cursor.map(|c| cursor::decode_parsed::<i64>(LOG_CURSOR_KIND, c)).transpose()?;
        let query = WebhookLogQuery { webhook_id: id, status, before, limit: limit + 1 };
        let mut items = hub.repo.logs(&query).await?;
        let next_cursor = next_page(&mut items, limit, |a| cursor::encode(LOG_CURSOR_KIND, &a.id.to_string()));
        Ok(Page { items, next_cursor })
    }

    /// Due deliveries now, one run per webhook not in `busy` (at most `webhooks` runs): its due retries and the
    /// next events of its stream, oldest first, at most `per_webhook`. Attempting a run in order and settling it
    /// before asking again keeps each receiver's events in order (unless a retry is pending).
    pub async fn due_webhook_runs(
        &self,
        busy: Vec<WebhookId>,
        webhooks: u32,
        per_webhook: u32,
    ) -> Result<Vec<Vec<DueDelivery>>> {
        self.hub()?.repo.due(self.ports.clock.now_millis(), busy, webhooks, per_webhook).await
    }

    /// When the next retry falls due, Unix milliseconds.
    pub async fn next_webhook_due_ms(&self) -> Result<Option<u64>> {
        self.hub()?.repo.next_due().await
    }

    /// Reads the deliveries waiting into `waiaas_webhook_queue_depth`.
    pub async fn refresh_webhook_queue_gauge(&self) -> Result<()> {
        let depth = self.hub()?.repo.queue_depth().await?;
        self.ports.metrics.set_gauge(m::WEBHOOK_QUEUE_DEPTH, &[], depth as f64);
        Ok(())
    }

    /// The signed request of a delivery at `timestamp` (Unix seconds).
    fn signed_request(&self, hub: &WebhookHub, due: &DueDelivery, timestamp: UnixSeconds) -> Result<WebhookRequest> {
        let id = delivery_id(due.audit_id);
        let body = payload(&id, &due.event);
        let mut signature = hub.key.open(&due.secrets.current, due.webhook_id)?.sign(&id, timestamp.0, &body);
        if let Some((previous, until)) = &due.secrets.previous
            && timestamp < *until
        {
            let previous = hub.key.open(previous, due.webhook_id)?;
            signature = format!("{signature} {}", previous.sign(&id, timestamp.0, &body));
        }
        let headers = [
            ("content-type", "application/json".to_owned()),
            ("user-agent", USER_AGENT.to_owned()),
            ("webhook-id", id.clone()),
            ("webhook-timestamp", timestamp.0.to_string()),
            ("webhook-signature", signature.clone()),
            ("x-waiaas-signature", signature),
            ("x-waiaas-event", due.event.event_type.as_str().to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Ok(WebhookRequest { url: due.url.clone(), headers, body })
    }

    /// One attempt of a due delivery: signs it, sends it and decides what becomes of it. Writes nothing: the
    /// settlement returned is recorded by [`Waiaas::settle_webhooks`] (several together, in one write). Counts the
    /// attempt in the delivery metrics.
    pub async fn attempt_webhook(&self, due: &DueDelivery) -> Result<(Verdict, WebhookSettlement)> {
        let hub = self.hub()?;
        let attempt = due.attempts + 1;
        let now = self.now();
        let response = match self.signed_request(hub, due, now) {
            Ok(request) => hub.sender.send(&request).await,
            Err(e) => WebhookResponse::Refused { message: format!("cannot sign: {}", e.message) },
        };
        let verdict = decide(&response, attempt, &hub.settings.retry, self.ports.entropy.as_ref());
        let (status_code, response_time_ms, error) = match &response {
            WebhookResponse::Status { code, elapsed_ms, .. } => {
                let error = (!(200..300).contains(code)).then(|| format!("HTTP {code}"));
                (Some(*code), *elapsed_ms, error)
            }
            WebhookResponse::TransportError { message, elapsed_ms } => (None, *elapsed_ms, Some(message.clone())),
            WebhookResponse::Refused { message } => (None, 0, Some(format!("refused: {message}"))),
        };
        let (status, next) = match verdict {
            Verdict::Delivered => (DeliveryStatus::Success, OutboxNext::Finished),
            Verdict::Retry { delay_ms } => {
                (DeliveryStatus::Pending, OutboxNext::RetryAt(self.ports.clock.now_millis() + delay_ms))
            }
            Verdict::Failed => (DeliveryStatus::Failed, OutboxNext::Finished),
            Verdict::Disable => (DeliveryStatus::Failed, OutboxNext::Disable),
        };
        let record = WebhookAttempt {
            id: 0,
            webhook_id: due.webhook_id,
            audit_id: due.audit_id,
            event_type: due.event.event_type,
            attempt,
            status,
            status_code,
            response_time_ms,
            error,
            created_at: now,
        };
        let event = (verdict == Verdict::Disable).then(|| {
            Event::new(EventType::WebhookDisabled, &RequestContext::system(), now).details(serde_json::json!({
                "webhookId": due.webhook_id.to_string(),
                "target": redacted(&due.url),
                "reason": "the receiver answered 410 Gone",
                "deliveryId": delivery_id(due.audit_id),
            }))
        });
        let metrics = &self.ports.metrics;
        metrics.increment_counter(m::WEBHOOK_DELIVERIES_TOTAL, &[("result", verdict.result_label())], 1);
        metrics.observe_histogram(m::WEBHOOK_DELIVERY_DURATION_SECONDS, &[], response_time_ms as f64 / 1000.0);
        Ok((verdict, WebhookSettlement { attempt: record, source: due.source, next, event }))
    }

    /// Records attempts in one write (their log rows; each delivery finished, rescheduled or its webhook
    /// disabled) and publishes the events written.
    pub async fn settle_webhooks(&self, settlements: &[WebhookSettlement]) -> Result<()> {
        if settlements.is_empty() {
            return Ok(());
        }
        let written = self.hub()?.repo.settle(settlements).await?;
        for (settlement, written) in settlements.iter().zip(written) {
            if let Some(event) = settlement.event.as_ref().filter(|_| written) {
                self.publish(event);
            }
        }
        Ok(())
    }

    /// One delivery, attempted and settled on its own ([`Waiaas::attempt_webhook`], then
    /// [`Waiaas::settle_webhooks`]). Returns the verdict.
    pub async fn deliver_webhook(&self, due: &DueDelivery) -> Result<Verdict> {
        let (verdict, settlement) = self.attempt_webhook(due).await?;
        self.settle_webhooks(std::slice::from_ref(&settlement)).await?;
        Ok(verdict)
    }
}
