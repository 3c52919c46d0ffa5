//! A Twilio Media Streams client for tests and the bench: opens the Worker's stream route as Twilio
//! does (the upgrade signed over the stream URL) and sends Twilio's messages.

use base64::Engine;
use futures_util::SinkExt;
use outcall_core::dispatch::stream_url;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How the upgrade is signed.
pub enum Signed<'a> {
    Not,
    With(&'a str),
    /// `X-Twilio-Signature` as Twilio computes it with this auth token.
    By(&'a str),
}

/// Opens `GET /twilio/stream`; an upgrade the Worker refuses is `Err` with its HTTP status.
pub async fn open(worker_url: &str, signed: Signed<'_>) -> Result<Socket, u16> {
    let url = stream_url(worker_url);
    let mut request = url.as_str().into_client_request().expect("a WebSocket URL");
    let signature = match signed {
        Signed::Not => None,
        Signed::With(given) => Some(given.to_owned()),
        Signed::By(auth_token) => Some(outcall_core::twilio::signature(auth_token, &url, &[])),
    };
    if let Some(signature) = signature {
        request.headers_mut().insert("X-Twilio-Signature", signature.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(other) => panic!("the stream route did not answer: {other}"),
    }
}

/// Twilio's `connected` and `start` messages for a call's session and token.
pub async fn start(socket: &mut Socket, session: &str, token: &str) {
    let start = json!({
        "event": "start", "sequenceNumber": "1", "streamSid": "MZ00000000000000000000000000000000",
        "start": {
            "streamSid": "MZ00000000000000000000000000000000", "accountSid": "AC00000000000000000000000000000000",
            "callSid": "CA00000000000000000000000000000000", "tracks": ["inbound", "outbound"],
            "customParameters": {"session": session, "token": token},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
        }
    });
    send(socket, json!({"event": "connected", "protocol": "Call", "version": "1.0.0"})).await;
    send(socket, start).await;
}

/// One 20 ms `media` message of the inbound track (`chunk` from 1).
pub fn media(chunk: u64, payload: &[u8]) -> Value {
    json!({
        "event": "media", "sequenceNumber": (chunk + 1).to_string(), "streamSid": "MZ00000000000000000000000000000000",
        "media": {"track": "inbound", "chunk": chunk.to_string(), "timestamp": ((chunk - 1) * 20).to_string(),
                  "payload": base64::engine::general_purpose::STANDARD.encode(payload)}
    })
}

pub async fn send(socket: &mut Socket, message: Value) {
    // (the Worker may already have closed a refused stream; what it did is checked elsewhere)
    let _ = socket.send(Message::text(message.to_string())).await;
}
