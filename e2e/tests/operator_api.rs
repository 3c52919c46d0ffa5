//! The dashboard's API against the running stack: the Worker verifies Supabase users' access tokens (ES256 by the
//! project's JWKS, as the Auth stand-in signs them, and the legacy HS256 secret), then calls the action functions
//! with the user's own token, so the database decides by the operator's role and writes the audit row.
//!
//! Users: an operator and a viewer made by `./dev operator add`, and a signed-in user on no list (a plain
//! `auth.users` row). Every refusal is checked to change nothing: the row keeps its status and no audit row names it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use outcall_e2e::users::{claims, es256, hs256, operator, stranger};
use outcall_e2e::{fresh_phone, sample_row, Scenario, Stack};
use outcall_sandbox::jwt::AuthKeys;
use serde_json::{json, Value};
use std::path::Path;

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn with(mut claims: Value, field: &str, value: Value) -> Value {
    claims[field] = value;
    claims
}

struct Answer {
    status: u16,
    body: Value,
    headers: reqwest::header::HeaderMap,
    text: String,
}

async fn send(stack: &Stack, method: &str, path: &str, token: Option<&str>, body: Option<String>) -> Answer {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = stack.http.request(method, format!("{}{path}", stack.worker_url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.header("Content-Type", "application/json").body(body);
    }
    let response = request.send().await.expect("the Worker answers");
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    let text = response.text().await.unwrap();
    Answer { status, body: serde_json::from_str(&text).unwrap_or(Value::Null), headers, text }
}

async fn act(stack: &Stack, token: Option<&str>, action: &str, ids: &[&str]) -> Answer {
    send(stack, "POST", &format!("/api/v1/operator/calls/{action}"), token, Some(json!({"ids": ids}).to_string())).await
}

/// A row no webhook, sweep or claim will touch: only the test's actions change it.
async fn parked_row(stack: &Stack) -> String {
    stack.insert_parked(&sample_row(&fresh_phone(Scenario::Human), "Ada Brandt")).await
}

async fn status_of(stack: &Stack, id: &str) -> (String, Option<String>) {
    let row = stack
        .db()
        .await
        .query_one("select call_status, archived_at::text from pending_calls where id = $1::text::uuid", &[&id])
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

async fn audit_rows(stack: &Stack, id: &str) -> Vec<(String, String, String)> {
    stack
        .db()
        .await
        .query(
            "select user_id::text, email, action from operator_actions where $1::text::uuid = any (target_ids) \
             order by at",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[tokio::test]
async fn the_dashboards_config_and_page() {
    let stack = Stack::from_env();
    let config = send(&stack, "GET", "/api/v1/dashboard/config", None, None).await;
    assert_eq!(config.status, 200, "{}", config.text);
    assert_eq!(config.body, json!({"supabaseUrl": stack.supabase_url, "supabaseAnonKey": stack.anon_key}));

    let page = send(&stack, "GET", "/", None, None).await;
    let on_disk = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboard/dist/index.html"))
        .expect("dashboard/dist/index.html (./dev build builds the dashboard)");
    assert_eq!((page.status, page.text.as_str()), (200, on_disk.as_str()), "GET / serves index.html");
    let header = |name: &str| page.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(header("content-type").starts_with("text/html"), "{}", header("content-type"));
    let socket = stack.supabase_url.replacen("http", "ws", 1);
    assert_eq!(
        header("content-security-policy"),
        format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' {} \
             {socket}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            stack.supabase_url
        )
    );
    assert_eq!(header("referrer-policy"), "no-referrer");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("cache-control"), "no-store");
    // The Worker's own routes still reach it, next to the assets.
    let health = send(&stack, "GET", "/health", None, None).await;
    assert_eq!((health.status, health.body["configured"].clone()), (200, json!(true)), "{}", health.text);
    assert_eq!(send(&stack, "GET", "/api/v1/openapi.json", None, None).await.status, 200);
    let unknown = send(&stack, "GET", "/no-such-page", None, None).await;
    assert_eq!((unknown.status, unknown.body["error"]["code"].clone()), (404, json!("not_found")), "{}", unknown.text);
}

#[tokio::test]
async fn me_says_who_the_user_is() {
    let stack = Stack::from_env();
    for (user, role) in [
        (operator(&stack, "operator").await, json!("operator")),
        (operator(&stack, "viewer").await, json!("viewer")),
        (stranger(&stack).await, Value::Null),
    ] {
        let expected = json!({"userId": user.id, "email": user.email, "role": role});
        let me = send(&stack, "GET", "/api/v1/operator/me", Some(&es256(&stack, &claims(&stack, &user))), None).await;
        assert_eq!((me.status, &me.body), (200, &expected), "{}", me.text);
        let legacy = hs256(&stack.jwt_secret, &claims(&stack, &user));
        let me = send(&stack, "GET", "/api/v1/operator/me", Some(&legacy), None).await;
        assert_eq!((me.status, &me.body), (200, &expected), "the legacy HS256 secret: {}", me.text);
    }
    let anonymous = send(&stack, "GET", "/api/v1/operator/me", None, None).await;
    assert_eq!((anonymous.status, anonymous.body["error"]["code"].clone()), (401, json!("unauthorized")));
}

#[tokio::test]
async fn an_operator_acts_and_each_action_is_audited() {
    let stack = Stack::from_env();
    let op = operator(&stack, "operator").await;
    let token = es256(&stack, &claims(&stack, &op));
    let (first, second) = (parked_row(&stack).await, parked_row(&stack).await);
    let unknown = uuid::Uuid::new_v4().to_string();

    let answer = act(&stack, Some(&token), "cancel", &[&first, &unknown]).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.body,
        json!({"action": "cancel", "results": [
            {"id": first, "ok": true, "call_status": "cancelled"},
            {"id": unknown, "ok": false, "call_status": null, "reason": "not_found"}]})
    );
    assert_eq!(status_of(&stack, &first).await.0, "cancelled");
    assert_eq!(audit_rows(&stack, &first).await, [(op.id.clone(), op.email.clone(), "cancel".to_owned())]);

    // The legacy secret's tokens act too (a project still signing with HS256).
    let legacy = hs256(&stack.jwt_secret, &claims(&stack, &op));
    let answer = act(&stack, Some(&legacy), "archive", &[&second]).await;
    assert_eq!((answer.status, answer.body["results"][0]["ok"].clone()), (200, json!(true)), "{}", answer.text);
    assert!(status_of(&stack, &second).await.1.is_some(), "archived");
    assert_eq!(audit_rows(&stack, &second).await.len(), 1);

    // A batch: created through the batch API for a year from now, cancelled by the operator.
    let created = stack
        .http
        .post(format!("{}/api/v1/batches", stack.worker_url))
        .bearer_auth(&stack.api_key)
        .json(&json!({"name": "operator-api", "targets": [{"phone": fresh_phone(Scenario::Human), "name": "Ben"}],
                      "schedule": {"notBefore": (chrono::Utc::now() + chrono::Duration::days(365)).to_rfc3339()}}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 202);
    let batch = created.json::<Value>().await.unwrap()["batchId"].as_str().unwrap().to_owned();
    let answer = send(&stack, "POST", &format!("/api/v1/operator/batches/{batch}/cancel"), Some(&token), None).await;
    assert_eq!((answer.status, answer.body["ok"].clone()), (200, json!(true)), "{}", answer.text);
    assert_eq!(audit_rows(&stack, &batch).await.len(), 1);

    // A classification: corrected, then invalidated, each with the operator's reason.
    let phone = fresh_phone(Scenario::Human);
    let row = stack
        .db()
        .await
        .query_one(
            "insert into call_classifications (phone_number, classification_type) values ($1, 'human') returning id::text",
            &[&phone],
        )
        .await
        .unwrap();
    let class: String = row.get(0);
    let correct = json!({"classification_type": "ivr_then_human", "reason": "a menu first",
                         "ivr_actions": [{"action": "dtmf", "value": "2", "timing_ms": 1500}]});
    let path = format!("/api/v1/operator/classifications/{class}/correct");
    let answer = send(&stack, "POST", &path, Some(&token), Some(correct.to_string())).await;
    assert_eq!((answer.status, answer.body["ok"].clone()), (200, json!(true)), "{}", answer.text);
    assert_eq!(answer.body["classification"]["classification_type"], "ivr_then_human");
    let path = format!("/api/v1/operator/classifications/{class}/invalidate");
    let answer = send(&stack, "POST", &path, Some(&token), Some(json!({"reason": "moved"}).to_string())).await;
    assert_eq!((answer.status, answer.body["classification"]["is_active"].clone()), (200, json!(false)));
    let actions: Vec<String> = audit_rows(&stack, &class).await.into_iter().map(|(_, _, a)| a).collect();
    assert_eq!(actions, ["correct", "invalidate"]);
}

#[tokio::test]
async fn viewers_and_other_users_are_forbidden_and_nothing_changes() {
    let stack = Stack::from_env();
    let row = parked_row(&stack).await;
    for user in [operator(&stack, "viewer").await, stranger(&stack).await] {
        for token in [es256(&stack, &claims(&stack, &user)), hs256(&stack.jwt_secret, &claims(&stack, &user))] {
            let answer = act(&stack, Some(&token), "cancel", &[&row]).await;
            assert_eq!(
                (answer.status, answer.body["error"]["code"].clone()),
                (403, json!("forbidden")),
                "{}",
                answer.text
            );
        }
        let batch = uuid::Uuid::new_v4();
        let path = format!("/api/v1/operator/batches/{batch}/retry-failed");
        let answer = send(&stack, "POST", &path, Some(&es256(&stack, &claims(&stack, &user))), None).await;
        assert_eq!(answer.status, 403, "the role before the batch: {}", answer.text);
    }
    assert_eq!(status_of(&stack, &row).await, ("pending".to_owned(), None));
    assert!(audit_rows(&stack, &row).await.is_empty());
}

#[tokio::test]
async fn tokens_that_do_not_hold_are_401_and_nothing_changes() {
    let stack = Stack::from_env();
    let op = operator(&stack, "operator").await;
    let row = parked_row(&stack).await;
    let good = claims(&stack, &op);
    let other_project = AuthKeys::derive("another-project-secret-another-project");
    let tampered = {
        let token = es256(&stack, &good);
        let parts: Vec<&str> = token.split('.').collect();
        let forged = with(good.clone(), "sub", json!(uuid::Uuid::new_v4()));
        format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(forged.to_string()), parts[2])
    };
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("no token", None, "Authorization"),
        ("not a JWT", Some("not-a-jwt".into()), "well-formed"),
        ("expired", Some(es256(&stack, &with(good.clone(), "exp", json!(now() - 120)))), "expired"),
        (
            "another issuer",
            Some(es256(&stack, &with(good.clone(), "iss", json!("https://x.supabase.co/auth/v1")))),
            "issued",
        ),
        ("another audience", Some(es256(&stack, &with(good.clone(), "aud", json!("anon")))), "authenticated users"),
        (
            "a role other than authenticated",
            Some(es256(&stack, &with(good.clone(), "role", json!("service_role")))),
            "role",
        ),
        ("a tampered payload", Some(tampered), "signature"),
        ("a key the project does not publish", Some(other_project.sign_es256(&good)), "key"),
        ("the legacy algorithm with another secret", Some(hs256("not-the-secret", &good)), "signature"),
        ("the service role key", Some(stack.service_key.clone()), "issued"),
        ("the anon key", Some(stack.anon_key.clone()), "issued"),
    ];
    for (what, token, reason) in cases {
        let answer = act(&stack, token.as_deref(), "cancel", &[&row]).await;
        assert_eq!(
            (answer.status, answer.body["error"]["code"].clone()),
            (401, json!("unauthorized")),
            "{what}: {}",
            answer.text
        );
        let message = answer.body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(reason), "{what}: the reason is given: {message}");
    }
    assert_eq!(status_of(&stack, &row).await, ("pending".to_owned(), None));
    assert!(audit_rows(&stack, &row).await.is_empty());
}

