//! The listener: one Durable Object per listened call. It holds the two sockets of a learning (or
//! verified) call — Twilio's audio stream in, the speech-to-text connection out — and carries out what
//! the sans-IO machine `outcall_core::learning::listener` decides (asking the optional judge, `judge.rs`,
//! when it says so). Every decision is there; this file only moves bytes and calls the SQL functions.
//!
//! One task drives the machine: the sockets' events and a one-second tick arrive on one channel, in
//! order, and each input's actions are carried out before the next input is taken.

use crate::db::Db;
use crate::http;
use crate::time::now_ms;
use futures_channel::mpsc::{unbounded, UnboundedSender};
use futures_util::StreamExt;
use outcall_core::config::Config;
use outcall_core::ids::RunId;
use outcall_core::learning::listener::{Action, Listener, Outcome};
use outcall_core::learning::media;
use outcall_core::learning::stt::{Deepgram, SpeechToText};
use outcall_core::rpc::{BeginListening, Decision, InvalidateClassification};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;
use worker::wasm_bindgen_futures::spawn_local;
use worker::{
    console_log, durable_object, DurableObject, Env, Fetch, Headers, Method, Request, Response, Result, State,
    WebSocket, WebSocketPair, WebsocketEvent,
};

/// The Durable Object binding (wrangler.toml).
pub const BINDING: &str = "CALL_LISTENER";

/// How often the machine is told the time (keep-alives, the end of a verification, close timeouts).
const TICK: Duration = Duration::from_secs(1);

#[durable_object(fetch)]
pub struct CallListener {
    env: Env,
}

impl DurableObject for CallListener {
    fn new(_state: State, env: Env) -> Self {
        Self { env }
    }

    /// Twilio's upgrade, already authenticated by `routes::stream`: accept it and listen.
    async fn fetch(&self, _req: Request) -> Result<Response> {
        let config = match http::config(&self.env) {
            Ok(config) => config,
            Err(error) => return http::error(&error),
        };
        let pair = WebSocketPair::new()?;
        pair.server.accept()?;
        spawn_local(listen(pair.server, config));
        Response::from_websocket(pair.client)
    }
}

/// What reaches the driving task.
enum Input {
    Twilio(String),
    TwilioClosed,
    SttText(String),
    SttClosed,
    Tick,
}

