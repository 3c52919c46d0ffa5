//! Campaign controls, with the sandbox's Twilio observing every create request: pausing a batch with calls
//! live dials nothing new while they finish, and resuming dials the rest; two batches with their own
//! `maxConcurrency` / `callsPerSecond` running at once each keep their limits, the global ones hold, and both
//! progress side by side (the claim serves batches by turns). (One test: the steps narrow the global policy, so
//! they run one after the other, alone in this binary.)

use outcall_e2e::observed::{created_ms, peak_live};
use outcall_e2e::{fresh_phone, Scenario, Stack};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn targets(label: &str, n: usize) -> Vec<Value> {
    (0..n).map(|i| json!({"phone": fresh_phone(Scenario::Human), "name": format!("{label} {i}")})).collect()
}

/// The batch's sessions (ids), from the database.
async fn sessions_of(stack: &Stack, batch_id: &str) -> Vec<Value> {
    stack
        .select(
            "call_sessions",
            &format!("select=id,status,pending_calls!inner(batch_id)&pending_calls.batch_id=eq.{batch_id}"),
        )
        .await
}

/// What the sandbox's Twilio saw of the batch's calls (found by the sessions their StatusCallback names).
async fn sandbox_calls_of_batch(stack: &Stack, batch_id: &str) -> Vec<Value> {
    let ids: Vec<Value> = sessions_of(stack, batch_id).await.into_iter().map(|s| s["id"].clone()).collect();
    stack.sandbox_calls().await.into_iter().filter(|c| ids.contains(&c["session"])).collect()
}

async fn post(stack: &Stack, path: &str) -> (u16, Value) {
    let (status, _, body) = stack.api(reqwest::Method::POST, path, &[], None).await;
    (status, body)
}

