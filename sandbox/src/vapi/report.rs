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

/// How a VAPI call's time went, in nominal ms from when it was connected.
#[derive(Debug, Clone, Default)]
pub struct Timing {
    /// In the phone menus before the conversation.
    pub navigation_ms: u64,
    pub conversation_ms: u64,
    /// DTMF tool calls: the keys and when they were sent.
    pub presses: Vec<(String, u64)>,
}

impl Timing {
    pub fn total_ms(&self) -> u64 {
        self.navigation_ms + self.conversation_ms
    }

    /// When each of `turns` turns starts: spread evenly over the conversation, for a plausible timeline.
    pub fn turn_offsets(&self, turns: usize) -> Vec<u64> {
        (0..turns as u64).map(|i| self.navigation_ms + self.conversation_ms * i / turns as u64).collect()
    }
}

/// Whole seconds as an integer (as before navigation existed), otherwise a fraction.
fn seconds(ms: u64) -> Value {
    if ms.is_multiple_of(1000) {
        json!(ms / 1000)
    } else {
        json!(ms as f64 / 1000.0)
    }
}

/// The message fields of the report; `call` is VAPI's call object, which
/// gains the cost and times.
pub fn fields(ended_reason: &str, timing: &Timing, script: Option<&script::Script>, mut call: Value) -> Value {
    let total_ms = timing.total_ms();
    let ended_at = chrono::Utc::now();
    let started_at = ended_at - chrono::Duration::milliseconds(total_ms as i64);
    let iso = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let cost = round4(COST_PER_SECOND * total_ms as f64 / 1000.0);
    let cost_breakdown = json!({
        "transport": 0.0, "stt": round4(cost * 0.2), "llm": round4(cost * 0.3), "tts": round4(cost * 0.3),
        "vapi": round4(cost * 0.2), "total": cost,
    });
    let transcript = script.map(script::Script::transcript).unwrap_or_default();
    let base_ms = started_at.timestamp_millis();
    let lines = script.map(|s| s.lines.as_slice()).unwrap_or_default();
    let turns = timing.turn_offsets(lines.len()).into_iter().zip(lines).map(|(offset_ms, (who, text))| {
        let message = json!({
            "role": if *who == script::Speaker::Ai { "bot" } else { "user" },
            "message": text,
            "time": base_ms + offset_ms as i64,
            "secondsFromStart": offset_ms as f64 / 1000.0,
        });
        (offset_ms, message)
    });
    // VAPI's record of its DTMF tool: `{"keys": "1"}`.
    let dtmf = timing.presses.iter().map(|(keys, offset_ms)| {
        let id = format!("call_{}", &uuid::Uuid::new_v4().simple().to_string()[..24]);
        let arguments = json!({ "keys": keys }).to_string();
        let message = json!({
            "role": "tool_calls",
            "message": "",
            "time": base_ms + *offset_ms as i64,
            "secondsFromStart": *offset_ms as f64 / 1000.0,
            "toolCalls": [{ "id": id, "type": "function", "function": { "name": "dtmf", "arguments": arguments } }],
        });
        (*offset_ms, message)
    });
    let mut timed: Vec<(u64, Value)> = dtmf.chain(turns).collect();
    timed.sort_by_key(|(offset, _)| *offset);
    let messages: Vec<Value> = timed.into_iter().map(|(_, m)| m).collect();
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
        "durationSeconds": seconds(total_ms),
        "durationMs": total_ms,
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
