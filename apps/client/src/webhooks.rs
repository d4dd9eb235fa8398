//! OPS-04 over the API: webhooks, their delivery log, secret rotation, test pings and redeliveries (master
//! password).

use serde::{Deserialize, Serialize};

use crate::types::Page;
use crate::{Auth, Client, Result, page_query, push, seg, with_query};

/// A webhook (never its secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub id: String,
    pub url: String,
    pub event_types: Vec<String>,
    pub active: bool,
    #[serde(default)]
    pub description: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// `POST /v1/webhooks` answer: the webhook and its secret (shown only here).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedWebhook {
    pub id: String,
    pub url: String,
    pub event_types: Vec<String>,
    pub active: bool,
    #[serde(default)]
    pub description: Option<String>,
    pub secret: String,
    pub created_at: i64,
}

/// `POST /v1/webhooks` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateWebhook {
    pub url: String,
    /// Event type names, or `["*"]`.
    pub event_types: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `PATCH /v1/webhooks/{id}` body; absent fields stay.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateWebhook {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_types: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// One delivery attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookLog {
    pub delivery_id: String,
    pub event_type: String,
    pub attempt: u32,
    /// `success`, `pending` or `failed`.
    pub status: String,
    #[serde(default)]
    pub status_code: Option<u16>,
    pub response_time_ms: u64,
    #[serde(default)]
    pub error: Option<String>,
    pub created_at: i64,
}

/// `GET /v1/webhooks/{id}/logs` filters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WebhookLogFilter {
    /// `success`, `failed` or `pending`.
    pub status: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// The new secret after a rotation.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RotatedSecret {
    pub id: String,
    pub secret: String,
    pub previous_secret_valid_until: i64,
}

/// A queued delivery (test ping, redelivery).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryQueued {
    pub delivery_id: String,
}

impl Client {
    pub fn create_webhook(&self, request: &CreateWebhook) -> Result<CreatedWebhook> {
        self.call("POST", "/v1/webhooks", Auth::Master, Some(request))
    }

    pub fn list_webhooks(&self, cursor: Option<&str>, limit: Option<u32>) -> Result<Page<Webhook>> {
        self.call("GET", &with_query("/v1/webhooks", &page_query(cursor, limit)), Auth::Master, None::<&()>)
    }

    pub fn get_webhook(&self, id: &str) -> Result<Webhook> {
        self.call("GET", &format!("/v1/webhooks/{}", seg(id)), Auth::Master, None::<&()>)
    }

    pub fn update_webhook(&self, id: &str, request: &UpdateWebhook) -> Result<Webhook> {
        self.call("PATCH", &format!("/v1/webhooks/{}", seg(id)), Auth::Master, Some(request))
    }

    /// Deletes a webhook (pending deliveries dropped, log kept) and returns it as it was.
    pub fn delete_webhook(&self, id: &str) -> Result<Webhook> {
        self.call("DELETE", &format!("/v1/webhooks/{}", seg(id)), Auth::Master, None::<&()>)
    }

    /// The webhook's delivery attempts, newest first.
    pub fn webhook_logs(&self, id: &str, filter: &WebhookLogFilter) -> Result<Page<WebhookLog>> {
        let mut query = Vec::new();
        push(&mut query, "status", filter.status.as_deref());
        query.extend(page_query(filter.cursor.as_deref(), filter.limit));
        let path = with_query(&format!("/v1/webhooks/{}/logs", seg(id)), &query);
        self.call("GET", &path, Auth::Master, None::<&()>)
    }

    pub fn rotate_webhook_secret(&self, id: &str) -> Result<RotatedSecret> {
        self.call("POST", &format!("/v1/webhooks/{}/rotate-secret", seg(id)), Auth::Master, None::<&()>)
    }

    /// Sends a `WEBHOOK_TEST` ping to this webhook through the delivery path.
    pub fn test_webhook(&self, id: &str) -> Result<DeliveryQueued> {
        self.call("POST", &format!("/v1/webhooks/{}/test", seg(id)), Auth::Master, None::<&()>)
    }

    pub fn redeliver_webhook(&self, id: &str, delivery_id: &str) -> Result<DeliveryQueued> {
        let path = format!("/v1/webhooks/{}/deliveries/{}/redeliver", seg(id), seg(delivery_id));
        self.call("POST", &path, Auth::Master, None::<&()>)
    }
}
