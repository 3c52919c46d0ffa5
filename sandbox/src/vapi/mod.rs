//! The VAPI stand-in: a SIP-bridged call becomes the sequence of server
//! messages VAPI would POST to the Worker (assistant-request, tool-calls,
//! status-update, end-of-call-report).

pub mod navigate;
pub mod report;
pub mod script;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::clinic::tree::NodeKind;
use crate::clinic::Line;
use crate::clock::NominalClock;
use crate::state::{json_or_text, lock, AppState, CallHandle, VapiRecord};
use crate::twilio::scenario::Scenario;
use crate::twilio::sip::SipUri;
pub use report::{EndOfCallReport, Timing};

/// VAPI's fixed deadline for the assistant-request reply.
pub const ASSISTANT_REQUEST_NOMINAL_MS: u64 = 7_500;
/// Scaled deadlines never go below this, so a fast time scale on a loaded test
/// machine does not turn an ordinary round trip through wrangler dev into a timeout.
pub const MIN_REAL_DEADLINE: Duration = Duration::from_secs(5);
/// VAPI's default server timeout for every other message.
pub const SERVER_TIMEOUT: Duration = Duration::from_secs(20);

/// `X-pendingcallid` → `pendingcallid`: the rule VAPI applies to SIP headers.
pub fn variable_name(header: &str) -> String {
    let lower = header.to_ascii_lowercase();
    lower.strip_prefix("x-").map(str::to_string).unwrap_or(lower)
}

/// The Worker's reply to one message.
struct Reply {
    status: Option<u16>,
    body: Option<Value>,
}

