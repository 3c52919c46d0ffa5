//! Batches end to end: many targets in one request, answered at once (202), dialled by the ordinary
//! claims, followed through the status API and its event stream, cancelled, retried. Asserted on the
//! database and on what the sandbox's Twilio and VAPI saw.

use outcall_e2e::{fresh_phone, sample_row, Scenario, Stack};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A name no other test uses, so counts in the database are this test's own.
fn unique(label: &str) -> String {
    format!("{label} {}", uuid::Uuid::new_v4().simple())
}

fn target(scenario: Scenario, name: &str) -> Value {
    json!({"phone": fresh_phone(scenario), "name": name, "clinic_timezone": "America/Chicago"})
}

/// A year from now: rows that must not be dialled during the test.
fn next_year() -> String {
    (chrono::Utc::now() + chrono::Duration::days(365)).to_rfc3339()
}

async fn rows_of(stack: &Stack, batch_id: &str) -> Vec<Value> {
    stack.select("pending_calls", &format!("batch_id=eq.{batch_id}&order=created_at,id")).await
}

fn count(batch: &Value, status: &str) -> i64 {
    batch["counts"][status].as_i64().unwrap_or_else(|| panic!("no count {status}: {batch}"))
}

#[tokio::test]
async fn an_all_valid_batch_is_accepted_at_once_and_every_target_is_called() {
    let stack = Stack::from_env();
    let name = unique("all valid");
    let mut storm = target(Scenario::Human, "Rosa Delgado");
    storm["variables"] = json!({"route": "I-80 east", "depot": 7});
    storm["prompt"] = "Warn about the storm on the driver's route.".into();
    storm["first_message"] = "Hi Rosa, this is dispatch about tonight's storm.".into();
    let busy = json!({"phone": format!("+1 (555) 000-5{:03}", 100 + std::process::id() % 800), "name": "Ken Ito",
                      "max_attempts": 1});
    let request = json!({
        "name": name,
        "metadata": {"source": "e2e", "nested_key": {"kept_as_is": true}},
        "targets": [storm, target(Scenario::IvrThenHuman, "Omar Haddad"), target(Scenario::Human, "Lena Berg"), busy],
    });
    let (status, headers, accepted) = stack.api(Method::POST, "batches", &[], Some(request.to_string())).await;
    assert_eq!(status, 202, "{accepted}");
    let batch_id = accepted["batchId"].as_str().unwrap().to_owned();
    assert_eq!(headers["location"], format!("/api/v1/batches/{batch_id}").as_str());
    assert_eq!(accepted["statusUrl"], format!("{}/api/v1/batches/{batch_id}", stack.worker_url));
    assert_eq!((accepted["accepted"].as_i64(), accepted["rejected"].as_array().map(Vec::len)), (Some(4), Some(0)));
    let just_accepted = stack.batch(&batch_id).await;
    assert!(just_accepted["completedAt"].is_null(), "answered at once, not after the calls: {just_accepted}");

    // Ordinary rows, phones normalised, carrying the batch id and each target's own fields.
    let rows = rows_of(&stack, &batch_id).await;
    assert_eq!(rows.len(), 4);
    assert!(rows
        .iter()
        .all(|r| r["phone"].as_str().unwrap().starts_with("+1555000") && !r["phone"].as_str().unwrap().contains(' ')));
    let rosa = rows.iter().find(|r| r["employee_name"] == "Rosa Delgado").unwrap();
    assert_eq!(rosa["variables"], json!({"route": "I-80 east", "depot": 7}));
    assert_eq!(rosa["first_message"], "Hi Rosa, this is dispatch about tonight's storm.");

    let batch = stack.wait_batch_ended(&batch_id).await;
    assert_eq!(batch["status"], "completed");
    assert_eq!((count(&batch, "completed"), count(&batch, "failed"), batch["total"].as_i64()), (3, 1, Some(4)));
    assert_eq!(batch["successRate"], json!(0.75));
    assert!(batch["averageDurationSeconds"].as_f64().unwrap() > 0.0, "{batch}");
    assert!(batch["totalCost"].as_f64().unwrap() > 0.0, "{batch}");
    assert_eq!(batch["metadata"], json!({"source": "e2e", "nested_key": {"kept_as_is": true}}));
    let first_session: Vec<Value> =
        stack.select("call_sessions", &format!("pending_call_id=in.({})&order=created_at&limit=1", ids(&rows))).await;
    assert!(batch["startedAt"].as_str().unwrap() <= first_session[0]["created_at"].as_str().unwrap());
    assert!(batch["completedAt"].as_str().unwrap() >= batch["startedAt"].as_str().unwrap());

    // Per-target results, paged.
    let (_, _, page) = stack.api(Method::GET, &format!("batches/{batch_id}?limit=2&offset=2"), &[], None).await;
    assert_eq!(page["page"], json!({"limit": 2, "offset": 2, "total": 4}));
    assert_eq!(page["results"].as_array().unwrap().len(), 2);
    let results = batch["results"].as_array().unwrap();
    let ken = results.iter().find(|r| r["name"] == "Ken Ito").unwrap();
    assert_eq!(
        (ken["status"].as_str(), ken["attempts"].as_i64(), ken["outcome"].as_str()),
        (Some("failed"), Some(1), Some("busy"))
    );
    let lena = results.iter().find(|r| r["name"] == "Lena Berg").unwrap();
    assert_eq!(lena["status"], "completed");
    assert!(lena["summary"].as_str().is_some_and(|s| !s.is_empty()), "{lena}");

    // Transcripts of the calls that held a conversation.
    let (status, _, transcripts) = stack.api(Method::GET, &format!("batches/{batch_id}/transcripts"), &[], None).await;
    assert_eq!(status, 200, "{transcripts}");
    assert_eq!(transcripts["page"]["total"], 3);
    assert!(transcripts["transcripts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["transcript"].as_str().is_some_and(|s| !s.is_empty())));

    // The per-target variables and first message reached VAPI for that call only.
    let rosa_call = stack.sandbox_call_for(rosa["id"].as_str().unwrap()).await;
    let reply = assistant_reply(&rosa_call);
    assert_eq!(reply["assistantOverrides"]["variableValues"]["route"], "I-80 east");
    assert_eq!(reply["assistantOverrides"]["variableValues"]["depot"], "7");
    assert_eq!(reply["assistantOverrides"]["variableValues"]["prompt"], "Warn about the storm on the driver's route.");
    assert_eq!(reply["assistantOverrides"]["firstMessage"], "Hi Rosa, this is dispatch about tonight's storm.");
    let lena_call = stack.sandbox_call_for(lena["pendingCallId"].as_str().unwrap()).await;
    let reply = assistant_reply(&lena_call);
    assert!(reply["assistantOverrides"].get("firstMessage").is_none(), "{reply}");
    assert!(reply["assistantOverrides"]["variableValues"].get("route").is_none(), "{reply}");

    // The batch is listed.
    let (_, _, list) = stack.api(Method::GET, "batches?limit=1000", &[], None).await;
    assert!(list["batches"].as_array().unwrap().iter().any(|b| b["batchId"] == batch_id.as_str()), "{list}");
}

fn ids(rows: &[Value]) -> String {
    rows.iter().map(|r| r["id"].as_str().unwrap()).collect::<Vec<_>>().join(",")
}

/// The Worker's answer to the call's assistant-request, as the sandbox's VAPI recorded it.
fn assistant_reply(call: &Value) -> Value {
    let messages = call["vapi"]["messages"].as_array().expect("VAPI messages");
    messages.iter().find(|m| m["type"] == "assistant-request").expect("an assistant-request")["reply"].clone()
}

#[tokio::test]
async fn a_batch_with_invalid_targets_is_refused_whole_and_writes_nothing() {
    let stack = Stack::from_env();
    let name = unique("mixed");
    let request = json!({"name": name, "targets": [
        target(Scenario::Human, "Valid One"),
        {"phone": "555-0100", "name": "No Country Code"},
        target(Scenario::Human, "Valid Two"),
        {"phone": "+15550001999", "name": ""},
    ]});
    let (status, _, body) = stack.api(Method::POST, "batches", &[], Some(request.to_string())).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "validation_error");
    let items = body["error"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{body}");
    assert_eq!((items[0]["index"].as_i64(), items[0]["path"].as_str()), (Some(1), Some("targets[1].phone")));
    assert_eq!(items[0]["value"], "555-0100");
    assert_eq!(items[1]["index"], 3);

    // What only the database can check refuses the whole batch too.
    let mut zone = target(Scenario::Human, "Valid Three");
    zone["clinic_timezone"] = "Mars/Olympus_Mons".into();
    let request = json!({"name": name, "targets": [target(Scenario::Human, "Valid Four"), zone]});
    let (status, _, body) = stack.api(Method::POST, "batches", &[], Some(request.to_string())).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["items"][0]["path"], "targets[1].clinic_timezone");

    // Duplicates: the same person at the same number.
    let dana = target(Scenario::Human, "Dana Park");
    let request = json!({"name": name, "targets": [dana, target(Scenario::Human, "Someone Else"), dana]});
    let (status, _, body) = stack.api(Method::POST, "batches", &[], Some(request.to_string())).await;
    assert_eq!((status, body["error"]["items"][0]["code"].as_str()), (400, Some("duplicate")), "{body}");
    assert_eq!(body["error"]["items"][0]["index"], 2);

    let written = format!("select count(*) from batches where name = '{name}'");
    assert_eq!(stack.scalar(&written).await, 0);
    let rows = "select count(*) from pending_calls where employee_name in \
                ('Valid One', 'Valid Two', 'Valid Three', 'Valid Four', 'No Country Code', 'Dana Park', 'Someone Else')";
    assert_eq!(stack.scalar(rows).await, 0);
}

#[tokio::test]
async fn an_empty_batch_is_refused() {
    let stack = Stack::from_env();
    let name = unique("empty");
    for request in
        [json!({"name": name, "targets": []}), json!({"name": name}), json!({"name": name, "pendingCallIds": []})]
    {
        let (status, _, body) = stack.api(Method::POST, "batches", &[], Some(request.to_string())).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("validation_error")), "{body}");
        assert_eq!(body["error"]["items"][0]["code"], "empty");
    }
    assert_eq!(stack.scalar(&format!("select count(*) from batches where name = '{name}'")).await, 0);
}

