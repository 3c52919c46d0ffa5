//! A second Worker (wasm in workerd via wrangler dev) with the stack's settings changed, for tests
//! that need another configuration. Stopped with its process group when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct SpareWorker {
    child: Child,
    dir: PathBuf,
    pub url: String,
}

impl SpareWorker {
    /// Starts `wrangler dev` with the stack's `.dev.vars`, where `vars` names variables to change
    /// (`Some`) or leave out (`None`), in a folder of its own (wrangler reads `.dev.vars` next to the
    /// config it is given). `label` names the folder.
    pub async fn start(label: &str, vars: &[(&str, Option<&str>)]) -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
        let dir = root.join(format!(".dev/worker-{label}"));
        std::fs::create_dir_all(&dir).unwrap();
        let stack_vars = std::fs::read_to_string(root.join(".dev.vars")).expect(".dev.vars written by ./dev up");
        let mut lines: Vec<String> = stack_vars
            .lines()
            .filter(|line| !vars.iter().any(|(name, _)| line.starts_with(&format!("{name}="))))
            .map(str::to_owned)
            .collect();
        lines.extend(vars.iter().filter_map(|(name, value)| value.map(|v| format!("{name}={v}"))));
        std::fs::write(dir.join(".dev.vars"), lines.join("\n")).unwrap();
        let main = root.join("functions/edge/build/worker/shim.mjs");
        std::fs::write(
            dir.join("wrangler.toml"),
            format!("name = \"outcall-{label}\"\nmain = \"{}\"\ncompatibility_date = \"2026-11-01\"\n", main.display()),
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
        let worker = SpareWorker { child, dir, url: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(90);
        while reqwest::get(format!("{}/health", worker.url)).await.is_err() {
            assert!(Instant::now() < deadline, "the {label} Worker did not start");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        worker
    }
}

impl Drop for SpareWorker {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Restarts the stack's own Worker (the one `./dev up` started, whose port the webhook, the sandbox and the
/// cron loop call) in place: stops its process group and starts `wrangler dev` again with the same command
/// line as `./dev up` (`start_worker` in `dev`), appending to its log. Returns once it answers `/health`.
/// The new Worker belongs to the stack, not to the test: `./dev down` stops it by the pid written here.
#[allow(clippy::zombie_processes)]
pub async fn restart_stack_worker(worker_url: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let pid_file = root.join(".dev/pids/worker");
    let pid = std::fs::read_to_string(&pid_file).expect("the stack's Worker pid (./dev up)").trim().to_owned();
    let _ = Command::new("kill").args(["-TERM", "--", &format!("-{pid}")]).status();
    let stopped = Instant::now() + Duration::from_secs(30);
    while Command::new("kill").args(["-0", &pid]).stderr(Stdio::null()).status().is_ok_and(|s| s.success()) {
        assert!(Instant::now() < stopped, "the Worker did not stop");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let port = worker_url.rsplit(':').next().expect("a port in WORKER_URL").to_owned();
    let log = std::fs::OpenOptions::new().append(true).create(true).open(root.join(".dev/logs/worker.log")).unwrap();
    let mut command = Command::new("wrangler");
    command
        .args(["dev", "--local", "--ip", "127.0.0.1", "--port", &port])
        .args(["--show-interactive-dev-session=false", "--log-level", "log"])
        .current_dir(&root)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let child = command.spawn().expect("wrangler on PATH (run through ./dev test)");
    std::fs::write(&pid_file, child.id().to_string()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while reqwest::get(format!("{worker_url}/health")).await.is_err() {
        assert!(Instant::now() < deadline, "the restarted Worker did not start");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
