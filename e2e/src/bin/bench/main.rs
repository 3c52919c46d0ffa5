//! `./dev bench`: measured on the running local stack.
//! - the latency of an assistant-request answered by the Worker (wasm in workerd, via wrangler dev);
//! - PostgREST round trips per dispatched call and per context request (counted at the gateway);
//! - slot refill latency: one call's end → the next Twilio create request, with a backlog of due rows;
//! - dispatches per second with the limits lifted;
//! - accepting a 10,000-target batch in one request: latency, and the Worker's peak memory doing it;
//! - side by side with a plain JavaScript Worker doing the same (bench/baseline, `BASELINE_URL`): `/health` and
//!   the context request, sequentially and 8 at a time, with the ratios;
//! - learning phone systems: the listener's latency per media frame, audio forwarded over audio received,
//!   the call's end to its classification stored, and on the replay, the person answering to VAPI connected;
//! - batch SMS (`sms.rs`): a template filled for 10,000 targets, accepting 10,000 messages, messages per second;
//! - smart scheduling (`scheduling.rs`): the answer rate on synthetic clinics with and without it, and its cost to a
//!   10,000-target batch.
//!
//! `bench faults` (`./dev bench faults`) runs the 10,000-row fault run instead (`faults.rs`).

mod cpu;
mod faults;
mod scheduling;
mod sms;

use outcall_e2e::{fresh_phone, merge, sample_row, Scenario, Stack};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const LATENCY_SAMPLES: usize = 300;
const DISPATCHES: usize = 20;

#[tokio::main]
async fn main() {
    let stack = Stack::from_env();
    match std::env::args().nth(1).as_deref() {
        None => everything(&stack).await,
        Some("side-by-side") => {
            let (message, sid) = live_context_request(&stack).await;
            side_by_side(&stack, &message).await;
            stack.hang_up(&sid).await;
        }
        // For `./dev bench profile`: the body of a live call's assistant-request (the call stays live).
        Some("context-request") => println!("{}", json!({"message": live_context_request(&stack).await.0})),
        Some("faults") => faults::run(&stack).await,
        Some("sms") => sms::run(&stack).await,
        Some("scheduling") => scheduling::run(&stack).await,
        Some("dispatch") => {
            dispatch_rate(&stack, Scenario::Failed).await;
            dispatch_rate(&stack, Scenario::Human).await;
        }
        Some(other) => {
            panic!("bench: unknown part {other:?} (none for everything, side-by-side, dispatch, sms, scheduling, faults or context-request)")
        }
    }
}

/// An assistant-request for a live call (context is served only to the VAPI call of a dialled, unfinished
/// attempt), and the call's sid to hang it up with.
async fn live_context_request(stack: &Stack) -> (Value, String) {
    let (context_id, _, context_sid) =
        stack.insert_dialled(&sample_row(&fresh_phone(Scenario::Human), "Bench Person")).await;
    let message = json!({"type": "assistant-request",
        "call": {"id": "bench", "assistantOverrides": {"variableValues": {"pendingcallid": context_id}}}});
    (message, context_sid)
}