#[tokio::test]
async fn pending_call_ids_are_dialled_again_and_unknown_ones_reported() {
    let stack = Stack::from_env();
    let first = stack.insert_parked(&sample_row(&fresh_phone(Scenario::Human), "Ines Costa")).await;
    let second = stack.insert_parked(&sample_row(&fresh_phone(Scenario::Human), "Tom Becker")).await;
    let unknown = uuid::Uuid::new_v4().to_string();
    let request = json!({"name": unique("redial"), "pendingCallIds": [first, unknown, second],
                         "schedule": {"notBefore": next_year()}});
    let accepted = stack.create_batch(&request).await;
    assert_eq!(accepted["accepted"], 2);
    assert_eq!(
        accepted["rejected"],
        json!([{"pendingCallId": unknown, "code": "not_found",
                                             "message": accepted["rejected"][0]["message"]}])
    );
    assert!(accepted["rejected"][0]["message"].as_str().is_some_and(|m| !m.is_empty()));

    let batch_id = accepted["batchId"].as_str().unwrap();
    let rows = rows_of(&stack, batch_id).await;
    assert_eq!(rows.len(), 2);
    for original_id in [&first, &second] {
        let original = stack.pending_call(original_id).await;
        let copy = rows.iter().find(|r| r["redial_of"] == original_id.as_str()).expect("a copy per known id");
        assert_eq!((&copy["phone"], &copy["employee_name"]), (&original["phone"], &original["employee_name"]));
        assert_eq!((copy["call_status"].as_str(), copy["attempts"].as_i64()), (Some("pending"), Some(0)));
        assert_eq!(original["batch_id"], Value::Null, "the original row is left as it was");
    }
    stack.assert_untouched(&first).await;
    cancel(&stack, batch_id).await;
}

