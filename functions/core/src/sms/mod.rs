//! Batch SMS: the request and its templates, segments, reply keywords and Twilio Messaging's wire format.
//! The messages' states and the per-sender pacing are SQL's (`sql/schema/65_sms.sql`).

pub mod keywords;
pub mod request;
pub mod segments;
pub mod sending;
pub mod template;
pub mod wire;
