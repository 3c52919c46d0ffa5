//! Driving the running local stack (`./dev up`) as its users do: an outside system inserting rows
//! through PostgREST, Twilio and VAPI calling the Worker, an operator reading the sandbox.

pub mod fault_run;
pub mod observed;
pub mod postgres;
pub mod realtime;
pub mod sms;
pub mod stream;
pub mod users;
pub mod worker;

use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The stack's addresses and secrets, from the environment or `.dev/stack.env`.
#[derive(Clone)]
pub struct Stack {
    pub worker_url: String,
    pub supabase_url: String,
    pub anon_key: String,
    pub service_key: String,
    /// The project's JWT secret: users' access tokens are signed with the ES256 key derived from it.
    pub jwt_secret: String,
    pub database_url: String,
    pub sandbox_url: String,
    pub twilio_account_sid: String,
    pub twilio_auth_token: String,
    pub vapi_secret: String,
    pub webhook_secret: String,
    /// The batch API's bearer key.
    pub api_key: String,
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
            jwt_secret: get("SUPABASE_JWT_SECRET"),
            database_url: get("DATABASE_URL"),
            sandbox_url: get("SANDBOX_URL"),
            twilio_account_sid: get("TWILIO_ACCOUNT_SID"),
            twilio_auth_token: get("TWILIO_AUTH_TOKEN"),
            vapi_secret: get("VAPI_SECRET"),
            webhook_secret: get("WEBHOOK_SECRET"),
            api_key: get("API_KEY"),
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

    /// Inserts a row of `phone` that gets one attempt (a voicemail is not retried) and waits until it is
    /// terminal; returns its id, the row and its session.
    pub async fn one_attempt(&self, phone: &str, exam: &str) -> (String, Value, String) {
        let row = merge(sample_row(phone, "Rosa Linde"), json!({"exam_id": exam, "max_attempts": 1}));
        let id = self.insert_pending_call(row).await["id"].as_str().unwrap().to_owned();
        let row = self.wait_terminal(&id).await;
        let session = self.sessions(&id).await[0]["id"].as_str().unwrap().to_owned();
        (id, row, session)
    }

