//! The send loop's decisions: how much to claim, when to claim again, when to stop, and when a batch's
//! event stream has nothing more to wait for. SQL decides which messages and at which slot
//! (`claim_sms`); the Worker sends each at its slot and records Twilio's answer.

use serde_json::Value;

/// Messages one claim takes at most (one send each, side by side, each at its slot).
pub const CLAIM_LIMIT: u32 = 50;
/// How far ahead a claim reserves slots: the Worker waits out each message's `send_in_ms` (below this).
pub const HORIZON_MS: u32 = 1_000;
/// How long the loop started by a new batch may run: a Worker's work after its answer (`waitUntil`) is cut
/// off 30 s after the response; the minute sweep carries on from there.
pub const BATCH_SEND_BUDGET_MS: u64 = 25_000;
/// How long the sweep's loop may run (the cron invocation has more time than a request's `waitUntil`).
pub const SWEEP_SEND_BUDGET_MS: u64 = 50_000;
/// A wait shorter than this is not worth a claim of its own.
const MIN_WAIT_MS: u64 = 20;

/// What the loop does after a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Claim again now.
    Claim,
    /// Sleep this long, then claim again.
    Wait(u64),
    /// Stop: nothing is due within the budget (the sweep, or the next batch, starts another loop).
    Stop,
}

/// After a claim that took `claimed` messages (already sent, each at its slot): `more_due` and
/// `retry_after_ms` are the claim's own answer; `elapsed_ms` of `budget_ms` are spent.
pub fn next_step(claimed: usize, more_due: bool, retry_after_ms: Option<u64>, elapsed_ms: u64, budget_ms: u64) -> Step {
    if elapsed_ms >= budget_ms {
        return Step::Stop;
    }
    if claimed > 0 || more_due {
        return match retry_after_ms {
            Some(wait) if claimed == 0 => Step::Wait(wait.max(MIN_WAIT_MS)),
            _ => Step::Claim,
        };
    }
    match retry_after_ms {
        Some(wait) if elapsed_ms + wait < budget_ms => Step::Wait(wait.max(MIN_WAIT_MS)),
        _ => Step::Stop,
    }
}

/// An SMS batch's event stream ends once nothing is left to send or to hear back about: every message
/// handed to Twilio or refused (`completed_at`), and none still waiting for its delivery report
/// (`queued` at Twilio, or `sent` to the carrier). A carrier that never reports keeps the stream to
/// its lifetime; the client reconnects and reads the same.
pub fn settled(progress: &Value) -> bool {
    let waiting = |name: &str| progress["counts"][name].as_u64().unwrap_or(0);
    crate::api::completed(progress) && waiting("queued") == 0 && waiting("sent") == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_loop_claims_while_messages_come_and_waits_for_the_next_slot() {
        assert_eq!(next_step(3, false, None, 0, 25_000), Step::Claim, "sent some: claim again");
        assert_eq!(next_step(3, true, Some(900), 0, 25_000), Step::Claim);
        assert_eq!(next_step(0, true, Some(900), 0, 25_000), Step::Wait(900), "due but paced: wait for the slot");
        assert_eq!(next_step(0, true, Some(0), 0, 25_000), Step::Wait(20));
        assert_eq!(next_step(0, false, Some(4_000), 1_000, 25_000), Step::Wait(4_000), "a retry soon");
        assert_eq!(next_step(0, false, Some(30_000), 1_000, 25_000), Step::Stop, "beyond the budget: the sweep");
        assert_eq!(next_step(0, false, None, 0, 25_000), Step::Stop, "nothing pending");
        assert_eq!(next_step(5, true, None, 25_000, 25_000), Step::Stop, "budget spent");
    }

    #[test]
    fn a_batch_is_settled_once_handed_over_and_every_report_is_in() {
        let progress = |completed_at: Value, queued: u64, sent: u64| {
            json!({"completed_at": completed_at, "counts": {"queued": queued, "sent": sent, "delivered": 3}})
        };
        assert!(!settled(&progress(Value::Null, 0, 0)));
        assert!(!settled(&progress(json!("2026-12-03T10:00:00Z"), 1, 0)));
        assert!(!settled(&progress(json!("2026-12-03T10:00:00Z"), 0, 2)));
        assert!(settled(&progress(json!("2026-12-03T10:00:00Z"), 0, 0)));
    }
}