async fn everything(stack: &Stack) {
    let stack = stack.clone();
    // First, while the Worker is fresh: its peak memory then belongs to the batches.
    large_batches(&stack).await;
    // The first two parts measure one request at a time: no limit may get in the way.
    let saved = stack.set_policy("max_concurrent_calls = 100000, calls_per_second = 100000").await;
    // Rows parked (no webhook, not due), so only the benchmark decides what the Worker is asked.
    let mut ids = Vec::new();
    for i in 0..DISPATCHES {
        ids.push(stack.insert_parked(&sample_row(&fresh_phone(Scenario::Human), &format!("Bench Person {i}"))).await);
    }

    // 1. assistant-request latency (warm-up first: the first request instantiates the wasm module).
    let (message, context_sid) = live_context_request(&stack).await;
    for _ in 0..20 {
        stack.vapi_message(message.clone()).await;
    }
    reset_gateway(&stack).await;
    let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
    for _ in 0..LATENCY_SAMPLES {
        let started = Instant::now();
        let (status, body) = stack.vapi_message(message.clone()).await;
        samples.push(started.elapsed());
        assert_eq!(status, 200);
        assert!(body["assistantId"].is_string(), "{body}");
    }
    let per_context = gateway_count(&stack, "/rpc/call_context").await as f64 / LATENCY_SAMPLES as f64;
    let total_per_context = gateway_total(&stack).await as f64 / LATENCY_SAMPLES as f64;
    side_by_side(&stack, &message).await;
    stack.hang_up(&context_sid).await;
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p).ceil() as usize).min(samples.len()) - 1];
    println!("assistant-request, answered by the Worker (wrangler dev → workerd → PostgREST → Postgres), {LATENCY_SAMPLES} sequential requests:");
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    println!(
        "  p50 {}  p90 {}  p99 {}  max {}",
        ms(pct(0.50)),
        ms(pct(0.90)),
        ms(pct(0.99)),
        ms(samples[samples.len() - 1])
    );
    println!(
        "  PostgREST round trips per context request: {per_context:.2} (call_context), {total_per_context:.2} in all"
    );

    // 2. round trips per dispatched call: the webhook route alone (claim, Twilio, record result).
    reset_gateway(&stack).await;
    let secret = stack.webhook_secret.clone();
    let started = Instant::now();
    let db = stack.db().await;
    // A row the cron's sweep (every few seconds here) claims between being made due and the webhook is not
    // the webhook's: counted apart, its refused claim and the sweep's record of its dial taken out.
    let mut taken_first = 0;
    for id in &ids {
        // Due now: the claim takes it; no other row is due, so no drain follows (more_due is false).
        db.execute("update pending_calls set next_attempt_at = now() where id = $1::text::uuid", &[id]).await.unwrap();
        let payload = json!({"type": "INSERT", "table": "pending_calls", "schema": "public", "record": {"id": id}});
        let (status, body) =
            stack.post_worker("/hooks/pending-calls", &[("X-Webhook-Secret", &secret)], payload.to_string()).await;
        assert_eq!(status, 200, "{body}");
        match (&body["dispatched"], body["reason"].as_str()) {
            (Value::Bool(true), _) => {}
            (_, Some("not_claimable")) => taken_first += 1,
            _ => panic!("not dispatched: {body}"),
        }
    }
    let elapsed = started.elapsed();
    let dispatched = DISPATCHES - taken_first;
    let claims = gateway_count(&stack, "/rpc/claim_pending_call").await - taken_first as u64;
    // (the sweep's dials of the rows it took record their own results)
    let records = gateway_count(&stack, "/rpc/record_dial_result").await - taken_first as u64;
    println!("dispatch via the webhook route, {dispatched} rows ({taken_first} taken by the sweep first):");
    println!(
        "  PostgREST round trips per dispatched call: {:.2} (claim_pending_call {:.2} + record_dial_result {:.2})",
        (claims + records) as f64 / dispatched as f64,
        claims as f64 / dispatched as f64,
        records as f64 / dispatched as f64
    );
    let per_call = elapsed.as_secs_f64() * 1000.0 / DISPATCHES as f64;
    println!("  webhook → claim → Twilio request → CallSid recorded: {per_call:.1} ms per call (sequential)");
    for id in &ids {
        stack.wait_terminal(id).await;
    }
    stack.restore_policy(&saved).await;

    slot_refill(&stack).await;
    // Twice: calls that fail at once (little for the stand-ins to play on the same two cores), then
    // answered calls whose conversations play while the rest are being dispatched.
    dispatch_rate(&stack, Scenario::Failed).await;
    dispatch_rate(&stack, Scenario::Human).await;
    learning(&stack).await;
    sms::run(&stack).await;
    scheduling::run(&stack).await;
}

