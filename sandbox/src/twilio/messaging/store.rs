//! The Messaging stand-in's memory: messages in arrival order, indexed by sid and by `To` (Twilio's list is
//! asked for one person's messages among all the run's), opt-out blocks, each sender's queue, and what the
//! create requests asked for, so a test can prove nothing went out twice.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::state::lock;

/// One message as created and delivered.
#[derive(Debug, Clone)]
pub struct MessageRecord {
    pub sid: String,
    pub account_sid: String,
    pub to: String,
    /// Null while a Messaging Service has not picked its sender yet (`accepted`).
    pub from: Option<String>,
    pub messaging_service_sid: Option<String>,
    pub body: String,
    pub encoding: &'static str,
    /// As counted; the API shows "0" until a Messaging Service's message has its sender.
    pub num_segments: u32,
    pub num_media: u32,
    pub status: String,
    pub error_code: Option<u32>,
    pub error_message: Option<String>,
    pub created: DateTime<Utc>,
    /// When the message went out (`date_sent`); a failed one never does.
    pub sent: Option<DateTime<Utc>>,
    /// When its sender's queue released it, whatever happened next.
    pub released: Option<DateTime<Utc>>,
    pub updated: DateTime<Utc>,
    pub status_callback: Option<String>,
    pub status_callbacks: Vec<Value>,
    /// Faults injected into the create that made it (`twilio_504`, `twilio_timeout`) or into its callbacks.
    pub faults: Vec<String>,
}

impl MessageRecord {
    /// `GET /_sandbox/twilio/sms/messages`'s shape.
    pub fn observed(&self) -> Value {
        json!({
            "sid": self.sid,
            "to": self.to,
            "from": self.from,
            "messaging_service_sid": self.messaging_service_sid,
            "body": self.body,
            "encoding": self.encoding,
            "num_segments": self.num_segments,
            "status": self.status,
            "error_code": self.error_code,
            "created_at_ms": self.created.timestamp_millis(),
            "sent_at_ms": self.released.map(|at| at.timestamp_millis()),
            "status_callback": self.status_callback,
            "status_callbacks": self.status_callbacks,
            "faults": self.faults,
        })
    }
}

pub type MessageHandle = Arc<Mutex<MessageRecord>>;

/// The create requests that named one (To, Body).
#[derive(Debug, Clone, Copy, Default)]
struct Attempts {
    /// Every authenticated create request, refused or faulted ones too.
    requests: u64,
    /// Messages created from them.
    created: u64,
}

#[derive(Default)]
struct Inner {
    order: Vec<MessageHandle>,
    by_sid: HashMap<String, MessageHandle>,
    by_to: HashMap<String, Vec<MessageHandle>>,
    /// (person, sender): the sender is a number or, for a number in a Messaging Service, the service.
    blocks: HashSet<(String, String)>,
    attempts: BTreeMap<(String, String), Attempts>,
    refused: BTreeMap<u32, u64>,
    /// Per sender, the real instant its queue is free again.
    queues: HashMap<String, Instant>,
    /// Segments per second set per sender (`/_sandbox/twilio/sms/senders`); kept across resets.
    rates: BTreeMap<String, f64>,
}

#[derive(Default)]
pub struct Messaging {
    inner: Mutex<Inner>,
}

impl Messaging {
    pub fn insert(&self, record: MessageRecord) -> MessageHandle {
        let (sid, to) = (record.sid.clone(), record.to.clone());
        let handle = Arc::new(Mutex::new(record));
        let mut inner = lock(&self.inner);
        inner.order.push(handle.clone());
        inner.by_sid.insert(sid, handle.clone());
        inner.by_to.entry(to).or_default().push(handle.clone());
        handle
    }

    pub fn get(&self, sid: &str) -> Option<MessageRecord> {
        let handle = lock(&self.inner).by_sid.get(sid).cloned()?;
        let record = lock(&handle).clone();
        Some(record)
    }

    /// The messages to `to` (every message when `None`), oldest first: handles only, nothing copied.
    pub fn handles(&self, to: Option<&str>) -> Vec<MessageHandle> {
        let inner = lock(&self.inner);
        match to {
            Some(to) => inner.by_to.get(to).cloned().unwrap_or_default(),
            None => inner.order.clone(),
        }
    }

    /// A create request for (to, body) arrived.
    pub fn attempted(&self, to: &str, body: &str) {
        lock(&self.inner).attempts.entry((to.to_string(), body.to_string())).or_default().requests += 1;
    }

