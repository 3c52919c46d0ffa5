//! Every caller is verified before anything is written: the database webhook by its secret, Twilio by
//! X-Twilio-Signature, VAPI by its credential (the bearer form on the stack's Worker, the HMAC form on
//! a second Worker configured for it). Each forged or missing credential is refused with a JSON error,
//! and the same request properly signed is then accepted, so the refusal was the credential's doing.

use outcall_core::twilio::signature;
use outcall_core::vapi_auth::{hex, hmac_sha256};
use outcall_e2e::worker::SpareWorker;
use outcall_e2e::{fresh_phone, sample_row, Scenario, Stack};
use serde_json::{json, Value};

/// A dialled row with no call behind it (`Stack::insert_dialled`).
async fn dialled_row(stack: &Stack) -> (String, String, String) {
    stack.insert_dialled(&sample_row(&fresh_phone(Scenario::Human), "Ruth Okafor")).await
}

/// What a request could change: the row's status and results, the session's status and report.
async fn snapshot(stack: &Stack, id: &str) -> Value {
    let row = stack.pending_call(id).await;
    let sessions = stack.sessions(id).await;
    json!({"row": [row["call_status"], row["attempts"], row["summary"], row["updated_at"]],
           "sessions": sessions.iter().map(|s| json!([s["status"], s["vapi_status"], s["report_received_at"], s["updated_at"]])).collect::<Vec<_>>()})
}

#[tokio::test]
async fn twilio_callbacks_with_a_forged_or_missing_signature_change_nothing() {
    let stack = Stack::from_env();
    let (id, session, sid) = dialled_row(&stack).await;
    let url = format!("{}/twilio/status?session={session}", stack.worker_url);
    let params = vec![("CallSid".to_owned(), sid.clone()), ("CallStatus".to_owned(), "busy".to_owned())];
    let body = format!("CallSid={sid}&CallStatus=busy");
    let post = |signature: Option<String>| {
        let mut request =
            stack.http.post(&url).header("Content-Type", "application/x-www-form-urlencoded").body(body.clone());
        if let Some(signature) = signature {
            request = request.header("X-Twilio-Signature", signature);
        }
        request.send()
    };
    let before = snapshot(&stack, &id).await;

    let forged = post(Some(signature("not-the-auth-token", &url, &params))).await.unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(forged.json::<Value>().await.unwrap()["error"]["code"], "invalid_signature");
    // Signed over another URL (say a proxy's, not the public one Twilio called).
    let other_url = format!("http://127.0.0.1:1/twilio/status?session={session}");
    assert_eq!(post(Some(signature(&stack.twilio_auth_token, &other_url, &params))).await.unwrap().status(), 403);
    let missing = post(None).await.unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(missing.json::<Value>().await.unwrap()["error"]["code"], "unauthorized");
    assert_eq!(snapshot(&stack, &id).await, before, "a refused callback wrote something");

    let signed = post(Some(signature(&stack.twilio_auth_token, &url, &params))).await.unwrap();
    assert_eq!(signed.status(), 200);
    assert_eq!(stack.sessions(&id).await[0]["status"], "busy");
}

fn report(id: &str) -> String {
    json!({"message": {"type": "end-of-call-report", "endedReason": "customer-ended-call",
        "analysis": {"summary": "Confirmed."},
        "call": {"id": format!("vapi-{id}"), "assistantOverrides": {"variableValues": {"pendingcallid": id}}}}})
    .to_string()
}

#[tokio::test]
async fn vapi_messages_without_the_bearer_credential_change_nothing() {
    let stack = Stack::from_env();
    let (id, _, sid) = dialled_row(&stack).await;
    let before = snapshot(&stack, &id).await;
    let (status, body) = stack.post_worker("/vapi/events", &[("X-Vapi-Secret", "forged")], report(&id)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("invalid_signature")), "{body}");
    let (status, _) = stack.post_worker("/vapi/events", &[("Authorization", "Bearer forged")], report(&id)).await;
    assert_eq!(status, 403);
    let (status, body) = stack.post_worker("/vapi/events", &[], report(&id)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")), "{body}");
    assert_eq!(snapshot(&stack, &id).await, before, "a refused report wrote something");

    // VAPI's bearer-token credential may also come as Authorization: Bearer.
    let bearer = format!("Bearer {}", stack.vapi_secret);
    let (status, body) = stack.post_worker("/vapi/events", &[("Authorization", &bearer)], report(&id)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(stack.pending_call(&id).await["call_status"], "completed");
    stack.hang_up(&sid).await;
}

#[tokio::test]
async fn vapi_messages_without_a_valid_hmac_change_nothing() {
    let stack = Stack::from_env();
    let worker = SpareWorker::start("vapi-hmac", &[("VAPI_CREDENTIAL_TYPE", Some("hmac"))]).await;
    let (id, _, sid) = dialled_row(&stack).await;
    let body = report(&id);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let signed = |timestamp: u64, secret: &str| hex(&hmac_sha256(secret, &format!("{timestamp}.{body}")));
    let post = |headers: Vec<(&'static str, String)>| {
        let body = body.clone();
        let stack = &stack;
        let url = worker.url.clone();
        async move {
            let pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            stack.post_to(&url, "/vapi/events", &pairs, body).await
        }
    };
    let before = snapshot(&stack, &id).await;

    let secret = stack.vapi_secret.clone();
    let cases = [
        (vec![("x-timestamp", now.to_string())], 401, "no signature"),
        (vec![("x-signature", signed(now, "forged")), ("x-timestamp", now.to_string())], 403, "wrong key"),
        (vec![("x-signature", signed(now, &secret)), ("x-timestamp", (now + 1).to_string())], 403, "other timestamp"),
        (
            vec![("x-signature", signed(now - 3600, &secret)), ("x-timestamp", (now - 3600).to_string())],
            403,
            "replayed an hour later",
        ),
        (vec![("X-Vapi-Secret", secret.clone())], 401, "the bearer form is not this Worker's credential"),
    ];
    for (headers, expected, case) in cases {
        let (status, answer) = post(headers).await;
        assert_eq!(status, expected, "{case}: {answer}");
        assert!(answer["error"]["code"].is_string(), "{case}: {answer}");
    }
    assert_eq!(snapshot(&stack, &id).await, before, "a refused report wrote something");

    let (status, answer) = post(vec![("x-signature", signed(now, &secret)), ("x-timestamp", now.to_string())]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(stack.pending_call(&id).await["call_status"], "completed");
    stack.hang_up(&sid).await;
    drop(worker);
}
