//! Fault injection, set per run through `/_sandbox/faults`: the ways real
//! Twilio, VAPI and pg_net lose, repeat, delay or reorder things, drawn from a
//! seeded generator so a run can be replayed.
//!
//! Each place that draws (the Twilio API, pg_net, status callbacks, VAPI) has
//! a stream of its own, so how many webhooks a run delivers does not shift
//! which Twilio requests fail. Within a stream, draws follow the order
//! requests arrive in: the same seed gives the same faults for the same
//! sequence of requests, and the same rates for any sequence.

pub mod api;
pub mod rng;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::state::lock;
use rng::SplitMix64;

/// Longest `timeout_hold_ms` accepted: beyond it a test would only hang.
const MAX_HOLD_MS: u64 = 600_000;

/// One run's fault rates. Rates are probabilities in `[0, 1]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultSettings {
    pub seed: u64,
    /// Per authenticated Calls API request; at most one of the four is drawn.
    pub twilio_429: f64,
    pub twilio_503: f64,
    pub twilio_504: f64,
    pub twilio_timeout: f64,
    /// Real milliseconds a `twilio_timeout` answer is held back.
    pub timeout_hold_ms: u64,
    /// Per pg_net request.
    pub drop_webhook: f64,
    /// Per status callback.
    pub duplicate_status_callback: f64,
    /// Per call with a StatusCallback.
    pub reorder_status_callbacks: f64,
    /// Per end-of-call-report.
    pub duplicate_vapi_report: f64,
    /// Per call that reached VAPI: the report goes out before Twilio's final
    /// status callback (otherwise after it has been answered).
    pub vapi_report_first: f64,
}

impl Default for FaultSettings {
    /// No faults. Two fields are not zero because zero would not mean "off":
    /// a timeout needs a hold, and the sandbox without faults has always sent
    /// VAPI's report before Twilio's final callback.
    fn default() -> FaultSettings {
        FaultSettings {
            seed: 0,
            twilio_429: 0.0,
            twilio_503: 0.0,
            twilio_504: 0.0,
            twilio_timeout: 0.0,
            timeout_hold_ms: 3000,
            drop_webhook: 0.0,
            duplicate_status_callback: 0.0,
            reorder_status_callbacks: 0.0,
            duplicate_vapi_report: 0.0,
            vapi_report_first: 1.0,
        }
    }
}

impl FaultSettings {
    /// Parses and validates a `POST /_sandbox/faults` body; the message says what is wrong.
    pub fn parse(body: &[u8]) -> Result<FaultSettings, String> {
        let settings: FaultSettings = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        settings.validate()?;
        Ok(settings)
    }

    fn rates(&self) -> [(&'static str, f64); 9] {
        [
            ("twilio_429", self.twilio_429),
            ("twilio_503", self.twilio_503),
            ("twilio_504", self.twilio_504),
            ("twilio_timeout", self.twilio_timeout),
            ("drop_webhook", self.drop_webhook),
            ("duplicate_status_callback", self.duplicate_status_callback),
            ("reorder_status_callbacks", self.reorder_status_callbacks),
            ("duplicate_vapi_report", self.duplicate_vapi_report),
            ("vapi_report_first", self.vapi_report_first),
        ]
    }

    pub fn validate(&self) -> Result<(), String> {
        for (name, rate) in self.rates() {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be a probability in [0, 1], got {rate}"));
            }
        }
        // One draw picks at most one Twilio fault, so their rates share the unit interval.
        let twilio = self.twilio_429 + self.twilio_503 + self.twilio_504 + self.twilio_timeout;
        if twilio > 1.0 + 1e-9 {
            return Err(format!(
                "twilio_429 + twilio_503 + twilio_504 + twilio_timeout must not exceed 1, got {twilio}"
            ));
        }
        if self.timeout_hold_ms > MAX_HOLD_MS {
            return Err(format!("timeout_hold_ms must be at most {MAX_HOLD_MS}, got {}", self.timeout_hold_ms));
        }
        Ok(())
    }
}

/// What happens to one Calls API request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TwilioFault {
    /// 429, not processed.
    TooManyRequests,
    /// 503, not processed.
    Unavailable,
    /// Processed, but the answer is a 504: the client cannot tell whether a call was placed.
    GatewayTimeout,
    /// Processed; the answer is held this long, past the client's patience.
    Timeout { hold: Duration },
}

impl TwilioFault {
    pub fn kind(self) -> FaultKind {
        match self {
            TwilioFault::TooManyRequests => FaultKind::Twilio429,
            TwilioFault::Unavailable => FaultKind::Twilio503,
            TwilioFault::GatewayTimeout => FaultKind::Twilio504,
            TwilioFault::Timeout { .. } => FaultKind::TwilioTimeout,
        }
    }
}

