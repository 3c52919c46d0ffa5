//! outcall's pure core: every decision the Worker makes, with no I/O.
//!
//! The Worker (`outcall-edge`) parses a request into these types, asks this crate what to do,
//! calls one SQL function and answers. Everything here is plain Rust and unit-tested on the host.

pub mod api;
pub mod batch;
pub mod body;
pub mod classification;
pub mod config;
pub mod context;
pub mod cost;
pub mod dashboard;
pub mod dial;
pub mod dispatch;
pub mod error;
pub mod ids;
pub mod learning;
pub mod loose;
pub mod mcp;
pub mod operator;
pub mod outcome;
pub mod phone;
pub mod reconcile;
pub mod retry;
pub mod routes;
pub mod rpc;
pub mod sip;
pub mod sms;
pub mod suppression;
pub mod twilio;
pub mod twiml;
pub mod user_jwt;
pub mod vapi;
pub mod vapi_auth;
pub mod webhook;
pub mod xml;
