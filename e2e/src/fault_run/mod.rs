//! The fault run: rows through the real stack with every fault the sandbox can inject (Twilio 429/503/504/
//! timeouts, dropped webhooks, duplicated and reordered callbacks, duplicated VAPI reports, VAPI's report before
//! or after Twilio's) while parts of the stack are restarted under live calls. It must end with every row
//! terminal, no attempt dialled twice, the limits held as the sandbox saw them, and each row's attempts exactly
//! as the outcome schedule says. `tests/faults.rs` runs 500 rows of it in `./dev test`; `./dev bench faults`
//! runs 10,000.
//!
//! It changes the stack's dispatch policy and the sandbox's faults for its duration, so nothing else may use
//! the stack meanwhile.

mod check;
mod db;
mod restart;

use crate::{fresh_phone, merge, sample_row, Scenario, Stack};
pub use check::{Binding, Outcomes};
use db::{Db, Sample};
pub use restart::{Component, Restart, Restarted};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The run's outcome schedule: short, so three attempts fit in a test.
const MAX_ATTEMPTS: usize = 3;
const RETRY_DELAYS_S: [f64; 2] = [1.0, 2.0];
const SEED: u64 = 20261121;
const INSERT_CHUNK: usize = 50;
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// One run's shape.
#[derive(Clone)]
pub struct FaultRun {
    /// Rows inserted, the scenarios in turn.
    pub rows: usize,
    /// The rate of every fault: Twilio's four (each drawn per request), dropped webhooks, duplicated and
    /// reordered callbacks, duplicated reports.
    pub fault_rate: f64,
    /// The share of VAPI reports sent before Twilio's final callback (the others come after it).
    pub report_first: f64,
    pub max_concurrent_calls: u64,
    pub calls_per_second: u64,
    /// Where the run must see the limits reached (that is what makes "within the limits" a test).
    pub binding: Binding,
    /// The policy's `reconcile_after`: how long a session without news waits for the sweep to ask Twilio,
    /// and a completed call for VAPI's report.
    pub reconcile_after: Duration,
    /// In the order they come.
    pub restarts: Vec<Restart>,
    /// Rows still open this long after the start fail the run.
    pub deadline: Duration,
}

/// A moment of the run, as printed every [`PROGRESS_EVERY`].
pub struct Progress {
    pub at: Duration,
    /// Rows by `call_status`, the terminal ones left out.
    pub open: HashMap<String, i64>,
    pub calls_created: u64,
    pub live_calls: u64,
    /// As the claims count them: sessions holding a live-call slot, send slots busy.
    pub live_sessions: i64,
    pub busy_send_slots: i64,
}

/// What a run did.
pub struct Summary {
    /// From the first insert to the last row terminal.
    pub wall: Duration,
    pub inserted_in: Duration,
    pub restarts: Vec<Restarted>,
    pub progress: Vec<Progress>,
    pub limits: LimitsSeen,
    /// The sandbox's `/_sandbox/stats` once its calls have ended, and `/_sandbox/faults`' `injected`.
    pub stats: Value,
    pub injected: Value,
    pub outcomes: Outcomes,
}

