//! A message's life after its create: it waits in its sender's queue (drained at the sender's rate, in
//! segments per second), leaves (`sent`), and a nominal 2 s later reaches its final status; each change past
//! the initial one is a signed status callback (`sent`, then `delivered` / `undelivered` / `failed`).
//! Callbacks go out in order on the message's own task, so a slow webhook delays neither the queue nor other
//! messages; the `duplicate_status_callback` and `reorder_status_callbacks` faults apply as for calls.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Map, Value};

use super::scenario::Delivery;
use super::store::MessageHandle;
use crate::clock::sleep_nominal;
use crate::faults::FaultKind;
use crate::state::{lock, AppState};
use crate::twilio::callback_order::CallbackOrder;
use crate::twilio::callbacks::{send_signed, HttpMethod};

/// Nominal time from leaving the queue to the handset's (or the carrier's) receipt.
pub const DELIVERY_MS: u64 = 2000;
/// The number a Messaging Service sends from (its pool has one number, Twilio's test `From`).
pub const SERVICE_NUMBER: &str = "+15005550006";
/// What one segment costs, as Twilio prices a US SMS (negative: a charge).
const PRICE_PER_SEGMENT: f64 = 0.0079;

type Params = Vec<(String, String)>;

/// Queues the message on its sender and plays it out on a task of its own.
pub fn start(state: Arc<AppState>, handle: MessageHandle, delivery: Delivery) {
    let (queue, segments) = {
        let r = lock(&handle);
        (r.from.clone().or_else(|| r.messaging_service_sid.clone()).unwrap_or_default(), r.num_segments)
    };
    let slot = state.sms.reserve(&queue, segments, state.config.sms_segments_per_second, state.config.time_scale);
    tokio::spawn(deliver(state, handle, slot, delivery));
}

async fn deliver(state: Arc<AppState>, handle: MessageHandle, slot: Instant, delivery: Delivery) {
    tokio::time::sleep_until(slot.into()).await;
    lock(&handle).released = Some(chrono::Utc::now());
    let mut callbacks = Callbacks::new(state.clone(), handle.clone());
    if let Delivery::Failed(_) = delivery {
        callbacks.notify(finish(&handle, &delivery)).await;
    } else {
        callbacks.notify(leave_queue(&handle)).await;
        sleep_nominal(state.config.time_scale, DELIVERY_MS).await;
        callbacks.notify(finish(&handle, &delivery)).await;
    }
    callbacks.finish().await;
    let r = lock(&handle);
    crate::log!(info, "twilio", "message {} sid={}", r.status, r.sid);
}

/// `sent`: the sender's queue released it. Returns the callback's parameters.
fn leave_queue(handle: &MessageHandle) -> Params {
    let mut r = lock(handle);
    let now = chrono::Utc::now();
    if r.from.is_none() {
        r.from = Some(SERVICE_NUMBER.to_string());
    }
    r.status = "sent".to_string();
    r.sent = Some(now);
    r.updated = now;
    params(&r, None)
}

/// The final status, with its error code if any. Returns the callback's parameters.
fn finish(handle: &MessageHandle, delivery: &Delivery) -> Params {
    let mut r = lock(handle);
    let now = chrono::Utc::now();
    if r.from.is_none() {
        r.from = Some(SERVICE_NUMBER.to_string());
    }
    r.status = delivery.status().to_string();
    r.error_code = delivery.error().map(|e| e.code);
    r.error_message = delivery.error().map(|e| e.message.clone());
    r.updated = now;
    // Carriers report delivered and undelivered with their receipt's time (UTC, to the minute).
    let dlr = matches!(delivery, Delivery::Delivered | Delivery::Undelivered(_)).then(|| now.format("%y%m%d%H%M"));
    params(&r, dlr.map(|d| d.to_string()))
}

/// A status callback's parameters (§5.3, plus `To` and `ApiVersion`).
fn params(r: &super::store::MessageRecord, raw_dlr_done_date: Option<String>) -> Params {
    let mut params: Params = [
        ("MessageSid", r.sid.as_str()),
        ("SmsSid", &r.sid),
        ("MessageStatus", &r.status),
        ("SmsStatus", &r.status),
        ("AccountSid", &r.account_sid),
        ("From", r.from.as_deref().unwrap_or_default()),
        ("To", &r.to),
        ("ApiVersion", "2010-04-01"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if let Some(service) = &r.messaging_service_sid {
        params.push(("MessagingServiceSid".into(), service.clone()));
    }
    if let Some(code) = r.error_code {
        params.push(("ErrorCode".into(), code.to_string()));
    }
    if let Some(date) = raw_dlr_done_date {
        params.push(("RawDlrDoneDate".into(), date));
    }
    params
}

/// The price Twilio shows once a message went out, as a string: `"-0.01580"` for two segments.
pub fn price(segments: u32) -> String {
    format!("{:.5}", -PRICE_PER_SEGMENT * f64::from(segments))
}

/// One message's status callbacks, sent in order (or in swapped pairs under the fault).
struct Callbacks {
    state: Arc<AppState>,
    handle: MessageHandle,
    url: Option<String>,
    order: CallbackOrder<Params>,
}

impl Callbacks {
    fn new(state: Arc<AppState>, handle: MessageHandle) -> Callbacks {
        let url = lock(&handle).status_callback.clone();
        let swap = url.is_some() && state.faults.reorder_status_callbacks();
        Callbacks { state, handle, url, order: CallbackOrder::new(swap) }
    }

    async fn notify(&mut self, params: Params) {
        let released = self.order.release(params);
        if released.len() == 2 {
            self.state.faults.record(FaultKind::ReorderStatusCallbacks);
            lock(&self.handle).faults.push(FaultKind::ReorderStatusCallbacks.name().to_string());
        }
        for params in released {
            self.post(params).await;
        }
    }

    async fn finish(mut self) {
        if let Some(held) = self.order.flush() {
            self.post(held).await;
        }
    }

    async fn post(&self, params: Params) {
        let Some(url) = &self.url else {
            return;
        };
        let copies = if self.state.faults.duplicate_status_callback() {
            lock(&self.handle).faults.push(FaultKind::DuplicateStatusCallback.name().to_string());
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delivered = send_signed(&self.state, HttpMethod::Post, url, &params).await;
            let params_obj: Map<String, Value> =
                params.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
            let mut r = lock(&self.handle);
            crate::log!(
                info,
                "twilio",
                "message status callback sid={} -> {}",
                r.sid,
                delivered.status.map_or_else(|| delivered.error.clone().unwrap_or_default(), |s| s.to_string())
            );
            r.status_callbacks.push(json!({
                "url": url,
                "params": params_obj,
                "status": delivered.status,
                "body": delivered.body,
                "error": delivered.error,
                "elapsed_ms": delivered.elapsed_ms,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_negative_strings() {
        assert_eq!(price(1), "-0.00790");
        assert_eq!(price(2), "-0.01580");
    }
}
