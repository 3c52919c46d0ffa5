//! Twilio Media Streams messages (JSON text frames on the stream's WebSocket), parsed into typed values.
//!
//! Everything here is outside input: a malformed frame is a [`MediaError`], never a panic, and a payload is
//! decoded only up to [`MAX_PAYLOAD`] bytes. Twilio sends numbers as strings (`"chunk": "1"`); plain numbers
//! are accepted too.

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The largest decoded payload accepted: one second of µ-law at 8 kHz (Twilio sends 20 ms, 160 bytes).
pub const MAX_PAYLOAD: usize = 8000;

/// Which side of the call a frame carries, from Twilio's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Track {
    /// The callee (the clinic): what is transcribed.
    Inbound,
    /// What Twilio plays into the call: replayed keys, VAPI's voice and key tones.
    Outbound,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaFormat {
    pub encoding: String,
    pub sample_rate: u32,
    pub channels: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    pub stream_sid: String,
    pub call_sid: String,
    pub tracks: Vec<String>,
    /// The TwiML `<Parameter>`s.
    pub custom_parameters: BTreeMap<String, String>,
    pub media_format: MediaFormat,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub track: Track,
    /// Per track, from 1.
    pub chunk: u64,
    /// Nominal ms since the stream started: the audio clock.
    pub timestamp_ms: u64,
    /// Raw µ-law.
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Connected,
    Start(Start),
    Media(Media),
    Stop,
    /// Bidirectional streams only; parsed so that they are not errors.
    Mark {
        name: String,
    },
    Dtmf {
        digit: String,
    },
    /// An event this code does not know.
    Other {
        event: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    #[error("not a JSON object with an event")]
    NotJson,
    #[error("{event}: missing or malformed `{field}`")]
    Field { event: &'static str, field: &'static str },
    #[error("media payload over {MAX_PAYLOAD} bytes")]
    TooLarge,
    #[error("media payload is not base64")]
    BadPayload,
}

#[derive(Deserialize)]
struct Envelope {
    event: String,
    #[serde(default)]
    start: Option<Value>,
    #[serde(default)]
    media: Option<Value>,
    #[serde(default)]
    mark: Option<Value>,
    #[serde(default)]
    dtmf: Option<Value>,
}

/// Parses one text frame.
pub fn parse(text: &str) -> Result<Message, MediaError> {
    let envelope: Envelope = serde_json::from_str(text).map_err(|_| MediaError::NotJson)?;
    match envelope.event.as_str() {
        "connected" => Ok(Message::Connected),
        "stop" => Ok(Message::Stop),
        "start" => parse_start(envelope.start.as_ref()).map(Message::Start),
        "media" => parse_media(envelope.media.as_ref()).map(Message::Media),
        "mark" => {
            let name =
                string(envelope.mark.as_ref(), "name").ok_or(MediaError::Field { event: "mark", field: "name" })?;
            Ok(Message::Mark { name })
        }
        "dtmf" => {
            let digit =
                string(envelope.dtmf.as_ref(), "digit").ok_or(MediaError::Field { event: "dtmf", field: "digit" })?;
            Ok(Message::Dtmf { digit })
        }
        other => Ok(Message::Other { event: other.to_owned() }),
    }
}

fn parse_start(start: Option<&Value>) -> Result<Start, MediaError> {
    let field = |field| MediaError::Field { event: "start", field };
    let stream_sid = string(start, "streamSid").ok_or(field("streamSid"))?;
    let call_sid = string(start, "callSid").ok_or(field("callSid"))?;
    let tracks = match start.and_then(|s| s.get("tracks")) {
        None => Vec::new(),
        Some(Value::Array(items)) => {
            items.iter().map(|t| t.as_str().map(str::to_owned)).collect::<Option<_>>().ok_or(field("tracks"))?
        }
        Some(_) => return Err(field("tracks")),
    };
    let custom_parameters = match start.and_then(|s| s.get("customParameters")) {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
            .collect::<Option<_>>()
            .ok_or(field("customParameters"))?,
        Some(_) => return Err(field("customParameters")),
    };
    let format = start.and_then(|s| s.get("mediaFormat"));
    let media_format = MediaFormat {
        encoding: string(format, "encoding").unwrap_or_default(),
        sample_rate: number(format, "sampleRate").and_then(|n| u32::try_from(n).ok()).unwrap_or(0),
        channels: number(format, "channels").and_then(|n| u32::try_from(n).ok()).unwrap_or(0),
    };
    Ok(Start { stream_sid, call_sid, tracks, custom_parameters, media_format })
}

fn parse_media(media: Option<&Value>) -> Result<Media, MediaError> {
    let field = |field| MediaError::Field { event: "media", field };
    let track = match string(media, "track").as_deref() {
        Some("inbound" | "inbound_track") => Track::Inbound,
        Some("outbound" | "outbound_track") => Track::Outbound,
        _ => return Err(field("track")),
    };
    let chunk = number(media, "chunk").ok_or(field("chunk"))?;
    let timestamp_ms = number(media, "timestamp").ok_or(field("timestamp"))?;
    let encoded = media.and_then(|m| m.get("payload")).and_then(Value::as_str).ok_or(field("payload"))?;
    if encoded.len() > MAX_PAYLOAD.div_ceil(3) * 4 {
        return Err(MediaError::TooLarge);
    }
    let payload = base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|_| MediaError::BadPayload)?;
    Ok(Media { track, chunk, timestamp_ms, payload })
}

