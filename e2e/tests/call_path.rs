//! A `pending_calls` row inserted through PostgREST becomes a Twilio call (sandbox) that replays
//! the cached IVR, dials VAPI over SIP with only `X-pendingcallid`, and ends with results written back.

use outcall_e2e::{fresh_phone, merge, sample_row, Scenario, Stack};
use serde_json::{json, Value};

const UNIQUE_HEADER: &str = "X-pendingcallid";

async fn place(stack: &Stack, scenario: Scenario, name: &str) -> (String, String) {
    let phone = fresh_phone(scenario);
    let row = stack.insert_pending_call(sample_row(&phone, name)).await;
    (row["id"].as_str().unwrap().to_owned(), phone)
}

/// Everything the sandbox saw of a call that reached VAPI must carry the row id and nothing else.
fn assert_sip_carries_only_the_id(call: &Value, id: &str) {
    let headers = call["sip"]["headers"].as_object().expect("a SIP dial");
    assert_eq!(headers.len(), 1, "exactly one SIP header: {headers:?}");
    assert_eq!(headers[UNIQUE_HEADER], id);
    let uri = call["sip"]["uri"].as_str().unwrap();
    assert_eq!(uri, format!("sip:outcall@sip.vapi.ai?X-pendingcallid={id}"));
}

