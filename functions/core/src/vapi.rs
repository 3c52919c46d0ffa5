//! VAPI's server messages (`POST {"message": {...}}`) and the replies they expect.

use crate::ids::PendingCallId;
use crate::loose::Loose;
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

/// Parses a server message. Fields VAPI may omit are optional; only `message.type` is required. Read straight into
/// the typed wire structs below (`crate::loose`): an end-of-call report's message lists and the like are skipped
/// as they are read, never built into a tree.
pub fn parse_message(body: &str) -> Result<ServerMessage, MessageError> {
    let root: Loose<wire::Root> = serde_json::from_str(body).map_err(|e| {
        // Valid JSON of an unreadable shape (a key of ours given twice) has no usable type either.
        if e.is_data() {
            MessageError::MissingType
        } else {
            MessageError::InvalidJson
        }
    })?;
    let mut message = root.get().and_then(|root| root.message.get()).ok_or(MessageError::MissingType)?;
    let kind = std::mem::take(&mut message.kind).get().ok_or(MessageError::MissingType)?;
    let call = std::mem::take(&mut message.call).get().unwrap_or_default();
    let pending_call_id = call.pending_call_id();
    // VAPI's id of the call; a blank one is none (the session's binding compares it).
    let vapi_call_id = call.id.clone().get().filter(|id| !id.trim().is_empty());
    Ok(match kind.as_str() {
        "assistant-request" => ServerMessage::AssistantRequest { pending_call_id, vapi_call_id },
        "tool-calls" => ServerMessage::ToolCalls { pending_call_id, vapi_call_id, calls: message.tool_calls() },
        "status-update" => ServerMessage::StatusUpdate {
            pending_call_id,
            status: message.status.get().unwrap_or_default(),
            vapi_call_id,
        },
        "end-of-call-report" => ServerMessage::EndOfCallReport { pending_call_id, report: message.report(call) },
        _ => ServerMessage::Other(kind),
    })
}

