//! The judge, on the real stack: a learning call the rules leave `unknown` (a clinic that only plays an
//! announcement) is sent once to the judge (the sandbox's stand-in, `./dev up` sets `JUDGE_URL`), whose verdict
//! is recorded with the rules' reasons and a capped confidence; a call the rules decide asks no judge.

use outcall_e2e::{fresh_phone, Scenario, Stack};
use serde_json::{json, Value};

/// Inserts a row (one attempt) and waits for its call and its finished learning run.
async fn learning_run(stack: &Stack, phone: &str, exam: &str) -> Value {
    let (_, _, session) = stack.one_attempt(phone, exam).await;
    stack.finished_run(&session).await
}

/// The judge stand-in's requests made for `run` (the listener sends the run's id as `X-Client-Request-Id`).
async fn judge_requests(stack: &Stack, run: &Value) -> Vec<Value> {
    let url = format!("{}/_sandbox/judge", stack.sandbox_url);
    let all: Vec<Value> = stack.http.get(url).send().await.unwrap().json().await.unwrap();
    all.into_iter().filter(|r| r["client_request_id"] == run["id"]).collect()
}

#[tokio::test]
async fn an_announcement_the_rules_cannot_read_is_judged_once_and_the_judges_verdict_recorded() {
    let stack = Stack::from_env();
    let phone = fresh_phone(Scenario::IvrOnly);
    let url = format!("{}/_sandbox/phones/{}", stack.sandbox_url, phone.replace('+', "%2B"));
    // No menu, no person, no voicemail: only an announcement (the rules: "announcements only", `unknown`),
    // ending with the goodbye the stand-in reads as a recording (`ivr_only`).
    let closed = json!({"name": "birch street medical (closed)", "start": "closed", "nodes": {
        "closed": {"type": "automated", "prompt": [
            "thank you for calling birch street medical.", "our office is closed.", "goodbye."]}}});
    let put = stack.http.put(&url).json(&closed).send().await.unwrap();
    assert!(put.status().is_success(), "{}", put.text().await.unwrap());

    let run = learning_run(&stack, &phone, "judge-1").await;
    stack.http.delete(&url).send().await.unwrap();
    assert_eq!((run["purpose"].as_str(), run["result"].as_str()), (Some("learn"), Some("ivr_only")), "{run}");
    assert_eq!(run["confidence"].as_f64(), Some(0.75), "capped below the rules' own: {run}");
    let reasons: Vec<&str> =
        run["evidence"]["reasons"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert_eq!(reasons, ["announcements only, no menu and no person", "judge: a recording that ends the call"]);
    assert!(run["classification_id"].is_null(), "no key to replay: an ivr_only like this is not cached: {run}");

    let asked = judge_requests(&stack, &run).await;
    assert_eq!(asked.len(), 1, "one request for the run: {asked:?}");
    assert_eq!((asked[0]["status"].as_u64(), asked[0]["answer"].as_str()), (Some(200), Some("ivr_only")));
    assert_eq!(asked[0]["model"], "gpt-4o-mini");
    assert_eq!(asked[0]["lines"], 3, "the three announcements, as transcribed: {asked:?}");
}

#[tokio::test]
async fn a_call_the_rules_decide_asks_no_judge() {
    let stack = Stack::from_env();
    let run = learning_run(&stack, &fresh_phone(Scenario::IvrThenHuman), "judge-2").await;
    assert_eq!(run["result"], "ivr_then_human", "{run}");
    assert!(!run["evidence"].to_string().contains("judge"), "{run}");
    assert_eq!(judge_requests(&stack, &run).await, Vec::<Value>::new());
}