/// What the `injected` counters count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    Twilio429,
    Twilio503,
    Twilio504,
    TwilioTimeout,
    DropWebhook,
    DuplicateStatusCallback,
    /// Counted per call once a callback was actually overtaken.
    ReorderStatusCallbacks,
    DuplicateVapiReport,
    /// The two orders of VAPI's report and Twilio's final callback, counted per call.
    VapiReportFirst,
    VapiReportAfter,
}

impl FaultKind {
    const ALL: [FaultKind; 10] = [
        FaultKind::Twilio429,
        FaultKind::Twilio503,
        FaultKind::Twilio504,
        FaultKind::TwilioTimeout,
        FaultKind::DropWebhook,
        FaultKind::DuplicateStatusCallback,
        FaultKind::ReorderStatusCallbacks,
        FaultKind::DuplicateVapiReport,
        FaultKind::VapiReportFirst,
        FaultKind::VapiReportAfter,
    ];

    /// The name in counters, logs and call records.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Twilio429 => "twilio_429",
            FaultKind::Twilio503 => "twilio_503",
            FaultKind::Twilio504 => "twilio_504",
            FaultKind::TwilioTimeout => "twilio_timeout",
            FaultKind::DropWebhook => "drop_webhook",
            FaultKind::DuplicateStatusCallback => "duplicate_status_callback",
            FaultKind::ReorderStatusCallbacks => "reorder_status_callbacks",
            FaultKind::DuplicateVapiReport => "duplicate_vapi_report",
            FaultKind::VapiReportFirst => "vapi_report_first",
            FaultKind::VapiReportAfter => "vapi_report_after",
        }
    }
}

/// The places that draw, each with its own generator.
#[derive(Debug, Clone, Copy)]
enum Stream {
    TwilioApi,
    Webhooks,
    Callbacks,
    Vapi,
}

const STREAMS: usize = 4;

struct Injector {
    settings: FaultSettings,
    streams: [SplitMix64; STREAMS],
    injected: [u64; FaultKind::ALL.len()],
    /// Twilio requests refused (429, 503) by what they asked (create, fetch, list, message create): a test of
    /// creates must not count the look-ups and price fetches the same faults refuse.
    refused: BTreeMap<String, u64>,
}

impl Injector {
    fn new(settings: FaultSettings) -> Injector {
        // Stream seeds are outputs of the run's seed, so streams start far apart.
        let mut root = SplitMix64::new(settings.seed);
        let streams = std::array::from_fn(|_| SplitMix64::new(root.next_u64()));
        Injector { settings, streams, injected: [0; FaultKind::ALL.len()], refused: BTreeMap::new() }
    }

    fn next_unit(&mut self, stream: Stream) -> f64 {
        self.streams[stream as usize].next_unit()
    }

    fn count(&mut self, kind: FaultKind) {
        self.injected[kind as usize] += 1;
    }
}

/// The faults in force and what was injected since they were set.
pub struct Faults {
    inner: Mutex<Injector>,
}

impl Default for Faults {
    fn default() -> Faults {
        Faults { inner: Mutex::new(Injector::new(FaultSettings::default())) }
    }
}

impl Faults {
    /// Replaces the settings: reseeds the streams and zeroes the counters.
    pub fn set(&self, settings: FaultSettings) {
        *lock(&self.inner) = Injector::new(settings);
    }

    pub fn reset(&self) {
        self.set(FaultSettings::default());
    }

    pub fn settings(&self) -> FaultSettings {
        lock(&self.inner).settings.clone()
    }

    /// `{"twilio_429": n, ...}` for every kind.
    pub fn injected(&self) -> Map<String, Value> {
        let inner = lock(&self.inner);
        FaultKind::ALL.iter().map(|k| (k.name().to_string(), Value::from(inner.injected[*k as usize]))).collect()
    }

    pub fn record(&self, kind: FaultKind) {
        lock(&self.inner).count(kind);
    }

    /// A Twilio request of this kind was refused by its fault.
    pub fn record_refusal(&self, request: &str) {
        *lock(&self.inner).refused.entry(request.to_owned()).or_default() += 1;
    }

    /// `{"create": n, ...}`: the Twilio requests refused so far, by what they asked.
    pub fn refused(&self) -> Map<String, Value> {
        lock(&self.inner).refused.iter().map(|(request, n)| (request.clone(), Value::from(*n))).collect()
    }

