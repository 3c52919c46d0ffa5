//! `<Start><Stream>`: Twilio Media Streams, as the client Twilio is. The stand-in opens a WebSocket
//! to the stream's URL (signed like every Twilio request), then sends exactly Twilio's messages:
//! `connected`, `start`, one `media` per track every nominal 20 ms, `stop`. Frames follow the call's
//! tracked clock: each goes out once the call has committed its 20 ms and their real time has come
//! (nominal × `SANDBOX_TIME_SCALE`), stamped with nominal ms since the stream started.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

use super::callbacks::CallInfo;
use super::signature;
use super::twiml::StreamSpec;
use super::TwilioError;
use crate::clinic::{Line, Track};
use crate::clock::Progress;
use crate::state::{lock, AppState, CallHandle};

/// Nominal length of one media frame: 160 µ-law bytes.
pub const FRAME_MS: u64 = 20;
pub const FRAME_BYTES: usize = 160;
/// How long the handshake may take (real time).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stream may take, after its call ended, to hand over its last frames (real time): a server
/// that stops reading must not keep the call from being done.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// One stream of a call, as `GET /_sandbox/calls` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct StreamRecord {
    pub stream_sid: String,
    pub url: String,
    pub name: Option<String>,
    pub track: String,
    pub parameters: BTreeMap<String, String>,
    /// `connecting`, then `refused` (handshake failed) or `connected`, which ends `stopped` (the call
    /// ended or `<Stop><Stream>`) or `closed_by_server`.
    pub status: &'static str,
    /// The handshake's HTTP status (101 when accepted; null when no answer came).
    pub http_status: Option<u16>,
    pub error: Option<String>,
    /// Nominal ms since the answer: the `<Start>`, and the end of the last frame sent.
    pub started_at_ms: u64,
    pub stopped_at_ms: Option<u64>,
    /// `media` messages and payload bytes (decoded) sent, by track.
    pub frames_sent: BTreeMap<&'static str, u64>,
    pub bytes_sent: BTreeMap<&'static str, u64>,
    /// When each inbound frame went out (µs since the sandbox started): with the STT stand-in's arrival
    /// times, the listener's latency per frame (`GET /_sandbox/stt/{id}/latency`). Not in the listing.
    #[serde(skip)]
    pub inbound_sent_us: Vec<u64>,
}

/// A running stream, for `<Stop><Stream>` and for waiting until it finished.
pub struct StreamHandle {
    name: Option<String>,
    stop: watch::Sender<Option<u64>>,
    task: JoinHandle<()>,
    call: CallHandle,
    index: usize,
}

impl StreamHandle {
    /// Stops the stream at nominal `at_ms` when `name` is its name (or none is given).
    pub fn stop(&self, name: Option<&str>, at_ms: u64) {
        if name.is_none() || name == self.name.as_deref() {
            self.stop.send_if_modified(|stop| stop.is_none() && stop.replace(at_ms).is_none());
        }
    }

    /// Waits until the stream sent its last frame and `stop` (or gave up on a server that stopped reading).
    pub async fn finished(mut self) {
        if tokio::time::timeout(DRAIN_TIMEOUT, &mut self.task).await.is_err() {
            self.task.abort();
            if let Some(record) = lock(&self.call).streams.get_mut(self.index) {
                record.status = "stopped";
                record.error = Some("the server took no frames for 30 s after the call ended".into());
            }
        }
    }
}

/// What a stream needs from its call.
pub struct StreamContext {
    pub state: Arc<AppState>,
    pub call: CallHandle,
    pub info: CallInfo,
    pub line: Arc<Line>,
    pub progress: watch::Receiver<Progress>,
}

