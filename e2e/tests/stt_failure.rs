//! A speech-to-text failure ends the learning run `unknown`, caches nothing, and never touches the call. (A
//! binary of its own: the sandbox's STT fault switch is global, and cargo runs test binaries one at a time.)

use outcall_e2e::{fresh_phone, Scenario, Stack};
use serde_json::{json, Value};

async fn set_fault(stack: &Stack, fault: Value) {
    let url = format!("{}/_sandbox/stt/fault", stack.sandbox_url);
    let answer = stack.http.post(url).json(&fault).send().await.unwrap();
    assert!(answer.status().is_success(), "the STT fault switch: {}", answer.status());
}

/// Puts the switch back however the test ends.
struct Restore<'a>(&'a Stack);

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        let url = format!("{}/_sandbox/stt/fault", self.0.sandbox_url);
        let _ = std::process::Command::new("curl").args(["-fsS", "-o", "/dev/null", "-d", "{}", &url]).status();
    }
}

async fn learning_call(stack: &Stack, exam: &str) -> (String, Value, Value) {
    let phone = fresh_phone(Scenario::IvrThenHuman);
    let (_, row, session) = stack.one_attempt(&phone, exam).await;
    (phone, row, stack.finished_run(&session).await)
}

#[tokio::test]
async fn a_failing_speech_to_text_service_leaves_the_call_alone_and_caches_nothing() {
    let stack = Stack::from_env();
    let _restore = Restore(&stack);
    for (fault, exam) in [(json!({"refuse": true}), "stt-refused"), (json!({"close_after_ms": 5000}), "stt-dropped")] {
        set_fault(&stack, fault.clone()).await;
        let (phone, row, run) = learning_call(&stack, exam).await;
        assert_eq!(row["call_status"], "completed", "{fault}: the call went on as always: {row}");
        assert_eq!(
            (run["purpose"].as_str(), run["result"].as_str()),
            (Some("learn"), Some("unknown")),
            "{fault}: {run}"
        );
        let cached =
            stack.select("call_classifications", &format!("phone_number=eq.{}", phone.replace('+', "%2B"))).await;
        assert!(cached.is_empty(), "{fault}: nothing cached: {cached:?}");
    }
}
