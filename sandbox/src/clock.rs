//! Simulated time. Every wait is nominal (what real Twilio/VAPI would take);
//! the process sleeps nominal × `SANDBOX_TIME_SCALE`, and records keep the
//! nominal figures so tests can assert exact timings at any speed.

use std::time::Duration;

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
}

impl NominalClock {
    pub fn new(scale: f64) -> NominalClock {
        NominalClock { scale, elapsed_ms: 0 }
    }

    pub fn elapsed_ms(&self) -> u64 {
        self.elapsed_ms
    }

    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Waits `ms` nominal milliseconds.
    pub async fn advance(&mut self, ms: u64) {
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
}
