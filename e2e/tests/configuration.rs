//! A Worker missing a configuration variable answers 500 `configuration_error` naming it, on every
//! route that would act, and writes nothing. Runs a second Worker (wasm in workerd via wrangler dev)
//! with one variable left out, and stops it by its process group.

use outcall_e2e::{fresh_phone, sample_row, Scenario, Stack};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LEFT_OUT: &str = "TWILIO_AUTH_TOKEN";

struct Worker {
    child: Child,
    dir: PathBuf,
    url: String,
}

impl Worker {
    /// `wrangler dev` with the stack's `.dev.vars` minus `left_out`, in a folder of its own (wrangler
    /// reads `.dev.vars` next to the config it is given).
    async fn start_without(left_out: &str) -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
        let dir = root.join(format!(".dev/worker-without-{}", left_out.to_lowercase()));
        std::fs::create_dir_all(&dir).unwrap();
        let vars = std::fs::read_to_string(root.join(".dev.vars")).expect(".dev.vars written by ./dev up");
        let kept: Vec<&str> = vars.lines().filter(|l| !l.starts_with(&format!("{left_out}="))).collect();
        std::fs::write(dir.join(".dev.vars"), kept.join("\n")).unwrap();
        let main = root.join("functions/edge/build/worker/shim.mjs");
        std::fs::write(
            dir.join("wrangler.toml"),
            format!(
                "name = \"outcall-misconfigured\"\nmain = \"{}\"\ncompatibility_date = \"2026-11-01\"\n",
                main.display()
            ),
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut command = Command::new("wrangler");
        command
            .args(["dev", "--local", "--ip", "127.0.0.1", "--port", &port.to_string(), "--config"])
            .arg(dir.join("wrangler.toml"))
            .args(["--show-interactive-dev-session=false", "--persist-to"])
            .arg(dir.join("state"))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().expect("wrangler on PATH (run through ./dev test)");
        let worker = Worker { child, dir, url: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(90);
        while reqwest::get(format!("{}/health", worker.url)).await.is_err() {
            assert!(Instant::now() < deadline, "the misconfigured Worker did not start");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        worker
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn a_missing_variable_is_a_configuration_error_that_writes_nothing() {
    let stack = Stack::from_env();
    let worker = Worker::start_without(LEFT_OUT).await;
    let id = stack.insert_quietly(&sample_row(&fresh_phone(Scenario::Human), "Vera Lund")).await;

    let health: serde_json::Value = reqwest::get(format!("{}/health", worker.url)).await.unwrap().json().await.unwrap();
    assert_eq!(health["configured"], false);
    assert!(health["error"]["message"].as_str().unwrap().contains(LEFT_OUT));

    let webhook = json!({"type": "INSERT", "table": "pending_calls", "schema": "public", "record": {"id": id}});
    let secret = stack.webhook_secret.clone();
    let (status, body) =
        stack.post_to(&worker.url, "/hooks/pending-calls", &[("X-Webhook-Secret", &secret)], webhook.to_string()).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"]["code"], "configuration_error");
    assert!(body["error"]["message"].as_str().unwrap().contains(LEFT_OUT), "{body}");

    let vapi_secret = stack.vapi_secret.clone();
    let message = json!({"message": {"type": "assistant-request",
        "call": {"assistantOverrides": {"variableValues": {"pendingcallid": id}}}}});
    let (status, body) =
        stack.post_to(&worker.url, "/vapi/events", &[("X-Vapi-Secret", &vapi_secret)], message.to_string()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (500, Some("configuration_error")));

    stack.assert_untouched(&id).await;
    drop(worker);
}
