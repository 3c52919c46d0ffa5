//! The sandbox as a clinic: calls walk each number's phone system, `<Start><Stream>` forks the
//! call's audio to a WebSocket exactly as Twilio does, and the VAPI stand-in navigates menus.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::*;
use outcall_sandbox::twilio::signature;
use outcall_sandbox::voice;
use serde_json::{json, Value};

/// How the test's stream server treats an upgrade.
#[derive(Clone, Copy)]
enum Mode {
    Listen,
    Refuse,
    /// Closes the socket itself after this many messages.
    CloseAfter(usize),
}

#[derive(Default)]
struct Connection {
    signature: Option<String>,
    messages: Vec<Value>,
    /// When each message arrived.
    arrived: Vec<Instant>,
    /// The client closed (after its `stop`).
    closed: bool,
}

#[derive(Clone)]
struct StreamServer {
    mode: Mode,
    connections: Arc<Mutex<Vec<Connection>>>,
}

async fn upgrade(State(server): State<StreamServer>, headers: HeaderMap, ws: WebSocketUpgrade) -> Response {
    if let Mode::Refuse = server.mode {
        return StatusCode::FORBIDDEN.into_response();
    }
    let signature = headers.get("x-twilio-signature").and_then(|v| v.to_str().ok()).map(str::to_string);
    ws.on_upgrade(move |socket| receive(server, signature, socket))
}

