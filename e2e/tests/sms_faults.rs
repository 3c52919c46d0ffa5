//! Batch SMS through Twilio's failures (its own test binary: the sandbox's faults are global, and test
//! binaries run one after another): 429s and 503s are sent again after their wait; a 504 or a timeout may
//! have created the message, so it is looked up before it may go again. Whatever is drawn, every message is
//! created at Twilio exactly once and reaches its delivery status.

use outcall_e2e::sms::{mobile, sender};
use outcall_e2e::Stack;
use serde_json::{json, Value};

/// Turns the faults off however the test ends.
struct Faults(Stack);

impl Faults {
    async fn set(stack: &Stack, settings: Value) -> Self {
        let response =
            stack.http.post(format!("{}/_sandbox/faults", stack.sandbox_url)).json(&settings).send().await.unwrap();
        assert!(response.status().is_success(), "faults refused: {}", response.status());
        Self(stack.clone())
    }
    async fn injected(&self) -> Value {
        let url = format!("{}/_sandbox/faults", self.0.sandbox_url);
        self.0.http.get(url).send().await.unwrap().json::<Value>().await.unwrap()["injected"].clone()
    }
}

impl Drop for Faults {
    fn drop(&mut self) {
        // No async in `drop`: the reset goes from a thread of its own, with its own runtime.
        let url = format!("{}/_sandbox/faults/reset", self.0.sandbox_url);
        let reset = move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            runtime.block_on(async { reqwest::Client::new().post(url).send().await.ok() });
        };
        std::thread::spawn(reset).join().ok();
    }
}

#[tokio::test]
async fn refused_and_lost_answers_are_retried_and_no_message_is_sent_twice() {
    let stack = Stack::from_env();
    let from = sender();
    stack.set_sms_rate(&from, None).await;
    let targets: Vec<Value> =
        (0..12).map(|i| json!({"phone": mobile(), "body": format!("Shift {i} starts at 6")})).collect();
    let faults = Faults::set(
        &stack,
        json!({"seed": 7, "twilio_429": 0.2, "twilio_503": 0.15, "twilio_504": 0.15, "twilio_timeout": 0.1, "timeout_hold_ms": 3000}),
    )
    .await;
    let accepted = stack.create_sms_batch(&json!({"from": from, "targets": targets})).await;
    let id = accepted["smsBatchId"].as_str().unwrap().to_owned();
    let batch = stack.wait_sms_settled(&id).await;
    let injected = faults.injected().await;
    drop(faults);

    assert_eq!(batch["counts"]["delivered"], 12, "{batch}");
    let seen = stack.sandbox_sms().await;
    let ours: Vec<&Value> =
        seen["attempts"].as_array().unwrap().iter().filter(|a| targets.iter().any(|t| t["phone"] == a["to"])).collect();
    assert_eq!(ours.len(), 12, "{ours:?}");
    assert!(ours.iter().all(|a| a["created"] == 1), "a message was created twice: {ours:?}");
    let retried = ours.iter().filter(|a| a["requests"].as_i64().unwrap() > 1).count();
    assert!(retried > 0, "the faults hit no create ({injected}); the test proves nothing");
    // A 504 or a timeout lost the answer of a create that did make the message: found by the look-up, not resent.
    let lost = stack.sandbox_sms_from(&from).await.into_iter().filter(|m| {
        m["faults"].as_array().is_some_and(|f| f.iter().any(|f| f == "twilio_504" || f == "twilio_timeout"))
    });
    assert!(lost.count() > 0, "no create lost its answer ({injected}); the look-up went untested");
    let rows = stack.select("sms_messages", &format!("batch_id=eq.{id}")).await;
    let attempts: i64 = rows.iter().map(|r| r["attempts"].as_i64().unwrap()).sum();
    assert!(attempts > 12, "refused creates are counted as attempts: {attempts}");
    assert!(rows.iter().all(|r| r["message_sid"].as_str().is_some_and(|s| s.starts_with("SM"))));
}
