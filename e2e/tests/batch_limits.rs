//! A batch's calls keep the deployment's limits: the batch endpoint only writes rows, and the ordinary
//! claims pace them. Each limit is made to bind in turn: 20 targets at 2 calls per second must spread
//! over at least 9.5 s at Twilio, never 3 within a second; 20 targets with 2 call slots must never have
//! more than 2 live (and do fill both). (Alone in its binary: it narrows the global policy.)

use outcall_e2e::observed::{created_ms, peak_live};
use outcall_e2e::{fresh_phone, Scenario, Stack};
use serde_json::{json, Value};

const TARGETS: usize = 20;

/// Runs a batch of 20 answered calls under the given policy; returns what the sandbox's Twilio saw of
/// its calls (found by the sessions their StatusCallback names) and the sandbox's stats.
async fn batch_under(stack: &Stack, policy: &str, label: &str) -> (Vec<Value>, Value) {
    let saved = stack.set_policy(policy).await;
    stack.http.post(format!("{}/_sandbox/stats/reset", stack.sandbox_url)).send().await.unwrap();
    let targets: Vec<Value> =
        (0..TARGETS).map(|i| json!({"phone": fresh_phone(Scenario::Human), "name": format!("{label} {i}")})).collect();
    let accepted = stack.create_batch(&json!({"name": label, "targets": targets})).await;
    let batch_id = accepted["batchId"].as_str().unwrap().to_owned();
    let batch = stack.wait_batch_ended(&batch_id).await;
    stack.restore_policy(&saved).await;
    assert_eq!(batch["counts"]["completed"], TARGETS as u64, "{batch}");

    let sessions: Vec<Value> = stack
        .select(
            "call_sessions",
            &format!("select=id,pending_calls!inner(batch_id)&pending_calls.batch_id=eq.{batch_id}"),
        )
        .await;
    let session_ids: Vec<&Value> = sessions.iter().map(|s| &s["id"]).collect();
    let calls: Vec<Value> =
        stack.sandbox_calls().await.into_iter().filter(|c| session_ids.contains(&&c["session"])).collect();
    assert_eq!(calls.len(), TARGETS, "one call per target");
    let stats: Value =
        stack.http.get(format!("{}/_sandbox/stats", stack.sandbox_url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(stats["sessions_dialled_twice"], json!([]));
    (calls, stats)
}

#[tokio::test]
async fn a_batch_is_dialled_within_the_rate_and_concurrency_limits() {
    let stack = Stack::from_env();

    // Calls per second binding (slots plenty).
    let (calls, stats) = batch_under(&stack, "calls_per_second = 2, max_concurrent_calls = 100", "Paced Driver").await;
    let created = created_ms(&calls);
    let spread_s = (created[TARGETS - 1] - created[0]) as f64 / 1000.0;
    assert!(spread_s >= 9.5, "20 calls at 2 per second spread over {spread_s:.2} s, less than 9.5 s");
    for three in created.windows(3) {
        assert!(three[2] - three[0] >= 1000, "3 creates within one second: {three:?}");
    }
    assert!(stats["peak_calls_per_second"].as_u64().unwrap() <= 2, "{stats}");
    let tightest_three = created.windows(3).map(|three| three[2] - three[0]).min().unwrap_or_default();
    println!(
        "2 calls/s: 20 calls spread over {spread_s:.2} s, peak {} calls in one second at the sandbox, \
         tightest 3 creates {tightest_three} ms apart, peak live {}",
        stats["peak_calls_per_second"],
        peak_live(&calls)
    );

    // Call slots binding (rate plenty): never more than 2 live, and both used.
    let (calls, stats) =
        batch_under(&stack, "calls_per_second = 100, max_concurrent_calls = 2", "Slotted Driver").await;
    let peak = peak_live(&calls);
    assert!(peak <= 2, "{peak} calls live, the limit is 2");
    assert_eq!(peak, 2, "the batch never filled both slots");
    assert!(stats["peak_concurrency"].as_u64().unwrap() <= 2, "{stats}");
    let created = created_ms(&calls);
    println!(
        "2 slots: peak live {peak}, 20 calls spread over {:.2} s",
        (created[TARGETS - 1] - created[0]) as f64 / 1000.0
    );
}
