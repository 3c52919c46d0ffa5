//! Batch SMS (`./dev bench sms`, and part of `./dev bench`), each figure beside a baseline measured in the same run:
//! - filling a template for 10,000 targets: `sms::request::parse_request` with a `bodyTemplate`, against the same
//!   request with every body already written (what the template itself costs);
//! - accepting 10,000 messages in one request, against a call batch of 10,000 targets, in alternation;
//! - messages per second with the limits lifted (no pace for the sender, the stand-in's queue unbounded): a
//!   1,000-message batch from its first create at the stand-in to its last, against calls dispatched per second
//!   (calls that fail at once: like a message, a claim, a create, a record and two status callbacks), and
//!   beside the same 1,000 creates posted straight to the stand-in (what it takes alone), 6 at a time (a
//!   Worker's limit of simultaneous connections).

use crate::cpu;
use outcall_core::sms::request::parse_request;
use outcall_core::sms::template::Template;
use outcall_e2e::sms::{mobile, sender};
use outcall_e2e::Stack;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const TEMPLATE_TARGETS: usize = 10_000;
const TEMPLATE_RUNS: usize = 7;
const ACCEPT_RUNS: usize = 3;
const RATE_MESSAGES: usize = 1_000;
const DIRECT_CONCURRENCY: usize = 6;

pub async fn run(stack: &Stack) {
    template_cost();
    accepting(stack).await;
    rate(stack).await;
}

fn targets(count: usize, with_body: bool) -> Vec<Value> {
    (0..count)
        .map(|i| {
            let (name, when) = (format!("Driver {i}"), format!("{}:{:02}", 6 + i % 12, i % 60));
            let mut target = json!({"phone": format!("+1555{:07}", 2_000_000 + i), "name": name,
                                    "variables": {"when": when, "depot": "North", "route": i % 40}});
            if with_body {
                target["body"] = json!(format!("Hi {name}, your shift starts at {when} at North, route {}.", i % 40));
            }
            target
        })
        .collect()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn template_cost() {
    let templated = json!({"from": "+15550100000", "targets": targets(TEMPLATE_TARGETS, false),
        "bodyTemplate": "Hi {{name}}, your shift starts at {{when}} at {{depot}}, route {{route}}."})
    .to_string();
    let written = json!({"from": "+15550100000", "targets": targets(TEMPLATE_TARGETS, true)}).to_string();
    let time = |body: &str| {
        let started = Instant::now();
        let batch = parse_request(body, TEMPLATE_TARGETS).expect("a valid request");
        assert_eq!(batch.messages.len(), TEMPLATE_TARGETS);
        started.elapsed()
    };
    let (mut with_template, mut with_bodies) = (Vec::new(), Vec::new());
    for _ in 0..TEMPLATE_RUNS {
        with_template.push(time(&templated));
        with_bodies.push(time(&written));
    }
    let (t, b) = (median(with_template), median(with_bodies));
    // Filling alone: the template parsed once, then 10,000 targets' values.
    let template =
        Template::parse("Hi {{name}}, your shift starts at {{when}} at {{depot}}, route {{route}}.").unwrap();
    let values: Vec<serde_json::Map<String, Value>> = targets(TEMPLATE_TARGETS, false)
        .into_iter()
        .map(|t| {
            let mut v = t["variables"].as_object().unwrap().clone();
            v.insert("name".into(), t["name"].clone());
            v
        })
        .collect();
    let fill = median(
        (0..TEMPLATE_RUNS)
            .map(|_| {
                let started = Instant::now();
                let bytes: usize = values.iter().map(|v| template.render(v).unwrap().len()).sum();
                assert!(bytes > 0);
                started.elapsed()
            })
            .collect(),
    );
    println!("SMS template for {TEMPLATE_TARGETS} targets (parse, validate, fill, count segments; native, median of {TEMPLATE_RUNS}):");
    println!(
        "  the request with bodyTemplate {}  with every body written out instead {}  ratio {:.2}",
        ms(t),
        ms(b),
        t.as_secs_f64() / b.as_secs_f64()
    );
    println!(
        "  filling alone: {} for {TEMPLATE_TARGETS} ({:.2} µs per target)",
        ms(fill),
        fill.as_secs_f64() * 1e6 / TEMPLATE_TARGETS as f64
    );
}

async fn accepting(stack: &Stack) {
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let (mut sms, mut calls) = (Vec::new(), Vec::new());
    for run in 0..ACCEPT_RUNS {
        let request = json!({"name": format!("bench sms {run}"), "from": sender(), "schedule": {"notBefore": tomorrow},
            "bodyTemplate": "Hi {{name}}, your shift starts at {{when}} at {{depot}}.", "targets": targets(TEMPLATE_TARGETS, false)});
        let started = Instant::now();
        let (status, _, body) = stack.api(reqwest::Method::POST, "sms-batches", &[], Some(request.to_string())).await;
        sms.push(started.elapsed());
        assert_eq!(status, 202, "{body}");
        let cancel = format!("sms-batches/{}/cancel", body["smsBatchId"].as_str().unwrap());
        assert_eq!(stack.api(reqwest::Method::POST, &cancel, &[], None).await.0, 200);

        let call_targets: Vec<Value> = targets(TEMPLATE_TARGETS, false)
            .into_iter()
            .map(|mut t| {
                t["clinic_timezone"] = json!("America/Chicago");
                t
            })
            .collect();
        let request =
            json!({"name": format!("bench calls {run}"), "targets": call_targets, "schedule": {"notBefore": tomorrow}});
        let started = Instant::now();
        let (status, _, body) = stack.api(reqwest::Method::POST, "batches", &[], Some(request.to_string())).await;
        calls.push(started.elapsed());
        assert_eq!(status, 202, "{body}");
        let cancel = format!("batches/{}/cancel", body["batchId"].as_str().unwrap());
        assert_eq!(stack.api(reqwest::Method::POST, &cancel, &[], None).await.0, 200);
    }
    let (s, c) = (median(sms), median(calls));
    println!("accepting {TEMPLATE_TARGETS} targets in one request (median of {ACCEPT_RUNS}, in alternation):");
    println!("  SMS batch (templated) {}  call batch {}  ratio {:.2}", ms(s), ms(c), s.as_secs_f64() / c.as_secs_f64());
}

async fn sandbox_post(stack: &Stack, path: &str, body: Value) {
    let response = stack.http.post(format!("{}{path}", stack.sandbox_url)).json(&body).send().await.unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.status());
}

