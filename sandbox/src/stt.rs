//! Deepgram's live API (`GET /v1/listen`, a WebSocket), as far as the
//! Worker's listener uses it. It transcribes only the audio it receives, with
//! [`voice::Transcriber`]: a Worker that forwards nothing, the wrong track or
//! frames out of order gets no transcript, or a garbled one.
//!
//! Differences from Deepgram: only µ-law 8 kHz mono; only final results
//! (`is_final` and `speech_final` both true), each sent once 600 ms of silence
//! ended an utterance (whatever `endpointing` says); `SpeechStarted` once an
//! utterance's first character is read; `UtteranceEnd` once
//! `utterance_end_ms` of audio passed after the last word with no new word.
//! Times are seconds of audio received on the connection (bytes / 8000).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::inspect::api_error;
use crate::state::{lock, AppState};
use crate::voice::{Transcriber, Utterance, SAMPLE_RATE, SYMBOL_SAMPLES};

/// Deepgram closes a connection that receives no audio or message for this long.
pub const IDLE_TIMEOUT_MS: u64 = 10_000;
/// The real idle timeout is never shorter, whatever the time scale: at scale
/// 0 a timeout of 0 would close every connection between two frames.
pub const MIN_REAL_IDLE: Duration = Duration::from_millis(200);
/// How long a closing socket waits for the client's close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Per-word confidence: the tone code is read exactly or not at all.
const CONFIDENCE: f64 = 0.99;
/// Query parameters never recorded.
const SECRET_PARAMS: [&str; 3] = ["token", "key", "access_token"];

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/listen", get(listen))
        .route("/_sandbox/stt/fault", get(current_fault).post(set_fault))
        .route("/_sandbox/stt/{id}/latency", get(latency))
}

/// How the STT stand-in fails, set through `POST /_sandbox/stt/fault` (a
/// missing field is off). Deterministic, so a test knows which connection fails.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SttFault {
    /// Every upgrade with a valid key and query is answered 503.
    pub refuse: bool,
    /// A connection is closed 1011 (`NET-0000`) once it has received this
    /// many nominal ms of audio.
    pub close_after_ms: Option<u64>,
}

/// The STT stand-in's records and fault switch.
#[derive(Default)]
pub struct Stt {
    connections: Mutex<Vec<Arc<Mutex<SttConnection>>>>,
    fault: Mutex<SttFault>,
}

impl Stt {
    fn insert(&self, connection: SttConnection) -> Arc<Mutex<SttConnection>> {
        let handle = Arc::new(Mutex::new(connection));
        lock(&self.connections).push(handle.clone());
        handle
    }

    /// Snapshots of every connection attempt, oldest first.
    pub fn list(&self) -> Vec<SttConnection> {
        let handles = lock(&self.connections).clone();
        handles.iter().map(|h| lock(h).clone()).collect()
    }

    pub fn clear(&self) {
        lock(&self.connections).clear();
    }

    pub fn fault(&self) -> SttFault {
        lock(&self.fault).clone()
    }
}

