//! Black-box tests of fault injection and the run's observations.

mod common;

use std::time::{Duration, Instant};

use common::*;
use outcall_sandbox::twilio::signature;
use serde_json::{json, Value};

const ALL_EVENTS: [(&str, &str); 4] = [
    ("StatusCallbackEvent", "initiated"),
    ("StatusCallbackEvent", "ringing"),
    ("StatusCallbackEvent", "answered"),
    ("StatusCallbackEvent", "completed"),
];

impl Env {
    async fn set_faults(&self, faults: Value) {
        let (status, body) = self.control("faults", faults).await;
        assert_eq!(status, 200, "{body}");
    }

    /// A human call whose StatusCallback names `session` and asks for every event.
    async fn dial(&self, session: &str) -> reqwest::Response {
        let callback = self.callback_url(session);
        let mut form = vec![("To", "+15550001001"), ("From", "+15550000000"), ("Twiml", TWIML)];
        form.push(("StatusCallback", &callback));
        form.extend(ALL_EVENTS);
        self.create(&form).await
    }

    fn callback_url(&self, session: &str) -> String {
        format!("{}/twilio/status?session={session}", self.worker)
    }

    async fn calls(&self) -> Vec<Value> {
        self.inspect("calls").await.as_array().unwrap().clone()
    }
}

