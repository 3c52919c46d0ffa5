//! The tools: each one a batch API route, with its input and output schemas taken from the OpenAPI document
//! (`openapi.json`: the request body or the route's parameters in, the success answer out), the same
//! validation (`batch::parse_request`, `api::Page`), and the REST error body as the tool error.

use crate::api::{self, Page, OPENAPI_DOCUMENT};
use crate::batch;
use crate::error::ApiError;
use crate::ids::{BatchId, SmsBatchId};
use crate::phone::PhoneNumber;
use crate::sms;
use crate::suppression::{self, NewSuppression};
use serde_json::{json, Map, Value};

use super::message::RpcError;

/// A tool call to run against the database, validated.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolCall {
    /// `create_batch`'s argument, as `POST /api/v1/batches` builds it.
    Trigger {
        request: Value,
    },
    /// `estimate_batch_cost`'s argument, as `POST /api/v1/batches/estimate` builds it.
    Estimate {
        request: Value,
    },
    Status {
        batch_id: BatchId,
        page: Page,
    },
    Transcripts {
        batch_id: BatchId,
        page: Page,
    },
    List {
        page: Page,
    },
    Cancel {
        batch_id: BatchId,
    },
    Pause {
        batch_id: BatchId,
    },
    Resume {
        batch_id: BatchId,
    },
    /// `create_sms_batch`'s argument, as `POST /api/v1/sms-batches` builds it.
    TriggerSms {
        request: Value,
    },
    SmsStatus {
        batch_id: SmsBatchId,
    },
    SmsMessages {
        batch_id: SmsBatchId,
        page: Page,
    },
    CancelSms {
        batch_id: SmsBatchId,
    },
    /// `add_suppression`'s arguments, as `POST /api/v1/suppressions` parses them.
    Suppress(NewSuppression),
    ListSuppressions {
        page: Page,
    },
    Unsuppress {
        phone: PhoneNumber,
    },
    /// The providers' circuit breaker and refusal counts.
    ProviderHealth,
}

/// A tool: the REST route it is (path and method in the OpenAPI document, and its success status), the route's
/// parameters it takes, its hints (readOnly, destructive, idempotent, openWorld) and what it does.
struct Tool {
    name: &'static str,
    path: &'static str,
    method: &'static str,
    status: &'static str,
    /// The route's parameters the tool takes as arguments (`components/parameters` names).
    parameters: &'static [&'static str],
    hints: [bool; 4],
    description: &'static str,
}

