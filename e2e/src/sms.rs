//! Batch SMS as a test drives it: numbers of its own (a sender per test, so its pacing and the sandbox's
//! record are the test's alone), the batch API's SMS routes, and what the sandbox's Messaging stand-in saw.

use crate::Stack;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Digits no other number of this run has: the process id and a counter (tests of one binary share it).
fn unique_digits() -> u32 {
    (std::process::id() % 1_000) * 1_000 + NEXT.fetch_add(1, Ordering::Relaxed) % 1_000
}

/// A Twilio number of the test's own: `+1555 03…`.
pub fn sender() -> String {
    format!("+155503{:06}", unique_digits())
}

/// A person's mobile: `+1555 04…1`, never one of the stand-in's magic numbers (those end in 3000x, 30034).
pub fn mobile() -> String {
    format!("+155504{:05}1", unique_digits() % 100_000)
}

impl Stack {
    /// Sets a sender's messages per second (`None`: no limit), as an operator would (`outcall_private.sms_senders`).
    pub async fn set_sms_rate(&self, sender: &str, messages_per_second: Option<f64>) {
        let db = self.db().await;
        db.execute(
            "insert into outcall_private.sms_senders (sender, messages_per_second) values ($1, $2::float8::numeric)
             on conflict (sender) do update set messages_per_second = excluded.messages_per_second",
            &[&sender, &messages_per_second],
        )
        .await
        .expect("set the sender's rate");
    }

    /// `POST /api/v1/sms-batches` that must be accepted; returns the 202's body.
    pub async fn create_sms_batch(&self, request: &Value) -> Value {
        let (status, _, body) = self.api(reqwest::Method::POST, "sms-batches", &[], Some(request.to_string())).await;
        assert_eq!(status, 202, "SMS batch refused: {body}");
        body
    }

    pub async fn sms_batch(&self, id: &str) -> Value {
        let (status, _, body) = self.api(reqwest::Method::GET, &format!("sms-batches/{id}"), &[], None).await;
        assert_eq!(status, 200, "SMS batch {id}: {body}");
        body
    }

    /// Every message of the batch (one page of up to 1000).
    pub async fn sms_messages(&self, id: &str) -> Vec<Value> {
        let path = format!("sms-batches/{id}/messages?limit=1000");
        let (status, _, body) = self.api(reqwest::Method::GET, &path, &[], None).await;
        assert_eq!(status, 200, "SMS batch {id}: {body}");
        body["messages"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until nothing of the batch is left to send or to hear back about; returns its status.
    pub async fn wait_sms_settled(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let batch = self.sms_batch(id).await;
            let waiting = ["pending", "submitting", "queued", "sent"]
                .iter()
                .map(|s| batch["counts"][s].as_i64().unwrap_or(0))
                .sum::<i64>();
            if waiting == 0 && !batch["completedAt"].is_null() {
                return batch;
            }
            assert!(Instant::now() < deadline, "SMS batch {id} did not settle: {}", batch["counts"]);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// What the Messaging stand-in saw: `{messages, refused, attempts, blocks}`.
    pub async fn sandbox_sms(&self) -> Value {
        let url = format!("{}/_sandbox/twilio/sms/messages", self.sandbox_url);
        self.http.get(url).send().await.expect("sandbox reachable").json().await.expect("JSON")
    }

    /// The messages the stand-in accepted from `sender`, in arrival order.
    pub async fn sandbox_sms_from(&self, sender: &str) -> Vec<Value> {
        let seen = self.sandbox_sms().await;
        seen["messages"].as_array().into_iter().flatten().filter(|m| m["from"] == sender).cloned().collect()
    }

    /// A person texting one of our numbers: the stand-in posts Twilio's signed inbound webhook to the
    /// Worker; returns what it posted and the Worker's status.
    pub async fn sms_reply(&self, from: &str, to: &str, body: &str) -> Value {
        let url = format!("{}/_sandbox/twilio/sms/inbound", self.sandbox_url);
        let response = self.http.post(url).json(&json!({"from": from, "to": to, "body": body})).send().await.unwrap();
        assert!(response.status().is_success(), "inbound refused: {}", response.status());
        response.json().await.expect("JSON")
    }
}
