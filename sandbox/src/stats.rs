//! What a run did to Twilio, for load and fault tests: calls created, how many
//! were live at once, the busiest second, and attempts that were dialled twice.
//! All on the real clock, whatever the time scale.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};

use crate::state::lock;

const WINDOW: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct Stats {
    inner: Mutex<Observed>,
}

#[derive(Default)]
struct Observed {
    calls_created: u64,
    /// Calls created and not yet ended. A gauge: survives a reset, since the
    /// calls it counts still end afterwards.
    live: u64,
    peak_concurrency: u64,
    /// Creation times within the last second of the latest one.
    recent_creates: VecDeque<Duration>,
    peak_calls_per_second: u64,
    /// Calls by the attempt (`?session=` of the StatusCallback) that placed them.
    sids_by_session: BTreeMap<String, Vec<String>>,
}

impl Stats {
    /// A create that placed a call, `at` real time since the sandbox started.
    pub fn call_created(&self, at: Duration, sid: &str, session: Option<&str>) {
        let mut o = lock(&self.inner);
        o.calls_created += 1;
        o.live += 1;
        o.peak_concurrency = o.peak_concurrency.max(o.live);
        // Every window that holds the most creates ends at a create, so
        // checking the window ending at each create finds the peak.
        while o.recent_creates.front().is_some_and(|t| at.saturating_sub(*t) >= WINDOW) {
            o.recent_creates.pop_front();
        }
        o.recent_creates.push_back(at);
        o.peak_calls_per_second = o.peak_calls_per_second.max(o.recent_creates.len() as u64);
        if let Some(session) = session {
            o.sids_by_session.entry(session.to_string()).or_default().push(sid.to_string());
        }
    }

    /// The call's final status was decided.
    pub fn call_ended(&self) {
        let mut o = lock(&self.inner);
        o.live = o.live.saturating_sub(1);
    }

    /// Starts a new observation; calls still live count towards the new peak.
    pub fn reset(&self) {
        let mut o = lock(&self.inner);
        *o = Observed { live: o.live, peak_concurrency: o.live, ..Observed::default() };
    }

    pub fn snapshot(&self) -> Value {
        let o = lock(&self.inner);
        let twice: Vec<Value> = o
            .sids_by_session
            .iter()
            .filter(|(_, sids)| sids.len() > 1)
            .map(|(session, sids)| json!({ "session": session, "sids": sids }))
            .collect();
        let by_session: serde_json::Map<String, Value> =
            o.sids_by_session.iter().map(|(session, sids)| (session.clone(), json!(sids.len()))).collect();
        json!({
            "calls_created": o.calls_created,
            "live_calls": o.live,
            "peak_concurrency": o.peak_concurrency,
            "peak_calls_per_second": o.peak_calls_per_second,
            "sessions_dialled_twice": twice,
            "creates_by_session": by_session,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn busiest_second_slides() {
        let stats = Stats::default();
        // 3 in [0, 1000), then 4 within 999 ms of each other straddling the 2 s mark.
        for (i, at) in [0, 400, 999, 1000, 1600, 1999, 2500, 2599].iter().enumerate() {
            stats.call_created(ms(*at), &format!("CA{i}"), None);
        }
        // Windows: ending at 999 → {0,400,999}=3; at 1999 → {1000,1600,1999}=3;
        // at 2599 → {1600,1999,2500,2599}=4.
        assert_eq!(stats.snapshot()["peak_calls_per_second"], 4);
        let spaced = Stats::default();
        for at in [0, 1000, 2000, 3000] {
            spaced.call_created(ms(at), "CA", None);
        }
        assert_eq!(spaced.snapshot()["peak_calls_per_second"], 1, "exactly 1 s apart is not the same second");
    }

    #[test]
    fn concurrency_peak() {
        let stats = Stats::default();
        stats.call_created(ms(0), "CA1", None);
        stats.call_created(ms(1), "CA2", None);
        stats.call_ended();
        stats.call_created(ms(2), "CA3", None);
        stats.call_created(ms(3), "CA4", None);
        let s = stats.snapshot();
        assert_eq!((s["peak_concurrency"].as_u64(), s["live_calls"].as_u64()), (Some(3), Some(3)));
        for _ in 0..3 {
            stats.call_ended();
        }
        stats.call_ended(); // an extra end never underflows
        assert_eq!(stats.snapshot()["live_calls"], 0);
        assert_eq!(stats.snapshot()["peak_concurrency"], 3);
        assert_eq!(stats.snapshot()["calls_created"], 4);
    }

    #[test]
    fn reset_keeps_live_calls() {
        let stats = Stats::default();
        stats.call_created(ms(0), "CA1", Some("s1"));
        stats.call_created(ms(1), "CA2", None);
        stats.call_ended();
        stats.reset();
        let s = stats.snapshot();
        assert_eq!(s["calls_created"], 0);
        assert_eq!(s["peak_concurrency"], 1, "the call still live");
        assert_eq!(s["creates_by_session"], json!({}));
        stats.call_created(ms(5000), "CA3", None);
        assert_eq!(stats.snapshot()["peak_concurrency"], 2);
    }

    #[test]
    fn sessions_dialled_twice() {
        let stats = Stats::default();
        stats.call_created(ms(0), "CA1", Some("b"));
        stats.call_created(ms(1), "CA2", Some("a"));
        stats.call_created(ms(2), "CA3", Some("b"));
        stats.call_created(ms(3), "CA4", None);
        let s = stats.snapshot();
        assert_eq!(s["sessions_dialled_twice"], json!([{"session": "b", "sids": ["CA1", "CA3"]}]));
        assert_eq!(s["creates_by_session"], json!({"a": 1, "b": 2}));
        assert_eq!(s["calls_created"], 4);
    }
}
