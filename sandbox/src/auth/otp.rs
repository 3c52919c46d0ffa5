//! `POST /auth/v1/otp` (supabase-js `signInWithOtp`), GoTrue's internal/api/otp.go and magic_link.go with
//! sign-ups disabled: only an existing, confirmed user is sent a code; the signup path answers
//! `422 signup_disabled`, and `create_user: false` with an unknown email `422 otp_disabled`.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use super::error::AuthError;
use super::{ApiKeyChecked, JsonBody};
use crate::state::AppState;

/// The body supabase-js sends. Its `data` (a new user's `user_metadata`) and `gotrue_meta_security` (a captcha
/// token) are read by nothing here: there are no new users and no captcha.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct OtpParams {
    #[serde(deserialize_with = "super::nullable")]
    email: String,
    #[serde(deserialize_with = "super::nullable")]
    phone: String,
    /// Absent means true, client- and server-side.
    create_user: Option<bool>,
    #[serde(deserialize_with = "super::nullable")]
    channel: String,
    #[serde(deserialize_with = "super::nullable")]
    code_challenge: String,
    #[serde(deserialize_with = "super::nullable")]
    code_challenge_method: String,
}

pub async fn send(
    _: ApiKeyChecked,
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    JsonBody(params): JsonBody<OtpParams>,
) -> Result<Response, AuthError> {
    if !params.email.is_empty() && !params.phone.is_empty() {
        return Err(AuthError::bad_request(
            "validation_failed",
            "Only an email address or phone number should be provided",
        ));
    }
    if !params.email.is_empty() && !params.channel.is_empty() {
        return Err(AuthError::bad_request("validation_failed", "Channel should only be specified with Phone OTP"));
    }
    validate_pkce(&params.code_challenge_method, &params.code_challenge)?;
    let auth = &state.auth;
    let find = |email: String| async move {
        auth.users.by_email(&email).await.map_err(|e| auth.database_error("finding user", e))
    };
    // GoTrue's `shouldCreateUser`: with create_user false, an email (or phone) it cannot find, or cannot even
    // read, is `otp_disabled`; a found one, confirmed or not, goes on.
    let mut user = None;
    if params.create_user == Some(false) {
        let known = if !params.email.is_empty() {
            match validate_email(&params.email) {
                Ok(email) => {
                    user = find(email).await?;
                    user.is_some()
                }
                Err(_) => false,
            }
        } else {
            params.phone.is_empty() // no phone users here; neither email nor phone is the error below
        };
        if !known {
            crate::log!(info, "auth", "otp refused: unknown user (otp_disabled)");
            return Err(AuthError::unprocessable("otp_disabled", "Signups not allowed for otp"));
        }
    }
    if params.email.is_empty() {
        return Err(if params.phone.is_empty() {
            AuthError::bad_request("validation_failed", "One of email or phone must be set")
        } else {
            AuthError::bad_request("phone_provider_disabled", "Unsupported phone provider")
        });
    }
    let email = validate_email(&params.email)?;
    if user.is_none() {
        user = find(email.clone()).await?;
    }
    // An unknown or unconfirmed email takes GoTrue's signup path, which is off.
    let Some(user) = user.filter(|u| u.is_confirmed()) else {
        crate::log!(info, "auth", "otp refused: no confirmed user (signup_disabled)");
        return Err(AuthError::unprocessable("signup_disabled", "Signups not allowed for this instance"));
    };
    let redirect_to = super::query_param(query.as_deref(), "redirect_to");
    let message = auth.send_code(&user, &email, redirect_to.as_deref(), Utc::now());
    crate::log!(info, "auth", "otp sent user={} kind={}", user.id, message.kind);
    Ok(Json(json!({})).into_response())
}

/// GoTrue's `validatePKCEParams`: both or neither. (The stand-in then signs in with the implicit flow.)
fn validate_pkce(method: &str, challenge: &str) -> Result<(), AuthError> {
    match (method.is_empty(), challenge.is_empty()) {
        (true, true) => Ok(()),
        (false, false) if ["s256", "plain"].contains(&method.to_ascii_lowercase().as_str()) => Ok(()),
        (false, false) => {
            Err(AuthError::bad_request("validation_failed", format!("Code challenge method {method} is not supported")))
        }
        _ => Err(AuthError::bad_request(
            "validation_failed",
            "PKCE flow requires code_challenge_method and code_challenge",
        )),
    }
}

/// GoTrue's `validateEmail`: required, at most 255 characters, a plausible address; lower-cased.
pub fn validate_email(email: &str) -> Result<String, AuthError> {
    if email.is_empty() {
        return Err(AuthError::bad_request("validation_failed", "An email address is required"));
    }
    if email.len() > 255 {
        return Err(AuthError::bad_request("validation_failed", "An email address is too long"));
    }
    if !plausible_email(email) {
        return Err(AuthError::bad_request("validation_failed", "Unable to validate email address: invalid format"));
    }
    Ok(email.to_lowercase())
}

/// The shape checkmail's `ValidateFormat` accepts: a local part of the RFC 5322 atom characters and dots, `@`,
/// dot-separated labels of letters, digits and inner hyphens.
fn plausible_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else { return false };
    let local_ok =
        !local.is_empty() && local.chars().all(|c| c.is_ascii_alphanumeric() || ".!#$%&'*+/=?^_`{|}~-".contains(c));
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    local_ok && domain.split('.').all(label_ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(validate_email("Op@Example.com").unwrap(), "op@example.com");
        for bad in ["", "no-at", "a@", "@b.c", "a@b..c", "a b@c.d", "a@-b.c", "a@b@c"] {
            assert_eq!(validate_email(bad).unwrap_err().code, "validation_failed", "{bad}");
        }
        assert!(validate_email(&format!("{}@x.y", "a".repeat(260))).is_err());
    }

    #[test]
    fn pkce_fields_go_together() {
        assert!(validate_pkce("", "").is_ok() && validate_pkce("S256", "abc").is_ok());
        assert!(validate_pkce("s256", "").is_err() && validate_pkce("", "abc").is_err());
        assert!(validate_pkce("md5", "abc").is_err());
    }
}
