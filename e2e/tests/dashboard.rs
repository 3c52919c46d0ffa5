//! The operators' dashboard in a real browser: `e2e/browser/dashboard.mjs` drives headless Chromium (Debian's
//! `chromium`, through the pinned playwright-core) against the running stack; what it checks is listed at its top.
//! This runs it with the stack's settings and phone numbers no other test dials, and fails with its output.
//! Its screenshots are in `.dev/screenshots/`.

use std::path::Path;
use std::time::Duration;

use outcall_e2e::{fresh_phone, Scenario, Stack};
use serde_json::json;

/// The script's own waits bound it (90 s at most for a call to end); this is the backstop.
const TIMEOUT: Duration = Duration::from_secs(420);

#[tokio::test]
async fn operators_sign_in_watch_calls_live_and_act_viewers_only_read_others_see_nothing() {
    let stack = Stack::from_env();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let phones = json!({
        "human": [fresh_phone(Scenario::Human), fresh_phone(Scenario::Human), fresh_phone(Scenario::Human)],
        "failed": [fresh_phone(Scenario::Failed)],
        "dnc": [fresh_phone(Scenario::Human)],
    });
    let run = tokio::process::Command::new("node")
        .arg(root.join("e2e/browser/dashboard.mjs"))
        .current_dir(root)
        .env("WORKER_URL", &stack.worker_url)
        .env("SUPABASE_URL", &stack.supabase_url)
        .env("SUPABASE_SERVICE_ROLE_KEY", &stack.service_key)
        .env("DATABASE_URL", &stack.database_url)
        .env("API_KEY", &stack.api_key)
        .env("OUTCALL_DASHBOARD_PHONES", phones.to_string())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(TIMEOUT, run)
        .await
        .unwrap_or_else(|_| panic!("e2e/browser/dashboard.mjs still running after {TIMEOUT:?}"))
        .expect("node runs (./dev puts the pinned Node on PATH)");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "e2e/browser/dashboard.mjs failed ({}):\n{text}", output.status);
    println!("{text}");
}
