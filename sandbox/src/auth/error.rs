//! GoTrue's error responses (internal/api/errors.go). The body's shape depends on the request's
//! `X-Supabase-Api-Version`: from `2024-01-01` on `{"code": "<error_code>", "message"}` (and the header is echoed),
//! before it (or without it) `{"code": <status>, "error_code", "msg"}`. Both carry `x-sb-error-code`.
//!
//! Handlers return an [`AuthError`]; its response carries the error as an extension and [`render`] (a
//! middleware, which sees the request's headers) writes the body in the shape the caller asked for.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

pub const API_VERSION_HEADER: &str = "x-supabase-api-version";
/// The newest API version GoTrue knows: a requested date on or after it selects it.
const API_VERSION_2024: &str = "2024-01-01";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// GoTrue answers a few `/token` errors in OAuth's shape, `{"error", "error_description"}`, whatever the version.
    pub oauth: bool,
}

impl AuthError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> AuthError {
        AuthError { status, code, message: message.into(), oauth: false }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> AuthError {
        AuthError::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> AuthError {
        AuthError::new(StatusCode::FORBIDDEN, code, message)
    }
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> AuthError {
        AuthError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
    pub fn internal(message: impl Into<String>) -> AuthError {
        AuthError::new(StatusCode::INTERNAL_SERVER_ERROR, "unexpected_failure", message)
    }
    /// OAuth's error shape (`oauthError` in GoTrue), always 400.
    pub fn oauth(error: &'static str, description: impl Into<String>) -> AuthError {
        AuthError { oauth: true, ..AuthError::bad_request(error, description) }
    }

    /// The response for a caller that did (`versioned`) or did not ask for API version 2024-01-01.
    pub fn render(&self, versioned: bool) -> Response {
        let body = if self.oauth {
            json!({ "error": self.code, "error_description": self.message })
        } else if versioned {
            json!({ "code": self.code, "message": self.message })
        } else {
            json!({ "code": self.status.as_u16(), "error_code": self.code, "msg": self.message })
        };
        let mut response = (self.status, Json(body)).into_response();
        if !self.oauth {
            response.headers_mut().insert("x-sb-error-code", HeaderValue::from_static(self.code));
        }
        if versioned {
            response.headers_mut().insert(API_VERSION_HEADER, HeaderValue::from_static(API_VERSION_2024));
        }
        response
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        // Rendered for real by `render`, which knows the request's version; this is what it would be without.
        let mut response = self.render(false);
        response.extensions_mut().insert(self);
        response
    }
}

/// Whether the request selects API version 2024-01-01 (GoTrue's `DetermineClosestAPIVersion`: a `YYYY-MM-DD`
/// date on or after it; anything else is the initial version).
pub fn wants_2024(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(API_VERSION_HEADER).and_then(|v| v.to_str().ok()) else { return false };
    match chrono::NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d") {
        Ok(date) => date >= chrono::NaiveDate::from_ymd_opt(2024, 1, 1).expect("a valid date"),
        Err(_) => false,
    }
}

/// Middleware: re-renders an [`AuthError`] response in the shape the request asked for.
pub async fn render(request: Request, next: Next) -> Response {
    let versioned = wants_2024(request.headers());
    let response = next.run(request).await;
    match response.extensions().get::<AuthError>() {
        Some(error) if versioned => error.render(true),
        _ => response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn both_shapes_carry_the_code_header() {
        let error = AuthError::forbidden("otp_expired", "Token has expired or is invalid");
        let new = error.render(true);
        assert_eq!(new.status(), 403);
        assert_eq!(new.headers()["x-sb-error-code"], "otp_expired");
        assert_eq!(new.headers()[API_VERSION_HEADER], "2024-01-01");
        assert_eq!(body(new).await, json!({"code": "otp_expired", "message": "Token has expired or is invalid"}));
        let old = error.render(false);
        assert_eq!(old.headers()["x-sb-error-code"], "otp_expired");
        assert!(old.headers().get(API_VERSION_HEADER).is_none());
        assert_eq!(
            body(old).await,
            json!({"code": 403, "error_code": "otp_expired", "msg": "Token has expired or is invalid"})
        );
        let oauth = AuthError::oauth("invalid_request", "refresh_token required").render(true);
        assert_eq!(
            body(oauth).await,
            json!({"error": "invalid_request", "error_description": "refresh_token required"})
        );
    }

    #[test]
    fn version_header_selects_by_date() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(API_VERSION_HEADER, v.parse().unwrap());
            wants_2024(&h)
        };
        assert!(with("2024-01-01") && with("2025-06-30"));
        assert!(!with("2023-12-31") && !with("soon") && !wants_2024(&HeaderMap::new()));
    }
}
