//! The WebSocket endpoint and one connection's channels.
//!
//! The upgrade needs an API key (`apikey` query parameter or `x-api-key` header) that is a valid JWT with a
//! `role`: otherwise 401 `{"error": "…"}`, as Realtime's `UserSocket` answers. Then, per text frame:
//! `heartbeat` (topic `phoenix`) → ok; `phx_join` → the bindings echoed with ids, later the `system` message
//! "Subscribed to PostgreSQL"; `access_token` → the channel's claims replaced (no reply), or the channel
//! shut with a `system` error and `phx_close` if the token is refused; `phx_leave` → ok, nothing more sent.
//! A channel whose token expires is shut the same way. Binary frames (broadcast in vsn 2.0.0) are ignored:
//! broadcast and presence are not served (presence pushes get an empty ok so a client does not wait).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use super::frame::{Frame, Serializer};
use super::hub::{Push, Subscriber};
use super::join::{ok_response, parse_join};
use crate::jwt::TokenError;
use crate::state::AppState;

/// How often a connection checks its tokens' expiry and whether its channels are subscribed yet.
const TICK: Duration = Duration::from_millis(100);
/// Change messages waiting for a socket; beyond this a slow socket loses them.
const OUTBOX: usize = 1024;

fn refuse(status: StatusCode, error: impl Into<String>) -> Response {
    (status, Json(json!({ "error": error.into() }))).into_response()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub async fn websocket(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let query: HashMap<String, String> =
        form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned().collect();
    let serializer = match Serializer::from_vsn(query.get("vsn").map(String::as_str)) {
        Ok(s) => s,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    let key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| query.get("apikey").cloned())
        .filter(|k| !k.is_empty());
    let Some(key) = key else { return refuse(StatusCode::UNAUTHORIZED, "No apikey provided") };
    if let Err(refusal) = verify(&state, &key) {
        crate::log!(info, "realtime", "upgrade refused: {}", refusal.message());
        return refuse(StatusCode::UNAUTHORIZED, refusal.message());
    }
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(rejection) => return refuse(rejection.into_response().status(), "expected a WebSocket upgrade"),
    };
    upgrade.on_upgrade(move |socket| {
        let (outbox, inbox) = mpsc::channel(OUTBOX);
        Connection { state, serializer, apikey: key, outbox, channels: HashMap::new() }.run(socket, inbox)
    })
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq)]
enum Refusal {
    Expired { seconds_ago: i64 },
    Invalid(TokenError),
    MissingClaims,
}

impl Refusal {
    /// The message of a `system` error or an upgrade refusal.
    fn message(&self) -> String {
        match self {
            Refusal::Expired { seconds_ago } => format!("Token has expired {seconds_ago} seconds ago"),
            Refusal::Invalid(TokenError::Malformed) => "The token provided is not a valid JWT".into(),
            Refusal::Invalid(e) => e.to_string(),
            Refusal::MissingClaims => "Fields `role` and `exp` are required in JWT".into(),
        }
    }

    /// A join error's `reason`: `<Code>: <message>`.
    fn join_reason(&self) -> String {
        let code = match self {
            Refusal::Expired { .. } => "InvalidJWTExpiration",
            Refusal::Invalid(_) => "Unauthorized",
            Refusal::MissingClaims => "InvalidJWTToken",
        };
        format!("{code}: {}", self.message())
    }
}

/// The token's subscriber and expiry.
fn verify(state: &AppState, token: &str) -> Result<(Subscriber, i64), Refusal> {
    let now = now();
    match state.realtime.keys.verify(token, now) {
        Ok(claims) => {
            let exp = claims.get("exp").and_then(Value::as_i64).ok_or(Refusal::MissingClaims)?;
            Ok((Subscriber::from_claims(&claims).ok_or(Refusal::MissingClaims)?, exp))
        }
        Err(TokenError::Expired) => {
            Err(Refusal::Expired { seconds_ago: unverified_exp(token).map_or(0, |exp| now - exp) })
        }
        Err(e) => Err(Refusal::Invalid(e)),
    }
}

/// The `exp` of a token whose signature held but which expired (for the message only).
fn unverified_exp(token: &str) -> Option<i64> {
    let claims = URL_SAFE_NO_PAD.decode(token.split('.').nth(1)?).ok()?;
    serde_json::from_slice::<Map<String, Value>>(&claims).ok()?.get("exp")?.as_i64()
}

