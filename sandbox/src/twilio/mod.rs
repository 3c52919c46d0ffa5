//! The Twilio stand-in: the Calls API, call playback, TwiML and status callbacks, and Programmable
//! Messaging (`messaging`).

pub mod api;
pub mod api_faults;
pub mod call;
pub mod callback_order;
pub mod callbacks;
pub mod messaging;
pub mod scenario;
pub mod signature;
pub mod sip;
pub mod stream;
pub mod twiml;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// Twilio's date format: RFC 2822 with a two-digit day, `Tue, 01 Jul 2025 10:52:37 +0000`.
pub fn twilio_date(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%a, %d %b %Y %H:%M:%S %z").to_string()
}

/// A Twilio error code with its message, used both for API responses and for
/// the errors recorded while a call plays (as Twilio's debugger would show them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioError {
    pub code: u32,
    pub message: String,
}

impl TwilioError {
    pub fn new(code: u32, message: impl Into<String>) -> TwilioError {
        TwilioError { code, message: message.into() }
    }

    pub fn more_info(&self) -> String {
        format!("https://www.twilio.com/docs/errors/{}", self.code)
    }

    /// The REST API's error body.
    pub fn api_body(&self, status: u16) -> Value {
        json!({ "code": self.code, "message": self.message, "more_info": self.more_info(), "status": status })
    }

    /// The REST API's error response.
    pub fn api_response(&self, status: StatusCode) -> Response {
        (status, Json(self.api_body(status.as_u16()))).into_response()
    }

    /// An entry of a call record's `errors`.
    pub fn record(&self, verb: Option<&str>, at_ms: Option<u64>) -> Value {
        let level = if WARNING_CODES.contains(&self.code) { "warning" } else { "error" };
        json!({ "code": self.code, "level": level, "message": self.message, "verb": verb, "at_ms": at_ms,
                "more_info": self.more_info() })
    }
}

/// Codes Twilio logs as warnings (the call goes on).
const WARNING_CODES: &[u32] = &[12200, 13430, 21227];

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn dates_as_twilio_writes_them() {
        let at = chrono::Utc.with_ymd_and_hms(2025, 7, 1, 9, 5, 7).unwrap();
        assert_eq!(twilio_date(at), "Tue, 01 Jul 2025 09:05:07 +0000");
        assert!(chrono::DateTime::parse_from_rfc2822(&twilio_date(at)).is_ok());
    }
}
