//! The Auth stand-in as supabase-js meets it: the requests `signInWithOtp`, `verifyOtp`, the refresh timer,
//! `getUser` and `signOut` send (operators.md §1.2, with their headers), checked against the answers GoTrue
//! gives (§1.1 error shapes, §1.3 session JSON, §1.4 claims). Users are held in memory (no database here).

mod common;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use outcall_sandbox::auth::store::token_hash;
use outcall_sandbox::auth::users::{User, Users};
use outcall_sandbox::jwt::{ApiKeys, AuthKeys};
use outcall_sandbox::{router, AppState, Config};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};

const PUBLIC_URL: &str = "http://sandbox.test:54321";
const EXPIRY: i64 = 120;
const OPERATOR: &str = "op@example.com";
const UNCONFIRMED: &str = "pending@example.com";
const DASHBOARD: &str = "http://127.0.0.1:8787/";

fn user(id: &str, email: &str, confirmed: bool) -> User {
    User::from_row(&json!({
        "id": id, "aud": "authenticated", "role": "authenticated", "email": email,
        "email_confirmed_at": if confirmed { json!("2026-12-01T10:00:00+00:00") } else { Value::Null },
        "raw_app_meta_data": {"provider": "email", "providers": ["email"]}, "raw_user_meta_data": {},
        "created_at": "2026-12-01T09:00:00+00:00", "updated_at": "2026-12-01T09:00:00+00:00"}))
    .unwrap()
}

struct Auth {
    base: String,
    http: reqwest::Client,
    anon: String,
    keys: AuthKeys,
}

async fn start() -> Auth {
    let vars = [
        ("POSTGREST_URL", "http://127.0.0.1:1".to_string()),
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none".into()),
        ("SUPABASE_JWT_SECRET", common::SECRET.into()),
        ("TWILIO_ACCOUNT_SID", common::SID.into()),
        ("TWILIO_AUTH_TOKEN", common::TOKEN.into()),
        ("VAPI_SERVER_URL", "http://127.0.0.1:1/vapi/events".into()),
        ("VAPI_SECRET", "vapi-secret".into()),
        ("SANDBOX_PUBLIC_URL", PUBLIC_URL.into()),
        ("SANDBOX_AUTH_JWT_EXPIRY", EXPIRY.to_string()),
        ("SANDBOX_AUTH_SITE_URL", DASHBOARD.into()),
    ];
    let config = Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())).unwrap();
    let users = Users::memory(vec![
        user("00000000-0000-0000-0000-0000000000a1", OPERATOR, true),
        user("00000000-0000-0000-0000-0000000000a2", UNCONFIRMED, false),
    ]);
    let base = common::spawn(router(AppState::with_auth_users(config, users))).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    Auth { base, http, anon: ApiKeys::derive(common::SECRET).anon, keys: AuthKeys::derive(common::SECRET) }
}

impl Auth {
    /// A request as auth-js sends it before sign-in: apikey, `Authorization: Bearer <anon key>`,
    /// X-Client-Info and, when `versioned`, X-Supabase-Api-Version.
    fn request(&self, method: reqwest::Method, path: &str, versioned: bool) -> reqwest::RequestBuilder {
        let mut r = self
            .http
            .request(method, format!("{}/auth/v1{path}", self.base))
            .header("apikey", &self.anon)
            .header("Authorization", format!("Bearer {}", self.anon))
            .header("X-Client-Info", "supabase-js-web/2.86.0");
        if versioned {
            r = r.header("X-Supabase-Api-Version", "2024-01-01");
        }
        r
    }

    async fn post(&self, path: &str, body: Value, versioned: bool) -> (StatusCode, HeaderMap, Value) {
        let response = self.request(reqwest::Method::POST, path, versioned).json(&body).send().await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        (status, headers, response.json().await.unwrap_or(Value::Null))
    }