async fn receive(server: StreamServer, signature: Option<String>, mut socket: WebSocket) {
    let index = {
        let mut connections = server.connections.lock().unwrap();
        connections.push(Connection { signature, ..Connection::default() });
        connections.len() - 1
    };
    let mut count = 0;
    while let Some(Ok(message)) = socket.recv().await {
        match message {
            Message::Text(text) => {
                count += 1;
                let value: Value = serde_json::from_str(text.as_str()).unwrap();
                {
                    let mut connections = server.connections.lock().unwrap();
                    connections[index].messages.push(value);
                    connections[index].arrived.push(Instant::now());
                }
                if matches!(server.mode, Mode::CloseAfter(n) if count >= n) {
                    let frame = CloseFrame { code: 1008, reason: "enough".into() };
                    let _ = socket.send(Message::Close(Some(frame))).await;
                    return;
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    server.connections.lock().unwrap()[index].closed = true;
}

/// A stream server on an ephemeral port: its `ws://…/twilio/stream` URL and what it received.
async fn stream_server(mode: Mode) -> (String, StreamServer) {
    let server = StreamServer { mode, connections: Arc::default() };
    let app = Router::new().route("/twilio/stream", get(upgrade)).with_state(server.clone());
    let base = spawn(app).await;
    (format!("{}/twilio/stream", base.replacen("http://", "ws://", 1)), server)
}

impl StreamServer {
    /// The connection's messages once the client closed it.
    async fn finished(&self, index: usize) -> (Option<String>, Vec<Value>) {
        for _ in 0..500 {
            {
                let connections = self.connections.lock().unwrap();
                if let Some(c) = connections.get(index).filter(|c| c.closed) {
                    return (c.signature.clone(), c.messages.clone());
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("stream {index} did not finish");
    }
}

const SIP: &str = "<Dial><Sip>sip:outcall@sip.vapi.ai?X-pendingcallid=p-1</Sip></Dial>";

fn learning_twiml(url: &str) -> String {
    format!(
        r#"<Response><Start><Stream url="{url}" name="learn" track="both_tracks"><Parameter name="session" value="sess-1"/><Parameter name="token" value="tok-1"/></Stream></Start>{SIP}</Response>"#
    )
}

impl Env {
    async fn call(&self, to: &str, twiml: &str) -> Value {
        let created: Value =
            self.create(&[("To", to), ("From", "+15550000000"), ("Twiml", twiml)]).await.json().await.unwrap();
        self.wait_done(created["sid"].as_str().unwrap()).await
    }

    async fn phones(&self, method: reqwest::Method, number: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}/_sandbox/phones/{number}", self.sandbox);
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }
}

/// The end-of-call-report VAPI sent for `call`.
fn report(call: &Value) -> &Value {
    let messages = call["vapi"]["messages"].as_array().unwrap();
    &messages.iter().find(|m| m["type"] == "end-of-call-report").unwrap()["request"]["message"]
}

/// The DTMF tool calls of a report: (keys, secondsFromStart).
fn dtmf_calls(report: &Value) -> Vec<(String, f64)> {
    report["artifact"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool_calls")
        .map(|m| {
            let function = &m["toolCalls"][0]["function"];
            assert_eq!(function["name"], "dtmf");
            let arguments: Value = serde_json::from_str(function["arguments"].as_str().unwrap()).unwrap();
            (arguments["keys"].as_str().unwrap().to_string(), m["secondsFromStart"].as_f64().unwrap())
        })
        .collect()
}

fn keys(clinic: &Value) -> Vec<(String, u64, String, String)> {
    clinic["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            let s = |f: &str| k[f].as_str().unwrap().to_string();
            (s("digit"), k["at_ms"].as_u64().unwrap(), s("source"), s("effect"))
        })
        .collect()
}

/// A replay of `presses` (digit, ms since the answer) then the dial once `dial_at` has passed,
/// in whole-second pauses and half-second `w`s, as the Worker writes it.
fn replay_twiml(presses: &[(String, u64)], dial_at: u64) -> String {
    let mut doc = String::from("<Response>");
    let mut t = 0;
    for (digit, at) in presses {
        let halves = (at - t + 250) / 500;
        if halves >= 2 {
            doc.push_str(&format!(r#"<Pause length="{}"/>"#, halves / 2));
        }
        let lead = if halves % 2 == 1 { "w" } else { "" };
        doc.push_str(&format!(r#"<Play digits="{lead}{digit}"/>"#));
        t += halves * 500 + 100;
    }
    let seconds = (dial_at.saturating_sub(t)).div_ceil(1000);
    if seconds > 0 {
        doc.push_str(&format!(r#"<Pause length="{seconds}"/>"#));
    }
    doc.push_str(SIP);
    doc.push_str("</Response>");
    doc
}

#[tokio::test]
async fn a_learning_call_streams_both_tracks_while_vapi_navigates_to_the_person() {
    let env = start(good_assistant()).await;
    let (url, server) = stream_server(Mode::Listen).await;
    let call = env.call("+15550002001", &learning_twiml(&url)).await;
    let sid = call["sid"].as_str().unwrap();
    let (signature, messages) = server.finished(0).await;
    assert_eq!(signature.as_deref(), Some(signature::sign(TOKEN, &url, &[]).as_str()), "signed like Twilio");

    // connected, start, media…, stop; sequence numbers count every message but `connected`.
    assert_eq!(messages[0], json!({"event": "connected", "protocol": "Call", "version": "1.0.0"}));
    let start = &messages[1];
    let stream_sid = start["streamSid"].as_str().unwrap();
    assert!(stream_sid.starts_with("MZ") && stream_sid.len() == 34);
    assert_eq!(start["event"], "start");
    assert_eq!(start["start"]["callSid"], sid);
    assert_eq!(start["start"]["accountSid"], SID);
    assert_eq!(start["start"]["tracks"], json!(["inbound", "outbound"]));
    assert_eq!(start["start"]["customParameters"], json!({"session": "sess-1", "token": "tok-1"}));
    assert_eq!(start["start"]["mediaFormat"], json!({"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}));
    let stop = messages.last().unwrap();
    assert_eq!(stop["event"], "stop");
    assert_eq!(stop["stop"], json!({"accountSid": SID, "callSid": sid}));
    for (i, m) in messages.iter().enumerate().skip(1) {
        assert_eq!(m["sequenceNumber"], i.to_string());
        assert_eq!(m["streamSid"], stream_sid);
    }

    // Each track: 160-byte frames, chunks from 1, timestamps 20 ms apart from 0.
    let mut audio = [Vec::new(), Vec::new()];
    for (t, track) in ["inbound", "outbound"].into_iter().enumerate() {
        let media: Vec<&Value> =
            messages.iter().filter(|m| m["event"] == "media" && m["media"]["track"] == track).collect();
        for (i, m) in media.iter().enumerate() {
            assert_eq!(m["media"]["chunk"], (i + 1).to_string());
            assert_eq!(m["media"]["timestamp"], (i * 20).to_string());
            let payload = STANDARD.decode(m["media"]["payload"].as_str().unwrap()).unwrap();
            assert_eq!(payload.len(), 160);
            audio[t].extend(payload);
        }
    }
    let record = &call["streams"][0];
    assert_eq!((record["status"].as_str(), record["http_status"].as_u64()), (Some("stopped"), Some(101)));
    let frames = record["frames_sent"]["inbound"].as_u64().unwrap();
    assert_eq!(record["frames_sent"]["outbound"], frames);
    assert_eq!(record["bytes_sent"]["inbound"], frames * 160);
    assert_eq!(audio[0].len() as u64, frames * 160);
    assert_eq!(record["stopped_at_ms"], frames * 20);
    assert_eq!(frames * 20 / 1000, call["duration"].as_u64().unwrap(), "the stream lasts the call");

    // The clinic: VAPI heard each menu and pressed its key 300 ms after the prompt that offered it.
    let clinic = &call["clinic"];
    assert_eq!(clinic["system"], "maple family clinic (ivr_then_human)");
    assert_eq!(clinic["outcome"], "person");
    assert_eq!(clinic["ended_at"]["node"], "front_desk");
    let pressed = keys(clinic);
    let digits: Vec<&str> = pressed.iter().map(|k| k.0.as_str()).collect();
    assert_eq!(digits, ["1", "2"]);
    for (i, key) in clinic["keys"].as_array().unwrap().iter().enumerate() {
        assert_eq!((key["source"].as_str(), key["effect"].as_str()), (Some("vapi"), Some("selected")));
        assert_eq!(key["at_ms"].as_u64().unwrap(), key["prompt_end_ms"].as_u64().unwrap() + 300, "key {i}");
    }
    assert_eq!(
        (clinic["vapi_connected_at_ms"].as_u64(), clinic["vapi_connected_kind"].as_str()),
        (Some(0), Some("menu"))
    );
    let person_at = clinic["person_at_ms"].as_u64().unwrap();
    assert_eq!(clinic["vapi_ms_in_menu"], person_at);

    // What the listener would hear: the clinic's words on the inbound track, in order…
    let heard: Vec<String> = voice::transcribe(&audio[0]).into_iter().map(|u| u.text).collect();
    let prompts: Vec<String> =
        clinic["prompts"].as_array().unwrap().iter().map(|p| voice::normalize(p["text"].as_str().unwrap())).collect();
    assert_eq!(heard, prompts);
    assert_eq!(heard.last().unwrap(), "front desk, this is sarah, how can i help you?");
    // …and on the outbound track the key tones at their moments, then the assistant's words.
    for (_, at, _, _) in &pressed {
        let frame = &audio[1][(*at * 8) as usize..(*at * 8 + 160) as usize];
        assert!(frame.iter().any(|&b| b != voice::SILENCE), "a tone at {at} ms");
    }
    let said: Vec<String> = voice::transcribe(&audio[1]).into_iter().map(|u| u.text).collect();
    assert!(said[0].starts_with("hello, this is the scheduling assistant calling on behalf of acme"), "{said:?}");
    assert!(said.iter().all(|s| !s.contains("front desk")), "the clinic's words are not on the outbound track");

    // VAPI's report: the DTMF tool calls, seconds from its own start, and the whole time billed.
    let report = report(&call);
    let tools = dtmf_calls(report);
    assert_eq!(tools.iter().map(|t| t.0.as_str()).collect::<Vec<_>>(), ["1", "2"]);
    assert_eq!(tools[0].1, pressed[0].1 as f64 / 1000.0);
    assert_eq!(report["endedReason"], "customer-ended-call");
    assert_eq!(report["durationMs"], person_at + 20_000, "the menus, then 20 s with the person");
    assert!(report["artifact"]["transcript"]
        .as_str()
        .unwrap()
        .starts_with("User: Thank you for calling North Clinic."));
}

#[tokio::test]
async fn a_replay_reaches_the_person_before_vapi_and_a_wrong_key_a_wrong_department() {
    let env = start(good_assistant()).await;
    let (url, _server) = stream_server(Mode::Listen).await;
    let learned = env.call("+15550002010", &learning_twiml(&url)).await;
    let clinic = &learned["clinic"];
    let presses: Vec<(String, u64)> = keys(clinic).into_iter().map(|(d, at, _, _)| (d, at)).collect();
    let person_at = clinic["person_at_ms"].as_u64().unwrap();

    let replay = env.call("+15550002011", &replay_twiml(&presses, person_at)).await;
    let clinic = &replay["clinic"];
    assert_eq!(clinic["outcome"], "person", "{clinic}");
    assert!(keys(clinic).iter().all(|k| k.2 == "twiml" && k.3 == "selected"), "{clinic}");
    assert_eq!(clinic["vapi_connected_kind"], "person");
    assert_eq!(clinic["vapi_ms_in_menu"], 0);
    assert!(clinic["vapi_connected_at_ms"].as_u64().unwrap() >= clinic["person_at_ms"].as_u64().unwrap());
    let report = report(&replay);
    assert!(dtmf_calls(report).is_empty(), "connected at a person, VAPI presses nothing");
    assert_eq!(report["durationSeconds"], 20);

    let wrong = vec![("2".to_string(), presses[0].1)];
    let call = env.call("+15550002012", &replay_twiml(&wrong, presses[0].1 + 2000)).await;
    let clinic = &call["clinic"];
    assert_eq!(clinic["outcome"], "wrong_department");
    assert_eq!(clinic["ended_at"]["node"], "billing");
    assert_eq!(clinic["ended_at"]["department"], "billing");
    assert_eq!(call["vapi"]["ended_reason"], "customer-ended-call");
}

#[tokio::test]
async fn a_changed_menu_is_used_by_the_next_call_and_vapi_finds_its_way() {
    let env = start(good_assistant()).await;
    let number = "+15550002020";
    let (status, shown) = env.phones(reqwest::Method::GET, number, None).await;
    assert_eq!((status, shown["source"].as_str()), (200, Some("default")));
    assert_eq!(shown["system"]["nodes"]["main"]["options"]["1"], "appointments");
    let before = env.call(number, &format!("<Response>{SIP}</Response>")).await;
    assert_eq!(keys(&before["clinic"]).iter().map(|k| k.0.as_str()).collect::<Vec<_>>(), ["1", "2"]);

    let menu = json!({
        "name": "birch street medical", "start": "main", "target": "desk",
        "nodes": {
            "main": {"type": "menu",
                     "prompt": ["welcome to birch street medical.", "for prescription refills, press 4. to reach the front desk, press 7."],
                     "options": {"4": "refills", "7": "hold"}, "timeout_ms": 4000},
            "hold": {"type": "hold", "sound": "music", "ms": 3000, "next": "desk"},
            "desk": {"type": "person", "department": "front desk", "prompt": ["front desk, this is kim."]},
            "refills": {"type": "automated", "prompt": ["please use our refill line. goodbye."]}
        }
    });
    let (status, set) = env.phones(reqwest::Method::PUT, number, Some(menu.clone())).await;
    assert_eq!((status, set["source"].as_str()), (200, Some("override")));
    assert_eq!(set["system"]["nodes"]["main"]["timeout_ms"], 4000);
    let listed = env.inspect("phones").await;
    assert_eq!(listed["overrides"][number]["name"], "birch street medical");

    let after = env.call(number, &format!("<Response>{SIP}</Response>")).await;
    let clinic = &after["clinic"];
    assert_eq!(
        (clinic["source"].as_str(), clinic["system"].as_str()),
        (Some("override"), Some("birch street medical"))
    );
    assert_eq!(keys(clinic).iter().map(|k| k.0.as_str()).collect::<Vec<_>>(), ["7"]);
    assert_eq!(clinic["outcome"], "person");
    let nodes: Vec<&str> = clinic["visited"].as_array().unwrap().iter().map(|v| v["node"].as_str().unwrap()).collect();
    assert_eq!(nodes, ["main", "hold", "desk"]);

    let (status, refused) =
        env.phones(reqwest::Method::PUT, number, Some(json!({"name": "x", "start": "nowhere", "nodes": {}}))).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (400, Some("invalid_phone_system")));
    let (_, restored) = env.phones(reqwest::Method::DELETE, number, None).await;
    assert_eq!(restored["source"], "default");
}

#[tokio::test]
async fn a_refused_or_closed_stream_leaves_the_call_alone() {
    let env = start(good_assistant()).await;
    let (url, _server) = stream_server(Mode::Refuse).await;
    let call = env.call("+15550001001", &learning_twiml(&url)).await;
    assert_eq!(call["final_status"], "completed");
    assert_eq!(call["vapi"]["ended_reason"], "customer-ended-call");
    let stream = &call["streams"][0];
    assert_eq!((stream["status"].as_str(), stream["http_status"].as_u64()), (Some("refused"), Some(403)));
    assert_eq!(call["errors"][0]["code"], 31920);
    assert_eq!(call["errors"][0]["verb"], "Start");
    assert!(stream["frames_sent"].as_object().unwrap().is_empty());

    let (url, server) = stream_server(Mode::CloseAfter(10)).await;
    let call = env.call("+15550001002", &learning_twiml(&url)).await;
    assert_eq!(call["final_status"], "completed");
    assert_eq!(call["duration"], 20);
    let stream = &call["streams"][0];
    assert_eq!(stream["status"], "closed_by_server");
    assert!(stream["frames_sent"]["inbound"].as_u64().unwrap() < 100);
    assert_eq!(server.connections.lock().unwrap()[0].messages.len(), 10);
    assert!(call["errors"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_stream_stops_by_name_and_carries_the_inbound_track_by_default() {
    let env = start(good_assistant()).await;
    let (url, server) = stream_server(Mode::Listen).await;
    let twiml = format!(
        r#"<Response><Start><Stream url="{url}" name="s1"/></Start><Pause length="2"/><Stop><Stream name="s1"/></Stop><Pause length="1"/></Response>"#
    );
    let call = env.call("+15550004001", &twiml).await;
    let (_, messages) = server.finished(0).await;
    assert_eq!(messages[1]["start"]["tracks"], json!(["inbound"]));
    let media = messages.iter().filter(|m| m["event"] == "media").count();
    assert_eq!(media, 100, "2 s of 20 ms frames");
    assert_eq!(messages.last().unwrap()["event"], "stop");
    assert_eq!(call["streams"][0]["status"], "stopped");
    assert_eq!(call["streams"][0]["stopped_at_ms"], 2000);
    let executed: Vec<&str> =
        call["executed"].as_array().unwrap().iter().map(|v| v["verb"].as_str().unwrap()).collect();
    assert_eq!(executed, ["Start", "Pause", "Stop", "Pause"]);
    assert_eq!(call["clinic"]["outcome"], "voicemail");
}

#[tokio::test]
async fn frames_are_paced_by_the_time_scale_and_stamped_in_nominal_time() {
    let env = start_scaled(good_assistant(), 0.05).await;
    let (url, server) = stream_server(Mode::Listen).await;
    let twiml = format!(r#"<Response><Start><Stream url="{url}"/></Start><Pause length="4"/></Response>"#);
    env.call("+15550004002", &twiml).await;
    let (_, messages) = server.finished(0).await;
    let arrived = server.connections.lock().unwrap()[0].arrived.clone();
    let media: Vec<usize> = (0..messages.len()).filter(|&i| messages[i]["event"] == "media").collect();
    assert_eq!(media.len(), 200);
    assert_eq!(messages[*media.last().unwrap()]["media"]["timestamp"], "3980");
    // 4 nominal seconds at 0.05 take 200 ms; allow the handshake's head start.
    let spread = arrived[*media.last().unwrap()] - arrived[media[0]];
    assert!(spread >= Duration::from_millis(150), "frames spread over {spread:?}");
}