struct Channel {
    /// The hub's key, when the channel has `postgres_changes` bindings.
    key: Option<u64>,
    join_ref: Value,
    /// The topic without `realtime:`.
    name: String,
    token: String,
    exp: i64,
    /// The feed poll after which "Subscribed to PostgreSQL" is due; None once sent (or never due).
    subscribed_after: Option<u64>,
}

struct Connection {
    state: Arc<AppState>,
    serializer: Serializer,
    apikey: String,
    outbox: mpsc::Sender<Push>,
    /// By topic.
    channels: HashMap<String, Channel>,
}

impl Connection {
    async fn run(mut self, mut socket: WebSocket, mut inbox: mpsc::Receiver<Push>) {
        crate::log!(info, "realtime", "socket opened ({:?})", self.serializer);
        let mut tick = tokio::time::interval(TICK);
        'serving: loop {
            let frames = tokio::select! {
                message = socket.recv() => match message {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                    Some(Ok(Message::Text(text))) => self.handle(text.as_str()),
                    // Binary frames carry broadcasts (vsn 2.0.0), which are not served; pings are answered by axum.
                    Some(Ok(_)) => continue,
                },
                Some(push) = inbox.recv() => self.change(push),
                _ = tick.tick() => self.tick(),
            };
            for frame in frames {
                if socket.send(Message::Text(frame.encode(self.serializer).into())).await.is_err() {
                    break 'serving;
                }
            }
        }
        for channel in self.channels.values() {
            self.release(channel);
        }
        crate::log!(info, "realtime", "socket closed ({} channel(s) left)", self.channels.len());
    }

    /// Stops the feed's messages for a channel that ends.
    fn release(&self, channel: &Channel) {
        if let Some(key) = channel.key {
            self.state.realtime.hub.unregister(key);
        }
    }

    fn handle(&mut self, text: &str) -> Vec<Frame> {
        let frame = match Frame::decode(self.serializer, text) {
            Ok(frame) => frame,
            Err(e) => {
                crate::log!(info, "realtime", "ignored an unreadable frame: {e}");
                return Vec::new();
            }
        };
        match (frame.topic.as_str(), frame.event.as_str()) {
            ("phoenix", "heartbeat") => vec![Frame::reply(&frame, "ok", json!({}))],
            (_, "phx_join") => self.join(&frame),
            (topic, event) if self.channels.contains_key(topic) => match event {
                "phx_leave" => self.leave(&frame),
                "access_token" => self.access_token(&frame),
                "presence" => vec![Frame::reply(&frame, "ok", json!({}))],
                // Realtime ignores what it does not know (and broadcasts, here).
                _ => Vec::new(),
            },
            _ => vec![Frame::reply(&frame, "error", json!({ "reason": "unmatched topic" }))],
        }
    }

    fn join(&mut self, frame: &Frame) -> Vec<Frame> {
        let mut out = Vec::new();
        // Phoenix closes a channel joined again on the same topic before the new join.
        if let Some(previous) = self.channels.remove(&frame.topic) {
            self.release(&previous);
            out.push(close(&frame.topic, &previous.join_ref));
        }
        let request = match parse_join(&frame.topic, &frame.payload) {
            Ok(request) => request,
            Err(reason) => {
                out.push(Frame::reply(frame, "error", json!({ "reason": reason })));
                return out;
            }
        };
        let token = request.access_token.clone().unwrap_or_else(|| self.apikey.clone());
        let (subscriber, exp) = match verify(&self.state, &token) {
            Ok(verified) => verified,
            Err(refusal) => {
                out.push(Frame::reply(frame, "error", json!({ "reason": refusal.join_reason() })));
                return out;
            }
        };
        crate::log!(info, "realtime", "joined: {} binding(s) as {}", request.bindings.len(), subscriber.role);
        let response = ok_response(&request.bindings);
        let (key, subscribed_after) = if request.bindings.is_empty() {
            (None, None)
        } else {
            let (key, after) = self.state.realtime.hub.register(request.bindings, subscriber, self.outbox.clone());
            (Some(key), Some(after))
        };
        self.channels.insert(
            frame.topic.clone(),
            Channel { key, join_ref: frame.join_ref.clone(), name: request.channel, token, exp, subscribed_after },
        );
        out.push(Frame::reply(frame, "ok", response));
        out
    }

    fn leave(&mut self, frame: &Frame) -> Vec<Frame> {
        if let Some(channel) = self.channels.remove(&frame.topic) {
            self.release(&channel);
        }
        vec![Frame::reply(frame, "ok", json!({}))]
    }

    /// A refreshed token: Realtime re-verifies it and answers nothing unless it is refused.
    fn access_token(&mut self, frame: &Frame) -> Vec<Frame> {
        let Some(token) = frame.payload.get("access_token").and_then(Value::as_str) else { return Vec::new() };
        let Some(channel) = self.channels.get_mut(&frame.topic) else { return Vec::new() };
        if token.starts_with("sb_") || token == channel.token {
            return Vec::new();
        }
        match verify(&self.state, token) {
            Ok((subscriber, exp)) => {
                crate::log!(info, "realtime", "access token replaced: now {}", subscriber.role);
                channel.token = token.to_owned();
                channel.exp = exp;
                if let Some(key) = channel.key {
                    self.state.realtime.hub.resubscribe(key, subscriber);
                }
                Vec::new()
            }
            Err(refusal) => self.shut(&frame.topic.clone(), &refusal.message()),
        }
    }

    /// Realtime's `shutdown_response`: a `system` error, then the channel closes.
    fn shut(&mut self, topic: &str, message: &str) -> Vec<Frame> {
        let Some(channel) = self.channels.remove(topic) else { return Vec::new() };
        self.release(&channel);
        crate::log!(info, "realtime", "channel shut: {message}");
        let system = json!({ "extension": "system", "status": "error", "message": message, "channel": channel.name });
        vec![Frame::push(channel.join_ref.clone(), topic, "system", system), close(topic, &channel.join_ref)]
    }

    fn tick(&mut self) -> Vec<Frame> {
        let (now, polls_done) = (now(), self.state.realtime.hub.polls_done());
        let mut out = Vec::new();
        let mut expired = Vec::new();
        for (topic, channel) in &mut self.channels {
            if channel.exp <= now {
                expired.push((topic.clone(), Refusal::Expired { seconds_ago: now - channel.exp }.message()));
            } else if channel.subscribed_after.is_some_and(|after| polls_done >= after) {
                channel.subscribed_after = None;
                out.push(subscribed(topic, channel));
            }
        }
        for (topic, message) in expired {
            out.extend(self.shut(&topic, &message));
        }
        out
    }

    fn change(&mut self, push: Push) -> Vec<Frame> {
        let Some((topic, channel)) = self.channels.iter_mut().find(|(_, c)| c.key == Some(push.channel)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        // A change can only come from a poll that makes the channel subscribed: say so first.
        if channel.subscribed_after.take().is_some() {
            out.push(subscribed(topic, channel));
        }
        out.push(Frame::push(Value::Null, topic, "postgres_changes", push.payload));
        out
    }
}