    /// `signInWithOtp({email, options: {emailRedirectTo}})`.
    async fn send_code(&self, email: &str, create_user: bool) -> (StatusCode, HeaderMap, Value) {
        let body = json!({"email": email, "data": {}, "create_user": create_user,
                          "gotrue_meta_security": {"captcha_token": null},
                          "code_challenge": null, "code_challenge_method": null});
        let path = format!("/otp?redirect_to={}", urlencode(DASHBOARD));
        self.post(&path, body, true).await
    }

    async fn messages(&self, email: &str) -> Vec<Value> {
        let url = format!("{}/_sandbox/auth/messages?email={}", self.base, urlencode(email));
        let body: Value = self.http.get(url).send().await.unwrap().json().await.unwrap();
        body["messages"].as_array().unwrap().clone()
    }

    /// A code sent and typed back: the session JSON.
    async fn sign_in(&self) -> Value {
        assert_eq!(self.send_code(OPERATOR, true).await.0, 200);
        let code = self.messages(OPERATOR).await.last().unwrap()["code"].as_str().unwrap().to_owned();
        let (status, _, session) = self.verify_code(OPERATOR, &code).await;
        assert_eq!(status, 200, "{session}");
        session
    }

    /// `verifyOtp({email, token, type: "email"})`.
    async fn verify_code(&self, email: &str, code: &str) -> (StatusCode, HeaderMap, Value) {
        let body = json!({"email": email, "token": code, "type": "email", "gotrue_meta_security": {}});
        self.post("/verify", body, true).await
    }

    async fn get_user(&self, token: Option<&str>, versioned: bool) -> (StatusCode, HeaderMap, Value) {
        let response = self.with_token(reqwest::Method::GET, "/user", token, versioned).send().await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        (status, headers, response.json().await.unwrap())
    }

    /// A call for a signed-in user (the user's token as Bearer), or with no Authorization at all.
    fn with_token(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        versioned: bool,
    ) -> reqwest::RequestBuilder {
        let mut r = self.http.request(method, format!("{}/auth/v1{path}", self.base)).header("apikey", &self.anon);
        if let Some(t) = token {
            r = r.header("Authorization", format!("Bearer {t}"));
        }
        if versioned {
            r = r.header("X-Supabase-Api-Version", "2024-01-01");
        }
        r
    }