/// Seed 000's shape, `{"driverIds": [...], "metadata": {...}}`, is ours as `{"pendingCallIds": [...],
/// "metadata": {...}}`: no name, and the batch is named after its creation time, the same in the API and
/// the database.
#[tokio::test]
async fn a_batch_of_only_pending_call_ids_and_metadata_is_accepted_and_named_for_its_creation_time() {
    let stack = Stack::from_env();
    let first = stack.insert_parked(&sample_row(&fresh_phone(Scenario::Human), "Ada Quinn")).await;
    let second = stack.insert_parked(&sample_row(&fresh_phone(Scenario::Human), "Bo Lind")).await;
    let metadata = json!({"callType": "batch_safety_check", "source": unique("vapi_integration")});
    let request = json!({"pendingCallIds": [first, second], "metadata": metadata});
    let (status, headers, accepted) = stack.api(Method::POST, "batches", &[], Some(request.to_string())).await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!((accepted["accepted"].as_i64(), accepted["rejected"].as_array().map(Vec::len)), (Some(2), Some(0)));
    let batch_id = accepted["batchId"].as_str().unwrap().to_owned();
    assert_eq!(headers["location"], format!("/api/v1/batches/{batch_id}").as_str());
    let batch = cancel(&stack, &batch_id).await; // the rows were due now: no need to dial them
    assert_eq!(batch["batchId"], batch_id.as_str());

    let (_, _, batch) = stack.api(Method::GET, &format!("batches/{batch_id}"), &[], None).await;
    let created: chrono::DateTime<chrono::Utc> = batch["createdAt"].as_str().unwrap().parse().unwrap();
    let expected = format!("Batch {} UTC", created.format("%Y-%m-%d %H:%M"));
    assert_eq!(batch["name"], expected.as_str(), "{batch}");
    assert_eq!(batch["metadata"], metadata);
    assert_eq!(batch["total"], 2);
    let (_, _, list) = stack.api(Method::GET, "batches?limit=1000", &[], None).await;
    let listed = list["batches"].as_array().unwrap().iter().find(|b| b["batchId"] == batch_id.as_str()).cloned();
    assert_eq!(listed.map(|b| b["name"].clone()), Some(json!(expected)), "the list says the same");
    let stored: Vec<Value> = stack.select("batches", &format!("id=eq.{batch_id}&select=name")).await;
    assert_eq!(stored[0]["name"], expected.as_str(), "and so does the database");
}

