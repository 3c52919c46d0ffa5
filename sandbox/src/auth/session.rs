//! A signed-in user's calls: `POST /token?grant_type=refresh_token` (internal/tokens/service.go
//! `RefreshTokenGrant`), `GET /user`, `POST /logout`, and the JWKS (open, like Kong's route).

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use uuid::Uuid;

use super::error::AuthError;
use super::store::{LogoutScope, RefreshError, Session};
use super::users::User;
use super::{query_param, ApiKeyChecked, JsonBody};
use crate::jwt::TokenError;
use crate::state::AppState;

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RefreshParams {
    #[serde(deserialize_with = "super::nullable")]
    refresh_token: String,
}

pub async fn token(
    _: ApiKeyChecked,
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    JsonBody(params): JsonBody<RefreshParams>,
) -> Result<Response, AuthError> {
    // Only the refresh grant exists here (no passwords, no PKCE); other grants get GoTrue's unknown-grant answer.
    if query_param(query.as_deref(), "grant_type").as_deref() != Some("refresh_token") {
        return Err(AuthError::bad_request("invalid_credentials", "unsupported_grant_type"));
    }
    if params.refresh_token.is_empty() {
        return Err(AuthError::oauth("invalid_request", "refresh_token required"));
    }
    let auth = &state.auth;
    let not_found =
        || AuthError::bad_request("refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found");
    let (session, refresh_token) = match auth.store.refresh(&params.refresh_token) {
        Ok(rotated) => rotated,
        Err(RefreshError::NotFound) => return Err(not_found()),
        Err(RefreshError::AlreadyUsed) => {
            crate::log!(warn, "auth", "refresh token reused: session revoked");
            return Err(AuthError::bad_request("refresh_token_already_used", "Invalid Refresh Token: Already Used"));
        }
    };
    let user = auth.users.by_id(session.user_id).await.map_err(|e| auth.database_error("finding user", e))?;
    let Some(user) = user else { return Err(not_found()) };
    crate::log!(info, "auth", "refreshed user={} session={}", user.id, session.id);
    Ok(Json(auth.issue(&user, &session, &refresh_token, Utc::now())).into_response())
}

pub async fn user(
    _: ApiKeyChecked,
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, AuthError> {
    let (user, _) = authenticate(&state, &headers).await?;
    Ok(Json(user.to_json()).into_response())
}

pub async fn logout(
    _: ApiKeyChecked,
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, AuthError> {
    let scope = match query_param(query.as_deref(), "scope").as_deref() {
        None | Some("") | Some("global") => LogoutScope::Global,
        Some("local") => LogoutScope::Local,
        Some("others") => LogoutScope::Others,
        Some(other) => {
            return Err(AuthError::bad_request("validation_failed", format!("Unsupported logout scope {other:?}")))
        }
    };
    let (user, session) = authenticate(&state, &headers).await?;
    let ended = state.auth.store.logout(user.id, session.map(|s| s.id), scope);
    crate::log!(info, "auth", "logout user={} sessions_ended={ended}", user.id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn jwks(State(state): State<Arc<AppState>>) -> Response {
    ([(header::CACHE_CONTROL, "public, max-age=600")], Json(state.auth.keys.jwks())).into_response()
}

/// GoTrue's `requireAuthentication`: a Bearer token signed by the project's keys and unexpired, whose `sub`
/// is an existing user and whose `session_id` (if any) is a live session.
async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<(User, Option<Session>), AuthError> {
    let auth = &state.auth;
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .filter(|t| !t.is_empty() && !t.contains(char::is_whitespace))
        .ok_or_else(|| {
            AuthError::new(StatusCode::UNAUTHORIZED, "no_authorization", "This endpoint requires a valid Bearer token")
        })?;
    let claims = auth.keys.verify(bearer, Utc::now().timestamp()).map_err(|e| {
        let reason = match e {
            TokenError::Malformed => "token is malformed",
            TokenError::UnknownKey => "token is unverifiable: unrecognized JWT kid or algorithm",
            TokenError::BadSignature => "token signature is invalid",
            TokenError::Expired => "token has invalid claims: token is expired",
        };
        AuthError::forbidden("bad_jwt", format!("invalid JWT: unable to parse or verify signature, {reason}"))
    })?;
    let sub = claims.get("sub").and_then(|v| v.as_str()).filter(|s| !s.is_empty());
    let Some(sub) = sub else { return Err(AuthError::forbidden("bad_jwt", "invalid claim: missing sub claim")) };
    let Ok(user_id) = sub.parse::<Uuid>() else {
        return Err(AuthError::bad_request("bad_jwt", "invalid claim: sub claim must be a UUID"));
    };
    let user = auth.users.by_id(user_id).await.map_err(|e| auth.database_error("finding user", e))?;
    let Some(user) = user else {
        return Err(AuthError::forbidden("user_not_found", "User from sub claim in JWT does not exist"));
    };
    let session = match claims.get("session_id").and_then(|v| v.as_str()).filter(|s| !s.is_empty()) {
        None => None,
        Some(id) => {
            let id: Uuid = id
                .parse()
                .map_err(|_| AuthError::forbidden("bad_jwt", "invalid claim: session_id claim must be a UUID"))?;
            let found = auth.store.session(id).filter(|s| s.user_id == user.id);
            Some(found.ok_or_else(|| {
                AuthError::forbidden("session_not_found", "Session from session_id claim in JWT does not exist")
            })?)
        }
    };
    if user.is_banned(Utc::now()) {
        return Err(AuthError::forbidden("user_banned", "User is banned"));
    }
    Ok((user, session))
}
