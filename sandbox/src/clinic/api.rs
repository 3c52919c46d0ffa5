//! `/_sandbox/phones`: read and change a number's phone system at run time (for later calls).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::PhoneSystem;
use crate::inspect::api_error;
use crate::state::AppState;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/_sandbox/phones", get(list))
        .route("/_sandbox/phones/{number}", get(show).put(replace).delete(restore))
}

/// `{"overrides": {"+1555…": {tree}}}`.
async fn list(State(state): State<Arc<AppState>>) -> Response {
    let overrides = state.phones.overrides();
    let systems: std::collections::BTreeMap<&String, &PhoneSystem> = overrides.iter().map(|(n, s)| (n, &**s)).collect();
    Json(json!({ "overrides": systems })).into_response()
}

fn answer(state: &AppState, number: &str) -> Response {
    let (system, source) = state.phones.get(number);
    Json(json!({ "number": number, "source": source, "system": *system })).into_response()
}

async fn show(State(state): State<Arc<AppState>>, Path(number): Path<String>) -> Response {
    answer(&state, &number)
}

async fn replace(State(state): State<Arc<AppState>>, Path(number): Path<String>, body: Bytes) -> Response {
    let system = match serde_json::from_slice::<PhoneSystem>(&body) {
        Ok(system) => system,
        Err(e) => return api_error(StatusCode::BAD_REQUEST, "invalid_phone_system", e.to_string()),
    };
    if let Err(problem) = system.validate() {
        return api_error(StatusCode::BAD_REQUEST, "invalid_phone_system", problem);
    }
    state.phones.set(&number, system);
    crate::log!(info, "sandbox", "phone system of a number replaced");
    answer(&state, &number)
}

async fn restore(State(state): State<Arc<AppState>>, Path(number): Path<String>) -> Response {
    state.phones.restore(&number);
    answer(&state, &number)
}