    /// A create request for (to, body) created a message.
    pub fn created(&self, to: &str, body: &str) {
        lock(&self.inner).attempts.entry((to.to_string(), body.to_string())).or_default().created += 1;
    }

    /// A create answered with an error code (validation, opt-out or an injected refusal).
    pub fn refused(&self, code: u32) {
        *lock(&self.inner).refused.entry(code).or_default() += 1;
    }

    pub fn block(&self, person: &str, sender: &str) {
        lock(&self.inner).blocks.insert((person.to_string(), sender.to_string()));
    }

    pub fn unblock(&self, person: &str, sender: &str) {
        lock(&self.inner).blocks.remove(&(person.to_string(), sender.to_string()));
    }

    pub fn is_blocked(&self, person: &str, sender: &str) -> bool {
        lock(&self.inner).blocks.contains(&(person.to_string(), sender.to_string()))
    }

    pub fn set_rate(&self, sender: &str, segments_per_second: f64) {
        lock(&self.inner).rates.insert(sender.to_string(), segments_per_second);
    }

    pub fn rates(&self) -> BTreeMap<String, f64> {
        lock(&self.inner).rates.clone()
    }

    /// Reserves `segments` of `sender`'s queue: the real instant the message leaves, after everything queued
    /// before it. The queue drains at the sender's rate (`default_rate` unless set), slowed by `time_scale`.
    pub fn reserve(&self, sender: &str, segments: u32, default_rate: f64, time_scale: f64) -> Instant {
        let mut inner = lock(&self.inner);
        let rate = inner.rates.get(sender).copied().unwrap_or(default_rate);
        let now = Instant::now();
        let slot = inner.queues.get(sender).copied().filter(|free| *free > now).unwrap_or(now);
        let busy = Duration::from_secs_f64(f64::from(segments.max(1)) / rate * time_scale);
        inner.queues.insert(sender.to_string(), slot + busy);
        slot
    }

    /// Every message in arrival order, the refused creates by code and the attempts per (To, Body).
    pub fn observed(&self) -> Value {
        let inner = lock(&self.inner);
        let messages: Vec<Value> = inner.order.iter().map(|h| lock(h).observed()).collect();
        let refused: serde_json::Map<String, Value> =
            inner.refused.iter().map(|(code, n)| (code.to_string(), json!(n))).collect();
        let attempts: Vec<Value> = inner
            .attempts
            .iter()
            .map(|((to, body), a)| json!({"to": to, "body": body, "requests": a.requests, "created": a.created}))
            .collect();
        let blocks: Vec<Value> = inner.blocks.iter().map(|(p, s)| json!({"person": p, "sender": s})).collect();
        json!({ "messages": messages, "refused": refused, "attempts": attempts, "blocks": blocks })
    }

    /// Forgets the run: messages, attempts, refusals, blocks and queues. Sender rates stay.
    pub fn clear(&self) {
        let mut inner = lock(&self.inner);
        let rates = std::mem::take(&mut inner.rates);
        *inner = Inner { rates, ..Inner::default() };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_drains_at_its_rate() {
        let m = Messaging::default();
        let first = m.reserve("+1555", 1, 2.0, 1.0);
        let second = m.reserve("+1555", 3, 2.0, 1.0);
        let third = m.reserve("+1555", 1, 2.0, 1.0);
        assert_eq!(second - first, Duration::from_millis(500));
        assert_eq!(third - second, Duration::from_millis(1500));
        // Another sender has its own queue; a set rate wins over the default.
        m.set_rate("+1666", 10.0);
        let other = m.reserve("+1666", 1, 2.0, 1.0);
        assert!(other < second);
        assert_eq!(m.reserve("+1666", 1, 2.0, 1.0) - other, Duration::from_millis(100));
        // Time scale 0: no waiting at all.
        let z = m.reserve("+1777", 5, 1.0, 0.0);
        assert!(m.reserve("+1777", 5, 1.0, 0.0) - z < Duration::from_millis(50));
    }

    #[test]
    fn clear_keeps_rates() {
        let m = Messaging::default();
        m.set_rate("+1555", 3.0);
        m.block("+1", "+2");
        m.refused(21610);
        m.clear();
        assert!(!m.is_blocked("+1", "+2"));
        assert_eq!(m.rates().get("+1555"), Some(&3.0));
        assert_eq!(m.observed()["refused"], json!({}));
    }
}
