//! Status callbacks: which events a call asked for, their parameters, and a
//! per-call queue that delivers them in order without holding up the call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::callback_order::CallbackOrder;
use super::{signature, twilio_date};
use crate::faults::FaultKind;
use crate::state::{json_or_text, lock, AppState, CallHandle};

/// How long Twilio waits for a webhook response.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    Get,
    Post,
}

impl HttpMethod {
    pub fn parse(value: &str) -> Option<HttpMethod> {
        match value.to_ascii_uppercase().as_str() {
            "GET" => Some(HttpMethod::Get),
            "POST" => Some(HttpMethod::Post),
            _ => None,
        }
    }
}

/// The `StatusCallbackEvent` values a call subscribed to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventSet {
    pub initiated: bool,
    pub ringing: bool,
    pub answered: bool,
    pub completed: bool,
}

impl EventSet {
    /// Parses repeated `StatusCallbackEvent` values (each may also be a
    /// space-separated list). None at all means only the final event, like Twilio.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<EventSet, String> {
        let mut set = EventSet::default();
        let mut any = false;
        for event in values.into_iter().flat_map(str::split_whitespace) {
            any = true;
            match event.to_ascii_lowercase().as_str() {
                "initiated" => set.initiated = true,
                "ringing" => set.ringing = true,
                "answered" => set.answered = true,
                "completed" => set.completed = true,
                _ => return Err(event.to_string()),
            }
        }
        if !any {
            set.completed = true;
        }
        Ok(set)
    }

    /// Whether a callback is due when the call reaches `status`.
    pub fn wants(&self, status: &str) -> bool {
        match status {
            "initiated" => self.initiated,
            "ringing" => self.ringing,
            "in-progress" => self.answered,
            s if is_final(s) => self.completed,
            _ => false,
        }
    }
}

pub fn is_final(status: &str) -> bool {
    matches!(status, "completed" | "busy" | "no-answer" | "failed" | "canceled")
}

#[derive(Debug, Clone)]
pub struct CallbackConfig {
    pub url: String,
    pub method: HttpMethod,
    pub events: EventSet,
}

/// The fields every webhook about a call carries.
#[derive(Debug, Clone)]
pub struct CallInfo {
    pub sid: String,
    pub account_sid: String,
    pub from: String,
    pub to: String,
}