/// One `GET /v1/listen`, in the shape `GET /_sandbox/stt` returns.
#[derive(Debug, Clone, Serialize)]
pub struct SttConnection {
    /// Deepgram's `request_id` (also `dg-request-id` and `metadata.request_id`).
    pub id: String,
    /// 101 when upgraded; 401 (key), 400 (query) or 503 (fault) when refused.
    pub status: u16,
    /// How the key was presented: `authorization` or `subprotocol` (never the key).
    pub auth: Option<&'static str>,
    /// The query parameters (a key-like parameter is left out).
    pub query: BTreeMap<String, String>,
    pub opened_at: String,
    /// Real ms since the sandbox started.
    pub opened_ms: u64,
    pub closed_ms: Option<u64>,
    pub close_code: Option<u16>,
    pub close_reason: Option<String>,
    /// `server` or `client` (a close frame, or the socket dropped: no code).
    pub closed_by: Option<&'static str>,
    pub audio_bytes: u64,
    pub audio_frames: u64,
    /// Each audio message's arrival: (audio bytes received with it, µs since the sandbox started). Not in
    /// the listing; see `latency`.
    #[serde(skip)]
    pub audio_arrivals: Vec<(u64, u64)>,
    pub keep_alives: u64,
    pub finalizes: u64,
    pub close_stream: bool,
    /// The `Results` sent, times in seconds of audio on this connection.
    pub transcripts: Vec<SentTranscript>,
    pub speech_started: u64,
    pub utterance_ends: u64,
    /// The fault that ended or refused this connection, if any.
    pub fault: Option<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SentTranscript {
    pub start: f64,
    pub end: f64,
    pub text: String,
}

/// The key presented: `Authorization: Token <key>`, or the subprotocols `token, <key>`.
fn presented_key(headers: &HeaderMap) -> Option<(&'static str, String)> {
    let header = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    if let Some((scheme, key)) = header("authorization").and_then(|v| v.trim().split_once(' ')) {
        if scheme.eq_ignore_ascii_case("token") {
            return Some(("authorization", key.trim().to_string()));
        }
    }
    let protocols: Vec<&str> = header("sec-websocket-protocol")?.split(',').map(str::trim).collect();
    match protocols.as_slice() {
        [scheme, key] if scheme.eq_ignore_ascii_case("token") => Some(("subprotocol", key.to_string())),
        _ => None,
    }
}

/// The options a connection was opened with.
#[derive(Debug, Clone, PartialEq)]
struct Options {
    vad_events: bool,
    utterance_end_ms: Option<u64>,
}

/// Checks the audio format (the only one the stand-in decodes) and reads the
/// options it honours; the error is Deepgram's message.
fn options(query: &BTreeMap<String, String>) -> Result<Options, String> {
    let param = |name: &str| query.get(name).map(String::as_str);
    if param("encoding") != Some("mulaw") {
        return Err("the sandbox's STT decodes only encoding=mulaw".into());
    }
    if param("sample_rate") != Some("8000") {
        return Err("sample_rate=8000 is required with encoding=mulaw".into());
    }
    if param("channels").is_some_and(|c| c != "1") {
        return Err("the sandbox's STT decodes only channels=1".into());
    }
    let utterance_end_ms = match param("utterance_end_ms") {
        None => None,
        Some(v) => Some(v.parse::<u64>().map_err(|_| format!("utterance_end_ms={v:?} is not a number of ms"))?),
    };
    Ok(Options { vad_events: param("vad_events") == Some("true"), utterance_end_ms })
}

fn parse_query(raw: Option<&str>) -> BTreeMap<String, String> {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .filter(|(k, _)| !SECRET_PARAMS.contains(&k.as_ref()))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Deepgram's error body, with its request id header.
fn refusal(status: StatusCode, code: &str, message: &str, request_id: &str) -> Response {
    let mut response =
        (status, Json(json!({ "err_code": code, "err_msg": message, "request_id": request_id }))).into_response();
    if let Ok(v) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("dg-request-id", v);
    }
    response
}

async fn listen(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let id = uuid::Uuid::new_v4().to_string();
    let now = chrono::Utc::now();
    let key = presented_key(&headers);
    let query = parse_query(raw.as_deref());
    let record = state.stt.insert(SttConnection {
        id: id.clone(),
        status: 101,
        auth: key.as_ref().map(|(how, _)| *how),
        query: query.clone(),
        opened_at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        opened_ms: state.uptime().as_millis() as u64,
        closed_ms: None,
        close_code: None,
        close_reason: None,
        closed_by: None,
        audio_bytes: 0,
        audio_frames: 0,
        audio_arrivals: Vec::new(),
        keep_alives: 0,
        finalizes: 0,
        close_stream: false,
        transcripts: Vec::new(),
        speech_started: 0,
        utterance_ends: 0,
        fault: None,
    });
    let refuse = |status: StatusCode, code: &str, message: &str, fault: Option<&'static str>| {
        let mut r = lock(&record);
        r.status = status.as_u16();
        r.fault = fault;
        crate::log!(info, "stt", "refused id={id} status={}", status.as_u16());
        refusal(status, code, message, &id)
    };
    if key.as_ref().is_none_or(|(_, k)| *k != state.config.stt_key) {
        return refuse(StatusCode::UNAUTHORIZED, "INVALID_AUTH", "Invalid credentials.", None);
    }
    let options = match options(&query) {
        Ok(o) => o,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, "Bad Request", &message, None),
    };
    let fault = state.stt.fault();
    if fault.refuse {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE", "Service unavailable.", Some("refused"));
    }
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(rejection) => {
            let response = rejection.into_response();
            return refuse(response.status(), "Bad Request", "expected a WebSocket upgrade", None);
        }
    };
    crate::log!(info, "stt", "open id={id}");
    let idle = crate::clock::real(state.config.time_scale, IDLE_TIMEOUT_MS).max(MIN_REAL_IDLE);
    let session = Session::new(id.clone(), options, fault.close_after_ms, record, state.clone());
    // Deepgram answers the `token` subprotocol when the key came that way.
    let mut response = upgrade.protocols(["token"]).on_upgrade(move |socket| session.run(socket, idle));
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("dg-request-id", v);
    }
    response
}

