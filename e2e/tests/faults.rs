//! The reliability run of `./dev test`: 500 rows with every fault the sandbox can inject at 12 % and the
//! Worker restarted once a quarter of them are done (`outcall_e2e::fault_run` says what it must end with).
//!
//! It changes the stack's dispatch policy and the sandbox's faults for its duration, so it is the only
//! test in its binary (cargo runs test binaries one after another).

use outcall_e2e::fault_run::{Binding, Component, FaultRun, Restart};
use outcall_e2e::Stack;
use std::time::Duration;

#[tokio::test]
async fn five_hundred_rows_through_every_fault_end_with_nothing_lost_or_doubled() {
    let run = FaultRun {
        rows: 500,
        fault_rate: 0.12,
        report_first: 0.5,
        max_concurrent_calls: 8,
        calls_per_second: 10,
        binding: Binding::AsTwilioSaw,
        reconcile_after: Duration::from_secs(20),
        restarts: vec![Restart { component: Component::Worker, when_done: 0.25 }],
        deadline: Duration::from_secs(900),
    };
    let summary = run.run(&Stack::from_env()).await;
    let restart = &summary.restarts[0];
    println!(
        "{} calls created; {} of {} rows were open when the Worker restarted",
        summary.stats["calls_created"], restart.rows_open, run.rows
    );
}
