//! Nothing lost: an unanswered call is retried on the outcome schedule, a row whose webhook never
//! came is dialled by the sweep, and sessions that never heard back are settled by asking Twilio,
//! never by dialling blindly again.

use outcall_e2e::{fresh_phone, merge, sample_row, Scenario, Stack};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn timestamp(value: &Value) -> f64 {
    let text = value.as_str().unwrap_or_else(|| panic!("a timestamp: {value}"));
    chrono::DateTime::parse_from_rfc3339(text).unwrap().timestamp_millis() as f64 / 1000.0
}

/// Attempt n+1 starts no sooner than the schedule's delay after attempt n ended.
async fn assert_spaced_by_the_schedule(stack: &Stack, sessions: &[Value]) {
    for (n, pair) in sessions.windows(2).enumerate() {
        let delay = stack.policy_seconds(&format!("retry_delays[least({}, cardinality(retry_delays))]", n + 1)).await;
        let gap = timestamp(&pair[1]["created_at"]) - timestamp(&pair[0]["ended_at"]);
        assert!(
            gap >= delay - 0.001,
            "attempt {} began {gap:.3} s after attempt {} ended; the schedule says {delay} s",
            n + 2,
            n + 1
        );
    }
}

async fn retried_then_failed(scenario: Scenario, twilio_status: &str) {
    let stack = Stack::from_env();
    let phone = fresh_phone(scenario);
    let row = stack.insert_pending_call(merge(sample_row(&phone, "Grace Kim"), json!({"max_attempts": 2}))).await;
    let id = row["id"].as_str().unwrap();
    let row = stack.wait_terminal(id).await;
    assert_eq!((row["call_status"].as_str(), row["attempts"].as_i64()), (Some("failed"), Some(2)), "{row}");
    assert_eq!(row["last_error"], twilio_status);
    let sessions = stack.sessions(id).await;
    let statuses: Vec<&str> = sessions.iter().map(|s| s["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, [twilio_status, twilio_status]);
    assert_spaced_by_the_schedule(&stack, &sessions).await;
    let calls = stack.sandbox_calls_of(id).await;
    assert_eq!(calls.len(), 2, "one dial per attempt");
    assert!(calls.iter().all(|c| c["sip"].is_null() && c["final_status"] == twilio_status));
}

#[tokio::test]
async fn a_busy_line_is_retried_on_the_schedule_then_fails() {
    retried_then_failed(Scenario::Busy, "busy").await;
}

#[tokio::test]
async fn an_unanswered_call_is_retried_on_the_schedule_then_fails() {
    retried_then_failed(Scenario::NoAnswer, "no-answer").await;
}

#[tokio::test]
async fn a_failed_call_is_retried_on_the_schedule_then_fails() {
    retried_then_failed(Scenario::Failed, "failed").await;
}

#[tokio::test]
async fn a_row_whose_webhook_never_came_is_dialled_by_the_sweep() {
    let stack = Stack::from_env();
    let phone = fresh_phone(Scenario::Human);
    let id = stack.insert_quietly(&sample_row(&phone, "Lena Brandt")).await;
    stack.sweep().await;
    let row = stack.wait_terminal(&id).await;
    assert_eq!(row["call_status"], "completed", "{row}");
    assert_eq!(stack.sandbox_calls_of(&id).await.len(), 1);
}

/// Waits (sweeping now and then) until the row's first session has left `status`.
async fn wait_session_leaves(stack: &Stack, id: &str, status: &str) -> Value {
    let wait = stack.policy_seconds("reconcile_after").await;
    let deadline = Instant::now() + Duration::from_secs_f64(wait + 60.0);
    loop {
        let session = stack.sessions(id).await.remove(0);
        if session["status"] != status {
            return session;
        }
        assert!(Instant::now() < deadline, "session still {status} after reconcile_after + 60 s: {session}");
        stack.sweep().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn a_call_whose_callbacks_were_lost_is_settled_by_asking_twilio() {
    let stack = Stack::from_env();
    let phone = fresh_phone(Scenario::Busy);
    let (id, session) =
        stack.insert_claimed(&merge(sample_row(&phone, "Ada Moreau"), json!({"max_attempts": 1}))).await;
    let sid = stack.create_untracked_call(&phone, &session).await;
    stack
        .db()
        .await
        .execute("select public.record_dial_result($1::text::uuid, $2::text)", &[&session, &sid])
        .await
        .unwrap();
    let settled = wait_session_leaves(&stack, &id, "queued").await;
    assert_eq!((settled["call_sid"].as_str(), settled["status"].as_str()), (Some(sid.as_str()), Some("busy")));
    let row = stack.wait_terminal(&id).await;
    assert_eq!((row["call_status"].as_str(), row["last_error"].as_str()), (Some("failed"), Some("busy")));
    assert_eq!(stack.sandbox_calls_of(&id).await.len(), 1, "reconciled, not redialled");
}

#[tokio::test]
async fn a_dial_whose_answer_was_lost_is_found_at_twilio_not_redialled() {
    let stack = Stack::from_env();
    let phone = fresh_phone(Scenario::Busy);
    let (id, session) =
        stack.insert_claimed(&merge(sample_row(&phone, "Ada Moreau"), json!({"max_attempts": 1}))).await;
    // Twilio made the call, but its answer (the CallSid) never reached the Worker.
    let sid = stack.create_untracked_call(&phone, &session).await;
    let adopted = wait_session_leaves(&stack, &id, "dialing").await;
    assert_eq!(adopted["call_sid"], sid.as_str(), "{adopted}");
    let row = stack.wait_terminal(&id).await;
    assert_eq!((row["call_status"].as_str(), row["last_error"].as_str()), (Some("failed"), Some("busy")));
    assert_eq!(stack.sandbox_calls_of(&id).await.len(), 1, "adopted, not redialled");
}

#[tokio::test]
async fn a_dial_that_never_reached_twilio_is_retried_as_a_new_attempt() {
    let stack = Stack::from_env();
    let phone = fresh_phone(Scenario::Human);
    // The Worker claimed the row and stopped before its request left (say it was restarted).
    let (id, _) = stack.insert_claimed(&merge(sample_row(&phone, "Ada Moreau"), json!({"max_attempts": 2}))).await;
    let lost = wait_session_leaves(&stack, &id, "dialing").await;
    assert_eq!((lost["status"].as_str(), lost["error_code"].as_str()), (Some("dial_failed"), Some("not_dialled")));
    let row = stack.wait_terminal(&id).await;
    assert_eq!((row["call_status"].as_str(), row["attempts"].as_i64()), (Some("completed"), Some(2)), "{row}");
    assert_eq!(stack.sandbox_calls_of(&id).await.len(), 1, "only the second attempt reached Twilio");
}

#[tokio::test]
async fn a_call_twilio_does_not_know_is_ended_so_it_holds_no_slot() {
    let stack = Stack::from_env();
    let phone = fresh_phone(Scenario::Human);
    let (id, session) =
        stack.insert_claimed(&merge(sample_row(&phone, "Ada Moreau"), json!({"max_attempts": 1}))).await;
    let unknown_sid = format!("CA{}", uuid::Uuid::new_v4().simple());
    stack
        .db()
        .await
        .execute("select public.record_dial_result($1::text::uuid, $2::text)", &[&session, &unknown_sid])
        .await
        .unwrap();
    let ended = wait_session_leaves(&stack, &id, "queued").await;
    assert_eq!(ended["status"], "canceled", "{ended}");
    let row = stack.wait_terminal(&id).await;
    assert_eq!((row["call_status"].as_str(), row["last_error"].as_str()), (Some("failed"), Some("canceled")));
}