/// A control message, sent as a text frame.
#[derive(Deserialize)]
#[serde(tag = "type")]
enum Control {
    KeepAlive,
    Finalize,
    CloseStream,
}

/// Why a session stopped reading.
enum End {
    /// We close with this code and reason.
    Close(u16, &'static str, Option<&'static str>),
    /// The client closed (with a code) or vanished.
    Client(Option<(u16, String)>),
}

/// One upgraded connection: the decoder, what has been announced, the record.
struct Session {
    id: String,
    options: Options,
    close_after_bytes: Option<u64>,
    record: Arc<Mutex<SttConnection>>,
    state: Arc<AppState>,
    transcriber: Transcriber,
    audio: Sha256,
    /// The start sample of the last utterance `SpeechStarted` was sent for.
    announced: Option<u64>,
    /// The end sample of the last word, while its `UtteranceEnd` is due.
    utterance_end_due: Option<u64>,
}

impl Session {
    fn new(
        id: String,
        options: Options,
        close_after_ms: Option<u64>,
        record: Arc<Mutex<SttConnection>>,
        state: Arc<AppState>,
    ) -> Session {
        Session {
            id,
            options,
            close_after_bytes: close_after_ms.map(|ms| ms * SAMPLE_RATE / 1000),
            record,
            state,
            transcriber: Transcriber::new(),
            audio: Sha256::new(),
            announced: None,
            utterance_end_due: None,
        }
    }

    async fn run(mut self, mut socket: WebSocket, idle: Duration) {
        match self.serve(&mut socket, idle).await {
            End::Close(code, reason, fault) => {
                // Recorded before the close frame goes out, so whoever reads it sees the record.
                self.closed(Some(code), Some(reason.to_string()), "server", fault);
                let frame = CloseFrame { code, reason: reason.into() };
                if socket.send(Message::Close(Some(frame))).await.is_ok() {
                    // Read until the client's close frame answers ours.
                    let _ = tokio::time::timeout(CLOSE_GRACE, async { while socket.recv().await.is_some() {} }).await;
                }
            }
            End::Client(frame) => {
                let (code, reason) = frame.map_or((None, None), |(c, r)| (Some(c), Some(r)));
                self.closed(code, reason, "client", None);
            }
        }
    }

    fn closed(&self, code: Option<u16>, reason: Option<String>, by: &'static str, fault: Option<&'static str>) {
        crate::log!(info, "stt", "closed id={} code={code:?} by={by}", self.id);
        let mut r = lock(&self.record);
        r.closed_ms = Some(self.state.uptime().as_millis() as u64);
        r.close_code = code;
        r.close_reason = reason;
        r.closed_by = Some(by);
        r.fault = fault;
    }