const TOOLS: [Tool; 16] = [
    Tool {
        name: "trigger-batch-calls",
        path: "/api/v1/batches",
        method: "post",
        status: "202",
        parameters: &["IdempotencyKey"],
        hints: [false, false, false, true],
        description: "Submit a batch of phone calls (POST /api/v1/batches): targets and/or existing pending call \
            ids, each target with its own prompt and variables, an optional schedule, and an optional \
            idempotencyKey (the same key with the same arguments replays the first answer). The whole request is \
            validated first; every problem comes back as a tool error with its item path (e.g. targets[1].phone).",
    },
    Tool {
        name: "estimate-batch-cost",
        path: "/api/v1/batches/estimate",
        method: "post",
        status: "200",
        parameters: &[],
        hints: [true, false, true, false],
        description: "What a batch would cost, without creating it (POST /api/v1/batches/estimate): the arguments \
            of trigger-batch-calls, checked the same; answers the costEstimate (calls, learning calls, USD) from the \
            deployment's rates. Nothing is written or dialled.",
    },
    Tool {
        name: "get-batch-status",
        path: "/api/v1/batches/{batchId}",
        method: "get",
        status: "200",
        parameters: &["BatchId", "ResultLimit", "Offset"],
        hints: [true, false, true, false],
        description: "A batch's progress and a page of its rows' results (GET /api/v1/batches/{batchId}).",
    },
    Tool {
        name: "get-batch-transcripts",
        path: "/api/v1/batches/{batchId}/transcripts",
        method: "get",
        status: "200",
        parameters: &["BatchId", "ResultLimit", "Offset"],
        hints: [true, false, true, false],
        description: "A page of the batch's rows that have a transcript (GET /api/v1/batches/{batchId}/transcripts).",
    },
    Tool {
        name: "list-batches",
        path: "/api/v1/batches",
        method: "get",
        status: "200",
        parameters: &["BatchListLimit", "Offset"],
        hints: [true, false, true, false],
        description: "Batches, newest first, a page at a time (GET /api/v1/batches).",
    },
    Tool {
        name: "cancel-batch",
        path: "/api/v1/batches/{batchId}/cancel",
        method: "post",
        status: "200",
        parameters: &["BatchId"],
        hints: [false, true, true, false],
        description: "Cancel a batch (POST /api/v1/batches/{batchId}/cancel): every row not in a call stops; rows \
            in a call finish and are not retried. Cancelling again is harmless.",
    },
    Tool {
        name: "pause-batch",
        path: "/api/v1/batches/{batchId}/pause",
        method: "post",
        status: "200",
        parameters: &["BatchId"],
        hints: [false, false, true, false],
        description: "Pause a batch (POST /api/v1/batches/{batchId}/pause): nothing new is dialled; calls in \
            progress finish, and retries that fall due wait. Pausing again is harmless (changed: false). A completed \
            or cancelled batch refuses.",
    },
    Tool {
        name: "resume-batch",
        path: "/api/v1/batches/{batchId}/resume",
        method: "post",
        status: "200",
        parameters: &["BatchId"],
        hints: [false, false, true, false],
        description: "Resume a paused batch (POST /api/v1/batches/{batchId}/resume): dialling goes on where it \
            stopped. Resuming a batch that is not paused is harmless (changed: false).",
    },
    Tool {
        name: "trigger-batch-sms",
        path: "/api/v1/sms-batches",
        method: "post",
        status: "202",
        parameters: &["IdempotencyKey"],
        hints: [false, false, false, true],
        description: "Send a batch of text messages (POST /api/v1/sms-batches): a sender (from or \
            messagingServiceSid), targets with phone, name and variables, a bodyTemplate with {{name}} placeholders \
            (or a body per target), an optional schedule.notBefore and idempotencyKey. Every target's text is filled \
            in and checked first; a placeholder a target lacks comes back as a tool error with its path (e.g. \
            targets[2].variables.when). Numbers that opted out (STOP) are never texted and are listed in optedOut.",
    },
    Tool {
        name: "get-sms-batch-status",
        path: "/api/v1/sms-batches/{smsBatchId}",
        method: "get",
        status: "200",
        parameters: &["SmsBatchId"],
        hints: [true, false, true, false],
        description:
            "An SMS batch's counts by delivery status, segments and replies (GET /api/v1/sms-batches/{smsBatchId}).",
    },
    Tool {
        name: "get-sms-batch-messages",
        path: "/api/v1/sms-batches/{smsBatchId}/messages",
        method: "get",
        status: "200",
        parameters: &["SmsBatchId", "ResultLimit", "Offset"],
        hints: [true, false, true, false],
        description: "A page of an SMS batch's messages with their delivery status, error codes and the replies \
            people sent (GET /api/v1/sms-batches/{smsBatchId}/messages).",
    },
    Tool {
        name: "cancel-sms-batch",
        path: "/api/v1/sms-batches/{smsBatchId}/cancel",
        method: "post",
        status: "200",
        parameters: &["SmsBatchId"],
        hints: [false, true, true, false],
        description: "Cancel an SMS batch (POST /api/v1/sms-batches/{smsBatchId}/cancel): messages not yet sent \
            are dropped; those already handed to Twilio go. Cancelling again is harmless.",
    },
    Tool {
        name: "suppress-number",
        path: "/api/v1/suppressions",
        method: "post",
        status: "201",
        parameters: &[],
        hints: [false, true, true, false],
        description: "Put a phone on the do-not-call list (POST /api/v1/suppressions): it is never dialled again; its \
            rows waiting for a call end suppressed at once. Optional reason and source (manual by default, \
            sms_opt_out, clinic). Adding a listed phone again is harmless (created: false).",
    },
    Tool {
        name: "list-suppressions",
        path: "/api/v1/suppressions",
        method: "get",
        status: "200",
        parameters: &["ResultLimit", "Offset"],
        hints: [true, false, true, false],
        description: "The do-not-call list, newest first, a page at a time (GET /api/v1/suppressions).",
    },
    Tool {
        name: "unsuppress-number",
        path: "/api/v1/suppressions/remove",
        method: "post",
        status: "200",
        parameters: &[],
        hints: [false, true, true, false],
        description: "Take a phone off the do-not-call list (POST /api/v1/suppressions/remove), whatever its source; \
            rows already ended suppressed stay so. Removing a phone that is not listed is harmless (removed: false).",
    },
    Tool {
        name: "get-provider-health",
        path: "/api/v1/providers",
        method: "get",
        status: "200",
        parameters: &[],
        hints: [true, false, true, false],
        description: "The providers' circuit breaker (closed, open: nothing is dialled until reopenAt, half_open: one \
            probe call decides), its last transitions, and Twilio's and VAPI's refusals per UTC day: throttled \
            (Twilio 429, VAPI concurrency limit) and unavailable (5xx, no answer, assistant-request failures) \
            (GET /api/v1/providers).",
    },
];