    async fn refresh(&self, token: &str) -> (StatusCode, HeaderMap, Value) {
        self.post("/token?grant_type=refresh_token", json!({"refresh_token": token}), true).await
    }
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

/// GoTrue's error in the shape the request chose, with `x-sb-error-code` either way.
fn assert_error(got: &(StatusCode, HeaderMap, Value), status: u16, code: &str, versioned: bool) {
    let (s, headers, body) = got;
    assert_eq!(s.as_u16(), status, "{body}");
    assert_eq!(headers["x-sb-error-code"], code);
    if versioned {
        assert_eq!(keys(body), BTreeSet::from(["code", "message"]), "{body}");
        assert_eq!(body["code"], code);
    } else {
        assert_eq!(keys(body), BTreeSet::from(["code", "error_code", "msg"]), "{body}");
        assert_eq!((body["code"].as_u64(), body["error_code"].as_str()), (Some(status as u64), Some(code)));
    }
}

fn now() -> i64 {
    Utc::now().timestamp()
}

#[tokio::test]
async fn a_code_signs_in_once_with_the_reference_session_and_claims() {
    let auth = start().await;
    let (status, _, body) = auth.send_code(OPERATOR, true).await;
    assert_eq!((status.as_u16(), body), (200, json!({})));

    let messages = auth.messages("OP@example.com").await;
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(keys(m), BTreeSet::from(["email", "kind", "code", "token_hash", "link", "sent_at"]));
    let code = m["code"].as_str().unwrap();
    assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()), "{code}");
    assert_eq!(m["token_hash"], token_hash(OPERATOR, code));
    assert_eq!(m["kind"], "magiclink");
    let link = format!(
        "{PUBLIC_URL}/auth/v1/verify?token={}&type=magiclink&redirect_to={}",
        m["token_hash"].as_str().unwrap(),
        urlencode(DASHBOARD)
    );
    assert_eq!(m["link"], link.as_str());
    assert!(DateTime::parse_from_rfc3339(m["sent_at"].as_str().unwrap()).is_ok());

    let before = now();
    let (status, _, session) = auth.verify_code(OPERATOR, code).await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(
        keys(&session),
        BTreeSet::from(["access_token", "token_type", "expires_in", "expires_at", "refresh_token", "user"])
    );
    assert_eq!(session["token_type"], "bearer");
    assert_eq!(session["expires_in"], EXPIRY);
    let expires_at = session["expires_at"].as_i64().expect("Unix seconds");
    assert!((before + EXPIRY..=now() + EXPIRY).contains(&expires_at));
    assert!(session["refresh_token"].as_str().is_some_and(|t| !t.is_empty()));

    let user = &session["user"];
    for key in [
        "id",
        "aud",
        "role",
        "email",
        "email_confirmed_at",
        "phone",
        "confirmed_at",
        "last_sign_in_at",
        "app_metadata",
        "user_metadata",
        "identities",
        "created_at",
        "updated_at",
        "is_anonymous",
    ] {
        assert!(user.get(key).is_some(), "user.{key} missing: {user}");
    }
    assert_eq!(
        (user["id"].as_str(), user["email"].as_str()),
        (Some("00000000-0000-0000-0000-0000000000a1"), Some(OPERATOR))
    );
    assert_eq!(
        (user["aud"].as_str(), user["role"].as_str(), user["phone"].as_str()),
        (Some("authenticated"), Some("authenticated"), Some(""))
    );
    assert_eq!(user["app_metadata"], json!({"provider": "email", "providers": ["email"]}));
    assert_eq!(user["is_anonymous"], false);

    // The access token: ES256 with the project's kid, verified by the shared keys, §1.4's claims.
    let token = session["access_token"].as_str().unwrap();
    let claims = auth.keys.verify(token, now()).expect("signed by the project's ES256 key");
    let header: Value = serde_json::from_slice(&base64_url(token.split('.').next().unwrap())).unwrap();
    assert_eq!((header["alg"].as_str(), header["kid"].as_str()), (Some("ES256"), Some(auth.keys.kid())));
    let claim_keys: BTreeSet<&str> = claims.keys().map(String::as_str).collect();
    assert_eq!(
        claim_keys,
        BTreeSet::from([
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "email",
            "phone",
            "app_metadata",
            "user_metadata",
            "role",
            "aal",
            "amr",
            "session_id",
            "is_anonymous"
        ])
    );
    assert_eq!(claims["iss"], format!("{PUBLIC_URL}/auth/v1"));
    assert_eq!(claims["aud"], "authenticated", "a string, not an array");
    assert_eq!(claims["sub"], user["id"]);
    assert_eq!(claims["role"], "authenticated");
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), EXPIRY);
    assert_eq!(claims["exp"].as_i64(), Some(expires_at));
    assert_eq!(claims["amr"][0]["method"], "otp");
    assert!(claims["amr"][0]["timestamp"].as_i64().unwrap() >= before);
    assert!(claims["session_id"].as_str().unwrap().parse::<uuid::Uuid>().is_ok());
    assert_eq!((claims["email"].as_str(), claims["aal"].as_str()), (Some(OPERATOR), Some("aal1")));

    // Single use: the same code again is GoTrue's otp_expired, in both error shapes.
    let again = auth.verify_code(OPERATOR, code).await;
    assert_error(&again, 403, "otp_expired", true);
    assert_eq!(again.2["message"], "Token has expired or is invalid");
    assert_eq!(again.1["x-supabase-api-version"], "2024-01-01");
    let unversioned = auth.post("/verify", json!({"email": OPERATOR, "token": code, "type": "email"}), false).await;
    assert_error(&unversioned, 403, "otp_expired", false);
}

fn base64_url(part: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()
}

