//! Personal data (names, dates of birth, instructions) never reaches a log: calls for the demo's
//! people run through every outcome (completed, retried, voicemail), then the Worker's and the
//! sandbox's logs are searched for them. The SIP header and the URLs are checked per call elsewhere
//! (call_path.rs); here we also check every URL the sandbox saw.

use outcall_e2e::{fresh_phone, merge, sample_row, Scenario, Stack, DEMO_NAMES};
use serde_json::json;
use std::path::Path;

const DOB: &str = "1979-03-14";
const INSTRUCTION: &str = "Ask for Dr. Quimby-Harrow at the front desk";

#[tokio::test]
async fn names_birth_dates_and_instructions_never_reach_a_log() {
    let stack = Stack::from_env();
    let scenarios = [Scenario::Human, Scenario::IvrOnly, Scenario::Busy, Scenario::Voicemail];
    let mut ids = Vec::new();
    for (scenario, name) in scenarios.iter().zip(DEMO_NAMES) {
        let row = merge(
            sample_row(&fresh_phone(*scenario), name),
            json!({"employee_dob": DOB, "max_attempts": 2,
                   "instructions": {"special_instructions": INSTRUCTION}}),
        );
        ids.push(stack.insert_pending_call(row).await["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        stack.wait_terminal(id).await;
    }

    let logs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.dev/logs");
    let mut searched = 0;
    for file in ["worker.log", "worker.previous.log", "sandbox.log"] {
        let Ok(text) = std::fs::read_to_string(logs.join(file)) else { continue };
        searched += 1;
        for needle in DEMO_NAMES.iter().copied().chain([DOB, INSTRUCTION]) {
            assert!(!text.contains(needle), "{file} contains {needle:?}");
        }
        // The search means something: the sandbox's log does record the calls.
        assert!(file != "sandbox.log" || text.contains("call created"), "{file} records no call");
    }
    assert!(searched >= 2, "the Worker's and the sandbox's logs must exist in .dev/logs");

    for call in stack.sandbox_calls().await {
        let urls = [&call["form"]["StatusCallback"], &call["form"]["Url"]];
        for url in urls.iter().filter_map(|u| u.as_str()) {
            assert!(DEMO_NAMES.iter().all(|n| !url.contains(n) && !url.contains(&n.replace(' ', "+"))), "{url}");
        }
    }
}