fn subscribed(topic: &str, channel: &Channel) -> Frame {
    let payload = json!({ "extension": "postgres_changes", "status": "ok", "message": "Subscribed to PostgreSQL",
                          "channel": channel.name });
    Frame::push(channel.join_ref.clone(), topic, "system", payload)
}

/// `phx_close`, as Phoenix sends it when a channel ends: `ref` = `join_ref`.
fn close(topic: &str, join_ref: &Value) -> Frame {
    Frame { reference: join_ref.clone(), ..Frame::push(join_ref.clone(), topic, "phx_close", json!({})) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_read_like_realtime() {
        assert_eq!(
            Refusal::Expired { seconds_ago: 5 }.join_reason(),
            "InvalidJWTExpiration: Token has expired 5 seconds ago"
        );
        assert_eq!(
            Refusal::Invalid(TokenError::Malformed).join_reason(),
            "Unauthorized: The token provided is not a valid JWT"
        );
        assert!(Refusal::Invalid(TokenError::BadSignature).join_reason().starts_with("Unauthorized: "));
        assert_eq!(Refusal::MissingClaims.message(), "Fields `role` and `exp` are required in JWT");
    }

    #[test]
    fn an_expired_tokens_exp_is_read_for_the_message() {
        let claims = URL_SAFE_NO_PAD.encode(br#"{"exp":1700000000,"role":"authenticated"}"#);
        assert_eq!(unverified_exp(&format!("e30.{claims}.sig")), Some(1_700_000_000));
        assert_eq!(unverified_exp("garbage"), None);
    }
}