/// What the assistant-request reply means for the call.
#[derive(Debug, PartialEq)]
pub enum AssistantDecision {
    /// Go on, with these variableValues merged over the SIP ones.
    Proceed(Map<String, Value>),
    /// End the call with this endedReason.
    End(&'static str),
}

/// Judges an assistant-request reply like VAPI: transport failures and
/// non-2xx are `assistant-request-failed`; a body that is not an assistant is
/// the Worker's error.
pub fn judge_assistant_reply(status: Option<u16>, body: Option<&Value>) -> AssistantDecision {
    if !status.is_some_and(|s| (200..300).contains(&s)) {
        return AssistantDecision::End("assistant-request-failed");
    }
    let Some(Value::Object(reply)) = body else {
        return AssistantDecision::End("assistant-request-returned-error");
    };
    if reply.get("error").is_some_and(|e| !e.is_null()) {
        return AssistantDecision::End("assistant-request-returned-error");
    }
    let has_id = matches!(reply.get("assistantId"), Some(Value::String(id)) if !id.is_empty());
    let has_assistant = matches!(reply.get("assistant"), Some(Value::Object(_)));
    if !has_id && !has_assistant {
        let present = reply.get("assistantId").is_some_and(|v| !v.is_null())
            || reply.get("assistant").is_some_and(|v| !v.is_null());
        return AssistantDecision::End(if present {
            "assistant-request-returned-invalid-assistant"
        } else {
            "assistant-request-returned-no-assistant"
        });
    }
    let overrides = reply
        .get("assistantOverrides")
        .and_then(|o| o.get("variableValues"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    AssistantDecision::Proceed(overrides)
}

/// One VAPI call, from the SIP INVITE to the end-of-call-report.
struct Conversation {
    state: Arc<AppState>,
    call: CallHandle,
    id: String,
    sip_headers: Map<String, Value>,
    variables: Map<String, Value>,
    started: chrono::DateTime<chrono::Utc>,
}

impl Conversation {
    fn call_object(&self, status: &str) -> Value {
        json!({
            "id": self.id,
            "orgId": "org-local",
            "type": "inboundPhoneCall",
            "status": status,
            "createdAt": self.started.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "phoneCallProvider": "twilio",
            "phoneCallTransport": "sip",
            "assistantOverrides": { "variableValues": self.variables },
            "phoneCallProviderDetails": { "sip": { "headers": self.sip_headers } },
        })
    }

    /// POSTs one server message and records the exchange.
    async fn send(&self, kind: &str, call_status: &str, fields: Value, timeout: Duration) -> Reply {
        let mut message = Map::new();
        message.insert("type".into(), json!(kind));
        message.insert("timestamp".into(), json!(chrono::Utc::now().timestamp_millis()));
        message.insert("call".into(), self.call_object(call_status));
        if let Value::Object(extra) = fields {
            message.extend(extra);
        }
        let body = json!({ "message": message });
        let started = Instant::now();
        let result = self
            .state
            .http
            .post(&self.state.config.vapi_server_url)
            .header("X-Vapi-Secret", &self.state.config.vapi_secret)
            .json(&body)
            .timeout(timeout)
            .send()
            .await;
        let (reply, error) = match result {
            Ok(response) => {
                let status = response.status().as_u16();
                match response.bytes().await {
                    Ok(bytes) => (Reply { status: Some(status), body: Some(json_or_text(&bytes)) }, None),
                    Err(e) => (Reply { status: Some(status), body: None }, Some(crate::logging::error_chain(&e))),
                }
            }
            Err(e) if e.is_timeout() => {
                (Reply { status: None, body: None }, Some(format!("timed out after {timeout:?}")))
            }
            Err(e) => (Reply { status: None, body: None }, Some(crate::logging::error_chain(&e))),
        };
        let elapsed_ms = started.elapsed().as_millis() as u64;
        crate::log!(
            info,
            "vapi",
            "call id={} message={kind} -> {} in {elapsed_ms} ms",
            self.id,
            reply.status.map_or_else(|| error.clone().unwrap_or_default(), |s| s.to_string())
        );
        if let Some(record) = lock(&self.call).vapi.as_mut() {
            record.messages.push(json!({
                "type": kind,
                "request": body,
                "reply_status": reply.status,
                "reply": reply.body,
                "error": error,
                "elapsed_ms": elapsed_ms,
            }));
        }
        reply
    }

    /// Sends the closing status-update and builds the end-of-call-report,
    /// which the caller sends now or after Twilio's final callback.
    async fn finish(self, ended_reason: &str, timing: &Timing, script: Option<&script::Script>) -> EndOfCallReport {
        if let Some(record) = lock(&self.call).vapi.as_mut() {
            record.ended_reason = Some(ended_reason.to_string());
        }
        self.send("status-update", "ended", json!({ "status": "ended", "endedReason": ended_reason }), SERVER_TIMEOUT)
            .await;
        let fields = report::fields(ended_reason, timing, script, self.call_object("ended"));
        EndOfCallReport::new(self, fields)
    }
}

/// The `result` of the first tool-call result, as an object when it is JSON.
fn tool_result_object(reply: Option<&Value>) -> Option<Map<String, Value>> {
    let result = reply?.get("results")?.as_array()?.first()?.get("result")?;
    match result {
        Value::Object(o) => Some(o.clone()),
        Value::String(s) => serde_json::from_str::<Value>(s).ok()?.as_object().cloned(),
        _ => None,
    }
}

/// What the conversation is like, from where the clinic settled: a person (after menus or not), a
/// voicemail, or a recording (or menus the assistant gave up on).
fn outcome(settled: Option<NodeKind>, line: &Line) -> Scenario {
    match settled {
        Some(NodeKind::Person) if line.visited(NodeKind::Menu) => Scenario::IvrThenHuman,
        Some(NodeKind::Person) => Scenario::Human,
        Some(NodeKind::Voicemail) => Scenario::Voicemail,
        _ => Scenario::IvrOnly,
    }
}

/// Runs the VAPI side of a bridged call; advances `clock` by the nominal
/// length of the navigation (when bridged inside a menu) and the conversation.
/// Returns the end-of-call-report when it is held back until Twilio's final
/// status callback was answered.
pub async fn converse(
    state: &Arc<AppState>,
    call: &CallHandle,
    sip: &SipUri,
    line: &Line,
    clock: &mut NominalClock,
) -> Option<EndOfCallReport> {
    let sip_headers: Map<String, Value> = sip.headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), json!(v))).collect();
    let variables: Map<String, Value> = sip.headers.iter().map(|(k, v)| (variable_name(k), json!(v))).collect();
    let mut convo = Conversation {
        state: state.clone(),
        call: call.clone(),
        id: uuid::Uuid::new_v4().to_string(),
        sip_headers,
        variables,
        started: chrono::Utc::now(),
    };
    lock(call).vapi = Some(VapiRecord {
        call_id: convo.id.clone(),
        variable_values: convo.variables.clone(),
        ended_reason: None,
        messages: Vec::new(),
        report_order: None,
    });

    let deadline = crate::clock::real(clock.scale(), ASSISTANT_REQUEST_NOMINAL_MS).max(MIN_REAL_DEADLINE);
    let reply = convo.send("assistant-request", "ringing", json!({}), deadline).await;
    match judge_assistant_reply(reply.status, reply.body.as_ref()) {
        AssistantDecision::End(reason) => {
            return convo.finish(reason, &Timing::default(), None).await.send_unless_held().await;
        }
        AssistantDecision::Proceed(overrides) => {
            convo.variables.extend(overrides);
            if let Some(record) = lock(call).vapi.as_mut() {
                record.variable_values = convo.variables.clone();
            }
        }
    }

