//! `outcall-fuzz [N] [--seed S] [--only NAME[,NAME...]] [--threads T]`: N generated inputs (default
//! 1,000,000) through every parser of outside input; prints inputs, panics and seconds per parser and
//! every panicking input, and exits non-zero if any input panicked.
//! `outcall-fuzz --replay NAME HEX`: runs one input (as printed) through one parser again.
//! `outcall-fuzz --list`: the parsers and their entry points.

use outcall_fuzz::{render, run_all, run_one, targets, unhex, DEFAULT_SEED};
use std::process::ExitCode;
use std::time::Instant;

fn usage() -> ExitCode {
    eprintln!("usage: outcall-fuzz [N] [--seed S] [--only NAME[,NAME...]] [--threads T] | --replay NAME HEX | --list");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let all = targets::all();
    let mut count: u64 = 1_000_000;
    let mut seed = DEFAULT_SEED;
    let mut only: Option<Vec<String>> = None;
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1);
        match (args[i].as_str(), value) {
            ("--list", _) => {
                for t in &all {
                    println!("{:<20} {}", t.name, t.entry);
                }
                return ExitCode::SUCCESS;
            }
            ("--replay", Some(name)) => {
                let Some(target) = all.iter().find(|t| t.name == name.as_str()) else { return usage() };
                let Some(input) = args.get(i + 2).and_then(|h| unhex(h)) else { return usage() };
                return match run_one(target, &input) {
                    Err(message) => {
                        println!("{name}: PANIC {message}");
                        ExitCode::FAILURE
                    }
                    Ok(accepted) => {
                        println!("{name}: no panic (input {})", if accepted { "accepted" } else { "refused" });
                        ExitCode::SUCCESS
                    }
                };
            }
            ("--seed", Some(v)) => match v.parse() {
                Ok(s) => seed = s,
                Err(_) => return usage(),
            },
            ("--only", Some(v)) => only = Some(v.split(',').map(str::to_owned).collect()),
            ("--threads", Some(v)) => match v.parse() {
                Ok(t) => threads = t,
                Err(_) => return usage(),
            },
            (n, _) if n.bytes().all(|b| b.is_ascii_digit() || b == b'_') && !n.is_empty() => {
                match n.replace('_', "").parse() {
                    Ok(n) => count = n,
                    Err(_) => return usage(),
                }
                i += 1;
                continue;
            }
            _ => return usage(),
        }
        i += 2;
    }
    let targets: Vec<_> = match &only {
        Some(names) => {
            if let Some(unknown) = names.iter().find(|n| !all.iter().any(|t| t.name == n.as_str())) {
                eprintln!("outcall-fuzz: no parser {unknown:?} (see --list)");
                return ExitCode::from(2);
            }
            all.into_iter().filter(|t| names.iter().any(|n| n == t.name)).collect()
        }
        None => all,
    };
    println!(
        "fuzz: {} parsers x {} inputs, seed {seed:#x}, {threads} threads",
        targets.len(),
        outcall_fuzz::grouped(count)
    );
    let started = Instant::now();
    let reports = run_all(&targets, count, seed, threads);
    print!("{}", render(&reports, &targets));
    let panics: u64 = reports.iter().map(|r| r.panics).sum();
    let inputs: u64 = reports.iter().map(|r| r.inputs).sum();
    println!(
        "fuzz: {} inputs, {panics} panics in {:.1} s",
        outcall_fuzz::grouped(inputs),
        started.elapsed().as_secs_f64()
    );
    if panics == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
