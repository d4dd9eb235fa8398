//! Client errors: the daemon's error body (`{code, message, retryable, details?, requestId, hint?}`) as a typed
//! [`ClientError::Api`], plus transport and decoding failures.
//!
//! A non-2xx answer whose body is not the daemon's error shape (a proxy's HTML page, an empty 404 from the
//! router) still becomes `Api`, with the synthetic code `HTTP_<status>` and the start of the body as the message,
//! so callers can always match on `status` and `code`.

use serde::Deserialize;

/// Longest slice of an unparseable body kept in a synthetic error message.
const MAX_RAW_MESSAGE: usize = 200;

/// Everything a client call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon answered with a non-2xx status.
    #[error("{code} ({status}): {message}")]
    Api {
        status: u16,
        /// Machine-readable code, e.g. `INVALID_MASTER_PASSWORD` (or `HTTP_<status>` when the body was not the
        /// daemon's error shape).
        code: String,
        message: String,
        retryable: bool,
        details: Option<serde_json::Value>,
        /// The daemon's request id (from the body, else the `X-Request-Id` header).
        request_id: Option<String>,
        hint: Option<String>,
    },
    /// The request did not complete: connection refused, timeout, malformed URL, ...
    #[error("transport error: {0}")]
    Transport(String),
    /// A 2xx answer whose body did not have the expected shape.
    #[error("cannot decode the daemon's response: {0}")]
    Decode(String),
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

impl ClientError {
    /// The HTTP status of an `Api` error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The error code of an `Api` error.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether retrying the same request may succeed (the daemon's `retryable`; transport errors are retryable).
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Api { retryable, .. } => *retryable,
            ClientError::Transport(_) => true,
            ClientError::Decode(_) => false,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    code: String,
    message: String,
    #[serde(default)]
    retryable: bool,
    #[serde(default)]
    details: Option<serde_json::Value>,
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    hint: Option<String>,
}

/// Builds the error for a non-2xx answer from its status, its `X-Request-Id` header (if any) and its body.
pub fn api_error(status: u16, header_request_id: Option<&str>, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(parsed) => ClientError::Api {
            status,
            code: parsed.code,
            message: parsed.message,
            retryable: parsed.retryable,
            details: parsed.details.filter(|d| !d.is_null()),
            request_id: parsed.request_id.or_else(|| header_request_id.map(str::to_owned)),
            hint: parsed.hint,
        },
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            let message = if text.is_empty() {
                format!("HTTP status {status}")
            } else {
                text.chars().take(MAX_RAW_MESSAGE).collect()
            };
            ClientError::Api {
                status,
                code: format!("HTTP_{status}"),
                message,
                retryable: matches!(status, 429 | 502 | 503 | 504),
                details: None,
                request_id: header_request_id.map(str::to_owned),
                hint: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The parts of an `Api` error a test compares.
    #[derive(Debug, PartialEq)]
    struct Parsed {
        status: u16,
        code: String,
        message: String,
        retryable: bool,
        details: Option<serde_json::Value>,
        request_id: Option<String>,
        hint: Option<String>,
    }

    #[track_caller]
    fn check(status: u16, header_request_id: Option<&str>, body: &[u8], expected: Parsed) {
        match api_error(status, header_request_id, body) {
            ClientError::Api { status, code, message, retryable, details, request_id, hint } => {
                let got = Parsed { status, code, message, retryable, details, request_id, hint };
                assert_eq!(got, expected, "body {:?}", String::from_utf8_lossy(body));
            }
            other => panic!("expected Api, got {other:?}"),
        }
    }

    #[test]
    fn parses_the_daemons_error_body() {
        check(
            401,
            None,
            br#"{"code":"INVALID_MASTER_PASSWORD","message":"wrong password","retryable":false,"requestId":"r-1","hint":"check the X-Master-Password header"}"#,
            Parsed {
                status: 401,
                code: "INVALID_MASTER_PASSWORD".into(),
                message: "wrong password".into(),
                retryable: false,
                details: None,
                request_id: Some("r-1".into()),
                hint: Some("check the X-Master-Password header".into()),
            },
        );
        check(
            400,
            Some("from-header"),
            br#"{"code":"VALIDATION_FAILED","message":"name: required","retryable":false,"details":{"issues":[{"path":"name","message":"required"}]},"requestId":"r-2"}"#,
            Parsed {
                status: 400,
                code: "VALIDATION_FAILED".into(),
                message: "name: required".into(),
                retryable: false,
                details: Some(json!({"issues":[{"path":"name","message":"required"}]})),
                request_id: Some("r-2".into()),
                hint: None,
            },
        );
        // Optional fields absent or null; the request id falls back to the header.
        check(
            502,
            Some("hdr-3"),
            br#"{"code":"CHAIN_ERROR","message":"node down","retryable":true,"details":null,"hint":null}"#,
            Parsed {
                status: 502,
                code: "CHAIN_ERROR".into(),
                message: "node down".into(),
                retryable: true,
                details: None,
                request_id: Some("hdr-3".into()),
                hint: None,
            },
        );
        // Unknown extra fields are tolerated.
        check(
            503,
            None,
            br#"{"code":"SYSTEM_LOCKED","message":"locked","retryable":false,"requestId":"r-4","extra":1}"#,
            Parsed {
                status: 503,
                code: "SYSTEM_LOCKED".into(),
                message: "locked".into(),
                retryable: false,
                details: None,
                request_id: Some("r-4".into()),
                hint: None,
            },
        );
    }

    #[test]
    fn foreign_bodies_become_synthetic_codes() {
        check(
            404,
            None,
            b"",
            Parsed {
                status: 404,
                code: "HTTP_404".into(),
                message: "HTTP status 404".into(),
                retryable: false,
                details: None,
                request_id: None,
                hint: None,
            },
        );
        check(
            502,
            Some("x"),
            b"<html>Bad Gateway</html>\n",
            Parsed {
                status: 502,
                code: "HTTP_502".into(),
                message: "<html>Bad Gateway</html>".into(),
                retryable: true,
                details: None,
                request_id: Some("x".into()),
                hint: None,
            },
        );
        // JSON, but not the error shape (no code).
        check(
            400,
            None,
            br#"{"message":"nope"}"#,
            Parsed {
                status: 400,
                code: "HTTP_400".into(),
                message: r#"{"message":"nope"}"#.into(),
                retryable: false,
                details: None,
                request_id: None,
                hint: None,
            },
        );
    }

    #[test]
    fn long_foreign_bodies_are_truncated() {
        let body = "x".repeat(1000);
        match api_error(500, None, body.as_bytes()) {
            ClientError::Api { message, .. } => assert_eq!(message.len(), MAX_RAW_MESSAGE),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn accessors() {
        let err = api_error(429, None, br#"{"code":"RATE_LIMITED","message":"slow down","retryable":true}"#);
        assert_eq!(err.status(), Some(429));
        assert_eq!(err.code(), Some("RATE_LIMITED"));
        assert!(err.is_retryable());
        let transport = ClientError::Transport("refused".into());
        assert_eq!(transport.status(), None);
        assert_eq!(transport.code(), None);
        assert!(transport.is_retryable());
        assert!(!ClientError::Decode("bad".into()).is_retryable());
    }
}
