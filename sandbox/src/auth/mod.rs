//! The Supabase Auth (GoTrue) stand-in under `/auth/v1`: email-code sign-in for existing, confirmed
//! `auth.users` (sign-ups are off), ES256 access tokens with a `kid` (`crate::jwt::AuthKeys`), rotating
//! refresh tokens, `/user`, `/logout` and the JWKS, with GoTrue's error shapes and Kong's API key check and
//! CORS in front. The codes it would have emailed are listed by `GET /_sandbox/auth/messages?email=`.
//! Wire formats: shared reference `operators.md` §1.

mod cors;
pub mod error;
mod otp;
mod session;
pub mod store;
pub mod tokens;
pub mod users;
mod verify;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::middleware::from_fn;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::Config;
use crate::jwt::AuthKeys;
use crate::state::AppState;
use error::AuthError;
use store::{AuthStore, Message, Session};
use users::{DirectoryError, User, Users};

pub const PREFIX: &str = "/auth/v1";
/// Auth requests are small JSON objects; this is far above any of them.
pub const BODY_LIMIT: usize = 64 * 1024;

pub struct Auth {
    pub keys: AuthKeys,
    pub users: Users,
    pub store: AuthStore,
    /// `iss` of the access tokens: the public URL + `/auth/v1`.
    pub issuer: String,
    /// Where a link without `redirect_to` lands.
    pub site_url: String,
    pub jwt_expiry: i64,
}

impl Auth {
    pub fn new(config: &Config, users: Users) -> Auth {
        Auth {
            keys: AuthKeys::derive(&config.jwt_secret),
            users,
            store: AuthStore::default(),
            issuer: format!("{}{PREFIX}", config.public_url),
            site_url: config.auth_site_url.clone(),
            jwt_expiry: config.auth_jwt_expiry,
        }
    }

    /// A new code for `user`, recorded as the magic-link email GoTrue would send.
    pub fn send_code(&self, user: &User, email: &str, redirect_to: Option<&str>, now: DateTime<Utc>) -> Message {
        let code = store::new_code();
        let hash = store::token_hash(email, &code);
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("token", &hash).append_pair("type", "magiclink");
        if let Some(to) = redirect_to {
            query.append_pair("redirect_to", to);
        }
        let link = format!("{}/verify?{}", self.issuer, query.finish());
        self.store.send_code(user.id, email, &code, link, now)
    }

    /// The session JSON for `user` in `session`, with a freshly signed access token.
    pub fn issue(&self, user: &User, session: &Session, refresh_token: &str, now: DateTime<Utc>) -> Value {
        let grant =
            tokens::Grant { user, session, issuer: &self.issuer, issued_at: now.timestamp(), expiry: self.jwt_expiry };
        grant.response(&self.keys.sign_es256(&grant.claims()), refresh_token)
    }

    /// `redirect_to` when it is an http(s) URL, else the site URL (GoTrue checks an allow-list; the sandbox
    /// trusts its callers).
    pub fn redirect_target(&self, redirect_to: Option<&str>) -> String {
        match redirect_to {
            Some(to) if to.starts_with("http://") || to.starts_with("https://") => to.to_owned(),
            _ => self.site_url.clone(),
        }
    }

    fn database_error(&self, doing: &str, e: DirectoryError) -> AuthError {
        crate::log!(error, "auth", "database error {doing}: {e}");
        AuthError::internal(format!("Database error {doing}"))
    }
}

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/auth/v1/otp", post(otp::send))
        .route("/auth/v1/verify", get(verify::link).post(verify::code))
        .route("/auth/v1/token", post(session::token))
        .route("/auth/v1/user", get(session::user))
        .route("/auth/v1/logout", post(session::logout))
        .route("/auth/v1/.well-known/jwks.json", get(session::jwks))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(from_fn(error::render))
        .layer(from_fn(cors::cors))
}

/// Kong's key-auth in front of GoTrue (the gateway's check): routes that take it need the anon or service
/// key; `/verify` and the JWKS are open, as on Supabase.
pub struct ApiKeyChecked;

impl FromRequestParts<Arc<AppState>> for ApiKeyChecked {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Response> {
        let (query_key, _) = crate::gateway::split_apikey(parts.uri.query().unwrap_or_default());
        match crate::gateway::api_key_refusal(&state.keys, &parts.headers, query_key) {
            Some(refused) => Err(refused),
            None => Ok(ApiKeyChecked),
        }
    }
}

/// A JSON body within [`BODY_LIMIT`]; unreadable JSON is GoTrue's `400 bad_json`, too large Kong's 413.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        let bytes = Bytes::from_request(request, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                crate::gateway::kong_error(StatusCode::PAYLOAD_TOO_LARGE, "Request size limit exceeded")
            } else {
                AuthError::bad_request("bad_json", format!("Could not read request body: {e}")).into_response()
            }
        })?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            AuthError::bad_request("bad_json", format!("Could not parse request body as JSON: {e}")).into_response()
        })
    }
}

/// Reads a JSON null as the default, as Go decodes it into a plain string: supabase-js sends
/// `"code_challenge": null` and the like.
fn nullable<'de, D: serde::Deserializer<'de>, T: Default + serde::Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    use serde::Deserialize;
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

/// A query parameter, percent-decoded (`+` as a space, as Go's `url.Values` reads it).
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}
