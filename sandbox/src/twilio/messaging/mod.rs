//! The Programmable Messaging stand-in (operators.md §5): the Messages resource, each sender's queue drained
//! at its rate, signed status callbacks, inbound messages with opt-out keywords, and what a test observes.

pub mod api;
pub mod delivery;
pub mod inbound;
pub mod scenario;
pub mod segments;
pub mod store;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::inspect::api_error;
use crate::state::AppState;

pub use store::Messaging;

pub fn routes() -> Router<Arc<AppState>> {
    api::routes()
        .route("/_sandbox/twilio/sms/messages", get(observed))
        .route("/_sandbox/twilio/sms/inbound", post(inbound::inbound))
        .route("/_sandbox/twilio/sms/senders", get(senders).post(set_sender))
}

/// `{messages: [...], refused: {"21610": n, ...}, attempts: [{to, body, requests, created}], blocks}`.
async fn observed(State(state): State<Arc<AppState>>) -> Response {
    Json(state.sms.observed()).into_response()
}

/// `{default_mps, senders: {"+1555…": 5, "MG…": 10}}`: segments per second each sender's queue drains at.
async fn senders(State(state): State<Arc<AppState>>) -> Response {
    Json(json!({ "default_mps": state.config.sms_segments_per_second, "senders": state.sms.rates() })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SenderRate {
    sender: String,
    mps: f64,
}

/// `{sender, mps}`: the rate of one sender (a number or an `MG…` service) for messages queued from now on.
async fn set_sender(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let rate: SenderRate = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return api_error(StatusCode::BAD_REQUEST, "invalid_sender", e.to_string()),
    };
    if !(rate.mps.is_finite() && rate.mps > 0.0) || rate.sender.trim().is_empty() {
        return api_error(StatusCode::BAD_REQUEST, "invalid_sender", "sender must be set and mps a positive number");
    }
    state.sms.set_rate(rate.sender.trim(), rate.mps);
    senders(State(state)).await
}