const SIDE_BY_SIDE_REQUESTS: usize = 300;
const CONCURRENCY: usize = 8;
/// The side-by-side requests are sent in rounds, the Workers taking turns, so a slow spell of this shared
/// machine falls on all of them alike.
const SIDE_BY_SIDE_ROUNDS: usize = 6;

/// One route's figures on one Worker: p50 sequentially, then p50 and requests per second 8 at a time.
#[derive(Default)]
struct Figures {
    sequential: Vec<Duration>,
    concurrent: Vec<Duration>,
    concurrent_time: Duration,
}

impl Figures {
    fn p50(&self) -> f64 {
        median_ms(&self.sequential)
    }
    fn p50_concurrent(&self) -> f64 {
        median_ms(&self.concurrent)
    }
    fn per_second(&self) -> f64 {
        self.concurrent.len() as f64 / self.concurrent_time.as_secs_f64()
    }
}

/// `/health` and the context request (`message`, an assistant-request for a live call) on outcall, on a plain
/// Rust Worker doing the same (bench/floor, `FLOOR_URL`) and on a JavaScript Worker doing the same
/// (bench/baseline, `BASELINE_URL`), with the same driver, then the ratios over the JavaScript baseline.
async fn side_by_side(stack: &Stack, message: &Value) {
    let (Ok(baseline), Ok(floor)) = (std::env::var("BASELINE_URL"), std::env::var("FLOOR_URL")) else {
        println!("side by side: BASELINE_URL or FLOOR_URL unset (./dev bench starts both), skipped");
        return;
    };
    let body = json!({ "message": message }).to_string();
    let workers = [("outcall", stack.worker_url.clone()), ("Rust floor", floor), ("JS baseline", baseline)];
    println!(
        "side by side, same wrangler dev, gateway, PostgREST: {SIDE_BY_SIDE_REQUESTS} requests sequentially, then \
         {SIDE_BY_SIDE_REQUESTS} {CONCURRENCY} at a time, in {SIDE_BY_SIDE_ROUNDS} rounds taking turns"
    );
    println!(
        "  {:<16} {:<12} {:>8} {:>8} {:>8} {:>9} {:>11} {:>11}",
        "", "", "p50", "p50 @8", "req/s @8", "latency", "latency @8", "throughput"
    );
    let http = reqwest::Client::new();
    for route in ["/health", "/vapi/events"] {
        let request = |base: &str| {
            let url = format!("{base}{route}");
            if route == "/health" {
                http.get(url)
            } else {
                http.post(url).header("X-Vapi-Secret", &stack.vapi_secret).body(body.clone())
            }
        };
        let mut figures: Vec<Figures> = workers.iter().map(|_| Figures::default()).collect();
        for (_, base) in &workers {
            for _ in 0..20 {
                timed(request(base)).await; // warm-up
            }
        }
        for _ in 0..SIDE_BY_SIDE_ROUNDS {
            for ((_, base), figures) in workers.iter().zip(&mut figures) {
                let per_round = SIDE_BY_SIDE_REQUESTS / SIDE_BY_SIDE_ROUNDS;
                for _ in 0..per_round {
                    figures.sequential.push(timed(request(base)).await);
                }
                let started = Instant::now();
                let mut tasks = Vec::new();
                for worker in 0..CONCURRENCY {
                    let requests: Vec<_> = (worker..per_round).step_by(CONCURRENCY).map(|_| request(base)).collect();
                    tasks.push(tokio::spawn(async move {
                        let mut times = Vec::new();
                        for request in requests {
                            times.push(timed(request).await);
                        }
                        times
                    }));
                }
                for task in tasks {
                    figures.concurrent.extend(task.await.unwrap());
                }
                figures.concurrent_time += started.elapsed();
            }
        }
        let baseline = figures.last().expect("the baseline is measured");
        for ((name, _), ours) in workers.iter().zip(&figures) {
            let label = if *name == "outcall" {
                if route == "/health" {
                    "/health"
                } else {
                    "context request"
                }
            } else {
                ""
            };
            println!(
                "  {:<16} {:<12} {:>5.1} ms {:>5.1} ms {:>6.0}/s {:>8.2}× {:>10.2}× {:>10.2}×",
                label,
                name,
                ours.p50(),
                ours.p50_concurrent(),
                ours.per_second(),
                ours.p50() / baseline.p50(),
                ours.p50_concurrent() / baseline.p50_concurrent(),
                ours.per_second() / baseline.per_second()
            );
        }
    }
    println!("  (ratios over the JS baseline: latency below 1 and throughput above 1 mean faster than JavaScript)");
}

