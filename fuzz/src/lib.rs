//! Generative fuzzing of every parser of outside input, on stable Rust.
//!
//! Each [`Target`] is one parser (or the few calls the Worker makes on one kind of outside input) fed
//! bytes. For every input the driver picks one of: purely random bytes, the target's structure-aware
//! generator (valid-looking JSON, form bodies in Twilio's names, phone-like strings, ...), or a stack of
//! mutations (bit flips, truncation, splicing, huge numbers, deep nesting, unicode, control characters)
//! of a valid seed or a generated input. The RNG is seeded, so a run is reproducible: the same seed and
//! count give the same inputs. Every call runs under `catch_unwind`; a panic is counted and its input
//! kept (hex), and `outcall-fuzz --replay TARGET HEX` runs that one input again.
//!
//! A target with several parts (a header and a body, a URL and a signature) takes them as fields of one
//! input separated by the byte 0xFF, which UTF-8 text never contains.

pub mod gen;
pub mod targets;

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

pub use gen::Gen;

/// The byte between the fields of a multi-part input.
pub const FIELD: u8 = 0xFF;

/// The seed of `./dev fuzz` and `./dev test` unless `--seed` says otherwise.
pub const DEFAULT_SEED: u64 = 0x6f75_7463_616c_6c21; // "outcall!"

/// Panicking inputs kept per target (all are counted).
const KEPT_PANICS: usize = 3;

/// One parser of outside input, as the fuzzer drives it.
pub struct Target {
    pub name: &'static str,
    /// The entry points exercised, for the report.
    pub entry: &'static str,
    /// Valid inputs, mutated as well as generated ones.
    pub seeds: fn() -> Vec<Vec<u8>>,
    /// A structure-aware input.
    pub generate: fn(&mut Gen) -> Vec<u8>,
    /// Runs the parser on one input (a panic here is a finding); whether the parser accepted it (for
    /// the report: structure-aware inputs must reach the paths past validation, not only the refusals).
    pub check: fn(&[u8]) -> bool,
}

/// A panic the fuzzer caught: the message with its location, and the input.
#[derive(Debug, Clone)]
pub struct Finding {
    pub message: String,
    pub input: Vec<u8>,
}

/// What one target's run came to.
#[derive(Debug, Clone)]
pub struct Report {
    pub name: &'static str,
    pub inputs: u64,
    /// How many the parser accepted.
    pub accepted: u64,
    /// Their total size in bytes.
    pub bytes: u64,
    pub panics: u64,
    pub elapsed: Duration,
    /// The slowest single input.
    pub slowest: Duration,
    pub findings: Vec<Finding>,
}

/// The fields of a multi-part input, as text (invalid UTF-8 replaced, as a parser of `&str` never sees it).
pub fn fields(input: &[u8]) -> Vec<String> {
    input.split(|b| *b == FIELD).map(|f| String::from_utf8_lossy(f).into_owned()).collect()
}

/// The field `i` of a multi-part input, or "".
pub fn field(fields: &[String], i: usize) -> &str {
    fields.get(i).map_or("", String::as_str)
}

/// Joins fields into one input.
pub fn frame<S: AsRef<[u8]>>(parts: &[S]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push(FIELD);
        }
        out.extend_from_slice(part.as_ref());
    }
    out
}

