//! The providers' circuit breaker end to end (issue 16): a burst of Twilio 503s (the sandbox's fault injection)
//! opens it; while it is open the sandbox sees no create but each half-open probe's one; once the faults stop,
//! a probe closes it and the rest are dialled: every row completes with exactly one created call, and the tries
//! the breaker refused did not use up attempts.
//!
//! Then quota: Twilio 429s and VAPI's concurrency refusals are counted per day and never open the breaker, while
//! a VAPI assistant-request failure counts towards it.
//!
//! It sets the sandbox's faults for its duration, so it is the only test in its binary (cargo runs test
//! binaries one after another). The local policy's waits are scaled (`./dev`): 5 failures within 3 s open the
//! breaker for a 1.5 s cool-down.

use outcall_e2e::{fresh_phone, merge, sample_row, Scenario, Stack};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const ROWS: usize = 8;

async fn sandbox(stack: &Stack, path: &str, body: Option<Value>) -> Value {
    let url = format!("{}{path}", stack.sandbox_url);
    let request = match body {
        Some(body) => stack.http.post(url).json(&body),
        None => stack.http.get(url),
    };
    let response = request.send().await.expect("sandbox reachable");
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.unwrap_or(Value::Null)
}

/// Creates the sandbox has refused so far (every create while the faults are on; not the look-ups and price
/// fetches the same faults refuse).
async fn creates_refused(stack: &Stack) -> i64 {
    sandbox(stack, "/_sandbox/faults", None).await["refused"]["create"].as_i64().unwrap_or(0)
}

