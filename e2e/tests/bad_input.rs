//! Bad input gets its documented error and writes nothing.

use outcall_core::twilio::signature;
use outcall_e2e::{fresh_phone, sample_row, Scenario, Stack};
use serde_json::{json, Value};

/// A due, pending row the webhook was not told about.
async fn quiet_pending_row(stack: &Stack) -> String {
    stack.insert_parked(&sample_row(&fresh_phone(Scenario::Human), "Quinn Adler")).await
}

fn insert_payload(id: &str) -> String {
    json!({"type": "INSERT", "table": "pending_calls", "schema": "public", "record": {"id": id}, "old_record": null})
        .to_string()
}

#[tokio::test]
async fn the_webhook_refuses_a_wrong_or_missing_secret_and_malformed_json() {
    let stack = Stack::from_env();
    let id = quiet_pending_row(&stack).await;

    let (status, body) =
        stack.post_worker("/hooks/pending-calls", &[("X-Webhook-Secret", "wrong")], insert_payload(&id)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")));
    let (status, _) = stack.post_worker("/hooks/pending-calls", &[], insert_payload(&id)).await;
    assert_eq!(status, 401);
    let secret = stack.webhook_secret.clone();
    let (status, body) =
        stack.post_worker("/hooks/pending-calls", &[("X-Webhook-Secret", &secret)], "{\"type\": \"INSERT\",").await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_json")));
    let (status, body) =
        stack.post_worker("/hooks/pending-calls", &[("X-Webhook-Secret", &secret)], insert_payload("not-a-uuid")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_record")));
    stack.assert_untouched(&id).await;

    // The same request with the right secret is accepted: the refusals above were the secret's doing.
    // (The row is parked, not due, so nothing is dialled.)
    let (status, body) =
        stack.post_worker("/hooks/pending-calls", &[("X-Webhook-Secret", &secret)], insert_payload(&id)).await;
    assert_eq!((status, &body["dispatched"], &body["reason"]), (200, &json!(false), &json!("not_claimable")), "{body}");
    stack.assert_untouched(&id).await;
}

#[tokio::test]
async fn a_webhook_delivered_twice_dials_once() {
    let stack = Stack::from_env();
    let phone = fresh_phone(Scenario::Human);
    let row = stack.insert_pending_call(sample_row(&phone, "Quinn Adler")).await;
    let id = row["id"].as_str().unwrap();
    stack.wait_terminal(id).await;
    // Delivered again (pg_net or a replay): the row is no longer claimable, so nothing is dialled again.
    let secret = stack.webhook_secret.clone();
    let (status, body) =
        stack.post_worker("/hooks/pending-calls", &[("X-Webhook-Secret", &secret)], insert_payload(id)).await;
    assert_eq!((status, &body["dispatched"]), (200, &json!(false)), "{body}");
    assert_eq!(stack.sessions(id).await.len(), 1);
    assert_eq!(stack.sandbox_calls_of(id).await.len(), 1);
}

#[tokio::test]
async fn a_webhook_for_an_unknown_row_dials_nothing() {
    let stack = Stack::from_env();
    let secret = stack.webhook_secret.clone();
    let unknown = uuid::Uuid::new_v4().to_string();
    let (status, body) =
        stack.post_worker("/hooks/pending-calls", &[("X-Webhook-Secret", &secret)], insert_payload(&unknown)).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    assert!(stack.sessions(&unknown).await.is_empty());
}

#[tokio::test]
async fn vapi_requests_need_the_credential() {
    let stack = Stack::from_env();
    let id = quiet_pending_row(&stack).await;
    let message = json!({"message": {"type": "assistant-request",
        "call": {"assistantOverrides": {"variableValues": {"pendingcallid": id}}}}});
    let (status, body) = stack.post_worker("/vapi/events", &[("X-Vapi-Secret", "nope")], message.to_string()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("invalid_signature")));
    let (status, _) = stack.post_worker("/vapi/events", &[], message.to_string()).await;
    assert_eq!(status, 401);
    let secret = stack.vapi_secret.clone();
    let (status, body) = stack.post_worker("/vapi/events", &[("X-Vapi-Secret", &secret)], "not json").await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_message")));
    // A report with a wrong secret writes nothing.
    let report = json!({"message": {"type": "end-of-call-report", "endedReason": "customer-ended-call",
        "call": {"assistantOverrides": {"variableValues": {"pendingcallid": id}}}}});
    let (status, _) = stack.post_worker("/vapi/events", &[("X-Vapi-Secret", "nope")], report.to_string()).await;
    assert_eq!(status, 403);
    stack.assert_untouched(&id).await;
}

#[tokio::test]
async fn an_unknown_pendingcallid_gets_vapis_error_shapes() {
    let stack = Stack::from_env();
    let unknown = uuid::Uuid::new_v4().to_string();
    let call = json!({"id": "vapi-x", "assistantOverrides": {"variableValues": {"pendingcallid": unknown}}});

    let (status, body) = stack.vapi_message(json!({"type": "assistant-request", "call": call})).await;
    assert_eq!(status, 200);
    assert!(body["error"].is_string(), "assistant-request refused in VAPI's shape: {body}");
    assert!(body.get("assistantId").is_none());

    let (status, body) = stack
        .vapi_message(json!({"type": "tool-calls", "call": call,
            "toolCallList": [{"id": "t1", "name": "fetch_pending_call", "arguments": {"pendingcallid": unknown}}]}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["results"][0]["toolCallId"], "t1");
    let result: Value = serde_json::from_str(body["results"][0]["result"].as_str().unwrap()).unwrap();
    assert!(result["error"].is_string());

    let (status, body) = stack
        .vapi_message(json!({"type": "end-of-call-report", "endedReason": "customer-ended-call", "call": call}))
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
    let (status, _) = stack.vapi_message(json!({"type": "status-update", "status": "ended", "call": call})).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_context_served_to_vapi_is_the_rows() {
    let stack = Stack::from_env();
    let (id, _, sid) = stack.insert_dialled(&sample_row(&fresh_phone(Scenario::Human), "Quinn Adler")).await;
    let before = stack.pending_call(&id).await;
    let (status, body) = stack
        .vapi_message(json!({"type": "assistant-request",
            "call": {"id": "vapi-sip-only", "phoneCallProviderDetails": {"sip": {"headers": {"x-pendingcallid": id}}}}}))
        .await;
    assert_eq!(status, 200);
    let vars = &body["assistantOverrides"]["variableValues"];
    assert_eq!(vars["employee_name"], "Quinn Adler");
    assert_eq!(vars["client_name"], "Northwind Freight");
    assert_eq!(vars["callback_number"], "+15005550006");
    assert_eq!(vars["language"], "en");
    assert_eq!(stack.pending_call(&id).await, before, "serving context leaves the row as it was");
    stack.hang_up(&sid).await;
}

#[tokio::test]
async fn twilio_callbacks_need_a_valid_signature() {
    let stack = Stack::from_env();
    let url = format!("{}/twilio/status", stack.worker_url);
    let params = vec![
        ("CallSid".to_owned(), "CA0123456789abcdef0123456789abcdef".to_owned()),
        ("CallStatus".to_owned(), "completed".to_owned()),
    ];
    let body = "CallSid=CA0123456789abcdef0123456789abcdef&CallStatus=completed";
    let post = |sig: Option<String>| {
        let mut request = stack.http.post(&url).header("Content-Type", "application/x-www-form-urlencoded").body(body);
        if let Some(sig) = sig {
            request = request.header("X-Twilio-Signature", sig);
        }
        request.send()
    };
    let forged = signature("not-the-token", &url, &params);
    let response = post(Some(forged)).await.unwrap();
    assert_eq!(response.status(), 403);
    let response = post(None).await.unwrap();
    assert_eq!(response.status(), 401);
    // Correctly signed but out of range: a CallStatus Twilio does not send, a session that is no id.
    let odd = vec![params[0].clone(), ("CallStatus".to_owned(), "exploded".to_owned())];
    let response = stack
        .http
        .post(&url)
        .header("X-Twilio-Signature", signature(&stack.twilio_auth_token, &url, &odd))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("CallSid=CA0123456789abcdef0123456789abcdef&CallStatus=exploded")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "invalid_callback");
    let with_session = format!("{url}?session=not-a-uuid");
    let response = stack
        .http
        .post(&with_session)
        .header("X-Twilio-Signature", signature(&stack.twilio_auth_token, &with_session, &params))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "invalid_session");
    // Correctly signed, but no such call: 404, not a silent success.
    let response = post(Some(signature(&stack.twilio_auth_token, &url, &params))).await.unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn an_invalid_phone_is_refused_on_insert_and_nothing_is_written() {
    let stack = Stack::from_env();
    let mut row = sample_row("+1555000100", "Nobody");
    row["phone"] = json!("555-0100");
    let exam_id = row["exam_id"].as_str().unwrap().to_owned();
    let response = stack.insert("pending_calls", row).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "23514", "PostgREST reports the check constraint: {body}");
    assert!(stack.select("pending_calls", &format!("exam_id=eq.{exam_id}")).await.is_empty());
}

#[tokio::test]
async fn anon_reads_nothing_and_unknown_routes_are_json_errors() {
    let stack = Stack::from_env();
    quiet_pending_row(&stack).await;
    let response = stack.rest(reqwest::Method::GET, "pending_calls?select=id", &stack.anon_key).send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert!(status == 401 || (status == 200 && body == json!([])), "anon must see nothing: {status} {body}");
    let response = stack.rest(reqwest::Method::GET, "pending_calls", "not-a-key").send().await.unwrap();
    assert_eq!(response.status(), 401, "the gateway refuses unknown keys");

    let (status, body) = stack.post_worker("/nope", &[], "{}").await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
    // 405 with `Allow` on every route outside the API (the API's are checked against its OpenAPI document)
    for (method, path, allow) in [
        (reqwest::Method::POST, "/health", "GET"),
        (reqwest::Method::GET, "/hooks/pending-calls", "POST"),
        (reqwest::Method::GET, "/twilio/status", "POST"),
        (reqwest::Method::GET, "/vapi/events", "POST"),
    ] {
        let response = stack.http.request(method.clone(), format!("{}{path}", stack.worker_url)).send().await.unwrap();
        assert_eq!(response.status(), 405, "{method} {path}");
        assert_eq!(response.headers().get("allow").and_then(|v| v.to_str().ok()), Some(allow), "{method} {path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "method_not_allowed");
    }
}
