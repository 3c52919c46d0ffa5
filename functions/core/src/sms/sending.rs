//! The send loop's decisions: how much to claim, when to claim again, when to stop, and when a batch's
//! event stream has nothing more to wait for. SQL decides which messages and at which slot
//! (`claim_sms`); the Worker sends each at its slot and records Twilio's answer.

use crate::ids::SmsMessageId;
use crate::phone::PhoneNumber;
use crate::rpc::sms::{ClaimedSms, ReconcileSms, RecordSmsSend, SmsSendOutcome, SmsStatus, UnansweredSms};
use crate::sms::request::Sender;
use crate::sms::wire::{MessageResource, SendOutcome};
use chrono::{DateTime, Utc};
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
/// How long a message may stay `submitting` without a SID before the sweep looks it up: longer than any
/// send lasts (its slot, Twilio's timeout, the look-up after an unclear answer with its retries), so the
/// sweep never looks while a send could still be creating it.
pub const RECONCILE_AFTER_MS: u64 = 60_000;

/// A message to send or to look up, as the database handed it out, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub id: SmsMessageId,
    pub to: PhoneNumber,
    pub sender: Sender,
    pub body: String,
    /// When the claim was made, for the look-up (a message found at Twilio must be no older).
    pub claimed_at: DateTime<Utc>,
}

impl Outgoing {
    /// A claimed message; `now` is when the claim was answered.
    pub fn claimed(message: &ClaimedSms, now: DateTime<Utc>) -> Result<Self, String> {
        let sender = sender(message.from.as_deref(), message.messaging_service_sid.as_deref())?;
        Self::new(message.message_id, &message.to, sender, &message.body, now)
    }

    /// A message the sweep found without an answer.
    pub fn unanswered(message: &UnansweredSms) -> Result<Self, String> {
        let sender = sender(message.from.as_deref(), message.messaging_service_sid.as_deref())?;
        let since = DateTime::parse_from_rfc3339(&message.submitting_since)
            .map_err(|e| format!("submitting_since {:?}: {e}", message.submitting_since))?;
        Self::new(message.message_id, &message.to, sender, &message.body, since.with_timezone(&Utc))
    }

    fn new(id: SmsMessageId, to: &str, sender: Sender, body: &str, claimed_at: DateTime<Utc>) -> Result<Self, String> {
        let to = PhoneNumber::parse(to).map_err(|e| format!("the message's phone: {e}"))?;
        Ok(Self { id, to, sender, body: body.to_owned(), claimed_at })
    }
}

fn sender(from: Option<&str>, service: Option<&str>) -> Result<Sender, String> {
    from.or(service).and_then(Sender::parse).ok_or_else(|| "the message has no valid sender".to_owned())
}

/// What to record of a create request's answer (an unclear one is looked up first; recorded as it is,
/// it leaves the message `submitting` for the sweep).
pub fn record(id: SmsMessageId, outcome: SendOutcome) -> RecordSmsSend {
    let outcome = match outcome {
        SendOutcome::Accepted(message) => SmsSendOutcome::Accepted {
            status: SmsStatus::from_twilio(&message.status).unwrap_or(SmsStatus::Queued),
            segments: message.segments(),
            message_sid: message.sid,
        },
        SendOutcome::Retry { code, message, retry_after } => SmsSendOutcome::Retry {
            error_code: code,
            error_message: Some(message),
            retry_after_ms: retry_after.map(|d| d.as_millis() as u64),
        },
        SendOutcome::Rejected { code, message } => {
            SmsSendOutcome::Rejected { error_code: code, error_message: Some(message) }
        }
        SendOutcome::Unclear(_) => SmsSendOutcome::Unknown,
    };
    RecordSmsSend { message_id: id, outcome }
}

/// What a look-up found: the message at Twilio (recorded as accepted), or nothing (it may go again).
pub fn reconciled(id: SmsMessageId, found: Option<&MessageResource>) -> ReconcileSms {
    ReconcileSms {
        message_id: id,
        message_sid: found.map(|m| m.sid.clone()),
        status: found.map(|m| SmsStatus::from_twilio(&m.status).unwrap_or(SmsStatus::Queued)),
    }
}

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
    use std::time::Duration;

    const ID: &str = "6f9619ff-8b86-d011-b42d-00c04fc964ff";

    #[test]
    fn answers_become_records_and_an_unclear_one_stays_submitting() {
        let id = SmsMessageId::parse(ID).unwrap();
        let created: MessageResource = serde_json::from_value(json!({"sid": "SM0123456789abcdef0123456789abcdef",
            "status": "accepted", "num_segments": "0"}))
        .unwrap();
        assert_eq!(
            record(id, SendOutcome::Accepted(created.clone())).outcome,
            SmsSendOutcome::Accepted { message_sid: created.sid.clone(), status: SmsStatus::Accepted, segments: None }
        );
        let busy =
            SendOutcome::Retry { code: Some(20429), message: "busy".into(), retry_after: Some(Duration::from_secs(2)) };
        assert_eq!(
            record(id, busy).outcome,
            SmsSendOutcome::Retry {
                error_code: Some(20429),
                error_message: Some("busy".into()),
                retry_after_ms: Some(2000)
            }
        );
        assert_eq!(record(id, SendOutcome::Unclear("504".into())).outcome, SmsSendOutcome::Unknown);
        let found = reconciled(id, Some(&created));
        assert_eq!(
            (found.message_sid.as_deref(), found.status),
            (Some(created.sid.as_str()), Some(SmsStatus::Accepted))
        );
        assert_eq!(reconciled(id, None), ReconcileSms { message_id: id, message_sid: None, status: None });
    }

    #[test]
    fn a_claimed_message_is_parsed_into_its_phone_and_sender() {
        let claimed: ClaimedSms =
            serde_json::from_value(json!({"message_id": ID, "batch_id": ID, "to": "+15550001001",
            "from": null, "messaging_service_sid": "MG0123456789abcdef0123456789abcdef", "body": "Hi", "attempt": 1,
            "send_in_ms": 250}))
            .unwrap();
        let outgoing = Outgoing::claimed(&claimed, Utc::now()).unwrap();
        assert_eq!(outgoing.sender, Sender::Service("MG0123456789abcdef0123456789abcdef".into()));
        assert_eq!(outgoing.to.as_str(), "+15550001001");
        let unanswered: UnansweredSms = serde_json::from_value(json!({"message_id": ID, "to": "+15550001001",
            "from": "+15550001000", "messaging_service_sid": null, "body": "Hi",
            "submitting_since": "2026-12-03T10:00:00.123456+00:00"}))
        .unwrap();
        assert_eq!(Outgoing::unanswered(&unanswered).unwrap().claimed_at.timestamp(), 1_796_292_000);
        let broken = UnansweredSms { from: None, ..unanswered };
        assert!(Outgoing::unanswered(&broken).is_err());
    }

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
        let progress = |completed_at: Value, queued: u64, sent: u64| json!({"completed_at": completed_at, "counts": {"queued": queued, "sent": sent, "delivered": 3}});
        assert!(!settled(&progress(Value::Null, 0, 0)));
        assert!(!settled(&progress(json!("2026-12-03T10:00:00Z"), 1, 0)));
        assert!(!settled(&progress(json!("2026-12-03T10:00:00Z"), 0, 2)));
        assert!(settled(&progress(json!("2026-12-03T10:00:00Z"), 0, 0)));
    }
}
