//! The batch SMS functions of the contract (`sql/schema/65_sms.sql`): one type per SQL function, with its
//! answer, as the rest of [`super`]. What each function does is written beside it in SQL.

use super::{BatchDocument, Rpc};
use crate::ids::{SmsBatchId, SmsMessageId};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

fn sms_batch() -> SmsBatchId {
    SmsBatchId::parse("44444444-4444-4444-4444-444444444444").expect("a UUID")
}
fn sms_message() -> SmsMessageId {
    SmsMessageId::parse("55555555-5555-5555-5555-555555555555").expect("a UUID")
}
const MESSAGE_SID: &str = "SM0123456789abcdef0123456789abcdef";

/// A message's status (`sms_messages.status`): ours (`pending`, `submitting`, `opted_out`, `cancelled`) and
/// Twilio's own names, verbatim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmsStatus {
    /// Waiting for a claim (also a retry).
    Pending,
    /// Claimed: our create request is out, no answer recorded yet.
    Submitting,
    Queued,
    Accepted,
    Scheduled,
    Sending,
    Sent,
    Delivered,
    Undelivered,
    Failed,
    /// Never sent: the phone is in `sms_opt_outs` (or Twilio refused it with 21610).
    OptedOut,
    /// Its batch was cancelled before it was sent.
    Cancelled,
}

impl SmsStatus {
    /// One of Twilio's message statuses that we track (`MessageStatus`, a create's `status`); `None` for the
    /// others (`canceled`, `read`, `receiving`, `received`, `partially_delivered`), which no outbound SMS of
    /// ours reaches.
    pub fn from_twilio(raw: &str) -> Option<Self> {
        Some(match raw {
            "queued" => Self::Queued,
            "accepted" => Self::Accepted,
            "scheduled" => Self::Scheduled,
            "sending" => Self::Sending,
            "sent" => Self::Sent,
            "delivered" => Self::Delivered,
            "undelivered" => Self::Undelivered,
            "failed" => Self::Failed,
            _ => return None,
        })
    }

    /// A status that never changes again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Delivered | Self::Undelivered | Self::Failed | Self::OptedOut | Self::Cancelled)
    }
}

// ------------------------------------------------------------------------------------------------- create

/// `create_sms_batch`: a whole SMS batch in one call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CreateSmsBatch {
    /// `{name?, metadata?, sender, body_template?, not_before?, idempotency_key?, request_hash,
    /// messages: [{to_phone, variables, body, encoding, segments}]}`, validated and rendered by the Worker.
    #[serde(rename = "p_request")]
    pub request: Value,
}

/// `create_sms_batch`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum SmsBatchCreated {
    Created(SmsBatchAccepted),
    /// The same `Idempotency-Key` and body as an earlier batch: that batch's answer again.
    Replayed(SmsBatchAccepted),
    /// The same key with another body; nothing written.
    Conflict {
        batch_id: SmsBatchId,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SmsBatchAccepted {
    pub batch_id: SmsBatchId,
    /// Messages created, the opted-out ones included.
    pub accepted: u64,
    /// The positions (indexes in `messages`) created `opted_out`: never sent.
    pub opted_out: Vec<u32>,
}

impl Rpc for CreateSmsBatch {
    const NAME: &'static str = "create_sms_batch";
    type Answer = SmsBatchCreated;
    fn examples() -> Vec<Self> {
        vec![Self {
            request: json!({"sender": "+15550001000", "request_hash": "h", "messages": [
                {"to_phone": "+15550001001", "variables": {}, "body": "Hi", "encoding": "GSM-7", "segments": 1}]}),
        }]
    }
}

// -------------------------------------------------------------------------------------------------- claim

/// `claim_sms`: due messages, each with the instant its sender's pace lets it go.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClaimSms {
    /// 1..1000.
    #[serde(rename = "p_limit")]
    pub limit: u32,
    /// How far ahead a send slot may be granted (0..60000).
    #[serde(rename = "p_horizon_ms")]
    pub horizon_ms: u32,
}

/// `claim_sms`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SmsClaim {
    pub messages: Vec<ClaimedSms>,
    /// Due messages remain that could be claimed now (the limit stopped this claim).
    pub more_due: bool,
    /// Claim again after this long (0 when `more_due`); `None`: nothing is pending at all.
    pub retry_after_ms: Option<u64>,
}

/// One claimed message: send it `send_in_ms` after the answer, `From` xor `MessagingServiceSid`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ClaimedSms {
    pub message_id: SmsMessageId,
    pub batch_id: SmsBatchId,
    pub to: String,
    pub from: Option<String>,
    pub messaging_service_sid: Option<String>,
    pub body: String,
    /// 1 for the first try.
    pub attempt: u32,
    pub send_in_ms: u64,
}

