//! Error mapping: sqlx failures become `INTERNAL_ERROR` (the cause is kept for the log, never sent), stored values
//! that no longer parse are internal errors too, and a missing row becomes the entity's NOT_FOUND code.

use waiaas_core::{Error, ErrorCode};

/// A database failure: the caller sees `INTERNAL_ERROR`; the SQL error stays in the log.
pub(crate) fn db_err(e: sqlx::Error) -> Error {
    Error::internal(e)
}

/// True when `e` is a foreign-key violation (e.g. a session for an agent that does not exist).
pub(crate) fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    e.as_database_error().is_some_and(|d| d.is_foreign_key_violation())
}

/// A stored value that does not parse back into its domain type.
#[derive(Debug, thiserror::Error)]
#[error("{table}.{column}: stored value does not parse: {message}")]
pub(crate) struct DecodeError {
    pub(crate) table: &'static str,
    pub(crate) column: &'static str,
    pub(crate) message: String,
}

/// An internal error for an unreadable stored value.
pub(crate) fn decode_err(table: &'static str, column: &'static str, message: impl ToString) -> Error {
    Error::internal(DecodeError { table, column, message: message.to_string() })
}

/// Parses a stored value with `parse`, reporting the column when it fails.
pub(crate) fn parse_column<T, E: ToString>(
    table: &'static str,
    column: &'static str,
    raw: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, Error> {
    parse(raw).map_err(|e| decode_err(table, column, e))
}

/// The NOT_FOUND error of an update or delete that matched no row.
pub(crate) fn not_found(code: ErrorCode, what: &str, id: impl std::fmt::Display) -> Error {
    Error::new(code, format!("{what} {id} not found"))
}

/// Converts a stored count or counter to an unsigned value.
pub(crate) fn to_u64(table: &'static str, column: &'static str, value: i64) -> Result<u64, Error> {
    u64::try_from(value).map_err(|e| decode_err(table, column, e))
}

/// Parses a stored JSON column.
pub(crate) fn parse_json(table: &'static str, column: &'static str, raw: &str) -> Result<serde_json::Value, Error> {
    serde_json::from_str(raw).map_err(|e| decode_err(table, column, e))
}