/// Starts `spec` at nominal `at_ms` beside the call.
pub fn start(ctx: StreamContext, spec: StreamSpec, at_ms: u64) -> StreamHandle {
    let record = StreamRecord {
        stream_sid: format!("MZ{}", uuid::Uuid::new_v4().simple()),
        url: spec.url.clone(),
        name: spec.name.clone(),
        track: spec.track.clone(),
        parameters: spec.parameters.clone(),
        status: "connecting",
        http_status: None,
        error: None,
        started_at_ms: at_ms,
        stopped_at_ms: None,
        frames_sent: BTreeMap::new(),
        bytes_sent: BTreeMap::new(),
        inbound_sent_us: Vec::new(),
    };
    let index = {
        let mut call = lock(&ctx.call);
        call.streams.push(record.clone());
        call.streams.len() - 1
    };
    let (stop, stop_rx) = watch::channel(None);
    let name = spec.name.clone();
    let call = ctx.call.clone();
    let task = tokio::spawn(async move {
        let mut stream = Stream { ctx, index, record, stop: stop_rx, sequence: 0 };
        stream.run(&spec).await;
    });
    StreamHandle { name, stop, task, call, index }
}

struct Stream {
    ctx: StreamContext,
    index: usize,
    record: StreamRecord,
    stop: watch::Receiver<Option<u64>>,
    /// The last `sequenceNumber` sent.
    sequence: u64,
}

/// Why the frames stopped.
enum End {
    /// The call ended or `<Stop><Stream>`: Twilio sends `stop`.
    Stopped,
    ClosedByServer(String),
}

impl Stream {
    fn save(&self) {
        if let Some(slot) = lock(&self.ctx.call).streams.get_mut(self.index) {
            *slot = self.record.clone();
        }
    }

    fn next_sequence(&mut self) -> String {
        self.sequence += 1;
        self.sequence.to_string()
    }

    async fn run(&mut self, spec: &StreamSpec) {
        let tracks = spec.tracks().unwrap_or(&[Track::Inbound]);
        let socket = match self.connect(spec).await {
            Ok(socket) => socket,
            Err((status, message)) => {
                self.record.status = "refused";
                self.record.http_status = status;
                self.record.error = Some(message.clone());
                self.save();
                let error = TwilioError::new(31920, format!("Stream - WebSocket - Handshake Error: {message}"));
                lock(&self.ctx.call).errors.push(error.record(Some("Start"), Some(self.record.started_at_ms)));
                crate::log!(warn, "twilio", "stream sid={} refused: {message}", self.record.stream_sid);
                return;
            }
        };
        self.record.status = "connected";
        self.record.http_status = Some(101);
        self.save();
        crate::log!(info, "twilio", "stream sid={} connected", self.record.stream_sid);
        let (mut sink, mut incoming) = socket.split();
        let end = self.send_all(&mut sink, &mut incoming, tracks).await;
        match end {
            End::Stopped => {
                self.record.status = "stopped";
                let stop = self.message(
                    "stop",
                    json!({ "stop": {
                    "accountSid": self.ctx.info.account_sid, "callSid": self.ctx.info.sid } }),
                );
                if sink.send(stop).await.is_ok() {
                    let _ = tokio::time::timeout(CONNECT_TIMEOUT, sink.close()).await;
                }
            }
            End::ClosedByServer(why) => {
                self.record.status = "closed_by_server";
                self.record.error = Some(why);
            }
        }
        self.save();
        crate::log!(info, "twilio", "stream sid={} {}", self.record.stream_sid, self.record.status);
    }