/// The breaker's state, the probes it has started (a cool-down over, or a lost probe replaced) since `since`, and
/// how long its cool-down still runs (0 when not open), read in one statement: one snapshot.
async fn breaker(stack: &Stack, since: i64) -> (String, i64, f64) {
    let db = stack.db().await;
    let row = db
        .query_one(
            "select b.state,
                    (select count(*) from public.breaker_transitions where id > $1 and to_state = 'half_open'),
                    greatest(extract(epoch from coalesce(b.reopen_at, now()) - clock_timestamp()), 0)::float8
               from outcall_private.provider_breaker as b",
            &[&since],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

async fn wait_for_state(stack: &Stack, since: i64, state: &str, within: Duration) -> (String, i64) {
    wait_until(stack, since, within, |(now, _, _)| now == state, state).await
}

/// Waits until the breaker is open with at least 400 ms of its cool-down left: no probe can start before the
/// sandbox's count that follows is read, so probes and creates are counted at the same moment.
async fn wait_for_quiet_open(stack: &Stack, since: i64, within: Duration) -> (String, i64) {
    wait_until(stack, since, within, |(now, _, left)| now == "open" && *left > 0.4, "open, quietly").await
}

async fn wait_until(
    stack: &Stack,
    since: i64,
    within: Duration,
    done: impl Fn(&(String, i64, f64)) -> bool,
    what: &str,
) -> (String, i64) {
    let deadline = Instant::now() + within;
    loop {
        let now = breaker(stack, since).await;
        if done(&now) {
            return (now.0, now.1);
        }
        assert!(Instant::now() < deadline, "the breaker never became {what}: {now:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_burst_of_503s_opens_the_breaker_and_its_probe_closes_it_with_nothing_lost_or_doubled() {
    let stack = Stack::from_env();
    let db = stack.db().await;
    // A fresh breaker: what earlier runs left does not decide this one.
    db.batch_execute(
        "update outcall_private.provider_breaker set state = 'closed', twilio_failures = 0, twilio_first_failure_at = null,
           vapi_failures = 0, vapi_first_failure_at = null, reopen_at = null, probe_session_id = null,
           probe_started_at = null",
    )
    .await
    .unwrap();
    let since: i64 =
        db.query_one("select coalesce(max(id), 0) from public.breaker_transitions", &[]).await.unwrap().get(0);

    sandbox(&stack, "/_sandbox/faults", Some(json!({"seed": 16, "twilio_503": 1.0}))).await;
    let outcome = tokio::spawn(run(stack.clone(), since)).await;
    sandbox(&stack, "/_sandbox/faults/reset", Some(json!({}))).await;
    outcome.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
}

async fn run(stack: Stack, since: i64) {
    let mut ids = Vec::new();
    for n in 0..ROWS {
        let row =
            merge(sample_row(&fresh_phone(Scenario::Human), "Rosa Linde"), json!({"exam_id": format!("BRK-{n}")}));
        ids.push(stack.insert_pending_call(row).await["id"].as_str().unwrap().to_owned());
    }

    // The burst opens it.
    let (_, _) = wait_for_state(&stack, since, "open", Duration::from_secs(20)).await;
    let (status, _, health) = stack.api(reqwest::Method::GET, "providers", &[], None).await;
    assert_eq!(status, 200, "{health}");
    let opening = health["transitions"].as_array().unwrap().iter().find(|t| t["reason"] == "failures").cloned();
    assert_eq!(
        opening.map(|t| (t["from"].clone(), t["to"].clone(), t["provider"].clone(), t["failures"].clone())),
        Some((json!("closed"), json!("open"), json!("twilio"), json!(5))),
        "the API shows the opening: {health}"
    );

    // While it is not closed, the only creates are the probes', one each. Counted between two moments the
    // breaker is open with time left in its cool-down (no probe in flight, none about to start), a while after the
    // burst's last tries were answered.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, probes_before) = wait_for_quiet_open(&stack, since, Duration::from_secs(5)).await;
    let refused_before = creates_refused(&stack).await;
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (_, probes_after) = wait_for_quiet_open(&stack, since, Duration::from_secs(5)).await;
    let refused_after = creates_refused(&stack).await;
    let seconds = window.elapsed().as_secs_f64();
    let probes = probes_after - probes_before;
    assert!(probes >= 2, "after each 1.5 s cool-down one probe: {probes} in {seconds:.1} s");
    assert!(probes as f64 <= seconds / 1.5 + 1.0, "no more than one probe per cool-down: {probes} in {seconds:.1} s");
    assert_eq!(refused_after - refused_before, probes, "the sandbox saw one create per probe and no other");
    let mut out = 0;
    for id in &ids {
        let row = stack.pending_call(id).await;
        match row["call_status"].as_str() {
            Some("pending" | "retry_pending") => {}
            Some("dispatching") => out += 1,
            _ => panic!("rows stay due: {row}"),
        }
    }
    assert!(out <= 1, "at most the probe's row is being dialled: {out}");

    // The faults stop: the next probe's call is created, which closes it, and everything is dialled.
    sandbox(&stack, "/_sandbox/faults/reset", Some(json!({}))).await;
    wait_for_state(&stack, since, "closed", Duration::from_secs(20)).await;
    let last: String = stack
        .db()
        .await
        .query_one("select reason from public.breaker_transitions order by id desc limit 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(last, "probe_succeeded");

    let mut given_back = 0;
    for id in &ids {
        let row = stack.wait_terminal(id).await;
        assert_eq!(row["call_status"], "completed", "{row}");
        let sessions = stack.sessions(id).await;
        let created: Vec<&Value> = sessions.iter().filter(|s| !s["call_sid"].is_null()).collect();
        assert_eq!(created.len(), 1, "one created call per row: {sessions:?}");
        assert_eq!(stack.sandbox_calls_of(id).await.len(), 1, "and the sandbox has exactly that one");
        // Attempts the breaker refused are given back: only failures recorded before it first opened count.
        let counted_failures = stack
            .scalar(&format!(
                "select count(*) from public.call_sessions where pending_call_id = '{id}' and status = 'dial_failed'
                    and ended_at < (select min(at) from public.breaker_transitions where id > {since} and to_state = 'open')"
            ))
            .await;
        let (attempts, offset, max) = (
            row["attempts"].as_i64().unwrap(),
            row["attempt_offset"].as_i64().unwrap(),
            row["max_attempts"].as_i64().unwrap(),
        );
        assert_eq!(attempts, sessions.len() as i64, "attempt numbers stay unique: one session each");
        assert_eq!(attempts - offset, 1 + counted_failures, "refused attempts not counted: {row}");
        assert_eq!(max - offset, 3, "the budget is unchanged: {row}");
        given_back += offset;
    }
    assert!(given_back > 0, "some attempts were given back");

    quota(&stack).await;
}

/// Today's count of a provider's refusals of one kind (`provider_errors_daily`).
async fn refusals(stack: &Stack, provider: &str, kind: &str) -> i64 {
    stack
        .scalar(&format!(
            "select coalesce((select count from public.provider_errors_daily where day = (now() at time zone 'UTC')::date
                and provider = '{provider}' and kind = '{kind}'), 0)::bigint"
        ))
        .await
}

async fn quota(stack: &Stack) {
    let since = stack.scalar("select coalesce(max(id), 0) from public.breaker_transitions").await;
    // Twilio's 429s: each try the sandbox refuses is counted once, as quota.
    let throttled_before = refusals(stack, "twilio", "throttled").await;
    sandbox(stack, "/_sandbox/faults", Some(json!({"seed": 17, "twilio_429": 1.0}))).await;
    let row = merge(sample_row(&fresh_phone(Scenario::Human), "Rosa Linde"), json!({"exam_id": "BRK-429"}));
    let id = stack.insert_pending_call(row).await["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    let injected = loop {
        let injected = sandbox(stack, "/_sandbox/faults", None).await["injected"]["twilio_429"].as_i64().unwrap_or(0);
        if injected >= 2 {
            break injected;
        }
        assert!(Instant::now() < deadline, "the sandbox never refused two creates");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let reset = sandbox(stack, "/_sandbox/faults/reset", Some(json!({}))).await;
    let injected = injected.max(reset["injected"]["twilio_429"].as_i64().unwrap_or(0));
    assert_eq!(stack.wait_terminal(&id).await["call_status"], "completed");
    assert_eq!(refusals(stack, "twilio", "throttled").await - throttled_before, injected, "every 429 counted once");

    // VAPI's end-of-call reasons: a concurrency refusal is quota, an assistant-request failure an outage.
    let vapi_throttled = refusals(stack, "vapi", "throttled").await;
    let vapi_unavailable = refusals(stack, "vapi", "unavailable").await;
    for reason in ["call.start.error-subscription-concurrency-limit-reached", "assistant-request-failed"] {
        let row = sample_row(&fresh_phone(Scenario::Human), "Rosa Linde");
        let (id, _session, sid) = stack.insert_dialled(&row).await;
        let call = json!({"id": format!("vapi-{}", uuid::Uuid::new_v4().simple()),
                          "assistantOverrides": {"variableValues": {"pendingcallid": id}}});
        let (status, body) =
            stack.vapi_message(json!({"type": "end-of-call-report", "endedReason": reason, "call": call})).await;
        assert_eq!((status, &body["changed"]), (200, &json!(true)), "{reason}: {body}");
        stack.hang_up(&sid).await;
    }
    assert_eq!(refusals(stack, "vapi", "throttled").await - vapi_throttled, 1, "VAPI's concurrency refusal counted");
    assert_eq!(refusals(stack, "vapi", "unavailable").await - vapi_unavailable, 1, "the assistant-request failure too");
    let (state, _, _) = breaker(stack, since).await;
    let vapi_failures = stack.scalar("select vapi_failures::bigint from outcall_private.provider_breaker").await;
    assert_eq!(
        (state.as_str(), vapi_failures),
        ("closed", 1),
        "one VAPI failure counts towards opening, quota does not"
    );
    let moved = stack.scalar(&format!("select count(*) from public.breaker_transitions where id > {since}")).await;
    assert_eq!(moved, 0, "429s and concurrency refusals never move the breaker");
}
