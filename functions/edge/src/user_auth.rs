//! Users' access tokens, verified as `outcall_core::user_jwt` decides: the project's published keys (JWKS),
//! fetched with the `apikey` header and kept in the isolate ([`JwksCache`] says when to fetch again), checked with
//! WebCrypto (`crypto.subtle`: no crypto crate in the wasm), or the legacy HS256 secret.

use crate::http::{self, Incoming};
use crate::time::now_ms;
use outcall_core::config::UserAuth;
use outcall_core::error::ApiError;
use outcall_core::user_jwt::{self, Algorithm, Jwk, Jwks, JwksCache, Refusal, UnverifiedToken, User, VerificationKey};
use std::cell::RefCell;
use std::time::Duration;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use worker::js_sys::{Array, Promise, Uint8Array, JSON};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{console_log, Fetch, Headers, Method};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = ["crypto", "subtle"], js_name = importKey, catch)]
    fn import_key(
        format: &str,
        key: &JsValue,
        algorithm: &JsValue,
        extractable: bool,
        usages: &Array,
    ) -> Result<Promise, JsValue>;
    #[wasm_bindgen(js_namespace = ["crypto", "subtle"], js_name = verify, catch)]
    fn subtle_verify(
        algorithm: &JsValue,
        key: &JsValue,
        signature: &Uint8Array,
        data: &Uint8Array,
    ) -> Result<Promise, JsValue>;
}

/// How long a JWKS fetch may take before it counts as failed.
const JWKS_TIMEOUT: Duration = Duration::from_secs(5);

/// The isolate's copy of the project's keys, with each key as WebCrypto imported it (by kid).
#[derive(Default)]
struct Keys {
    jwks: Jwks,
    cache: JwksCache,
    imported: Vec<(String, JsValue)>,
}

thread_local! {
    static KEYS: RefCell<Keys> = RefCell::new(Keys::default());
}

/// The signed-in user and the token they sent (the action functions are called with it).
pub struct SignedIn {
    pub user: User,
    pub token: String,
}

/// Verifies `Authorization: Bearer <access token>`: 401 `unauthorized` with the reason (`user_jwt::Refusal`), 502
/// when the project's keys cannot be fetched.
pub async fn authenticate(req: &Incoming, auth: &UserAuth) -> Result<SignedIn, ApiError> {
    let authorization = req.header("Authorization");
    let raw = user_jwt::bearer(authorization.as_deref())?;
    let token = user_jwt::parse(raw)?;
    match token.header.alg {
        Algorithm::Hs256 => {
            let secret = auth.legacy_jwt_secret.as_deref().ok_or(Refusal::UnknownKey)?;
            token.verify_hs256(secret)?;
        }
        Algorithm::Es256 | Algorithm::Rs256 => {
            let (jwk, imported) = published_key(auth, &token).await?;
            verify_signature(&jwk, imported, &token).await?;
        }
    }
    let now = (now_ms() / 1000) as i64;
    let user = user_jwt::check_claims(token.claims(), &user_jwt::issuer(&auth.supabase_url), now)?;
    Ok(SignedIn { user, token: raw.to_owned() })
}

/// The published key that verifies `token` (and its imported form, when imported before): from the isolate's
/// copy, fetched again when it is ten minutes old, or once a minute at most when the token names a key the copy
/// lacks (a key rotated in).
async fn published_key(auth: &UserAuth, token: &UnverifiedToken) -> Result<(Jwk, Option<JsValue>), ApiError> {
    let now = now_ms() as i64;
    let find = || {
        KEYS.with(|keys| {
            let keys = keys.borrow();
            match user_jwt::choose_key(&token.header, &keys.jwks, false) {
                Ok(VerificationKey::Published(jwk)) => {
                    let imported = keys.imported.iter().find(|(kid, _)| *kid == jwk.kid).map(|(_, k)| k.clone());
                    Ok((jwk.clone(), imported))
                }
                Ok(VerificationKey::LegacySecret) | Err(_) => Err(Refusal::UnknownKey),
            }
        })
    };
    if KEYS.with(|keys| keys.borrow().cache.should_fetch(now, false)) {
        refresh(auth, now).await;
    }
    if let Ok(found) = find() {
        return Ok(found);
    }
    if KEYS.with(|keys| keys.borrow().cache.should_fetch(now, true)) {
        refresh(auth, now).await;
    }
    find().map_err(|refusal| match KEYS.with(|keys| keys.borrow().cache.fetched_at_ms) {
        None => ApiError::upstream("the project's signing keys (JWKS) could not be fetched"),
        Some(_) => refusal.into(),
    })
}