impl FaultRun {
    /// Runs it on the stack and checks it (panics on any failure), then puts the stack's policy and the
    /// sandbox's faults back, whatever happened. The providers' circuit breaker is kept closed: at these rates
    /// (a third of the creates fail) it would open again and again, and the run checks every attempt against
    /// the retry schedule, which attempts the breaker gives back do not follow (tests/breaker.rs tests it).
    pub async fn run(&self, stack: &Stack) -> Summary {
        let saved = stack
            .set_policy(&format!(
                "max_concurrent_calls = {}, calls_per_second = {},
                  retry_delays = '{{{} seconds, {} seconds}}', reconcile_after = '{} seconds',
                  breaker_failures = 1000000",
                self.max_concurrent_calls,
                self.calls_per_second,
                RETRY_DELAYS_S[0],
                RETRY_DELAYS_S[1],
                self.reconcile_after.as_secs_f64()
            ))
            .await;
        let rate = self.fault_rate;
        let faults = json!({"seed": SEED, "twilio_429": rate, "twilio_503": rate, "twilio_504": rate,
            "twilio_timeout": rate, "timeout_hold_ms": 3000, "drop_webhook": rate,
            "duplicate_status_callback": rate, "reorder_status_callbacks": rate,
            "duplicate_vapi_report": rate, "vapi_report_first": self.report_first});
        sandbox_post(stack, "/_sandbox/faults", faults).await;
        sandbox_post(stack, "/_sandbox/stats/reset", json!({})).await;

        // The run in its own task, so the stack is put back whatever happens.
        let outcome = tokio::spawn(self.clone().drive(stack.clone())).await;

        sandbox_post(stack, "/_sandbox/faults/reset", json!({})).await;
        stack.restore_policy(&saved).await;
        outcome.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    async fn drive(self, stack: Stack) -> Summary {
        let run_id = uuid::Uuid::new_v4().to_string();
        let started = Instant::now();
        let scenario_of = self.insert_rows(&stack, &run_id).await;
        let inserted_in = started.elapsed();
        let (restarts, progress, limits) = self.follow(&stack, &run_id, started).await;
        let wall = started.elapsed();
        println!("all {} rows terminal after {} s", self.rows, wall.as_secs());

        let (stats, injected) = self.check_sandbox(&stack, &limits).await;
        let outcomes = check::every_row(&stack, &run_id, &scenario_of, self.rows).await;
        Summary { wall, inserted_in, restarts, progress, limits, stats, injected, outcomes }
    }

    /// Inserts the rows as an outside system does; returns each one's scenario by id.
    async fn insert_rows(&self, stack: &Stack, run_id: &str) -> HashMap<String, Scenario> {
        let rows: Vec<(Scenario, Value)> = (0..self.rows)
            .map(|i| {
                let scenario = Scenario::ALL[i % Scenario::ALL.len()];
                let row = sample_row(&fresh_phone(scenario), &format!("Fault Run {i}"));
                (scenario, merge(row, json!({"max_attempts": MAX_ATTEMPTS, "variables": {"run": run_id}})))
            })
            .collect();
        let mut scenario_of = HashMap::new();
        for chunk in rows.chunks(INSERT_CHUNK) {
            let response =
                stack.insert("pending_calls", Value::Array(chunk.iter().map(|(_, r)| r.clone()).collect())).await;
            assert_eq!(response.status(), 201);
            let inserted: Vec<Value> = response.json().await.unwrap();
            for ((scenario, _), row) in chunk.iter().zip(inserted) {
                scenario_of.insert(row["id"].as_str().unwrap().to_owned(), *scenario);
            }
        }
        scenario_of
    }

    /// Follows the run until every row is terminal: restarts what is due as the rows finish, and prints the
    /// progress every [`PROGRESS_EVERY`].
    async fn follow(
        &self,
        stack: &Stack,
        run_id: &str,
        started: Instant,
    ) -> (Vec<Restarted>, Vec<Progress>, LimitsSeen) {
        let mut db = Db::new(stack);
        let mut restarts = self.restarts.iter().peekable();
        let (mut restarted, mut progress, mut limits) = (Vec::<Restarted>::new(), Vec::new(), LimitsSeen::default());
        let mut next_progress = started + PROGRESS_EVERY;
        loop {
            let sample = db.sample(run_id).await;
            let open = sample.open;
            for restart in &mut restarted {
                restart.watch(&mut db, run_id).await;
            }
            if open == 0 {
                let missed: Vec<String> = restarts.map(|r| r.component.to_string()).collect();
                assert!(missed.is_empty(), "the run ended before restarting {}", missed.join(", "));
                let unrecovered: Vec<String> =
                    restarted.iter().filter(|r| r.dialling_again.is_none()).map(|r| r.component.to_string()).collect();
                assert!(unrecovered.is_empty(), "nothing dialled after restarting {}", unrecovered.join(", "));
                return (restarted, progress, limits);
            }
            limits.count(&sample, self);
            if let Some(restart) = restarts.next_if(|r| (open as f64) < self.rows as f64 * (1.0 - r.when_done)) {
                restarted.push(restart.perform(stack, &mut db, started, open).await);
            }
            if Instant::now() >= next_progress {
                progress.push(Progress::now(stack, &mut db, &sample, run_id, started).await);
                next_progress = Instant::now() + PROGRESS_EVERY;
            }
            assert!(started.elapsed() < self.deadline, "{open} rows still open after {:?}", self.deadline);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Once the sandbox has sent what it still owes (duplicate reports, late callbacks): nothing doubled, the
    /// limits held, as Twilio's side saw it, and every fault injected at about its rate.
    async fn check_sandbox(&self, stack: &Stack, limits: &LimitsSeen) -> (Value, Value) {
        let settle = Instant::now() + Duration::from_secs(60);
        let stats = loop {
            let stats = sandbox_get(stack, "/_sandbox/stats").await;
            if stats["live_calls"] == 0 || Instant::now() > settle {
                break stats;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let injected = sandbox_get(stack, "/_sandbox/faults").await["injected"].clone();
        let observed: Vec<String> =
            ["calls_created", "peak_concurrency", "peak_calls_per_second", "sessions_dialled_twice"]
                .iter()
                .map(|k| format!("{k} {}", stats[*k]))
                .collect();
        println!("sandbox saw: {}\nfaults injected: {injected}", observed.join(", "));
        check::sandbox(&stats, &injected, limits, self);
        (stats, injected)
    }
}

/// The limits as the claims count them, over the run's once-a-second samples.
#[derive(Default)]
pub struct LimitsSeen {
    pub samples: u32,
    /// Samples with the live sessions at `max_concurrent_calls`: a claim then is refused `at_capacity`.
    pub at_capacity: u32,
    /// Samples with every send slot busy: a claim then is refused `rate_limited`.
    pub send_slots_full: u32,
    live_sessions: i64,
    busy_send_slots: i64,
}

impl LimitsSeen {
    fn count(&mut self, sample: &Sample, run: &FaultRun) {
        self.samples += 1;
        self.at_capacity += u32::from(sample.live_sessions >= run.max_concurrent_calls as i64);
        self.send_slots_full += u32::from(sample.busy_send_slots >= run.calls_per_second as i64);
        self.live_sessions += sample.live_sessions;
        self.busy_send_slots += sample.busy_send_slots;
    }

    pub fn mean_live_sessions(&self) -> f64 {
        self.live_sessions as f64 / self.samples.max(1) as f64
    }

    pub fn mean_busy_send_slots(&self) -> f64 {
        self.busy_send_slots as f64 / self.samples.max(1) as f64
    }
}

impl Progress {
    async fn now(stack: &Stack, db: &mut Db, sample: &Sample, run_id: &str, started: Instant) -> Progress {
        let open = db.open_by_status(run_id).await;
        let stats = sandbox_get(stack, "/_sandbox/stats").await;
        let progress = Progress {
            at: started.elapsed(),
            open,
            calls_created: stats["calls_created"].as_u64().unwrap_or(0),
            live_calls: stats["live_calls"].as_u64().unwrap_or(0),
            live_sessions: sample.live_sessions,
            busy_send_slots: sample.busy_send_slots,
        };
        println!("{progress}");
        progress
    }
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut by_status: Vec<_> = self.open.iter().collect();
        by_status.sort();
        let by_status: Vec<String> = by_status.iter().map(|(status, n)| format!("{status} {n}")).collect();
        write!(
            f,
            "{:>5} s: {} rows open ({}); {} calls created, {} live; live sessions {}, send slots busy {}",
            self.at.as_secs(),
            self.open.values().sum::<i64>(),
            by_status.join(", "),
            self.calls_created,
            self.live_calls,
            self.live_sessions,
            self.busy_send_slots
        )
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