impl Rpc for ClaimSms {
    const NAME: &'static str = "claim_sms";
    type Answer = SmsClaim;
    fn examples() -> Vec<Self> {
        vec![Self { limit: 50, horizon_ms: 1000 }]
    }
}

// ------------------------------------------------------------------------------------------- send result

/// `record_sms_send`: what came of a claimed message's create request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordSmsSend {
    #[serde(rename = "p_message_id")]
    pub message_id: SmsMessageId,
    #[serde(flatten)]
    pub outcome: SmsSendOutcome,
}

/// The outcomes of a create request (`p_outcome` and its arguments).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "p_outcome", rename_all = "snake_case")]
pub enum SmsSendOutcome {
    /// 201: Twilio has it.
    Accepted {
        #[serde(rename = "p_message_sid")]
        message_sid: String,
        /// Twilio's `status` (`queued`, or `accepted` through a Messaging Service).
        #[serde(rename = "p_status")]
        status: SmsStatus,
        /// Twilio's `num_segments` (0 through a Messaging Service: ours is kept).
        #[serde(rename = "p_segments")]
        segments: Option<u32>,
    },
    /// 429 or 5xx: again later (or `failed` at the policy's last attempt).
    Retry {
        #[serde(rename = "p_error_code")]
        error_code: Option<i32>,
        #[serde(rename = "p_error_message")]
        error_message: Option<String>,
        /// Twilio's `Retry-After`, when it sent one.
        #[serde(rename = "p_retry_after_ms")]
        retry_after_ms: Option<u64>,
    },
    /// A permanent refusal: `failed` (21610: `opted_out`, and the phone opted out).
    Rejected {
        #[serde(rename = "p_error_code")]
        error_code: Option<i32>,
        #[serde(rename = "p_error_message")]
        error_message: Option<String>,
    },
    /// No clear answer (a timeout): stays `submitting` until reconciled.
    Unknown,
}

/// The answer of `record_sms_send` and `reconcile_sms`; `None` (SQL null): no such message.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SmsSendRecorded {
    /// False when the message was not `submitting` (a late or duplicate answer): nothing changed.
    pub recorded: bool,
    pub status: SmsStatus,
}

impl Rpc for RecordSmsSend {
    const NAME: &'static str = "record_sms_send";
    type Answer = Option<SmsSendRecorded>;
    fn examples() -> Vec<Self> {
        let message_id = sms_message();
        vec![
            Self {
                message_id,
                outcome: SmsSendOutcome::Accepted {
                    message_sid: MESSAGE_SID.into(),
                    status: SmsStatus::Queued,
                    segments: Some(1),
                },
            },
            Self {
                message_id,
                outcome: SmsSendOutcome::Retry {
                    error_code: Some(20429),
                    error_message: Some("Too Many Requests".into()),
                    retry_after_ms: Some(1000),
                },
            },
            Self {
                message_id,
                outcome: SmsSendOutcome::Rejected { error_code: Some(21211), error_message: Some("Invalid To".into()) },
            },
            Self { message_id, outcome: SmsSendOutcome::Unknown },
        ]
    }
}

// ------------------------------------------------------------------------------------------- callbacks

/// `sms_status_callback`: Twilio's status callback for a message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SmsStatusCallback {
    #[serde(rename = "p_message_sid")]
    pub message_sid: String,
    /// Twilio's `MessageStatus` (one of Twilio's names: not `pending`, `submitting`, `opted_out`, `cancelled`).
    #[serde(rename = "p_status")]
    pub status: SmsStatus,
    #[serde(rename = "p_error_code")]
    pub error_code: Option<i32>,
    /// Our id from the callback URL (`?message=`): finds a message whose sid is not recorded yet.
    #[serde(rename = "p_message_id")]
    pub message_id: Option<SmsMessageId>,
    #[serde(rename = "p_segments")]
    pub segments: Option<u32>,
    #[serde(rename = "p_price")]
    pub price: Option<f64>,
}

/// `sms_status_callback`'s answer (also the callback's answer to Twilio); `None`: no message has the sid
/// (nor the id without a sid).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsStatusApplied {
    pub message_id: SmsMessageId,
    pub batch_id: SmsBatchId,
    pub status: SmsStatus,
    /// False for a duplicate, out-of-order or late (after a terminal status) callback.
    pub changed: bool,
}

impl Rpc for SmsStatusCallback {
    const NAME: &'static str = "sms_status_callback";
    type Answer = Option<SmsStatusApplied>;
    fn examples() -> Vec<Self> {
        vec![Self {
            message_sid: MESSAGE_SID.into(),
            status: SmsStatus::Undelivered,
            error_code: Some(30003),
            message_id: Some(sms_message()),
            segments: Some(1),
            price: Some(-0.0079),
        }]
    }
}

