//! Twilio Messaging's wire format: the create request, what its answer means, the message list used to
//! find a message whose answer was lost, status callbacks and inbound messages.

use crate::phone::PhoneNumber;
use crate::retry::Reply;
use crate::rpc::sms::SmsStatus;
use crate::sms::request::Sender;
use crate::twilio::ApiError as TwilioError;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::time::Duration;

pub fn messages_url(api_base: &str, account_sid: &str) -> String {
    format!("{}/2010-04-01/Accounts/{}/Messages.json", api_base.trim_end_matches('/'), account_sid)
}

/// Where Twilio reports one message's delivery: our message id (a UUID, nothing personal) in the query,
/// so a callback finds its message even when the create's answer (with the SID) was lost.
pub fn status_callback_url(public_base_url: &str, message_id: &str) -> String {
    format!("{}/twilio/sms-status?message={message_id}", public_base_url.trim_end_matches('/'))
}

/// `POST …/Messages.json`, as form pairs in Twilio's names.
pub fn create_message_form(
    to: &PhoneNumber,
    sender: &Sender,
    body: &str,
    status_callback: &str,
) -> Vec<(&'static str, String)> {
    let from = match sender {
        Sender::From(phone) => ("From", phone.to_string()),
        Sender::Service(sid) => ("MessagingServiceSid", sid.clone()),
    };
    vec![("To", to.to_string()), from, ("Body", body.to_owned()), ("StatusCallback", status_callback.to_owned())]
}

/// A message resource as Twilio answers it (only what we read).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct MessageResource {
    pub sid: String,
    pub status: String,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub messaging_service_sid: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub date_created: Option<String>,
    /// A string in Twilio's JSON ("0" until a Messaging Service has chosen a sender).
    #[serde(default)]
    pub num_segments: Option<String>,
}

impl MessageResource {
    pub fn segments(&self) -> Option<u32> {
        self.num_segments.as_deref().and_then(|n| n.parse().ok()).filter(|n| *n > 0)
    }
    fn created_at(&self) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc2822(self.date_created.as_deref()?).ok().map(|t| t.with_timezone(&Utc))
    }
}

/// One page of `GET …/Messages.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct MessagePage {
    #[serde(default)]
    pub messages: Vec<MessageResource>,
}

/// What one create request came to.
#[derive(Debug, Clone, PartialEq)]
pub enum SendOutcome {
    /// Twilio has it: its SID and status (`queued`, or `accepted` through a Messaging Service).
    Accepted(MessageResource),
    /// Not processed (429, 503): send it again later, no sooner than Twilio asked.
    Retry { code: Option<i32>, message: String, retry_after: Option<Duration> },
    /// Refused for good (any other 4xx): 21610 means the person opted out.
    Rejected { code: Option<i32>, message: String },
    /// It may have been created (no answer, a timeout, another 5xx, a 2xx we cannot read): look for it
    /// before sending again, or the person gets it twice.
    Unclear(String),
}

/// Reads Twilio's answer to a create request.
pub fn send_outcome(reply: Reply, body: &str, retry_after: Option<Duration>) -> SendOutcome {
    let status = match reply {
        Reply::NoAnswer => return SendOutcome::Unclear("twilio did not answer".into()),
        Reply::Status(status) => status,
    };
    if (200..300).contains(&status) {
        return match serde_json::from_str::<MessageResource>(body) {
            Ok(message) if is_message_sid(&message.sid) => SendOutcome::Accepted(message),
            _ => SendOutcome::Unclear(format!("twilio {status} without a readable message")),
        };
    }
    let error = serde_json::from_str::<TwilioError>(body).ok();
    let code = error.as_ref().and_then(|e| e.code).and_then(|c| i32::try_from(c).ok());
    let message = format!("twilio {status}: {}", error.and_then(|e| e.message).unwrap_or_else(|| "no message".into()));
    match status {
        429 | 503 => SendOutcome::Retry { code, message, retry_after },
        500..=599 => SendOutcome::Unclear(message),
        _ => SendOutcome::Rejected { code, message },
    }
}

