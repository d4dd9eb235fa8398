//! Webhooks (master password, OPS-04): register (the secret is in the 201 answer only), list, read, change,
//! delete, rotate the secret, send a test ping, redeliver, and the per-attempt delivery log.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use uuid::Uuid;
use waiaas_core::WebhookId;
use waiaas_core::ports::WebhookAttempt;
use waiaas_core::services::WebhookPatch;
use waiaas_core::webhooks::{Webhook, delivery_id};

use super::{ApiTags, page};
use crate::ServerState;
use crate::auth::MasterAuth;
use crate::body::JsonBody;
use crate::error::ApiResult;
use crate::wire::patterned::patterned_string;
use crate::wire::{EventFilterName, PageLimit, Wire, WireEnum};

patterned_string!(
    /// A webhook's URL as the document states it: scheme, a host part, no credentials, at most 2048 characters.
    /// Whether its host may be called is the core's to judge (`WEBHOOK_URL_FORBIDDEN`).
    WebhookUrl,
    "string(webhook_url)",
    r"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#@]+([/?#].*)?$",
    Some(2048)
);

/// A webhook (never its secret).
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct WebhookDto {
    pub id: Uuid,
    pub url: String,
    /// Subscribed event types, or `["*"]` for all.
    pub event_types: Vec<String>,
    /// Inactive webhooks receive nothing (disabled by the operator, or by a 410 answer).
    pub active: bool,
    #[oai(nullable)]
    pub description: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

impl From<Webhook> for WebhookDto {
    fn from(w: Webhook) -> Self {
        WebhookDto {
            id: w.id.as_uuid(),
            url: w.url,
            event_types: w.events.to_wire(),
            active: w.active,
            description: w.description,
            created_at: w.created_at.0,
            updated_at: w.updated_at.0,
        }
    }
}

/// A new webhook with its secret, shown only in this answer.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct CreatedWebhookDto {
    pub id: Uuid,
    pub url: String,
    pub event_types: Vec<String>,
    pub active: bool,
    #[oai(nullable)]
    pub description: Option<String>,
    /// `whsec_` + base64 of 32 random bytes (Standard Webhooks). Shown once: store it now.
    pub secret: String,
    /// Unix seconds.
    pub created_at: i64,
}

#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// An absolute `http` or `https` URL with a host and no credentials (`user:password@`), at most 2048 bytes;
    /// the host is parsed by the WHATWG URL rules. Refused (`WEBHOOK_URL_FORBIDDEN`) when its host is or resolves
    /// to a link-local, metadata, unspecified, multicast or reserved address (or a private one, with
    /// `[webhooks] block_private_targets`).
    pub url: WebhookUrl,
    /// Event type names (`TX_CONFIRMED`, ...), or `["*"]` for every event; at least one.
    #[oai(validator(min_items = 1))]
    pub event_types: Vec<Wire<EventFilterName>>,
    /// A note for people; null or absent: none.
    #[oai(nullable)]
    pub description: Option<String>,
}

#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateWebhookRequest {
    /// A new URL, under the rules of `CreateWebhookRequest.url`; null or absent keeps the current one.
    #[oai(nullable)]
    pub url: Option<WebhookUrl>,
    /// At least one when present; null or absent keeps them.
    #[oai(nullable, validator(min_items = 1))]
    pub event_types: Option<Vec<Wire<EventFilterName>>>,
    /// False stops deliveries and drops the pending ones; null or absent keeps the state.
    #[oai(nullable)]
    pub active: Option<bool>,
    /// Null clears it; absent keeps it.
    #[oai(nullable)]
    pub description: MaybeUndefined<String>,
}

#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct WebhookPage {
    pub data: Vec<WebhookDto>,
    #[oai(nullable)]
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

/// The new secret after a rotation.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct RotatedSecretDto {
    pub id: Uuid,
    /// The new secret, shown once.
    pub secret: String,
    /// Until this Unix time deliveries also carry a signature with the previous secret.
    pub previous_secret_valid_until: i64,
}

/// A delivery queued.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct DeliveryQueuedDto {
    /// The `webhook-id` the receiver will see (`evt_<n>`).
    pub delivery_id: String,
}

/// Where a delivery stood after an attempt.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum DeliveryStatusDto {
    Success,
    Failed,
    Pending,
}

