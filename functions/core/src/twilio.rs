//! Twilio's wire formats: the create-call request, its answers, status callbacks and signatures.

use crate::ids::{BadCallSid, CallSid};
use crate::phone::PhoneNumber;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha1::Sha1;

/// The progress events we ask Twilio to report (`StatusCallbackEvent`, one key per event).
pub const STATUS_EVENTS: [&str; 4] = ["initiated", "ringing", "answered", "completed"];

/// How long Twilio lets the callee's phone ring, in seconds.
pub const RING_TIMEOUT_SECONDS: u32 = 30;

/// `POST /2010-04-01/Accounts/{sid}/Calls.json`, as form pairs in Twilio's names.
pub fn create_call_form(
    to: &PhoneNumber,
    from: &PhoneNumber,
    twiml: &str,
    status_callback: &str,
) -> Vec<(&'static str, String)> {
    let mut form = vec![
        ("To", to.to_string()),
        ("From", from.to_string()),
        ("Twiml", twiml.to_owned()),
        ("StatusCallback", status_callback.to_owned()),
        ("StatusCallbackMethod", "POST".to_owned()),
        ("Timeout", RING_TIMEOUT_SECONDS.to_string()),
    ];
    form.extend(STATUS_EVENTS.iter().map(|event| ("StatusCallbackEvent", (*event).to_owned())));
    form
}

pub fn encode_form(pairs: &[(&str, String)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        out.append_pair(name, value);
    }
    out.finish()
}

pub fn calls_url(api_base: &str, account_sid: &str) -> String {
    format!("{}/2010-04-01/Accounts/{}/Calls.json", api_base.trim_end_matches('/'), account_sid)
}

/// The 201 answer to a create-call request (only what we keep).
#[derive(Debug, Clone, Deserialize)]
pub struct CreatedCall {
    pub sid: String,
}

/// Twilio's error body: `{code, message, more_info, status}`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ApiError {
    #[serde(default)]
    pub code: Option<i64>,
    #[serde(default)]
    pub message: Option<String>,
}

/// What a create-call answer means for the attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum DialOutcome {
    Dialled(CallSid),
    Failed { reason: String, code: Option<String> },
}

/// Reads Twilio's answer to a create-call request.
pub fn dial_outcome(http_status: u16, body: &str) -> DialOutcome {
    if http_status == 201 || http_status == 200 {
        return match serde_json::from_str::<CreatedCall>(body).map(|c| CallSid::parse(&c.sid)) {
            Ok(Ok(sid)) => DialOutcome::Dialled(sid),
            _ => DialOutcome::Failed { reason: "twilio answered without a valid call sid".into(), code: None },
        };
    }
    let error = serde_json::from_str::<ApiError>(body).ok();
    let code = error.as_ref().and_then(|e| e.code).map(|c| c.to_string());
    let message = error.and_then(|e| e.message).unwrap_or_else(|| "no error message".into());
    DialOutcome::Failed { reason: format!("twilio {http_status}: {message}"), code }
}

/// `CallStatus` in a status callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallStatus {
    Queued,
    Initiated,
    Ringing,
    InProgress,
    Completed,
    Busy,
    NoAnswer,
    Failed,
    Canceled,
}

impl CallStatus {
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "queued" => Self::Queued,
            "initiated" => Self::Initiated,
            "ringing" => Self::Ringing,
            "in-progress" => Self::InProgress,
            "completed" => Self::Completed,
            "busy" => Self::Busy,
            "no-answer" => Self::NoAnswer,
            "failed" => Self::Failed,
            "canceled" => Self::Canceled,
            _ => return None,
        })
    }

    /// Twilio's spelling, which is also what `call_sessions.status` stores.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Initiated => "initiated",
            Self::Ringing => "ringing",
            Self::InProgress => "in-progress",
            Self::Completed => "completed",
            Self::Busy => "busy",
            Self::NoAnswer => "no-answer",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
        }
    }
}