    /// One draw for a Calls API request: at most one fault, counted.
    pub fn twilio_request(&self) -> Option<TwilioFault> {
        let mut inner = lock(&self.inner);
        let x = inner.next_unit(Stream::TwilioApi);
        let s = &inner.settings;
        let hold = Duration::from_millis(s.timeout_hold_ms);
        let candidates = [
            (s.twilio_429, TwilioFault::TooManyRequests),
            (s.twilio_503, TwilioFault::Unavailable),
            (s.twilio_504, TwilioFault::GatewayTimeout),
            (s.twilio_timeout, TwilioFault::Timeout { hold }),
        ];
        let fault = pick(x, &candidates)?;
        inner.count(fault.kind());
        Some(fault)
    }

    /// Whether pg_net drops this request (counted).
    pub fn drop_webhook(&self) -> bool {
        self.happens(Stream::Webhooks, |s| s.drop_webhook, Some(FaultKind::DropWebhook))
    }

    /// Whether this status callback goes out twice (counted).
    pub fn duplicate_status_callback(&self) -> bool {
        self.happens(Stream::Callbacks, |s| s.duplicate_status_callback, Some(FaultKind::DuplicateStatusCallback))
    }

    /// Whether this call's callbacks are delivered out of order. Not counted:
    /// the queue records it once a callback was actually overtaken.
    pub fn reorder_status_callbacks(&self) -> bool {
        self.happens(Stream::Callbacks, |s| s.reorder_status_callbacks, None)
    }

    /// Whether this end-of-call-report goes out twice (counted).
    pub fn duplicate_vapi_report(&self) -> bool {
        self.happens(Stream::Vapi, |s| s.duplicate_vapi_report, Some(FaultKind::DuplicateVapiReport))
    }

    /// Whether VAPI's report precedes Twilio's final callback; both orders are counted.
    pub fn vapi_report_first(&self) -> bool {
        let first = self.happens(Stream::Vapi, |s| s.vapi_report_first, Some(FaultKind::VapiReportFirst));
        if !first {
            self.record(FaultKind::VapiReportAfter);
        }
        first
    }

    fn happens(&self, stream: Stream, rate: impl Fn(&FaultSettings) -> f64, counted: Option<FaultKind>) -> bool {
        let mut inner = lock(&self.inner);
        let hit = inner.next_unit(stream) < rate(&inner.settings);
        if let (true, Some(kind)) = (hit, counted) {
            inner.count(kind);
        }
        hit
    }
}