async fn eventually(what: &str, timeout: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn pause_resume_and_per_batch_limits_at_the_sandbox() {
    let stack = Stack::from_env();
    let saved = stack.set_policy("calls_per_second = 100, max_concurrent_calls = 100").await;
    pause_with_live_calls(&stack).await;
    stack.set_policy("calls_per_second = 4, max_concurrent_calls = 3").await;
    two_batches_with_their_own_limits(&stack).await;
    stack.restore_policy(&saved).await;
}

/// 8 targets, 2 live at most: paused once 2 are dialled; those finish, nothing new is created until resume.
async fn pause_with_live_calls(stack: &Stack) {
    const TARGETS: usize = 8;
    let accepted = stack
        .create_batch(&json!({"name": "Paused campaign", "maxConcurrency": 2, "targets": targets("Paused", TARGETS)}))
        .await;
    let batch_id = accepted["batchId"].as_str().unwrap().to_owned();
    eventually("two calls of the batch", Duration::from_secs(30), async || {
        sessions_of(stack, &batch_id).await.len() >= 2
    })
    .await;

    let (status, paused) = post(stack, &format!("batches/{batch_id}/pause")).await;
    assert_eq!((status, &paused["paused"], &paused["changed"]), (200, &json!(true), &json!(true)), "{paused}");
    assert!(paused["pausedAt"].is_string(), "{paused}");
    let at_pause = sessions_of(stack, &batch_id).await.len();
    assert!(at_pause < TARGETS, "the batch was paused before it was all dialled ({at_pause} sessions)");
    let live = ["dialing", "queued", "initiated", "ringing", "in-progress"];
    assert!(
        sessions_of(stack, &batch_id).await.iter().any(|s| live.contains(&s["status"].as_str().unwrap_or(""))),
        "a call was live when the batch was paused"
    );

    // The live calls finish; nothing new is dialled (a while longer, for a claim that should not happen).
    eventually("the live calls to finish", Duration::from_secs(60), async || {
        sandbox_calls_of_batch(stack, &batch_id).await.iter().all(|c| c["done"] == true)
            && sessions_of(stack, &batch_id).await.iter().all(|s| !live.contains(&s["status"].as_str().unwrap_or("")))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sessions_of(stack, &batch_id).await.len(), at_pause, "no session was started while paused");
    let during_pause = sandbox_calls_of_batch(stack, &batch_id).await;
    assert_eq!(during_pause.len(), at_pause, "the sandbox saw no new create while paused");
    let status = stack.batch(&batch_id).await;
    assert_eq!((&status["paused"], &status["status"]), (&json!(true), &json!("in_progress")), "{status}");
    assert_eq!(status["counts"]["queued"], json!(TARGETS - at_pause), "{status}");
    let (_, again) = post(stack, &format!("batches/{batch_id}/pause")).await;
    assert_eq!((&again["paused"], &again["changed"]), (&json!(true), &json!(false)), "pausing again: {again}");

    // Resume: the rest is dialled, promptly (the resume sends the Worker the batch's first row due).
    let resumed_at = Instant::now();
    let (status, resumed) = post(stack, &format!("batches/{batch_id}/resume")).await;
    assert_eq!((status, &resumed["paused"], &resumed["changed"]), (200, &json!(false), &json!(true)), "{resumed}");
    eventually("a call after resume", Duration::from_secs(10), async || {
        sessions_of(stack, &batch_id).await.len() > at_pause
    })
    .await;
    println!("pause: {at_pause} calls before the pause, the next dialled {:?} after resume", resumed_at.elapsed());
    let ended = stack.wait_batch_ended(&batch_id).await;
    assert_eq!(ended["counts"]["completed"], json!(TARGETS), "{ended}");
    let calls = sandbox_calls_of_batch(stack, &batch_id).await;
    assert_eq!(calls.len(), TARGETS, "one create per target");
    let last_end_before = during_pause.iter().filter_map(|c| c["ended_ms"].as_u64()).max().unwrap();
    let after: Vec<u64> = created_ms(&calls)
        .into_iter()
        .filter(|at| !during_pause.iter().any(|c| c["created_ms"] == json!(at)))
        .collect();
    assert_eq!(after.len(), TARGETS - at_pause);
    assert!(
        after.iter().all(|at| *at > last_end_before),
        "every later create came after the live calls ended: {after:?}"
    );
    assert!(peak_live(&calls) <= 2, "maxConcurrency 2 held through pause and resume");
    let audit = format!(
        "select count(*) from public.operator_actions where actor = 'api_key' and target_ids = array['{batch_id}'::uuid]"
    );
    assert_eq!(stack.scalar(&audit).await, 3, "each pause and resume audited as the API key");
}

/// A (12 targets, 2 live, 1 call/s) and B (6 targets, 1 live) at once, globally 3 live and 4 calls/s.
async fn two_batches_with_their_own_limits(stack: &Stack) {
    let a = stack
        .create_batch(
            &json!({"name": "Campaign A", "maxConcurrency": 2, "callsPerSecond": 1, "targets": targets("A", 12)}),
        )
        .await;
    let b = stack.create_batch(&json!({"name": "Campaign B", "maxConcurrency": 1, "targets": targets("B", 6)})).await;
    let (a, b) = (a["batchId"].as_str().unwrap().to_owned(), b["batchId"].as_str().unwrap().to_owned());
    let status = stack.batch(&a).await;
    assert_eq!(
        (status["maxConcurrency"].as_u64(), status["callsPerSecond"].as_f64()),
        (Some(2), Some(1.0)),
        "{status}"
    );
    for id in [&a, &b] {
        let ended = stack.wait_batch_ended(id).await;
        assert_eq!(ended["counts"]["completed"], ended["total"], "{ended}");
    }
    let (calls_a, calls_b) = (sandbox_calls_of_batch(stack, &a).await, sandbox_calls_of_batch(stack, &b).await);
    assert_eq!((calls_a.len(), calls_b.len()), (12, 6), "one create per target");

    // Each batch's own limits.
    assert!(peak_live(&calls_a) <= 2, "A: {} live, its limit is 2", peak_live(&calls_a));
    assert_eq!(peak_live(&calls_b), 1, "B: its limit is 1");
    let created_a = created_ms(&calls_a);
    for pair in created_a.windows(2) {
        assert!(pair[1] - pair[0] >= 1000, "A: 2 creates within a second at 1 call/s: {pair:?}");
    }
    // The global ones, over both.
    let all: Vec<Value> = calls_a.iter().chain(&calls_b).cloned().collect();
    assert!(peak_live(&all) <= 3, "{} live in all, the global limit is 3", peak_live(&all));
    let created = created_ms(&all);
    for five in created.windows(5) {
        assert!(five[4] - five[0] >= 1000, "5 creates within a second at 4 calls/s: {five:?}");
    }
    // Both progress side by side: B is not left until A is done, nor A until B is.
    let created_b = created_ms(&calls_b);
    let median_a = created_a[created_a.len() / 2];
    assert!(created_b[0] < median_a, "B's first call waited for half of A: {created_b:?} vs {created_a:?}");
    assert!(created_a[0] < created_b[created_b.len() - 1], "A waited for B");
    let b_during_a = created_b.iter().filter(|at| **at > created_a[0] && **at < created_a[11]).count();
    println!(
        "two batches: A spread over {:.1} s, B over {:.1} s, {b_during_a} of B's 6 calls while A dialled; peak live A {}, B {}, all {}",
        (created_a[11] - created_a[0]) as f64 / 1000.0,
        (created_b[5] - created_b[0]) as f64 / 1000.0,
        peak_live(&calls_a),
        peak_live(&calls_b),
        peak_live(&all)
    );
    assert!(b_during_a >= 3, "most of B's calls were made while A was dialling");
}