async fn rate(stack: &Stack) {
    // Through outcall: no pace for the sender, none at the stand-in.
    let from = sender();
    stack.set_sms_rate(&from, None).await;
    sandbox_post(stack, "/_sandbox/twilio/sms/senders", json!({"sender": from, "mps": 1_000_000.0})).await;
    let targets: Vec<Value> =
        (0..RATE_MESSAGES).map(|i| json!({"phone": mobile(), "body": format!("Bench {i}")})).collect();
    let cpu = cpu::CpuMeter::start();
    let started = Instant::now();
    let accepted = stack.create_sms_batch(&json!({"from": from, "targets": targets})).await;
    let id = accepted["smsBatchId"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let batch = stack.sms_batch(&id).await;
        if !batch["completedAt"].is_null() {
            break;
        }
        assert!(Instant::now() < deadline, "the batch was not sent in time: {}", batch["counts"]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let handed_over = started.elapsed();
    let by_part = cpu.stop().by_part;
    let arrivals: Vec<i64> =
        stack.sandbox_sms_from(&from).await.iter().map(|m| m["created_at_ms"].as_i64().unwrap()).collect();
    assert_eq!(arrivals.len(), RATE_MESSAGES, "each message created once");
    let span = (arrivals[arrivals.len() - 1] - arrivals[0]) as f64 / 1000.0;

    // The same creates straight to the stand-in: what it takes without outcall in between.
    let direct_from = sender();
    sandbox_post(stack, "/_sandbox/twilio/sms/senders", json!({"sender": direct_from, "mps": 1_000_000.0})).await;
    let url = format!("{}/2010-04-01/Accounts/{}/Messages.json", stack.sandbox_url, stack.twilio_account_sid);
    let queue = std::sync::Arc::new(std::sync::Mutex::new((0..RATE_MESSAGES).collect::<Vec<_>>()));
    let started = Instant::now();
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..DIRECT_CONCURRENCY {
        let (stack, queue, url, from) = (stack.clone(), queue.clone(), url.clone(), direct_from.clone());
        senders.spawn(async move {
            loop {
                let next = queue.lock().unwrap().pop();
                let Some(i) = next else { break };
                let form = [("To", mobile()), ("From", from.clone()), ("Body", format!("Bench {i}"))];
                let response = stack
                    .http
                    .post(&url)
                    .basic_auth(&stack.twilio_account_sid, Some(&stack.twilio_auth_token))
                    .form(&form)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 201);
            }
        });
    }
    while let Some(done) = senders.join_next().await {
        done.unwrap();
    }
    let direct = started.elapsed().as_secs_f64();

    let calls = crate::dispatch_rate(stack, outcall_e2e::Scenario::Failed).await;
    let ours = RATE_MESSAGES as f64 / span;
    let theirs = RATE_MESSAGES as f64 / direct;
    println!("SMS messages per second, limits lifted ({RATE_MESSAGES} messages, one batch):");
    println!(
        "  through outcall {ours:.0}/s (first to last create at the stand-in, {span:.2} s; 202 to all handed over {:.2} s)",
        handed_over.as_secs_f64()
    );
    println!("  calls dispatched per second in the same run {calls:.0}/s: ratio {:.2}", ours / calls);
    println!(
        "  the same creates straight to the stand-in, {DIRECT_CONCURRENCY} at a time: {theirs:.0}/s (not the limit)"
    );
    let per_message: Vec<String> = by_part
        .iter()
        .map(|(name, seconds)| format!("{name} {:.2} ms", seconds * 1000.0 / RATE_MESSAGES as f64))
        .collect();
    println!("  CPU per message (of 2 cores): {}", per_message.join(", "));
}
