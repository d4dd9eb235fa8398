//! Error helpers: filesystem failures become `INTERNAL_ERROR` for the caller while the path and OS error are kept
//! as the internal cause, for the log (paths are internal details and are not sent to API clients).

use std::io;
use std::path::{Path, PathBuf};

use waiaas_core::Error;

/// An IO failure with the action and the path it concerned. Carried as [`Error::internal`]'s cause.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {}: {source}", path.display())]
pub struct FsIoError {
    /// What was being done, e.g. "create directory".
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// Wraps an IO error as an internal [`Error`] whose cause names the action and the path; a full device is
/// `STORAGE_FULL` (the client can act on it), with the same cause for the log.
pub(crate) fn io_err(action: &'static str, path: &Path, source: io::Error) -> Error {
    let full = matches!(source.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded);
    let error = Error::internal(FsIoError { action, path: path.to_path_buf(), source });
    match full {
        true => {
            Error { code: waiaas_core::ErrorCode::StorageFull, message: "no space left on the device".into(), ..error }
        }
        false => error,
    }
}

/// `.map_err(io_ctx("open", path))` shorthand.
pub(crate) fn io_ctx<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| io_err(action, path, source)
}