fn form_field<'a>(call: &'a Value, name: &str) -> Vec<&'a str> {
    match &call["form"][name] {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

#[tokio::test]
async fn a_human_answered_call_completes_with_its_context_and_results() {
    let stack = Stack::from_env();
    let (id, phone) = place(&stack, Scenario::Human, "Dana Whitfield").await;
    let call = stack.sandbox_call_for(&id).await;
    let row = stack.wait_terminal(&id).await;

    // The Twilio request: who, from, where to report, which events, inline TwiML.
    assert_eq!(form_field(&call, "To"), [phone.as_str()]);
    assert_eq!(form_field(&call, "From"), ["+15005550006"]);
    let callback =
        format!("{}/twilio/status?session={}", stack.worker_url, stack.sessions(&id).await[0]["id"].as_str().unwrap());
    assert_eq!(form_field(&call, "StatusCallback"), [callback.as_str()]);
    assert_eq!(form_field(&call, "StatusCallbackEvent"), ["initiated", "ringing", "answered", "completed"]);
    assert!(form_field(&call, "Url").is_empty());
    let twiml = call["twiml"].as_str().unwrap();
    assert!(!twiml.contains("Pause") && !twiml.contains("Play"), "no cached IVR: dial at once: {twiml}");
    assert!(!twiml.contains("Dana"), "no personal data in TwiML");
    assert_sip_carries_only_the_id(&call, &id);

    // VAPI asked for the assistant and got this row's context.
    let messages = call["vapi"]["messages"].as_array().unwrap();
    let request = messages.iter().find(|m| m["type"] == "assistant-request").unwrap();
    let vars = &request["reply"]["assistantOverrides"]["variableValues"];
    assert_eq!(request["reply"]["assistantId"], "local-assistant");
    assert_eq!(vars["employee_name"], "Dana Whitfield");
    assert_eq!(vars["employee_dob"], "1986-04-12");
    assert_eq!(vars["clinic_name"], "Lakeside Occupational Health");
    assert_eq!(vars["procedures"], "DOT physical, Drug screen");
    assert_eq!(vars["special_instructions"], "Bring photo ID");
    assert_eq!(vars["pendingcallid"], id.as_str());
    let tool = messages.iter().find(|m| m["type"] == "tool-calls").unwrap();
    let result: Value = serde_json::from_str(tool["reply"]["results"][0]["result"].as_str().unwrap()).unwrap();
    assert_eq!(result["employee_name"], "Dana Whitfield");

    // The database webhook (pg_net, after commit) carried Supabase's payload with the secret header.
    let deliveries: Vec<Value> =
        stack.http.get(format!("{}/_sandbox/webhooks", stack.sandbox_url)).send().await.unwrap().json().await.unwrap();
    let hook =
        deliveries.iter().find(|d| d["request_body"]["record"]["id"] == id.as_str()).expect("a webhook delivery");
    assert_eq!(hook["url"], format!("{}/hooks/pending-calls", stack.worker_url));
    assert_eq!(hook["response_status"], 200);
    assert_eq!(hook["request_headers"]["X-Webhook-Secret"], stack.webhook_secret.as_str());
    let payload = &hook["request_body"];
    assert_eq!(
        (payload["type"].as_str(), payload["table"].as_str(), payload["schema"].as_str()),
        (Some("INSERT"), Some("pending_calls"), Some("public"))
    );
    assert!(payload["old_record"].is_null());

    // Results written back to the row and its session.
    assert_eq!(row["call_status"], "completed");
    assert_eq!(row["attempts"], 1);
    assert_eq!(row["ended_reason"], "customer-ended-call");
    assert!(row["transcript"].as_str().unwrap().contains("Dana Whitfield"));
    assert!(row["summary"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(row["cost"].as_f64().unwrap() > 0.0);
    assert!(row["duration_seconds"].as_f64().unwrap() > 0.0);
    let sessions = stack.sessions(&id).await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["call_sid"], call["sid"]);
    assert_eq!(sessions[0]["status"], "completed");
    assert!(sessions[0]["report_received_at"].is_string());
    assert!(sessions[0]["duration_seconds"].as_i64().unwrap() > 0);
}

#[tokio::test]
async fn a_cached_ivr_is_replayed_at_its_timing_before_dialling_vapi() {
    let stack = Stack::from_env();
    let phone = fresh_phone(Scenario::IvrThenHuman);
    let classification = stack
        .insert(
            "call_classifications",
            json!({"phone_number": phone, "classification_type": "ivr_then_human", "confidence": 0.9,
                   "ivr_actions": [{"action": "wait", "value": "", "timing_ms": 2000},
                                   {"action": "dtmf", "value": "2", "timing_ms": 1500},
                                   {"action": "speech", "value": "scheduling", "timing_ms": 1000}]}),
        )
        .await;
    assert_eq!(classification.status(), 201);
    let classification: Value = classification.json().await.unwrap();
    let row = stack.insert_pending_call(sample_row(&phone, "Luis Ortega")).await;
    let id = row["id"].as_str().unwrap();
    let call = stack.sandbox_call_for(id).await;
    let row = stack.wait_terminal(id).await;

    let executed = call["executed"].as_array().unwrap();
    // The replay is listened to (a verification run), from its first moment.
    assert_eq!((executed[0]["verb"].as_str(), executed[0]["at_ms"].as_i64()), (Some("Start"), Some(0)));
    let verbs: Vec<(&str, i64)> =
        executed[1..].iter().map(|v| (v["verb"].as_str().unwrap(), v["at_ms"].as_i64().unwrap())).collect();
    // 2 s wait + 1.5 s = 3 s pause and a half-second `w`, the key (and its 100 ms tone), 1 s more, the
    // speech, the dial.
    assert_eq!(verbs[0], ("Pause", 0));
    assert_eq!(verbs[1].0, "Play");
    assert_eq!(executed[2]["digits"], "w2");
    assert_eq!(verbs[2], ("Pause", 3600));
    assert_eq!(verbs[3], ("Say", 4600));
    assert_eq!(verbs[4].0, "Dial");
    assert_sip_carries_only_the_id(&call, id);

    assert_eq!(row["call_status"], "completed");
    assert_eq!(row["classification_id"], classification[0]["id"]);
    let sessions = stack.sessions(id).await;
    assert_eq!(sessions[0]["classification_type"], "ivr_then_human");
}

#[tokio::test]
async fn an_expired_classification_is_not_replayed() {
    let stack = Stack::from_env();
    let phone = fresh_phone(Scenario::Human);
    let inserted = stack
        .insert(
            "call_classifications",
            json!({"phone_number": phone, "classification_type": "ivr_only",
                   "classification_expires_at": "2020-01-01T00:00:00Z",
                   "ivr_actions": [{"action": "dtmf", "value": "9", "timing_ms": 1000}]}),
        )
        .await;
    assert_eq!(inserted.status(), 201);
    let row = stack.insert_pending_call(sample_row(&phone, "Ana Berg")).await;
    let id = row["id"].as_str().unwrap();
    let call = stack.sandbox_call_for(id).await;
    // An expired classification is no classification: nothing is replayed, and the call learns the phone again.
    assert_eq!(call["executed"][0]["verb"], "Start", "expired cache ignored: {}", call["executed"]);
    assert_eq!(call["executed"][1]["verb"], "Dial", "expired cache ignored: {}", call["executed"]);
    let row = stack.wait_terminal(id).await;
    assert!(row["classification_id"].is_null());
}

#[tokio::test]
async fn an_ivr_only_system_completes_with_the_assistant_ending_the_call() {
    let stack = Stack::from_env();
    let (id, _) = place(&stack, Scenario::IvrOnly, "Mei Tanaka").await;
    let call = stack.sandbox_call_for(&id).await;
    assert_sip_carries_only_the_id(&call, &id);
    let row = stack.wait_terminal(&id).await;
    assert_eq!(row["call_status"], "completed");
    assert_eq!(row["ended_reason"], "assistant-ended-call");
}

#[tokio::test]
async fn voicemail_on_the_last_attempt_fails_the_row_as_not_reached() {
    let stack = Stack::from_env();
    let phone = fresh_phone(Scenario::Voicemail);
    let row = stack.insert_pending_call(merge(sample_row(&phone, "Omar Haddad"), json!({"max_attempts": 1}))).await;
    let id = row["id"].as_str().unwrap();
    stack.sandbox_call_for(id).await;
    let row = stack.wait_terminal(id).await;
    assert_eq!(row["call_status"], "failed");
    assert_eq!(row["ended_reason"], "voicemail");
    assert_eq!(row["last_error"], "voicemail");
}

#[tokio::test]
async fn status_callbacks_are_signed_by_twilio_and_accepted() {
    let stack = Stack::from_env();
    let (id, _) = place(&stack, Scenario::Human, "Ines Duarte").await;
    let call = stack.sandbox_call_for(&id).await;
    let callbacks = call["status_callbacks"].as_array().unwrap();
    let statuses: Vec<&str> = callbacks.iter().map(|c| c["params"]["CallStatus"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["initiated", "ringing", "in-progress", "completed"]);
    assert!(callbacks.iter().all(|c| c["status"] == 200), "Worker accepted every callback: {callbacks:?}");
}
