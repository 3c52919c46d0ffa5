//! The judge stand-in: OpenAI's chat completions (`POST /v1/chat/completions`), as far as the listener's
//! judge uses it. It has no language model: it reads the transcript in the last user message and answers by a
//! rule of its own, deliberately not core's, so that a verdict it gives is visibly the judge's:
//! - the office's last line says "goodbye": `ivr_only` (a recording that ends the call), confidence 0.8;
//! - anything else: `unknown`, confidence 0.3.
//!
//! The answer's content is the JSON object the listener asks for (`classification`, `confidence`, `reason`).

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{json, Value};

use crate::state::{lock, AppState};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/v1/chat/completions", post(complete)).route("/_sandbox/judge", get(list))
}

/// One request, in the shape `GET /_sandbox/judge` lists (never the key, never the transcript).
#[derive(Debug, Clone, Serialize)]
pub struct JudgeRequest {
    /// The completion's id (`chatcmpl-…`, also `x-request-id`).
    pub id: String,
    /// 200, or 401 (key) / 400 (body).
    pub status: u16,
    pub model: Option<String>,
    /// The caller's `X-Client-Request-Id` (the listener sends its run's id).
    pub client_request_id: Option<String>,
    /// Transcript lines judged.
    pub lines: usize,
    /// The classification answered.
    pub answer: Option<&'static str>,
    pub received_at: String,
}

#[derive(Default)]
pub struct Judges {
    requests: Mutex<Vec<JudgeRequest>>,
}

impl Judges {
    pub fn list(&self) -> Vec<JudgeRequest> {
        lock(&self.requests).clone()
    }

    pub fn clear(&self) {
        lock(&self.requests).clear();
    }
}

/// The stand-in's rule over a transcript of `[t] office: …` lines: (classification, confidence, reason).
pub fn judge(transcript: &str) -> (&'static str, f64, &'static str) {
    let last = transcript.lines().rev().find_map(|line| line.split_once("office:").map(|(_, said)| said));
    let words: String = last.unwrap_or_default().to_lowercase().chars().filter(|c| c.is_alphanumeric()).collect();
    if words.contains("goodbye") {
        ("ivr_only", 0.8, "a recording that ends the call")
    } else {
        ("unknown", 0.3, "nothing decisive")
    }
}

/// OpenAI's error body.
fn error(status: StatusCode, message: &str, param: Option<&str>, code: Option<&str>) -> Response {
    let body = json!({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}});
    (status, Json(body)).into_response()
}

async fn complete(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let mut record = JudgeRequest {
        id: id.clone(),
        status: 200,
        model: None,
        client_request_id: header("x-client-request-id").map(|v| v.chars().take(512).collect()),
        lines: 0,
        answer: None,
        received_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    };
    let response = answer(&state, header("authorization"), &body, &mut record);
    crate::log!(info, "judge", "id={id} status={} answer={}", record.status, record.answer.unwrap_or("-"));
    lock(&state.judges.requests).push(record);
    response
}

fn answer(state: &AppState, authorization: Option<&str>, body: &[u8], record: &mut JudgeRequest) -> Response {
    let mut refuse = |status: StatusCode, message: &str, param: Option<&str>, code: Option<&str>| {
        record.status = status.as_u16();
        error(status, message, param, code)
    };
    let key = authorization.and_then(|v| v.strip_prefix("Bearer ")).map(str::trim);
    match key {
        None => return refuse(StatusCode::UNAUTHORIZED, "You didn't provide an API key.", None, None),
        Some(key) if key != state.config.judge_key => {
            return refuse(StatusCode::UNAUTHORIZED, "Incorrect API key provided.", None, Some("invalid_api_key"))
        }
        Some(_) => {}
    }
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return refuse(StatusCode::BAD_REQUEST, "We could not parse the JSON body of your request.", None, None);
    };
    let Some(model) = request["model"].as_str().filter(|m| !m.is_empty()) else {
        return refuse(StatusCode::BAD_REQUEST, "You must provide a model parameter.", Some("model"), None);
    };
    record.model = Some(model.to_owned());
    let Some(messages) = request["messages"].as_array().filter(|m| !m.is_empty()) else {
        let code = Some("missing_required_parameter");
        return refuse(StatusCode::BAD_REQUEST, "Missing required parameter: 'messages'.", Some("messages"), code);
    };
    let transcript = messages.iter().rev().find(|m| m["role"] == "user").and_then(|m| m["content"].as_str());
    let transcript = transcript.unwrap_or_default();
    let (classification, confidence, reason) = judge(transcript);
    record.lines = transcript.lines().count();
    record.answer = Some(classification);
    let content = json!({"classification": classification, "confidence": confidence, "reason": reason}).to_string();
    let prompt_tokens: usize = messages.iter().filter_map(|m| m["content"].as_str()).map(|c| c.len() / 4).sum();
    let completion_tokens = content.len() / 4;
    let mut response = Json(json!({
        "id": record.id,
        "object": "chat.completion",
        "created": chrono::Utc::now().timestamp(),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }))
    .into_response();
    if let Ok(v) = record.id.parse() {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

/// Every `/v1/chat/completions` request, oldest first (refused ones too).
async fn list(State(state): State<Arc<AppState>>) -> Response {
    Json(state.judges.list()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_goodbye_at_the_end_is_a_recording_and_anything_else_is_unknown() {
        let closed = "[0.7 s] office: Thank you for calling. Our office is closed.\n[4.0 s] office: Good-bye!";
        assert_eq!(judge(closed).0, "ivr_only");
        assert_eq!(judge("[0.7 s] office: goodbye\n[3.0 s] office: hello? who is calling?").0, "unknown");
        assert_eq!(judge("[0.7 s] office: please hold\n[5.0 s] caller pressed 1").0, "unknown");
        assert_eq!(judge("").0, "unknown");
    }
}