/// A keyword's meaning, decided by the Worker (Twilio's `OptOutType`, or the keyword lists).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SmsOptOut {
    Stop,
    Start,
    Help,
}

impl SmsOptOut {
    /// The keyword as Twilio names its family (`OptOutType`), and as the database stores it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "STOP",
            Self::Start => "START",
            Self::Help => "HELP",
        }
    }
}

/// `record_sms_reply`: an inbound message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordSmsReply {
    #[serde(rename = "p_message_sid")]
    pub message_sid: String,
    /// The person.
    #[serde(rename = "p_from")]
    pub from: String,
    /// Our number.
    #[serde(rename = "p_to")]
    pub to: String,
    #[serde(rename = "p_body")]
    pub body: String,
    #[serde(rename = "p_opt_out")]
    pub opt_out: Option<SmsOptOut>,
}

/// `record_sms_reply`'s answer (the same again for a retried webhook).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SmsReplyRecorded {
    pub reply_id: uuid::Uuid,
    /// The batch of the latest message sent to the person; `None`: we never texted them.
    pub batch_id: Option<SmsBatchId>,
    /// Whether the person is opted out now.
    pub opted_out: bool,
}

impl Rpc for RecordSmsReply {
    const NAME: &'static str = "record_sms_reply";
    type Answer = SmsReplyRecorded;
    fn examples() -> Vec<Self> {
        vec![Self {
            message_sid: MESSAGE_SID.into(),
            from: "+15550001001".into(),
            to: "+15550001000".into(),
            body: "STOP".into(),
            opt_out: Some(SmsOptOut::Stop),
        }]
    }
}

// ------------------------------------------------------------------------------------------------ reads

/// `sms_batch_status`: `{batch_id, name, status, sender, total, counts: {...}, segments_total, replies, created_at,
/// started_at, completed_at, cancelled_at, metadata}`, passed on as written (as [`BatchDocument`]s are).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SmsBatchStatus {
    #[serde(rename = "p_batch_id")]
    pub batch_id: SmsBatchId,
}

impl Rpc for SmsBatchStatus {
    const NAME: &'static str = "sms_batch_status";
    type Answer = Option<BatchDocument>;
    fn examples() -> Vec<Self> {
        vec![Self { batch_id: sms_batch() }]
    }
}

/// `sms_batch_messages`: a page of a batch's messages with their replies.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SmsBatchMessages {
    #[serde(rename = "p_batch_id")]
    pub batch_id: SmsBatchId,
    /// 1..1000.
    #[serde(rename = "p_limit")]
    pub limit: u32,
    #[serde(rename = "p_offset")]
    pub offset: u32,
}

impl Rpc for SmsBatchMessages {
    const NAME: &'static str = "sms_batch_messages";
    type Answer = Option<BatchDocument>;
    fn examples() -> Vec<Self> {
        vec![Self { batch_id: sms_batch(), limit: 100, offset: 0 }]
    }
}

/// `cancel_sms_batch`: `{batch_id, status, cancelled, live}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CancelSmsBatch {
    #[serde(rename = "p_batch_id")]
    pub batch_id: SmsBatchId,
}

impl Rpc for CancelSmsBatch {
    const NAME: &'static str = "cancel_sms_batch";
    type Answer = Option<BatchDocument>;
    fn examples() -> Vec<Self> {
        vec![Self { batch_id: sms_batch() }]
    }
}

// -------------------------------------------------------------------------------------------- reconcile

/// `sms_to_reconcile`: claimed messages whose create request got no clear answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SmsToReconcile {
    #[serde(rename = "p_older_than_ms")]
    pub older_than_ms: u64,
    /// 1..1000.
    #[serde(rename = "p_limit")]
    pub limit: u32,
}

/// One message to look up at Twilio (by To, From and the day it was sent).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UnansweredSms {
    pub message_id: SmsMessageId,
    pub to: String,
    pub from: Option<String>,
    pub messaging_service_sid: Option<String>,
    pub body: String,
    /// RFC 3339, as Postgres writes a timestamptz in JSON.
    pub submitting_since: String,
}

impl Rpc for SmsToReconcile {
    const NAME: &'static str = "sms_to_reconcile";
    type Answer = Vec<UnansweredSms>;
    fn examples() -> Vec<Self> {
        vec![Self { older_than_ms: 120_000, limit: 50 }]
    }
}

