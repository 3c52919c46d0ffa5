//! Cost end to end: a batch's estimate before it exists (`POST /api/v1/batches/estimate` writes nothing, and
//! create makes the same), its running cost from VAPI's reports and the Twilio prices the minute sweep fetches,
//! and its spend cap in the claim: with a cap the sandbox's reported costs reach after a few calls, dialling
//! stops (the sandbox's Twilio sees no further create), the rest stays queued, the batch says why, and its
//! total cost is the sum of VAPI's and Twilio's figures in the database; a raised cap lets it go on.
//! (Alone in its binary: it narrows the global policy.)

use outcall_e2e::{fresh_phone, Scenario, Stack};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const TARGETS: usize = 10;
/// The batch's cap in USD: a sandbox call (VAPI at 0.0123/s for some 20 s, Twilio 0.014 per started
/// minute) costs about 0.26, so a few calls reach it.
const CAP: f64 = 0.6;

/// Puts the policy back if the test fails before it does (a narrowed policy would slow every later test).
struct RestoreOnFailure {
    stack: Stack,
    saved: String,
}

impl Drop for RestoreOnFailure {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let (stack, saved) = (self.stack.clone(), self.saved.clone());
        let restore = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(stack.restore_policy(&saved));
        });
        if restore.join().is_err() {
            eprintln!("the dispatch policy could not be restored: {}", self.saved);
        }
    }
}

fn number(value: &Value) -> f64 {
    value.as_f64().unwrap_or_else(|| panic!("a number: {value}"))
}

