//! Signed-in users of the dashboard: operators made as a person makes them locally (`./dev operator add`), a
//! Supabase Auth user on no list, and their access tokens, signed as the Auth stand-in signs them (ES256 with the
//! project's key, `outcall_sandbox::jwt::AuthKeys`) or with the legacy JWT secret (HS256).

use crate::Stack;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use outcall_sandbox::jwt::AuthKeys;
use serde_json::{json, Value};
use std::path::Path;

pub struct User {
    pub id: String,
    pub email: String,
}

/// A new user on the operators' list with `role` (`viewer` or `operator`), through `./dev operator add`.
pub async fn operator(stack: &Stack, role: &str) -> User {
    let email = format!("{role}-{}@example.com", uuid::Uuid::new_v4().simple());
    let dev = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("dev");
    let output = tokio::process::Command::new(dev).args(["operator", "add", &email, role]).output().await.unwrap();
    assert!(output.status.success(), "./dev operator add: {}", String::from_utf8_lossy(&output.stderr));
    user_by_email(stack, email).await
}

/// A new, confirmed Supabase Auth user who is on no list.
pub async fn stranger(stack: &Stack) -> User {
    let email = format!("stranger-{}@example.com", uuid::Uuid::new_v4().simple());
    stack
        .db()
        .await
        .execute(
            "insert into auth.users (id, aud, role, email, email_confirmed_at) \
             values (gen_random_uuid(), 'authenticated', 'authenticated', $1, now())",
            &[&email],
        )
        .await
        .unwrap();
    user_by_email(stack, email).await
}

async fn user_by_email(stack: &Stack, email: String) -> User {
    let row = stack.db().await.query_one("select id::text from auth.users where email = $1", &[&email]).await.unwrap();
    User { id: row.get(0), email }
}

/// An access token's claims as Supabase Auth writes them (operators.md §1.4), valid for an hour.
pub fn claims(stack: &Stack, user: &User) -> Value {
    claims_expiring_in(stack, user, 3600)
}

/// The same claims expiring `seconds` from now (negative: already expired).
pub fn claims_expiring_in(stack: &Stack, user: &User, seconds: i64) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "iss": format!("{}/auth/v1", stack.supabase_url), "aud": "authenticated", "role": "authenticated",
        "sub": user.id, "email": user.email, "phone": "", "exp": now + seconds, "iat": now, "aal": "aal1",
        "amr": [{"method": "otp", "timestamp": now}], "session_id": uuid::Uuid::new_v4(), "is_anonymous": false,
        "app_metadata": {"provider": "email", "providers": ["email"]}, "user_metadata": {}
    })
}

/// `claims` signed as the Auth stand-in signs them (ES256, the project's `kid`).
pub fn es256(stack: &Stack, claims: &Value) -> String {
    AuthKeys::derive(&stack.jwt_secret).sign_es256(claims)
}

/// `claims` signed with a shared secret (HS256), as a project without signing keys issues them.
pub fn hs256(secret: &str, claims: &Value) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let input = format!("{}.{}", part(&json!({"alg": "HS256", "typ": "JWT"})), part(claims));
    let mac = outcall_core::vapi_auth::hmac_sha256(secret, &input);
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac))
}

/// The user's access token as the dashboard holds it after signing in.
pub fn access_token(stack: &Stack, user: &User) -> String {
    es256(stack, &claims(stack, user))
}
