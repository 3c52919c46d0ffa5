//! The harness of the black-box tests: the sandbox on an ephemeral port, time
//! scale 0, talking to a stub Worker and a stub PostgREST that record what
//! they receive, in arrival order.

// Each test crate uses part of the harness.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::routing::{any, post};
use axum::{Json, Router};
use outcall_sandbox::{router, AppState, Config};
use serde_json::{json, Value};

pub const SID: &str = "AC11111111111111111111111111111111";
pub const TOKEN: &str = "test-auth-token";
pub const SECRET: &str = "super-secret-jwt-token-with-at-least-32-characters";

/// Every request the stub Worker received: (path, headers, body).
pub type Seen = Arc<Mutex<Vec<(String, HeaderMap, Bytes)>>>;

#[derive(Clone)]
pub struct Stub {
    seen: Seen,
    assistant_reply: Value,
}

async fn worker_vapi(State(stub): State<Stub>, headers: HeaderMap, body: Bytes) -> Json<Value> {
    stub.seen.lock().unwrap().push(("/vapi/events".into(), headers, body.clone()));
    let msg: Value = serde_json::from_slice(&body).unwrap();
    match msg["message"]["type"].as_str() {
        Some("assistant-request") => Json(stub.assistant_reply.clone()),
        Some("tool-calls") => {
            let id = msg["message"]["toolCallList"][0]["id"].clone();
            Json(json!({"results": [{"toolCallId": id, "name": "fetch_pending_call",
                                     "result": "{\"appointment_time\":\"2030-01-02 09:00\"}"}]}))
        }
        _ => Json(json!({})),
    }
}

async fn worker_other(State(stub): State<Stub>, uri: Uri, headers: HeaderMap, body: Bytes) -> String {
    stub.seen.lock().unwrap().push((uri.to_string(), headers.clone(), body));
    if uri.path() == "/twiml" {
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Say>Hi</Say><Dial><Sip>sip:u@sip.vapi.ai?X-pendingcallid=p-2</Sip></Dial></Response>"#.into()
    } else {
        // The stub PostgREST echoes what reached it.
        json!({"path": uri.to_string(), "auth": headers.get("authorization").and_then(|v| v.to_str().ok()),
               "apikey": headers.get("apikey").is_some(), "prefer": headers.get("prefer").and_then(|v| v.to_str().ok())})
            .to_string()
    }
}

pub async fn spawn(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

pub struct Env {
    pub sandbox: String,
    pub worker: String,
    pub seen: Seen,
    pub http: reqwest::Client,
}

pub async fn start(assistant_reply: Value) -> Env {
    start_scaled(assistant_reply, 0.0).await
}

/// The sandbox at `SANDBOX_TIME_SCALE` = `scale`.
pub async fn start_scaled(assistant_reply: Value, scale: f64) -> Env {
    let seen: Seen = Arc::default();
    let stub = Stub { seen: seen.clone(), assistant_reply };
    let worker =
        spawn(Router::new().route("/vapi/events", post(worker_vapi)).fallback(any(worker_other)).with_state(stub))
            .await;
    let vars = [
        ("POSTGREST_URL", worker.clone()),
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none".into()),
        ("SUPABASE_JWT_SECRET", SECRET.into()),
        ("TWILIO_ACCOUNT_SID", SID.into()),
        ("TWILIO_AUTH_TOKEN", TOKEN.into()),
        ("VAPI_SERVER_URL", format!("{worker}/vapi/events")),
        ("VAPI_SECRET", "vapi-secret".into()),
        ("SANDBOX_TIME_SCALE", scale.to_string()),
        ("SANDBOX_SMS_INBOUND_URL", format!("{worker}/twilio/sms-inbound")),
    ];
    let config = Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())).unwrap();
    let sandbox = spawn(router(AppState::new(config))).await;
    Env { sandbox, worker, seen, http: reqwest::Client::new() }
}

impl Env {
    pub async fn create(&self, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}/2010-04-01/Accounts/{SID}/Calls.json", self.sandbox))
            .basic_auth(SID, Some(TOKEN))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// `GET /_sandbox/...` as JSON.
    pub async fn inspect(&self, path: &str) -> Value {
        self.http.get(format!("{}/_sandbox/{path}", self.sandbox)).send().await.unwrap().json().await.unwrap()
    }

    /// `POST /_sandbox/...` with a JSON body: the status and the JSON answer.
    pub async fn control(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self.http.post(format!("{}/_sandbox/{path}", self.sandbox)).json(&body).send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// An authenticated GET on the Twilio API under the account, e.g. `Calls.json?To=%2B1555...`.
    pub async fn twilio_get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}/2010-04-01/Accounts/{SID}/{path}", self.sandbox))
            .basic_auth(SID, Some(TOKEN))
            .send()
            .await
            .unwrap()
    }

    pub async fn wait_done(&self, sid: &str) -> Value {
        for _ in 0..500 {
            let call = self.inspect(&format!("calls/{sid}")).await;
            if call["done"] == true {
                return call;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("call {sid} did not finish");
    }
}

pub const TWIML: &str = r#"<Response><Pause length="2"/><Play digits="ww1"/><Dial><Sip>sip:outcall@sip.vapi.ai;transport=tcp?X-pendingcallid=p-1</Sip></Dial></Response>"#;

pub fn good_assistant() -> Value {
    json!({"assistantId": "asst_1", "assistantOverrides": {"variableValues": {
        "employee_name": "Jo Doe", "client_name": "Acme", "clinic_name": "North Clinic"}}})
}
