//! Every body is capped before it is read (`outcall_core::body`): a body over its route's cap is 413
//! `payload_too_large` and writes nothing, whether its `Content-Length` says so (refused unread) or it
//! comes without one, chunked (refused as the bytes pass the cap); a credential that is a header alone is
//! checked first, so a caller without it is refused before any of its body is read. HMAC messages need
//! their timestamp (on a second Worker configured for HMAC), and a batch's objects are capped one by one.

use outcall_core::twilio::signature;
use outcall_core::vapi_auth::{hex, hmac_sha256};
use outcall_e2e::worker::SpareWorker;
use outcall_e2e::{fresh_phone, sample_row, Scenario, Stack};
use serde_json::{json, Value};
use std::io::{Read, Write};

const MB: usize = 1_000_000;

/// A row in `calling` with a session that has a (made-up) CallSid, as after a real dial, with no live
/// call behind it (as in `verified_callers.rs`).
async fn dialled_row(stack: &Stack) -> (String, String, String) {
    let (id, session) = stack.insert_claimed(&sample_row(&fresh_phone(Scenario::Human), "Ines Ferreira")).await;
    let db = stack.db().await;
    let sid = format!("CA{}", uuid::Uuid::new_v4().simple());
    db.execute("select public.record_dial_result($1::text::uuid, $2::text)", &[&session, &sid]).await.unwrap();
    (id, session, sid)
}

/// What a request could change: the row's status and results, the session's status and report.
async fn snapshot(stack: &Stack, id: &str) -> Value {
    let row = stack.pending_call(id).await;
    let sessions = stack.sessions(id).await;
    json!({"row": [row["call_status"], row["attempts"], row["summary"], row["transcript"], row["updated_at"]],
           "sessions": sessions.iter().map(|s| json!([s["status"], s["vapi_status"], s["report_received_at"], s["updated_at"]])).collect::<Vec<_>>()})
}

/// Ends the made-up call's session as Twilio would, so it holds no call slot.
async fn hang_up(stack: &Stack, sid: &str) {
    stack.db().await.execute("select public.apply_twilio_status($1::text, 'completed')", &[&sid]).await.unwrap();
}

fn assert_too_large(status: u16, body: &Value, what: &str) {
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("payload_too_large")), "{what}: {body}");
    assert!(body["error"]["message"].is_string(), "{what}: {body}");
}

/// Starts a POST without `Content-Length` (chunked), over a plain socket (the HTTP client here always
/// sends a length): `size` bytes of `prefix` + padding, then never the last chunk, so only a Worker that
/// stops reading at the cap can answer (one waiting for the whole body would hang until the read timeout).
/// Returns the status and the JSON body.
async fn post_chunked(base: &str, path: &str, headers: &[(&str, &str)], prefix: &str, size: usize) -> (u16, Value) {
    let authority = base.strip_prefix("http://").expect("an http:// Worker URL").to_owned();
    let mut head =
        format!("POST {path} HTTP/1.1\r\nHost: {authority}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let prefix = prefix.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut socket = std::net::TcpStream::connect(&authority).expect("worker reachable");
        let mut writer = socket.try_clone().unwrap();
        let sender = std::thread::spawn(move || -> std::io::Result<()> {
            writer.write_all(head.as_bytes())?;
            let mut chunk = |data: &[u8]| -> std::io::Result<()> {
                writer.write_all(format!("{:x}\r\n", data.len()).as_bytes())?;
                writer.write_all(data)?;
                writer.write_all(b"\r\n")
            };
            chunk(prefix.as_bytes())?;
            let padding = vec![b'x'; 64 * 1024];
            let mut sent = prefix.len();
            while sent < size {
                let n = padding.len().min(size - sent);
                chunk(&padding[..n])?;
                sent += n;
            }
            Ok(())
        });
        socket.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
        let mut raw = Vec::new();
        let mut buffer = [0u8; 16 * 1024];
        loop {
            match socket.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => raw.extend_from_slice(&buffer[..n]),
                Err(_) if !raw.is_empty() => break,
                Err(e) => panic!("no answer: {e}"),
            }
        }
        let _ = sender.join();
        parse_response(&raw)
    })
    .await
    .unwrap()
}

fn parse_response(raw: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP answer: {text}"));
    let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{head}"));
    let chunked = head.lines().any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding: chunked"));
    let body = if chunked {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if size == 0 || after.len() < size {
                break;
            }
            out.push_str(&after[..size]);
            rest = after[size..].trim_start_matches("\r\n");
        }
        out
    } else {
        body.to_owned()
    };
    (status, serde_json::from_str(&body).unwrap_or(Value::String(body)))
}