    /// The upgrade, signed: base64(HMAC-SHA1(auth token, the URL as written)), no parameters.
    async fn connect(&self, spec: &StreamSpec) -> Result<Socket, (Option<u16>, String)> {
        let mut request = spec.url.as_str().into_client_request().map_err(|e| (None, e.to_string()))?;
        let signature = signature::sign(&self.ctx.state.config.twilio_auth_token, &spec.url, &[]);
        let value = signature.parse().map_err(|_| (None, "unusable signature header".to_string()))?;
        request.headers_mut().insert("X-Twilio-Signature", value);
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(request)).await {
            Err(_) => Err((None, "no answer to the upgrade within 10 s".into())),
            Ok(Ok((socket, _))) => Ok(socket),
            Ok(Err(tungstenite::Error::Http(response))) => {
                let status = response.status().as_u16();
                Err((Some(status), format!("the server answered the upgrade with {status}")))
            }
            Ok(Err(e)) => Err((None, e.to_string())),
        }
    }

    /// A text frame of Twilio's shape: `event`, `sequenceNumber`, `streamSid` and `fields`.
    fn message(&mut self, event: &str, fields: Value) -> Message {
        let mut message = json!({
            "event": event,
            "sequenceNumber": self.next_sequence(),
            "streamSid": self.record.stream_sid,
        });
        if let (Value::Object(m), Value::Object(extra)) = (&mut message, fields) {
            m.extend(extra);
        }
        Message::Text(message.to_string().into())
    }

    async fn send_all(&mut self, sink: &mut Sink, incoming: &mut Incoming, tracks: &[Track]) -> End {
        let connected = json!({ "event": "connected", "protocol": "Call", "version": "1.0.0" });
        let info = &self.ctx.info;
        let start = json!({ "start": {
            "streamSid": self.record.stream_sid,
            "accountSid": info.account_sid,
            "callSid": info.sid,
            "tracks": tracks.iter().map(|t| t.name()).collect::<Vec<_>>(),
            "customParameters": self.record.parameters,
            "mediaFormat": { "encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1 },
        }});
        let start = self.message("start", start);
        for message in [Message::Text(connected.to_string().into()), start] {
            if let Err(e) = sink.send(message).await {
                return End::ClosedByServer(e.to_string());
            }
        }
        let origin = self.record.started_at_ms;
        let mut chunks: BTreeMap<&'static str, u64> = BTreeMap::new();
        for n in 0u64.. {
            let from = origin + n * FRAME_MS;
            tokio::select! {
                closed = closed_by_server(incoming) => return End::ClosedByServer(closed),
                due = self.frame_due(from + FRAME_MS) => if !due { return End::Stopped },
            }
            for &track in tracks {
                let payload = self.ctx.line.frame(track, from);
                let chunk = chunks.entry(track.name()).or_default();
                *chunk += 1;
                let media = json!({ "media": {
                    "track": track.name(),
                    "chunk": chunk.to_string(),
                    "timestamp": (from - origin).to_string(),
                    "payload": STANDARD.encode(&payload),
                }});
                let message = self.message("media", media);
                if let Err(e) = sink.send(message).await {
                    return End::ClosedByServer(e.to_string());
                }
                if track == Track::Inbound {
                    self.record.inbound_sent_us.push(self.ctx.state.uptime().as_micros() as u64);
                }
                *self.record.frames_sent.entry(track.name()).or_default() += 1;
                *self.record.bytes_sent.entry(track.name()).or_default() += payload.len() as u64;
            }
            self.record.stopped_at_ms = Some(from + FRAME_MS);
        }
        End::Stopped
    }

    /// Waits until the frame ending at nominal `end` may go out: the call committed that far and
    /// its real time came. False when the call ended (or the stream was stopped) first.
    async fn frame_due(&mut self, end: u64) -> bool {
        let waited = self.ctx.progress.wait_for(|p| p.horizon_ms >= end || p.ended).await.map(|p| *p);
        // Without a result the call's clock is gone: it ended where it last was.
        let progress = waited.unwrap_or_else(|_| *self.ctx.progress.borrow());
        let stopped = self.stop.borrow().is_some_and(|at| at < end);
        if progress.horizon_ms < end || stopped {
            return false;
        }
        tokio::time::sleep_until(progress.real_instant(self.ctx.state.config.time_scale, end).into()).await;
        true
    }
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
type Sink = futures_util::stream::SplitSink<Socket, Message>;
type Incoming = futures_util::stream::SplitStream<Socket>;

/// Returns (why) once the server closed the socket; other messages are ignored, as Twilio ignores
/// what a `<Start>` stream's server sends.
async fn closed_by_server(incoming: &mut Incoming) -> String {
    loop {
        match incoming.next().await {
            Some(Ok(Message::Close(frame))) => {
                return frame.map_or_else(|| "closed".to_string(), |f| format!("closed {}", u16::from(f.code)));
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return e.to_string(),
            None => return "connection closed".to_string(),
        }
    }
}
