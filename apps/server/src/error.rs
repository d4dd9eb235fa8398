//! The one conversion point from failures to HTTP error responses.
//!
//! Handlers return [`ApiError`] (a core [`waiaas_core::Error`] in a poem-compatible wrapper). Every other failure
//! poem or poem-openapi produces (unparsable path or query parameters, unknown routes, wrong methods, unreadable
//! bodies) is classified into a core error by [`classify`]. [`render`] then writes the single error shape
//! `{code, message, retryable, details?, requestId, hint?}` with the status from [`ErrorCode::info`]; the
//! middleware in [`crate::middleware`] is the only caller. Internal causes are logged here and never sent.

use poem::error::{
    MethodNotAllowedError, NotFoundError, ParseJsonError, ParsePathError as PoemParsePathError, ReadBodyError,
    ResponseError,
};
use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::error::{
    ContentTypeError, ParseMultipartError, ParseParamError, ParsePathError, ParseRequestPayloadError,
};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::{ToJSON, Type};
use poem_openapi::{ApiResponse, Object, OperationId};
use serde_json::Value;
use uuid::Uuid;
use waiaas_core::{Error, ErrorCode};

use crate::wire::Wire;

/// The body of every error response.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct ErrorBody {
    pub code: Wire<ErrorCode>,
    /// Human-readable; safe to show. `INTERNAL_ERROR` always says only "internal error".
    pub message: String,
    /// Whether repeating the same request later can succeed.
    pub retryable: bool,
    /// Structured details. For `VALIDATION_FAILED`: `{"issues": [{"path": "...", "message": "..."}]}`.
    #[oai(skip_serializing_if_is_none)]
    pub details: Option<Value>,
    /// Also sent as the `X-Request-Id` response header; quote it when reporting a problem.
    pub request_id: Uuid,
    /// What the caller can do about it.
    #[oai(skip_serializing_if_is_none)]
    pub hint: Option<String>,
}

/// A failed request, as returned by handlers and extractors.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ApiError(#[from] pub Error);

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError(Error::new(code, message))
    }

    pub fn invalid_field(path: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError(Error::invalid_field(path, message))
    }

    pub fn code(&self) -> ErrorCode {
        self.0.code
    }
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;

fn status_of(code: ErrorCode) -> StatusCode {
    StatusCode::from_u16(code.info().http_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        status_of(self.0.code)
    }
}

impl ApiResponse for ApiError {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "Error. The HTTP status follows `code` (see the ErrorCode schema).",
                status: None,
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: "application/json; charset=utf-8",
                    schema: ErrorBody::schema_ref(),
                }],
                headers: Vec::new(),
            }],
        }
    }

    fn register(registry: &mut Registry) {
        ErrorBody::register(registry);
    }
}

/// What the request was, for messages about unknown routes.
#[derive(Clone, Debug)]
pub struct RequestLine {
    pub method: String,
    pub path: String,
}

/// Turns any failure that reached the top of the route tree into a core error.
pub fn classify(err: poem::Error, request: &RequestLine) -> Error {
    let err = match err.downcast::<ApiError>() {
        Ok(api) => return api.0,
        Err(other) => other,
    };
    if let Some(e) = err.downcast_ref::<ParsePathError>() {
        let name = err
            .data::<OperationId>()
            .and_then(|op| crate::openapi::path_param_name(op.0, e.name))
            .unwrap_or_else(|| e.name.to_owned());
        return Error::invalid_field(name, plain_reason(&e.reason));
    }
    if let Some(e) = err.downcast_ref::<ParseParamError>() {
        return Error::invalid_field(e.name, plain_reason(&e.reason));
    }
    if let Some(e) = err.downcast_ref::<ParseRequestPayloadError>() {
        return Error::invalid_field("body", e.reason.clone());
    }
    if let Some(e) = err.downcast_ref::<ParseMultipartError>() {
        return Error::invalid_field("body", e.reason.clone());
    }
    if let Some(e) = err.downcast_ref::<ParseJsonError>() {
        return Error::invalid_field("body", e.to_string());
    }
    if let Some(e) = err.downcast_ref::<ContentTypeError>() {
        let declared = match e {
            ContentTypeError::ExpectContentType => None,
            ContentTypeError::NotSupported { content_type } => Some(content_type.as_str()),
        };
        return crate::body::unsupported_media_type(declared);
    }
    if let Some(e) = err.downcast_ref::<PoemParsePathError>() {
        return Error::invalid_field("path", e.to_string());
    }
    if let Some(e) = err.downcast_ref::<ReadBodyError>() {
        return match e {
            ReadBodyError::BodyHasBeenTaken => Error::internal_msg("request body read twice"),
            ReadBodyError::PayloadTooLarge => crate::body::too_large(),
            other => Error::invalid_field("body", other.to_string()),
        };
    }
    if err.is::<MethodNotAllowedError>() {
        return method_not_allowed(request, &[]);
    }
    if err.is::<NotFoundError>() {
        return not_found(request);
    }
    by_status(err, request)
}