#[tokio::test]
async fn a_six_megabyte_twilio_callback_with_a_forged_signature_is_413_and_changes_nothing() {
    let stack = Stack::from_env();
    let (id, session, sid) = dialled_row(&stack).await;
    let path = format!("/twilio/status?session={session}");
    let url = format!("{}{path}", stack.worker_url);
    let before = snapshot(&stack, &id).await;

    let small = format!("CallSid={sid}&CallStatus=busy");
    let big = format!("{small}&Padding={}", "x".repeat(6 * MB));
    let forged = signature("not-the-auth-token", &url, &[("CallSid".into(), sid.clone())]);
    let form = [("X-Twilio-Signature", forged.as_str())];
    let (status, body) = stack.post_worker(&path, &form, big).await;
    assert_too_large(status, &body, "6 MB with Content-Length");
    // Without Content-Length: refused once more than 64 KiB have come in, without waiting for the rest.
    let (status, body) = post_chunked(&stack.worker_url, &path, &form, &small, 200_000).await;
    assert_too_large(status, &body, "chunked, past 64 KiB");
    // No signature at all: 401 before any of the body is read.
    let (status, body) = stack.post_worker(&path, &[], "x".repeat(6 * MB)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")), "{body}");
    assert_eq!(snapshot(&stack, &id).await, before, "a refused callback wrote something");

    // A real callback, signed, is still taken: the refusals were the size's doing.
    let params = vec![("CallSid".to_owned(), sid.clone()), ("CallStatus".to_owned(), "busy".to_owned())];
    let signed = signature(&stack.twilio_auth_token, &url, &params);
    let (status, body) = stack.post_worker(&path, &[("X-Twilio-Signature", &signed)], small).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(stack.sessions(&id).await[0]["status"], "busy");
}

fn report(id: &str, transcript: &str) -> String {
    json!({"message": {"type": "end-of-call-report", "endedReason": "customer-ended-call",
        "analysis": {"summary": "Confirmed."}, "artifact": {"transcript": transcript},
        "call": {"id": format!("vapi-{id}"), "assistantOverrides": {"variableValues": {"pendingcallid": id}}}}})
    .to_string()
}

#[tokio::test]
async fn a_twelve_megabyte_vapi_message_is_413_and_writes_nothing() {
    let stack = Stack::from_env();
    let (id, _, sid) = dialled_row(&stack).await;
    let before = snapshot(&stack, &id).await;
    let secret = stack.vapi_secret.clone();
    let huge = report(&id, &"word ".repeat(12 * MB / 5));
    assert!(huge.len() > 12 * MB);

    let (status, body) = stack.post_worker("/vapi/events", &[("X-Vapi-Secret", &secret)], huge.clone()).await;
    assert_too_large(status, &body, "12 MB with Content-Length");
    // Without Content-Length: refused once past 8 MiB, without waiting for the rest.
    let (status, body) = post_chunked(
        &stack.worker_url,
        "/vapi/events",
        &[("X-Vapi-Secret", &secret), ("Content-Type", "application/json")],
        "{\"message\": ",
        8 * 1024 * 1024 + 200_000,
    )
    .await;
    assert_too_large(status, &body, "chunked, past 8 MiB");
    // The bearer credential is a header: a wrong or missing one is refused before the body is read.
    let (status, body) = stack.post_worker("/vapi/events", &[("X-Vapi-Secret", "forged")], huge.clone()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("invalid_signature")), "{body}");
    let (status, body) = stack.post_worker("/vapi/events", &[], huge).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")), "{body}");
    assert_eq!(snapshot(&stack, &id).await, before, "a refused report wrote something");

    // A long report under the cap (a 1 MB transcript) is taken.
    let (status, body) =
        stack.post_worker("/vapi/events", &[("X-Vapi-Secret", &secret)], report(&id, &"word ".repeat(MB / 5))).await;
    assert_eq!(status, 200, "{body}");
    let row = stack.pending_call(&id).await;
    assert_eq!(row["call_status"], "completed", "{}", row["call_status"]);
    hang_up(&stack, &sid).await;
}