/// One delivery attempt.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct WebhookLogDto {
    /// The `webhook-id` header (`evt_<audit row id>`), the same across attempts.
    pub delivery_id: String,
    pub event_type: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// success, pending (another attempt is scheduled) or failed (given up).
    pub status: DeliveryStatusDto,
    /// The receiver's HTTP status, when it answered.
    #[oai(nullable)]
    pub status_code: Option<u16>,
    pub response_time_ms: u64,
    #[oai(nullable)]
    pub error: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

impl From<WebhookAttempt> for WebhookLogDto {
    fn from(a: WebhookAttempt) -> Self {
        use waiaas_core::ports::DeliveryStatus;
        WebhookLogDto {
            delivery_id: delivery_id(a.audit_id),
            event_type: a.event_type.as_str().to_owned(),
            attempt: a.attempt,
            status: match a.status {
                DeliveryStatus::Success => DeliveryStatusDto::Success,
                DeliveryStatus::Failed => DeliveryStatusDto::Failed,
                DeliveryStatus::Pending => DeliveryStatusDto::Pending,
            },
            status_code: a.status_code,
            response_time_ms: a.response_time_ms,
            error: a.error,
            created_at: a.created_at.0,
        }
    }
}

#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct WebhookLogPage {
    pub data: Vec<WebhookLogDto>,
    #[oai(nullable)]
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

#[derive(ApiResponse)]
pub enum WebhookCreated {
    /// The webhook was registered; the secret is shown here only.
    #[oai(status = 201)]
    Created(Json<CreatedWebhookDto>),
}

#[derive(ApiResponse)]
pub enum DeliveryQueued {
    /// The delivery is queued and goes through the normal delivery path.
    #[oai(status = 202)]
    Accepted(Json<DeliveryQueuedDto>),
}

pub struct WebhooksApi;

#[OpenApi(tag = "ApiTags::Webhooks")]
impl WebhooksApi {
    /// Register a webhook. The answer holds its secret, shown only here.
    #[oai(path = "/v1/webhooks", method = "post", operation_id = "createWebhook")]
    async fn create(
        &self,
        auth: MasterAuth,
        state: Data<&Arc<ServerState>>,
        body: JsonBody<CreateWebhookRequest>,
    ) -> ApiResult<WebhookCreated> {
        let req = body.0;
        let event_types = names(&req.event_types);
        let (w, secret) = state.core.create_webhook(&auth.0, &req.url.0, &event_types, req.description).await?;
        Ok(WebhookCreated::Created(Json(CreatedWebhookDto {
            id: w.id.as_uuid(),
            url: w.url,
            event_types: w.events.to_wire(),
            active: w.active,
            description: w.description,
            secret: secret.expose().to_owned(),
            created_at: w.created_at.0,
        })))
    }

    /// List webhooks, newest first (no secrets).
    #[oai(path = "/v1/webhooks", method = "get", operation_id = "listWebhooks")]
    async fn list(
        &self,
        _auth: MasterAuth,
        state: Data<&Arc<ServerState>>,
        /// `nextCursor` of the previous page.
        cursor: Query<Option<String>>,
        /// Page size, 1 to 200 (default 50).
        limit: Query<Option<PageLimit>>,
    ) -> ApiResult<Json<WebhookPage>> {
        let result = state.core.list_webhooks(cursor.0.as_deref(), limit.0.map(|l| l.0)).await?;
        let (data, next_cursor, has_more) = page(result, WebhookDto::from);
        Ok(Json(WebhookPage { data, next_cursor, has_more }))
    }

    /// Read one webhook.
    #[oai(path = "/v1/webhooks/:id", method = "get", operation_id = "getWebhook")]
    async fn get(
        &self,
        _auth: MasterAuth,
        state: Data<&Arc<ServerState>>,
        id: Path<Uuid>,
    ) -> ApiResult<Json<WebhookDto>> {
        Ok(Json(state.core.webhook(WebhookId::from_uuid(id.0)).await?.into()))
    }

    /// Change a webhook's URL, event types, state or description.
    #[oai(path = "/v1/webhooks/:id", method = "patch", operation_id = "updateWebhook")]
    async fn update(
        &self,
        auth: MasterAuth,
        state: Data<&Arc<ServerState>>,
        id: Path<Uuid>,
        body: JsonBody<UpdateWebhookRequest>,
    ) -> ApiResult<Json<WebhookDto>> {
        let req = body.0;
        let description = match req.description {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(d) => Some(Some(d)),
        };
        let event_types = req.event_types.as_deref().map(names);
        let patch = WebhookPatch { url: req.url.map(|url| url.0), event_types, active: req.active, description };
        Ok(Json(state.core.update_webhook(&auth.0, WebhookId::from_uuid(id.0), patch).await?.into()))
    }

