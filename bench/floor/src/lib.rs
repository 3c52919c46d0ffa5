//! The bench's floor: what `bench/baseline/worker.js` does, written as a plain workers-rs Worker with none of
//! outcall's code (same worker crate, wasm-bindgen and build profile as outcall's Worker). `./dev bench` runs
//! it beside outcall and the JavaScript baseline, so the table shows how much of outcall's distance from
//! JavaScript is the platform's (Rust in wasm behind workers-rs) and how much is outcall's own. Never deployed.
//!   GET  /health       every variable outcall needs is set → {"configured": true|false}
//!   POST /vapi/events  an assistant-request: the credential, a capped body, the row's context through one
//!                      PostgREST call (call_context), flattened into the assistant's variables

use serde_json::{json, Map, Value};
use worker::{event, Context, Env, Fetch, Headers, Method, Request, RequestInit, Response, Result};

const VARIABLES: [&str; 14] = [
    "SUPABASE_URL",
    "SUPABASE_SERVICE_ROLE_KEY",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_FROM_NUMBER",
    "TWILIO_API_BASE",
    "VAPI_ASSISTANT_ID",
    "VAPI_SIP_USER",
    "VAPI_SIP_HOST",
    "VAPI_SECRET",
    "WEBHOOK_SECRET",
    "PUBLIC_BASE_URL",
    "API_KEY",
    "STT_API_KEY",
];
const MAX_BODY: usize = 8 * 1024 * 1024;
const NESTED: [&str; 2] = ["instructions", "variables"];

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    match (req.method(), req.path().as_str()) {
        (Method::Get, "/health") => {
            let configured = VARIABLES.iter().all(|name| variable(&env, name).is_some_and(|v| !v.trim().is_empty()));
            Response::from_json(&json!({ "configured": configured }))
        }
        (Method::Post, "/vapi/events") => assistant_request(req, &env).await,
        (_, path) => error(404, "not_found", &format!("no route for {path}")),
    }
}

fn variable(env: &Env, name: &str) -> Option<String> {
    env.secret(name).map(|s| s.to_string()).or_else(|_| env.var(name).map(|v| v.to_string())).ok()
}

fn error(status: u16, code: &str, message: &str) -> Result<Response> {
    Ok(Response::from_json(&json!({"error": {"code": code, "message": message}}))?.with_status(status))
}

fn same_secret(given: &str, expected: &str) -> bool {
    given.len() == expected.len() && given.bytes().zip(expected.bytes()).fold(0, |diff, (a, b)| diff | (a ^ b)) == 0
}

async fn assistant_request(mut req: Request, env: &Env) -> Result<Response> {
    let given = match req.headers().get("x-vapi-secret")? {
        Some(secret) => Some(secret),
        None => req.headers().get("authorization")?.map(|v| v.trim_start_matches("Bearer ").to_owned()),
    };
    let Some(given) = given else { return error(401, "unauthorized", "the VAPI credential is missing") };
    if !same_secret(&given, &variable(env, "VAPI_SECRET").unwrap_or_default()) {
        return error(403, "forbidden", "the VAPI credential does not match");
    }
    let length = req.headers().get("content-length")?.and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
    if length > MAX_BODY {
        return error(413, "payload_too_large", "too large");
    }
    let Ok(body) = serde_json::from_str::<Value>(&req.text().await?) else {
        return error(400, "invalid_json", "the body is not JSON");
    };
    let message = &body["message"];
    if message["type"] != "assistant-request" {
        return Response::from_json(&json!({}));
    }
    let id = &message["call"]["assistantOverrides"]["variableValues"]["pendingcallid"];
    let Some(id) = id.as_str().filter(|id| is_uuid(id)) else {
        return Response::from_json(&json!({"error": "no pending call id"}));
    };

    let key = variable(env, "SUPABASE_SERVICE_ROLE_KEY").unwrap_or_default();
    let headers = Headers::new();
    headers.set("apikey", &key)?;
    headers.set("authorization", &format!("Bearer {key}"))?;
    headers.set("content-type", "application/json")?;
    let arguments = json!({"p_pending_call_id": id, "p_vapi_call_id": message["call"]["id"]});
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_headers(headers).with_body(Some(arguments.to_string().into()));
    let url = format!("{}/rest/v1/rpc/call_context", variable(env, "SUPABASE_URL").unwrap_or_default());
    let mut answer = Fetch::Request(Request::new_with_init(&url, &init)?).send().await?;
    if !(200..300).contains(&answer.status_code()) {
        return error(502, "upstream_error", &format!("call_context failed ({})", answer.status_code()));
    }
    let Value::Object(context) = answer.json::<Value>().await? else {
        return Response::from_json(&json!({"error": "this call has no context"}));
    };
    let mut overrides = json!({ "variableValues": variable_values(&context) });
    if let Some(first) = context.get("first_message").filter(|v| !v.is_null() && *v != "") {
        overrides["firstMessage"] = first.clone();
    }
    let assistant = variable(env, "VAPI_ASSISTANT_ID").unwrap_or_default();
    Response::from_json(&json!({"assistantId": assistant, "assistantOverrides": overrides}))
}

fn is_uuid(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(i, c)| if [8, 13, 18, 23].contains(&i) { c == '-' } else { c.is_ascii_hexdigit() })
}

fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        Value::Array(items) => Some(items.iter().filter_map(as_text).collect::<Vec<_>>().join(", ")),
        other => Some(other.to_string()),
    }
}

fn variable_values(context: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (name, value) in context {
        if NESTED.contains(&name.as_str()) || name == "first_message" {
            continue;
        }
        if let Some(text) = as_text(value) {
            out.insert(name.clone(), text.into());
        }
    }
    for nested in NESTED {
        if let Some(Value::Object(values)) = context.get(nested) {
            for (name, value) in values {
                if let (false, Some(text)) = (out.contains_key(name), as_text(value)) {
                    out.insert(name.clone(), text.into());
                }
            }
        }
    }
    out
}