#[tokio::test]
async fn sign_ups_are_off_as_gotrue_answers_them() {
    let auth = start().await;
    for versioned in [true, false] {
        let otp = |email: &str, create_user: Option<bool>| {
            let mut body = json!({"email": email, "data": {}, "gotrue_meta_security": {}});
            if let Some(c) = create_user {
                body["create_user"] = json!(c);
            }
            auth.post("/otp", body, versioned)
        };
        let unknown = otp("nobody@example.com", Some(true)).await;
        assert_error(&unknown, 422, "signup_disabled", versioned);
        assert_error(&otp("nobody@example.com", None).await, 422, "signup_disabled", versioned);
        assert_error(&otp(UNCONFIRMED, Some(true)).await, 422, "signup_disabled", versioned);
        // create_user:false looks the email up first: unknown → otp_disabled; unconfirmed goes on to signup.
        let refused = otp("nobody@example.com", Some(false)).await;
        assert_error(&refused, 422, "otp_disabled", versioned);
        assert_error(&otp(UNCONFIRMED, Some(false)).await, 422, "signup_disabled", versioned);
        if versioned {
            assert_eq!(unknown.2["message"], "Signups not allowed for this instance");
            assert_eq!(refused.2["message"], "Signups not allowed for otp");
        } else {
            assert_eq!(unknown.2["msg"], "Signups not allowed for this instance");
        }
    }
    assert!(auth.messages("nobody@example.com").await.is_empty());
    assert!(auth.messages(UNCONFIRMED).await.is_empty());
    assert_error(&auth.post("/otp", json!({"email": "not an email"}), true).await, 400, "validation_failed", true);
    assert_error(&auth.post("/otp", json!({}), true).await, 400, "validation_failed", true);
    let bad_json = auth.request(reqwest::Method::POST, "/otp", true).body("{").send().await.unwrap();
    assert_eq!(bad_json.headers()["x-sb-error-code"], "bad_json");
}

#[tokio::test]
async fn a_new_code_replaces_the_last_and_a_token_hash_signs_in() {
    let auth = start().await;
    auth.send_code(OPERATOR, true).await;
    auth.send_code(OPERATOR, true).await;
    let messages = auth.messages(OPERATOR).await;
    assert_eq!(messages.len(), 2, "newest last");
    let (first, second) = (&messages[0], &messages[1]);
    if first["code"] != second["code"] {
        assert_error(&auth.verify_code(OPERATOR, first["code"].as_str().unwrap()).await, 403, "otp_expired", true);
    }
    // verifyOtp({token_hash, type}) as a page handling the link itself does.
    let (status, _, session) =
        auth.post("/verify", json!({"token_hash": second["token_hash"], "type": "magiclink"}), true).await;
    assert_eq!(status, 200, "{session}");
    assert!(auth.keys.verify(session["access_token"].as_str().unwrap(), now()).is_ok());
    let reused = auth.post("/verify", json!({"token_hash": second["token_hash"], "type": "email"}), true).await;
    assert_error(&reused, 403, "otp_expired", true);
    assert_eq!(reused.2["message"], "Email link is invalid or has expired");

    // /_sandbox/reset forgets the messages and their codes.
    auth.send_code(OPERATOR, true).await;
    let live = auth.messages(OPERATOR).await.pop().unwrap();
    let reset = auth.http.post(format!("{}/_sandbox/reset", auth.base)).send().await.unwrap();
    assert_eq!(reset.status(), 200);
    assert!(auth.messages(OPERATOR).await.is_empty());
    assert_error(&auth.verify_code(OPERATOR, live["code"].as_str().unwrap()).await, 403, "otp_expired", true);
}