/// The candidate whose slice of `[0, 1)` holds `x`; slices are laid end to end.
fn pick<T: Copy>(x: f64, candidates: &[(f64, T)]) -> Option<T> {
    let mut upper = 0.0;
    for (rate, outcome) in candidates {
        upper += rate;
        if x < upper {
            return Some(*outcome);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faults(json: &str) -> Faults {
        let f = Faults::default();
        f.set(FaultSettings::parse(json.as_bytes()).unwrap());
        f
    }

    fn twilio_draws(f: &Faults, n: usize) -> Vec<Option<FaultKind>> {
        (0..n).map(|_| f.twilio_request().map(TwilioFault::kind)).collect()
    }

    #[test]
    fn same_seed_same_faults() {
        let body = r#"{"seed": 42, "twilio_429": 0.1, "twilio_504": 0.2, "drop_webhook": 0.3}"#;
        let (a, b) = (faults(body), faults(body));
        assert_eq!(twilio_draws(&a, 200), twilio_draws(&b, 200));
        let drops = |f: &Faults| (0..200).map(|_| f.drop_webhook()).collect::<Vec<_>>();
        assert_eq!(drops(&a), drops(&b));
        let other = faults(r#"{"seed": 43, "twilio_429": 0.1, "twilio_504": 0.2}"#);
        assert_ne!(twilio_draws(&a, 200), twilio_draws(&other, 200));
    }

    #[test]
    fn streams_do_not_shift_each_other() {
        let body = r#"{"seed": 9, "twilio_503": 0.5, "drop_webhook": 0.5}"#;
        let (quiet, busy) = (faults(body), faults(body));
        for _ in 0..57 {
            busy.drop_webhook();
        }
        assert_eq!(twilio_draws(&quiet, 100), twilio_draws(&busy, 100));
    }

    #[test]
    fn refusals_are_counted_by_what_was_asked_until_the_next_settings() {
        let f = faults(r#"{"seed": 5, "twilio_503": 1.0}"#);
        for request in ["create", "fetch", "create", "list"] {
            f.record_refusal(request);
        }
        assert_eq!(Value::Object(f.refused()), serde_json::json!({"create": 2, "fetch": 1, "list": 1}));
        f.reset();
        assert!(f.refused().is_empty());
    }

    #[test]
    fn setting_reseeds_and_zeroes_counters() {
        let body = r#"{"seed": 5, "twilio_429": 0.5}"#;
        let f = faults(body);
        let first = twilio_draws(&f, 50);
        assert!(f.injected()["twilio_429"].as_u64().unwrap() > 0);
        f.set(FaultSettings::parse(body.as_bytes()).unwrap());
        assert_eq!(f.injected()["twilio_429"], 0);
        assert_eq!(twilio_draws(&f, 50), first);
    }

    #[test]
    fn rates_hold_over_many_draws() {
        let f = faults(
            r#"{"seed": 1, "twilio_429": 0.1, "twilio_503": 0.1, "twilio_504": 0.1, "twilio_timeout": 0.1,
                "drop_webhook": 0.1, "duplicate_status_callback": 0.25, "vapi_report_first": 0.5}"#,
        );
        let n = 20_000;
        let draws = twilio_draws(&f, n);
        for kind in [FaultKind::Twilio429, FaultKind::Twilio503, FaultKind::Twilio504, FaultKind::TwilioTimeout] {
            let share = draws.iter().filter(|d| **d == Some(kind)).count() as f64 / n as f64;
            assert!((share - 0.1).abs() < 0.01, "{} {share}", kind.name());
            assert_eq!(f.injected()[kind.name()], draws.iter().filter(|d| **d == Some(kind)).count() as u64);
        }
        let share = |hits: usize| hits as f64 / n as f64;
        assert!((share((0..n).filter(|_| f.drop_webhook()).count()) - 0.1).abs() < 0.01);
        assert!((share((0..n).filter(|_| f.duplicate_status_callback()).count()) - 0.25).abs() < 0.015);
        let first = (0..n).filter(|_| f.vapi_report_first()).count();
        assert!((share(first) - 0.5).abs() < 0.015);
        assert_eq!(f.injected()["vapi_report_first"], first as u64);
        assert_eq!(f.injected()["vapi_report_after"], (n - first) as u64);
    }

    #[test]
    fn off_by_default() {
        let f = Faults::default();
        assert!(twilio_draws(&f, 1000).iter().all(Option::is_none));
        assert!((0..1000).all(|_| !f.drop_webhook() && !f.duplicate_status_callback() && f.vapi_report_first()));
        assert!(f.injected().values().filter(|v| **v != 0).count() == 1, "only vapi_report_first counts");
    }

    #[test]
    fn certain_faults() {
        let f = faults(r#"{"twilio_timeout": 1, "timeout_hold_ms": 250, "reorder_status_callbacks": 1}"#);
        assert_eq!(f.twilio_request(), Some(TwilioFault::Timeout { hold: Duration::from_millis(250) }));
        assert!(f.reorder_status_callbacks());
        assert_eq!(f.injected()["reorder_status_callbacks"], 0, "counted by the queue, not the draw");
    }

    #[test]
    fn validation() {
        let err = |body: &str| FaultSettings::parse(body.as_bytes()).unwrap_err();
        assert!(err(r#"{"twilio_429": 1.5}"#).contains("twilio_429"));
        assert!(err(r#"{"drop_webhook": -0.1}"#).contains("drop_webhook"));
        assert!(err(r#"{"drop_webhooks": 0.1}"#).contains("unknown field"));
        assert!(err(r#"{"twilio_503": 0.6, "twilio_504": 0.6}"#).contains("must not exceed 1"));
        assert!(err(r#"{"timeout_hold_ms": 700000}"#).contains("timeout_hold_ms"));
        assert!(err(r#"{"seed": -1}"#).contains("seed") || err(r#"{"seed": -1}"#).contains("invalid"));
        assert!(err("not json").contains("expected"));
        let parsed = FaultSettings::parse(br#"{"twilio_429": 0.25}"#).unwrap();
        assert_eq!(parsed, FaultSettings { twilio_429: 0.25, ..FaultSettings::default() });
        assert_eq!(FaultSettings::parse(b"{}").unwrap(), FaultSettings::default());
    }

    #[test]
    fn pick_lays_slices_end_to_end() {
        let c = [(0.1, 'a'), (0.0, 'b'), (0.2, 'c')];
        assert_eq!(pick(0.05, &c), Some('a'));
        assert_eq!(pick(0.1, &c), Some('c'));
        assert_eq!(pick(0.299, &c), Some('c'));
        assert_eq!(pick(0.31, &c), None);
    }
}
