//! Simulated time. Every wait is nominal (what real Twilio/VAPI would take);
//! the process sleeps nominal × `SANDBOX_TIME_SCALE`, and records keep the
//! nominal figures so tests can assert exact timings at any speed.

use std::time::{Duration, Instant};

use tokio::sync::watch;

/// Real duration of a nominal wait.
pub fn real(scale: f64, nominal_ms: u64) -> Duration {
    Duration::from_secs_f64(nominal_ms as f64 / 1000.0 * scale)
}

pub async fn sleep_nominal(scale: f64, nominal_ms: u64) {
    let d = real(scale, nominal_ms);
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

/// Nominal time elapsed since some origin (for a call: the moment it was answered).
#[derive(Debug)]
pub struct NominalClock {
    scale: f64,
    elapsed_ms: u64,
    progress: Option<watch::Sender<Progress>>,
}

/// How far a tracked clock has committed, for what runs beside the call (its media streams): every
/// wait is announced when it begins, and whoever started it has already decided what happens
/// before its end, so audio up to `horizon_ms` can be rendered.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Nominal time up to which the call's course is decided.
    pub horizon_ms: u64,
    /// The nominal time the current wait began at, and the real instant it began.
    pub anchor_ms: u64,
    pub anchor: Instant,
    /// The call is over: nothing happens after `horizon_ms`.
    pub ended: bool,
}

impl Progress {
    /// The real instant nominal `ms` (not after the horizon) is reached, given the scale.
    pub fn real_instant(&self, scale: f64, ms: u64) -> Instant {
        self.anchor + real(scale, ms.saturating_sub(self.anchor_ms))
    }
}

impl NominalClock {
    pub fn new(scale: f64) -> NominalClock {
        NominalClock { scale, elapsed_ms: 0, progress: None }
    }

    /// A clock that publishes its progress.
    pub fn tracked(scale: f64) -> (NominalClock, watch::Receiver<Progress>) {
        let start = Progress { horizon_ms: 0, anchor_ms: 0, anchor: Instant::now(), ended: false };
        let (tx, rx) = watch::channel(start);
        (NominalClock { scale, elapsed_ms: 0, progress: Some(tx) }, rx)
    }

    /// Nothing more happens: the horizon is final.
    pub fn end(&mut self) {
        if let Some(tx) = &self.progress {
            let at = self.elapsed_ms;
            tx.send_replace(Progress { horizon_ms: at, anchor_ms: at, anchor: Instant::now(), ended: true });
        }
    }

    pub fn elapsed_ms(&self) -> u64 {
        self.elapsed_ms
    }

    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Waits `ms` nominal milliseconds.
    pub async fn advance(&mut self, ms: u64) {
        if let Some(tx) = &self.progress {
            let at = self.elapsed_ms;
            tx.send_replace(Progress { horizon_ms: at + ms, anchor_ms: at, anchor: Instant::now(), ended: false });
        }
        sleep_nominal(self.scale, ms).await;
        self.elapsed_ms += ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling() {
        assert_eq!(real(0.5, 2000), Duration::from_secs(1));
        assert_eq!(real(0.0, 2000), Duration::ZERO);
    }

    #[tokio::test]
    async fn advance_keeps_nominal_time() {
        let mut clock = NominalClock::new(0.0);
        clock.advance(1500).await;
        clock.advance(100).await;
        assert_eq!(clock.elapsed_ms(), 1600);
    }

    #[tokio::test]
    async fn a_tracked_clock_announces_each_wait() {
        let (mut clock, rx) = NominalClock::tracked(0.0);
        clock.advance(1500).await;
        let p = *rx.borrow();
        assert_eq!((p.anchor_ms, p.horizon_ms, p.ended), (0, 1500, false));
        assert_eq!(p.real_instant(1.0, 1000), p.anchor + Duration::from_secs(1));
        clock.end();
        assert!(rx.borrow().ended);
        assert_eq!(rx.borrow().horizon_ms, 1500);
    }
}