async fn listen(twilio: WebSocket, config: Rc<Config>) {
    let (inputs, mut received) = unbounded::<Input>();
    pump(twilio.clone(), inputs.clone(), Input::Twilio, Input::TwilioClosed);
    tick(inputs.clone());
    let stt = Deepgram::default();
    let db = Db::new(&config);
    let mut machine = Listener::new(stt.clone()).with_judge(config.judge.is_some());
    let mut stt_socket: Option<WebSocket> = None;
    let mut run_id: Option<RunId> = None;
    let mut pending = VecDeque::new();
    while let Some(input) = received.next().await {
        pending.extend(match input {
            // (a message not of Twilio's shape is ignored, never echoed anywhere)
            Input::Twilio(text) => media::parse(&text).map(|m| machine.on_twilio(m)).unwrap_or_default(),
            Input::TwilioClosed => machine.on_closed(),
            Input::SttText(text) => match stt.parse(&text) {
                Ok(events) => events.into_iter().flat_map(|e| machine.on_stt(e)).collect(),
                Err(_) => machine.on_stt_failed(),
            },
            Input::SttClosed => machine.on_stt_failed(),
            Input::Tick => machine.on_tick(now_ms()),
        });
        while let Some(action) = pending.pop_front() {
            match action {
                Action::Authenticate { session, token } => {
                    let request = BeginListening { session_id: session, token };
                    pending.extend(match db.call(&request).await {
                        Ok(Decision::Done(listening)) => {
                            run_id = Some(listening.run_id);
                            machine.on_authenticated(listening.into())
                        }
                        Ok(Decision::Refused(reason)) => {
                            console_log!("listener: stream refused ({reason})");
                            machine.on_refused()
                        }
                        Err(e) => {
                            console_log!("listener: the stream could not be authenticated: {}", e.message);
                            machine.on_refused()
                        }
                    });
                }
                Action::OpenStt => {
                    let tag = run_id.map(|id| id.to_string()).unwrap_or_default();
                    match connect(&config, &stt, &tag).await {
                        Ok(socket) => {
                            pump(socket.clone(), inputs.clone(), Input::SttText, Input::SttClosed);
                            stt_socket = Some(socket);
                            pending.extend(machine.on_stt_open());
                        }
                        Err(e) => {
                            console_log!("listener: speech-to-text unreachable: {e}");
                            pending.extend(machine.on_stt_failed());
                        }
                    }
                }
                Action::ForwardAudio(bytes) => {
                    let sent = stt_socket.as_ref().is_some_and(|socket| socket.send_with_bytes(bytes).is_ok());
                    if !sent {
                        pending.extend(machine.on_stt_failed());
                    }
                }
                Action::SendStt(text) => {
                    if let Some(socket) = &stt_socket {
                        let _ = socket.send_with_str(text);
                    }
                }
                Action::CloseStt => {
                    if let Some(socket) = stt_socket.take() {
                        let _ = socket.close(Some(1000), Some("done"));
                    }
                }
                Action::Invalidate { reason } => {
                    if let Some(run_id) = run_id {
                        if let Err(e) = db.call(&InvalidateClassification { run_id, reason }).await {
                            console_log!("listener: invalidation not recorded: {}", e.message);
                        }
                    }
                }
                Action::Judge(timeline) => {
                    let judged = match &config.judge {
                        Some(settings) => crate::judge::ask(settings, &timeline, run_id).await,
                        None => None,
                    };
                    pending.extend(machine.on_judged(judged));
                }
                Action::Finish(outcome) => record(&db, run_id, &outcome).await,
                Action::Close => {
                    let _ = twilio.close(Some(1000), Some("done"));
                    return;
                }
            }
        }
    }
}

async fn record(db: &Db, run_id: Option<RunId>, outcome: &Outcome) {
    let Some(run_id) = run_id else { return };
    match db.call(&outcome.record(run_id)).await {
        Ok(_) => console_log!(
            "listener: run {run_id} recorded: {:?} ({} of {} audio bytes forwarded)",
            outcome.verdict.classification,
            outcome.bytes_forwarded,
            outcome.bytes_received_inbound
        ),
        Err(e) => console_log!("listener: run {run_id} not recorded: {}", e.message),
    }
}

/// Opens the speech-to-text connection: a fetch with `Upgrade: websocket` and the key in a header
/// (`WebSocket::connect` cannot set one).
async fn connect(config: &Config, stt: &impl SpeechToText, tag: &str) -> Result<WebSocket> {
    let headers = Headers::new();
    headers.set("Upgrade", "websocket")?;
    let (name, value) = stt.auth_header(&config.stt_api_key);
    headers.set(name, &value)?;
    let request = http::outgoing(Method::Get, &stt.url(&config.stt_url, tag), headers, None)?;
    let response = Fetch::Request(request).send().await?;
    let socket = response.websocket().ok_or_else(|| worker::Error::RustError("the upgrade was refused".into()))?;
    socket.accept()?;
    Ok(socket)
}

/// Feeds one socket's text messages (binary ones are not part of either protocol) and its end into the channel.
fn pump(socket: WebSocket, inputs: UnboundedSender<Input>, text: fn(String) -> Input, closed: Input) {
    spawn_local(async move {
        if let Ok(mut events) = socket.events() {
            while let Some(event) = events.next().await {
                match event {
                    Ok(WebsocketEvent::Message(message)) => {
                        if let Some(body) = message.text() {
                            if inputs.unbounded_send(text(body)).is_err() {
                                return;
                            }
                        }
                    }
                    Ok(WebsocketEvent::Close(_)) | Err(_) => break,
                }
            }
        }
        let _ = inputs.unbounded_send(closed);
    });
}

fn tick(inputs: UnboundedSender<Input>) {
    spawn_local(async move {
        loop {
            crate::time::sleep(TICK).await;
            if inputs.unbounded_send(Input::Tick).is_err() {
                return;
            }
        }
    });
}