async fn cancel(stack: &Stack, batch_id: &str) -> Value {
    let (status, _, body) = stack.api(Method::POST, &format!("batches/{batch_id}/cancel"), &[], None).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn an_idempotency_key_replays_the_same_batch_and_refuses_a_different_body() {
    let stack = Stack::from_env();
    let key = format!("e2e-{}", uuid::Uuid::new_v4());
    let request = json!({"name": unique("idempotent"), "schedule": {"notBefore": next_year()},
                         "targets": [target(Scenario::Human, "Ada Moss"), target(Scenario::Human, "Ben Ruiz")]});
    let headers = [("Idempotency-Key", key.as_str())];
    let post = |body: String| stack.api(Method::POST, "batches", &headers, Some(body));

    let (status, headers, first) = post(request.to_string()).await;
    assert_eq!(status, 202, "{first}");
    assert!(headers.get("idempotent-replayed").is_none());
    let (status, headers, again) = post(request.to_string()).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again, first, "the same key and body answer the same batch");
    assert_eq!(headers["idempotent-replayed"], "true");

    let mut different = request.clone();
    different["targets"][1]["name"] = "Someone Else".into();
    let (status, _, conflict) = post(different.to_string()).await;
    assert_eq!((status, conflict["error"]["code"].as_str()), (409, Some("idempotency_conflict")), "{conflict}");

    assert_eq!(stack.scalar(&format!("select count(*) from batches where idempotency_key = '{key}'")).await, 1);
    let batch_id = first["batchId"].as_str().unwrap();
    assert_eq!(rows_of(&stack, batch_id).await.len(), 2, "rows written once");
    cancel(&stack, batch_id).await;
}

#[tokio::test]
async fn cancel_stops_what_was_not_dialled_and_lets_live_calls_finish() {
    let stack = Stack::from_env();
    let targets: Vec<Value> = (0..30).map(|i| target(Scenario::Human, &format!("Cancel Target {i}"))).collect();
    let accepted = stack.create_batch(&json!({"name": unique("cancel"), "targets": targets})).await;
    let batch_id = accepted["batchId"].as_str().unwrap().to_owned();

    // Cancel once a call is live.
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&stack.batch(&batch_id).await, "inProgress") == 0 {
        assert!(Instant::now() < deadline, "no call of the batch went live");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answer = cancel(&stack, &batch_id).await;
    let cancelled_at = chrono::Utc::now();
    assert_eq!(answer["status"], "cancelled");
    assert!(answer["cancelled"].as_i64().unwrap() >= 1, "{answer}");
    assert!(answer["live"].as_i64().unwrap() >= 1, "{answer}");

    let batch = stack.wait_batch_ended(&batch_id).await;
    assert_eq!(batch["status"], "cancelled");
    assert!(!batch["cancelledAt"].is_null());
    let rows = rows_of(&stack, &batch_id).await;
    let never_dialled: Vec<&Value> = rows.iter().filter(|r| r["attempts"] == 0).collect();
    assert!(never_dialled.iter().all(|r| r["call_status"] == "cancelled" && r["last_error"] == "batch_cancelled"));
    assert_eq!(never_dialled.len() as i64, answer["cancelled"].as_i64().unwrap());
    let dialled: Vec<&Value> = rows.iter().filter(|r| r["attempts"] != 0).collect();
    assert!(!dialled.is_empty());
    assert!(dialled.iter().all(|r| r["call_status"] == "completed"), "live calls finish: {dialled:?}");
    assert_eq!(count(&batch, "cancelled") as usize, never_dialled.len());
    assert_eq!(count(&batch, "completed") as usize, dialled.len());

    // Nothing was dialled after the cancel.
    let sessions = stack.select("call_sessions", &format!("pending_call_id=in.({})", ids(&rows))).await;
    assert_eq!(sessions.len(), dialled.len(), "one attempt per dialled row");
    for session in &sessions {
        let created = chrono::DateTime::parse_from_rfc3339(session["created_at"].as_str().unwrap()).unwrap();
        assert!(created <= cancelled_at, "a session began after the cancel: {session}");
    }
    let again = cancel(&stack, &batch_id).await;
    assert_eq!((again["cancelled"].as_i64(), again["live"].as_i64()), (Some(0), Some(0)), "cancel is idempotent");
}