/// The parts of VAPI's server messages outcall reads (shared/reference: VAPI), each field as leniently as VAPI
/// may send it.
mod wire {
    use super::*;
    use crate::loose::ScalarText;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Deserialize, Default)]
    #[serde(default)]
    pub struct Root {
        pub message: Loose<Message>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default, rename_all = "camelCase")]
    pub struct Message {
        #[serde(rename = "type")]
        pub kind: Loose<String>,
        pub call: Loose<Call>,
        pub status: Loose<String>,
        pub tool_call_list: Loose<Vec<Loose<ToolCallItem>>>,
        pub ended_reason: Loose<String>,
        pub analysis: Loose<Analysis>,
        pub summary: Loose<String>,
        pub artifact: Loose<Artifact>,
        pub transcript: Loose<String>,
        pub duration_seconds: Loose<f64>,
        pub cost: Loose<f64>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default, rename_all = "camelCase")]
    pub struct Call {
        pub id: Loose<String>,
        pub cost: Loose<f64>,
        pub assistant_overrides: Loose<AssistantOverrides>,
        pub phone_call_provider_details: Loose<ProviderDetails>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default, rename_all = "camelCase")]
    pub struct AssistantOverrides {
        pub variable_values: Loose<BTreeMap<String, Loose<String>>>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    pub struct ProviderDetails {
        pub sip: Loose<Sip>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    pub struct Sip {
        pub headers: Loose<BTreeMap<String, Loose<String>>>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    pub struct ToolCallItem {
        pub id: Loose<String>,
        pub name: Loose<String>,
        pub arguments: Loose<Value>,
        pub parameters: Loose<Value>,
        pub function: Loose<Function>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    pub struct Function {
        pub name: Loose<String>,
        pub arguments: Loose<Value>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default, rename_all = "camelCase")]
    pub struct Analysis {
        pub summary: Loose<String>,
        pub success_evaluation: Loose<ScalarText>,
        /// Kept whole (it is the assistant's own schema); `null` reads as none.
        pub structured_data: Loose<Value>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    pub struct Artifact {
        pub transcript: Loose<String>,
    }

    crate::loose_struct!(Message, Call, AssistantOverrides, ProviderDetails, Sip, ToolCallItem, Function, Analysis);
    crate::loose_struct!(Artifact, Root);

    impl Call {
        /// `call.assistantOverrides.variableValues.pendingcallid`, else the raw SIP header. A variable of
        /// another type than text is no id, and then the header is not looked at either.
        pub fn pending_call_id(&self) -> Option<PendingCallId> {
            let variables = self.assistant_overrides.as_ref().get().and_then(|o| o.variable_values.as_ref().get());
            let from_variables = variables.and_then(|v| v.get(PENDING_CALL_VARIABLE));
            let from_headers = || {
                let sip = self.phone_call_provider_details.as_ref().get()?.sip.as_ref().get()?;
                let headers = sip.headers.as_ref().get()?;
                headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("x-pendingcallid")).map(|(_, v)| v)
            };
            let raw = from_variables.or_else(from_headers)?.as_ref().get()?;
            PendingCallId::parse(raw).ok()
        }
    }

    impl Message {
        pub fn tool_calls(self) -> Vec<ToolCall> {
            let items = self.tool_call_list.get().unwrap_or_default();
            items.into_iter().filter_map(Loose::get).filter_map(ToolCallItem::into_tool_call).collect()
        }

        pub fn report(self, call: Call) -> CallReport {
            let ended_reason = self.ended_reason.get().unwrap_or_else(|| "unknown".into());
            let analysis = self.analysis.get().unwrap_or_default();
            CallReport {
                vapi_call_id: call.id.get().filter(|id| !id.trim().is_empty()),
                outcome: Outcome::from_ended_reason(&ended_reason),
                ended_reason,
                summary: analysis.summary.get().or(self.summary.get()),
                success_evaluation: analysis.success_evaluation.get().map(|ScalarText(text)| text),
                structured_data: analysis.structured_data.get(),
                transcript: self.artifact.get().and_then(|a| a.transcript.get()).or(self.transcript.get()),
                duration_seconds: self.duration_seconds.get(),
                // The message's own cost when it has one (of any type: then none), else the call's.
                cost: if self.cost.is_present() { self.cost.get() } else { call.cost.get() },
            }
        }
    }

    impl ToolCallItem {
        fn into_tool_call(self) -> Option<ToolCall> {
            let id = self.id.get()?;
            let function = self.function.get().unwrap_or_default();
            let name = self.name.get().or(function.name.get())?;
            // The first of `arguments`, `parameters`, `function.arguments` that is there, whatever its type;
            // OpenAI-style tools send arguments as a JSON string.
            let first = [self.arguments, self.parameters, function.arguments].into_iter().find(Loose::is_present);
            let arguments = match first.and_then(Loose::get) {
                Some(Value::Object(map)) => map,
                Some(Value::String(s)) => serde_json::from_str(&s).unwrap_or_default(),
                _ => Map::new(),
            };
            Some(ToolCall { id, name, arguments })
        }
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
    fn fields_of_another_shape_read_as_missing() {
        let header = format!(r#""phoneCallProviderDetails":{{"sip":{{"headers":{{"x-pendingcallid":"{ID}"}}}}}}"#);
        let cases = [
            (r#"{"message":{"type":"assistant-request","call":5}}"#.to_owned(), None),
            (format!(r#"{{"message":{{"type":"assistant-request","call":{{"id":7,{header}}}}}}}"#), id()),
            // a variable of another type than text is no id, and the header is then not looked at
            (
                format!(
                    r#"{{"message":{{"type":"assistant-request","call":{{
                    "assistantOverrides":{{"variableValues":{{"pendingcallid":null}}}},{header}}}}}}}"#
                ),
                None,
            ),
        ];
        for (body, pending_call_id) in cases {
            assert_eq!(
                parse_message(&body).unwrap(),
                ServerMessage::AssistantRequest { pending_call_id, vapi_call_id: None },
                "{body}"
            );
        }
        let report = r#"{"message":{"type":"end-of-call-report","endedReason":3,"cost":"x","call":{"cost":1.5},
            "analysis":[],"summary":"s","artifact":{"transcript":{"t":1},"messages":[{"role":"bot","message":"hi"}]},
            "transcript":"AI: hi","durationSeconds":"10"}}"#;
        let ServerMessage::EndOfCallReport { report, .. } = parse_message(report).unwrap() else { panic!() };
        assert_eq!(report.ended_reason, "unknown");
        assert_eq!(report.cost, None, "the message's own cost is there (as text), so not the call's");
        assert_eq!((report.summary.as_deref(), report.transcript.as_deref()), (Some("s"), Some("AI: hi")));
        assert_eq!(report.duration_seconds, None);
        let tools = r#"{"message":{"type":"tool-calls","toolCallList":[5,{"id":"a"},
            {"id":"b","name":"n","arguments":null,"parameters":{"pendingcallid":"x"}}]}}"#;
        let ServerMessage::ToolCalls { calls, .. } = parse_message(tools).unwrap() else { panic!() };
        assert_eq!(calls.len(), 1, "items without an id and a name are skipped");
        assert!(calls[0].arguments.is_empty(), "arguments given as null are none (parameters are not read)");
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert_eq!(parse_message("{not json"), Err(MessageError::InvalidJson));
        assert_eq!(parse_message("{}"), Err(MessageError::MissingType));
        assert_eq!(parse_message(r#"{"message":{}}"#), Err(MessageError::MissingType));
        for shape in
            ["[]", "null", r#"[{"type":"assistant-request"}]"#, r#"{"message":[]}"#, r#"{"message":{"type":5}}"#]
        {
            assert_eq!(parse_message(shape), Err(MessageError::MissingType), "{shape}");
        }
        let twice = r#"{"message":{"type":"status-update","type":"assistant-request"}}"#;
        assert_eq!(parse_message(twice), Err(MessageError::MissingType), "a key of ours given twice");
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