/// A parameter parse failure in the daemon's own wording: poem-openapi's `failed to parse "string_uuid": ...` and
/// `(occurred while parsing "integer(page_limit)")` name its internal type names, which mean nothing to a client.
fn plain_reason(reason: &str) -> String {
    let mut reason = reason.trim();
    while let Some(start) = reason.rfind(" (occurred while parsing \"")
        && reason.ends_with("\")")
    {
        reason = &reason[..start];
    }
    if let Some(rest) = reason.strip_prefix("failed to parse \"")
        && let Some((type_name, message)) = rest.split_once("\": ")
    {
        return match type_name {
            "string_uuid" => "must be a UUID".to_owned(),
            _ => plain_reason(message),
        };
    }
    if let Some(validator) = reason.strip_prefix("verification failed. ") {
        return match validator.strip_prefix("pattern(\"").and_then(|p| p.strip_suffix("\")")) {
            Some(pattern) => format!("must match {pattern}"),
            None => format!("must satisfy {validator}"),
        };
    }
    if reason.starts_with("Type \"") && reason.ends_with("expects an input value.") {
        return "is required".to_owned();
    }
    reason.to_owned()
}

fn not_found(request: &RequestLine) -> Error {
    Error::new(ErrorCode::NotFound, format!("no route for {} {}", request.method, request.path))
}

/// 405 for a path that exists with other methods; `allowed` (when known) goes into the details and, through
/// [`render`], the `Allow` header.
pub fn method_not_allowed(request: &RequestLine, allowed: &[String]) -> Error {
    let takes = if allowed.is_empty() { String::new() } else { format!("; it takes {}", allowed.join(", ")) };
    Error::new(ErrorCode::MethodNotAllowed, format!("{} does not take {}{takes}", request.path, request.method))
        .with_details(serde_json::json!({ "allowed": allowed }))
}

/// Anything else poem produced: classified by its status alone.
fn by_status(err: poem::Error, request: &RequestLine) -> Error {
    let status = err.status();
    let text = err.to_string();
    match status.as_u16() {
        400 | 411 | 414 | 422 | 431 => Error::invalid_field("body", text),
        413 => crate::body::too_large(),
        415 => crate::body::unsupported_media_type(None),
        401 => Error::new(ErrorCode::Unauthorized, "this endpoint needs credentials"),
        403 => Error::new(ErrorCode::Forbidden, "forbidden"),
        404 => not_found(request),
        405 => method_not_allowed(request, &[]),
        429 => Error::new(ErrorCode::RateLimited, "too many requests"),
        _ => Error::internal_msg(format!("unclassified error ({status}): {text}")),
    }
}