    async fn serve(&mut self, socket: &mut WebSocket, idle: Duration) -> End {
        let mut deadline = tokio::time::Instant::now() + idle;
        loop {
            let message = tokio::select! {
                m = socket.recv() => m,
                _ = tokio::time::sleep_until(deadline) => return End::Close(1011, "NET-0001", None),
            };
            let replies = match message {
                None | Some(Err(_)) => return End::Client(None),
                Some(Ok(Message::Close(frame))) => {
                    // Let the socket answer the close frame.
                    let _ = tokio::time::timeout(CLOSE_GRACE, socket.recv()).await;
                    return End::Client(frame.map(|f| (f.code, f.reason.to_string())));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Binary(audio))) => {
                    deadline = tokio::time::Instant::now() + idle;
                    let replies = self.audio(&audio);
                    if self.close_after_bytes.is_some_and(|limit| self.transcriber.position() >= limit) {
                        // Mid-stream: what was decoded so far is lost, as with a crashed server.
                        return End::Close(1011, "NET-0000", Some("closed_mid_stream"));
                    }
                    replies
                }
                Some(Ok(Message::Text(text))) => match serde_json::from_str::<Control>(text.as_str()) {
                    Err(_) => return End::Close(1008, "DATA-0000", None),
                    Ok(Control::KeepAlive) => {
                        deadline = tokio::time::Instant::now() + idle;
                        lock(&self.record).keep_alives += 1;
                        continue;
                    }
                    Ok(Control::Finalize) => {
                        deadline = tokio::time::Instant::now() + idle;
                        lock(&self.record).finalizes += 1;
                        self.flush(true)
                    }
                    Ok(Control::CloseStream) => {
                        lock(&self.record).close_stream = true;
                        let mut replies = self.flush(false);
                        replies.push(self.metadata());
                        for reply in replies {
                            if socket.send(Message::Text(reply.to_string().into())).await.is_err() {
                                return End::Client(None);
                            }
                        }
                        return End::Close(1000, "", None);
                    }
                },
            };
            for reply in replies {
                if socket.send(Message::Text(reply.to_string().into())).await.is_err() {
                    return End::Client(None);
                }
            }
        }
    }

    /// Decodes a binary frame; returns the messages it causes.
    fn audio(&mut self, audio: &Bytes) -> Vec<Value> {
        self.audio.update(audio);
        {
            let mut r = lock(&self.record);
            r.audio_bytes += audio.len() as u64;
            r.audio_frames += 1;
            let arrived = (r.audio_bytes, self.state.uptime().as_micros() as u64);
            r.audio_arrivals.push(arrived);
        }
        let utterances = self.transcriber.push(audio);
        let mut out = Vec::new();
        for utterance in utterances {
            self.announce(utterance.start_sample, &mut out);
            out.push(self.results(&utterance, false));
            self.utterance_end_due = self.options.utterance_end_ms.map(|_| utterance.end_sample);
        }
        if let Some(start) = self.transcriber.speaking_since() {
            self.announce(start, &mut out);
        }
        self.utterance_end(false, &mut out);
        out
    }

    /// Sends `UtteranceEnd` once `utterance_end_ms` passed after the last word
    /// (or at once when `now`), and drops it if words resumed earlier.
    fn utterance_end(&mut self, now: bool, out: &mut Vec<Value>) {
        let (Some(end), Some(gap_ms)) = (self.utterance_end_due, self.options.utterance_end_ms) else { return };
        let due = end + gap_ms * SAMPLE_RATE / 1000;
        if self.transcriber.speaking_since().is_some_and(|start| start < due) {
            self.utterance_end_due = None;
        } else if now || self.transcriber.position() >= due {
            self.utterance_end_due = None;
            lock(&self.record).utterance_ends += 1;
            out.push(json!({ "type": "UtteranceEnd", "channel": [0, 1], "last_word_end": seconds(end) }));
        }
    }

    /// `SpeechStarted` for the utterance starting at `start`, once.
    fn announce(&mut self, start: u64, out: &mut Vec<Value>) {
        if self.announced == Some(start) {
            return;
        }
        // Words after a gap of `utterance_end_ms` close the previous utterance first.
        if self
            .utterance_end_due
            .is_some_and(|end| self.options.utterance_end_ms.is_some_and(|gap| start >= end + gap * SAMPLE_RATE / 1000))
        {
            self.utterance_end(true, out);
        }
        self.utterance_end_due = None;
        self.announced = Some(start);
        if self.options.vad_events {
            lock(&self.record).speech_started += 1;
            out.push(json!({ "type": "SpeechStarted", "channel": [0, 1], "timestamp": seconds(start) }));
        }
    }

    /// Ends the utterance under way (Finalize, CloseStream) and any pending `UtteranceEnd`.
    fn flush(&mut self, from_finalize: bool) -> Vec<Value> {
        let mut out = Vec::new();
        if let Some(utterance) = self.transcriber.finish() {
            self.announce(utterance.start_sample, &mut out);
            out.push(self.results(&utterance, from_finalize));
            self.utterance_end_due = self.options.utterance_end_ms.map(|_| utterance.end_sample);
        }
        self.utterance_end(true, &mut out);
        out
    }

    fn results(&self, utterance: &Utterance, from_finalize: bool) -> Value {
        let start = seconds(utterance.start_sample);
        let transcript = utterance.text.trim().to_string();
        lock(&self.record).transcripts.push(SentTranscript {
            start,
            end: seconds(utterance.end_sample),
            text: transcript.clone(),
        });
        json!({
            "type": "Results",
            "channel_index": [0, 1],
            "start": start,
            "duration": seconds(utterance.end_sample - utterance.start_sample),
            "is_final": true,
            "speech_final": true,
            "from_finalize": from_finalize,
            "channel": { "alternatives": [{
                "transcript": transcript,
                "confidence": CONFIDENCE,
                "words": words(utterance),
            }]},
            "metadata": {
                "request_id": self.id,
                "model_info": { "name": "sandbox-tones", "version": "1", "arch": "tones" },
            },
        })
    }

    fn metadata(&mut self) -> Value {
        let sha256: String = std::mem::take(&mut self.audio).finalize().iter().map(|b| format!("{b:02x}")).collect();
        json!({
            "type": "Metadata",
            "transaction_key": "deprecated",
            "request_id": self.id,
            "sha256": sha256,
            "created": lock(&self.record).opened_at,
            "duration": seconds(self.transcriber.position()),
            "channels": 1,
            "models": [],
            "model_info": {},
        })
    }
}

