//! One module per route.

pub mod batches;
pub mod dashboard;
pub mod health;
pub mod mcp;
pub mod operator;
pub mod sms;
pub mod stream;
pub mod suppressions;
pub mod twilio_sms;
pub mod twilio_status;
pub mod vapi;
pub mod webhook;
