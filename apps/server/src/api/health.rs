//! `GET /health`: liveness, version, schema version and uptime. Public.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::ApiTags;
use crate::ServerState;
use crate::error::ApiResult;

#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct HealthDto {
    /// Always `ok` when the daemon answers.
    pub status: String,
    /// The daemon's version.
    pub version: String,
    /// The version of the database schema (the last applied migration).
    pub schema_version: i64,
    pub uptime_seconds: u64,
}

pub struct HealthApi;

#[OpenApi(tag = "ApiTags::Health")]
impl HealthApi {
    /// Liveness check.
    #[oai(path = "/health", method = "get", operation_id = "health")]
    async fn health(&self, state: Data<&Arc<ServerState>>) -> ApiResult<Json<HealthDto>> {
        Ok(Json(HealthDto {
            status: "ok".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            schema_version: state.schema_version,
            uptime_seconds: state.started_at.elapsed().as_secs(),
        }))
    }
}