/// Samples as Deepgram's seconds.
fn seconds(samples: u64) -> f64 {
    samples as f64 / SAMPLE_RATE as f64
}

/// Words split on spaces, timed by their characters' symbols: `word` without
/// surrounding punctuation, `punctuated_word` as heard.
fn words(utterance: &Utterance) -> Vec<Value> {
    let chars: Vec<(char, u64)> = utterance.text.chars().zip(utterance.char_starts.iter().copied()).collect();
    chars
        .split(|(c, _)| *c == ' ')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let punctuated: String = w.iter().map(|(c, _)| *c).collect();
            let bare = punctuated.trim_matches(|c: char| !c.is_alphanumeric());
            let first = w[0].1;
            let last = w[w.len() - 1].1 + SYMBOL_SAMPLES as u64;
            json!({
                "word": if bare.is_empty() { punctuated.as_str() } else { bare },
                "start": seconds(first),
                "end": seconds(last),
                "confidence": CONFIDENCE,
                "punctuated_word": punctuated,
            })
        })
        .collect()
}

/// `{"fault": {...}}`.
async fn current_fault(State(state): State<Arc<AppState>>) -> Response {
    Json(json!({ "fault": state.stt.fault() })).into_response()
}

/// Replaces the fault switch (`{}` turns it off).
async fn set_fault(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    match serde_json::from_slice::<SttFault>(&body) {
        Ok(fault) => {
            crate::log!(info, "stt", "fault {}", serde_json::to_string(&fault).unwrap_or_default());
            *lock(&state.stt.fault) = fault;
            current_fault(State(state)).await
        }
        Err(e) => api_error(StatusCode::BAD_REQUEST, "invalid_fault", e.to_string()),
    }
}

