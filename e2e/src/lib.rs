//! Driving the running local stack (`./dev up`) as its users do: an outside system inserting rows
//! through PostgREST, Twilio and VAPI calling the Worker, an operator reading the sandbox.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The stack's addresses and secrets, from the environment or `.dev/stack.env`.
#[derive(Clone)]
pub struct Stack {
    pub worker_url: String,
    pub supabase_url: String,
    pub anon_key: String,
    pub service_key: String,
    pub database_url: String,
    pub sandbox_url: String,
    pub twilio_auth_token: String,
    pub vapi_secret: String,
    pub webhook_secret: String,
    pub http: reqwest::Client,
}

impl Stack {
    pub fn from_env() -> Self {
        let file =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../.dev/stack.env")).unwrap_or_default();
        let from_file: HashMap<&str, &str> = file.lines().filter_map(|l| l.split_once('=')).collect();
        let get = |name: &str| {
            std::env::var(name)
                .ok()
                .or_else(|| from_file.get(name).map(|v| v.to_string()))
                .unwrap_or_else(|| panic!("{name} is not set: start the stack with ./dev up (or run ./dev test)"))
        };
        Self {
            worker_url: get("WORKER_URL"),
            supabase_url: get("SUPABASE_URL"),
            anon_key: get("SUPABASE_ANON_KEY"),
            service_key: get("SUPABASE_SERVICE_ROLE_KEY"),
            database_url: get("DATABASE_URL"),
            sandbox_url: get("SANDBOX_URL"),
            twilio_auth_token: get("TWILIO_AUTH_TOKEN"),
            vapi_secret: get("VAPI_SECRET"),
            webhook_secret: get("WEBHOOK_SECRET"),
            http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("http client"),
        }
    }