/// `SM` or `MM` and 32 hex digits.
pub fn is_message_sid(raw: &str) -> bool {
    (raw.starts_with("SM") || raw.starts_with("MM"))
        && raw.len() == 34
        && raw[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// The list that holds the message an unclear create may have made: Twilio's messages to that phone
/// (from the sender's number when it has one; a Messaging Service picks its number itself).
pub fn lookup_url(api_base: &str, account_sid: &str, to: &PhoneNumber, sender: &Sender) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("To", to.as_str());
    if let Sender::From(from) = sender {
        query.append_pair("From", from.as_str());
    }
    query.append_pair("PageSize", "50");
    format!("{}?{}", messages_url(api_base, account_sid), query.finish())
}

/// The message our request made, among those listed: same sender and text, created no earlier than a
/// minute before the claim (clocks differ). `None` means Twilio never created it, so it may be sent.
pub fn find_sent<'a>(
    listed: &'a [MessageResource],
    sender: &Sender,
    body: &str,
    claimed_at: DateTime<Utc>,
) -> Option<&'a MessageResource> {
    let earliest = claimed_at - chrono::Duration::minutes(1);
    listed.iter().find(|m| {
        let same_sender = match sender {
            Sender::From(from) => m.from.as_deref() == Some(from.as_str()),
            Sender::Service(sid) => m.messaging_service_sid.as_deref() == Some(sid.as_str()),
        };
        same_sender && m.body.as_deref() == Some(body) && m.created_at().is_none_or(|at| at >= earliest)
    })
}

/// A message status as Twilio names it (`MessageStatus`).
pub const MESSAGE_STATUSES: [&str; 13] = [
    "queued",
    "sending",
    "sent",
    "failed",
    "delivered",
    "undelivered",
    "receiving",
    "received",
    "accepted",
    "scheduled",
    "read",
    "partially_delivered",
    "canceled",
];

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    #[error("MessageSid is missing or not a message SID")]
    BadSid,
    #[error("MessageStatus is missing or not one of Twilio's message statuses")]
    BadStatus,
    #[error("{0} is not a whole number")]
    BadNumber(&'static str),
    #[error("{0} is missing")]
    Missing(&'static str),
}

/// A delivery status callback.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusCallback {
    pub message_sid: String,
    /// `None`: a status of Twilio's that no outbound SMS of ours tracks (`read`, `canceled`, ...).
    pub status: Option<SmsStatus>,
    pub error_code: Option<i32>,
    pub segments: Option<u32>,
}

impl StatusCallback {
    pub fn parse(form: &[(String, String)]) -> Result<Self, CallbackError> {
        let message_sid = field(form, "MessageSid").or(field(form, "SmsSid")).filter(|s| is_message_sid(s));
        let status = field(form, "MessageStatus").or(field(form, "SmsStatus"));
        let number =
            |name: &'static str| field(form, name).map(|v| v.parse().map_err(|_| CallbackError::BadNumber(name)));
        Ok(Self {
            message_sid: message_sid.ok_or(CallbackError::BadSid)?.to_owned(),
            status: status
                .filter(|s| MESSAGE_STATUSES.contains(s))
                .map(SmsStatus::from_twilio)
                .ok_or(CallbackError::BadStatus)?,
            error_code: number("ErrorCode").transpose()?,
            segments: number("NumSegments").transpose()?.map(|n: i32| n.max(0) as u32),
        })
    }
}

/// A message someone sent to one of our numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    pub message_sid: String,
    pub from: String,
    pub to: String,
    pub body: String,
    pub opt_out_type: Option<String>,
}