pub const TOOL_NAMES: [&str; 16] = [
    TOOLS[0].name,
    TOOLS[1].name,
    TOOLS[2].name,
    TOOLS[3].name,
    TOOLS[4].name,
    TOOLS[5].name,
    TOOLS[6].name,
    TOOLS[7].name,
    TOOLS[8].name,
    TOOLS[9].name,
    TOOLS[10].name,
    TOOLS[11].name,
    TOOLS[12].name,
    TOOLS[13].name,
    TOOLS[14].name,
    TOOLS[15].name,
];

fn document() -> Value {
    serde_json::from_str(OPENAPI_DOCUMENT).expect("openapi.json is JSON (a core test reads it)")
}

const SCHEMA_REF: &str = "#/components/schemas/";

/// `schema` as a standalone JSON Schema: its `$ref`s to the document's schemas point into its own `$defs`,
/// which hold every schema it reaches (the `Json` schema refers to itself, so they cannot be inlined).
fn standalone(mut schema: Value, schemas: &Map<String, Value>) -> Value {
    let mut reached: Vec<String> = Vec::new();
    let mut defs = Map::new();
    relink(&mut schema, &mut reached);
    let mut next = 0;
    while next < reached.len() {
        let name = reached[next].clone();
        next += 1;
        let mut def = schemas.get(&name).cloned().unwrap_or(Value::Bool(true));
        relink(&mut def, &mut reached);
        defs.insert(name, def);
    }
    if !defs.is_empty() {
        schema["$defs"] = Value::Object(defs);
    }
    schema
}

fn relink(value: &mut Value, reached: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get_mut("$ref") {
                if let Some(name) = target.strip_prefix(SCHEMA_REF).map(str::to_owned) {
                    *target = format!("#/$defs/{name}");
                    if !reached.contains(&name) {
                        reached.push(name);
                    }
                }
            }
            map.values_mut().for_each(|v| relink(v, reached));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| relink(v, reached)),
        _ => {}
    }
}

/// A schema that is only a `$ref` to one of the document's, as that schema (MCP wants `"type": "object"` at the
/// top of a tool's schemas).
fn resolved(schema: Value, schemas: &Map<String, Value>) -> Value {
    match schema["$ref"].as_str().and_then(|r| r.strip_prefix(SCHEMA_REF)) {
        Some(name) => schemas.get(name).cloned().unwrap_or(schema),
        None => schema,
    }
}

/// The arguments a tool takes from its route's parameters: name → the parameter's schema with its description.
fn parameter_properties(tool: &Tool, components: &Value) -> (Map<String, Value>, Vec<Value>) {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for name in tool.parameters {
        let parameter = &components["parameters"][*name];
        let mut schema = parameter["schema"].clone();
        schema["description"] = parameter["description"].clone();
        // The header's name as an argument: camelCase, as the API's JSON.
        let argument = match parameter["name"].as_str().unwrap_or(name) {
            "Idempotency-Key" => "idempotencyKey".to_owned(),
            other => other.to_owned(),
        };
        if parameter["required"] == true {
            required.push(Value::String(argument.clone()));
        }
        properties.insert(argument, schema);
    }
    (properties, required)
}