/// A status callback, parsed from its form fields.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusEvent {
    pub call_sid: CallSid,
    pub status: CallStatus,
    pub sequence_number: Option<i32>,
    pub answered_by: Option<String>,
    pub duration_seconds: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusEventError {
    #[error("CallSid is missing")]
    MissingSid,
    #[error(transparent)]
    BadSid(#[from] BadCallSid),
    #[error("CallStatus is missing or not one of Twilio's call statuses")]
    BadStatus,
    #[error("{0} is not a whole number")]
    BadNumber(&'static str),
}

impl StatusEvent {
    pub fn parse(form: &[(String, String)]) -> Result<Self, StatusEventError> {
        let field =
            |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
        let number = |name: &'static str| -> Result<Option<i32>, StatusEventError> {
            field(name).map(|v| v.parse::<i32>().map_err(|_| StatusEventError::BadNumber(name))).transpose()
        };
        Ok(Self {
            call_sid: CallSid::parse(field("CallSid").ok_or(StatusEventError::MissingSid)?)?,
            status: field("CallStatus").and_then(CallStatus::parse).ok_or(StatusEventError::BadStatus)?,
            sequence_number: number("SequenceNumber")?,
            answered_by: field("AnsweredBy").map(str::to_owned),
            duration_seconds: number("CallDuration")?,
        })
    }
}

/// Twilio's `X-Twilio-Signature`: base64(HMAC-SHA1(auth token, URL + each param name+value sorted by name)).
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes any key length");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks a request's signature in constant time.
pub fn signature_is_valid(auth_token: &str, url: &str, params: &[(String, String)], given: &str) -> bool {
    crate::error::constant_time_eq(signature(auth_token, url, params).as_bytes(), given.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn signature_matches_twilios_documented_vector() {
        let params = pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]);
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(signature("12345", url, &params), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
        assert!(signature_is_valid("12345", url, &params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
        assert!(!signature_is_valid("12346", url, &params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
        assert!(!signature_is_valid(
            "12345",
            "https://mycompany.com/myapp.php",
            &params,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
    }

    #[test]
    fn create_form_asks_for_every_progress_event() {
        let to = PhoneNumber::parse("+15550001001").unwrap();
        let from = PhoneNumber::parse("+15005550006").unwrap();
        let form = create_call_form(&to, &from, "<Response/>", "https://w.example/twilio/status");
        let events: Vec<&str> =
            form.iter().filter(|(k, _)| *k == "StatusCallbackEvent").map(|(_, v)| v.as_str()).collect();
        assert_eq!(events, STATUS_EVENTS);
        let body = encode_form(&form);
        assert!(body.starts_with("To=%2B15550001001&From=%2B15005550006&Twiml=%3CResponse%2F%3E"));
        assert!(body.contains("StatusCallbackEvent=initiated&StatusCallbackEvent=ringing"));
        assert!(!form.iter().any(|(k, _)| *k == "Url"), "exactly one of Twiml / Url");
    }

    #[test]
    fn reads_create_call_answers() {
        let created = r#"{"sid":"CA0123456789abcdef0123456789abcdef","status":"queued","direction":"outbound-api"}"#;
        assert_eq!(
            dial_outcome(201, created),
            DialOutcome::Dialled(CallSid::parse("CA0123456789abcdef0123456789abcdef").unwrap())
        );
        let invalid = r#"{"code":21211,"message":"Invalid 'To' Phone Number","more_info":"x","status":400}"#;
        assert_eq!(
            dial_outcome(400, invalid),
            DialOutcome::Failed { reason: "twilio 400: Invalid 'To' Phone Number".into(), code: Some("21211".into()) }
        );
        assert!(matches!(dial_outcome(201, "{}"), DialOutcome::Failed { .. }));
        assert!(matches!(dial_outcome(502, "<html>"), DialOutcome::Failed { code: None, .. }));
    }

    #[test]
    fn parses_status_callbacks() {
        let form = pairs(&[
            ("CallSid", "CA0123456789abcdef0123456789abcdef"),
            ("CallStatus", "completed"),
            ("SequenceNumber", "3"),
            ("CallDuration", "42"),
            ("AnsweredBy", "machine_end_beep"),
        ]);
        let event = StatusEvent::parse(&form).unwrap();
        assert_eq!(event.status, CallStatus::Completed);
        assert_eq!(event.sequence_number, Some(3));
        assert_eq!(event.duration_seconds, Some(42));
        assert_eq!(event.answered_by.as_deref(), Some("machine_end_beep"));

        let bad_status = pairs(&[("CallSid", "CA0123456789abcdef0123456789abcdef"), ("CallStatus", "exploded")]);
        assert_eq!(StatusEvent::parse(&bad_status), Err(StatusEventError::BadStatus));
        assert_eq!(StatusEvent::parse(&pairs(&[("CallStatus", "ringing")])), Err(StatusEventError::MissingSid));
        let bad_seq = pairs(&[
            ("CallSid", "CA0123456789abcdef0123456789abcdef"),
            ("CallStatus", "ringing"),
            ("SequenceNumber", "x"),
        ]);
        assert_eq!(StatusEvent::parse(&bad_seq), Err(StatusEventError::BadNumber("SequenceNumber")));
    }

    #[test]
    fn every_call_status_round_trips() {
        for s in
            ["queued", "initiated", "ringing", "in-progress", "completed", "busy", "no-answer", "failed", "canceled"]
        {
            assert_eq!(CallStatus::parse(s).unwrap().as_str(), s);
        }
    }
}
