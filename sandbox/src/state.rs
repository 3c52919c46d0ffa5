//! Shared state: configuration, the HTTP client and the in-memory records the
//! inspection API serves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::clinic::Phones;
use crate::config::Config;
use crate::faults::Faults;
use crate::jwt::ApiKeys;
use crate::stats::Stats;
use crate::twilio::scenario::Scenario;
use crate::twilio::stream::StreamRecord;

pub struct AppState {
    pub config: Config,
    pub keys: ApiKeys,
    pub http: reqwest::Client,
    pub calls: CallStore,
    /// The Messaging stand-in's messages, queues and opt-out blocks.
    pub sms: crate::twilio::messaging::Messaging,
    pub webhooks: Records<Delivery>,
    /// Requests through the `/rest/v1` gateway by path, for counting round trips.
    pub gateway_requests: Mutex<std::collections::BTreeMap<String, u64>>,
    pub faults: Faults,
    pub stats: Stats,
    /// The STT stand-in's connections and fault switch.
    pub stt: crate::stt::Stt,
    /// The judge stand-in's requests.
    pub judges: crate::judge::Judges,
    /// Phone systems set at run time (`/_sandbox/phones`).
    pub phones: Phones,
    /// The Supabase Auth stand-in (`/auth/v1`).
    pub auth: crate::auth::Auth,
    /// The Realtime stand-in's channels and change feed.
    pub realtime: crate::realtime::Realtime,
    /// When the sandbox started: the origin of `created_ms`/`ended_ms`.
    pub started: Instant,
}

impl AppState {
    /// The sandbox with its Auth stand-in reading `auth.users` from `DATABASE_URL`.
    pub fn new(config: Config) -> Arc<AppState> {
        let users = crate::auth::users::Users::postgres(&config.database_url);
        AppState::with_auth_users(config, users)
    }

    /// The sandbox with the Auth stand-in's users from `users` (tests hold them in memory).
    pub fn with_auth_users(config: Config, users: crate::auth::users::Users) -> Arc<AppState> {
        let keys = ApiKeys::derive(&config.jwt_secret);
        let auth = crate::auth::Auth::new(&config, users);
        let realtime = crate::realtime::Realtime::new(&config);
        // Redirects are never followed: Twilio, VAPI and pg_net report them as they come.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Arc::new(AppState {
            config,
            keys,
            http,
            calls: CallStore::default(),
            sms: Default::default(),
            webhooks: Records::default(),
            gateway_requests: Mutex::default(),
            faults: Faults::default(),
            stats: Stats::default(),
            stt: crate::stt::Stt::default(),
            judges: crate::judge::Judges::default(),
            phones: Phones::default(),
            auth,
            realtime,
            started: Instant::now(),
        })
    }

    /// Real time since the sandbox started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it:
/// records are plain data and stay usable.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One call as received and played, in the shape `GET /_sandbox/calls` returns.
#[derive(Debug, Clone, Serialize)]
pub struct CallRecord {
    #[serde(skip)]
    pub created: chrono::DateTime<chrono::Utc>,
    pub sid: String,
    pub account_sid: String,
    pub received_at: String,
    /// Real milliseconds since the sandbox started: when the create was
    /// processed, and when the final status was decided.
    pub created_ms: u64,
    pub ended_ms: Option<u64>,
    /// The attempt that placed the call: `?session=` of its StatusCallback URL.
    pub session: Option<String>,
    /// Faults injected into this call, in order (`twilio_504`, `duplicate_status_callback`, ...).
    pub faults: Vec<String>,
    pub scenario: Scenario,
    pub to: String,
    pub from: String,
    /// Every form field; a key sent more than once maps to an array of its values.
    pub form: Value,
    pub twiml: Option<String>,
    pub executed: Vec<Value>,
    pub errors: Vec<Value>,
    pub sip: Option<Value>,
    pub status_callbacks: Vec<Value>,
    pub vapi: Option<VapiRecord>,
    /// The callee's phone system and the call's walk through it (answered calls).
    pub clinic: Option<Value>,
    /// `<Start><Stream>`s in the order they started.
    pub streams: Vec<StreamRecord>,
    /// The current Twilio status (`queued` … final).
    pub status: String,
    pub answered_by: Option<String>,
    pub duration: Option<u64>,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub final_status: Option<String>,
    /// True once the call ended and every status callback was answered.
    pub done: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct VapiRecord {
    pub call_id: String,
    pub variable_values: serde_json::Map<String, Value>,
    pub ended_reason: Option<String>,
    pub messages: Vec<Value>,
    /// Whether the end-of-call-report went out `before` or `after` Twilio's final status callback.
    pub report_order: Option<&'static str>,
}

pub type CallHandle = Arc<Mutex<CallRecord>>;

/// Calls in arrival order, indexed by sid. A reset drops them from the store;
/// calls still playing keep their handle and finish unobserved.
#[derive(Default)]
pub struct CallStore {
    inner: Mutex<CallIndex>,
}

#[derive(Default)]
struct CallIndex {
    order: Vec<CallHandle>,
    by_sid: HashMap<String, CallHandle>,
}

impl CallStore {
    pub fn insert(&self, record: CallRecord) -> CallHandle {
        let sid = record.sid.clone();
        let handle = Arc::new(Mutex::new(record));
        let mut index = lock(&self.inner);
        index.order.push(handle.clone());
        index.by_sid.insert(sid, handle.clone());
        handle
    }

    pub fn get(&self, sid: &str) -> Option<CallRecord> {
        let handle = lock(&self.inner).by_sid.get(sid).cloned()?;
        let record = lock(&handle).clone();
        Some(record)
    }

    /// Snapshots of the calls that satisfy `keep`, oldest first. Only those are copied: Twilio's list (every
    /// lookup after an unclear answer) asks for one number's calls among all the run's.
    pub fn list(&self, keep: impl Fn(&CallRecord) -> bool) -> Vec<CallRecord> {
        let handles = lock(&self.inner).order.clone();
        handles
            .iter()
            .filter_map(|h| {
                let record = lock(h);
                keep(&record).then(|| record.clone())
            })
            .collect()
    }

    pub fn clear(&self) {
        let mut index = lock(&self.inner);
        index.order.clear();
        index.by_sid.clear();
    }
}

/// An append-only list of records that can be cleared.
pub struct Records<T> {
    items: Mutex<Vec<T>>,
}

impl<T> Default for Records<T> {
    fn default() -> Self {
        Records { items: Mutex::new(Vec::new()) }
    }
}

impl<T: Clone> Records<T> {
    pub fn push(&self, item: T) {
        lock(&self.items).push(item);
    }
    pub fn all(&self) -> Vec<T> {
        lock(&self.items).clone()
    }
    pub fn clear(&self) {
        lock(&self.items).clear();
    }
}

/// One pg_net request delivered by the sandbox.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub id: i64,
    pub method: String,
    pub url: String,
    /// `delivered`, `timed_out`, `error`, or `dropped` (the `drop_webhook` fault: never sent).
    pub status: String,
    pub request_headers: Value,
    /// Parsed as JSON when it is JSON, else the text (lossy UTF-8).
    pub request_body: Value,
    pub response_status: Option<u16>,
    pub response_body: Option<Value>,
    pub error: Option<String>,
    pub elapsed_ms: u64,
    pub delivered_at: String,
}

/// Parses `bytes` as JSON, falling back to the text itself.
pub fn json_or_text(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}