#[tokio::test]
async fn retry_failed_requeues_failed_rows_with_a_fresh_budget() {
    let stack = Stack::from_env();
    let mut failing = target(Scenario::Failed, "Retry Failing");
    failing["max_attempts"] = 1.into();
    let answered = target(Scenario::Human, "Retry Answered");
    let accepted = stack.create_batch(&json!({"name": unique("retry"), "targets": [failing, answered]})).await;
    let batch_id = accepted["batchId"].as_str().unwrap().to_owned();
    let batch = stack.wait_batch_ended(&batch_id).await;
    assert_eq!((count(&batch, "failed"), count(&batch, "completed")), (1, 1));
    let first_end = batch["completedAt"].as_str().unwrap().to_owned();

    let (status, _, answer) = stack.api(Method::POST, &format!("batches/{batch_id}/retry-failed"), &[], None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!((answer["requeued"].as_i64(), answer["status"].as_str()), (Some(1), Some("in_progress")));

    let batch = stack.wait_batch_ended(&batch_id).await;
    assert!(batch["completedAt"].as_str().unwrap() > first_end.as_str(), "the batch ended again, later");
    let rows = rows_of(&stack, &batch_id).await;
    let failing = rows.iter().find(|r| r["employee_name"] == "Retry Failing").unwrap();
    assert_eq!((failing["call_status"].as_str(), failing["attempts"].as_i64()), (Some("failed"), Some(2)), "{failing}");
    let sessions = stack.sessions(failing["id"].as_str().unwrap()).await;
    assert_eq!(sessions.iter().map(|s| s["attempt"].as_i64().unwrap()).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(stack.sandbox_calls_of(failing["id"].as_str().unwrap()).await.len(), 2, "dialled once more");
    let answered = rows.iter().find(|r| r["employee_name"] == "Retry Answered").unwrap();
    assert_eq!((answered["call_status"].as_str(), answered["attempts"].as_i64()), (Some("completed"), Some(1)));
}

#[tokio::test]
async fn the_event_stream_follows_a_batch_to_its_end() {
    let stack = Stack::from_env();
    let targets: Vec<Value> = (0..4).map(|i| target(Scenario::Human, &format!("Stream Target {i}"))).collect();
    let accepted = stack.create_batch(&json!({"name": unique("events"), "targets": targets})).await;
    let batch_id = accepted["batchId"].as_str().unwrap().to_owned();

    let url = format!("{}/api/v1/batches/{batch_id}/events", stack.worker_url);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(120)).build().unwrap();
    let mut response = client.get(url).bearer_auth(&stack.api_key).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    while let Some(chunk) = response.chunk().await.expect("the stream reads") {
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let events: Vec<(u64, String, Value)> = text
        .split("\n\n")
        .filter(|e| e.starts_with("id: "))
        .map(|e| {
            let field = |name: &str| e.lines().find_map(|l| l.strip_prefix(name)).unwrap().to_owned();
            (field("id: ").parse().unwrap(), field("event: "), serde_json::from_str(&field("data: ")).unwrap())
        })
        .collect();
    let (last_id, last_event, last) = events.last().expect("events").clone();
    assert_eq!(last_event, "end", "the stream ends with the batch: {text}");
    assert!(events.len() >= 2, "progress before the end: {text}");
    assert!(events.windows(2).all(|w| w[0].0 < w[1].0), "ids increase");
    assert!(events[..events.len() - 1].iter().all(|(_, name, _)| name == "progress"));
    assert_eq!(last_id as usize, events.len());

    let now = stack.batch(&batch_id).await;
    assert_eq!(last["counts"], now["counts"], "the last event's counts are the database's");
    assert_eq!(count(&last, "completed"), 4);
    let in_db =
        format!("select count(*) from pending_calls where batch_id = '{batch_id}' and call_status = 'completed'");
    assert_eq!(stack.scalar(&in_db).await, count(&last, "completed"));
}
