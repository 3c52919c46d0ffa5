//! CPU time by part of the stack while a run goes on, sampled from `/proc` every second. A part is the process
//! tree under the pid `./dev` recorded for it in `.dev/pids/` (read again at each sample: a restart changes it).
//! A process that exits keeps the time of its last sample (up to a second of it is missed); children's time is
//! not taken from their parents' `cutime`, which would count it twice.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Linux's USER_HZ, the unit of `/proc` CPU times, on every architecture it runs here.
const TICKS_PER_SECOND: f64 = 100.0;
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// The parts, as `.dev/pids/` names them, and how to print them.
const PARTS: [(&str, &str); 5] = [
    ("worker", "Worker (wrangler + workerd)"),
    ("postgres", "Postgres"),
    ("sandbox", "sandbox"),
    ("postgrest", "PostgREST"),
    ("cron", "cron loop"),
];

/// A process by pid and start time (a pid can be reused).
type ProcessKey = (u32, u64);

struct Process {
    parent: u32,
    started: u64,
    ticks: u64,
}

#[derive(Default)]
struct Totals {
    /// Each process seen, with its part and its latest CPU ticks.
    ticks: HashMap<ProcessKey, (&'static str, u64)>,
    /// The ticks of the processes already running when the meter started: not the run's.
    at_start: HashMap<ProcessKey, u64>,
}

pub struct CpuMeter {
    started: Instant,
    machine_at_start: (u64, u64),
    totals: Arc<Mutex<Totals>>,
    sampler: tokio::task::JoinHandle<()>,
}

/// What the meter measured.
pub struct CpuUse {
    pub wall: Duration,
    /// Seconds of CPU by part (this program as `bench`), in [`PARTS`] order.
    pub by_part: Vec<(&'static str, f64)>,
    /// Busy CPU of the whole machine (every process, other sessions' too), in cores.
    pub machine_cores: f64,
}

impl CpuMeter {
    pub fn start() -> CpuMeter {
        let at_start = processes().into_iter().map(|(pid, p)| ((pid, p.started), p.ticks)).collect();
        let totals = Arc::new(Mutex::new(Totals { at_start, ..Totals::default() }));
        let pids = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join(".dev/pids");
        let sampler = tokio::spawn({
            let totals = totals.clone();
            async move {
                loop {
                    sample(&pids, &totals);
                    tokio::time::sleep(SAMPLE_EVERY).await;
                }
            }
        });
        CpuMeter { started: Instant::now(), machine_at_start: machine_ticks(), totals, sampler }
    }

    pub fn stop(self) -> CpuUse {
        self.sampler.abort();
        let pids = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join(".dev/pids");
        sample(&pids, &self.totals);
        let wall = self.started.elapsed();
        let totals = self.totals.lock().unwrap();
        let seconds = |part: &str| {
            let run_ticks =
                |(key, (_, ticks)): (&ProcessKey, &(&str, u64))| ticks - totals.at_start.get(key).unwrap_or(&0);
            totals.ticks.iter().filter(|(_, (p, _))| *p == part).map(run_ticks).sum::<u64>() as f64 / TICKS_PER_SECOND
        };
        let mut by_part: Vec<(&'static str, f64)> = PARTS.iter().map(|(name, label)| (*label, seconds(name))).collect();
        by_part.push(("bench", seconds("bench")));
        let (busy, total) = machine_ticks();
        let (busy, total) = (busy - self.machine_at_start.0, total - self.machine_at_start.1);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        CpuUse { wall, by_part, machine_cores: busy as f64 / total.max(1) as f64 * cores }
    }
}

/// Reads every process once and credits each part's tree with its latest ticks.
fn sample(pids: &Path, totals: &Mutex<Totals>) {
    let processes = processes();
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (pid, process) in &processes {
        children.entry(process.parent).or_default().push(*pid);
    }
    let roots = PARTS
        .iter()
        .filter_map(|(name, _)| Some((*name, read_pid(&pids.join(name))?)))
        .chain([("bench", std::process::id())]);
    let mut totals = totals.lock().unwrap();
    // The first part a process is found under owns it: a Worker restarted by this program is its child, yet the
    // Worker's, so this program comes last.
    let mut claimed = std::collections::HashSet::new();
    for (part, root) in roots {
        let mut tree = vec![root];
        while let Some(pid) = tree.pop() {
            let Some(process) = processes.get(&pid) else { continue };
            if claimed.insert(pid) {
                totals.ticks.insert((pid, process.started), (part, process.ticks));
                tree.extend(children.get(&pid).into_iter().flatten());
            }
        }
    }
}

fn read_pid(file: &PathBuf) -> Option<u32> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

fn processes() -> HashMap<u32, Process> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return HashMap::new() };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // After the command name in parentheses (which may hold spaces): state, ppid, ... (man 5 proc).
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
            let process = Process { parent: field(4)? as u32, started: field(22)?, ticks: field(14)? + field(15)? };
            Some((pid, process))
        })
        .collect()
}

/// The machine's busy and total CPU ticks since boot (`/proc/stat`, all cores).
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> =
        stat.lines().next().unwrap_or_default().split_whitespace().skip(1).filter_map(|t| t.parse().ok()).collect();
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    (total - idle, total)
}
