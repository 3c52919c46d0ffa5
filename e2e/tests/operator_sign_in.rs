//! An operator signs in through the Auth stand-in as the dashboard does (supabase-js's `/auth/v1/otp`, the code
//! from the sandbox's mailbox, `/auth/v1/verify`, later `/auth/v1/token`), and the ES256 access token it gets is
//! accepted by the real PostgREST behind `/rest/v1` (its jwt-secret is the project's JWKS): an operator reads
//! the calls under RLS, a signed-in user who is not one reads nothing, a forged token is refused.

use outcall_e2e::{fresh_phone, sample_row, users, Scenario, Stack};
use serde_json::{json, Value};

async fn auth(stack: &Stack, path: &str, body: Value) -> (u16, Value) {
    let response = stack
        .http
        .post(format!("{}/auth/v1{path}", stack.supabase_url))
        .header("apikey", &stack.anon_key)
        .header("Authorization", format!("Bearer {}", stack.anon_key))
        .header("X-Supabase-Api-Version", "2024-01-01")
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

async fn sign_in(stack: &Stack, email: &str) -> Value {
    let (status, body) = auth(stack, "/otp", json!({"email": email, "create_user": true, "data": {}})).await;
    assert_eq!(status, 200, "{body}");
    let url = format!("{}/_sandbox/auth/messages?email={email}", stack.sandbox_url);
    let mailbox: Value = stack.http.get(url).send().await.unwrap().json().await.unwrap();
    let code = mailbox["messages"].as_array().unwrap().last().unwrap()["code"].as_str().unwrap().to_owned();
    let (status, session) = auth(stack, "/verify", json!({"email": email, "token": code, "type": "email"})).await;
    assert_eq!(status, 200, "{session}");
    session
}

/// `pending_calls` row `id` as the holder of `token` sees it through the gateway: (status, rows).
async fn read_as(stack: &Stack, token: &str, id: &str) -> (u16, Value) {
    let response = stack
        .http
        .get(format!("{}/rest/v1/pending_calls?id=eq.{id}&select=id,call_status", stack.supabase_url))
        .header("apikey", &stack.anon_key)
        .header("Authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn an_operator_signed_in_by_the_auth_stand_in_reads_calls_through_postgrest() {
    let stack = Stack::from_env();
    let id = stack.insert_parked(&sample_row(&fresh_phone(Scenario::Human), "Ada Sign")).await;

    let viewer = sign_in(&stack, &users::operator(&stack, "viewer").await.email).await;
    let token = viewer["access_token"].as_str().unwrap();
    let header = token.split('.').next().unwrap();
    assert!(header.starts_with("eyJhbGciOiJFUzI1NiIs"), "an ES256 token: {header}");
    let (status, rows) = read_as(&stack, token, &id).await;
    assert_eq!((status, rows[0]["id"].as_str()), (200, Some(id.as_str())), "{rows}");

    // Not on the allow-list: signed in, PostgREST accepts the token, RLS shows nothing.
    let stranger = sign_in(&stack, &users::stranger(&stack).await.email).await;
    assert_eq!(read_as(&stack, stranger["access_token"].as_str().unwrap(), &id).await, (200, json!([])));

    // A forged signature is refused by PostgREST itself.
    let (head, signature) = token.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    let (status, body) = read_as(&stack, &format!("{head}.{flipped}{}", &signature[1..]), &id).await;
    assert_eq!(status, 401, "{body}");

    // A refreshed session's token works as well.
    let (status, refreshed) =
        auth(&stack, "/token?grant_type=refresh_token", json!({"refresh_token": viewer["refresh_token"]})).await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(read_as(&stack, refreshed["access_token"].as_str().unwrap(), &id).await.0, 200);
}
