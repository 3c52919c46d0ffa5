//! A batch's event stream can be picked up where it was left: a reconnecting client sends `Last-Event-ID`
//! and the numbering goes on from it; the stream tells clients how soon to reconnect (`retry:`). (Its
//! 5-minute lifetime is `outcall_core::api::ProgressFeed`'s, unit-tested there.)

use outcall_e2e::{fresh_phone, Scenario, Stack};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn a_reconnecting_client_resumes_the_numbering_from_last_event_id() {
    let stack = Stack::from_env();
    // Scheduled a year ahead: the batch stays queued and its stream open while the test reads it.
    let not_before = (chrono::Utc::now() + chrono::Duration::days(365)).to_rfc3339();
    let accepted = stack
        .create_batch(&json!({"name": format!("resume {}", uuid::Uuid::new_v4().simple()),
            "targets": [{"phone": fresh_phone(Scenario::Human), "name": "Pia Lund"}],
            "schedule": {"notBefore": not_before}}))
        .await;
    let batch_id = accepted["batchId"].as_str().unwrap().to_owned();

    let url = format!("{}/api/v1/batches/{batch_id}/events", stack.worker_url);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let mut response = client.get(url).bearer_auth(&stack.api_key).header("Last-Event-ID", "41").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut text = String::new();
    while !text.contains("\ndata: ") || !text.ends_with("\n\n") {
        let chunk = response.chunk().await.unwrap().expect("the stream stays open");
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(text.starts_with("retry: 3000\n\n"), "a reconnection hint first: {text}");
    assert!(text.contains("id: 42\nevent: progress\n"), "the numbering goes on from Last-Event-ID: {text}");
    drop(response);

    let (status, _, _) = stack.api(reqwest::Method::POST, &format!("batches/{batch_id}/cancel"), &[], None).await;
    assert_eq!(status, 200);
}