fn sequence_numbers(call: &Value) -> Vec<&str> {
    let callbacks = call["status_callbacks"].as_array().unwrap();
    callbacks.iter().map(|c| c["params"]["SequenceNumber"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn fault_settings_are_validated_and_replaced_whole() {
    let env = start(good_assistant()).await;
    let initial = env.inspect("faults").await;
    assert_eq!(initial["settings"]["twilio_429"], 0.0);
    assert_eq!(initial["settings"]["vapi_report_first"], 1.0, "unfaulted order: report first");
    assert_eq!(initial["injected"]["twilio_429"], 0);

    for (body, mentions) in [
        (json!({"twilio_429": 1.5}), "twilio_429"),
        (json!({"drop_webhooks": 0.1}), "unknown field"),
        (json!({"twilio_503": 0.6, "twilio_504": 0.6}), "must not exceed 1"),
    ] {
        let (status, answer) = env.control("faults", body).await;
        assert_eq!(status, 400);
        assert_eq!(answer["error"]["code"], "invalid_faults");
        assert!(answer["error"]["message"].as_str().unwrap().contains(mentions), "{answer}");
    }

    let (_, set) = env.control("faults", json!({"seed": 42, "drop_webhook": 0.1})).await;
    assert_eq!(set["settings"]["seed"], 42);
    assert_eq!(set["settings"]["drop_webhook"], 0.1);
    let (_, replaced) = env.control("faults", json!({"twilio_503": 0.2})).await;
    assert_eq!(replaced["settings"]["drop_webhook"], 0.0, "a POST replaces the whole set");
    let (_, reset) = env.control("faults/reset", json!({})).await;
    assert_eq!(reset, initial);
}

#[tokio::test]
async fn refusals_place_no_call() {
    let env = start(good_assistant()).await;
    for (fault, status, code) in [("twilio_429", 429, 20429), ("twilio_503", 503, 20503)] {
        env.set_faults(json!({ fault: 1 })).await;
        let refused = env.dial("s-1").await;
        assert_eq!(refused.status(), status);
        if status == 429 {
            assert_eq!(refused.headers()["retry-after"], "1");
        }
        assert_eq!(refused.json::<Value>().await.unwrap()["code"], code);
        assert_eq!(env.twilio_get("Calls.json").await.status(), status, "list");
        assert_eq!(env.twilio_get("Calls/CAnone.json").await.status(), status, "fetch");
        assert_eq!(env.inspect("faults").await["injected"][fault], 3);
    }
    assert!(env.calls().await.is_empty());
    let stats = env.inspect("stats").await;
    assert_eq!((stats["calls_created"].as_u64(), stats["live_calls"].as_u64()), (Some(0), Some(0)));
}

#[tokio::test]
async fn gateway_timeout_places_the_call_and_a_retry_dials_twice() {
    let env = start(good_assistant()).await;
    env.set_faults(json!({"twilio_504": 1})).await;
    let ambiguous = env.dial("s-1").await;
    assert_eq!(ambiguous.status(), 504);
    assert_eq!(ambiguous.json::<Value>().await.unwrap()["status"], 504);
    let calls = env.calls().await;
    assert_eq!(calls.len(), 1, "the call exists although the answer was a 504");
    assert_eq!(calls[0]["faults"], json!(["twilio_504"]));
    assert_eq!(calls[0]["session"], "s-1");
    // Reads fail the same way, without side effects.
    assert_eq!(env.twilio_get("Calls.json").await.status(), 504);

    // A blind retry of the same attempt dials the person a second time.
    env.control("faults/reset", json!({})).await;
    let retried = env.dial("s-1").await;
    assert_eq!(retried.status(), 201);
    env.dial("s-2").await;
    let sids: Vec<String> = env.calls().await.iter().map(|c| c["sid"].as_str().unwrap().to_string()).collect();
    for sid in &sids {
        let call = env.wait_done(sid).await;
        let (created, ended) = (call["created_ms"].as_u64().unwrap(), call["ended_ms"].as_u64().unwrap());
        assert!(created <= ended);
    }
    let stats = env.inspect("stats").await;
    assert_eq!(stats["calls_created"], 3);
    assert_eq!(stats["live_calls"], 0);
    assert_eq!(stats["sessions_dialled_twice"], json!([{"session": "s-1", "sids": [sids[0], sids[1]]}]));
    assert_eq!(stats["creates_by_session"], json!({"s-1": 2, "s-2": 1}));
    assert!(stats["peak_concurrency"].as_u64().unwrap() >= 1);
    assert!(stats["peak_calls_per_second"].as_u64().unwrap() >= 1);

    let (_, reset) = env.control("stats/reset", json!({})).await;
    assert_eq!(reset, json!({"ok": true}));
    assert_eq!(env.inspect("stats").await["calls_created"], 0);
}

#[tokio::test]
async fn timeout_holds_the_answer_of_a_placed_call() {
    let env = start(good_assistant()).await;
    env.set_faults(json!({"twilio_timeout": 1, "timeout_hold_ms": 400})).await;
    let impatient = env
        .http
        .post(format!("{}/2010-04-01/Accounts/{SID}/Calls.json", env.sandbox))
        .basic_auth(SID, Some(TOKEN))
        .form(&[("To", "+15550005001"), ("From", "+15550000000"), ("Twiml", TWIML)])
        .timeout(Duration::from_millis(100))
        .send()
        .await;
    assert!(impatient.unwrap_err().is_timeout());
    let calls = env.calls().await;
    assert_eq!(calls.len(), 1, "placed although the client gave up");
    assert_eq!(calls[0]["faults"], json!(["twilio_timeout"]));

    let started = Instant::now();
    let patient = env.dial("s-1").await;
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(patient.status(), 201);
    assert_eq!(env.inspect("faults").await["injected"]["twilio_timeout"], 2);
}

#[tokio::test]
async fn callbacks_duplicated_and_swapped_keep_their_numbers_and_signatures() {
    let env = start(good_assistant()).await;
    env.set_faults(json!({"duplicate_status_callback": 1, "reorder_status_callbacks": 1})).await;
    let created: Value = env.dial("s-1").await.json().await.unwrap();
    let call = env.wait_done(created["sid"].as_str().unwrap()).await;
    // initiated(0) waits for ringing(1), in-progress(2) for completed(3); each goes out twice.
    assert_eq!(sequence_numbers(&call), ["1", "1", "0", "0", "3", "3", "2", "2"]);
    let statuses: Vec<&str> = call["status_callbacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["params"]["CallStatus"].as_str().unwrap())
        .collect();
    assert_eq!(statuses[4..], ["completed", "completed", "in-progress", "in-progress"]);
    let faults = call["faults"].as_array().unwrap();
    assert_eq!(faults.iter().filter(|f| *f == "reorder_status_callbacks").count(), 1);
    assert_eq!(faults.iter().filter(|f| *f == "duplicate_status_callback").count(), 4);
    let injected = &env.inspect("faults").await["injected"];
    assert_eq!(
        (injected["reorder_status_callbacks"].as_u64(), injected["duplicate_status_callback"].as_u64()),
        (Some(1), Some(4))
    );

    let callback = env.callback_url("s-1");
    let seen = env.seen.lock().unwrap().clone();
    let posts: Vec<_> = seen.iter().filter(|(p, _, _)| p.starts_with("/twilio/status")).collect();
    assert_eq!(posts.len(), 8);
    for (_, headers, body) in posts {
        let params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
        assert_eq!(headers["x-twilio-signature"].to_str().unwrap(), signature::sign(TOKEN, &callback, &params));
    }
}

/// The order in which the stub Worker heard the final callback and VAPI's reports.
fn closing_order(env: &Env) -> Vec<String> {
    let seen = env.seen.lock().unwrap().clone();
    seen.iter()
        .filter_map(|(path, _, body)| {
            if path.starts_with("/twilio/status") {
                let params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
                params.iter().any(|(k, v)| k == "CallStatus" && v == "completed").then(|| "completed".to_string())
            } else if path == "/vapi/events" {
                let message: Value = serde_json::from_slice(body).unwrap();
                let kind = message["message"]["type"].as_str().unwrap();
                (kind == "end-of-call-report").then(|| kind.to_string())
            } else {
                None
            }
        })
        .collect()
}

#[tokio::test]
async fn vapi_report_before_or_after_the_final_callback() {
    let env = start(good_assistant()).await;
    let created: Value = env.dial("s-1").await.json().await.unwrap();
    let call = env.wait_done(created["sid"].as_str().unwrap()).await;
    assert_eq!(call["vapi"]["report_order"], "before");
    assert_eq!(closing_order(&env), ["end-of-call-report", "completed"]);

    env.seen.lock().unwrap().clear();
    env.set_faults(json!({"vapi_report_first": 0, "duplicate_vapi_report": 1})).await;
    let created: Value = env.dial("s-2").await.json().await.unwrap();
    let call = env.wait_done(created["sid"].as_str().unwrap()).await;
    assert_eq!(call["vapi"]["report_order"], "after");
    assert_eq!(closing_order(&env), ["completed", "end-of-call-report", "end-of-call-report"]);
    assert_eq!(call["faults"], json!(["duplicate_vapi_report"]));
    let reports = call["vapi"]["messages"].as_array().unwrap().iter().filter(|m| m["type"] == "end-of-call-report");
    assert_eq!(reports.count(), 2, "done only once both reports were answered");
    let injected = &env.inspect("faults").await["injected"];
    assert_eq!(
        (injected["vapi_report_after"].as_u64(), injected["duplicate_vapi_report"].as_u64()),
        (Some(1), Some(1))
    );
}

#[tokio::test]
async fn list_by_number_with_twilio_dates_and_page_size() {
    let env = start(good_assistant()).await;
    for session in ["a", "b", "c"] {
        env.dial(session).await;
    }
    let page: Value = env.twilio_get("Calls.json?To=%2B15550001001&PageSize=2").await.json().await.unwrap();
    let calls = page["calls"].as_array().unwrap();
    assert_eq!((calls.len(), page["page_size"].as_u64()), (2, Some(2)));
    let all = env.calls().await;
    assert_eq!(calls[0]["sid"], all[2]["sid"], "newest first");
    for call in calls {
        let created = call["date_created"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc2822(created).is_ok(), "{created}");
        assert!(created.ends_with(" +0000"));
        for key in ["start_time", "duration", "status"] {
            assert!(call.get(key).is_some(), "{key}");
        }
    }
}