    /// Delete a webhook: its pending deliveries are dropped, its log is kept. Returns it as it was.
    #[oai(path = "/v1/webhooks/:id", method = "delete", operation_id = "deleteWebhook")]
    async fn delete(
        &self,
        auth: MasterAuth,
        state: Data<&Arc<ServerState>>,
        id: Path<Uuid>,
    ) -> ApiResult<Json<WebhookDto>> {
        Ok(Json(state.core.delete_webhook(&auth.0, WebhookId::from_uuid(id.0)).await?.into()))
    }

    /// The webhook's delivery attempts, newest first.
    #[oai(path = "/v1/webhooks/:id/logs", method = "get", operation_id = "listWebhookLogs")]
    async fn logs(
        &self,
        _auth: MasterAuth,
        state: Data<&Arc<ServerState>>,
        id: Path<Uuid>,
        /// Only attempts that left their delivery in this state.
        status: Query<Option<DeliveryStatusDto>>,
        /// `nextCursor` of the previous page.
        cursor: Query<Option<String>>,
        /// Page size, 1 to 200 (default 50).
        limit: Query<Option<PageLimit>>,
    ) -> ApiResult<Json<WebhookLogPage>> {
        let status = status.0.map(|s| match s {
            DeliveryStatusDto::Success => "success",
            DeliveryStatusDto::Failed => "failed",
            DeliveryStatusDto::Pending => "pending",
        });
        let result = state
            .core
            .webhook_logs(WebhookId::from_uuid(id.0), status, cursor.0.as_deref(), limit.0.map(|l| l.0))
            .await?;
        let (data, next_cursor, has_more) = page(result, WebhookLogDto::from);
        Ok(Json(WebhookLogPage { data, next_cursor, has_more }))
    }

    /// Replace the secret. The new one is shown once; during the grace period deliveries carry a signature with
    /// each.
    #[oai(path = "/v1/webhooks/:id/rotate-secret", method = "post", operation_id = "rotateWebhookSecret")]
    async fn rotate(
        &self,
        auth: MasterAuth,
        state: Data<&Arc<ServerState>>,
        id: Path<Uuid>,
    ) -> ApiResult<Json<RotatedSecretDto>> {
        let (w, secret, until) = state.core.rotate_webhook_secret(&auth.0, WebhookId::from_uuid(id.0)).await?;
        Ok(Json(RotatedSecretDto {
            id: w.id.as_uuid(),
            secret: secret.expose().to_owned(),
            previous_secret_valid_until: until.0,
        }))
    }

    /// Send a `WEBHOOK_TEST` event to this webhook through the real delivery path.
    #[oai(path = "/v1/webhooks/:id/test", method = "post", operation_id = "testWebhook")]
    async fn test(
        &self,
        auth: MasterAuth,
        state: Data<&Arc<ServerState>>,
        id: Path<Uuid>,
    ) -> ApiResult<DeliveryQueued> {
        let delivery_id = state.core.test_webhook(&auth.0, WebhookId::from_uuid(id.0)).await?;
        Ok(DeliveryQueued::Accepted(Json(DeliveryQueuedDto { delivery_id })))
    }

    /// Queue a past delivery again (same `webhook-id`, a new series of attempts).
    #[oai(
        path = "/v1/webhooks/:id/deliveries/:delivery_id/redeliver",
        method = "post",
        operation_id = "redeliverWebhook"
    )]
    async fn redeliver(
        &self,
        _auth: MasterAuth,
        state: Data<&Arc<ServerState>>,
        id: Path<Uuid>,
        /// `evt_<n>`, from the logs.
        delivery_id: Path<String>,
    ) -> ApiResult<DeliveryQueued> {
        state.core.redeliver_webhook(WebhookId::from_uuid(id.0), &delivery_id.0).await?;
        Ok(DeliveryQueued::Accepted(Json(DeliveryQueuedDto { delivery_id: delivery_id.0 })))
    }
}

/// The event filter as the core reads it.
fn names(filter: &[Wire<EventFilterName>]) -> Vec<String> {
    filter.iter().map(|name| name.0.as_str().to_owned()).collect()
}
