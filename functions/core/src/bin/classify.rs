//! `cargo run -q -p outcall-core --bin classify -- FILE` (or `./dev classify FILE`): classifies a timeline
//! (a `Timeline` JSON, or a corpus entry `{"label", "timeline"}`) and prints the verdict as JSON.

use outcall_core::learning::classify::classify;
use outcall_core::learning::timeline::Timeline;
use serde_json::Value;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path] = args.as_slice() else {
        eprintln!("usage: classify FILE   (a timeline JSON, or a corpus entry {{\"label\", \"timeline\"}})");
        return ExitCode::from(2);
    };
    match run(path) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("classify: {path}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(path: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut json: Value = serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
    let timeline = match json.get_mut("timeline") {
        Some(inner) => inner.take(),
        None => json,
    };
    let timeline: Timeline = serde_json::from_value(timeline).map_err(|e| format!("not a timeline: {e}"))?;
    serde_json::to_string_pretty(&classify(&timeline)).map_err(|e| e.to_string())
}
