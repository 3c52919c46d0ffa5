//! One JSON-RPC message as the streamable HTTP transport hands it over, and what answers it: a notification or
//! a response is accepted (202, no body); `initialize`, `ping` and `tools/list` are answered here; `tools/call`
//! becomes a [`ToolCall`] for the Worker to run (or a tool error, when its arguments are refused).

use super::tools::{tool_error, tools_list, ToolCall};
use super::transport::negotiate;
use serde_json::{json, Value};

/// A JSON-RPC error (code, message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
}

impl RpcError {
    pub const PARSE: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;

    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// What the client sent, read as JSON-RPC.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A notification or a response: nothing to answer.
    NoReply,
    Request {
        id: Value,
        method: String,
        params: Value,
    },
}

/// What to do with a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Dispatch {
    /// 202 Accepted, no body.
    Accepted,
    /// 200 with this JSON-RPC response.
    Answer(Value),
    /// Run this tool with the database, then answer `id` with [`super::tool_result`].
    Call { id: Value, call: ToolCall },
}

pub fn result_response(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

pub fn error_response(id: &Value, error: &RpcError) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": error.code, "message": error.message}})
}

/// Reads one message (a batch, an array, is not part of the revisions we speak).
fn read(body: &str) -> Result<Incoming, (Value, RpcError)> {
    let value: Value = serde_json::from_str(body)
        .map_err(|e| (Value::Null, RpcError::new(RpcError::PARSE, format!("not JSON: {e}"))))?;
    let id = value.get("id").cloned().unwrap_or(Value::Null);
    let invalid = |message: &str| (id.clone(), RpcError::new(RpcError::INVALID_REQUEST, message));
    let Value::Object(message) = &value else {
        return Err(invalid("a message is one JSON-RPC object"));
    };
    if message.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(invalid("jsonrpc must be \"2.0\""));
    }
    let Some(method) = message.get("method") else {
        return if message.contains_key("result") || message.contains_key("error") {
            Ok(Incoming::NoReply)
        } else {
            Err(invalid("a request needs a method"))
        };
    };
    let Some(method) = method.as_str() else {
        return Err(invalid("method must be a string"));
    };
    match message.get("id") {
        None => Ok(Incoming::NoReply),
        Some(id @ (Value::String(_) | Value::Number(_))) => Ok(Incoming::Request {
            id: id.clone(),
            method: method.to_owned(),
            params: message.get("params").cloned().unwrap_or(Value::Null),
        }),
        Some(_) => Err(invalid("id must be a string or a number")),
    }
}

/// The decision for one POSTed message. `max_targets` is `BATCH_MAX_TARGETS`, as for the batch API.
pub fn dispatch(body: &str, max_targets: usize) -> Dispatch {
    let (id, method, params) = match read(body) {
        Ok(Incoming::NoReply) => return Dispatch::Accepted,
        Ok(Incoming::Request { id, method, params }) => (id, method, params),
        Err((id, error)) => return Dispatch::Answer(error_response(&id, &error)),
    };
    let answer = |result: Result<Value, RpcError>| {
        Dispatch::Answer(match result {
            Ok(result) => result_response(&id, result),
            Err(error) => error_response(&id, &error),
        })
    };
    if !(params.is_null() || params.is_object()) {
        return answer(Err(RpcError::new(RpcError::INVALID_PARAMS, "params must be an object")));
    }
    match method.as_str() {
        "initialize" => answer(Ok(initialize(&params))),
        "ping" => answer(Ok(json!({}))),
        "tools/list" => answer(Ok(tools_list())),
        "tools/call" => {
            let Some(name) = params.get("name").and_then(Value::as_str) else {
                return answer(Err(RpcError::new(RpcError::INVALID_PARAMS, "tools/call needs a tool name")));
            };
            let arguments = params.get("arguments").cloned().unwrap_or_else(|| json!({}));
            match ToolCall::parse(name, &arguments, max_targets) {
                Ok(Ok(call)) => Dispatch::Call { id, call },
                Ok(Err(refused)) => answer(Ok(tool_error(&refused))),
                Err(error) => answer(Err(error)),
            }
        }
        other => answer(Err(RpcError::new(RpcError::METHOD_NOT_FOUND, format!("no method {other}")))),
    }
}

fn initialize(params: &Value) -> Value {
    json!({
        "protocolVersion": negotiate(params.get("protocolVersion").and_then(Value::as_str)),
        "capabilities": {"tools": {"listChanged": false}},
        "serverInfo": {"name": "outcall", "version": env!("CARGO_PKG_VERSION")},
        "instructions": "outcall calls people in batches. trigger-batch-calls submits a batch (it places real \
            phone calls); get-batch-status and get-batch-transcripts follow it; pause-batch and resume-batch hold \
            and release it; cancel-batch stops it.",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(body: &str) -> Value {
        match dispatch(body, 100) {
            Dispatch::Answer(v) => v,
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn initialize_negotiates_and_advertises_tools() {
        let a = answer(
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
        );
        assert_eq!(a["id"], 1);
        assert_eq!(a["result"]["protocolVersion"], "2025-06-18");
        assert_eq!(a["result"]["capabilities"]["tools"]["listChanged"], false);
        assert_eq!(a["result"]["serverInfo"]["name"], "outcall");
        let a = answer(r#"{"jsonrpc":"2.0","id":"x","method":"initialize","params":{"protocolVersion":"1999-01-01"}}"#);
        assert_eq!(a["result"]["protocolVersion"], "2025-11-25");
    }

    #[test]
    fn notifications_and_responses_are_accepted_without_an_answer() {
        assert_eq!(dispatch(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#, 1), Dispatch::Accepted);
        assert_eq!(dispatch(r#"{"jsonrpc":"2.0","id":3,"result":{}}"#, 1), Dispatch::Accepted);
    }

    #[test]
    fn protocol_errors_have_their_json_rpc_codes() {
        assert_eq!(answer("{nope")["error"]["code"], -32700);
        assert_eq!(answer("{nope")["id"], Value::Null);
        assert_eq!(answer("[]")["error"]["code"], -32600);
        assert_eq!(answer(r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#)["error"]["code"], -32600);
        assert_eq!(answer(r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#)["error"]["code"], -32600);
        assert_eq!(answer(r#"{"jsonrpc":"2.0","id":2,"method":"resources/list"}"#)["error"]["code"], -32601);
        assert_eq!(answer(r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":[]}"#)["error"]["code"], -32602);
        assert_eq!(answer(r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{}}"#)["error"]["code"], -32602);
        let unknown = answer(r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"rm-rf"}}"#);
        assert_eq!(unknown["error"]["code"], -32602);
        assert_eq!(answer(r#"{"jsonrpc":"2.0","id":9,"method":"ping"}"#), json!({"jsonrpc":"2.0","id":9,"result":{}}));
    }

    #[test]
    fn tools_list_and_calls_are_dispatched() {
        let listed = answer(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
        let names: Vec<&str> =
            listed["result"]["tools"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
        assert_eq!(names, crate::mcp::TOOL_NAMES);
        let call = dispatch(
            r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"cancel-batch","arguments":{"batchId":"6f9619ff-8b86-d011-b42d-00c04fc964ff"}}}"#,
            1,
        );
        assert!(matches!(call, Dispatch::Call { id, call: ToolCall::Cancel { .. } } if id == 4));
        let refused = answer(
            r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"cancel-batch","arguments":{"batchId":"no"}}}"#,
        );
        assert_eq!(refused["result"]["isError"], true);
    }
}
