//! The event stream's decisions (`GET /api/v1/batches/:id/events`).

use crate::api::api_json;
use crate::error::ApiError;
use serde_json::Value;

/// How often the event stream reads the batch's progress, and how often it says it is still there.
pub const EVENTS_POLL_MS: u64 = 1_000;
pub const EVENTS_KEEPALIVE_MS: u64 = 15_000;

/// The event stream's decisions (`GET /api/v1/batches/:id/events`): after each read of the batch's
/// progress, what to send. A `progress` event when it changed, a comment when nothing was sent for
/// `EVENTS_KEEPALIVE_MS` (proxies close silent streams), and a last event: `end` with the final progress
/// once every row is terminal, or `error` when the progress cannot be read.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressFeed {
    last: Option<Value>,
    sent: u64,
    quiet_since_ms: u64,
    done: bool,
}

impl ProgressFeed {
    pub fn new(now_ms: u64) -> Self {
        Self { last: None, sent: 0, quiet_since_ms: now_ms, done: false }
    }

    /// The stream has sent its last event.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// What to send after reading `batch_progress_of` (its raw answer, or the read's error): a chunk of
    /// the stream, or `None` when there is nothing new yet (read again after `EVENTS_POLL_MS`).
    pub fn on_read(&mut self, read: Result<Value, ApiError>, now_ms: u64) -> Option<String> {
        let progress = match read {
            Ok(progress) if !progress.is_null() => progress,
            Ok(_) => return Some(self.last_event("error", &ApiError::not_found("the batch is gone").body())),
            Err(e) => return Some(self.last_event("error", &e.body())),
        };
        if progress.get("completed_at").is_some_and(|t| !t.is_null()) {
            return Some(self.last_event("end", &api_json(progress)));
        }
        if self.last.as_ref() != Some(&progress) {
            self.quiet_since_ms = now_ms;
            let chunk = self.event("progress", &api_json(progress.clone()));
            self.last = Some(progress);
            return Some(chunk);
        }
        if now_ms.saturating_sub(self.quiet_since_ms) >= EVENTS_KEEPALIVE_MS {
            self.quiet_since_ms = now_ms;
            return Some(": still following\n\n".to_owned());
        }
        None
    }

    fn last_event(&mut self, name: &str, data: &Value) -> String {
        self.done = true;
        self.event(name, data)
    }

    /// One Server-Sent Event, numbered from 1.
    fn event(&mut self, name: &str, data: &Value) -> String {
        self.sent += 1;
        format!("id: {}\nevent: {name}\ndata: {data}\n\n", self.sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "6f9619ff-8b86-d011-b42d-00c04fc964ff";

    #[test]
    fn the_event_stream_sends_changes_keeps_alive_and_ends_with_the_batch() {
        let progress = |completed: u64, completed_at: Value| json!({"batch_id": ID, "counts": {"in_progress": 2 - completed, "completed": completed}, "completed_at": completed_at});
        let mut feed = ProgressFeed::new(0);
        let first = feed.on_read(Ok(progress(0, Value::Null)), 0).unwrap();
        assert_eq!(
            first,
            format!(
                "id: 1\nevent: progress\ndata: {}\n\n",
                json!({"batchId": ID, "counts": {"inProgress": 2, "completed": 0}, "completedAt": null})
            )
        );
        assert_eq!(feed.on_read(Ok(progress(0, Value::Null)), 1_000), None, "nothing new, nothing sent");
        assert_eq!(
            feed.on_read(Ok(progress(0, Value::Null)), EVENTS_KEEPALIVE_MS),
            Some(": still following\n\n".into())
        );
        assert_eq!(feed.on_read(Ok(progress(0, Value::Null)), EVENTS_KEEPALIVE_MS + 1_000), None);
        assert!(feed
            .on_read(Ok(progress(1, Value::Null)), EVENTS_KEEPALIVE_MS + 2_000)
            .unwrap()
            .starts_with("id: 2\nevent: progress\n"));
        assert!(!feed.is_done());
        let end = feed.on_read(Ok(progress(2, json!("2026-11-21T10:00:00Z"))), EVENTS_KEEPALIVE_MS + 3_000).unwrap();
        assert!(end.starts_with("id: 3\nevent: end\ndata: "), "{end}");
        assert!(end.contains(r#""completed":2"#), "the end carries the final counts: {end}");
        assert!(feed.is_done());

        let mut gone = ProgressFeed::new(0);
        assert!(gone.on_read(Ok(Value::Null), 0).unwrap().contains("event: error"));
        assert!(gone.is_done());
        let mut failing = ProgressFeed::new(0);
        assert!(failing.on_read(Err(ApiError::upstream("db down")), 0).unwrap().contains("upstream_error"));
        assert!(failing.is_done());
    }
}
