//! Streaming speech-to-text, as far as it is pure: the connection URL and auth header, the control messages,
//! and the provider's text messages parsed into [`SttEvent`]s. The Worker owns the socket. Another provider
//! (e.g. Workers AI) is one more implementation of [`SpeechToText`].
//!
//! Times in events are milliseconds of audio *sent on that connection* (bytes / 8 for µ-law at 8 kHz); the
//! listener maps them back to the audio clock.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SttEvent {
    /// A final transcript segment (empty ones are not reported).
    Final { start_ms: u64, end_ms: u64, text: String },
    /// Voice-like audio began.
    SpeechStarted { at_ms: u64 },
    /// A gap in the words after `at_ms` (the last word's end).
    UtteranceEnd { at_ms: u64 },
    /// The provider flushed everything after the close message; it closes next.
    Closed,
    /// The provider reported an error; the connection is not to be trusted any more.
    Error { message: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SttError {
    #[error("not a JSON message from the speech-to-text service")]
    Malformed,
}

/// One streaming speech-to-text provider's protocol.
pub trait SpeechToText {
    /// The WebSocket URL: `base` (the provider's listen URL, configurable for the sandbox) with the query
    /// asking for µ-law 8 kHz mono and the events the listener needs, labelled with `tag` (the run's id:
    /// never personal data) where the provider keeps one, so a connection can be traced to its run.
    fn url(&self, base: &str, tag: &str) -> String;
    /// The upgrade request's auth header (name, value).
    fn auth_header(&self, key: &str) -> (&'static str, String);
    /// The events one text message carries (unknown messages carry none).
    fn parse(&self, text: &str) -> Result<Vec<SttEvent>, SttError>;
    /// The text message that keeps an idle connection open.
    fn keep_alive(&self) -> String;
    /// The text message asking the provider to flush and close.
    fn close_stream(&self) -> String;
}

/// Deepgram's live API (`/v1/listen`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deepgram {
    pub model: String,
}

impl Default for Deepgram {
    fn default() -> Self {
        Self { model: "nova-3".into() }
    }
}

impl SpeechToText for Deepgram {
    fn url(&self, base: &str, tag: &str) -> String {
        let separator = if base.contains('?') { '&' } else { '?' };
        let encode = |text: &str| form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
        format!(
            "{base}{separator}model={}&encoding=mulaw&sample_rate=8000&channels=1&interim_results=true\
             &punctuate=true&smart_format=true&endpointing=300&utterance_end_ms=1000&vad_events=true&tag={}",
            encode(&self.model),
            encode(tag)
        )
    }

    fn auth_header(&self, key: &str) -> (&'static str, String) {
        ("Authorization", format!("Token {key}"))
    }

    fn parse(&self, text: &str) -> Result<Vec<SttEvent>, SttError> {
        let message: Value = serde_json::from_str(text).map_err(|_| SttError::Malformed)?;
        let kind = message.get("type").and_then(Value::as_str).ok_or(SttError::Malformed)?;
        Ok(match kind {
            "Results" => {
                let text = message
                    .pointer("/channel/alternatives/0/transcript")
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .unwrap_or_default();
                let is_final = message.get("is_final").and_then(Value::as_bool).unwrap_or(false);
                match (is_final && !text.is_empty(), seconds(&message, "start"), seconds(&message, "duration")) {
                    (true, Some(start_ms), Some(duration_ms)) => vec![SttEvent::Final {
                        start_ms,
                        end_ms: start_ms.saturating_add(duration_ms),
                        text: text.to_owned(),
                    }],
                    _ => Vec::new(),
                }
            }
            "SpeechStarted" => {
                seconds(&message, "timestamp").map(|at_ms| SttEvent::SpeechStarted { at_ms }).into_iter().collect()
            }
            "UtteranceEnd" => {
                seconds(&message, "last_word_end").map(|at_ms| SttEvent::UtteranceEnd { at_ms }).into_iter().collect()
            }
            "Metadata" => vec![SttEvent::Closed],
            "Error" => {
                let message = ["description", "message", "variant"]
                    .iter()
                    .find_map(|k| message.get(*k).and_then(Value::as_str))
                    .unwrap_or("unspecified error");
                vec![SttEvent::Error { message: message.chars().take(200).collect() }]
            }
            _ => Vec::new(),
        })
    }

    fn keep_alive(&self) -> String {
        r#"{"type":"KeepAlive"}"#.into()
    }

    fn close_stream(&self) -> String {
        r#"{"type":"CloseStream"}"#.into()
    }
}

/// A non-negative, finite number of seconds as whole ms (at most a day: anything else is not a time).
fn seconds(message: &Value, key: &str) -> Option<u64> {
    let s = message.get(key)?.as_f64()?;
    (s.is_finite() && (0.0..=86_400.0).contains(&s)).then(|| (s * 1000.0).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_asks_for_mulaw_and_events() {
        let d = Deepgram::default();
        let url = d.url("wss://api.deepgram.com/v1/listen", "run-1");
        assert_eq!(
            url,
            "wss://api.deepgram.com/v1/listen?model=nova-3&encoding=mulaw&sample_rate=8000&channels=1\
             &interim_results=true&punctuate=true&smart_format=true&endpointing=300&utterance_end_ms=1000&vad_events=true\
             &tag=run-1"
        );
        assert!(d
            .url("ws://127.0.0.1:9/v1/listen?x=1", "run-1")
            .starts_with("ws://127.0.0.1:9/v1/listen?x=1&model=nova-3&"));
        assert_eq!(d.auth_header("k3y"), ("Authorization", "Token k3y".into()));
        assert_eq!(d.keep_alive(), r#"{"type":"KeepAlive"}"#);
        assert_eq!(d.close_stream(), r#"{"type":"CloseStream"}"#);
    }

    #[test]
    fn parses_deepgrams_messages() {
        let d = Deepgram::default();
        let result = |is_final: bool, transcript: &str| {
            format!(
                r#"{{"type":"Results","channel_index":[0,1],"duration":1.5,"start":2.25,"is_final":{is_final},
                "speech_final":true,"channel":{{"alternatives":[{{"transcript":"{transcript}","confidence":0.9,
                "words":[]}}]}},"metadata":{{"request_id":"r"}}}}"#
            )
        };
        assert_eq!(
            d.parse(&result(true, "For billing, press 2.")),
            Ok(vec![SttEvent::Final { start_ms: 2250, end_ms: 3750, text: "For billing, press 2.".into() }])
        );
        assert_eq!(d.parse(&result(false, "For billing")), Ok(vec![]));
        assert_eq!(d.parse(&result(true, "  ")), Ok(vec![]));
        assert_eq!(
            d.parse(r#"{"type":"SpeechStarted","channel":[0],"timestamp":0.42}"#),
            Ok(vec![SttEvent::SpeechStarted { at_ms: 420 }])
        );
        assert_eq!(
            d.parse(r#"{"type":"UtteranceEnd","channel":[0,1],"last_word_end":3.1}"#),
            Ok(vec![SttEvent::UtteranceEnd { at_ms: 3100 }])
        );
        assert_eq!(d.parse(r#"{"type":"Metadata","request_id":"r","duration":12.0}"#), Ok(vec![SttEvent::Closed]));
        assert_eq!(
            d.parse(r#"{"type":"Error","description":"bad audio","variant":"DATA-0000"}"#),
            Ok(vec![SttEvent::Error { message: "bad audio".into() }])
        );
        assert_eq!(d.parse(r#"{"type":"Surprise"}"#), Ok(vec![]));
    }

    #[test]
    fn malformed_messages_are_errors_or_nothing() {
        let d = Deepgram::default();
        assert_eq!(d.parse("nope"), Err(SttError::Malformed));
        assert_eq!(d.parse(r#"{"kind":"Results"}"#), Err(SttError::Malformed));
        assert_eq!(d.parse(r#"{"type":"Results","is_final":true,"start":-1,"duration":1,"channel":{"alternatives":[{"transcript":"x"}]}}"#), Ok(vec![]));
        assert_eq!(d.parse(r#"{"type":"SpeechStarted","timestamp":"soon"}"#), Ok(vec![]));
        assert_eq!(d.parse(r#"{"type":"Results","is_final":true,"start":1e300,"duration":1}"#), Ok(vec![]));
    }
}
