//! Retrying provider requests (Twilio's API): which answers deserve another try, and when.
//!
//! Twilio's rule (shared/reference/twilio.md): retry only 429, 503, 504 and network failures or
//! timeouts; never another 4xx. Of those, 429 and 503 mean "not processed", so the same request may go
//! again. A 504, a timeout or a dropped connection may have been processed: the caller must look for the
//! call it may have created before sending again, or it could dial one attempt twice.

use chrono::{DateTime, Utc};
use std::time::Duration;

/// The longest `Retry-After` we wait for; a longer one is treated as this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// What came back from one try of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// An HTTP answer with this status.
    Status(u16),
    /// No answer: the connection failed or our timeout ran out.
    NoAnswer,
}

/// What a reply means for the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A 2xx.
    Success,
    /// Not processed (429, 503): back off and send the same request again.
    NotProcessed,
    /// Perhaps processed (504, timeout, network failure): find out before sending again.
    Unknown,
    /// Refused for good (every other status): never retried.
    Permanent,
}

pub fn verdict(reply: Reply) -> Verdict {
    match reply {
        Reply::Status(200..=299) => Verdict::Success,
        Reply::Status(429 | 503) => Verdict::NotProcessed,
        Reply::Status(504) | Reply::NoAnswer => Verdict::Unknown,
        Reply::Status(_) => Verdict::Permanent,
    }
}

/// What a failed try tells the circuit breaker and the quota count about Twilio (SQL's `p_failure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderFailure {
    /// A 5xx or no answer: an outage, counted towards opening the breaker.
    Unavailable,
    /// A 429: the account's quota, counted per day but never an outage.
    Throttled,
}

/// The provider failure a reply is, if any (a 2xx or another 4xx is not the provider failing).
pub fn provider_failure(reply: Reply) -> Option<ProviderFailure> {
    match reply {
        Reply::Status(429) => Some(ProviderFailure::Throttled),
        Reply::Status(500..=599) | Reply::NoAnswer => Some(ProviderFailure::Unavailable),
        Reply::Status(_) => None,
    }
}

/// The waits between tries: default 1 s, 4 s, 10 s, so at most four tries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    delays: Vec<Duration>,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { delays: [1_000, 4_000, 10_000].map(Duration::from_millis).to_vec() }
    }
}

