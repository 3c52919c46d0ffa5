//! VAPI's server messages (`POST {"message": {...}}`) and the replies they expect.

use crate::ids::PendingCallId;
use crate::outcome::Outcome;
use serde_json::{json, Map, Value};

/// The tool through which an assistant fetches its call's context by `{{pendingcallid}}`.
pub const FETCH_TOOL: &str = "fetch_pending_call";

/// What the SIP header `X-pendingcallid` becomes on VAPI's side.
pub const PENDING_CALL_VARIABLE: &str = "pendingcallid";

#[derive(Debug, Clone, PartialEq)]
pub enum ServerMessage {
    AssistantRequest {
        pending_call_id: Option<PendingCallId>,
        /// VAPI's own id of the call (`message.call.id`): the session is bound to it.
        vapi_call_id: Option<String>,
    },
    ToolCalls {
        pending_call_id: Option<PendingCallId>,
        vapi_call_id: Option<String>,
        calls: Vec<ToolCall>,
    },
    StatusUpdate {
        pending_call_id: Option<PendingCallId>,
        status: String,
        vapi_call_id: Option<String>,
    },
    EndOfCallReport {
        pending_call_id: Option<PendingCallId>,
        report: CallReport,
    },
    /// Any other message type: acknowledged with a 2xx and otherwise ignored.
    Other(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: Map<String, Value>,
}

/// Why a tool call gets no context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ToolRefusal {
    #[error("the call carries no pendingcallid")]
    NoOwnCall,
    #[error("a call may fetch only its own pending call")]
    OtherCall,
}

impl ToolCall {
    /// The pending call the tool may ask about: the call's own (its SIP header). An argument may repeat it
    /// but never name another row: a tool's arguments come from the conversation and cannot widen the call.
    pub fn pending_call_id(&self, own: Option<PendingCallId>) -> Result<PendingCallId, ToolRefusal> {
        let own = own.ok_or(ToolRefusal::NoOwnCall)?;
        match ["pendingcallid", "pending_call_id"].iter().find_map(|k| self.arguments.get(*k)) {
            None => Ok(own),
            Some(Value::String(raw)) if PendingCallId::parse(raw).ok() == Some(own) => Ok(own),
            Some(_) => Err(ToolRefusal::OtherCall),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CallReport {
    pub vapi_call_id: Option<String>,
    pub ended_reason: String,
    pub outcome: Outcome,
    pub summary: Option<String>,
    pub success_evaluation: Option<String>,
    pub structured_data: Option<Value>,
    pub transcript: Option<String>,
    pub duration_seconds: Option<f64>,
    pub cost: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("the body is not valid JSON")]
    InvalidJson,
    #[error("the body has no message.type")]
    MissingType,
}

/// Parses a server message. Fields VAPI may omit are optional; only `message.type` is required.
pub fn parse_message(body: &str) -> Result<ServerMessage, MessageError> {
    let root: Value = serde_json::from_str(body).map_err(|_| MessageError::InvalidJson)?;
    let message = root.get("message").ok_or(MessageError::MissingType)?;
    let kind = message.get("type").and_then(Value::as_str).ok_or(MessageError::MissingType)?;
    let pending_call_id = pending_call_id_of(message);
    // VAPI's id of the call; a blank one is none (the session's binding compares it).
    let vapi_call_id = text(message, &["call", "id"]).filter(|id| !id.trim().is_empty());
    Ok(match kind {
        "assistant-request" => ServerMessage::AssistantRequest { pending_call_id, vapi_call_id },
        "tool-calls" => ServerMessage::ToolCalls { pending_call_id, vapi_call_id, calls: tool_calls_of(message) },
        "status-update" => ServerMessage::StatusUpdate {
            pending_call_id,
            status: text(message, &["status"]).unwrap_or_default(),
            vapi_call_id,
        },
        "end-of-call-report" => ServerMessage::EndOfCallReport { pending_call_id, report: report_of(message) },
        other => ServerMessage::Other(other.to_owned()),
    })
}

/// `call.assistantOverrides.variableValues.pendingcallid`, else the raw SIP header.
fn pending_call_id_of(message: &Value) -> Option<PendingCallId> {
    let call = message.get("call")?;
    let from_variables = call.pointer("/assistantOverrides/variableValues").and_then(|v| v.get(PENDING_CALL_VARIABLE));
    let from_headers = || {
        call.pointer("/phoneCallProviderDetails/sip/headers")
            .and_then(Value::as_object)
            .and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case("x-pendingcallid")).map(|(_, v)| v))
    };
    from_variables.or_else(from_headers).and_then(Value::as_str).and_then(|raw| PendingCallId::parse(raw).ok())
}