impl Inbound {
    pub fn parse(form: &[(String, String)]) -> Result<Self, CallbackError> {
        let text = |name: &'static str| field(form, name).map(str::to_owned).ok_or(CallbackError::Missing(name));
        Ok(Self {
            message_sid: field(form, "MessageSid")
                .filter(|s| is_message_sid(s))
                .ok_or(CallbackError::BadSid)?
                .to_owned(),
            from: text("From")?,
            to: text("To")?,
            // An empty body (a picture alone) is still a reply.
            body: form.iter().find(|(k, _)| k == "Body").map(|(_, v)| v.clone()).unwrap_or_default(),
            opt_out_type: field(form, "OptOutType").map(str::to_owned),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SID: &str = "SM0123456789abcdef0123456789abcdef";
    const SERVICE: &str = "MG0123456789abcdef0123456789abcdef";

    fn phone(raw: &str) -> PhoneNumber {
        PhoneNumber::parse(raw).unwrap()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_create_request_names_one_sender_and_our_callback() {
        let to = phone("+15550001001");
        let url = status_callback_url("https://w.example/", "6f9619ff-8b86-d011-b42d-00c04fc964ff");
        assert_eq!(url, "https://w.example/twilio/sms-status?message=6f9619ff-8b86-d011-b42d-00c04fc964ff");
        let form = create_message_form(&to, &Sender::From(phone("+15550001000")), "Hi", &url);
        assert_eq!(form[1], ("From", "+15550001000".to_owned()));
        let form = create_message_form(&to, &Sender::Service(SERVICE.into()), "Hi", &url);
        assert_eq!(form[1], ("MessagingServiceSid", SERVICE.to_owned()));
        assert_eq!(
            form.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            ["To", "MessagingServiceSid", "Body", "StatusCallback"]
        );
    }

    #[test]
    fn answers_mean_accepted_retry_rejected_or_unclear() {
        let created = json!({"sid": SID, "status": "accepted", "num_segments": "0", "price": null}).to_string();
        match send_outcome(Reply::Status(201), &created, None) {
            SendOutcome::Accepted(m) => {
                assert_eq!((m.sid.as_str(), m.status.as_str(), m.segments()), (SID, "accepted", None))
            }
            other => panic!("{other:?}"),
        }
        let opted_out = json!({"code": 21610, "message": "Attempt to send to unsubscribed recipient", "status": 400});
        assert_eq!(
            send_outcome(Reply::Status(400), &opted_out.to_string(), None),
            SendOutcome::Rejected {
                code: Some(21610),
                message: "twilio 400: Attempt to send to unsubscribed recipient".into()
            }
        );
        let busy = json!({"code": 20429, "message": "Too Many Requests", "status": 429}).to_string();
        let wait = Some(Duration::from_secs(2));
        assert!(matches!(send_outcome(Reply::Status(429), &busy, wait),
                         SendOutcome::Retry { code: Some(20429), retry_after, .. } if retry_after == wait));
        assert!(matches!(send_outcome(Reply::Status(503), "", None), SendOutcome::Retry { code: None, .. }));
        for unclear in [Reply::Status(500), Reply::Status(502), Reply::Status(504), Reply::NoAnswer] {
            assert!(matches!(send_outcome(unclear, "", None), SendOutcome::Unclear(_)), "{unclear:?}");
        }
        assert!(matches!(send_outcome(Reply::Status(201), "{\"sid\": \"CA1\"}", None), SendOutcome::Unclear(_)));
    }

    #[test]
    fn a_lost_message_is_found_by_sender_text_and_time() {
        let claimed = DateTime::parse_from_rfc3339("2026-12-03T10:00:00Z").unwrap().with_timezone(&Utc);
        let listed: Vec<MessageResource> = serde_json::from_value(json!([
            {"sid": "SM00000000000000000000000000000001", "status": "delivered", "from": "+15550001000",
             "body": "Hi", "date_created": "Wed, 02 Dec 2026 10:00:00 +0000"},
            {"sid": "SM00000000000000000000000000000002", "status": "queued", "from": "+15550009999",
             "body": "Hi", "date_created": "Thu, 03 Dec 2026 10:00:01 +0000"},
            {"sid": "SM00000000000000000000000000000003", "status": "queued", "from": "+15550001000",
             "body": "Hi", "date_created": "Thu, 03 Dec 2026 10:00:01 +0000"}
        ]))
        .unwrap();
        let ours = Sender::From(phone("+15550001000"));
        assert_eq!(find_sent(&listed, &ours, "Hi", claimed).map(|m| &m.sid[32..]), Some("03"));
        assert_eq!(find_sent(&listed, &ours, "Hello", claimed), None, "other text");
        assert_eq!(find_sent(&listed[..2], &ours, "Hi", claimed), None, "yesterday's is not ours");
        let url = lookup_url("http://t/", "AC1", &phone("+15550001001"), &ours);
        assert_eq!(
            url,
            "http://t/2010-04-01/Accounts/AC1/Messages.json?To=%2B15550001001&From=%2B15550001000&PageSize=50"
        );
    }

    #[test]
    fn callbacks_and_inbound_messages_are_parsed() {
        let callback = StatusCallback::parse(&pairs(&[
            ("MessageSid", SID),
            ("MessageStatus", "undelivered"),
            ("ErrorCode", "30003"),
            ("SmsStatus", "undelivered"),
        ]))
        .unwrap();
        assert_eq!(callback.error_code, Some(30003));
        assert_eq!(callback.status, Some(SmsStatus::Undelivered));
        let read = StatusCallback::parse(&pairs(&[("MessageSid", SID), ("MessageStatus", "read")])).unwrap();
        assert_eq!(read.status, None, "a status we do not track is no error");
        assert_eq!(
            StatusCallback::parse(&pairs(&[("MessageSid", SID), ("MessageStatus", "lost")])),
            Err(CallbackError::BadStatus)
        );
        assert_eq!(StatusCallback::parse(&pairs(&[("MessageStatus", "sent")])), Err(CallbackError::BadSid));
        let inbound = Inbound::parse(&pairs(&[
            ("MessageSid", SID),
            ("From", "+15550001001"),
            ("To", "+15550001000"),
            ("Body", "STOP"),
            ("OptOutType", "STOP"),
        ]))
        .unwrap();
        assert_eq!((inbound.body.as_str(), inbound.opt_out_type.as_deref()), ("STOP", Some("STOP")));
        assert_eq!(Inbound::parse(&pairs(&[("MessageSid", SID), ("To", "+1")])), Err(CallbackError::Missing("From")));
    }
}
