//! `/_sandbox/*`: what the stand-ins received and did, for tests and humans.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use percent_encoding::percent_decode_str;
use serde_json::json;

use crate::state::AppState;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/_sandbox/health", get(|| async { Json(json!({ "ok": true })) }))
        .route("/_sandbox/calls", get(list_calls))
        .route("/_sandbox/calls/{sid}", get(get_call))
        .route("/_sandbox/webhooks", get(webhooks))
        .route("/_sandbox/reset", post(reset))
        .route("/_sandbox/gateway", get(gateway_counts))
        .route("/_sandbox/gateway/reset", post(reset_gateway_counts))
        .route("/_sandbox/stats", get(stats))
        .route("/_sandbox/stats/reset", post(reset_stats))
        .route("/_sandbox/stt", get(stt_connections))
        .route("/_sandbox/auth/messages", get(auth_messages))
}

/// The sandbox's own error shape.
pub fn api_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": { "code": code, "message": message.into() } }))).into_response()
}

/// A query parameter, percent-decoded without turning `+` into a space, so
/// `?to=+15550001001` works as typed.
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| percent_decode_str(v).decode_utf8_lossy().into_owned())
}

async fn list_calls(State(state): State<Arc<AppState>>, RawQuery(query): RawQuery) -> Response {
    let to = query_param(query.as_deref(), "to");
    let calls = state.calls.list(|r| to.as_deref().is_none_or(|t| r.to == t));
    Json(calls).into_response()
}

async fn get_call(State(state): State<Arc<AppState>>, Path(sid): Path<String>) -> Response {
    match state.calls.get(&sid) {
        Some(call) => Json(call).into_response(),
        None => api_error(StatusCode::NOT_FOUND, "not_found", format!("no call with sid {sid}")),
    }
}

async fn webhooks(State(state): State<Arc<AppState>>) -> Response {
    // Deliveries finish out of order within a batch; ids are pg_net's order.
    let mut deliveries = state.webhooks.all();
    deliveries.sort_by_key(|d| d.id);
    Json(deliveries).into_response()
}

/// `{"requests": {"/rpc/claim_pending_call": 3, ...}}`: how often each PostgREST path was called.
async fn gateway_counts(State(state): State<Arc<AppState>>) -> Response {
    let counts = crate::state::lock(&state.gateway_requests).clone();
    Json(json!({ "requests": counts })).into_response()
}

async fn reset_gateway_counts(State(state): State<Arc<AppState>>) -> Response {
    crate::state::lock(&state.gateway_requests).clear();
    Json(json!({ "ok": true })).into_response()
}

/// Calls created, peak concurrency and calls per second, attempts dialled twice.
async fn stats(State(state): State<Arc<AppState>>) -> Response {
    Json(state.stats.snapshot()).into_response()
}

async fn reset_stats(State(state): State<Arc<AppState>>) -> Response {
    state.stats.reset();
    Json(json!({ "ok": true })).into_response()
}

/// Every `/v1/listen` request to the STT stand-in, oldest first (refused ones too).
async fn stt_connections(State(state): State<Arc<AppState>>) -> Response {
    Json(state.stt.list()).into_response()
}

/// `{"messages": [...]}`: the sign-in emails the Auth stand-in "sent" to `?email=` (required), oldest first.
async fn auth_messages(State(state): State<Arc<AppState>>, RawQuery(query): RawQuery) -> Response {
    let Some(email) = query_param(query.as_deref(), "email").filter(|e| !e.trim().is_empty()) else {
        return api_error(StatusCode::BAD_REQUEST, "missing_email", "?email= names whose messages to list");
    };
    let messages = state.auth.store.messages(email.trim());
    Json(json!({ "messages": messages })).into_response()
}

async fn reset(State(state): State<Arc<AppState>>) -> Response {
    state.calls.clear();
    state.sms.clear();
    state.auth.store.clear_messages();
    state.webhooks.clear();
    state.stt.clear();
    state.judges.clear();
    crate::log!(info, "sandbox", "records cleared");
    Json(json!({ "ok": true })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plus_survives_in_query() {
        assert_eq!(query_param(Some("to=+15550001001"), "to").as_deref(), Some("+15550001001"));
        assert_eq!(query_param(Some("x=1&to=%2B1555"), "to").as_deref(), Some("+1555"));
        assert_eq!(query_param(Some("x=1"), "to"), None);
        assert_eq!(query_param(None, "to"), None);
    }
}