fn descriptor(tool: &Tool, document: &Value) -> Value {
    let components = &document["components"];
    let empty = Map::new();
    let schemas = components["schemas"].as_object().unwrap_or(&empty);
    let operation = &document["paths"][tool.path][tool.method];
    let (properties, required) = parameter_properties(tool, components);
    let input = match operation["requestBody"]["content"]["application/json"]["schema"].clone() {
        // The request body is the arguments, with the header parameters beside its own fields.
        Value::Null => {
            json!({"type": "object", "additionalProperties": false, "properties": properties, "required": required})
        }
        body => {
            let mut body = resolved(body, schemas);
            if let Some(own) = body["properties"].as_object_mut() {
                own.extend(properties);
            }
            body
        }
    };
    let output =
        resolved(operation["responses"][tool.status]["content"]["application/json"]["schema"].clone(), schemas);
    let [read_only, destructive, idempotent, open_world] = tool.hints;
    json!({
        "name": tool.name,
        "title": operation["summary"],
        "description": tool.description,
        "inputSchema": standalone(input, schemas),
        "outputSchema": standalone(output, schemas),
        "annotations": {
            "title": operation["summary"],
            "readOnlyHint": read_only,
            "destructiveHint": destructive,
            "idempotentHint": idempotent,
            "openWorldHint": open_world,
        },
    })
}

/// `tools/list`'s result: every tool (one page).
pub fn tools_list() -> Value {
    let document = document();
    json!({"tools": TOOLS.iter().map(|t| descriptor(t, &document)).collect::<Vec<_>>()})
}

/// A tool's success: its answer as `structuredContent`, and as text for clients that read only text.
pub fn tool_result(answer: &Value) -> Value {
    json!({"content": [{"type": "text", "text": answer.to_string()}], "structuredContent": answer, "isError": false})
}

/// A tool's failure: the REST API's error body (`{"error": {code, message, items?}}`) as text.
pub fn tool_error(error: &ApiError) -> Value {
    json!({"content": [{"type": "text", "text": error.body().to_string()}], "isError": true})
}

impl ToolCall {
    /// A call's arguments, validated: `Err` for a tool we do not have (a JSON-RPC error), `Ok(Err)` for
    /// arguments the API would refuse (a tool error, with the API's code and item paths).
    pub fn parse(name: &str, arguments: &Value, max_targets: usize) -> Result<Result<ToolCall, ApiError>, RpcError> {
        let Some(tool) = TOOLS.iter().find(|t| t.name == name) else {
            return Err(RpcError::new(RpcError::INVALID_PARAMS, format!("no tool {name}")));
        };
        let Value::Object(arguments) = arguments else {
            return Ok(Err(ApiError::bad_request("invalid_json", "arguments must be an object")));
        };
        Ok(match tool.name {
            "trigger-batch-calls" => trigger(arguments.clone(), |body, key, hash| {
                let request = batch::parse_request(body, max_targets)?.rpc_request(key, hash);
                Ok(ToolCall::Trigger { request })
            }),
            "estimate-batch-cost" => trigger(arguments.clone(), |body, _, hash| {
                let request = batch::parse_request(body, max_targets)?.rpc_request(None, hash);
                Ok(ToolCall::Estimate { request })
            }),
            "trigger-batch-sms" => trigger(arguments.clone(), |body, key, hash| {
                let request = sms::request::parse_request(body, max_targets)?.rpc_request(key, hash);
                Ok(ToolCall::TriggerSms { request })
            }),
            "suppress-number" => {
                suppression::parse_add(&Value::Object(arguments.clone()).to_string()).map(ToolCall::Suppress)
            }
            "unsuppress-number" => suppression::parse_remove(&Value::Object(arguments.clone()).to_string())
                .map(|phone| ToolCall::Unsuppress { phone }),
            _ => read_arguments(tool, arguments),
        })
    }
}

/// A create route with the key from the arguments: the rest of them is the body, validated by `build` and
/// hashed as the API hashes a body (so the same key with other arguments is a conflict, as there).
fn trigger(
    mut arguments: Map<String, Value>,
    build: impl FnOnce(&str, Option<&str>, &str) -> Result<ToolCall, ApiError>,
) -> Result<ToolCall, ApiError> {
    let key = match arguments.remove("idempotencyKey") {
        None | Some(Value::Null) => None,
        Some(Value::String(key)) => api::idempotency_key(Some(&key))?,
        Some(_) => return Err(ApiError::bad_request("invalid_idempotency_key", "idempotencyKey must be a string")),
    };
    let body = Value::Object(arguments).to_string();
    build(&body, key.as_deref(), &batch::request_hash(&body))
}

