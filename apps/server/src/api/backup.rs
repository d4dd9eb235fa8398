//! OPS-03 over HTTP: create an encrypted backup archive now, and list the archives (master password). The
//! archive is sealed with the daemon's master password and written to its `[backup] dir`; the answer names the
//! file, never its contents.

use std::path::PathBuf;
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};
use waiaas_core::backup::Kdf;
use waiaas_core::ports::{BackupInfo, BackupRequest};

use super::ApiTags;
use crate::ServerState;
use crate::auth::MasterAuth;
use crate::body::JsonBody;
use crate::error::ApiResult;

/// Key-derivation function of a new archive.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[oai(rename_all = "lowercase")]
pub enum BackupKdf {
    /// Argon2id, m = 64 MiB, t = 3, p = 4 (default).
    #[default]
    Argon2id,
    /// PBKDF2-HMAC-SHA256, 600,000 iterations (for FIPS environments).
    Pbkdf2,
}

impl From<BackupKdf> for Kdf {
    fn from(k: BackupKdf) -> Kdf {
        match k {
            BackupKdf::Argon2id => Kdf::argon2id_default(),
            BackupKdf::Pbkdf2 => Kdf::pbkdf2_default(),
        }
    }
}

#[derive(Object, Debug, Clone, PartialEq, Default)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateBackupRequest {
    /// Default `argon2id` (also when null).
    #[oai(nullable)]
    pub kdf: Option<BackupKdf>,
    /// An absolute directory on the daemon's host for this archive, instead of `[backup] dir` (created 0700 when
    /// missing; an existing one keeps its mode). Null or absent: `[backup] dir`.
    #[oai(nullable, validator(pattern = "^/"))]
    pub output_dir: Option<String>,
}

/// One archive in the daemon's backup directory.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct BackupDto {
    /// File name inside the backup directory.
    pub name: String,
    /// Absolute path on the daemon's host.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// Unix seconds.
    pub created_at: i64,
}

#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct BackupListDto {
    /// Newest first.
    pub data: Vec<BackupDto>,
    /// Unix seconds of the last successful backup, if any.
    #[oai(skip_serializing_if_is_none)]
    pub last_success_at: Option<i64>,
}

fn dto(info: BackupInfo) -> BackupDto {
    BackupDto { name: info.name, path: info.location, size: info.size, created_at: info.created_at.0 }
}

pub struct BackupApi;

#[OpenApi(tag = "ApiTags::Admin")]
impl BackupApi {
    /// Create an encrypted backup archive now (consistent DB snapshot, keystore files, config), sealed with the
    /// master password, in `[backup] dir` or `outputDir`. Audited as BACKUP_CREATED (or BACKUP_FAILED).
    #[oai(path = "/v1/admin/backup", method = "post", operation_id = "createBackup")]
    async fn create(
        &self,
        auth: MasterAuth,
        state: Data<&Arc<ServerState>>,
        body: JsonBody<CreateBackupRequest, false>,
    ) -> ApiResult<Json<BackupDto>> {
        let CreateBackupRequest { kdf, output_dir } = body.0;
        let request = BackupRequest { kdf: kdf.unwrap_or_default().into(), output_dir: output_dir.map(PathBuf::from) };
        let info = state.core.create_backup(&auth.0, request).await?;
        Ok(Json(dto(info)))
    }

    /// The archives in the backup directory, newest first.
    #[oai(path = "/v1/admin/backups", method = "get", operation_id = "listBackups")]
    async fn list(&self, _auth: MasterAuth, state: Data<&Arc<ServerState>>) -> ApiResult<Json<BackupListDto>> {
        let data = state.core.list_backups().await?.into_iter().map(dto).collect();
        let last_success_at = state.core.last_backup_success().await?.map(|t| t.0);
        Ok(Json(BackupListDto { data, last_success_at }))
    }
}
