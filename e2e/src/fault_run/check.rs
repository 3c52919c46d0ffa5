//! What a fault run must have done: as Twilio's side (the sandbox) saw it, and row by row in the database.

use super::{FaultRun, LimitsSeen, MAX_ATTEMPTS, RETRY_DELAYS_S};
use crate::{Scenario, Stack};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

/// The fault kinds every run must see at least once (dropped webhooks are checked against their rate).
const FAULT_KINDS: [&str; 9] = [
    "twilio_429",
    "twilio_503",
    "twilio_504",
    "twilio_timeout",
    "duplicate_status_callback",
    "reorder_status_callbacks",
    "duplicate_vapi_report",
    "vapi_report_first",
    "vapi_report_after",
];

/// Where a run must see its limits reached.
#[derive(Clone, Copy)]
pub enum Binding {
    /// Twilio's side (the sandbox) saw the live calls reach their limit.
    AsTwilioSaw,
    /// The claims found each limit full at some of the run's samples (live sessions at the limit, every send
    /// slot busy). With many Twilio faults (at 20 % each, four requests in five fail) an attempt's dial takes
    /// seconds, and an unclear answer leaves its session to the sweep: its live slot is held with no call at
    /// Twilio, and a try that was not processed spent a send slot on no call. Twilio's side then stays under
    /// the limits while they are all that holds the rows back; the database is where they show.
    InTheDatabase,
}

/// Nothing doubled, the limits held (and reached), every fault injected.
pub fn sandbox(stats: &Value, injected: &Value, limits: &LimitsSeen, run: &FaultRun) {
    assert_eq!(stats["sessions_dialled_twice"], json!([]), "an attempt was dialled twice");
    let peak = stats["peak_concurrency"].as_u64().unwrap();
    let max = run.max_concurrent_calls;
    assert!(peak <= max, "peak concurrency {peak} > {max}");
    let cps = stats["peak_calls_per_second"].as_u64().unwrap();
    let cps_limit = run.calls_per_second;
    assert!(cps <= cps_limit, "peak calls in one second {cps} > {cps_limit}");
    // The limits did bind: every slot was filled at some point (so "≤" above was a real test).
    match run.binding {
        Binding::AsTwilioSaw => assert_eq!(peak, max, "the run never filled the slots"),
        Binding::InTheDatabase => {
            assert!(limits.at_capacity > 0, "the live sessions never reached {max}");
            assert!(limits.send_slots_full > 0, "the send slots were never all busy");
        }
    }

    // Every fault really happened, at about its rate.
    for kind in FAULT_KINDS {
        assert!(injected[kind].as_u64().unwrap_or(0) > 0, "{kind} never injected: {injected}");
    }
    let dropped = injected["drop_webhook"].as_f64().unwrap();
    let rows = run.rows as f64;
    assert!(dropped / rows >= run.fault_rate * 2.0 / 3.0, "webhooks dropped: {dropped} of {rows}");
}

/// How the rows ended.
#[derive(Default)]
pub struct Outcomes {
    /// Rows by `call_status` and, for a failed row, its `last_error` (`failed: busy`).
    pub by_outcome: BTreeMap<String, usize>,
    pub attempts: usize,
    pub completed_by_conversation: usize,
    /// Rows failed because VAPI's report was lost (sent while the Worker or the database was down).
    pub reports_missing: usize,
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

/// Every row of the run terminal, one session per attempt, retried only as the schedule says, and ended as its
/// scenario promises.
pub async fn every_row(stack: &Stack, run_id: &str, scenario_of: &HashMap<String, Scenario>, count: usize) -> Outcomes {
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
    assert_eq!(rows.len(), count);
    let mut outcomes = Outcomes::default();
    for row in rows {
        let row: Value = serde_json::from_str(row.get::<_, &str>(0)).unwrap();
        check_row(&row, scenario_of[row["id"].as_str().unwrap()], &mut outcomes);
    }
    println!(
        "{} rows completed, {} failed for a report lost in a restart",
        outcomes.completed_by_conversation, outcomes.reports_missing
    );
    let answered = count * 3 / 7;
    assert!(
        outcomes.completed_by_conversation * 10 >= answered * 8,
        "only {} of ~{answered} answered rows completed",
        outcomes.completed_by_conversation
    );
    outcomes
}

fn check_row(row: &Value, scenario: Scenario, outcomes: &mut Outcomes) {
    let id = row["id"].as_str().unwrap();
    let sessions = row["sessions"].as_array().unwrap();
    let attempts = row["attempts"].as_u64().unwrap() as usize;
    let context = || format!("{} row {id}: {row}", scenario.name());
    let status = row["call_status"].as_str().unwrap_or_default();
    assert!(matches!(status, "completed" | "failed"), "not terminal: {}", context());
    assert_eq!(sessions.len(), attempts, "one session per attempt: {}", context());
    for (n, session) in sessions.iter().enumerate() {
        assert_eq!(session["attempt"].as_u64(), Some(n as u64 + 1), "{}", context());
    }
    let endings: Vec<Ending> =
        sessions.iter().enumerate().map(|(n, s)| ending(s, row, n + 1 == sessions.len())).collect();
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
    match (status, endings.last().unwrap()) {
        ("completed", Ending::Conversation) => outcomes.completed_by_conversation += 1,
        ("failed", Ending::Retryable) => assert_eq!(attempts, MAX_ATTEMPTS, "failed early: {}", context()),
        ("failed", Ending::ReportMissing) => {
            assert_eq!(row["last_error"], "vapi_report_missing", "{}", context());
            outcomes.reports_missing += 1;
        }
        (status, last) => panic!("row {status} after a {last:?} attempt: {}", context()),
    }
    // What the scenario promises: its lines never hold a conversation; the others do once dialled.
    let unanswered = matches!(scenario, Scenario::Busy | Scenario::NoAnswer | Scenario::Failed | Scenario::Voicemail);
    if unanswered {
        assert_eq!(status, "failed", "{}", context());
    } else if status == "failed" && endings.last() == Some(&Ending::Retryable) {
        assert!(sessions.iter().all(|s| s["status"] == "dial_failed"), "a reached human line failed: {}", context());
    }
    let outcome = match row["last_error"].as_str() {
        Some(error) if status == "failed" => format!("failed: {error}"),
        _ => status.to_owned(),
    };
    *outcomes.by_outcome.entry(outcome).or_default() += 1;
    outcomes.attempts += attempts;
}
