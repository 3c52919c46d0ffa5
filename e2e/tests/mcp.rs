//! The MCP server through the official client SDK: `e2e/mcp/client_test.py` (Python `mcp`, pinned in
//! `tools/requirements.txt`, in the tool cache's virtualenv) against the running stack; what it checks is listed
//! at its top. This runs it with the stack's settings and phone numbers no other test dials, and fails with its
//! output.

use std::path::{Path, PathBuf};
use std::time::Duration;

use outcall_e2e::{fresh_phone, sms, Scenario, Stack};
use serde_json::json;

/// The script's own waits bound it (150 s for the batch to end); this is the backstop.
const TIMEOUT: Duration = Duration::from_secs(300);

/// The virtualenv `./dev setup` installs `tools/requirements.txt` into (`$CACHE/venv`, `CACHE` as `./dev` sets it).
fn venv_python() -> PathBuf {
    let cache = std::env::var_os("OUTCALL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(&std::env::var_os("HOME").expect("HOME")).join(".cache/outcall"));
    cache.join("venv/bin/python")
}

#[tokio::test]
async fn the_official_mcp_client_lists_the_tools_and_drives_a_batch_to_its_end() {
    let stack = Stack::from_env();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let phones = json!([fresh_phone(Scenario::Human), fresh_phone(Scenario::Human)]);
    let sms = json!({"sender": sms::sender(), "phones": [sms::mobile(), sms::mobile()]});
    let run_id = format!("mcp-{}-{}", std::process::id(), chrono::Utc::now().timestamp_millis());
    let run = tokio::process::Command::new(venv_python())
        .arg(root.join("e2e/mcp/client_test.py"))
        .current_dir(root)
        .env("WORKER_URL", &stack.worker_url)
        .env("SUPABASE_URL", &stack.supabase_url)
        .env("SUPABASE_SERVICE_ROLE_KEY", &stack.service_key)
        .env("API_KEY", &stack.api_key)
        .env("OUTCALL_MCP_PHONES", phones.to_string())
        .env("OUTCALL_MCP_SMS", sms.to_string())
        .env("OUTCALL_MCP_DNC_PHONE", fresh_phone(Scenario::Human))
        .env("OUTCALL_MCP_RUN", run_id)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(TIMEOUT, run)
        .await
        .unwrap_or_else(|_| panic!("e2e/mcp/client_test.py still running after {TIMEOUT:?}"))
        .expect("the tool cache's Python runs (./dev setup installs it)");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "e2e/mcp/client_test.py failed ({}):\n{text}", output.status);
    println!("{text}");
}
