//! The Realtime stand-in (`/realtime/v1/websocket`) over a real WebSocket, replaying the reference's recorded
//! exchange (operators.md §2.4) as realtime-js sends it. Changes are handed to the hub as the feed hands them
//! (a recorded wal2json row, the table's catalog) without a database: the feed's reading of Postgres and the
//! RLS check are tested end to end (e2e/tests/realtime.rs).

mod common;

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use outcall_sandbox::jwt::{role_key, AuthKeys};
use outcall_sandbox::realtime::catalog::{Column, TableInfo};
use outcall_sandbox::realtime::change;
use outcall_sandbox::{router, AppState, Config};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Env {
    state: Arc<AppState>,
    url: String,
}

async fn start() -> Env {
    let vars = [
        ("POSTGREST_URL", "http://127.0.0.1:1"),
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none"),
        ("SUPABASE_JWT_SECRET", common::SECRET),
        ("TWILIO_ACCOUNT_SID", common::SID),
        ("TWILIO_AUTH_TOKEN", common::TOKEN),
        ("VAPI_SERVER_URL", "http://127.0.0.1:1/vapi/events"),
        ("VAPI_SECRET", "vapi-secret"),
    ];
    let config = Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())).unwrap();
    let state = AppState::new(config);
    let base = common::spawn(router(state.clone())).await;
    Env { state, url: format!("{}/realtime/v1/websocket", base.replacen("http://", "ws://", 1)) }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A user's access token as the Auth stand-in signs it (ES256, the §1.4 claims that matter here).
fn user_token(exp: i64) -> String {
    AuthKeys::derive(common::SECRET).sign_es256(&json!({
        "iss": "http://127.0.0.1:54321/auth/v1", "aud": "authenticated", "role": "authenticated",
        "sub": "2b0f3c4e-0000-4000-8000-000000000001", "email": "op@example.com", "exp": exp, "iat": now(),
        "aal": "aal1", "session_id": "5a1d0000-0000-4000-8000-000000000002", "is_anonymous": false
    }))
}

fn anon_key() -> String {
    role_key(common::SECRET, "anon")
}

impl Env {
    async fn connect(&self, vsn: &str) -> Socket {
        let url = format!("{}?apikey={}&vsn={vsn}&log_level=info", self.url, anon_key());
        tokio_tungstenite::connect_async(url).await.expect("upgrade").0
    }

    /// The table of the reference's example: `sms_jobs (id int8 primary key)`, RLS on.
    fn sms_jobs(&self) -> TableInfo {
        TableInfo {
            oid: 1,
            quoted: "public.sms_jobs".into(),
            rls: true,
            columns: vec![Column {
                name: "id".into(),
                typname: "int8".into(),
                sql_type: "bigint".into(),
                quoted: "id".into(),
                is_pk: true,
            }],
        }
    }

    /// What the feed does with a wal2json row once RLS let every subscriber see it; returns the channels reached.
    fn feed(&self, wal2json: &str, table: &TableInfo) -> usize {
        let change = change::parse(wal2json).unwrap();
        let rows = change.rows(table);
        let targets = self.state.realtime.hub.targets(&change, table, &rows);
        for target in &targets {
            assert!(target.send(change.data(table, &rows, |_| true)));
        }
        targets.len()
    }

    /// One poll of the feed, which is what makes new channels "Subscribed to PostgreSQL".
    fn poll(&self) {
        let poll = self.state.realtime.hub.begin_poll();
        self.state.realtime.hub.end_poll(poll);
    }
}

/// The wal2json row (format 2) of `update sms_jobs set ... where id = 7` committed at 2026-08-01 10:00 UTC.
const SMS_JOB_UPDATE: &str = r#"{"action":"U","timestamp":"2026-08-01 10:00:00.000412+00","schema":"public","table":"sms_jobs","columns":[{"name":"id","type":"bigint","typeoid":20,"value":7}],"identity":[{"name":"id","type":"bigint","typeoid":20,"value":7}],"pk":[{"name":"id","type":"bigint","typeoid":20}]}"#;

async fn send(socket: &mut Socket, frame: Value) {
    socket.send(Message::text(frame.to_string())).await.unwrap();
}