/// A numeric SQL expression as f64.
async fn figure(stack: &Stack, sql: &str) -> f64 {
    stack
        .db()
        .await
        .query_one(&format!("select ({sql})::float8"), &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// The sandbox's Twilio calls placed for the batch's sessions.
async fn creates_of(stack: &Stack, batch_id: &str) -> Vec<Value> {
    let sessions: Vec<Value> = stack
        .select(
            "call_sessions",
            &format!("select=id,pending_calls!inner(batch_id)&pending_calls.batch_id=eq.{batch_id}"),
        )
        .await
        .into_iter()
        .map(|s| s["id"].clone())
        .collect();
    stack.sandbox_calls().await.into_iter().filter(|c| sessions.contains(&c["session"])).collect()
}

/// Waits until nothing of the batch is live and its status says it is held; returns the status.
async fn wait_held(stack: &Stack, batch_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let batch = stack.batch(batch_id).await;
        let live = batch["counts"]["dialling"].as_u64().unwrap() + batch["counts"]["inProgress"].as_u64().unwrap();
        if live == 0 && !batch["held"].is_null() {
            return batch;
        }
        assert!(Instant::now() < deadline, "batch {batch_id} was not held in time: {batch}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_batch_is_estimated_costed_and_stopped_at_its_cap() {
    let stack = Stack::from_env();
    // One call at a time, so each claim sees the costs of the calls before it; an estimate of one call small
    // next to the calls' real cost, so the cap binds on what was spent.
    let saved = stack
        .set_policy(
            "max_concurrent_calls = 1, calls_per_second = 100, expected_call_minutes = 1, vapi_usd_per_minute = 0.01, \
             twilio_usd_per_minute = 0.005, stt_usd_per_minute = 0.005, daily_cost_cap = null",
        )
        .await;
    let _restore = RestoreOnFailure { stack: stack.clone(), saved: saved.clone() };
    let targets: Vec<Value> =
        (0..TARGETS).map(|i| json!({"phone": fresh_phone(Scenario::Human), "name": format!("Costly {i}")})).collect();
    let name = format!("cost-cap-{}", uuid::Uuid::new_v4());
    let request = json!({"name": name, "targets": targets, "costCap": CAP});

    // The estimate, before anything exists: a call whose phone system is not known yet learns it (the
    // sandbox's numbers repeat across runs, so some may be known).
    let (status, _, estimated) = stack.api(Method::POST, "batches/estimate", &[], Some(request.to_string())).await;
    assert_eq!(status, 200, "{estimated}");
    let estimate = &estimated["costEstimate"];
    let phones: Vec<&str> = targets.iter().map(|t| t["phone"].as_str().unwrap()).collect();
    let unknown = stack
        .scalar(&format!(
            "select count(*) from unnest('{{{}}}'::text[]) as t(phone) where not exists (select 1 from \
             public.call_classifications c where c.phone_number = t.phone and c.is_active \
             and c.classification_expires_at > now())",
            phones.join(",")
        ))
        .await;
    assert_eq!((estimate["calls"].clone(), estimate["learningCalls"].clone()), (json!(TARGETS), json!(unknown)));
    let usd = TARGETS as f64 * 0.015 + unknown as f64 * 0.005;
    assert!((number(&estimate["usd"]) - usd).abs() < 1e-9, "10 calls * 1 min * 0.015 + learning * 0.005: {estimate}");
    assert_eq!(estimate["usdPerMinute"], json!({"vapi": 0.01, "twilio": 0.005, "stt": 0.005}));
    assert_eq!(
        stack.scalar(&format!("select count(*) from public.batches where name = '{name}'")).await,
        0,
        "nothing written"
    );
    let (status, _, refused) = stack
        .api(Method::POST, "batches/estimate", &[], Some(json!({"targets": targets, "costCap": 0}).to_string()))
        .await;
    assert_eq!((status, refused["error"]["items"][0]["code"].as_str()), (400, Some("invalid_cost_cap")), "{refused}");

    let accepted = stack.create_batch(&request).await;
    assert_eq!(accepted["costEstimate"], *estimate, "create makes the estimate the estimate route made");
    let batch_id = accepted["batchId"].as_str().unwrap().to_owned();

    // Dialling stops at the cap.
    let held = wait_held(&stack, &batch_id).await;
    let one_call = figure(&stack, "outcall_private.call_cost_estimate(true)").await;
    assert_eq!(held["held"]["reason"], "batch_cost_cap", "{held}");
    assert_eq!(number(&held["held"]["cap"]), CAP);
    assert!(number(&held["held"]["spent"]) + one_call > CAP, "held only when one more call could pass the cap: {held}");
    assert_eq!(held["costCap"], json!(CAP));
    let dialled = creates_of(&stack, &batch_id).await;
    let n = dialled.len();
    assert!((1..TARGETS).contains(&n), "a few calls, not all {TARGETS}: {n}");
    assert_eq!(held["counts"]["completed"], json!(n), "every dialled call completed: {held}");
    assert_eq!(held["counts"]["queued"], json!(TARGETS - n), "the rest stays queued, not failed: {held}");

    // The sweep prices the ended calls; still nothing more is dialled.
    stack.sweep().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(creates_of(&stack, &batch_id).await.len(), n, "no create past the cap, sweep or not");
    let batch = stack.batch(&batch_id).await;
    assert_eq!(batch["held"]["reason"], "batch_cost_cap", "{batch}");
    stack.restore_policy(&saved).await;

    // The running cost: VAPI's reports plus Twilio's prices, as the database holds them and the sandbox billed.
    let in_batch = format!(
        "from public.call_sessions s join public.pending_calls c on c.id = s.pending_call_id where c.batch_id = '{batch_id}'"
    );
    let vapi = figure(&stack, &format!("select sum(s.cost) {in_batch}")).await;
    let twilio = figure(&stack, &format!("select sum(s.twilio_price) {in_batch}")).await;
    let priced = stack.scalar(&format!("select count(s.twilio_price) {in_batch}")).await;
    assert_eq!(priced, n as i64, "every answered call priced by the sweep");
    let billed: f64 = dialled
        .iter()
        .map(|c| c["duration"].as_u64().expect("an ended call's duration").div_ceil(60).max(1) as f64 * 0.014)
        .sum();
    assert!((twilio - billed).abs() < 1e-9, "Twilio's prices as the sandbox billed them: {twilio} vs {billed}");
    assert!(vapi > 0.0);
    let total = number(&batch["totalCost"]);
    assert!((total - (vapi + twilio)).abs() < 1e-9, "totalCost {total} = VAPI {vapi} + Twilio {twilio}");
    let by_batch =
        figure(&stack, &format!("select cost from public.analytics_cost_by_batch where batch_id = '{batch_id}'")).await;
    assert!((by_batch - total).abs() < 1e-9, "the dashboard's cost by batch agrees: {by_batch}");
    println!(
        "cap {CAP}: {n} of {TARGETS} calls dialled, spent {total:.4} (VAPI {vapi:.4} + Twilio {twilio:.4}), \
         one call's estimate {one_call}"
    );

    // Raising the cap lets the batch go on.
    stack
        .db()
        .await
        .execute("update public.batches set cost_cap = 100 where id = $1::text::uuid", &[&batch_id])
        .await
        .unwrap();
    stack.sweep().await;
    let ended = stack.wait_batch_ended(&batch_id).await;
    assert_eq!(ended["counts"]["completed"], json!(TARGETS), "{ended}");
    assert!(ended["held"].is_null());
    assert_eq!(creates_of(&stack, &batch_id).await.len(), TARGETS, "one create per target in all");
}
