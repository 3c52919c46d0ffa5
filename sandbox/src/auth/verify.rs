//! `/auth/v1/verify` (GoTrue's internal/api/verify.go): `POST` with the typed code (`{email, token, type}`) or
//! the link's hash (`{token_hash, type}`) answers a session; `GET` (the email's link) redirects to
//! `redirect_to` with the session in the URL fragment (implicit flow). Kong leaves this route open: a link is
//! clicked without an API key.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde::Deserialize;

use super::error::AuthError;
use super::store::token_hash;
use super::{query_param, JsonBody};
use crate::state::AppState;

/// The verification types GoTrue knows. The stand-in issues only magic-link codes (GoTrue's recovery token),
/// which `email`, `magiclink` and `recovery` match; the others find no live code.
const KNOWN_TYPES: [&str; 8] =
    ["email", "magiclink", "recovery", "signup", "invite", "email_change", "sms", "phone_change"];
const MAGIC_LINK_TYPES: [&str; 3] = ["email", "magiclink", "recovery"];

const CODE_INVALID: &str = "Token has expired or is invalid";
const LINK_INVALID: &str = "Email link is invalid or has expired";

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct VerifyParams {
    #[serde(rename = "type")]
    #[serde(deserialize_with = "super::nullable")]
    kind: String,
    #[serde(deserialize_with = "super::nullable")]
    token: String,
    #[serde(deserialize_with = "super::nullable")]
    token_hash: String,
    #[serde(deserialize_with = "super::nullable")]
    email: String,
    #[serde(deserialize_with = "super::nullable")]
    phone: String,
    #[serde(deserialize_with = "super::nullable")]
    redirect_to: String,
}

/// `POST /verify` → 200 session JSON.
pub async fn code(
    State(state): State<Arc<AppState>>,
    JsonBody(p): JsonBody<VerifyParams>,
) -> Result<Response, AuthError> {
    if p.kind.is_empty() {
        return Err(AuthError::bad_request("validation_failed", "Verify requires a verification type"));
    }
    if p.token.is_empty() == p.token_hash.is_empty() {
        return Err(AuthError::bad_request("validation_failed", "Verify requires either a token or a token hash"));
    }
    let (hash, invalid) = if !p.token.is_empty() {
        if p.email.is_empty() {
            if p.phone.is_empty() {
                return Err(AuthError::bad_request(
                    "validation_failed",
                    "Only an email address or phone number should be provided on verify",
                ));
            }
            // No user has a phone here: GoTrue finds none either.
            return Err(AuthError::forbidden("otp_expired", CODE_INVALID));
        }
        let email = super::otp::validate_email(&p.email)
            .map_err(|_| AuthError::unprocessable("validation_failed", "Invalid email format"))?;
        (token_hash(&email, &p.token), CODE_INVALID)
    } else {
        if !p.email.is_empty() || !p.phone.is_empty() || !p.redirect_to.is_empty() {
            return Err(AuthError::bad_request("validation_failed", "Only the token_hash and type should be provided"));
        }
        if !KNOWN_TYPES.contains(&p.kind.as_str()) {
            return Err(AuthError::bad_request("validation_failed", "Invalid email verification type"));
        }
        (p.token_hash.clone(), LINK_INVALID)
    };
    let session = sign_in(&state, &p.kind, &hash, invalid).await?;
    Ok(Json(session).into_response())
}

/// `GET /verify?token=<token_hash>&type=&redirect_to=` → 303 to `redirect_to` (else the site URL) with the
/// session, or the error, in the fragment.
pub async fn link(State(state): State<Arc<AppState>>, RawQuery(query): RawQuery) -> Result<Response, AuthError> {
    let query = query.as_deref();
    let kind = query_param(query, "type").unwrap_or_default();
    let token = query_param(query, "token").unwrap_or_default();
    if kind.is_empty() {
        return Err(AuthError::bad_request("validation_failed", "Verify requires a verification type"));
    }
    if token.is_empty() {
        return Err(AuthError::bad_request("validation_failed", "Verify requires a token or a token hash"));
    }
    let redirect_to = state.auth.redirect_target(query_param(query, "redirect_to").as_deref());
    let outcome = if KNOWN_TYPES.contains(&kind.as_str()) {
        sign_in(&state, &kind, &token, LINK_INVALID).await
    } else {
        Err(AuthError::bad_request("validation_failed", "Invalid email verification type"))
    };
    let target = match outcome {
        // A link's `type=email` becomes the kind of token it matched: a magic link here.
        Ok(session) => {
            let kind = if kind == "email" { "magiclink" } else { kind.as_str() };
            super::tokens::redirect_with_session(&redirect_to, &session, kind)
        }
        Err(e) => super::tokens::redirect_with_error(&redirect_to, oauth_error(e.status), e.code, &e.message),
    };
    Ok((StatusCode::SEE_OTHER, [(header::LOCATION, target)]).into_response())
}

/// GoTrue's `oauthErrorMap`: the `error` of an error redirect.
fn oauth_error(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "invalid_request",
        StatusCode::UNAUTHORIZED => "unauthorized_client",
        StatusCode::FORBIDDEN => "access_denied",
        StatusCode::SERVICE_UNAVAILABLE => "temporarily_unavailable",
        _ => "server_error",
    }
}

/// Uses up the code with this hash and opens a session for its user.
async fn sign_in(
    state: &AppState,
    kind: &str,
    hash: &str,
    invalid: &'static str,
) -> Result<serde_json::Value, AuthError> {
    let auth = &state.auth;
    let now = Utc::now();
    if !MAGIC_LINK_TYPES.contains(&kind) {
        return Err(AuthError::forbidden("otp_expired", invalid));
    }
    let Some(user_id) = auth.store.take_code(hash, now) else {
        crate::log!(info, "auth", "verify refused: wrong, used or expired code");
        return Err(AuthError::forbidden("otp_expired", invalid));
    };
    let user = auth.users.by_id(user_id).await.map_err(|e| auth.database_error("finding user", e))?;
    let Some(user) = user else { return Err(AuthError::forbidden("otp_expired", invalid)) };
    if user.is_banned(now) {
        return Err(AuthError::forbidden("user_banned", "User is banned"));
    }
    let user = auth
        .users
        .record_sign_in(user.id, now)
        .await
        .map_err(|e| auth.database_error("updating user", e))?
        .unwrap_or(user);
    let (session, refresh_token) = auth.store.start_session(user.id, "otp", now);
    crate::log!(info, "auth", "signed in user={} session={}", user.id, session.id);
    Ok(auth.issue(&user, &session, &refresh_token, now))
}