impl Backoff {
    /// A comma-separated list of milliseconds, e.g. `1000,4000,10000`. Empty means "never retry".
    pub fn parse(list: &str) -> Result<Self, String> {
        let delays = list
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(|part| match part.parse::<u64>() {
                Ok(ms) if ms <= MAX_RETRY_AFTER.as_millis() as u64 => Ok(Duration::from_millis(ms)),
                _ => Err(format!("{part:?} is not a whole number of milliseconds up to 60000")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { delays })
    }

    /// How many times a request is sent again at most.
    pub fn retries(&self) -> usize {
        self.delays.len()
    }

    /// The wait before retry number `retry` (1 = the first retry), or `None` when retries are used up.
    /// A `Retry-After` from the provider is honoured: never retry sooner than it asks (capped at
    /// [`MAX_RETRY_AFTER`]).
    pub fn delay(&self, retry: usize, retry_after: Option<Duration>) -> Option<Duration> {
        let scheduled = *self.delays.get(retry.checked_sub(1)?)?;
        Some(scheduled.max(retry_after.unwrap_or_default().min(MAX_RETRY_AFTER)))
    }
}

/// What to do after a try of a create request failed in a retryable way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextTry {
    /// Wait, then send the same request again.
    Resend(Duration),
    /// Wait, then look for the call the request may have created; send again only if there is none.
    LookThenResend(Duration),
    /// Retries are used up, but the request may have created a call: wait, look, and give up only if
    /// there is none.
    LookThenGiveUp(Duration),
    /// Retries are used up and nothing was created: record the failure.
    GiveUp,
}

/// The wait before the last look, when retries are used up (Twilio lists a new call within a second).
pub const LAST_LOOK_AFTER: Duration = Duration::from_secs(1);

impl Backoff {
    /// After failed try number `retry` (1 = the first) with this verdict: what next. A request that may
    /// have been processed is never sent again before looking: one attempt must not dial twice.
    pub fn next_try(&self, verdict: Verdict, retry: usize, retry_after: Option<Duration>) -> NextTry {
        let wait = self.delay(retry, retry_after);
        match (verdict, wait) {
            (Verdict::Unknown, Some(wait)) => NextTry::LookThenResend(wait),
            (Verdict::Unknown, None) => NextTry::LookThenGiveUp(LAST_LOOK_AFTER),
            (_, Some(wait)) => NextTry::Resend(wait),
            (_, None) => NextTry::GiveUp,
        }
    }
}

/// Reads a `Retry-After` header: delay-seconds or an HTTP-date (RFC 7231), relative to `now`.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_breaker_counts_5xx_and_silence_and_a_429_is_quota() {
        for status in [500, 502, 503, 504] {
            assert_eq!(provider_failure(Reply::Status(status)), Some(ProviderFailure::Unavailable), "{status}");
        }
        assert_eq!(provider_failure(Reply::NoAnswer), Some(ProviderFailure::Unavailable));
        assert_eq!(provider_failure(Reply::Status(429)), Some(ProviderFailure::Throttled));
        for status in [201, 400, 401, 404] {
            assert_eq!(provider_failure(Reply::Status(status)), None, "{status}");
        }
        assert_eq!(serde_json::to_value(ProviderFailure::Unavailable).unwrap(), "unavailable");
        assert_eq!(serde_json::to_value(ProviderFailure::Throttled).unwrap(), "throttled");
    }

    #[test]
    fn only_429_503_504_and_silence_are_retried() {
        assert_eq!(verdict(Reply::Status(201)), Verdict::Success);
        assert_eq!(verdict(Reply::Status(429)), Verdict::NotProcessed);
        assert_eq!(verdict(Reply::Status(503)), Verdict::NotProcessed);
        assert_eq!(verdict(Reply::Status(504)), Verdict::Unknown);
        assert_eq!(verdict(Reply::NoAnswer), Verdict::Unknown);
        for status in [400, 401, 403, 404, 409, 500, 502] {
            assert_eq!(verdict(Reply::Status(status)), Verdict::Permanent, "{status}");
        }
    }

    #[test]
    fn the_default_schedule_is_1_4_10_seconds() {
        let backoff = Backoff::default();
        let secs = |retry| backoff.delay(retry, None).map(|d| d.as_secs());
        assert_eq!((secs(1), secs(2), secs(3), secs(4)), (Some(1), Some(4), Some(10), None));
        assert_eq!(backoff.delay(0, None), None);
        assert_eq!(backoff.retries(), 3);
    }

    #[test]
    fn parses_a_schedule_and_refuses_nonsense() {
        assert_eq!(Backoff::parse("50, 200,500").unwrap().delay(3, None), Some(Duration::from_millis(500)));
        assert_eq!(Backoff::parse("").unwrap().retries(), 0);
        assert!(Backoff::parse("1s").is_err());
        assert!(Backoff::parse("-5").is_err());
        assert!(Backoff::parse("60001").is_err());
    }

    #[test]
    fn reads_retry_after_in_both_forms() {
        let now = DateTime::parse_from_rfc3339("2026-11-21T12:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Sat, 21 Nov 2026 12:00:07 GMT", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Sat, 21 Nov 2026 11:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn an_answer_that_may_hide_a_call_is_looked_up_before_anything_is_sent_again() {
        let backoff = Backoff::default();
        let s = Duration::from_secs;
        assert_eq!(backoff.next_try(Verdict::NotProcessed, 1, None), NextTry::Resend(s(1)));
        assert_eq!(backoff.next_try(Verdict::NotProcessed, 2, Some(s(7))), NextTry::Resend(s(7)));
        assert_eq!(backoff.next_try(Verdict::NotProcessed, 4, None), NextTry::GiveUp);
        assert_eq!(backoff.next_try(Verdict::Unknown, 3, None), NextTry::LookThenResend(s(10)));
        assert_eq!(backoff.next_try(Verdict::Unknown, 4, None), NextTry::LookThenGiveUp(LAST_LOOK_AFTER));
    }

    proptest! {
        #[test]
        fn an_unknown_outcome_is_always_looked_up_and_tries_are_bounded(
            retry in 1usize..10,
            unknown in any::<bool>(),
        ) {
            let backoff = Backoff::default();
            let verdict = if unknown { Verdict::Unknown } else { Verdict::NotProcessed };
            let next = backoff.next_try(verdict, retry, None);
            let looks = matches!(next, NextTry::LookThenResend(_) | NextTry::LookThenGiveUp(_));
            prop_assert_eq!(looks, unknown);
            let sends_again = matches!(next, NextTry::Resend(_) | NextTry::LookThenResend(_));
            prop_assert_eq!(sends_again, retry <= backoff.retries());
        }

        #[test]
        fn a_wait_is_never_shorter_than_the_schedule_or_retry_after(
            delays in proptest::collection::vec(0u64..60_000, 0..6),
            retry in 0usize..8,
            retry_after in proptest::option::of(0u64..200_000),
        ) {
            let list = delays.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
            let backoff = Backoff::parse(&list).unwrap();
            let asked = retry_after.map(Duration::from_millis);
            match backoff.delay(retry, asked) {
                None => prop_assert!(retry == 0 || retry > delays.len()),
                Some(wait) => {
                    prop_assert!(retry >= 1 && retry <= delays.len());
                    prop_assert!(wait >= Duration::from_millis(delays[retry - 1]));
                    prop_assert!(wait >= asked.unwrap_or_default().min(MAX_RETRY_AFTER));
                    prop_assert!(wait <= MAX_RETRY_AFTER);
                }
            }
        }
    }
}