fn tool_calls_of(message: &Value) -> Vec<ToolCall> {
    let Some(list) = message.get("toolCallList").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|item| {
            let id = item.get("id").and_then(Value::as_str)?.to_owned();
            let name = text(item, &["name"]).or_else(|| text(item, &["function", "name"]))?;
            let raw_args = ["arguments", "parameters"]
                .iter()
                .find_map(|k| item.get(*k))
                .or_else(|| item.pointer("/function/arguments"));
            // OpenAI-style tools send arguments as a JSON string.
            let arguments = match raw_args {
                Some(Value::Object(map)) => map.clone(),
                Some(Value::String(s)) => serde_json::from_str(s).unwrap_or_default(),
                _ => Map::new(),
            };
            Some(ToolCall { id, name, arguments })
        })
        .collect()
}

fn report_of(message: &Value) -> CallReport {
    let ended_reason = text(message, &["endedReason"]).unwrap_or_else(|| "unknown".into());
    CallReport {
        vapi_call_id: text(message, &["call", "id"]).filter(|id| !id.trim().is_empty()),
        outcome: Outcome::from_ended_reason(&ended_reason),
        ended_reason,
        summary: text(message, &["analysis", "summary"]).or_else(|| text(message, &["summary"])),
        success_evaluation: message.pointer("/analysis/successEvaluation").and_then(scalar_text),
        structured_data: message.pointer("/analysis/structuredData").filter(|v| !v.is_null()).cloned(),
        transcript: text(message, &["artifact", "transcript"]).or_else(|| text(message, &["transcript"])),
        duration_seconds: message.get("durationSeconds").and_then(Value::as_f64),
        cost: message.get("cost").or_else(|| message.pointer("/call/cost")).and_then(Value::as_f64),
    }
}

fn text(value: &Value, path: &[&str]) -> Option<String> {
    path.iter().try_fold(value, |v, key| v.get(*key))?.as_str().map(str::to_owned)
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(_) | Value::Number(_) => Some(value.to_string()),
        _ => None,
    }
}

/// The answer to `assistant-request`: our assistant, with this call's context as variables and, when
/// the row has one, its own first message. Both apply to this call only.
pub fn assistant_reply(assistant_id: &str, variable_values: Map<String, Value>, first_message: Option<&str>) -> Value {
    let mut overrides = json!({"variableValues": variable_values});
    if let Some(first_message) = first_message {
        overrides["firstMessage"] = Value::String(first_message.to_owned());
    }
    json!({"assistantId": assistant_id, "assistantOverrides": overrides})
}

/// The answer to `assistant-request` when there is no call to serve. VAPI speaks the text to the
/// callee, so it says nothing about the row.
pub fn assistant_refusal() -> Value {
    json!({"error": "Sorry, this call cannot be completed. Goodbye."})
}

