//! `/_sandbox/faults`: set, read and clear the run's faults.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use super::FaultSettings;
use crate::inspect::api_error;
use crate::state::AppState;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/_sandbox/faults", get(current).post(replace)).route("/_sandbox/faults/reset", post(reset))
}

/// `{"settings": {...every field...}, "injected": {"twilio_429": n, ...}, "refused": {"create": n, ...}}`.
async fn current(State(state): State<Arc<AppState>>) -> Response {
    let faults = &state.faults;
    Json(json!({ "settings": faults.settings(), "injected": faults.injected(), "refused": faults.refused() }))
        .into_response()
}

/// Replaces the whole set (missing fields take their defaults), reseeds and
/// zeroes the counters. The body is parsed here rather than by axum's `Json`
/// so every refusal has the sandbox's error shape.
async fn replace(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    match FaultSettings::parse(&body) {
        Ok(settings) => {
            crate::log!(info, "faults", "set {}", serde_json::to_string(&settings).unwrap_or_default());
            state.faults.set(settings);
            current(State(state)).await
        }
        Err(message) => api_error(StatusCode::BAD_REQUEST, "invalid_faults", message),
    }
}

async fn reset(State(state): State<Arc<AppState>>) -> Response {
    state.faults.reset();
    crate::log!(info, "faults", "all off");
    current(State(state)).await
}