/// The read, cancel, pause and resume tools: `batchId`, `limit`, `offset`, refused as the API refuses them.
fn read_arguments(tool: &Tool, arguments: &Map<String, Value>) -> Result<ToolCall, ApiError> {
    let takes = |name: &str| match name {
        "batchId" => tool.parameters.contains(&"BatchId"),
        "smsBatchId" => tool.parameters.contains(&"SmsBatchId"),
        "limit" | "offset" => tool.parameters.contains(&"Offset"),
        _ => false,
    };
    if let Some(other) = arguments.keys().find(|k| !takes(k)) {
        return Err(ApiError::bad_request("invalid_parameter", format!("unknown argument {other:?}")));
    }
    let batch_id = || match arguments.get("batchId").and_then(Value::as_str).map(BatchId::parse) {
        Some(Ok(id)) => Ok(id),
        _ => Err(ApiError::bad_request("invalid_id", "a batch id is a UUID")),
    };
    let sms_batch_id = || match arguments.get("smsBatchId").and_then(Value::as_str).map(SmsBatchId::parse) {
        Some(Ok(id)) => Ok(id),
        _ => Err(ApiError::bad_request("invalid_id", "an SMS batch id is a UUID")),
    };
    // The page as the query string would carry it, read by the same rule.
    let page = |default_limit| {
        let mut query = Vec::new();
        for name in ["limit", "offset"] {
            match arguments.get(name).map(Value::as_u64) {
                None => {}
                Some(Some(n)) => query.push(format!("{name}={n}")),
                Some(None) => {
                    return Err(ApiError::bad_request("invalid_parameter", format!("{name} must be a whole number")))
                }
            }
        }
        Page::from_query(Some(&query.join("&")), default_limit)
    };
    Ok(match tool.name {
        "get-batch-status" => ToolCall::Status { batch_id: batch_id()?, page: page(100)? },
        "get-batch-transcripts" => ToolCall::Transcripts { batch_id: batch_id()?, page: page(100)? },
        "list-batches" => ToolCall::List { page: page(50)? },
        "get-sms-batch-status" => ToolCall::SmsStatus { batch_id: sms_batch_id()? },
        "get-sms-batch-messages" => ToolCall::SmsMessages { batch_id: sms_batch_id()?, page: page(100)? },
        "cancel-sms-batch" => ToolCall::CancelSms { batch_id: sms_batch_id()? },
        "list-suppressions" => ToolCall::ListSuppressions { page: page(100)? },
        "pause-batch" => ToolCall::Pause { batch_id: batch_id()? },
        "resume-batch" => ToolCall::Resume { batch_id: batch_id()? },
        "get-provider-health" => ToolCall::ProviderHealth,
        _ => ToolCall::Cancel { batch_id: batch_id()? },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn components() -> Value {
        document()["components"].take()
    }

    fn tool(name: &str) -> Value {
        tools_list()["tools"].as_array().unwrap().iter().find(|t| t["name"] == name).cloned().unwrap()
    }

    #[test]
    fn every_tool_has_object_schemas_from_the_openapi_document_and_annotations() {
        let components = components();
        for name in TOOL_NAMES {
            let t = tool(name);
            assert_eq!(t["inputSchema"]["type"], "object", "{name}");
            assert_eq!(t["outputSchema"]["type"], "object", "{name}");
            assert!(!t.to_string().contains("#/components/"), "{name}: every $ref is local");
            for hint in ["readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"] {
                assert!(t["annotations"][hint].is_boolean(), "{name} {hint}");
            }
            assert!(t["title"].is_string(), "{name}");
        }
        let status = tool("get-batch-status");
        assert_eq!(status["outputSchema"]["$defs"]["Counts"], components["schemas"]["Counts"]);
        assert_eq!(status["inputSchema"]["required"], json!(["batchId"]));
        let trigger = tool("trigger-batch-calls");
        let body = &components["schemas"]["CreateBatchRequest"];
        assert_eq!(trigger["inputSchema"]["anyOf"], body["anyOf"]);
        assert_eq!(trigger["inputSchema"]["properties"]["idempotencyKey"]["pattern"], "^[!-~]{1,255}$");
        assert_eq!(trigger["inputSchema"]["$defs"]["Target"], components["schemas"]["Target"].clone().tap_relinked());
        assert_eq!(tool("cancel-batch")["annotations"]["destructiveHint"], true);
        assert_eq!(tool("list-batches")["annotations"]["readOnlyHint"], true);
        assert_eq!(trigger["annotations"]["readOnlyHint"], false);
        let sms = tool("trigger-batch-sms");
        assert_eq!(sms["inputSchema"]["anyOf"], components["schemas"]["CreateSmsBatchRequest"]["anyOf"]);
        assert_eq!(sms["outputSchema"]["required"], json!(["smsBatchId", "statusUrl", "accepted", "optedOut"]));
        assert_eq!(tool("get-sms-batch-messages")["inputSchema"]["required"], json!(["smsBatchId"]));
        assert_eq!(tool("cancel-sms-batch")["annotations"]["destructiveHint"], true);
        let suppress = tool("suppress-number");
        assert_eq!(suppress["inputSchema"]["required"], json!(["phone"]));
        assert_eq!(suppress["outputSchema"]["required"], json!(["created", "suppression"]));
        assert_eq!(tool("unsuppress-number")["inputSchema"]["additionalProperties"], false);
        assert_eq!(tool("list-suppressions")["outputSchema"]["required"], json!(["suppressions", "page"]));
    }

    #[test]
    fn suppression_tools_parse_like_the_api() {
        let call = ToolCall::parse("suppress-number", &json!({"phone": "+1 555 600 0001", "source": "clinic"}), 1);
        let Ok(Ok(ToolCall::Suppress(new))) = call else { panic!("a valid suppression: {call:?}") };
        assert_eq!((new.phone.as_str(), new.source), ("+15556000001", suppression::Source::Clinic));
        let refused = ToolCall::parse("suppress-number", &json!({"phone": "12"}), 1).unwrap().unwrap_err();
        assert_eq!(refused.body()["error"]["items"][0]["path"], "phone");
        assert_eq!(
            ToolCall::parse("unsuppress-number", &json!({"phone": "+15556000001"}), 1),
            Ok(Ok(ToolCall::Unsuppress { phone: PhoneNumber::parse("+15556000001").unwrap() }))
        );
        assert_eq!(
            ToolCall::parse("list-suppressions", &json!({"limit": 5}), 1),
            Ok(Ok(ToolCall::ListSuppressions { page: Page { limit: 5, offset: 0 } }))
        );
    }

    #[test]
    fn trigger_sms_fills_templates_like_the_api_and_names_the_missing_variable() {
        let args = json!({"from": "+15550100000", "bodyTemplate": "Hi {{name}}, {{when}}",
                          "targets": [{"phone": "+15550100001", "name": "A", "variables": {"when": "9:30"}},
                                      {"phone": "+15550100002", "name": "B"}]});
        let refused = ToolCall::parse("trigger-batch-sms", &args, 100).unwrap().unwrap_err();
        assert_eq!(refused.body()["error"]["items"][0]["path"], "targets[1].variables.when");
        let mut fine = args.clone();
        fine["targets"][1]["variables"] = json!({"when": "10:00"});
        fine["idempotencyKey"] = json!("k-2");
        let Ok(Ok(ToolCall::TriggerSms { request })) = ToolCall::parse("trigger-batch-sms", &fine, 100) else {
            panic!("a valid SMS batch")
        };
        assert_eq!(request["messages"][1]["body"], "Hi B, 10:00");
        assert_eq!(request["idempotency_key"], "k-2");
        let id = "6f9619ff-8b86-d011-b42d-00c04fc964ff";
        assert_eq!(
            ToolCall::parse("get-sms-batch-status", &json!({"smsBatchId": id}), 1),
            Ok(Ok(ToolCall::SmsStatus { batch_id: SmsBatchId::parse(id).unwrap() }))
        );
        let refused = ToolCall::parse("get-sms-batch-status", &json!({"batchId": id}), 1).unwrap().unwrap_err();
        assert_eq!(refused.code, "invalid_parameter");
    }

    trait Relinked {
        fn tap_relinked(self) -> Value;
    }
    impl Relinked for Value {
        fn tap_relinked(mut self) -> Value {
            relink(&mut self, &mut Vec::new());
            self
        }
    }

    #[test]
    fn trigger_validates_like_the_api_and_names_the_item() {
        let args = json!({"targets": [{"phone": "+15550100001", "name": "A"}, {"phone": "12", "name": "B"}]});
        let refused = ToolCall::parse("trigger-batch-calls", &args, 100).unwrap().unwrap_err();
        assert_eq!(refused.code, "validation_error");
        assert_eq!(refused.body()["error"]["items"][0]["path"], "targets[1].phone");
        let body_only = json!({"targets": [{"phone": "+15550100001", "name": "A"}]});
        let mut keyed = body_only.clone();
        keyed["idempotencyKey"] = json!("k-1");
        let Ok(Ok(ToolCall::Trigger { request })) = ToolCall::parse("trigger-batch-calls", &keyed, 100) else {
            panic!("a valid batch")
        };
        assert_eq!(request["idempotency_key"], "k-1");
        assert_eq!(request["request_hash"], batch::request_hash(&body_only.to_string()));
        let bad_key = json!({"targets": [], "idempotencyKey": "a b"});
        let refused = ToolCall::parse("trigger-batch-calls", &bad_key, 100).unwrap().unwrap_err();
        assert_eq!(refused.code, "invalid_idempotency_key");
    }

    #[test]
    fn estimate_takes_a_batch_request_and_its_cost_cap() {
        let args = json!({"targets": [{"phone": "+15550100001", "name": "A"}], "costCap": 5});
        match ToolCall::parse("estimate-batch-cost", &args, 100).unwrap().unwrap() {
            ToolCall::Estimate { request } => {
                assert_eq!(
                    (request["cost_cap"].clone(), request["idempotency_key"].clone()),
                    (json!(5.0), Value::Null)
                );
            }
            other => panic!("{other:?}"),
        }
        let refused = ToolCall::parse("estimate-batch-cost", &json!({"costCap": -1, "targets": []}), 100).unwrap();
        assert_eq!(refused.unwrap_err().code, "validation_error");
    }

    #[test]
    fn read_tools_take_a_batch_id_and_a_page_as_the_api_does() {
        let id = "6f9619ff-8b86-d011-b42d-00c04fc964ff";
        let call = ToolCall::parse("get-batch-transcripts", &json!({"batchId": id, "limit": 5, "offset": 10}), 1);
        assert_eq!(
            call,
            Ok(Ok(ToolCall::Transcripts {
                batch_id: BatchId::parse(id).unwrap(),
                page: Page { limit: 5, offset: 10 }
            }))
        );
        assert_eq!(
            ToolCall::parse("list-batches", &json!({}), 1),
            Ok(Ok(ToolCall::List { page: Page { limit: 50, offset: 0 } }))
        );
        let refuse = |name: &str, args: Value| ToolCall::parse(name, &args, 1).unwrap().unwrap_err().code;
        assert_eq!(refuse("get-batch-status", json!({"batchId": "x"})), "invalid_id");
        assert_eq!(refuse("get-batch-status", json!({})), "invalid_id");
        assert_eq!(refuse("get-batch-status", json!({"batchId": id, "limit": 0})), "invalid_parameter");
        assert_eq!(refuse("list-batches", json!({"limit": "5&offset=1"})), "invalid_parameter");
        assert_eq!(refuse("list-batches", json!({"limt": 5})), "invalid_parameter");
        assert_eq!(refuse("cancel-batch", json!({"batchId": id, "limit": 5})), "invalid_parameter");
        assert_eq!(ToolCall::parse("get-provider-health", &json!({}), 1), Ok(Ok(ToolCall::ProviderHealth)));
        assert_eq!(refuse("get-provider-health", json!({"days": 3})), "invalid_parameter");
        let health = tool("get-provider-health");
        assert_eq!(health["outputSchema"]["required"], json!(["breaker", "transitions", "errors"]));
        assert_eq!(health["inputSchema"]["properties"], json!({}));
        assert_eq!(health["annotations"]["readOnlyHint"], true);
    }
}