/// One request's time to its whole answer, which must be a 200.
async fn timed(request: reqwest::RequestBuilder) -> Duration {
    let started = Instant::now();
    let response = request.send().await.expect("the Worker answers");
    assert_eq!(response.status(), 200, "{}", response.url());
    let _ = response.bytes().await;
    started.elapsed()
}

fn median_ms(samples: &[Duration]) -> f64 {
    let mut samples = samples.to_vec();
    samples.sort_unstable();
    samples[samples.len() / 2].as_secs_f64() * 1000.0
}

const LEARNED_CLINICS: usize = 5;

/// Each of a few unknown clinics (a menu, then a person) called twice: a learning call, then a replay.
async fn learning(stack: &Stack) {
    let (mut frame_ms, mut stored_ms, mut connect_ms, mut ratios) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..LEARNED_CLINICS {
        let phone = fresh_phone(Scenario::IvrThenHuman);
        let row = merge(sample_row(&phone, "Bench Person"), json!({"exam_id": format!("learn-{i}")}));
        let id = stack.insert_pending_call(row).await["id"].as_str().unwrap().to_owned();
        let session = stack.sessions_eventually(&id).await;
        // The call's end (the sandbox decided its final status) and the run's record, as this loop sees them.
        let (mut ended, mut stored) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(120);
        while stored.is_none() {
            assert!(Instant::now() < deadline, "learning call {i} never recorded");
            if ended.is_none() && stack.sandbox_calls_of(&id).await.pop().is_some_and(|c| !c["final_status"].is_null())
            {
                ended = Some(Instant::now());
            }
            let runs =
                stack.select("classification_runs", &format!("session_id=eq.{session}&status=eq.finished")).await;
            if ended.is_some() && !runs.is_empty() {
                stored = Some(Instant::now());
                let run = &runs[0];
                let call = stack.sandbox_call_for(&id).await; // done: its stream's counts are final
                let stream = &call["streams"][0];
                let stt = stack.stt_connections(run["id"].as_str().unwrap()).await.pop().expect("the run's STT");
                ratios.push(stt["audio_bytes"].as_f64().unwrap() / stream["bytes_sent"]["inbound"].as_f64().unwrap());
                let url = format!(
                    "{}/_sandbox/stt/{}/latency?stream={}",
                    stack.sandbox_url,
                    stt["id"].as_str().unwrap(),
                    stream["stream_sid"].as_str().unwrap()
                );
                let latency: Value = stack.http.get(url).send().await.unwrap().json().await.unwrap();
                frame_ms
                    .extend(latency["latency_us"].as_array().unwrap().iter().map(|us| us.as_f64().unwrap() / 1000.0));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stored_ms.push((stored.unwrap() - ended.unwrap()).as_secs_f64() * 1000.0);
        stack.wait_terminal(&id).await;

        let replay = merge(sample_row(&phone, "Bench Person"), json!({"exam_id": format!("replay-{i}")}));
        let replay_id = stack.insert_pending_call(replay).await["id"].as_str().unwrap().to_owned();
        stack.wait_terminal(&replay_id).await;
        let clinic = stack.sandbox_call_for(&replay_id).await["clinic"].clone();
        assert_eq!(clinic["vapi_connected_kind"], "person", "the replay reached the person: {clinic}");
        connect_ms.push(clinic["vapi_connected_at_ms"].as_f64().unwrap() - clinic["person_at_ms"].as_f64().unwrap());
    }
    let pct = |values: &mut Vec<f64>, p: f64| {
        values.sort_by(f64::total_cmp);
        values[((values.len() as f64 * p).ceil() as usize).clamp(1, values.len()) - 1]
    };
    println!("learning, {LEARNED_CLINICS} unknown clinics (menu, then a person), each learned and then replayed:");
    println!(
        "  listener latency per media frame (Twilio's stand-in sends → STT's stand-in receives), {} frames: p50 {:.2} ms  p99 {:.2} ms",
        frame_ms.len(),
        pct(&mut frame_ms, 0.50),
        pct(&mut frame_ms, 0.99)
    );
    println!(
        "  audio forwarded to STT / inbound audio received: {}",
        ratios.iter().map(|r| format!("{r:.3}")).collect::<Vec<_>>().join(", ")
    );
    println!(
        "  call ended → classification stored: p50 {:.0} ms  max {:.0} ms",
        pct(&mut stored_ms, 0.50),
        pct(&mut stored_ms, 1.0)
    );
    println!(
        "  replay: person answered → VAPI connected (nominal): {} ms",
        connect_ms.iter().map(|ms| format!("{ms:.0}")).collect::<Vec<_>>().join(", ")
    );
}

const REFILL_ROWS: usize = 40;
const REFILL_SLOTS: u64 = 2;

/// With two slots and a backlog of due rows, how long a slot stays empty: from the moment a call ends
/// (the sandbox decides its final status and sends the callback) to the next create request it receives.
async fn slot_refill(stack: &Stack) {
    let saved = stack.set_policy(&format!("max_concurrent_calls = {REFILL_SLOTS}, calls_per_second = 1000")).await;
    // Only this part's calls in the sandbox's record.
    stack.http.post(format!("{}/_sandbox/reset", stack.sandbox_url)).send().await.unwrap();
    let mut ids = Vec::new();
    let rows: Vec<Value> =
        (0..REFILL_ROWS).map(|i| sample_row(&fresh_phone(Scenario::Human), &format!("Refill Person {i}"))).collect();
    let response = stack.insert("pending_calls", Value::Array(rows)).await;
    assert_eq!(response.status(), 201);
    for row in response.json::<Vec<Value>>().await.unwrap() {
        ids.push(row["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        stack.wait_terminal(id).await;
    }
    stack.restore_policy(&saved).await;

    let calls = stack.sandbox_calls().await;
    let mut created: Vec<u64> = calls.iter().filter_map(|c| c["created_ms"].as_u64()).collect();
    created.sort();
    let mut ended: Vec<u64> = calls.iter().filter_map(|c| c["ended_ms"].as_u64()).collect();
    ended.sort();
    // Each end is refilled by the first create after it; the last REFILL_SLOTS ends had nothing left to refill.
    let mut gaps: Vec<u64> = ended
        .iter()
        .take(ended.len().saturating_sub(REFILL_SLOTS as usize))
        .filter_map(|end| created.iter().find(|c| *c >= end).map(|c| c - end))
        .collect();
    gaps.sort();
    let pct = |p: f64| gaps[((gaps.len() as f64 * p).ceil() as usize).clamp(1, gaps.len()) - 1];
    println!("slot refill, {REFILL_ROWS} due rows through {REFILL_SLOTS} slots (call ends → next Twilio create, {} refills):", gaps.len());
    println!("  p50 {} ms  p90 {} ms  p99 {} ms  max {} ms", pct(0.5), pct(0.9), pct(0.99), gaps[gaps.len() - 1]);
}

const RATE_ROWS: usize = 300;
const RATE_SENDERS: usize = 16;

/// With the limits lifted, how many rows per second get claimed and dialled: RATE_ROWS rows become due
/// at once and their webhooks arrive RATE_SENDERS at a time (a burst as pg_net delivers one); drains
/// started by those dispatches dial alongside. Measured in the database, from the first claim to the
/// last CallSid recorded.
/// Dispatches per second with the limits lifted (also printed).
async fn dispatch_rate(stack: &Stack, scenario: Scenario) -> f64 {
    let saved = stack.set_policy("max_concurrent_calls = 100000, calls_per_second = 100000").await;
    let mut ids = Vec::new();
    for i in 0..RATE_ROWS {
        let row = merge(sample_row(&fresh_phone(scenario), &format!("Rate Person {i}")), json!({"max_attempts": 1}));
        ids.push(stack.insert_parked(&row).await);
    }
    let db = stack.db().await;
    db.execute("update pending_calls set next_attempt_at = now() where id = any($1::text[]::uuid[])", &[&ids])
        .await
        .unwrap();
    let secret = stack.webhook_secret.clone();
    let cpu = cpu::CpuMeter::start();
    let queue = std::sync::Arc::new(std::sync::Mutex::new(ids.clone()));
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..RATE_SENDERS {
        let (stack, queue, secret) = (stack.clone(), queue.clone(), secret.clone());
        senders.spawn(async move {
            loop {
                let next = queue.lock().unwrap().pop();
                let Some(id) = next else { break };
                let payload =
                    json!({"type": "INSERT", "table": "pending_calls", "schema": "public", "record": {"id": id}});
                let (status, body) = stack
                    .post_worker("/hooks/pending-calls", &[("X-Webhook-Secret", &secret)], payload.to_string())
                    .await;
                assert_eq!(status, 200, "{body}");
            }
        });
    }
    while let Some(done) = senders.join_next().await {
        done.unwrap();
    }
    for id in &ids {
        stack.wait_terminal(id).await;
    }
    let cpu = cpu.stop().by_part;
    stack.restore_policy(&saved).await;
    let row = db
        .query_one(
            "select count(*) filter (where dialed_at is not null),
                    extract(epoch from max(dialed_at) - min(created_at))::float8
               from call_sessions where pending_call_id = any($1::text[]::uuid[])",
            &[&ids],
        )
        .await
        .unwrap();
    let (dialled, seconds): (i64, f64) = (row.get(0), row.get(1));
    println!(
        "dispatch rate, limits lifted ({RATE_ROWS} {} rows due at once, webhooks {RATE_SENDERS} at a time):",
        scenario.name()
    );
    println!(
        "  {dialled} dialled in {seconds:.2} s (first claim → last CallSid): {:.0} dispatches per second",
        dialled as f64 / seconds
    );
    let per_call: Vec<String> =
        cpu.iter().map(|(name, seconds)| format!("{name} {:.1} ms", seconds * 1000.0 / dialled as f64)).collect();
    let total: f64 = cpu.iter().map(|(_, seconds)| seconds * 1000.0 / dialled as f64).sum();
    println!("  CPU per dispatched call (the whole run, of 2 cores): {}; {total:.1} ms in all", per_call.join(", "));
    dialled as f64 / seconds
}

async fn gateway_stats(stack: &Stack) -> Value {
    stack.http.get(format!("{}/_sandbox/gateway", stack.sandbox_url)).send().await.unwrap().json().await.unwrap()
}

async fn gateway_count(stack: &Stack, path: &str) -> u64 {
    gateway_stats(stack).await["requests"][path].as_u64().unwrap_or(0)
}

async fn gateway_total(stack: &Stack) -> u64 {
    gateway_stats(stack).await["requests"].as_object().map(|m| m.values().filter_map(Value::as_u64).sum()).unwrap_or(0)
}

async fn reset_gateway(stack: &Stack) {
    stack.http.post(format!("{}/_sandbox/gateway/reset", stack.sandbox_url)).send().await.unwrap();
}

const BATCH_TARGETS: usize = 10_000;
const BATCH_RUNS: usize = 5;

/// `POST /api/v1/batches` with 10,000 targets: the time to the 202 (validation, one `create_batch`
/// round trip that writes 10,000 rows, the answer), and the memory the Worker needed for it, measured
/// from outside: workerd's resident high-water mark. The rows are scheduled a year ahead and cancelled after.
async fn large_batches(stack: &Stack) {
    let not_before = (chrono::Utc::now() + chrono::Duration::days(365)).to_rfc3339();
    let batch = |label: &str, size: usize| {
        let targets: Vec<Value> = (0..size)
            .map(|i| {
                json!({"phone": format!("+1555000{}{:03}", 1 + i % 3, i % 1000), "name": format!("{label} {i}"),
                            "clinic_timezone": "America/Chicago", "variables": {"route": i % 40, "depot": "North"},
                            "appointment_time": "2026-12-01T09:30:00-06:00"})
            })
            .collect();
        json!({"name": label, "targets": targets, "schedule": {"notBefore": not_before}}).to_string()
    };
    let warm_up = batch("warm-up", 10);
    let (status, _, body) = stack.api(reqwest::Method::POST, "batches", &[], Some(warm_up)).await;
    assert_eq!(status, 202, "{body}");
    cancel_batch(stack, &body).await;
    let rss_before = workerd_memory_kib("VmRSS");

    let mut samples = Vec::with_capacity(BATCH_RUNS);
    let mut body_bytes = 0;
    for run in 0..BATCH_RUNS {
        let request = batch(&format!("bench batch {run} {}", uuid::Uuid::new_v4().simple()), BATCH_TARGETS);
        body_bytes = request.len();
        let started = Instant::now();
        let (status, _, body) = stack.api(reqwest::Method::POST, "batches", &[], Some(request)).await;
        samples.push(started.elapsed());
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["accepted"], BATCH_TARGETS as u64);
        cancel_batch(stack, &body).await;
    }
    samples.sort();
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
    println!(
        "accepting a batch of {BATCH_TARGETS} targets in one request ({:.1} MB of JSON), {BATCH_RUNS} runs:",
        body_bytes as f64 / 1e6
    );
    println!(
        "  202 after: min {}  median {}  max {}",
        ms(samples[0]),
        ms(samples[BATCH_RUNS / 2]),
        ms(samples[BATCH_RUNS - 1])
    );
    println!(
        "  workerd resident memory: {:.0} MiB before, high-water mark {:.0} MiB after (the Worker's isolate and wrangler's proxy)",
        rss_before as f64 / 1024.0,
        workerd_memory_kib("VmHWM") as f64 / 1024.0
    );
}

async fn cancel_batch(stack: &Stack, accepted: &Value) {
    let path = format!("batches/{}/cancel", accepted["batchId"].as_str().expect("a batch id"));
    let (status, _, body) = stack.api(reqwest::Method::POST, &path, &[], None).await;
    assert_eq!(status, 200, "{body}");
}

/// The largest `field` (VmRSS, VmHWM) among this machine's workerd processes, in KiB.
fn workerd_memory_kib(field: &str) -> u64 {
    // Only the workerd processes of this stack's Worker (`./dev` passes the pid of its wrangler): other stacks
    // or the baseline may run beside it.
    let wrangler = std::env::var("OUTCALL_WORKER_PID").ok().and_then(|p| p.parse::<u32>().ok());
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
    entries
        .filter_map(Result::ok)
        .filter(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "workerd"))
        .filter(|e| {
            let pid = e.file_name().to_string_lossy().parse::<u32>().unwrap_or(0);
            wrangler.is_none_or(|ancestor| descends_from(pid, ancestor))
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("status")).ok())
        .filter_map(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{field}:"))?.trim().strip_suffix(" kB")?.trim().parse().ok())
        })
        .max()
        .unwrap_or(0)
}

/// Whether `ancestor` is among the parents of `pid` (`/proc/<pid>/status`'s `PPid`, up to init).
fn descends_from(mut pid: u32, ancestor: u32) -> bool {
    while pid > 1 {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return false };
        pid = status.lines().find_map(|l| l.strip_prefix("PPid:")?.trim().parse().ok()).unwrap_or(0);
        if pid == ancestor {
            return true;
        }
    }
    false
}
