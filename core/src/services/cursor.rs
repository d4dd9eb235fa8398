//! Opaque keyset cursors: `base64url(kind ":" position)`. A cursor of another list, or garbage, is
//! `INVALID_CURSOR`, never a silent first page.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{Error, ErrorCode, Result};

/// An opaque pagination cursor for `position` in a listing of `kind` (base64url of `kind:position`).
pub fn encode(kind: &str, position: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{kind}:{position}"))
}

/// The position inside a cursor of `kind`.
pub fn decode(kind: &str, cursor: &str) -> Result<String> {
    let invalid = || Error::new(ErrorCode::InvalidCursor, "cursor is malformed or belongs to another list");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let position = text.strip_prefix(kind).and_then(|rest| rest.strip_prefix(':')).ok_or_else(invalid)?;
    Ok(position.to_owned())
}

/// Decodes a cursor whose position is one value of type `T`.
pub fn decode_parsed<T: std::str::FromStr>(kind: &str, cursor: &str) -> Result<T> {
    decode(kind, cursor)?
        .parse()
        .map_err(|_| Error::new(ErrorCode::InvalidCursor, "cursor is malformed or belongs to another list"))
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let c = encode("agents", "abc");
        assert_eq!(decode("agents", &c).unwrap(), "abc");
        assert_eq!(decode("sessions", &c).unwrap_err().code, ErrorCode::InvalidCursor);
        assert_eq!(decode("agents", "!!!").unwrap_err().code, ErrorCode::InvalidCursor);
        assert_eq!(decode("agents", "").unwrap_err().code, ErrorCode::InvalidCursor);
        assert_eq!(decode_parsed::<i64>("n", &encode("n", "x")).unwrap_err().code, ErrorCode::InvalidCursor);
    }
}
