//! The listener's stream is authenticated as strictly as every Twilio request: the upgrade by
//! `X-Twilio-Signature`, then the `start` message by the session's single-use token. A stream refused at
//! either step processes no audio (no speech-to-text connection is opened for its run) and writes nothing.

use futures_util::StreamExt;
use outcall_e2e::stream::{self, Signed};
use outcall_e2e::{fresh_phone, sample_row, Scenario, Stack};
use serde_json::Value;
use std::time::Duration;

/// A claimed row of a phone nothing is known of: its claim carries a learning listener.
async fn listened(stack: &Stack) -> (String, String, String) {
    let (_, claim) = stack.claim_inserted(&sample_row(&fresh_phone(Scenario::IvrThenHuman), "Rosa Linde")).await;
    let listen = &claim["listen"];
    assert_eq!(listen["purpose"], "learn", "an unknown phone is learned: {claim}");
    let text = |v: &Value| v.as_str().unwrap().to_owned();
    (text(&claim["session_id"]), text(&listen["run_id"]), text(&listen["token"]))
}

async fn run(stack: &Stack, run_id: &str) -> Value {
    let rows = stack.select("classification_runs", &format!("id=eq.{run_id}")).await;
    rows.into_iter().next().expect("the run")
}

/// Sends a second of speech as Twilio would, then waits for the Worker to close the socket.
async fn speak_until_closed(socket: &mut stream::Socket) {
    let speech = tone_frame();
    for chunk in 1..=50 {
        stream::send(socket, stream::media(chunk, &speech)).await;
    }
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(message) = socket.next().await {
            if matches!(message, Ok(tokio_tungstenite::tungstenite::Message::Close(_)) | Err(_)) {
                return;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the Worker closes a refused stream");
}

/// 20 ms of a tone (any audio will do: it must never be forwarded).
fn tone_frame() -> Vec<u8> {
    (0..160u32).map(|i| if i % 8 < 4 { 0x20 } else { 0xA0 }).collect()
}

#[tokio::test]
async fn an_upgrade_without_a_valid_signature_is_refused_before_the_listener_exists() {
    let stack = Stack::from_env();
    assert_eq!(stream::open(&stack.worker_url, Signed::Not).await.err(), Some(401));
    assert_eq!(stream::open(&stack.worker_url, Signed::With("AAAAAAAAAAAAAAAAAAAAAAAAAAA=")).await.err(), Some(403));
    assert_eq!(stream::open(&stack.worker_url, Signed::By("not-the-auth-token")).await.err(), Some(403));
}

#[tokio::test]
async fn a_stream_with_a_wrong_or_spent_token_processes_no_audio_and_writes_nothing() {
    let stack = Stack::from_env();
    let (session, run_id, token) = listened(&stack).await;
    let before = run(&stack, &run_id).await;

    // A signed upgrade, but the token is not the session's.
    let mut socket = stream::open(&stack.worker_url, Signed::By(&stack.twilio_auth_token)).await.expect("upgraded");
    stream::start(&mut socket, &session, &format!("{token}x")).await;
    speak_until_closed(&mut socket).await;
    // Another session's token does not open this one either.
    let (_, _, other_token) = listened(&stack).await;
    let mut socket = stream::open(&stack.worker_url, Signed::By(&stack.twilio_auth_token)).await.expect("upgraded");
    stream::start(&mut socket, &session, &other_token).await;
    speak_until_closed(&mut socket).await;

    assert_eq!(run(&stack, &run_id).await, before, "a refused stream writes nothing");
    assert!(stack.stt_connections(&run_id).await.is_empty(), "and forwards no audio");

    // The right token opens the run once; spent, it opens nothing more.
    let mut socket = stream::open(&stack.worker_url, Signed::By(&stack.twilio_auth_token)).await.expect("upgraded");
    stream::start(&mut socket, &session, &token).await;
    let opened = wait_for(|| async { !run(&stack, &run_id).await["stream_started_at"].is_null() }).await;
    assert!(opened, "the token is accepted once");
    let spent = run(&stack, &run_id).await;
    let mut again = stream::open(&stack.worker_url, Signed::By(&stack.twilio_auth_token)).await.expect("upgraded");
    stream::start(&mut again, &session, &token).await;
    speak_until_closed(&mut again).await;
    assert_eq!(run(&stack, &run_id).await["stream_started_at"], spent["stream_started_at"]);
    assert!(stack.stt_connections(&run_id).await.len() <= 1, "the spent token opened no second connection");
    drop(socket);
}

async fn wait_for<F, Fut>(check: F) -> bool
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
