//! API errors: every error response is `{"code": "...", "message": "..."}` (plus `fields` for
//! `invalid`), with a stable `code`. Internal details are logged, never sent.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::model::FieldErrors;
use super::store::StoreError;

/// Every error code the API returns, with its status (documented in the OpenAPI document).
pub const ERROR_CODES: &[(&str, u16, &str)] = &[
    (
        "invalid",
        400,
        "The request is malformed or a field is invalid (see `fields`).",
    ),
    (
        "unauthenticated",
        401,
        "No valid session (or admin) bearer token.",
    ),
    (
        "session_expired",
        401,
        "The session has expired; log in again.",
    ),
    ("invalid_credentials", 401, "Wrong email or password."),
    (
        "forbidden",
        403,
        "The credentials do not allow this call (or the request did not come through the edge).",
    ),
    (
        "maturity",
        403,
        "The profile's maturity level does not allow the title's rating.",
    ),
    (
        "tier",
        403,
        "The subscription tier allows none of the title's renditions.",
    ),
    (
        "not_available",
        403,
        "The title is outside its availability window.",
    ),
    ("not_found", 404, "The resource does not exist."),
    (
        "profile_not_found",
        404,
        "The profile (X-Profile-Id, or the profile id in the path) does not belong to the \
         account.",
    ),
    (
        "method_not_allowed",
        405,
        "The route does not support this method.",
    ),
    (
        "conflict",
        409,
        "The resource already exists (e.g. email taken, title id in use).",
    ),
    (
        "limit_reached",
        409,
        "A per-account limit is reached (profiles).",
    ),
    ("payload_too_large", 413, "The request body is too large."),
    (
        "unsupported_media_type",
        415,
        "The request body must be `application/json`.",
    ),
    (
        "rate_limited",
        429,
        "Too many attempts (failed logins of the account from this address, failed logins from \
         this address, logins of the account in progress, or registrations from this address); \
         retry after `Retry-After` seconds.",
    ),
    (
        "country",
        451,
        "The title is not available in the viewer's country.",
    ),
    (
        "internal",
        500,
        "An internal error (details are logged, not returned).",
    ),
    (
        "unavailable",
        503,
        "No CDN host is configured, or the database cannot be reached (retry after \
         `Retry-After` seconds).",
    ),
];

/// An error answer of the API.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub fields: Option<FieldErrors>,
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<&'a FieldErrors>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            fields: None,
            retry_after: None,
        }
    }

    pub fn invalid(fields: FieldErrors) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, "invalid", "invalid request");
        if let Some((name, msg)) = fields.iter().next() {
            e.message = format!("invalid field `{name}`: {msg}");
        }
        e.fields = Some(fields);
        e
    }

    pub fn invalid_field(name: &str, msg: impl Into<String>) -> Self {
        let mut f = FieldErrors::new();
        f.insert(name.to_string(), msg.into());
        Self::invalid(f)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", message)
    }

    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "a valid bearer token is required",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn rate_limited(retry_after: u64, message: &str) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
        e.retry_after = Some(retry_after.max(1));
        e
    }

    /// A 500 whose cause is logged here and not returned.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "control: internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => ApiError::conflict(format!("{what} already exists")),
            StoreError::NotFound(what) => ApiError::not_found(what),
            StoreError::LimitReached(what) => ApiError::new(
                StatusCode::CONFLICT,
                "limit_reached",
                format!("the account has the maximum number of {what}"),
            ),
            StoreError::Backend(detail) => ApiError::internal(format_args!("store: {detail}")),
            StoreError::Unavailable(detail) => database_unavailable(&detail),
        }
    }
}

/// A 503 for a database that cannot be reached: the cause is logged, the client is told to
/// retry (the store reconnects by itself).
fn database_unavailable(detail: &str) -> ApiError {
    tracing::warn!(error = %detail, "control: database unavailable");
    let mut e = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the database is unavailable; retry shortly",
    );
    e.retry_after = Some(1);
    e
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            code: self.code,
            message: &self.message,
            fields: self.fields.as_ref(),
        };
        let bytes = serde_json::to_vec(&body)
            .unwrap_or_else(|_| br#"{"code":"internal","message":"internal error"}"#.to_vec());
        let mut r = (self.status, bytes).into_response();
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(s) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"edge\""),
            );
        }
        r
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
