//! Identifiers that cross the wire, parsed rather than passed around as strings.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// The id of a `pending_calls` row: the only thing the SIP header carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PendingCallId(Uuid);

/// The id of a `batches` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BatchId(Uuid);

/// The id of an `sms_batches` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SmsBatchId(Uuid);

/// The id of an `sms_messages` row (it rides in the status callback's URL: nothing personal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SmsMessageId(Uuid);

/// The id of a `call_sessions` row (one dial attempt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(Uuid);

/// The id of a `classification_runs` row (a call's learning or verification run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(Uuid);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid id (expected a UUID)")]
pub struct BadId;

macro_rules! uuid_id {
    ($name:ident) => {
        impl $name {
            pub fn parse(raw: &str) -> Result<Self, BadId> {
                Uuid::parse_str(raw.trim()).map(Self).map_err(|_| BadId)
            }
        }
        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // Hyphenated lower-case: the form Postgres prints and the SIP header carries.
                write!(f, "{}", self.0.hyphenated())
            }
        }
    };
}
uuid_id!(PendingCallId);
uuid_id!(SessionId);
uuid_id!(BatchId);
uuid_id!(RunId);
uuid_id!(SmsBatchId);
uuid_id!(SmsMessageId);

/// A Twilio Call SID: `CA` and 32 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CallSid(String);

impl CallSid {
    pub fn parse(raw: &str) -> Result<Self, BadCallSid> {
        let hex = raw.strip_prefix("CA").ok_or(BadCallSid)?;
        if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(BadCallSid)
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a Twilio Call SID (expected CA and 32 hex digits)")]
pub struct BadCallSid;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_call_id_parses_and_prints_hyphenated() {
        let id = PendingCallId::parse("6F9619FF-8B86-D011-B42D-00C04FC964FF").unwrap();
        assert_eq!(id.to_string(), "6f9619ff-8b86-d011-b42d-00c04fc964ff");
        assert_eq!(PendingCallId::parse("abc"), Err(BadId));
        assert_eq!(PendingCallId::parse(""), Err(BadId));
    }

    #[test]
    fn call_sid_needs_prefix_and_32_hex() {
        assert!(CallSid::parse("CA0123456789abcdef0123456789abcdef").is_ok());
        assert!(CallSid::parse("SM0123456789abcdef0123456789abcdef").is_err());
        assert!(CallSid::parse("CA0123").is_err());
        assert!(CallSid::parse("CA0123456789abcdef0123456789abcdeg").is_err());
    }
}