impl CallInfo {
    /// Parameters Twilio sends when it requests TwiML or reports a status.
    pub fn params(&self, status: &str) -> Vec<(String, String)> {
        [
            ("CallSid", self.sid.as_str()),
            ("AccountSid", &self.account_sid),
            ("From", &self.from),
            ("Caller", &self.from),
            ("To", &self.to),
            ("Called", &self.to),
            ("CallStatus", status),
            ("Direction", "outbound-api"),
            ("ApiVersion", "2010-04-01"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

/// The outcome of one signed webhook request.
#[derive(Debug)]
pub struct Delivered {
    pub status: Option<u16>,
    pub body: Value,
    pub error: Option<String>,
    pub elapsed_ms: u64,
}

/// Sends a webhook signed like Twilio's: POST as a form, GET with the
/// parameters appended to the query string.
pub async fn send_signed(state: &AppState, method: HttpMethod, url: &str, params: &[(String, String)]) -> Delivered {
    let token = &state.config.twilio_auth_token;
    let request = match method {
        HttpMethod::Post => {
            let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
            state
                .http
                .post(url)
                .header("X-Twilio-Signature", signature::sign(token, url, params))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body)
        }
        HttpMethod::Get => {
            let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
            let separator = if url.contains('?') { '&' } else { '?' };
            let full = format!("{url}{separator}{query}");
            let sig = signature::sign(token, &full, &[]);
            state.http.get(full).header("X-Twilio-Signature", sig)
        }
    };
    let started = Instant::now();
    let result = request.header("User-Agent", "TwilioProxy/1.1").timeout(WEBHOOK_TIMEOUT).send().await;
    let (status, body, error) = match result {
        Ok(response) => {
            let status = response.status().as_u16();
            match response.bytes().await {
                Ok(bytes) => (Some(status), json_or_text(&bytes), None),
                Err(e) => (Some(status), Value::Null, Some(crate::logging::error_chain(&e))),
            }
        }
        Err(e) if e.is_timeout() => (None, Value::Null, Some("timed out after 15 s".to_string())),
        Err(e) => (None, Value::Null, Some(crate::logging::error_chain(&e))),
    };
    Delivered { status, body, error, elapsed_ms: started.elapsed().as_millis() as u64 }
}

type Params = Vec<(String, String)>;

/// Delivers one call's callbacks in order on a task of its own, so a slow
/// webhook delays later callbacks (as with Twilio) but not the call itself.
/// The fault settings may swap them in pairs or send one twice; each copy
/// keeps its SequenceNumber and signature.
pub struct CallbackQueue {
    state: Arc<AppState>,
    call: CallHandle,
    config: Option<CallbackConfig>,
    tx: Option<mpsc::UnboundedSender<Params>>,
    task: Option<JoinHandle<()>>,
    next_sequence: u32,
    order: CallbackOrder<Params>,
    overtaken: bool,
}

impl CallbackQueue {
    pub fn start(state: Arc<AppState>, call: CallHandle, config: Option<CallbackConfig>) -> CallbackQueue {
        let mut queue = CallbackQueue {
            state: state.clone(),
            call: call.clone(),
            config: config.clone(),
            tx: None,
            task: None,
            next_sequence: 0,
            order: CallbackOrder::new(false),
            overtaken: false,
        };
        let Some(cfg) = config else {
            return queue;
        };
        queue.order = CallbackOrder::new(state.faults.reorder_status_callbacks());
        let (tx, mut rx) = mpsc::unbounded_channel::<Params>();
        queue.tx = Some(tx);
        queue.task = Some(tokio::spawn(async move {
            while let Some(params) = rx.recv().await {
                let delivered = send_signed(&state, cfg.method, &cfg.url, &params).await;
                let sid = lock(&call).sid.clone();
                let status_param = params.iter().find(|(k, _)| k == "CallStatus").map_or("", |(_, v)| v.as_str());
                crate::log!(
                    info,
                    "twilio",
                    "status callback sid={sid} status={status_param} -> {}",
                    delivered.status.map_or_else(|| delivered.error.clone().unwrap_or_default(), |s| s.to_string())
                );
                let params_obj: Map<String, Value> = params.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
                lock(&call).status_callbacks.push(json!({
                    "method": if cfg.method == HttpMethod::Get { "GET" } else { "POST" },
                    "url": cfg.url,
                    "params": params_obj,
                    "status": delivered.status,
                    "body": delivered.body,
                    "error": delivered.error,
                    "elapsed_ms": delivered.elapsed_ms,
                }));
            }
        }));
        queue
    }

    /// Queues the callback for `status` if the call subscribed to it.
    /// `params` are the call's parameters for that status plus any extras.
    pub fn notify(&mut self, status: &str, mut params: Params) {
        let Some(cfg) = &self.config else {
            return;
        };
        if !cfg.events.wants(status) {
            return;
        }
        params.push(("Timestamp".into(), twilio_date(chrono::Utc::now())));
        params.push(("CallbackSource".into(), "call-progress-events".into()));
        params.push(("SequenceNumber".into(), self.next_sequence.to_string()));
        self.next_sequence += 1;
        let released = self.order.release(params);
        if released.len() == 2 && !self.overtaken {
            self.overtaken = true;
            self.note_fault(FaultKind::ReorderStatusCallbacks);
        }
        for params in released {
            self.send(params);
        }
    }

    fn send(&self, params: Params) {
        let Some(tx) = &self.tx else {
            return;
        };
        let copies = if self.state.faults.duplicate_status_callback() { 2 } else { 1 };
        for _ in 0..copies {
            // The receiver only stops when the task panicked; the call goes on regardless.
            let _ = tx.send(params.clone());
        }
        if copies > 1 {
            lock(&self.call).faults.push(FaultKind::DuplicateStatusCallback.name().to_string());
        }
    }

    fn note_fault(&self, kind: FaultKind) {
        self.state.faults.record(kind);
        lock(&self.call).faults.push(kind.name().to_string());
    }

    /// Sends what is still held back and waits until every callback was delivered.
    pub async fn finish(mut self) {
        if let Some(held) = self.order.flush() {
            self.send(held);
        }
        drop(self.tx.take());
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_final_event_only() {
        let set = EventSet::parse([]).unwrap();
        assert_eq!(set, EventSet { completed: true, ..EventSet::default() });
        for s in ["initiated", "ringing", "in-progress"] {
            assert!(!set.wants(s), "{s}");
        }
        for s in ["completed", "busy", "no-answer", "failed", "canceled"] {
            assert!(set.wants(s), "{s}");
        }
    }

    #[test]
    fn requested_events_only() {
        let set = EventSet::parse(["ringing", "answered"]).unwrap();
        assert!(set.wants("ringing") && set.wants("in-progress"));
        assert!(!set.wants("initiated") && !set.wants("completed") && !set.wants("busy"));
        assert!(!set.wants("queued"));
    }

    #[test]
    fn space_separated_and_case() {
        let set = EventSet::parse(["Initiated completed", " "]).unwrap();
        assert!(set.wants("initiated") && set.wants("no-answer"));
        assert!(!set.wants("ringing"));
        assert_eq!(EventSet::parse(["answered", "hangup"]).unwrap_err(), "hangup");
    }

    #[test]
    fn call_params() {
        let info = CallInfo { sid: "CA1".into(), account_sid: "AC1".into(), from: "+1".into(), to: "+2".into() };
        let params = info.params("ringing");
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("CallStatus"), Some("ringing"));
        assert_eq!(get("Direction"), Some("outbound-api"));
        assert_eq!(get("ApiVersion"), Some("2010-04-01"));
        assert_eq!(get("Called"), Some("+2"));
    }
}
