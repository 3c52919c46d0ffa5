//! VAPI's end-of-call-report: its fields, and when it goes out. Real reports
//! race Twilio's final status callback and can arrive twice; the fault
//! settings choose the order per call and may send one twice.

use serde_json::{json, Value};

use super::{script, Conversation, SERVER_TIMEOUT};
use crate::faults::FaultKind;
use crate::state::lock;

/// Price per nominal second of conversation.
const COST_PER_SECOND: f64 = 0.0123;

/// The report of a call whose conversation has ended, not yet sent.
pub struct EndOfCallReport {
    convo: Conversation,
    fields: Value,
    copies: usize,
}

impl EndOfCallReport {
    pub(super) fn new(convo: Conversation, fields: Value) -> EndOfCallReport {
        let copies = if convo.state.faults.duplicate_vapi_report() {
            lock(&convo.call).faults.push(FaultKind::DuplicateVapiReport.name().to_string());
            2
        } else {
            1
        };
        EndOfCallReport { convo, fields, copies }
    }

    /// Sends the report now when the draw puts it before Twilio's final
    /// callback; otherwise hands it back, for the call to send once that
    /// callback was answered.
    pub(super) async fn send_unless_held(self) -> Option<EndOfCallReport> {
        let first = self.convo.state.faults.vapi_report_first();
        if let Some(record) = lock(&self.convo.call).vapi.as_mut() {
            record.report_order = Some(if first { "before" } else { "after" });
        }
        if first {
            self.send().await;
            None
        } else {
            Some(self)
        }
    }

    pub async fn send(self) {
        for _ in 0..self.copies {
            self.convo.send("end-of-call-report", "ended", self.fields.clone(), SERVER_TIMEOUT).await;
        }
    }
}

/// The message fields of the report; `call` is VAPI's call object, which
/// gains the cost and times.
pub fn fields(ended_reason: &str, duration_secs: u64, script: Option<&script::Script>, mut call: Value) -> Value {
    let ended_at = chrono::Utc::now();
    let started_at = ended_at - chrono::Duration::seconds(duration_secs as i64);
    let iso = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let cost = (COST_PER_SECOND * duration_secs as f64 * 10_000.0).round() / 10_000.0;
    let cost_breakdown = json!({
        "transport": 0.0, "stt": round4(cost * 0.2), "llm": round4(cost * 0.3), "tts": round4(cost * 0.3),
        "vapi": round4(cost * 0.2), "total": cost,
    });
    let transcript = script.map(script::Script::transcript).unwrap_or_default();
    let base_ms = started_at.timestamp_millis();
    let messages: Vec<Value> = script
        .map(|s| s.lines.as_slice())
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, (who, text))| {
            // Turns spread evenly over the call, for a plausible timeline.
            let offset = duration_secs as f64 * i as f64 / script.map_or(1, |s| s.lines.len().max(1)) as f64;
            json!({
                "role": if *who == script::Speaker::Ai { "bot" } else { "user" },
                "message": text,
                "time": base_ms + (offset * 1000.0) as i64,
                "secondsFromStart": offset,
            })
        })
        .collect();
    let summary = script.map_or("", |s| s.summary);
    let analysis = json!({
        "summary": summary,
        "successEvaluation": if script.is_some_and(|s| s.success) { "true" } else { "false" },
        "structuredData": script.map_or(json!({}), |s| s.structured.clone()),
    });
    if let Value::Object(c) = &mut call {
        c.insert("cost".into(), json!(cost));
        c.insert("costBreakdown".into(), cost_breakdown.clone());
        c.insert("startedAt".into(), json!(iso(started_at)));
        c.insert("endedAt".into(), json!(iso(ended_at)));
        c.insert("endedReason".into(), json!(ended_reason));
    }
    json!({
        "endedReason": ended_reason,
        "durationSeconds": duration_secs,
        "durationMs": duration_secs * 1000,
        "cost": cost,
        "costBreakdown": cost_breakdown,
        "startedAt": iso(started_at),
        "endedAt": iso(ended_at),
        "transcript": transcript,
        "summary": summary,
        "artifact": { "transcript": transcript, "messages": messages },
        "analysis": analysis,
        "call": call,
    })
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}