/// `GET /_sandbox/stt/{id}/latency?stream=MZ...`: how long each inbound frame of a Twilio stream took to reach
/// this connection (µs, from the stream sending it to its audio arriving here): the listener's latency per
/// frame. Audio is matched by position (the listener forwards the inbound track in order), each arrival to the
/// last frame it completes.
async fn latency(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let Some(arrivals) = state.stt.list().into_iter().find(|c| c.id == id).map(|c| c.audio_arrivals) else {
        return (StatusCode::NOT_FOUND, Json(json!({"error": {"code": "not_found", "message": "no such connection"}})))
            .into_response();
    };
    let stream_sid = query.get("stream").cloned().unwrap_or_default();
    let sent = state
        .calls
        .list(|call| call.streams.iter().any(|s| s.stream_sid == stream_sid))
        .into_iter()
        .flat_map(|call| call.streams)
        .find(|s| s.stream_sid == stream_sid)
        .map(|s| s.inbound_sent_us)
        .unwrap_or_default();
    let latency_us: Vec<u64> = arrivals
        .iter()
        .filter_map(|(bytes, at)| {
            let frame = (*bytes).div_ceil(crate::twilio::stream::FRAME_BYTES as u64).checked_sub(1)?;
            sent.get(frame as usize).map(|sent_at| at.saturating_sub(*sent_at))
        })
        .collect();
    Json(json!({"frames_sent": sent.len(), "arrivals": arrivals.len(), "latency_us": latency_us})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::voice::{silence, speak, transcribe};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn key_from_header_or_subprotocol() {
        assert_eq!(presented_key(&headers(&[("authorization", "Token abc")])), Some(("authorization", "abc".into())));
        assert_eq!(
            presented_key(&headers(&[("sec-websocket-protocol", "token, abc")])),
            Some(("subprotocol", "abc".into()))
        );
        assert_eq!(presented_key(&headers(&[("authorization", "Bearer abc")])), None);
        assert_eq!(presented_key(&headers(&[("sec-websocket-protocol", "abc")])), None);
        assert_eq!(presented_key(&HeaderMap::new()), None);
    }

    #[test]
    fn query_is_checked_and_keys_are_not_kept() {
        let q = parse_query(Some(
            "model=nova-3&encoding=mulaw&sample_rate=8000&vad_events=true&utterance_end_ms=1000&token=x",
        ));
        assert!(!q.contains_key("token"));
        assert_eq!(options(&q), Ok(Options { vad_events: true, utterance_end_ms: Some(1000) }));
        assert!(options(&parse_query(Some("encoding=linear16&sample_rate=8000"))).is_err());
        assert!(options(&parse_query(Some("encoding=mulaw"))).is_err());
        assert!(options(&parse_query(Some("encoding=mulaw&sample_rate=8000&channels=2"))).is_err());
        assert_eq!(
            options(&parse_query(Some("encoding=mulaw&sample_rate=8000"))),
            Ok(Options { vad_events: false, utterance_end_ms: None })
        );
    }

    #[test]
    fn words_are_timed_by_their_symbols() {
        let mut audio = silence(500);
        audio.extend(speak("Hi, it's me."));
        let utterance = transcribe(&audio).remove(0);
        let words = words(&utterance);
        let field = |i: usize, k: &str| words[i][k].clone();
        assert_eq!(words.len(), 3);
        assert_eq!((field(0, "word"), field(0, "punctuated_word")), (json!("hi"), json!("hi,")));
        assert_eq!(
            (field(1, "word"), field(2, "word"), field(2, "punctuated_word")),
            (json!("it's"), json!("me"), json!("me."))
        );
        assert_eq!((field(0, "start"), field(0, "end")), (json!(seconds(4000)), json!(seconds(4000 + 3 * 480))));
        assert_eq!(field(2, "end"), json!(seconds(4000 + 12 * 480)));
    }
}