fn string(object: Option<&Value>, key: &str) -> Option<String> {
    object?.get(key)?.as_str().map(str::to_owned)
}

/// A non-negative integer sent as a string (Twilio's way) or a number.
fn number(object: Option<&Value>, key: &str) -> Option<u64> {
    match object?.get(key)? {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,200}", chunk in "\\PC{0,8}", payload in "[A-Za-z0-9+/=]{0,40}") {
            let _ = parse(&text);
            let _ = parse(&format!(r#"{{"event":"media","media":{{"track":"inbound","chunk":"{chunk}","timestamp":"{chunk}","payload":"{payload}"}}}}"#));
            let _ = crate::learning::stt::SpeechToText::parse(&crate::learning::stt::Deepgram::default(), &text);
        }
    }

    #[test]
    fn parses_twilios_messages() {
        assert_eq!(parse(r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#), Ok(Message::Connected));
        let start = r#"{"event":"start","sequenceNumber":"1","streamSid":"MZ1","start":{"streamSid":"MZ1",
            "accountSid":"AC1","callSid":"CA1","tracks":["inbound","outbound"],
            "customParameters":{"session":"6f9619ff-8b86-d011-b42d-00c04fc964ff","token":"abc"},
            "mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}"#;
        let Ok(Message::Start(s)) = parse(start) else { panic!("not a start") };
        assert_eq!((s.stream_sid.as_str(), s.call_sid.as_str()), ("MZ1", "CA1"));
        assert_eq!(s.tracks, ["inbound", "outbound"]);
        assert_eq!(s.custom_parameters["token"], "abc");
        assert_eq!(s.media_format, MediaFormat { encoding: "audio/x-mulaw".into(), sample_rate: 8000, channels: 1 });
        let media = r#"{"event":"media","sequenceNumber":"3","media":{"track":"outbound","chunk":"2",
            "timestamp":"20","payload":"AAEC/w=="},"streamSid":"MZ1"}"#;
        assert_eq!(
            parse(media),
            Ok(Message::Media(Media {
                track: Track::Outbound,
                chunk: 2,
                timestamp_ms: 20,
                payload: vec![0, 1, 2, 255]
            }))
        );
        assert_eq!(parse(r#"{"event":"stop","stop":{"callSid":"CA1"}}"#), Ok(Message::Stop));
        assert_eq!(parse(r#"{"event":"mark","mark":{"name":"m"}}"#), Ok(Message::Mark { name: "m".into() }));
        assert_eq!(
            parse(r#"{"event":"dtmf","dtmf":{"track":"inbound_track","digit":"5"}}"#),
            Ok(Message::Dtmf { digit: "5".into() })
        );
        assert_eq!(parse(r#"{"event":"clear"}"#), Ok(Message::Other { event: "clear".into() }));
    }

    #[test]
    fn malformed_frames_are_errors() {
        let media = |m: &str| parse(&format!(r#"{{"event":"media","media":{m}}}"#));
        assert_eq!(parse("not json"), Err(MediaError::NotJson));
        assert_eq!(parse(r#"{"event": 3}"#), Err(MediaError::NotJson));
        assert_eq!(parse("[]"), Err(MediaError::NotJson));
        assert!(matches!(parse(r#"{"event":"start"}"#), Err(MediaError::Field { field: "streamSid", .. })));
        assert!(matches!(
            parse(r#"{"event":"start","start":{"streamSid":"a","callSid":"b","customParameters":{"n":1}}}"#),
            Err(MediaError::Field { field: "customParameters", .. })
        ));
        assert!(matches!(parse(r#"{"event":"media"}"#), Err(MediaError::Field { field: "track", .. })));
        assert!(matches!(
            media(r#"{"track":"sideways","chunk":"1","timestamp":"0","payload":""}"#),
            Err(MediaError::Field { field: "track", .. })
        ));
        assert!(matches!(
            media(r#"{"track":"inbound","chunk":"-1","timestamp":"0","payload":""}"#),
            Err(MediaError::Field { field: "chunk", .. })
        ));
        assert!(matches!(
            media(r#"{"track":"inbound","chunk":"1","timestamp":"soon","payload":""}"#),
            Err(MediaError::Field { field: "timestamp", .. })
        ));
        assert_eq!(
            media(r#"{"track":"inbound","chunk":"1","timestamp":"0","payload":"!!"}"#),
            Err(MediaError::BadPayload)
        );
        let huge = "A".repeat(MAX_PAYLOAD * 2);
        assert_eq!(
            media(&format!(r#"{{"track":"inbound","chunk":"1","timestamp":"0","payload":"{huge}"}}"#)),
            Err(MediaError::TooLarge)
        );
    }
}