#[tokio::test]
async fn the_email_link_redirects_with_the_session_in_the_fragment() {
    let auth = start().await;
    auth.send_code(OPERATOR, true).await;
    let link = auth.messages(OPERATOR).await[0]["link"].as_str().unwrap().replace(PUBLIC_URL, &auth.base);
    // Clicked in a mail client: no apikey, no Authorization (Kong leaves /verify open).
    let clicked = auth.http.get(&link).send().await.unwrap();
    assert_eq!(clicked.status(), StatusCode::SEE_OTHER);
    let location = clicked.headers()["location"].to_str().unwrap().to_owned();
    let (target, fragment) = location.split_once('#').unwrap();
    assert_eq!(target, DASHBOARD);
    let params: std::collections::HashMap<String, String> =
        form_urlencoded::parse(fragment.as_bytes()).into_owned().collect();
    assert_eq!(params["token_type"], "bearer");
    assert_eq!(params["type"], "magiclink");
    assert_eq!(params["expires_in"], EXPIRY.to_string());
    assert!(params.contains_key("refresh_token") && params.contains_key("sb"));
    let claims = auth.keys.verify(&params["access_token"], now()).unwrap();
    assert_eq!(claims["email"], OPERATOR);
    assert_eq!(claims["exp"].as_i64().unwrap().to_string(), params["expires_at"]);

    let again = auth.http.get(&link).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    let location = again.headers()["location"].to_str().unwrap();
    assert!(location.starts_with(&format!("{DASHBOARD}#error=access_denied&error_code=otp_expired&")), "{location}");
}