thread_local! {
    static FUZZING: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Panics inside a fuzzed call are recorded quietly; any other panic (a failing test) is reported as usual.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if FUZZING.with(Cell::get) {
                let message = match (info.payload().downcast_ref::<&str>(), info.payload().downcast_ref::<String>()) {
                    (Some(s), _) => (*s).to_owned(),
                    (_, Some(s)) => s.clone(),
                    _ => "(no message)".to_owned(),
                };
                let location = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{message}{location}")));
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs one input: whether the parser accepted it, or the panic's message.
pub fn run_one(target: &Target, input: &[u8]) -> Result<bool, String> {
    install_panic_hook();
    FUZZING.with(|f| f.set(true));
    let result = panic::catch_unwind(AssertUnwindSafe(|| (target.check)(input)));
    FUZZING.with(|f| f.set(false));
    result.map_err(|_| LAST_PANIC.with(|p| p.borrow_mut().take()).unwrap_or_else(|| "(no message)".into()))
}

/// A seed of its own for each target, so adding a target changes no other target's inputs.
fn target_seed(seed: u64, name: &str) -> u64 {
    name.bytes().fold(seed ^ 0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Upper bound on an input after mutation.
const MAX_INPUT: usize = 256 * 1024;

/// The next input of a run: random, generated, or a mutated seed or generated input.
fn next_input(target: &Target, seeds: &[Vec<u8>], g: &mut Gen) -> Vec<u8> {
    g.strict = g.percent(35);
    match g.below(100) {
        0..=7 => g.random_bytes(),
        8..=13 => g.random_fields(),
        14..=54 => (target.generate)(g),
        _ => {
            let base = if !seeds.is_empty() && g.percent(40) { g.pick(seeds).clone() } else { (target.generate)(g) };
            let other = if !seeds.is_empty() && g.percent(50) { g.pick(seeds).clone() } else { (target.generate)(g) };
            let mut input = base;
            for _ in 0..1 + g.below(6) {
                gen::mutate(g, &mut input, &other);
            }
            input.truncate(MAX_INPUT);
            input
        }
    }
}

/// Runs `count` inputs through one target.
pub fn run_target(target: &Target, count: u64, seed: u64) -> Report {
    let mut g = Gen::new(target_seed(seed, target.name));
    let seeds = (target.seeds)();
    let started = Instant::now();
    let mut report = Report {
        name: target.name,
        inputs: 0,
        accepted: 0,
        bytes: 0,
        panics: 0,
        elapsed: Duration::ZERO,
        slowest: Duration::ZERO,
        findings: Vec::new(),
    };
    // Every seed as given first, then generated and mutated inputs.
    let mut queue = seeds.clone().into_iter();
    while report.inputs < count {
        let input = queue.next().unwrap_or_else(|| next_input(target, &seeds, &mut g));
        let one = Instant::now();
        let panicked = run_one(target, &input);
        report.slowest = report.slowest.max(one.elapsed());
        report.inputs += 1;
        report.bytes += input.len() as u64;
        match panicked {
            Ok(accepted) => report.accepted += u64::from(accepted),
            Err(message) => {
                report.panics += 1;
                if report.findings.len() < KEPT_PANICS {
                    report.findings.push(Finding { message, input });
                }
            }
        }
    }
    report.elapsed = started.elapsed();
    report
}

/// Runs `count` inputs through each target, `threads` targets at a time; reports in the targets' order.
pub fn run_all(targets: &[Target], count: u64, seed: u64, threads: usize) -> Vec<Report> {
    let next = AtomicUsize::new(0);
    let reports: Mutex<Vec<Option<Report>>> = Mutex::new(vec![None; targets.len()]);
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, targets.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(target) = targets.get(i) else { break };
                let report = run_target(target, count, seed);
                reports.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(report);
            });
        }
    });
    reports.into_inner().unwrap_or_else(|e| e.into_inner()).into_iter().flatten().collect()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex(text: &str) -> Option<Vec<u8>> {
    let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// Thousands separated by commas.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The table of a run, and every kept panicking input.
pub fn render(reports: &[Report], targets: &[Target]) -> String {
    let mut out = format!(
        "{:<18} {:>11} {:>7} {:>8} {:>9} {:>10} {:>11}  {}\n",
        "parser", "inputs", "panics", "seconds", "accepted", "avg bytes", "slowest ms", "entry points"
    );
    for r in reports {
        let entry = targets.iter().find(|t| t.name == r.name).map_or("", |t| t.entry);
        out.push_str(&format!(
            "{:<18} {:>11} {:>7} {:>8.1} {:>8.1}% {:>10} {:>11.2}  {}\n",
            r.name,
            grouped(r.inputs),
            r.panics,
            r.elapsed.as_secs_f64(),
            100.0 * r.accepted as f64 / r.inputs.max(1) as f64,
            r.bytes / r.inputs.max(1),
            r.slowest.as_secs_f64() * 1000.0,
            entry
        ));
    }
    let inputs: u64 = reports.iter().map(|r| r.inputs).sum();
    let panics: u64 = reports.iter().map(|r| r.panics).sum();
    out.push_str(&format!("{:<18} {:>11} {:>7}\n", "all", grouped(inputs), panics));
    for r in reports {
        for f in &r.findings {
            const SHOWN: usize = 16 * 1024;
            let more = if f.input.len() > SHOWN {
                format!(" (first {SHOWN} of {} bytes)", f.input.len())
            } else {
                String::new()
            };
            out.push_str(&format!(
                "\nPANIC in {}: {}\n  input{more}: {}\n  replay: outcall-fuzz --replay {} <hex>\n",
                r.name,
                f.message,
                hex(&f.input[..f.input.len().min(SHOWN)]),
                r.name
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The short run `./dev test` makes: every target, 20,000 inputs, 0 panics.
    pub const SHORT_RUN: u64 = 20_000;

    fn short_run(name: &str) {
        let targets = targets::all();
        let target = targets.iter().find(|t| t.name == name).expect("a target");
        let report = run_target(target, SHORT_RUN, DEFAULT_SEED);
        assert_eq!(report.inputs, SHORT_RUN);
        assert_eq!(report.panics, 0, "{}", render(std::slice::from_ref(&report), &targets));
    }

    macro_rules! short_runs {
        ($($test:ident => $name:literal),* $(,)?) => {
            $(#[test] fn $test() { short_run($name); })*

            #[test]
            fn every_target_has_a_short_run() {
                let tested = [$($name),*];
                for t in targets::all() {
                    assert!(tested.contains(&t.name), "{} has no short run", t.name);
                }
            }
        };
    }

    short_runs! {
        webhook_survives_a_short_run => "webhook",
        media_stream_survives_a_short_run => "media_stream",
        stt_message_survives_a_short_run => "stt_message",
        twilio_status_survives_a_short_run => "twilio_status",
        twilio_signature_survives_a_short_run => "twilio_signature",
        vapi_message_survives_a_short_run => "vapi_message",
        vapi_auth_survives_a_short_run => "vapi_auth",
        batch_request_survives_a_short_run => "batch_request",
        suppression_request_survives_a_short_run => "suppression_request",
        sms_request_survives_a_short_run => "sms_request",
        sms_template_survives_a_short_run => "sms_template",
        sms_segments_survives_a_short_run => "sms_segments",
        sms_webhooks_survives_a_short_run => "sms_webhooks",
        idempotency_key_survives_a_short_run => "idempotency_key",
        pagination_survives_a_short_run => "pagination",
        phone_survives_a_short_run => "phone",
        ivr_actions_survives_a_short_run => "ivr_actions",
        user_jwt_survives_a_short_run => "user_jwt",
        jwks_survives_a_short_run => "jwks",
        operator_body_survives_a_short_run => "operator_body",
        route_survives_a_short_run => "route",
        body_cap_survives_a_short_run => "body_cap",
        authorization_survives_a_short_run => "authorization",
        twilio_answers_survives_a_short_run => "twilio_answers",
        config_survives_a_short_run => "config",
    }

    #[test]
    fn a_run_is_reproducible_and_catches_panics() {
        fn generate(g: &mut Gen) -> Vec<u8> {
            g.random_bytes()
        }
        fn check(input: &[u8]) -> bool {
            assert!(input.first() != Some(&7), "seven");
            input.is_empty()
        }
        let t = Target { name: "probe", entry: "", seeds: || vec![vec![7, 1]], generate, check };
        let a = run_target(&t, 5_000, 1);
        let b = run_target(&t, 5_000, 1);
        assert!(a.panics > 1, "the seed panics, and so do some random inputs");
        assert_eq!(a.panics, b.panics);
        assert_eq!(a.findings[0].input, vec![7, 1]);
        assert!(a.findings[0].message.starts_with("seven at "), "{}", a.findings[0].message);
    }

    #[test]
    fn fields_and_hex_round_trip() {
        let input = frame(&["a", "", "b\u{e9}"]);
        assert_eq!(fields(&input), vec!["a", "", "b\u{e9}"]);
        assert_eq!(unhex(&hex(&input)), Some(input));
        assert_eq!(grouped(1_000_000), "1,000,000");
        assert_eq!(grouped(999), "999");
    }
}