#[tokio::test]
async fn the_webhook_checks_its_secret_before_its_body_and_caps_it() {
    let stack = Stack::from_env();
    let id = stack.insert_parked(&sample_row(&fresh_phone(Scenario::Human), "Ines Ferreira")).await;
    let padded = json!({"type": "INSERT", "table": "pending_calls", "schema": "public", "record": {"id": id},
        "old_record": null, "padding": "x".repeat(MB)})
    .to_string();
    let (status, body) =
        stack.post_worker("/hooks/pending-calls", &[("X-Webhook-Secret", "wrong")], padded.clone()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")), "{body}");
    let secret = stack.webhook_secret.clone();
    let (status, body) = stack.post_worker("/hooks/pending-calls", &[("X-Webhook-Secret", &secret)], padded).await;
    assert_too_large(status, &body, "a 1 MB webhook");
    stack.assert_untouched(&id).await;
}

#[tokio::test]
async fn hmac_messages_need_their_timestamp_unless_configured_otherwise() {
    let stack = Stack::from_env();
    let (id, _, sid) = dialled_row(&stack).await;
    let secret = stack.vapi_secret.clone();
    let body = report(&id, "Yes, Tuesday works.");
    let body_only = hex(&hmac_sha256(&secret, &body));
    let before = snapshot(&stack, &id).await;

    let strict = SpareWorker::start("body-caps-hmac", &[("VAPI_CREDENTIAL_TYPE", Some("hmac"))]).await;
    // Signed over the body alone, with no timestamp: 401, whatever the signature.
    let (status, answer) =
        stack.post_to(&strict.url, "/vapi/events", &[("x-signature", &body_only)], body.clone()).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (401, Some("unauthorized")), "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("x-timestamp"), "{answer}");
    // HMAC needs the body: there the cap comes first (a fresh timestamp, a signature, 12 MB: 413).
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs().to_string();
    let huge = report(&id, &"word ".repeat(12 * MB / 5));
    let signed_huge = hex(&hmac_sha256(&secret, &format!("{now}.{huge}")));
    let (status, answer) =
        stack.post_to(&strict.url, "/vapi/events", &[("x-signature", &signed_huge), ("x-timestamp", &now)], huge).await;
    assert_too_large(status, &answer, "12 MB signed");
    assert_eq!(snapshot(&stack, &id).await, before, "a refused message wrote something");
    drop(strict);

    // With VAPI_HMAC_ALLOW_NO_TIMESTAMP=true the body-only form is accepted.
    let lenient = SpareWorker::start(
        "body-caps-hmac-lenient",
        &[("VAPI_CREDENTIAL_TYPE", Some("hmac")), ("VAPI_HMAC_ALLOW_NO_TIMESTAMP", Some("true"))],
    )
    .await;
    let forged = hex(&hmac_sha256("forged", &body));
    let (status, _) = stack.post_to(&lenient.url, "/vapi/events", &[("x-signature", &forged)], body.clone()).await;
    assert_eq!(status, 403);
    let (status, answer) = stack.post_to(&lenient.url, "/vapi/events", &[("x-signature", &body_only)], body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(stack.pending_call(&id).await["call_status"], "completed");
    hang_up(&stack, &sid).await;
    drop(lenient);
}

#[tokio::test]
async fn a_batch_object_over_its_cap_is_a_validation_error_with_its_path() {
    let stack = Stack::from_env();
    let name = format!("body caps {}", uuid::Uuid::new_v4());
    let big = json!({"notes": "x".repeat(17 * 1024)});
    let request = json!({"name": name, "metadata": big,
        "targets": [{"phone": fresh_phone(Scenario::Human), "name": "Ines Ferreira", "instructions": big,
                     "procedures": ["y".repeat(17 * 1024)]}]});
    let (status, _, body) = stack.api(reqwest::Method::POST, "batches", &[], Some(request.to_string())).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("validation_error")), "{body}");
    let items: Vec<(&str, &str)> = body["error"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["path"].as_str().unwrap(), i["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        items,
        vec![
            ("metadata", "too_large"),
            ("targets[0].procedures", "too_large"),
            ("targets[0].instructions", "too_large")
        ],
        "{body}"
    );
    assert!(body["error"]["items"].as_array().unwrap().iter().all(|i| i.get("value").is_none()), "not echoed");
    assert_eq!(stack.scalar(&format!("select count(*) from batches where name = '{name}'")).await, 0);
}

#[tokio::test]
async fn health_tells_anyone_only_whether_it_is_configured() {
    let stack = Stack::from_env();
    let health: Value = reqwest::get(format!("{}/health", stack.worker_url)).await.unwrap().json().await.unwrap();
    assert_eq!(health, json!({"configured": true}));
}