    /// The session's listening run once it has ended (`Value::Null` when the call had no listener).
    pub async fn finished_run(&self, session: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            let runs = self.select("classification_runs", &format!("session_id=eq.{session}")).await;
            match runs.into_iter().next() {
                None => return Value::Null,
                Some(run) if run["status"] != "listening" => return run,
                Some(run) => assert!(Instant::now() < deadline, "the run never ended: {run}"),
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// The speech-to-text stand-in's connections of a run (the listener tags each with its run's id).
    pub async fn stt_connections(&self, run_id: &str) -> Vec<Value> {
        let url = format!("{}/_sandbox/stt", self.sandbox_url);
        let all: Vec<Value> = self.http.get(url).send().await.unwrap().json().await.unwrap();
        all.into_iter().filter(|c| c["query"]["tag"] == run_id).collect()
    }

    /// The id of the row's first session, once it has one.
    pub async fn sessions_eventually(&self, id: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(session) = self.sessions(id).await.first() {
                return session["id"].as_str().unwrap().to_owned();
            }
            assert!(Instant::now() < deadline, "row {id} never claimed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
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

    /// The calls the sandbox received for one row: those to its number whose StatusCallback names one
    /// of its sessions (numbers repeat across test binaries; sessions do not).
    pub async fn sandbox_calls_of(&self, pending_call_id: &str) -> Vec<Value> {
        let phone = self.pending_call(pending_call_id).await["phone"].as_str().expect("a row").to_owned();
        let sessions: Vec<Value> = self.sessions(pending_call_id).await.into_iter().map(|s| s["id"].clone()).collect();
        let url = format!("{}/_sandbox/calls?to={phone}", self.sandbox_url);
        let calls: Vec<Value> = self.http.get(url).send().await.unwrap().json().await.unwrap();
        calls.into_iter().filter(|c| sessions.contains(&c["session"])).collect()
    }

    pub async fn db(&self) -> tokio_postgres::Client {
        let (client, connection) =
            tokio_postgres::connect(&self.database_url, tokio_postgres::NoTls).await.expect("database reachable");
        tokio::spawn(connection);
        client
    }

    /// Inserts a row with the database webhook switched off for this transaction only, so the
    /// caller alone decides what reaches the Worker; the sweep and drains still find it due.
    pub async fn insert_quietly(&self, row: &Value) -> String {
        self.insert_without_webhook(row).await
    }

    /// Inserts a row no webhook announces and no sweep finds due (`next_attempt_at` = infinity), so
    /// only the test's own requests can touch it.
    pub async fn insert_parked(&self, row: &Value) -> String {
        self.insert_without_webhook(&merge(row.clone(), json!({"next_attempt_at": "infinity"}))).await
    }

    /// Inserts a row and claims it as the Worker would, without dialling. The row is parked until the
    /// claim, which makes it due in the same transaction, so no drain can take it first; a claim the
    /// limits refuse is tried again. Returns the row id and the session id.
    pub async fn insert_claimed(&self, row: &Value) -> (String, String) {
        let (id, claim) = self.claim_inserted(row).await;
        (id, claim["session_id"].as_str().unwrap().to_owned())
    }

    /// As [`Stack::insert_claimed`], returning the claim's whole answer (its `listen`, with the stream's token).
    pub async fn claim_inserted(&self, row: &Value) -> (String, Value) {
        let id = self.insert_parked(row).await;
        let mut db = self.db().await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let tx = db.transaction().await.unwrap();
            tx.execute("update pending_calls set next_attempt_at = now() where id = $1::text::uuid", &[&id])
                .await
                .unwrap();
            let claim: String =
                tx.query_one("select public.claim_pending_call($1::text::uuid)::text", &[&id]).await.unwrap().get(0);
            let claim: Value = serde_json::from_str(&claim).unwrap();
            if claim["session_id"].is_string() {
                tx.commit().await.unwrap();
                return (id, claim);
            }
            drop(tx); // rolled back: the row stays parked
            assert!(Instant::now() < deadline, "never claimed: {claim}");
            tokio::time::sleep(Duration::from_millis(claim["retry_after_ms"].as_u64().unwrap_or(100))).await;
        }
    }

    /// Inserts a row in `calling` with a session that has a (made-up) CallSid, as after a real dial, but
    /// with no call behind it, so only the test's requests reach it (VAPI's part of a live call). Returns
    /// the row id, the session id and the CallSid. (Left live, the sweep ends it `canceled` once Twilio
    /// says it knows no such call; [`Stack::hang_up`] frees its slot at once.)
    pub async fn insert_dialled(&self, row: &Value) -> (String, String, String) {
        let (id, session) = self.insert_claimed(row).await;
        let sid = format!("CA{}", uuid::Uuid::new_v4().simple());
        let db = self.db().await;
        db.execute("select public.record_dial_result($1::text::uuid, $2::text)", &[&session, &sid]).await.unwrap();
        (id, session, sid)
    }

    /// Ends a made-up call's session as Twilio would, so it holds no call slot.
    pub async fn hang_up(&self, sid: &str) {
        self.db().await.execute("select public.apply_twilio_status($1::text, 'completed')", &[&sid]).await.unwrap();
    }

    /// Inserts in replica mode (triggers off, so no webhook). Returns the new id.
    async fn insert_without_webhook(&self, row: &Value) -> String {
        let columns: Vec<&str> = row.as_object().expect("a row object").keys().map(String::as_str).collect();
        let list = columns.join(", ");
        let mut db = self.db().await;
        let tx = db.transaction().await.unwrap();
        tx.batch_execute("set local session_replication_role = replica").await.unwrap();
        let inserted = tx
            .query_one(
                &format!("insert into pending_calls ({list}) select {list} from jsonb_populate_record(null::pending_calls, $1::text::jsonb) returning id::text"),
                &[&row.to_string()],
            )
            .await
            .expect("quiet insert");
        tx.commit().await.unwrap();
        inserted.get(0)
    }

    /// A duration of the dispatch policy (`outcall_private.dispatch_policy`), e.g. `retry_delays[1]`.
    pub async fn policy_seconds(&self, expression: &str) -> f64 {
        let sql = format!("select extract(epoch from {expression})::float8 from outcall_private.dispatch_policy");
        self.db().await.query_one(&sql, &[]).await.expect("dispatch policy").get(0)
    }

    /// Changes the dispatch policy (`outcall_private.dispatch_policy`; `assignments` is SQL, e.g.
    /// `max_concurrent_calls = 2`) and returns what it was, for `restore_policy`.
    pub async fn set_policy(&self, assignments: &str) -> String {
        let db = self.db().await;
        let saved: String =
            db.query_one("select to_jsonb(p)::text from outcall_private.dispatch_policy p", &[]).await.unwrap().get(0);
        db.batch_execute(&format!("update outcall_private.dispatch_policy set {assignments}")).await.unwrap();
        saved
    }

    pub async fn restore_policy(&self, saved: &str) {
        let db = self.db().await;
        db.execute(
            "update outcall_private.dispatch_policy p set max_concurrent_calls = s.max_concurrent_calls,
               calls_per_second = s.calls_per_second, retry_delays = s.retry_delays,
               reconcile_after = s.reconcile_after, window_days = s.window_days,
               window_start = s.window_start, window_end = s.window_end,
               expected_call_minutes = s.expected_call_minutes, vapi_usd_per_minute = s.vapi_usd_per_minute,
               twilio_usd_per_minute = s.twilio_usd_per_minute, stt_usd_per_minute = s.stt_usd_per_minute,
               daily_cost_cap = s.daily_cost_cap, breaker_failures = s.breaker_failures,
               breaker_window = s.breaker_window, breaker_cooldown = s.breaker_cooldown,
               smart_scheduling = s.smart_scheduling
             from jsonb_populate_record(null::outcall_private.dispatch_policy, $1::text::jsonb) as s",
            &[&saved],
        )
        .await
        .unwrap();
    }

    /// Runs the minute sweep now, as the cron trigger does (wrangler dev's `/cdn-cgi/handler/scheduled`, which
    /// answers once the handler has finished).
    pub async fn sweep(&self) {
        let url = format!("{}/cdn-cgi/handler/scheduled?cron=*+*+*+*+*", self.worker_url);
        let response = self.http.get(url).send().await.expect("worker reachable");
        assert!(response.status().is_success(), "sweep: {}", response.status());
    }

    /// Creates a call at the sandbox's Twilio directly, whose status callbacks go nowhere (a Worker
    /// that lost track of it). Returns the CallSid.
    pub async fn create_untracked_call(&self, to: &str, session: &str) -> String {
        let url = format!("{}/2010-04-01/Accounts/{}/Calls.json", self.sandbox_url, self.twilio_account_sid);
        let form = [
            ("To", to.to_owned()),
            ("From", "+15005550006".to_owned()),
            ("Twiml", "<Response><Hangup/></Response>".to_owned()),
            ("StatusCallback", format!("http://127.0.0.1:9/twilio/status?session={session}")),
        ];
        let response = self
            .http
            .post(url)
            .basic_auth(&self.twilio_account_sid, Some(&self.twilio_auth_token))
            .form(&form)
            .send()
            .await
            .expect("sandbox reachable");
        assert_eq!(response.status(), 201);
        response.json::<Value>().await.unwrap()["sid"].as_str().unwrap().to_owned()
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

    /// A batch API request (`/api/v1/...`) with the stack's API key; returns status, headers and JSON body.
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut request = self
            .http
            .request(method, format!("{}/api/v1/{}", self.worker_url, path.trim_start_matches('/')))
            .bearer_auth(&self.api_key);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.header("Content-Type", "application/json").body(body);
        }
        let response = request.send().await.expect("worker reachable");
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        let text = response.text().await.unwrap_or_default();
        (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Creates a batch that must be accepted; returns the 202's body.
    pub async fn create_batch(&self, request: &Value) -> Value {
        let (status, _, body) = self.api(reqwest::Method::POST, "batches", &[], Some(request.to_string())).await;
        assert_eq!(status, 202, "batch refused: {body}");
        body
    }

    /// `GET /api/v1/batches/:id` (first page of results, up to 1000).
    pub async fn batch(&self, batch_id: &str) -> Value {
        let (status, _, body) =
            self.api(reqwest::Method::GET, &format!("batches/{batch_id}?limit=1000"), &[], None).await;
        assert_eq!(status, 200, "batch {batch_id}: {body}");
        body
    }

    /// Waits until every row of the batch is terminal (its `completedAt` is set); returns its status.
    pub async fn wait_batch_ended(&self, batch_id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let batch = self.batch(batch_id).await;
            if !batch["completedAt"].is_null() {
                return batch;
            }
            assert!(Instant::now() < deadline, "batch {batch_id} did not end in time: {}", batch["counts"]);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// One number from the database (`select count(*) ...` and the like).
    pub async fn scalar(&self, sql: &str) -> i64 {
        self.db().await.query_one(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e}")).get(0)
    }

    /// A VAPI server message to the Worker, with the stack's credential.
    pub async fn vapi_message(&self, message: Value) -> (u16, Value) {
        let secret = self.vapi_secret.clone();
        self.post_worker("/vapi/events", &[("X-Vapi-Secret", &secret)], json!({ "message": message }).to_string()).await
    }
}

pub use outcall_scenario::Scenario;

/// A number playing `scenario` that no test of this run has had before: numbers are the key of the
/// classification cache, which every call now fills (a learning call), so tests must not share them, across
/// test binaries too. The suffixes come from one counter per scenario in a file every process shares (under a
/// lock), so a run hands out up to 1,000 numbers per scenario before any repeats.
pub fn fresh_phone(scenario: Scenario) -> String {
    use std::io::{Read, Seek, Write};
    let path = std::env::temp_dir().join("outcall-e2e-fresh-phones");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .expect("the fresh-phone counter");
    file.lock().expect("the fresh-phone counter's lock");
    let mut text = String::new();
    file.read_to_string(&mut text).expect("the fresh-phone counter");
    let mut counters: Vec<u32> = text.split_whitespace().filter_map(|n| n.parse().ok()).collect();
    counters.resize(Scenario::ALL.len(), 0);
    let slot = Scenario::ALL.iter().position(|s| *s == scenario).unwrap_or(0);
    let suffix = counters[slot] % 1000;
    counters[slot] = counters[slot].wrapping_add(1);
    let line = counters.iter().map(u32::to_string).collect::<Vec<_>>().join(" ");
    file.set_len(0).and_then(|_| file.rewind()).and_then(|_| file.write_all(line.as_bytes())).expect("written");
    scenario.number(suffix as u16)
}

/// The people of `./dev demo` (the personal-data test looks for them in every log).
pub const DEMO_NAMES: [&str; 21] = [
    "Dana Whitfield",
    "Luis Ortega",
    "Mei Tanaka",
    "Omar Haddad",
    "Grace Kim",
    "Ines Duarte",
    "Tomasz Nowak",
    "Aisha Bello",
    "Ravi Menon",
    "Sofia Rossi",
    "Jonah Fischer",
    "Leila Karimi",
    "Marcus Reed",
    "Hana Sato",
    "Pedro Alves",
    "Nora Lindqvist",
    "Kofi Mensah",
    "Elena Petrova",
    "Sam Okafor",
    "Yara Haddad",
    "Felix Braun",
];

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

/// `base` with the fields of `extra` set on it (both JSON objects).
pub fn merge(mut base: Value, extra: Value) -> Value {
    if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
    base
}
