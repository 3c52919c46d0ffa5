//! The joined channels with `postgres_changes` bindings, shared by the sockets (which register them) and the
//! change feed (which finds whom a change is for and hands them the message).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::catalog::TableInfo;
use super::change::{Change, Rows};
use super::filter::all_match;
use super::join::Binding;
use crate::state::lock;

/// Who a channel subscribes as: the role and claims of its token, as the RLS check sets them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subscriber {
    pub role: String,
    /// `request.jwt.claims`.
    pub claims: String,
}

impl Subscriber {
    /// None when the claims have no `role` (Realtime requires it).
    pub fn from_claims(claims: &Map<String, Value>) -> Option<Subscriber> {
        let role = claims.get("role")?.as_str()?.to_owned();
        Some(Subscriber { role, claims: Value::Object(claims.clone()).to_string() })
    }
}

/// A change message for one channel of a socket.
#[derive(Debug)]
pub struct Push {
    pub channel: u64,
    pub payload: Value,
}

struct Registered {
    bindings: Arc<Vec<Binding>>,
    subscriber: Arc<Subscriber>,
    outbox: mpsc::Sender<Push>,
}

/// A channel a change is for: its bindings that match (the message's `ids`).
pub struct Target {
    pub channel: u64,
    pub ids: Vec<u32>,
    pub subscriber: Arc<Subscriber>,
    outbox: mpsc::Sender<Push>,
}

impl Target {
    /// Queues the message; a socket too slow to take it loses it rather than holding up the feed.
    pub fn send(&self, data: Value) -> bool {
        let payload = serde_json::json!({ "ids": self.ids, "data": data });
        self.outbox.try_send(Push { channel: self.channel, payload }).is_ok()
    }
}

#[derive(Default)]
pub struct Hub {
    channels: Mutex<HashMap<u64, Registered>>,
    next_channel: AtomicU64,
    /// Polls of the change feed begun and finished: a channel is "Subscribed to PostgreSQL" once a poll that
    /// began after it registered has finished, so every change committed after that message reaches it.
    polls_begun: AtomicU64,
    polls_done: AtomicU64,
}

impl Hub {
    /// Registers a channel's bindings; returns its key and the poll whose end makes it subscribed.
    pub fn register(&self, bindings: Vec<Binding>, subscriber: Subscriber, outbox: mpsc::Sender<Push>) -> (u64, u64) {
        let key = self.next_channel.fetch_add(1, Ordering::SeqCst) + 1;
        let registered = Registered { bindings: Arc::new(bindings), subscriber: Arc::new(subscriber), outbox };
        lock(&self.channels).insert(key, registered);
        (key, self.polls_begun.load(Ordering::SeqCst) + 1)
    }

    /// A new token for a joined channel (`access_token`).
    pub fn resubscribe(&self, channel: u64, subscriber: Subscriber) {
        if let Some(registered) = lock(&self.channels).get_mut(&channel) {
            registered.subscriber = Arc::new(subscriber);
        }
    }

    pub fn unregister(&self, channel: u64) {
        lock(&self.channels).remove(&channel);
    }

    pub fn is_empty(&self) -> bool {
        lock(&self.channels).is_empty()
    }

    pub fn begin_poll(&self) -> u64 {
        self.polls_begun.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub fn end_poll(&self, poll: u64) {
        self.polls_done.fetch_max(poll, Ordering::SeqCst);
    }

    pub fn polls_done(&self) -> u64 {
        self.polls_done.load(Ordering::SeqCst)
    }

    /// The channels with a binding that wants this change and whose filters the row passes.
    pub fn targets(&self, change: &Change, table: &TableInfo, rows: &Rows) -> Vec<Target> {
        let empty = Map::new();
        let row = rows.filtered(change.action).unwrap_or(&empty);
        let typname = |column: &str| table.typname(column);
        lock(&self.channels)
            .iter()
            .filter_map(|(&channel, registered)| {
                let ids: Vec<u32> = registered
                    .bindings
                    .iter()
                    .filter(|b| b.wants(change.action, &change.schema, &change.table))
                    .filter(|b| all_match(&b.filters, row, typname))
                    .map(|b| b.id)
                    .collect();
                // Bindings with the same parameters share an id, named once (Realtime keeps a set).
                let ids = ids
                    .iter()
                    .enumerate()
                    .filter(|(i, id)| !ids[..*i].contains(id))
                    .map(|(_, id)| *id)
                    .collect::<Vec<_>>();
                (!ids.is_empty()).then(|| Target {
                    channel,
                    ids,
                    subscriber: registered.subscriber.clone(),
                    outbox: registered.outbox.clone(),
                })
            })
            .collect()
    }
}
