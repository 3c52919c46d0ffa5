//! The reliability run: 500 rows through the real stack with every fault the sandbox can inject at
//! 12 % (Twilio 429/503/504/timeouts, dropped webhooks, duplicated and reordered callbacks, duplicated
//! VAPI reports, VAPI's report before or after Twilio's) and the Worker restarted mid-run. It must end
//! with every row terminal, no attempt dialled twice, the limits held as the sandbox saw them, and each
//! row's attempts exactly as the outcome schedule says.
//!
//! It changes the stack's dispatch policy and the sandbox's faults for its duration, so it is the only
//! test in its binary (cargo runs test binaries one after another).

use outcall_e2e::worker::restart_stack_worker;
use outcall_e2e::{fresh_phone, merge, sample_row, Scenario, Stack};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const ROWS: usize = 500;
const MAX_ATTEMPTS: usize = 3;
const MAX_CONCURRENT_CALLS: u64 = 8;
const CALLS_PER_SECOND: u64 = 10;
const RATE: f64 = 0.12;
/// The run's outcome schedule: short, so three attempts fit in a test.
const RETRY_DELAYS_S: [f64; 2] = [1.0, 2.0];
const RECONCILE_AFTER_S: f64 = 20.0;

#[tokio::test]
async fn five_hundred_rows_through_every_fault_end_with_nothing_lost_or_doubled() {
    let stack = Stack::from_env();
    let saved = stack
        .set_policy(&format!(
            "max_concurrent_calls = {MAX_CONCURRENT_CALLS}, calls_per_second = {CALLS_PER_SECOND},
             retry_delays = '{{{} seconds, {} seconds}}', reconcile_after = '{RECONCILE_AFTER_S} seconds'",
            RETRY_DELAYS_S[0], RETRY_DELAYS_S[1]
        ))
        .await;
    let faults = json!({"seed": 20261121, "twilio_429": RATE, "twilio_503": RATE, "twilio_504": RATE,
        "twilio_timeout": RATE, "timeout_hold_ms": 3000, "drop_webhook": RATE,
        "duplicate_status_callback": RATE, "reorder_status_callbacks": RATE,
        "duplicate_vapi_report": RATE, "vapi_report_first": 0.5});
    sandbox_post(&stack, "/_sandbox/faults", faults).await;
    sandbox_post(&stack, "/_sandbox/stats/reset", json!({})).await;

    // The run in its own task, so the stack is put back whatever happens.
    let outcome = tokio::spawn(run(stack.clone())).await;

    sandbox_post(&stack, "/_sandbox/faults/reset", json!({})).await;
    stack.restore_policy(&saved).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn sandbox_post(stack: &Stack, path: &str, body: Value) -> Value {
    let response = stack.http.post(format!("{}{path}", stack.sandbox_url)).json(&body).send().await.unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.unwrap_or(Value::Null)
}

async fn sandbox_get(stack: &Stack, path: &str) -> Value {
    stack.http.get(format!("{}{path}", stack.sandbox_url)).send().await.unwrap().json().await.unwrap()
}

async fn run(stack: Stack) {
    let run_id = uuid::Uuid::new_v4().to_string();
    let started = Instant::now();
    let mut scenario_of = HashMap::new();
    let rows: Vec<(Scenario, Value)> = (0..ROWS)
        .map(|i| {
            let scenario = Scenario::ALL[i % Scenario::ALL.len()];
            let row = sample_row(&fresh_phone(scenario), &format!("Fault Run {i}"));
            (scenario, merge(row, json!({"max_attempts": MAX_ATTEMPTS, "variables": {"run": run_id}})))
        })
        .collect();
    for chunk in rows.chunks(50) {
        let response =
            stack.insert("pending_calls", Value::Array(chunk.iter().map(|(_, r)| r.clone()).collect())).await;
        assert_eq!(response.status(), 201);
        let inserted: Vec<Value> = response.json().await.unwrap();
        for ((scenario, _), row) in chunk.iter().zip(inserted) {
            scenario_of.insert(row["id"].as_str().unwrap().to_owned(), *scenario);
        }
    }

    // Follow the run; restart the Worker once a quarter of the rows are done.
    let db = stack.db().await;
    let mut restarted_at = None;
    let deadline = started + Duration::from_secs(900);
    loop {
        let open: i64 = db
            .query_one(
                "select count(*) from pending_calls where variables->>'run' = $1
                   and call_status not in ('completed', 'failed', 'cancelled')",
                &[&run_id],
            )
            .await
            .unwrap()
            .get(0);
        if open == 0 {
            break;
        }
        if restarted_at.is_none() && (open as usize) < ROWS * 3 / 4 {
            println!("{:>4} s: {open} rows open; restarting the Worker", started.elapsed().as_secs());
            restart_stack_worker(&stack.worker_url).await;
            restarted_at = Some(open);
        }
        assert!(Instant::now() < deadline, "{open} rows still open after 15 minutes");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let open_at_restart = restarted_at.expect("the Worker was restarted mid-run");
    println!("all {ROWS} rows terminal after {} s", started.elapsed().as_secs());

    // Let the sandbox finish sending what it still owes (duplicate reports, late callbacks).
    let settle = Instant::now() + Duration::from_secs(60);
    let stats = loop {
        let stats = sandbox_get(&stack, "/_sandbox/stats").await;
        if stats["live_calls"] == 0 || Instant::now() > settle {
            break stats;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let injected = sandbox_get(&stack, "/_sandbox/faults").await["injected"].clone();
    let observed: Vec<String> =
        ["calls_created", "peak_concurrency", "peak_calls_per_second", "sessions_dialled_twice"]
            .iter()
            .map(|k| format!("{k} {}", stats[*k]))
            .collect();
    println!("sandbox saw: {}\nfaults injected: {injected}", observed.join(", "));

    // Nothing doubled, limits held, as the sandbox (Twilio's side) saw it.
    assert_eq!(stats["sessions_dialled_twice"], json!([]), "an attempt was dialled twice");
    let peak = stats["peak_concurrency"].as_u64().unwrap();
    assert!(peak <= MAX_CONCURRENT_CALLS, "peak concurrency {peak} > {MAX_CONCURRENT_CALLS}");
    let cps = stats["peak_calls_per_second"].as_u64().unwrap();
    assert!(cps <= CALLS_PER_SECOND, "peak calls in one second {cps} > {CALLS_PER_SECOND}");
    // The limits did bind: every slot was filled at some point (so "≤" above was a real test).
    assert_eq!(peak, MAX_CONCURRENT_CALLS, "the run never filled the slots");

    // Every fault really happened, at about its rate.
    let calls = stats["calls_created"].as_f64().unwrap();
    for kind in [
        "twilio_429",
        "twilio_503",
        "twilio_504",
        "twilio_timeout",
        "duplicate_status_callback",
        "reorder_status_callbacks",
        "duplicate_vapi_report",
        "vapi_report_first",
        "vapi_report_after",
    ] {
        assert!(injected[kind].as_u64().unwrap_or(0) > 0, "{kind} never injected: {injected}");
    }
    let dropped = injected["drop_webhook"].as_f64().unwrap();
    assert!(dropped / ROWS as f64 >= 0.08, "webhooks dropped: {dropped} of {ROWS}");
    println!("{calls} calls created; {} of {ROWS} rows were open when the Worker restarted", open_at_restart);

    check_every_row(&stack, &run_id, &scenario_of).await;
}

/// How one attempt ended, from its session.
#[derive(Debug, PartialEq)]
enum Ending {
    Conversation,
    /// Busy, no answer, failed, voicemail, not reached, a failed dial: the row is retried.
    Retryable,
    /// Twilio completed the call but VAPI's report never came: failed, never redialled.
    ReportMissing,
}

fn ending(session: &Value, row: &Value, last: bool) -> Ending {
    match session["status"].as_str().unwrap() {
        "completed" if session["report_received_at"].is_null() => Ending::ReportMissing,
        "completed" => {
            // The row keeps the last attempt's result; earlier completed attempts were not reached.
            if last && row["call_status"] == "completed" {
                Ending::Conversation
            } else {
                Ending::Retryable
            }
        }
        "busy" | "no-answer" | "failed" | "canceled" | "dial_failed" => Ending::Retryable,
        other => panic!("session still {other} on a terminal row: {session}"),
    }
}

fn seconds(value: &Value) -> Option<f64> {
    let text = value.as_str()?;
    Some(chrono::DateTime::parse_from_rfc3339(text).ok()?.timestamp_millis() as f64 / 1000.0)
}

async fn check_every_row(stack: &Stack, run_id: &str, scenario_of: &HashMap<String, Scenario>) {
    let db = stack.db().await;
    let rows = db
        .query(
            "select (to_jsonb(p) || jsonb_build_object('sessions', coalesce(
                (select jsonb_agg(to_jsonb(s) order by s.attempt) from call_sessions s where s.pending_call_id = p.id),
                '[]')))::text
               from pending_calls p where p.variables->>'run' = $1",
            &[&run_id],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), ROWS);
    let mut completed_by_conversation = 0;
    let mut reports_missing = 0;
    for row in rows {
        let row: Value = serde_json::from_str(row.get::<_, &str>(0)).unwrap();
        let id = row["id"].as_str().unwrap();
        let scenario = scenario_of[id];
        let sessions = row["sessions"].as_array().unwrap();
        let attempts = row["attempts"].as_u64().unwrap() as usize;
        let context = || format!("{} row {id}: {row}", scenario.name());
        assert!(matches!(row["call_status"].as_str(), Some("completed" | "failed")), "not terminal: {}", context());
        assert_eq!(sessions.len(), attempts, "one session per attempt: {}", context());
        for (n, session) in sessions.iter().enumerate() {
            assert_eq!(session["attempt"].as_u64(), Some(n as u64 + 1), "{}", context());
        }
        let endings: Vec<Ending> =
            sessions.iter().enumerate().map(|(n, s)| ending(s, &row, n + 1 == sessions.len())).collect();
        // Every attempt but the last was retryable, and the next began no sooner than the schedule says.
        for n in 0..attempts.saturating_sub(1) {
            assert_eq!(endings[n], Ending::Retryable, "attempt {} was retried: {}", n + 1, context());
            let closed = [&sessions[n]["ended_at"], &sessions[n]["report_received_at"]]
                .into_iter()
                .filter_map(seconds)
                .fold(f64::INFINITY, f64::min);
            let next = seconds(&sessions[n + 1]["created_at"]).unwrap();
            let delay = RETRY_DELAYS_S[n.min(RETRY_DELAYS_S.len() - 1)];
            assert!(
                next - closed >= delay - 0.001,
                "attempt {} came {:.3} s after {}; schedule {delay}: {}",
                n + 2,
                next - closed,
                n + 1,
                context()
            );
        }
        // The last attempt decides: a conversation completes; a retryable ending fails only when the
        // attempts are spent; a missing report fails at once.
        match (row["call_status"].as_str().unwrap(), endings.last().unwrap()) {
            ("completed", Ending::Conversation) => completed_by_conversation += 1,
            ("failed", Ending::Retryable) => assert_eq!(attempts, MAX_ATTEMPTS, "failed early: {}", context()),
            ("failed", Ending::ReportMissing) => {
                assert_eq!(row["last_error"], "vapi_report_missing", "{}", context());
                reports_missing += 1;
            }
            (status, last) => panic!("row {status} after a {last:?} attempt: {}", context()),
        }
        // What the scenario promises: its lines never hold a conversation; the others do once dialled.
        let unanswered =
            matches!(scenario, Scenario::Busy | Scenario::NoAnswer | Scenario::Failed | Scenario::Voicemail);
        if unanswered {
            assert_eq!(row["call_status"], "failed", "{}", context());
        } else if row["call_status"] == "failed" && endings.last() == Some(&Ending::Retryable) {
            assert!(
                sessions.iter().all(|s| s["status"] == "dial_failed"),
                "a reached human line failed: {}",
                context()
            );
        }
    }
    println!("{completed_by_conversation} rows completed, {reports_missing} failed for a report lost in the restart");
    let answered = ROWS * 3 / 7;
    assert!(
        completed_by_conversation * 10 >= answered * 8,
        "only {completed_by_conversation} of ~{answered} answered rows completed"
    );
}
