//! The STT stand-in (`/v1/listen`) over a real WebSocket, as the Worker's
//! listener talks to it: µ-law in 20 ms frames, Deepgram's messages back.

mod common;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use outcall_sandbox::config::DEFAULT_STT_KEY;
use outcall_sandbox::voice::{self, silence, speak};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The query the Worker opens with (plan §3).
const QUERY: &str = "model=nova-3&encoding=mulaw&sample_rate=8000&channels=1&interim_results=true&punctuate=true&smart_format=true&endpointing=300&utterance_end_ms=1000&vad_events=true";
const SENTENCE: &str = "thank you for calling, for appointments press 1";

enum Auth<'a> {
    Header(&'a str),
    Subprotocol(&'a str),
    None,
}

async fn connect(env: &common::Env, query: &str, auth: Auth<'_>) -> Result<Socket, Error> {
    let url = format!("{}/v1/listen?{query}", env.sandbox.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request()?;
    let headers = request.headers_mut();
    match auth {
        Auth::Header(key) => headers.insert("authorization", HeaderValue::from_str(&format!("Token {key}")).unwrap()),
        Auth::Subprotocol(key) => {
            headers.insert("sec-websocket-protocol", HeaderValue::from_str(&format!("token, {key}")).unwrap())
        }
        Auth::None => None,
    };
    tokio_tungstenite::connect_async(request).await.map(|(socket, _)| socket)
}

async fn open(env: &common::Env) -> Socket {
    connect(env, QUERY, Auth::Header(DEFAULT_STT_KEY)).await.expect("upgrade")
}

/// The HTTP status of a refused upgrade.
async fn refused(env: &common::Env, query: &str, auth: Auth<'_>) -> u16 {
    match connect(env, query, auth).await {
        Err(Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("upgraded"),
    }
}

/// Sends audio as Twilio frames it: 160 bytes (20 ms) at a time.
async fn send_audio(socket: &mut Socket, audio: &[u8]) {
    for frame in audio.chunks(160) {
        socket.send(Message::binary(frame.to_vec())).await.unwrap();
    }
}

async fn send_control(socket: &mut Socket, kind: &str) {
    socket.send(Message::text(json!({ "type": kind }).to_string())).await.unwrap();
}

/// Every message until the server closes: the JSON messages, the close code and reason.
async fn until_close(socket: &mut Socket) -> (Vec<Value>, Option<(u16, String)>) {
    let mut messages = Vec::new();
    let read = async {
        while let Some(message) = socket.next().await {
            match message.unwrap() {
                Message::Text(text) => messages.push(serde_json::from_str(text.as_str()).unwrap()),
                Message::Close(frame) => return frame.map(|f| (u16::from(f.code), f.reason.to_string())),
                _ => {}
            }
        }
        None
    };
    let close = tokio::time::timeout(Duration::from_secs(10), read).await.expect("the server closes");
    (messages, close)
}

fn of_type<'a>(messages: &'a [Value], kind: &str) -> Vec<&'a Value> {
    messages.iter().filter(|m| m["type"] == kind).collect()
}

fn seconds(samples: usize) -> f64 {
    samples as f64 / 8000.0
}

#[tokio::test]
async fn transcribes_what_it_receives_with_audio_times() {
    let env = common::start(common::good_assistant()).await;
    let mut socket = open(&env).await;
    let lead = silence(500);
    let speech = speak(SENTENCE);
    let mut audio = lead.clone();
    audio.extend(&speech);
    audio.extend(silence(1000));
    send_audio(&mut socket, &audio).await;
    send_control(&mut socket, "CloseStream").await;
    let (messages, close) = until_close(&mut socket).await;
    assert_eq!(close, Some((1000, String::new())));

    let kinds: Vec<&str> = messages.iter().map(|m| m["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["SpeechStarted", "Results", "UtteranceEnd", "Metadata"]);
    let (started, results, end, metadata) = (&messages[0], &messages[1], &messages[2], &messages[3]);
    assert_eq!(started["timestamp"], json!(seconds(lead.len())));
    assert_eq!(results["is_final"], true);
    assert_eq!(results["speech_final"], true);
    assert_eq!(results["channel_index"], json!([0, 1]));
    assert_eq!(results["start"], json!(seconds(lead.len())));
    assert_eq!(results["duration"], json!(seconds(speech.len())));
    let alternative = &results["channel"]["alternatives"][0];
    assert_eq!(alternative["transcript"], SENTENCE);
    let words = alternative["words"].as_array().unwrap();
    assert_eq!(words.len(), 8);
    assert_eq!((&words[3]["word"], &words[3]["punctuated_word"]), (&json!("calling"), &json!("calling,")));
    assert_eq!(words[0]["start"], json!(seconds(lead.len())));
    assert_eq!(words[7]["end"], json!(seconds(lead.len() + speech.len())));
    assert_eq!(end["last_word_end"], json!(seconds(lead.len() + speech.len())));
    let id = metadata["request_id"].as_str().unwrap();
    assert_eq!(results["metadata"]["request_id"], id);
    assert_eq!(metadata["duration"], json!(seconds(audio.len())));
    assert_eq!(metadata["channels"], 1);

    let connections = env.inspect("stt").await;
    let connection = &connections[0];
    assert_eq!(connection["id"], id);
    assert_eq!(connection["status"], 101);
    assert_eq!(connection["auth"], "authorization");
    assert_eq!(connection["query"]["encoding"], "mulaw");
    assert_eq!(connection["query"]["utterance_end_ms"], "1000");
    assert_eq!(connection["audio_bytes"], audio.len());
    assert_eq!(connection["audio_frames"], audio.len().div_ceil(160));
    assert_eq!(connection["close_stream"], true);
    assert_eq!(connection["close_code"], 1000);
    assert_eq!(connection["closed_by"], "server");
    assert_eq!(connection["transcripts"][0]["text"], SENTENCE);
    assert_eq!(connection["transcripts"][0]["start"], json!(0.5));
    assert!(!connection.to_string().contains(DEFAULT_STT_KEY));
}

#[tokio::test]
async fn utterances_get_their_own_results_and_times_count_from_this_connection() {
    let env = common::start(common::good_assistant()).await;
    let mut socket = open(&env).await;
    let mut audio = speak("hello");
    audio.extend(silence(700)); // ends the utterance, not the 1000 ms word gap
    let second_at = audio.len();
    audio.extend(speak("for billing press 2"));
    audio.extend(silence(700));
    send_audio(&mut socket, &audio).await;
    send_control(&mut socket, "CloseStream").await;
    let (messages, close) = until_close(&mut socket).await;
    assert_eq!(close.map(|c| c.0), Some(1000));
    let results = of_type(&messages, "Results");
    let texts: Vec<&Value> = results.iter().map(|r| &r["channel"]["alternatives"][0]["transcript"]).collect();
    assert_eq!(texts, [&json!("hello"), &json!("for billing press 2")]);
    assert_eq!(results[1]["start"], json!(seconds(second_at)));
    assert_eq!(of_type(&messages, "SpeechStarted").len(), 2);
    // 700 ms between the utterances is under utterance_end_ms: one UtteranceEnd, at the close.
    let ends = of_type(&messages, "UtteranceEnd");
    assert_eq!(ends.len(), 1);
    assert_eq!(ends[0]["last_word_end"], json!(seconds(second_at + 19 * 480)));
}

#[tokio::test]
async fn the_key_is_required_by_header_or_subprotocol() {
    let env = common::start(common::good_assistant()).await;
    assert_eq!(refused(&env, QUERY, Auth::Header("wrong-key")).await, 401);
    assert_eq!(refused(&env, QUERY, Auth::Subprotocol("wrong-key")).await, 401);
    assert_eq!(refused(&env, QUERY, Auth::None).await, 401);
    // The audio format is checked after the key.
    assert_eq!(refused(&env, "encoding=linear16&sample_rate=8000", Auth::Header(DEFAULT_STT_KEY)).await, 400);
    assert_eq!(refused(&env, "encoding=mulaw", Auth::Header(DEFAULT_STT_KEY)).await, 400);

    let mut socket = connect(&env, QUERY, Auth::Subprotocol(DEFAULT_STT_KEY)).await.expect("subprotocol key");
    send_control(&mut socket, "CloseStream").await;
    let (messages, close) = until_close(&mut socket).await;
    assert_eq!(of_type(&messages, "Metadata").len(), 1);
    assert_eq!(close.map(|c| c.0), Some(1000));

    let connections = env.inspect("stt").await;
    let statuses: Vec<&Value> = connections.as_array().unwrap().iter().map(|c| &c["status"]).collect();
    assert_eq!(statuses, [&json!(401), &json!(401), &json!(401), &json!(400), &json!(400), &json!(101)]);
    assert_eq!(connections[5]["auth"], "subprotocol");
    assert_eq!(connections[2]["auth"], Value::Null);
}

#[tokio::test]
async fn keep_alive_keeps_it_open_and_silence_closes_it() {
    let env = common::start(common::good_assistant()).await;
    // At time scale 0 the idle timeout is its floor, 200 ms real.
    let mut socket = open(&env).await;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(60)).await;
        send_control(&mut socket, "KeepAlive").await;
    }
    send_control(&mut socket, "CloseStream").await;
    let (messages, close) = until_close(&mut socket).await;
    let kinds: Vec<&Value> = messages.iter().map(|m| &m["type"]).collect();
    assert_eq!(kinds, [&json!("Metadata")], "KeepAlive gets no answer");
    assert_eq!(close.map(|c| c.0), Some(1000));

    let mut socket = open(&env).await;
    send_audio(&mut socket, &speak("hi")).await;
    let (_, close) = until_close(&mut socket).await;
    assert_eq!(close, Some((1011, "NET-0001".to_string())));

    let connections = env.inspect("stt").await;
    assert_eq!(connections[0]["keep_alives"], 10);
    assert_eq!(connections[1]["close_code"], 1011);
    assert_eq!(connections[1]["close_reason"], "NET-0001");
}

#[tokio::test]
async fn reordered_frames_give_no_matching_transcript() {
    let env = common::start(common::good_assistant()).await;
    let mut socket = open(&env).await;
    let speech = speak(SENTENCE);
    let frames: Vec<&[u8]> = speech.chunks(160).collect();
    // Each pair of 20 ms frames swapped, as a listener that reorders would send them.
    let swapped: Vec<u8> = frames.chunks(2).flat_map(|pair| pair.iter().rev().flat_map(|f| f.to_vec())).collect();
    assert_eq!(swapped.len(), speech.len());
    send_audio(&mut socket, &swapped).await;
    send_audio(&mut socket, &silence(1000)).await;
    send_control(&mut socket, "CloseStream").await;
    let (messages, _) = until_close(&mut socket).await;
    for results in of_type(&messages, "Results") {
        let heard = results["channel"]["alternatives"][0]["transcript"].as_str().unwrap();
        assert!(!heard.contains("calling") && !heard.contains("press 1"), "{heard:?}");
    }
    // The decoder is the only source: the same audio decodes the same offline.
    let offline: Vec<String> = voice::transcribe(&swapped).into_iter().map(|u| u.text).collect();
    let sent = env.inspect("stt").await[0]["transcripts"].clone();
    let sent: Vec<&str> = sent.as_array().unwrap().iter().map(|t| t["text"].as_str().unwrap()).collect();
    assert_eq!(sent, offline.iter().map(|t| t.trim()).collect::<Vec<_>>());
}

#[tokio::test]
async fn an_unknown_text_frame_closes_1008() {
    let env = common::start(common::good_assistant()).await;
    let mut socket = open(&env).await;
    socket.send(Message::text("{\"type\":\"Transcribe\"}")).await.unwrap();
    let (_, close) = until_close(&mut socket).await;
    assert_eq!(close, Some((1008, "DATA-0000".to_string())));
}

#[tokio::test]
async fn the_fault_switch_refuses_or_drops_connections() {
    let env = common::start(common::good_assistant()).await;
    let (status, body) = env.control("stt/fault", json!({ "refuse": true })).await;
    assert_eq!((status, &body["fault"]["refuse"]), (200, &json!(true)));
    assert_eq!(refused(&env, QUERY, Auth::Header(DEFAULT_STT_KEY)).await, 503);

    env.control("stt/fault", json!({ "close_after_ms": 1000 })).await;
    let mut socket = open(&env).await;
    let mut audio = speak(SENTENCE);
    audio.extend(silence(1000));
    // The server may close while frames are still being sent.
    for frame in audio.chunks(160) {
        if socket.send(Message::binary(frame.to_vec())).await.is_err() {
            break;
        }
    }
    let (messages, close) = until_close(&mut socket).await;
    assert!(of_type(&messages, "Results").is_empty());
    assert_eq!(close, Some((1011, "NET-0000".to_string())));

    let (status, _) = env.control("stt/fault", json!({ "bogus": 1 })).await;
    assert_eq!(status, 400);
    env.control("stt/fault", json!({})).await;
    let connections = env.inspect("stt").await;
    assert_eq!(connections[0]["fault"], "refused");
    assert_eq!(connections[0]["status"], 503);
    assert_eq!(connections[1]["fault"], "closed_mid_stream");
    assert_eq!(connections[1]["audio_bytes"], 8000);
}