#[tokio::test]
async fn user_refresh_rotation_and_logout() {
    let auth = start().await;
    let session = auth.sign_in().await;
    let access = session["access_token"].as_str().unwrap().to_owned();

    let (status, _, user) = auth.get_user(Some(&access), true).await;
    assert_eq!(status, 200);
    assert_eq!(user["email"], OPERATOR);
    assert_eq!(user["id"], session["user"]["id"]);

    for versioned in [true, false] {
        assert_error(&auth.get_user(None, versioned).await, 401, "no_authorization", versioned);
        assert_error(&auth.get_user(Some("not.a.jwt"), versioned).await, 403, "bad_jwt", versioned);
    }
    let expired = auth.keys.sign_es256(&json!({"sub": user["id"], "role": "authenticated", "exp": now() - 1}));
    assert_error(&auth.get_user(Some(&expired), true).await, 403, "bad_jwt", true);
    let other_project =
        AuthKeys::derive("another-secret-another-secret-xx").sign_es256(&json!({"sub": user["id"], "exp": now() + 60}));
    assert_error(&auth.get_user(Some(&other_project), true).await, 403, "bad_jwt", true);
    // The anon key is a valid JWT of the project but names no user.
    assert_error(&auth.get_user(Some(&auth.anon.clone()), true).await, 403, "bad_jwt", true);

    // Refresh: a new pair; the old refresh token is spent.
    let a = session["refresh_token"].as_str().unwrap().to_owned();
    let (status, _, refreshed) = auth.refresh(&a).await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(keys(&refreshed), keys(&session));
    let b = refreshed["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(a, b);
    let first = auth.keys.verify(&access, now()).unwrap();
    let second = auth.keys.verify(refreshed["access_token"].as_str().unwrap(), now()).unwrap();
    assert_eq!(second["session_id"], first["session_id"], "same session");
    assert_eq!(second["amr"], first["amr"], "still signed in by otp, at the same time");
    let (_, _, after_b) = auth.refresh(&b).await;
    let c = after_b["refresh_token"].as_str().unwrap().to_owned();
    let reused = auth.refresh(&a).await;
    assert_error(&reused, 400, "refresh_token_already_used", true);
    assert_eq!(reused.2["message"], "Invalid Refresh Token: Already Used");
    assert_error(&auth.refresh(&c).await, 400, "refresh_token_already_used", true);
    assert_error(&auth.refresh("unknown").await, 400, "refresh_token_not_found", true);
    let missing = auth.post("/token?grant_type=refresh_token", json!({}), true).await;
    assert_eq!((missing.0.as_u16(), missing.2["error"].as_str()), (400, Some("invalid_request")));

    // Logout (local): 204, the session's refresh tokens are gone and its access token names no session.
    let session = auth.sign_in().await;
    let access = session["access_token"].as_str().unwrap().to_owned();
    let other = auth.sign_in().await;
    let response =
        auth.with_token(reqwest::Method::POST, "/logout?scope=local", Some(&access), true).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_error(&auth.get_user(Some(&access), true).await, 403, "session_not_found", true);
    assert_error(&auth.refresh(session["refresh_token"].as_str().unwrap()).await, 400, "refresh_token_not_found", true);
    let still = auth.get_user(other["access_token"].as_str(), true).await;
    assert_eq!(still.0, 200, "another session stays: {}", still.2);
    // Global (the default): every session of the user.
    let other_access = other["access_token"].as_str().unwrap();
    let response = auth.with_token(reqwest::Method::POST, "/logout", Some(other_access), true).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_error(&auth.refresh(other["refresh_token"].as_str().unwrap()).await, 400, "refresh_token_not_found", true);
    let no_token = auth.with_token(reqwest::Method::POST, "/logout", None, true).send().await.unwrap();
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn gateway_key_jwks_cors_and_body_cap() {
    let auth = start().await;
    let otp = format!("{}/auth/v1/otp", auth.base);
    let none = auth.http.post(&otp).json(&json!({"email": OPERATOR})).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(none.json::<Value>().await.unwrap(), json!({"message": "No API key found in request"}));
    let wrong = auth.http.post(&otp).header("apikey", "nope").json(&json!({"email": OPERATOR})).send().await.unwrap();
    assert_eq!(wrong.json::<Value>().await.unwrap(), json!({"message": "Invalid API key"}));
    let by_query =
        auth.http.post(format!("{otp}?apikey={}", auth.anon)).json(&json!({"email": OPERATOR})).send().await.unwrap();
    assert_eq!(by_query.status(), 200);
    assert_eq!(auth.messages(OPERATOR).await.len(), 1);

    let jwks = auth.http.get(format!("{}/auth/v1/.well-known/jwks.json", auth.base)).send().await.unwrap();
    assert_eq!(jwks.status(), 200, "open, like Kong's route");
    assert_eq!(jwks.headers()["cache-control"], "public, max-age=600");
    assert_eq!(jwks.json::<Value>().await.unwrap(), auth.keys.jwks());

    // The dashboard's browser: a preflight without credentials, then the call; errors readable cross-origin.
    let origin = "http://127.0.0.1:8787";
    let preflight = auth
        .http
        .request(reqwest::Method::OPTIONS, &otp)
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "apikey, authorization, content-type, x-client-info, x-supabase-api-version",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let h = preflight.headers();
    assert_eq!(h["access-control-allow-origin"], "*", "as PostgREST answers /rest/v1");
    let allowed = h["access-control-allow-headers"].to_str().unwrap().to_ascii_lowercase();
    for name in ["apikey", "authorization", "content-type", "x-client-info", "x-supabase-api-version"] {
        assert!(allowed.contains(name), "{allowed}");
    }
    assert!(h["access-control-allow-methods"].to_str().unwrap().contains("POST"));
    let refused = auth
        .request(reqwest::Method::POST, "/otp", true)
        .header("Origin", origin)
        .json(&json!({"email": "nobody@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    assert_eq!(refused.headers()["access-control-allow-origin"], "*");
    assert!(refused.headers()["access-control-expose-headers"].to_str().unwrap().contains("x-sb-error-code"));
    let no_key = auth.http.post(&otp).header("Origin", origin).json(&json!({})).send().await.unwrap();
    assert_eq!(no_key.status(), 401);
    assert_eq!(no_key.headers()["access-control-allow-origin"], "*", "the gateway's refusal is readable too");

    let huge = json!({"email": OPERATOR, "data": {"x": "a".repeat(100_000)}});
    let capped = auth.request(reqwest::Method::POST, "/otp", true).json(&huge).send().await.unwrap();
    assert_eq!(capped.status(), 413);
}