#[tokio::test]
async fn bad_requests_are_refused_before_anything_is_written() {
    let stack = Stack::from_env();
    let op = operator(&stack, "operator").await;
    let token = es256(&stack, &claims(&stack, &op));
    let row = parked_row(&stack).await;
    let post = |path: String, body: Option<String>| {
        let (stack, token) = (&stack, &token);
        async move { send(stack, "POST", &path, Some(token), body).await }
    };
    let too_many: Vec<String> = (0..501).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let calls = "/api/v1/operator/calls/cancel".to_owned();
    for (body, code) in [
        ("not json".to_owned(), "invalid_body"),
        (json!({"ids": []}).to_string(), "invalid_body"),
        (json!({"ids": ["not-a-uuid"]}).to_string(), "invalid_body"),
        (json!({"ids": too_many}).to_string(), "invalid_body"),
        (json!({"ids": [row], "everything": true}).to_string(), "invalid_body"),
    ] {
        let answer = post(calls.clone(), Some(body.clone())).await;
        assert_eq!(
            (answer.status, answer.body["error"]["code"].clone()),
            (400, json!(code)),
            "{body:.60}: {}",
            answer.text
        );
    }
    let answer = post("/api/v1/operator/calls/explode".into(), Some(json!({"ids": [row]}).to_string())).await;
    assert_eq!((answer.status, answer.body["error"]["code"].clone()), (400, json!("unknown_action")));
    let answer = post(format!("/api/v1/operator/batches/{}/cancel", uuid::Uuid::new_v4()), None).await;
    assert_eq!((answer.status, answer.body["error"]["code"].clone()), (404, json!("not_found")), "{}", answer.text);
    let answer = post(
        format!("/api/v1/operator/classifications/{}/invalidate", uuid::Uuid::new_v4()),
        Some(json!({"reason": "x"}).to_string()),
    )
    .await;
    assert_eq!(answer.status, 404, "{}", answer.text);
    let answer = post(
        format!("/api/v1/operator/classifications/{}/correct", uuid::Uuid::new_v4()),
        Some(json!({"classification_type": "robot", "ivr_actions": [], "reason": "x"}).to_string()),
    )
    .await;
    assert_eq!((answer.status, answer.body["error"]["code"].clone()), (400, json!("invalid_body")));
    // The table's own rule (a human line has no menu steps), checked by SQL: 400 too.
    let phone = fresh_phone(Scenario::Human);
    let class: String = stack
        .db()
        .await
        .query_one(
            "insert into call_classifications (phone_number, classification_type, ivr_actions) \
             values ($1, 'ivr_only', '[{\"action\": \"dtmf\", \"value\": \"1\", \"timing_ms\": 0}]') returning id::text",
            &[&phone],
        )
        .await
        .unwrap()
        .get(0);
    let answer = post(
        format!("/api/v1/operator/classifications/{class}/correct"),
        Some(
            json!({"classification_type": "human", "reason": "x",
                                  "ivr_actions": [{"action": "dtmf", "value": "1", "timing_ms": 0}]})
            .to_string(),
        ),
    )
    .await;
    assert_eq!(
        (answer.status, answer.body["error"]["code"].clone()),
        (400, json!("invalid_parameter")),
        "{}",
        answer.text
    );
    // Over the cap: refused before a byte is read.
    let huge = json!({"ids": [row], "padding": "x".repeat(70 * 1024)}).to_string();
    let answer = post(calls.clone(), Some(huge)).await;
    assert_eq!((answer.status, answer.body["error"]["code"].clone()), (413, json!("payload_too_large")));
    let answer = send(&stack, "GET", &calls, Some(&token), None).await;
    assert_eq!(
        (answer.status, answer.headers.get("allow").map(|v| v.to_str().unwrap().to_owned())),
        (405, Some("POST".into()))
    );
    assert_eq!(status_of(&stack, &row).await, ("pending".to_owned(), None));
    assert!(audit_rows(&stack, &row).await.is_empty());
}
