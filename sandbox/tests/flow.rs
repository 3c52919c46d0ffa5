//! Black-box tests of the stand-ins without faults: calls end to end,
//! rejections and the gateway.

mod common;

use common::*;
use outcall_sandbox::twilio::signature;
use serde_json::{json, Value};

#[tokio::test]
async fn human_call_end_to_end() {
    let env = start(good_assistant()).await;
    let callback = format!("{}/twilio/status?tenant=1", env.worker);
    let response = env
        .create(&[
            ("To", "+15550001001"),
            ("From", "+15550000000"),
            ("Twiml", TWIML),
            ("StatusCallback", &callback),
            ("StatusCallbackEvent", "initiated"),
            ("StatusCallbackEvent", "ringing"),
            ("StatusCallbackEvent", "answered"),
            ("StatusCallbackEvent", "completed"),
        ])
        .await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let sid = created["sid"].as_str().unwrap().to_string();
    assert!(sid.starts_with("CA") && sid.len() == 34);
    assert_eq!(created["status"], "queued");
    assert_eq!(created["direction"], "outbound-api");
    assert_eq!(created["queue_time"], "0");
    assert!(created["price"].is_null());

    let call = env.wait_done(&sid).await;
    assert_eq!(call["scenario"], "human");
    assert_eq!(call["final_status"], "completed");
    let at: Vec<&Value> = call["executed"].as_array().unwrap().iter().map(|v| &v["at_ms"]).collect();
    assert_eq!(at, [0, 2000, 3100]);
    assert_eq!(call["sip"]["headers"], json!({"X-pendingcallid": "p-1"}));
    assert_eq!(call["sip"]["params"], json!({"transport": "tcp"}));

    let callbacks = call["status_callbacks"].as_array().unwrap();
    let statuses: Vec<&str> = callbacks.iter().map(|c| c["params"]["CallStatus"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["initiated", "ringing", "in-progress", "completed"]);
    let seqs: Vec<&str> = callbacks.iter().map(|c| c["params"]["SequenceNumber"].as_str().unwrap()).collect();
    assert_eq!(seqs, ["0", "1", "2", "3"]);
    assert_eq!(callbacks[3]["params"]["CallDuration"], "23");
    assert!(callbacks.iter().all(|c| c["status"] == 200));

    // The Worker got exactly those callbacks, each with a valid signature over the full URL.
    let seen = env.seen.lock().unwrap().clone();
    let status_posts: Vec<_> = seen.iter().filter(|(p, _, _)| p.starts_with("/twilio/status")).collect();
    assert_eq!(status_posts.len(), 4);
    for (_, headers, body) in &status_posts {
        let params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
        let expected = signature::sign(TOKEN, &callback, &params);
        assert_eq!(headers["x-twilio-signature"].to_str().unwrap(), expected);
    }

    // VAPI: the message sequence, the secret, the variables and the transcript.
    let vapi = &call["vapi"];
    let types: Vec<&str> = vapi["messages"].as_array().unwrap().iter().map(|m| m["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["assistant-request", "tool-calls", "status-update", "status-update", "end-of-call-report"]);
    assert_eq!(vapi["variable_values"]["pendingcallid"], "p-1");
    assert_eq!(vapi["variable_values"]["employee_name"], "Jo Doe");
    let first = &vapi["messages"][0]["request"]["message"];
    assert_eq!(first["call"]["assistantOverrides"]["variableValues"], json!({"pendingcallid": "p-1"}));
    assert_eq!(first["call"]["phoneCallProviderDetails"]["sip"]["headers"], json!({"x-pendingcallid": "p-1"}));
    let tool = &vapi["messages"][1]["request"]["message"];
    assert_eq!(tool["toolCallList"][0]["arguments"], json!({"pendingcallid": "p-1"}));
    assert_eq!(tool["toolWithToolCallList"][0]["toolCall"]["function"]["name"], "fetch_pending_call");
    let report = &vapi["messages"][4]["request"]["message"];
    assert_eq!(report["endedReason"], "customer-ended-call");
    assert_eq!(report["durationSeconds"], 20);
    assert_eq!(report["cost"], 0.246);
    let transcript = report["artifact"]["transcript"].as_str().unwrap();
    assert!(transcript.starts_with(
        "AI: Hello, this is the scheduling assistant calling on behalf of Acme about Jo Doe's appointment at North Clinic.\nUser: "
    ));
    assert!(transcript.contains("the appointment on 2030-01-02 09:00"), "tool result used");
    assert_eq!(report["analysis"]["successEvaluation"], "true");
    let vapi_posts: Vec<_> = seen.iter().filter(|(p, _, _)| p == "/vapi/events").collect();
    assert_eq!(vapi_posts.len(), 5);
    assert!(vapi_posts.iter().all(|(_, h, _)| h["x-vapi-secret"] == "vapi-secret"));

    // Twilio's own view of the call, and the inspection filter.
    let resource: Value = env
        .http
        .get(format!("{}/2010-04-01/Accounts/{SID}/Calls/{sid}.json", env.sandbox))
        .basic_auth(SID, Some(TOKEN))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((resource["status"].as_str(), resource["duration"].as_str()), (Some("completed"), Some("23")));
    let filtered = env.inspect("calls?to=+15550001001").await;
    assert_eq!(filtered.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn unanswered_scenarios_send_only_the_final_callback() {
    let env = start(good_assistant()).await;
    let callback = format!("{}/status", env.worker);
    for (to, expected) in [("+15550005001", "busy"), ("+15550006001", "no-answer"), ("+15550007001", "failed")] {
        let created: Value = env
            .create(&[("To", to), ("From", "+15550000000"), ("Twiml", TWIML), ("StatusCallback", &callback)])
            .await
            .json()
            .await
            .unwrap();
        let call = env.wait_done(created["sid"].as_str().unwrap()).await;
        assert_eq!(call["final_status"], expected);
        assert!(call["executed"].as_array().unwrap().is_empty());
        assert!(call["vapi"].is_null());
        let callbacks = call["status_callbacks"].as_array().unwrap();
        assert_eq!(callbacks.len(), 1, "{to}");
        assert_eq!(callbacks[0]["params"]["CallStatus"], expected);
        assert_eq!(callbacks[0]["params"]["SequenceNumber"], "0");
    }
}

#[tokio::test]
async fn url_mode_and_assistant_error() {
    let env = start(json!({"error": "unknown call"})).await;
    let url = format!("{}/twiml", env.worker);
    let created: Value =
        env.create(&[("To", "+15550004001"), ("From", "+15550000000"), ("Url", &url)]).await.json().await.unwrap();
    let call = env.wait_done(created["sid"].as_str().unwrap()).await;
    assert!(call["twiml"].as_str().unwrap().contains("p-2"));
    assert_eq!(call["vapi"]["ended_reason"], "assistant-request-returned-error");
    let types: Vec<&str> =
        call["vapi"]["messages"].as_array().unwrap().iter().map(|m| m["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["assistant-request", "status-update", "end-of-call-report"]);

    let seen = env.seen.lock().unwrap().clone();
    let (_, headers, body) = seen.iter().find(|(p, _, _)| p == "/twiml").expect("TwiML requested");
    let params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    assert!(params.contains(&("CallStatus".into(), "in-progress".into())));
    assert_eq!(headers["x-twilio-signature"].to_str().unwrap(), signature::sign(TOKEN, &url, &params));
}

#[tokio::test]
async fn twilio_rejections() {
    let env = start(good_assistant()).await;
    let unauthorized = env
        .http
        .post(format!("{}/2010-04-01/Accounts/{SID}/Calls.json", env.sandbox))
        .basic_auth(SID, Some("wrong"))
        .form(&[("To", "+15550001001")])
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    let body: Value = unauthorized.json().await.unwrap();
    assert_eq!(
        body,
        json!({"code": 20003, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401})
    );

    let bad_to = env.create(&[("To", "5550001001"), ("From", "+15550000000"), ("Twiml", TWIML)]).await;
    assert_eq!(bad_to.status(), 400);
    assert_eq!(bad_to.json::<Value>().await.unwrap()["code"], 21211);
    let long = format!("<Response><Say>{}</Say></Response>", "a".repeat(4000));
    let too_long = env.create(&[("To", "+15550001001"), ("From", "+15550000000"), ("Twiml", &long)]).await;
    assert_eq!(too_long.json::<Value>().await.unwrap()["code"], 32018);
    let calls = env.inspect("calls").await;
    assert_eq!(calls, json!([]), "rejected requests place no call");
}

#[tokio::test]
async fn gateway_checks_apikey_and_proxies() {
    let env = start(good_assistant()).await;
    let url = format!("{}/rest/v1/pending_calls?select=id&id=eq.1", env.sandbox);
    let missing = env.http.get(&url).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(missing.json::<Value>().await.unwrap(), json!({"message": "No API key found in request"}));
    let wrong = env.http.get(&url).header("apikey", "nope").send().await.unwrap();
    assert_eq!(wrong.json::<Value>().await.unwrap(), json!({"message": "Invalid API key"}));

    let key = outcall_sandbox::jwt::role_key(SECRET, "service_role");
    let ok = env
        .http
        .get(&url)
        .header("apikey", &key)
        .header("authorization", format!("Bearer {key}"))
        .header("prefer", "count=exact")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let echoed: Value = serde_json::from_str(&ok.text().await.unwrap()).unwrap();
    assert_eq!(echoed["path"], "/pending_calls?select=id&id=eq.1");
    assert_eq!(echoed["auth"], format!("Bearer {key}"));
    assert_eq!(echoed["prefer"], "count=exact");

    let health = env.inspect("health").await;
    assert_eq!(health, json!({"ok": true}));
    let unknown = env.http.get(format!("{}/_sandbox/calls/CAnope", env.sandbox)).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(unknown.json::<Value>().await.unwrap()["error"]["code"], "not_found");
}
