//! One module per route.

pub mod batches;
pub mod health;
pub mod stream;
pub mod twilio_status;
pub mod vapi;
pub mod webhook;