/// Fetches the JWKS; on success it replaces the copy (and forgets the imported keys), otherwise the copy stays.
async fn refresh(auth: &UserAuth, now: i64) {
    KEYS.with(|keys| keys.borrow_mut().cache.attempted(now));
    match fetch_jwks(auth).await {
        Ok(jwks) => KEYS.with(|keys| {
            let mut keys = keys.borrow_mut();
            keys.jwks = jwks;
            keys.imported.clear();
            keys.cache.fetched(now);
        }),
        Err(problem) => console_log!("JWKS fetch failed: {problem}"),
    }
}

async fn fetch_jwks(auth: &UserAuth) -> Result<Jwks, String> {
    let url = user_jwt::jwks_url(&auth.supabase_url);
    let headers = Headers::new();
    headers.set("apikey", &auth.api_key).map_err(|e| e.to_string())?;
    headers.set("Accept", "application/json").map_err(|e| e.to_string())?;
    let request = http::outgoing(Method::Get, &url, headers, None).map_err(|e| e.to_string())?;
    let text = http::within(JWKS_TIMEOUT, |signal| async move {
        let mut response = Fetch::Request(request).send_with_signal(&signal).await.ok()?;
        if response.status_code() != 200 {
            return Some(Err(format!("{url} answered {}", response.status_code())));
        }
        Some(response.text().await.map_err(|e| e.to_string()))
    })
    .await
    .unwrap_or_else(|| Err("no answer in time".to_owned()))?;
    Jwks::parse(&text)
}

/// ES256 / RS256 through WebCrypto. A signature that does not verify, or that WebCrypto cannot read, is
/// `BadSignature`; a published key it cannot import is an unknown key.
async fn verify_signature(jwk: &Jwk, imported: Option<JsValue>, token: &UnverifiedToken) -> Result<(), ApiError> {
    let webcrypto = jwk.webcrypto();
    let json = |value: &serde_json::Value| JSON::parse(&value.to_string()).unwrap_or(JsValue::NULL);
    let key = match imported {
        Some(key) => key,
        None => {
            let usages = Array::of1(&JsValue::from_str("verify"));
            let import = import_key("jwk", &json(&webcrypto.jwk), &json(&webcrypto.import_algorithm), false, &usages);
            let key = match import {
                Ok(promise) => JsFuture::from(promise).await,
                Err(e) => Err(e),
            }
            .map_err(|e| {
                console_log!("the published key {} could not be imported: {:?}", jwk.kid, e);
                ApiError::from(Refusal::UnknownKey)
            })?;
            KEYS.with(|keys| keys.borrow_mut().imported.push((jwk.kid.clone(), key.clone())));
            key
        }
    };
    let signature = Uint8Array::from(token.signature.as_slice());
    let data = Uint8Array::from(token.signing_input.as_bytes());
    let verified = match subtle_verify(&json(&webcrypto.verify_algorithm), &key, &signature, &data) {
        Ok(promise) => JsFuture::from(promise).await.ok().and_then(|v| v.as_bool()),
        Err(_) => None,
    };
    match verified {
        Some(true) => Ok(()),
        _ => Err(Refusal::BadSignature.into()),
    }
}
