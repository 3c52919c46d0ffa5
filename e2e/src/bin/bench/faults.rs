//! `./dev bench faults`: the fault run of `./dev test` at scale. 10,000 rows, every sandbox fault at 20 %, the
//! Worker restarted once a third of the rows are done and Postgres (a fast restart, calls live) once two thirds
//! are, with both limits binding. The run checks what the 500-row test checks (`outcall_e2e::fault_run`); this
//! prints where the time went: the limits as the claims and as Twilio's side saw them, where the rows waited,
//! and the CPU each part of the stack used. `OUTCALL_FAULT_ROWS` runs another number of rows (a quick look).

use crate::cpu::{CpuMeter, CpuUse};
use outcall_e2e::fault_run::{Binding, Component, FaultRun, Progress, Restart, Summary};
use outcall_e2e::Stack;
use std::time::Duration;

/// Both limits bind on this 2-core machine: the claims find them (nearly) full all along (README.md,
/// "Benchmarks"). Higher, the run is bound by the CPU instead.
const MAX_CONCURRENT_CALLS: u64 = 100;
const CALLS_PER_SECOND: u64 = 40;
/// The sweep settles a session an unclear Twilio answer left (504, timeout, then a failed lookup) this long
/// after its last news; at 20 % faults about one attempt in ten waits for it. The local stack's policy says
/// 15 s, the 500-row test 20 s.
const RECONCILE_AFTER: Duration = Duration::from_secs(5);

pub async fn run(stack: &Stack) {
    let rows = std::env::var("OUTCALL_FAULT_ROWS").ok().and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let run = FaultRun {
        rows,
        fault_rate: 0.2,
        report_first: 0.2,
        max_concurrent_calls: MAX_CONCURRENT_CALLS,
        calls_per_second: CALLS_PER_SECOND,
        binding: Binding::InTheDatabase,
        reconcile_after: RECONCILE_AFTER,
        restarts: vec![
            Restart { component: Component::Worker, when_done: 1.0 / 3.0 },
            Restart { component: Component::Postgres, when_done: 2.0 / 3.0 },
        ],
        deadline: Duration::from_secs(3 * 3600),
    };
    println!(
        "{rows} rows, every fault at 20 %, at most {MAX_CONCURRENT_CALLS} live calls and {CALLS_PER_SECOND} calls/s; \
         progress every 10 s"
    );
    let cpu = CpuMeter::start();
    let summary = run.run(stack).await;
    let cpu = cpu.stop();
    print_summary(&run, &summary);
    println!("where the time went:");
    print_waits(&summary);
    print_cpu(&cpu, summary.outcomes.attempts);
}

fn print_summary(run: &FaultRun, summary: &Summary) {
    let stats = &summary.stats;
    println!(
        "{} rows through every fault at {:.0} %: {:.0} s wall ({:.0} s of it inserting)",
        run.rows,
        run.fault_rate * 100.0,
        summary.wall.as_secs_f64(),
        summary.inserted_in.as_secs_f64()
    );
    let outcomes: Vec<String> = summary.outcomes.by_outcome.iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!("  rows: {}", outcomes.join(", "));
    println!("  attempts {}, calls created {}", summary.outcomes.attempts, stats["calls_created"]);
    let injected: Vec<String> =
        summary.injected.as_object().into_iter().flatten().map(|(kind, n)| format!("{kind} {n}")).collect();
    println!("  faults injected: {}", injected.join(", "));
    println!(
        "  as the sandbox saw them: peak live calls {} (limit {}), peak calls in one second {} (limit {}), \
         attempts dialled twice {}",
        stats["peak_concurrency"],
        run.max_concurrent_calls,
        stats["peak_calls_per_second"],
        run.calls_per_second,
        stats["sessions_dialled_twice"].as_array().map_or(0, Vec::len)
    );
    let limits = &summary.limits;
    let share = |n: u32| 100.0 * n as f64 / limits.samples.max(1) as f64;
    println!(
        "  as the claims saw them, {} samples a second apart: live sessions {:.1} of {} on average (at the limit \
         {:.0} % of the time), send slots busy {:.1} of {} (all {:.0} %)",
        limits.samples,
        limits.mean_live_sessions(),
        run.max_concurrent_calls,
        share(limits.at_capacity),
        limits.mean_busy_send_slots(),
        run.calls_per_second,
        share(limits.send_slots_full)
    );
    for restart in &summary.restarts {
        println!(
            "  {} restarted at {:.0} s with {} rows open: answering after {:.1} s, dialling again after {:.1} s",
            restart.component,
            restart.at.as_secs_f64(),
            restart.rows_open,
            restart.down.as_secs_f64(),
            restart.dialling_again.unwrap_or_default().as_secs_f64()
        );
    }
}

/// Calls made against the limits, and where the open rows were, from the progress samples.
fn print_waits(summary: &Summary) {
    let progress = &summary.progress;
    let Some(last) = progress.last() else { return };
    let best = progress
        .windows(2)
        .map(|w| (w[1].calls_created - w[0].calls_created) as f64 / (w[1].at - w[0].at).as_secs_f64())
        .fold(0.0, f64::max);
    let mean = |value: &dyn Fn(&Progress) -> f64| progress.iter().map(value).sum::<f64>() / progress.len() as f64;
    let rows_in = |status: &'static str| mean(&|p: &Progress| p.open.get(status).copied().unwrap_or(0) as f64);
    println!(
        "  calls created {:.1}/s over the run, {best:.1}/s in the busiest 10 s (limit {CALLS_PER_SECOND}/s); live \
         calls at Twilio {:.1} on average (limit {MAX_CONCURRENT_CALLS})",
        last.calls_created as f64 / last.at.as_secs_f64(),
        mean(&|p: &Progress| p.live_calls as f64)
    );
    println!(
        "  an attempt held its live slot {:.1} s on average (live sessions over attempts per second), its call at \
         Twilio {:.1} s of them",
        summary.limits.mean_live_sessions() * summary.wall.as_secs_f64() / summary.outcomes.attempts as f64,
        mean(&|p: &Progress| p.live_calls as f64) * summary.wall.as_secs_f64() / summary.outcomes.attempts as f64
    );
    println!(
        "  open rows on average: dispatching (claimed, the dial not settled) {:.0}, calling {:.0}, waiting to be \
         claimed (pending or retry_pending) {:.0}",
        rows_in("dispatching"),
        rows_in("calling"),
        rows_in("pending") + rows_in("retry_pending")
    );
}

fn print_cpu(cpu: &CpuUse, attempts: usize) {
    let wall = cpu.wall.as_secs_f64();
    let parts: Vec<String> = cpu
        .by_part
        .iter()
        .map(|(part, seconds)| format!("{part} {seconds:.0} s ({:.2} cores)", seconds / wall))
        .collect();
    println!("  CPU over {wall:.0} s: {}", parts.join(", "));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let stack: f64 = cpu.by_part.iter().map(|(_, seconds)| seconds).sum();
    println!(
        "  the stack {stack:.0} CPU s, {:.3} per attempt: on {cores} cores at least {:.0} s with nothing else running; \
         the machine as a whole (other sessions too) {:.2} of {cores} cores busy",
        stack / attempts as f64,
        stack / cores as f64,
        cpu.machine_cores
    );
}