/// Writes the error response. The one place that decides what a client sees of a failure.
pub fn render(err: &Error, request_id: Uuid) -> Response {
    let info = err.code.info();
    let internal = err.code == ErrorCode::InternalError;
    if let Some(cause) = &err.internal {
        if info.http_status >= 500 {
            tracing::error!(request_id = %request_id, code = %err.code, cause = %cause, "request failed");
        } else {
            tracing::warn!(request_id = %request_id, code = %err.code, cause = %cause, "request failed");
        }
    } else if internal {
        tracing::error!(request_id = %request_id, message = %err.message, "internal error");
    }
    let body = ErrorBody {
        code: Wire(err.code),
        message: if internal { "internal error".to_owned() } else { err.message.clone() },
        retryable: info.retryable,
        details: if internal { None } else { err.details.clone() },
        request_id,
        hint: info.hint.map(str::to_owned),
    };
    let mut resp = poem::web::Json(body.to_json().unwrap_or(Value::Null)).into_response();
    resp.set_status(status_of(err.code));
    let retry_after = body.details.as_ref().and_then(|d| d.get("retryAfterSeconds")).and_then(Value::as_u64);
    if let Some(seconds) = retry_after {
        resp.headers_mut().insert(poem::http::header::RETRY_AFTER, seconds.into());
    }
    if err.code == ErrorCode::MethodNotAllowed {
        let allowed = body.details.as_ref().and_then(|d| d.get("allowed")).and_then(Value::as_array);
        let list = allowed.into_iter().flatten().filter_map(Value::as_str).collect::<Vec<_>>().join(", ");
        if let Ok(value) = poem::http::HeaderValue::from_str(&list) {
            resp.headers_mut().insert(poem::http::header::ALLOW, value);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line() -> RequestLine {
        RequestLine { method: "GET".into(), path: "/nope".into() }
    }

    #[track_caller]
    fn check(err: poem::Error, code: ErrorCode, issue_path: Option<&str>) {
        let classified = classify(err, &line());
        assert_eq!(classified.code, code, "{classified:?}");
        if let Some(path) = issue_path {
            let details = classified.details.expect("validation details");
            assert_eq!(details["issues"][0]["path"], path);
        }
    }

    #[test]
    fn poem_errors_are_classified() {
        check(NotFoundError.into(), ErrorCode::NotFound, None);
        check(MethodNotAllowedError.into(), ErrorCode::MethodNotAllowed, None);
        check(
            ParseParamError { name: "limit", reason: "bad".into() }.into(),
            ErrorCode::ValidationFailed,
            Some("limit"),
        );
        check(ParsePathError { name: "id", reason: "bad".into() }.into(), ErrorCode::ValidationFailed, Some("id"));
        check(ParseRequestPayloadError { reason: "bad".into() }.into(), ErrorCode::ValidationFailed, Some("body"));
        check(ContentTypeError::ExpectContentType.into(), ErrorCode::UnsupportedMediaType, None);
        check(ReadBodyError::PayloadTooLarge.into(), ErrorCode::PayloadTooLarge, None);
        check(poem::Error::from_status(StatusCode::PAYLOAD_TOO_LARGE), ErrorCode::PayloadTooLarge, None);
        check(ApiError::new(ErrorCode::WrongAuth, "x").into(), ErrorCode::WrongAuth, None);
        check(poem::Error::from_status(StatusCode::UNAUTHORIZED), ErrorCode::Unauthorized, None);
        check(poem::Error::from_status(StatusCode::BAD_GATEWAY), ErrorCode::InternalError, None);
    }

    #[test]
    fn parse_failures_do_not_name_internal_type_names() {
        let reason = |r: &str| {
            let e = classify(ParsePathError { name: "id", reason: r.into() }.into(), &line());
            e.details.expect("issues")["issues"][0]["message"].as_str().expect("message").to_owned()
        };
        assert_eq!(reason(r#"failed to parse "string_uuid": invalid character: found `n` at 1"#), "must be a UUID");
        assert_eq!(
            reason(
                r#"failed to parse "integer(strict)": must be an integer (decimal digits only) (occurred while parsing "integer(page_limit)")"#
            ),
            "must be an integer (decimal digits only)"
        );
        assert_eq!(
            reason(r#"failed to parse "integer(page_limit)": must be between 1 and 200"#),
            "must be between 1 and 200"
        );
        assert_eq!(reason(r#"Type "string_uuid" expects an input value."#), "is required");
        assert_eq!(reason(r#"verification failed. pattern("^0x[0-9a-fA-F]{40}$")"#), "must match ^0x[0-9a-fA-F]{40}$");
        assert_eq!(reason("plain words"), "plain words");
    }

    async fn body_of(resp: Response) -> (StatusCode, Value) {
        let status = resp.status();
        let bytes = resp.into_body().into_vec().await.expect("body");
        (status, serde_json::from_slice(&bytes).expect("json body"))
    }

    /// Every code of the table renders with its status, retryability and hint.
    #[tokio::test]
    async fn every_code_renders_from_the_table() {
        let id = Uuid::nil();
        for code in ErrorCode::ALL {
            let (status, body) = body_of(render(&Error::new(*code, "m"), id)).await;
            let info = code.info();
            assert_eq!(status.as_u16(), info.http_status, "{code}");
            assert_eq!(body["code"], code.as_str());
            assert_eq!(body["retryable"], info.retryable);
            assert_eq!(body["requestId"], id.to_string());
            assert_eq!(body.get("hint").and_then(Value::as_str), info.hint, "{code}");
            assert!(body.get("details").is_none());
        }
    }

    #[tokio::test]
    async fn internal_errors_say_nothing_more() {
        let err = Error::internal_msg("db path /secret/place").with_details(serde_json::json!({"x": 1}));
        let (status, body) = body_of(render(&err, Uuid::nil())).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["message"], "internal error");
        assert!(body.get("details").is_none());
        assert!(!body.to_string().contains("secret"));
    }

    #[tokio::test]
    async fn rate_limits_carry_retry_after() {
        let err =
            Error::new(ErrorCode::RateLimited, "slow down").with_details(serde_json::json!({"retryAfterSeconds": 42}));
        let resp = render(&err, Uuid::nil());
        assert_eq!(resp.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("42"));
        let (status, body) = body_of(resp).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(body["details"]["retryAfterSeconds"], 42);
    }

    #[tokio::test]
    async fn validation_details_are_kept() {
        let (status, body) = body_of(render(&Error::invalid_field("name", "required"), Uuid::nil())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["details"]["issues"], serde_json::json!([{"path": "name", "message": "required"}]));
    }
}
