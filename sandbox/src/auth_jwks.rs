//! `GET /auth/v1/.well-known/jwks.json`: the project's published signing keys, as Supabase Auth serves them
//! (operators.md §1.2: the public asymmetric keys only, `Cache-Control: public, max-age=600`). The Worker verifies
//! users' ES256 tokens against it. (The rest of the Auth stand-in lives beside it.)

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CACHE_CONTROL;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use crate::jwt::AuthKeys;
use crate::state::AppState;

pub const PATH: &str = "/auth/v1/.well-known/jwks.json";

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route(PATH, get(jwks))
}

async fn jwks(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    ([(CACHE_CONTROL, "public, max-age=600")], Json(AuthKeys::derive(&state.config.jwt_secret).jwks()))
}