    let tool_call_id = format!("call_{}", &uuid::Uuid::new_v4().simple().to_string()[..24]);
    let arguments = json!({ "pendingcallid": convo.variables.get("pendingcallid") });
    let function = json!({ "name": "fetch_pending_call", "arguments": arguments });
    let tool_call = json!({ "id": tool_call_id, "type": "function", "function": function });
    let tool_reply = convo
        .send(
            "tool-calls",
            "in-progress",
            json!({
                "toolCallList": [{ "id": tool_call_id, "type": "function", "name": "fetch_pending_call",
                                   "arguments": arguments, "function": function }],
                "toolWithToolCallList": [{ "type": "function", "function": { "name": "fetch_pending_call" },
                                           "toolCall": tool_call }],
                "toolCalls": [tool_call],
            }),
            SERVER_TIMEOUT,
        )
        .await;
    let tool_result = tool_result_object(tool_reply.body.as_ref());

    convo.send("status-update", "in-progress", json!({ "status": "in-progress" }), SERVER_TIMEOUT).await;
    let connected_ms = clock.elapsed_ms();
    let navigation = navigate::navigate(line, clock).await;
    let scenario = outcome(navigation.settled, line);

    let ctx = script::Context { variables: &convo.variables, tool_result: tool_result.as_ref() };
    let script = script::for_scenario(scenario, &ctx);
    let timing = Timing {
        navigation_ms: clock.elapsed_ms() - connected_ms,
        conversation_ms: scenario.conversation_secs() * 1000,
        presses: navigation.presses.iter().map(|p| (p.keys.clone(), p.at_ms - connected_ms)).collect(),
    };
    // The assistant's turns go out on the call's outbound track when the report says they were said.
    let mut free_at = 0;
    for (offset_ms, (who, text)) in timing.turn_offsets(script.lines.len()).into_iter().zip(&script.lines) {
        if *who == script::Speaker::Ai {
            let at = (connected_ms + offset_ms).max(free_at);
            line.say(text, at);
            free_at = at + crate::voice::speech_ms(text) + crate::clinic::walk::GAP_MS;
        }
    }
    clock.advance(timing.conversation_ms).await;
    convo.finish(scenario.ended_reason(), &timing, Some(&script)).await.send_unless_held().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_become_variables() {
        assert_eq!(variable_name("X-pendingcallid"), "pendingcallid");
        assert_eq!(variable_name("x-Clinic-Id"), "clinic-id");
    }

    #[test]
    fn assistant_replies() {
        use AssistantDecision::*;
        let ok = json!({"assistantId": "a1", "assistantOverrides": {"variableValues": {"employee_name": "J"}}});
        match judge_assistant_reply(Some(200), Some(&ok)) {
            Proceed(v) => assert_eq!(v.get("employee_name"), Some(&json!("J"))),
            other => panic!("{other:?}"),
        }
        assert_eq!(judge_assistant_reply(Some(200), Some(&json!({"assistant": {}}))), Proceed(Map::new()));
        assert_eq!(
            judge_assistant_reply(Some(200), Some(&json!({"error": "no"}))),
            End("assistant-request-returned-error")
        );
        assert_eq!(judge_assistant_reply(Some(200), Some(&json!("not json"))), End("assistant-request-returned-error"));
        assert_eq!(judge_assistant_reply(Some(500), Some(&ok)), End("assistant-request-failed"));
        assert_eq!(judge_assistant_reply(None, None), End("assistant-request-failed"));
        assert_eq!(judge_assistant_reply(Some(200), Some(&json!({}))), End("assistant-request-returned-no-assistant"));
        assert_eq!(
            judge_assistant_reply(Some(200), Some(&json!({"assistantId": 5}))),
            End("assistant-request-returned-invalid-assistant")
        );
    }

    #[test]
    fn tool_results() {
        let reply = json!({"results": [{"toolCallId": "c", "name": "fetch_pending_call", "result": "{\"clinic_name\":\"N\"}"}]});
        assert_eq!(tool_result_object(Some(&reply)).unwrap().get("clinic_name"), Some(&json!("N")));
        let plain = json!({"results": [{"result": "not json"}]});
        assert!(tool_result_object(Some(&plain)).is_none());
        assert!(tool_result_object(None).is_none());
    }
}