/// The answer to `tool-calls`: one result per call, in order. Each result is a string.
pub fn tool_results(results: Vec<(String, String, String)>) -> Value {
    let results: Vec<Value> = results
        .into_iter()
        .map(|(id, name, result)| json!({"toolCallId": id, "name": name, "result": result}))
        .collect();
    json!({ "results": results })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "6f9619ff-8b86-d011-b42d-00c04fc964ff";

    fn id() -> Option<PendingCallId> {
        PendingCallId::parse(ID).ok()
    }

    #[test]
    fn assistant_request_reads_the_header_variable() {
        let body = format!(
            r#"{{"message":{{"type":"assistant-request","call":{{"id":"c1",
            "assistantOverrides":{{"variableValues":{{"pendingcallid":"{ID}"}}}}}}}}}}"#
        );
        assert_eq!(
            parse_message(&body).unwrap(),
            ServerMessage::AssistantRequest { pending_call_id: id(), vapi_call_id: Some("c1".into()) }
        );
    }

    #[test]
    fn falls_back_to_the_raw_sip_header() {
        let body = format!(
            r#"{{"message":{{"type":"assistant-request","call":{{
            "phoneCallProviderDetails":{{"sip":{{"headers":{{"X-PendingCallId":"{ID}"}}}}}}}}}}}}"#
        );
        assert_eq!(
            parse_message(&body).unwrap(),
            ServerMessage::AssistantRequest { pending_call_id: id(), vapi_call_id: None }
        );
        let none = r#"{"message":{"type":"assistant-request","call":{}}}"#;
        assert_eq!(
            parse_message(none).unwrap(),
            ServerMessage::AssistantRequest { pending_call_id: None, vapi_call_id: None }
        );
    }

    #[test]
    fn tool_calls_in_flat_and_function_shapes() {
        let body = format!(
            r#"{{"message":{{"type":"tool-calls","call":{{}},"toolCallList":[
            {{"id":"a","name":"fetch_pending_call","arguments":{{"pendingcallid":"{ID}"}}}},
            {{"id":"b","type":"function","function":{{"name":"fetch_pending_call","arguments":"{{\"pending_call_id\":\"{ID}\"}}"}}}},
            {{"id":"c","name":"fetch_pending_call","parameters":{{}}}}]}}}}"#
        );
        let ServerMessage::ToolCalls { calls, pending_call_id, .. } = parse_message(&body).unwrap() else { panic!() };
        assert_eq!(calls.len(), 3);
        let own = id().unwrap();
        assert_eq!(calls[0].pending_call_id(id()), Ok(own), "an argument may repeat the call's own id");
        assert_eq!(calls[1].name, FETCH_TOOL);
        assert_eq!(calls[1].pending_call_id(id()), Ok(own));
        assert_eq!(calls[2].pending_call_id(id()), Ok(own), "no argument: the call's own");
        assert_eq!(calls[2].pending_call_id(pending_call_id), Err(ToolRefusal::NoOwnCall), "the call carries none");
        assert_eq!(calls[0].pending_call_id(None), Err(ToolRefusal::NoOwnCall), "an argument alone names nothing");
    }

    #[test]
    fn a_tool_argument_cannot_name_another_row() {
        let other = "0b2c3d4e-1111-4222-8333-944455556666";
        for arguments in
            [json!({"pendingcallid": other}), json!({"pending_call_id": other}), json!({"pendingcallid": 7})]
        {
            let call =
                ToolCall { id: "t".into(), name: FETCH_TOOL.into(), arguments: arguments.as_object().unwrap().clone() };
            assert_eq!(call.pending_call_id(id()), Err(ToolRefusal::OtherCall), "{arguments}");
        }
    }

    #[test]
    fn end_of_call_report_fields() {
        let body = format!(
            r#"{{"message":{{"type":"end-of-call-report","endedReason":"customer-ended-call",
            "call":{{"id":"vapi-1","cost":0.31,"assistantOverrides":{{"variableValues":{{"pendingcallid":"{ID}"}}}}}},
            "artifact":{{"transcript":"AI: hi"}},"analysis":{{"summary":"ok","successEvaluation":true,
            "structuredData":{{"confirmed":true}}}},"durationSeconds":42.5}}}}"#
        );
        let ServerMessage::EndOfCallReport { pending_call_id, report } = parse_message(&body).unwrap() else {
            panic!()
        };
        assert_eq!(pending_call_id, id());
        assert_eq!(report.outcome, Outcome::Completed);
        assert_eq!(report.vapi_call_id.as_deref(), Some("vapi-1"));
        assert_eq!(report.transcript.as_deref(), Some("AI: hi"));
        assert_eq!(report.summary.as_deref(), Some("ok"));
        assert_eq!(report.success_evaluation.as_deref(), Some("true"));
        assert_eq!(report.structured_data, Some(json!({"confirmed": true})));
        assert_eq!(report.duration_seconds, Some(42.5));
        assert_eq!(report.cost, Some(0.31));
    }

    #[test]
    fn status_update_and_unknown_types() {
        let body = r#"{"message":{"type":"status-update","status":"in-progress","call":{"id":"v"}}}"#;
        assert_eq!(
            parse_message(body).unwrap(),
            ServerMessage::StatusUpdate {
                pending_call_id: None,
                status: "in-progress".into(),
                vapi_call_id: Some("v".into())
            }
        );
        assert_eq!(
            parse_message(r#"{"message":{"type":"speech-update"}}"#).unwrap(),
            ServerMessage::Other("speech-update".into())
        );
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert_eq!(parse_message("{not json"), Err(MessageError::InvalidJson));
        assert_eq!(parse_message("{}"), Err(MessageError::MissingType));
        assert_eq!(parse_message(r#"{"message":{}}"#), Err(MessageError::MissingType));
    }

    #[test]
    fn replies_have_vapis_shapes() {
        let mut vars = Map::new();
        vars.insert("employee_name".into(), json!("Dana"));
        assert_eq!(
            assistant_reply("asst-1", vars.clone(), None),
            json!({"assistantId": "asst-1", "assistantOverrides": {"variableValues": {"employee_name": "Dana"}}})
        );
        assert_eq!(
            assistant_reply("asst-1", vars, Some("Hi Dana")),
            json!({"assistantId": "asst-1",
                   "assistantOverrides": {"variableValues": {"employee_name": "Dana"}, "firstMessage": "Hi Dana"}})
        );
        assert!(assistant_refusal()["error"].is_string());
        assert_eq!(
            tool_results(vec![("a".into(), FETCH_TOOL.into(), "{}".into())]),
            json!({"results": [{"toolCallId": "a", "name": "fetch_pending_call", "result": "{}"}]})
        );
    }

    #[test]
    fn a_blank_vapi_call_id_is_none() {
        let body = format!(
            r#"{{"message":{{"type":"assistant-request","call":{{"id":"  ",
            "assistantOverrides":{{"variableValues":{{"pendingcallid":"{ID}"}}}}}}}}}}"#
        );
        assert_eq!(
            parse_message(&body).unwrap(),
            ServerMessage::AssistantRequest { pending_call_id: id(), vapi_call_id: None }
        );
    }
}
