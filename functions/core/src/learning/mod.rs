//! Learning a clinic's phone system: the audio a call's stream carries becomes a [`timeline::Timeline`] on the
//! audio clock, which [`classify`] turns into a verdict (and the keys that reach a person). All pure: the Worker's
//! Durable Object runs [`listener::Listener`] and carries out its actions.

pub mod classify;
pub mod dtmf;
pub mod listener;
pub mod media;
pub mod stt;
pub mod timeline;