/// The next text frame as JSON, within 3 s.
async fn next(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(3), socket.next())
            .await
            .expect("a frame within 3 s")
            .expect("socket open")
            .unwrap();
        if let Message::Text(text) = message {
            return serde_json::from_str(text.as_str()).unwrap();
        }
    }
}

/// Nothing arrives for a while.
async fn silent(socket: &mut Socket, wait: Duration) {
    if let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout(wait, socket.next()).await {
        panic!("unexpected frame {text}");
    }
}

/// The exact join realtime-js sends for `.channel('ops').on('postgres_changes', {event:'*', schema:'public',
/// table:'sms_jobs'}).subscribe()` with its defaults, after `setAuth(token)`.
fn realtime_js_join(token: &str) -> Value {
    json!(["1", "1", "realtime:ops", "phx_join", {
        "config": {"broadcast": {"ack": false, "self": false}, "presence": {"key": "", "enabled": false},
                   "postgres_changes": [{"event": "*", "schema": "public", "table": "sms_jobs"}], "private": false},
        "access_token": token}])
}

#[tokio::test]
async fn replays_the_reference_exchange_in_vsn_2() {
    let env = start().await;
    let mut socket = env.connect("2.0.0").await;
    send(&mut socket, realtime_js_join(&user_token(now() + 3600))).await;

    let reply = next(&mut socket).await;
    let id = reply[4]["response"]["postgres_changes"][0]["id"].as_u64().expect("an integer id");
    assert_eq!(
        reply,
        json!(["1", "1", "realtime:ops", "phx_reply", {"status": "ok", "response": {"postgres_changes": [
            {"event": "*", "schema": "public", "table": "sms_jobs", "id": id}]}}])
    );

    env.poll();
    assert_eq!(
        next(&mut socket).await,
        json!(["1", null, "realtime:ops", "system",
               {"extension": "postgres_changes", "status": "ok", "message": "Subscribed to PostgreSQL", "channel": "ops"}])
    );

    assert_eq!(env.feed(SMS_JOB_UPDATE, &env.sms_jobs()), 1);
    assert_eq!(
        next(&mut socket).await,
        json!([null, null, "realtime:ops", "postgres_changes", {"ids": [id], "data": {
            "schema": "public", "table": "sms_jobs", "commit_timestamp": "2026-08-01T10:00:00.000Z", "type": "UPDATE",
            "columns": [{"name": "id", "type": "int8"}], "record": {"id": 7}, "old_record": {"id": 7}, "errors": null}}])
    );

    send(&mut socket, json!([null, "2", "phoenix", "heartbeat", {}])).await;
    assert_eq!(next(&mut socket).await, json!([null, "2", "phoenix", "phx_reply", {"status": "ok", "response": {}}]));

    // Leaving: an ok, and no change reaches the channel any more.
    send(&mut socket, json!(["1", "3", "realtime:ops", "phx_leave", {}])).await;
    assert_eq!(
        next(&mut socket).await,
        json!(["1", "3", "realtime:ops", "phx_reply", {"status": "ok", "response": {}}])
    );
    assert_eq!(env.feed(SMS_JOB_UPDATE, &env.sms_jobs()), 0);
    silent(&mut socket, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn speaks_vsn_1_objects_too() {
    let env = start().await;
    let mut socket = env.connect("1.0.0").await;
    let join = realtime_js_join(&user_token(now() + 3600));
    send(&mut socket, json!({"topic": join[2], "event": join[3], "payload": join[4], "ref": "1", "join_ref": "1"}))
        .await;
    let reply = next(&mut socket).await;
    assert_eq!(
        (reply["topic"].clone(), reply["event"].clone(), reply["ref"].clone()),
        (json!("realtime:ops"), json!("phx_reply"), json!("1"))
    );
    assert_eq!(reply["payload"]["status"], "ok");
    let id = reply["payload"]["response"]["postgres_changes"][0]["id"].clone();

    env.poll();
    assert_eq!(next(&mut socket).await["payload"]["message"], "Subscribed to PostgreSQL");
    env.feed(SMS_JOB_UPDATE, &env.sms_jobs());
    let change = next(&mut socket).await;
    assert_eq!(
        (change["event"].clone(), change["ref"].clone(), change["payload"]["ids"].clone()),
        (json!("postgres_changes"), Value::Null, json!([id]))
    );

    send(&mut socket, json!({"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": "2"})).await;
    assert_eq!(
        next(&mut socket).await,
        json!({"topic": "phoenix", "event": "phx_reply", "payload": {"status": "ok", "response": {}}, "ref": "2", "join_ref": null})
    );
}

#[tokio::test]
async fn filters_pick_the_bindings_a_change_is_for() {
    let env = start().await;
    let mut socket = env.connect("2.0.0").await;
    send(&mut socket, json!(["1", "1", "realtime:calls", "phx_join", {"config": {"postgres_changes": [
        {"event": "*", "schema": "public", "table": "pending_calls"},
        {"event": "UPDATE", "schema": "public", "table": "pending_calls", "filter": "call_status=eq.cancelled"},
        {"event": "INSERT", "schema": "public", "table": "pending_calls"}]}, "access_token": user_token(now() + 3600)}]))
    .await;
    let reply = next(&mut socket).await;
    let ids: Vec<u64> = reply[4]["response"]["postgres_changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_u64().unwrap())
        .collect();
    env.poll();
    next(&mut socket).await; // Subscribed to PostgreSQL

    let table = TableInfo {
        oid: 2,
        quoted: "public.pending_calls".into(),
        rls: true,
        columns: vec![
            Column {
                name: "id".into(),
                typname: "uuid".into(),
                sql_type: "uuid".into(),
                quoted: "id".into(),
                is_pk: true,
            },
            Column {
                name: "call_status".into(),
                typname: "text".into(),
                sql_type: "text".into(),
                quoted: "call_status".into(),
                is_pk: false,
            },
        ],
    };
    let update = |status: &str| {
        format!(
            r#"{{"action":"U","timestamp":"2026-08-01 10:00:00+00","schema":"public","table":"pending_calls","columns":[{{"name":"id","type":"uuid","value":"0b5f0000-0000-4000-8000-000000000009"}},{{"name":"call_status","type":"text","value":"{status}"}}],"identity":[{{"name":"id","type":"uuid","value":"0b5f0000-0000-4000-8000-000000000009"}},{{"name":"call_status","type":"text","value":"pending"}}],"pk":[{{"name":"id","type":"uuid"}}]}}"#
        )
    };
    env.feed(&update("dispatching"), &table);
    assert_eq!(next(&mut socket).await[4]["ids"], json!([ids[0]]), "the filtered binding does not match");
    env.feed(&update("cancelled"), &table);
    let both = next(&mut socket).await;
    assert_eq!(both[4]["ids"], json!([ids[0], ids[1]]));
    assert_eq!(both[4]["data"]["record"]["call_status"], "cancelled");
}

#[tokio::test]
async fn refused_joins_say_why() {
    let env = start().await;
    let mut socket = env.connect("2.0.0").await;
    let reason = |reply: &Value| reply[4]["response"]["reason"].as_str().unwrap().to_owned();

    send(&mut socket, realtime_js_join(&user_token(now() - 60))).await;
    let reply = next(&mut socket).await;
    assert_eq!(reply[4]["status"], "error");
    assert!(reason(&reply).starts_with("InvalidJWTExpiration: Token has expired 6"), "{reply}");

    let other_project = AuthKeys::derive("another-project-secret-with-32-characters")
        .sign_es256(&json!({"role": "authenticated", "exp": now() + 60}));
    send(&mut socket, realtime_js_join(&other_project)).await;
    assert!(reason(&next(&mut socket).await).starts_with("Unauthorized: "));

    send(&mut socket, realtime_js_join("not-a-jwt")).await;
    assert_eq!(reason(&next(&mut socket).await), "Unauthorized: The token provided is not a valid JWT");

    send(&mut socket, json!(["2", "2", "realtime:", "phx_join", {}])).await;
    assert_eq!(reason(&next(&mut socket).await), "TopicNameRequired: You must provide a topic name");

    let bad_filter = json!(["3", "3", "realtime:x", "phx_join", {"config": {"postgres_changes": [
        {"event": "*", "schema": "public", "table": "t", "filter": "id=like.7"}]}}]);
    send(&mut socket, bad_filter).await;
    assert!(reason(&next(&mut socket).await).contains("Error parsing `filter` params"));

    // A topic never joined, an unknown event on it, a binary frame: refused or ignored, the socket lives on.
    send(&mut socket, json!([null, "4", "realtime:nowhere", "access_token", {"access_token": "x"}])).await;
    assert_eq!(reason(&next(&mut socket).await), "unmatched topic");
    socket.send(Message::binary(vec![3, 0, 0])).await.unwrap();
    send(&mut socket, json!([null, "5", "phoenix", "heartbeat", {}])).await;
    assert_eq!(next(&mut socket).await[1], "5");
}

#[tokio::test]
async fn a_channel_ends_when_its_token_is_refused_or_expires() {
    let env = start().await;
    let mut socket = env.connect("2.0.0").await;
    send(&mut socket, realtime_js_join(&user_token(now() + 3600))).await;
    assert_eq!(next(&mut socket).await[4]["status"], "ok");
    env.poll();
    next(&mut socket).await; // Subscribed

    // A fresh token: accepted without a reply.
    send(&mut socket, json!(["1", "2", "realtime:ops", "access_token", {"access_token": user_token(now() + 7200)}]))
        .await;
    silent(&mut socket, Duration::from_millis(300)).await;

    // An expired one: a system error, then phx_close (ref = join_ref), and no more changes.
    send(&mut socket, json!(["1", "3", "realtime:ops", "access_token", {"access_token": user_token(now() - 5)}])).await;
    let system = next(&mut socket).await;
    assert_eq!(&system.as_array().unwrap()[..4], &[json!("1"), Value::Null, json!("realtime:ops"), json!("system")]);
    assert_eq!((system[4]["extension"].clone(), system[4]["status"].clone()), (json!("system"), json!("error")));
    assert!(system[4]["message"].as_str().unwrap().starts_with("Token has expired"));
    assert_eq!(next(&mut socket).await, json!(["1", "1", "realtime:ops", "phx_close", {}]));
    assert_eq!(env.feed(SMS_JOB_UPDATE, &env.sms_jobs()), 0);

    // A token that expires while joined ends its channel the same way.
    send(
        &mut socket,
        json!(["4", "4", "realtime:soon", "phx_join", {"config": {"postgres_changes": []},
                                                                      "access_token": user_token(now() + 2)}]),
    )
    .await;
    assert_eq!(next(&mut socket).await[4], json!({"status": "ok", "response": {"postgres_changes": []}}));
    let system = next(&mut socket).await;
    assert_eq!((system[3].clone(), system[4]["status"].clone()), (json!("system"), json!("error")), "{system}");
    assert_eq!(next(&mut socket).await[3], "phx_close");
}

#[tokio::test]
async fn upgrades_need_a_valid_key() {
    let env = start().await;
    let refused = |query: String| {
        let url = format!("{}?{query}", env.url);
        async move {
            match tokio_tungstenite::connect_async(url).await {
                Err(Error::Http(response)) => {
                    let body: Value = serde_json::from_slice(response.body().as_deref().unwrap_or_default()).unwrap();
                    (response.status().as_u16(), body)
                }
                Err(e) => panic!("{e}"),
                Ok(_) => panic!("upgraded"),
            }
        }
    };
    let (status, body) = refused("vsn=2.0.0".into()).await;
    assert_eq!(status, 401);
    assert!(body["error"].is_string());
    assert_eq!(refused(format!("apikey={}&vsn=2.0.0", role_key("wrong-secret", "anon"))).await.0, 401);
    assert_eq!(refused(format!("apikey={}", user_token(now() - 10))).await.0, 401);
    assert_eq!(refused(format!("apikey={}&vsn=9.9.9", anon_key())).await.0, 400);
    // The service key and a user's token are keys too; vsn defaults to 1.0.0.
    let url = format!("{}?apikey={}", env.url, role_key(common::SECRET, "service_role"));
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.expect("upgrade");
    send(&mut socket, json!({"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": "1"})).await;
    assert_eq!(next(&mut socket).await["payload"]["status"], "ok");
}