    /// A PostgREST request through the `/rest/v1` gateway with the given key.
    pub fn rest(&self, method: reqwest::Method, path: &str, key: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}/rest/v1/{}", self.supabase_url, path))
            .header("apikey", key)
            .header("Authorization", format!("Bearer {key}"))
    }

    /// Inserts rows as an outside system does (service role, through PostgREST); returns the response.
    pub async fn insert(&self, table: &str, rows: Value) -> reqwest::Response {
        self.rest(reqwest::Method::POST, table, &self.service_key)
            .header("Prefer", "return=representation")
            .json(&rows)
            .send()
            .await
            .expect("PostgREST reachable")
    }

    pub async fn insert_pending_call(&self, row: Value) -> Value {
        let response = self.insert("pending_calls", row).await;
        let status = response.status();
        let body: Value = response.json().await.expect("json");
        assert_eq!(status, 201, "insert refused: {body}");
        body[0].clone()
    }

    pub async fn select(&self, table: &str, query: &str) -> Vec<Value> {
        let response =
            self.rest(reqwest::Method::GET, &format!("{table}?{query}"), &self.service_key).send().await.unwrap();
        assert!(response.status().is_success(), "select {table}?{query}: {}", response.status());
        response.json().await.unwrap()
    }

    pub async fn pending_call(&self, id: &str) -> Value {
        self.select("pending_calls", &format!("id=eq.{id}")).await.into_iter().next().unwrap_or(Value::Null)
    }

    pub async fn sessions(&self, id: &str) -> Vec<Value> {
        self.select("call_sessions", &format!("pending_call_id=eq.{id}&order=attempt")).await
    }

    /// Waits until the row is terminal and its session has heard from both Twilio and (if the call
    /// reached VAPI) the end-of-call report; returns the row.
    pub async fn wait_terminal(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let row = self.pending_call(id).await;
            let status = row["call_status"].as_str().unwrap_or_default();
            if matches!(status, "completed" | "failed" | "cancelled") {
                return row;
            }
            assert!(Instant::now() < deadline, "row {id} not terminal in time: {row}");
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// The sandbox's record of the call that carried this pending call id in its SIP header.
    pub async fn sandbox_call_for(&self, pending_call_id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let calls: Vec<Value> = self.sandbox_calls().await;
            let mine = calls.into_iter().find(|c| {
                c["sip"]["headers"].as_object().is_some_and(|h| h.values().any(|v| v == pending_call_id))
                    && c["done"].as_bool() == Some(true)
            });
            if let Some(call) = mine {
                return call;
            }
            assert!(Instant::now() < deadline, "no finished sandbox call for {pending_call_id}");
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    pub async fn sandbox_calls(&self) -> Vec<Value> {
        self.http.get(format!("{}/_sandbox/calls", self.sandbox_url)).send().await.unwrap().json().await.unwrap()
    }

    /// The calls the sandbox received for one number (its `?to=` filter; `+` is taken literally).
    pub async fn sandbox_calls_to(&self, phone: &str) -> Vec<Value> {
        let url = format!("{}/_sandbox/calls?to={phone}", self.sandbox_url);
        self.http.get(url).send().await.unwrap().json().await.unwrap()
    }

    pub async fn db(&self) -> tokio_postgres::Client {
        let (client, connection) =
            tokio_postgres::connect(&self.database_url, tokio_postgres::NoTls).await.expect("database reachable");
        tokio::spawn(connection);
        client
    }

    /// Inserts a row with the database webhook switched off for this transaction only, so the
    /// caller alone decides what reaches the Worker. Returns the new id.
    pub async fn insert_quietly(&self, row: &Value) -> String {
        let columns: Vec<&str> = row.as_object().expect("a row object").keys().map(String::as_str).collect();
        let list = columns.join(", ");
        let mut db = self.db().await;
        let tx = db.transaction().await.unwrap();
        tx.batch_execute("set local session_replication_role = replica").await.unwrap();
        let id: String = tx
            .query_one(
                &format!("insert into pending_calls ({list}) select {list} from jsonb_populate_record(null::pending_calls, $1::text::jsonb) returning id::text"),
                &[&row.to_string()],
            )
            .await
            .expect("quiet insert")
            .get(0);
        tx.commit().await.unwrap();
        id
    }

    /// Asserts that nothing happened to a quietly inserted row: still pending, no attempt, no session.
    pub async fn assert_untouched(&self, id: &str) {
        let row = self.pending_call(id).await;
        assert_eq!(row["call_status"], "pending", "{row}");
        assert_eq!(row["attempts"], 0, "{row}");
        assert!(self.sessions(id).await.is_empty(), "no session may exist for {id}");
    }

    /// POSTs JSON to a Worker route with extra headers; returns status and JSON body.
    pub async fn post_worker(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        self.post_to(&self.worker_url, path, headers, body).await
    }

    /// As `post_worker`, to a Worker at another address.
    pub async fn post_to(
        &self,
        base: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let mut request = self.http.post(format!("{base}{path}")).header("Content-Type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.body(body).send().await.expect("worker reachable");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// A VAPI server message to the Worker, with the stack's credential.
    pub async fn vapi_message(&self, message: Value) -> (u16, Value) {
        let secret = self.vapi_secret.clone();
        self.post_worker("/vapi/events", &[("X-Vapi-Secret", &secret)], json!({ "message": message }).to_string()).await
    }
}

pub use outcall_sandbox::twilio::scenario::Scenario;

/// A number playing `scenario` that this process has not handed out before (numbers are also the
/// key of the classification cache, so tests must not share them).
pub fn fresh_phone(scenario: Scenario) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let suffix = (std::process::id() % 500 + NEXT.fetch_add(1, Ordering::Relaxed)) % 1000;
    scenario.number(suffix as u16)
}

/// A realistic pending call for `phone` (the shape a clinic-scheduling backend inserts).
pub fn sample_row(phone: &str, employee_name: &str) -> Value {
    json!({
        "exam_id": format!("EX-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        "employee_name": employee_name,
        "employee_dob": "1986-04-12",
        "client_name": "Northwind Freight",
        "clinic_name": "Lakeside Occupational Health",
        "phone": phone,
        "clinic_timezone": "America/Chicago",
        "appointment_time": "2026-12-02T15:30:00Z",
        "procedures": ["DOT physical", "Drug screen"],
        "instructions": {"special_instructions": "Bring photo ID", "callback_number": "+15005550006"},
        "variables": {"language": "en"}
    })
}
