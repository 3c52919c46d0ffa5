//! The Twilio stand-in: the Calls API, call playback, TwiML and status callbacks.

pub mod api;
pub mod call;
pub mod callbacks;
pub mod scenario;
pub mod signature;
pub mod sip;
pub mod twiml;

use serde_json::{json, Value};

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

    /// An entry of a call record's `errors`.
    pub fn record(&self, verb: Option<&str>, at_ms: Option<u64>) -> Value {
        let level = if WARNING_CODES.contains(&self.code) { "warning" } else { "error" };
        json!({ "code": self.code, "level": level, "message": self.message, "verb": verb, "at_ms": at_ms,
                "more_info": self.more_info() })
    }
}

/// Codes Twilio logs as warnings (the call goes on).
const WARNING_CODES: &[u32] = &[12200, 13430, 21227];
