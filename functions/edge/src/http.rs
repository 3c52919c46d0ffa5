//! Building responses and reading requests, the same way on every route.

use outcall_core::config::Config;
use outcall_core::error::{constant_time_eq, ApiError};
use serde::Serialize;
use worker::{Env, Request, Response};

/// What every route returns: a response, or an error that becomes `{"error": {...}}`.
pub type Answer = Result<Response, ApiError>;

pub fn json<T: Serialize>(status: u16, body: &T) -> Answer {
    Response::from_json(body)
        .map(|r| r.with_status(status))
        .map_err(|_| ApiError::new(500, "internal_error", "the response could not be encoded"))
}

pub fn error(error: &ApiError) -> worker::Result<Response> {
    Ok(Response::from_json(&error.body())?.with_status(error.status))
}

/// Reads the configuration from Worker secrets (preferred) or plain vars.
pub fn config(env: &Env) -> Result<Config, ApiError> {
    Config::from_lookup(|name| {
        env.secret(name).map(|s| s.to_string()).or_else(|_| env.var(name).map(|v| v.to_string())).ok()
    })
    .map_err(ApiError::from)
}

pub async fn body_text(req: &mut Request) -> Result<String, ApiError> {
    req.text().await.map_err(|_| ApiError::bad_request("invalid_body", "the request body could not be read"))
}

pub fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

/// Checks a shared-secret header in constant time.
pub fn require_secret(req: &Request, header_name: &str, expected: &str) -> Result<(), ApiError> {
    match header(req, header_name) {
        Some(given) if constant_time_eq(given.as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::unauthorized(format!("{header_name} does not match"))),
        None => Err(ApiError::unauthorized(format!("{header_name} is missing"))),
    }
}
