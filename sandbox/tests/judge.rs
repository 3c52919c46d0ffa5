//! The judge stand-in (`/v1/chat/completions`) as the listener uses it: core's `ChatJudge` request in, an
//! answer `ChatJudge::parse` reads out.

mod common;

use outcall_core::learning::classify::{ChatJudge, Judge, Learned};
use outcall_core::learning::timeline::{Timeline, TimelineEvent};
use outcall_sandbox::config::DEFAULT_JUDGE_KEY;
use serde_json::{json, Value};

fn timeline(texts: &[&str]) -> Timeline {
    let events = texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let start_ms = 700 + i as u32 * 4000;
            TimelineEvent::Speech { start_ms, end_ms: start_ms + 3000, text: (*text).into() }
        })
        .collect();
    Timeline { duration_ms: 20_000, events }
}

async fn ask(env: &common::Env, key: Option<&str>, body: &Value, run: &str) -> (u16, String) {
    let mut request = env
        .http
        .post(format!("{}/v1/chat/completions", env.sandbox))
        .header("X-Client-Request-Id", run)
        .body(body.to_string());
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn answers_core_s_request_by_its_own_rule_and_lists_each_request_without_the_key() {
    let env = common::start(json!({})).await;
    let judge = ChatJudge { model: "gpt-4o-mini".into() };
    let closed = timeline(&["Thank you for calling Birch Street Medical.", "Our office is closed. Goodbye."]);
    let (status, body) = ask(&env, Some(DEFAULT_JUDGE_KEY), &judge.request(&closed), "run-1").await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((answer["object"].as_str(), answer["model"].as_str()), (Some("chat.completion"), Some("gpt-4o-mini")));
    let judged = judge.parse(&body).expect("core reads the answer");
    assert_eq!((judged.classification, judged.confidence), (Learned::IvrOnly, 0.8));

    let hold = timeline(&["Please hold while I connect you."]);
    let (_, body) = ask(&env, Some(DEFAULT_JUDGE_KEY), &judge.request(&hold), "run-2").await;
    assert_eq!(judge.parse(&body).unwrap().classification, Learned::Unknown);

    let listed = env.inspect("judge").await;
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["client_request_id"], "run-1");
    assert_eq!((listed[0]["status"].as_u64(), listed[0]["answer"].as_str()), (Some(200), Some("ivr_only")));
    assert_eq!((listed[0]["model"].as_str(), listed[0]["lines"].as_u64()), (Some("gpt-4o-mini"), Some(2)));
    assert_eq!(listed[1]["answer"], "unknown");
    let text = Value::Array(listed.clone()).to_string();
    assert!(!text.contains(DEFAULT_JUDGE_KEY) && !text.contains("Birch"), "no key, no transcript: {text}");

    env.control("reset", json!({})).await;
    assert_eq!(env.inspect("judge").await, json!([]));
}

#[tokio::test]
async fn refuses_a_wrong_key_and_a_malformed_body_in_openai_s_error_shape() {
    let env = common::start(json!({})).await;
    let request = ChatJudge { model: "m".into() }.request(&timeline(&["Goodbye."]));
    for key in [None, Some("wrong")] {
        let (status, body) = ask(&env, key, &request, "r").await;
        let error: Value = serde_json::from_str(&body).unwrap();
        assert_eq!((status, error["error"]["type"].as_str()), (401, Some("invalid_request_error")), "{body}");
    }
    let (_, body) = ask(&env, Some("wrong"), &request, "r").await;
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"]["code"], "invalid_api_key");
    for (body, param) in
        [(json!({"messages": [{"role": "user", "content": "x"}]}), "model"), (json!({"model": "m"}), "messages")]
    {
        let (status, answer) = ask(&env, Some(DEFAULT_JUDGE_KEY), &body, "r").await;
        let error: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!((status, error["error"]["param"].as_str()), (400, Some(param)), "{answer}");
    }
    let listed = env.inspect("judge").await;
    let statuses: Vec<u64> = listed.as_array().unwrap().iter().map(|r| r["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [401, 401, 401, 400, 400]);
    assert!(listed.as_array().unwrap().iter().all(|r| r["answer"].is_null()));
}
