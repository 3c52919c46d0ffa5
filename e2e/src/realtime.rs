//! A Realtime client as the dashboard has one: a socket on `/realtime/v1/websocket` speaking realtime-js's
//! protocol (vsn 2.0.0). Its users and their tokens are `crate::users`'.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::Stack;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One Realtime socket (vsn 2.0.0, the anon key as supabase-js sends it).
pub struct RealtimeClient {
    socket: Socket,
    refs: u64,
}

impl RealtimeClient {
    pub async fn connect(stack: &Stack) -> RealtimeClient {
        let url = format!(
            "{}/realtime/v1/websocket?apikey={}&vsn=2.0.0",
            stack.supabase_url.replacen("http://", "ws://", 1),
            stack.anon_key
        );
        let (socket, _) = tokio_tungstenite::connect_async(url).await.expect("the Realtime stand-in upgrades");
        RealtimeClient { socket, refs: 0 }
    }

    async fn send(&mut self, frame: Value) {
        self.socket.send(Message::text(frame.to_string())).await.expect("socket open");
    }

    /// The next frame (a vsn 2.0.0 array), or None after `within`.
    pub async fn next(&mut self, within: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let message = tokio::time::timeout_at(deadline, self.socket.next()).await.ok()?;
            match message.expect("socket open").expect("a frame") {
                Message::Text(text) => return Some(serde_json::from_str(text.as_str()).expect("JSON")),
                _ => continue,
            }
        }
    }

    /// Joins `realtime:<channel>` as realtime-js does (its defaults, `postgres_changes` = `bindings`); returns
    /// the reply's payload (`{"status", "response"}`).
    pub async fn join(&mut self, channel: &str, bindings: Value, token: &str) -> Value {
        self.refs += 1;
        let r = self.refs.to_string();
        let topic = format!("realtime:{channel}");
        self.send(json!([r, r, topic, "phx_join", {
            "config": {"broadcast": {"ack": false, "self": false}, "presence": {"key": "", "enabled": false},
                       "postgres_changes": bindings, "private": false},
            "access_token": token}]))
            .await;
        loop {
            let frame = self.next(Duration::from_secs(5)).await.expect("a join reply within 5 s");
            if frame[1] == json!(r) && frame[3] == "phx_reply" {
                return frame[4].clone();
            }
        }
    }

    /// Waits for "Subscribed to PostgreSQL": from then on every committed change reaches the channel.
    pub async fn subscribed(&mut self) {
        loop {
            let frame = self.next(Duration::from_secs(10)).await.expect("Subscribed to PostgreSQL within 10 s");
            if frame[3] == "system" && frame[4]["message"] == "Subscribed to PostgreSQL" {
                return;
            }
        }
    }

    /// The next `postgres_changes` payload (`{"ids", "data"}`) within `within`, skipping other frames.
    pub async fn change(&mut self, within: Duration) -> Option<Value> {
        let deadline = Instant::now() + within;
        loop {
            let frame = self.next(deadline.saturating_duration_since(Instant::now())).await?;
            if frame[3] == "postgres_changes" {
                return Some(frame[4].clone());
            }
        }
    }
}