/// `reconcile_sms`: what Twilio knows of a message [`SmsToReconcile`] listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReconcileSms {
    #[serde(rename = "p_message_id")]
    pub message_id: SmsMessageId,
    /// Found at Twilio: its sid and status. Both `None`: Twilio never got it (sent again).
    #[serde(rename = "p_message_sid", skip_serializing_if = "Option::is_none")]
    pub message_sid: Option<String>,
    #[serde(rename = "p_status", skip_serializing_if = "Option::is_none")]
    pub status: Option<SmsStatus>,
}

impl Rpc for ReconcileSms {
    const NAME: &'static str = "reconcile_sms";
    type Answer = Option<SmsSendRecorded>;
    fn examples() -> Vec<Self> {
        let message_id = sms_message();
        vec![
            Self { message_id, message_sid: Some(MESSAGE_SID.into()), status: Some(SmsStatus::Sent) },
            Self { message_id, message_sid: None, status: None },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::super::arguments;
    use super::*;

    fn sent<R: Rpc>(request: &R) -> Value {
        Value::Object(arguments(request))
    }

    #[test]
    fn requests_serialise_to_the_p_argument_names() {
        let id = sms_message();
        assert_eq!(
            sent(&RecordSmsSend {
                message_id: id,
                outcome: SmsSendOutcome::Accepted {
                    message_sid: MESSAGE_SID.into(),
                    status: SmsStatus::Accepted,
                    segments: None
                },
            }),
            json!({"p_message_id": id.to_string(), "p_outcome": "accepted", "p_message_sid": MESSAGE_SID,
                   "p_status": "accepted", "p_segments": null})
        );
        assert_eq!(
            sent(&RecordSmsSend { message_id: id, outcome: SmsSendOutcome::Unknown }),
            json!({"p_message_id": id.to_string(), "p_outcome": "unknown"})
        );
        assert_eq!(sent(&ClaimSms { limit: 50, horizon_ms: 1000 }), json!({"p_limit": 50, "p_horizon_ms": 1000}));
        assert_eq!(
            sent(&ReconcileSms { message_id: id, message_sid: None, status: None }),
            json!({"p_message_id": id.to_string()})
        );
        let reply = RecordSmsReply {
            message_sid: MESSAGE_SID.into(),
            from: "+15550001001".into(),
            to: "+15550001000".into(),
            body: "start".into(),
            opt_out: Some(SmsOptOut::Start),
        };
        assert_eq!(sent(&reply)["p_opt_out"], json!("START"));
        assert_eq!(
            sent(&SmsStatusCallback { status: SmsStatus::OptedOut, ..SmsStatusCallback::examples()[0].clone() })
                ["p_status"],
            json!("opted_out")
        );
    }

    #[test]
    fn answers_read_as_sql_writes_them() {
        let batch = "44444444-4444-4444-4444-444444444444";
        let message = "55555555-5555-5555-5555-555555555555";
        let created: SmsBatchCreated =
            serde_json::from_value(json!({"outcome": "created", "batch_id": batch, "accepted": 3, "opted_out": [1]}))
                .unwrap();
        assert_eq!(
            created,
            SmsBatchCreated::Created(SmsBatchAccepted { batch_id: sms_batch(), accepted: 3, opted_out: vec![1] })
        );
        let conflict: SmsBatchCreated =
            serde_json::from_value(json!({"outcome": "conflict", "batch_id": batch})).unwrap();
        assert_eq!(conflict, SmsBatchCreated::Conflict { batch_id: sms_batch() });

        let claim: SmsClaim = serde_json::from_value(json!({"messages": [
            {"message_id": message, "batch_id": batch, "to": "+15550001001", "from": null,
             "messaging_service_sid": "MG0123456789abcdef0123456789abcdef", "body": "Hi", "attempt": 1, "send_in_ms": 100}],
            "more_due": false, "retry_after_ms": 900}))
        .unwrap();
        assert_eq!(claim.messages[0].send_in_ms, 100);
        assert_eq!(claim.messages[0].from, None);
        assert_eq!(claim.retry_after_ms, Some(900));
        let idle: SmsClaim =
            serde_json::from_value(json!({"messages": [], "more_due": false, "retry_after_ms": null})).unwrap();
        assert_eq!(idle.retry_after_ms, None);

        let recorded: Option<SmsSendRecorded> =
            serde_json::from_value(json!({"recorded": false, "status": "opted_out"})).unwrap();
        assert_eq!(recorded, Some(SmsSendRecorded { recorded: false, status: SmsStatus::OptedOut }));
        assert!(SmsStatus::OptedOut.is_terminal() && !SmsStatus::Sent.is_terminal());
        let none: Option<SmsStatusApplied> = serde_json::from_value(Value::Null).unwrap();
        assert_eq!(none, None);
        assert!(serde_json::from_value::<SmsSendRecorded>(json!({"recorded": true, "status": "delivering"})).is_err());
    }
}
