//! The event stream's decisions (`GET /api/v1/batches/:id/events`).

use crate::api::api_json;
use crate::error::ApiError;
use serde_json::Value;

/// How often the event stream reads the batch's progress, and how often it says it is still there.
pub const EVENTS_POLL_MS: u64 = 1_000;
pub const EVENTS_KEEPALIVE_MS: u64 = 15_000;
/// How long one stream lives (each is a database read a second); the client then reconnects.
pub const EVENTS_LIFETIME_MS: u64 = 5 * 60_000;
/// The `retry:` hint: how long a client waits before reconnecting a closed stream.
pub const EVENTS_RETRY_MS: u64 = 3_000;

/// The event stream's decisions (`GET /api/v1/batches/:id/events`): after each read of the batch's
/// progress, what to send. The first chunk carries a `retry:` hint; then a `progress` event when the batch
/// changed, a comment when nothing was sent for `EVENTS_KEEPALIVE_MS` (proxies close silent streams), and a
/// last event: `end` with the final progress once every row is terminal, or `error` when the progress
/// cannot be read. A stream lives `EVENTS_LIFETIME_MS`, then closes with a comment; the client reconnects
/// with `Last-Event-ID` and the numbering goes on from it (its first event is the progress as it is then).
#[derive(Debug, Clone)]
pub struct ProgressFeed {
    last: Option<Value>,
    sent: u64,
    opened_ms: u64,
    quiet_since_ms: u64,
    hinted: bool,
    done: bool,
    /// Whether a read of the progress is the last one worth sending (then `end`).
    ended: fn(&Value) -> bool,
}

/// A call batch ends when every row is terminal: `completed_at` is set.
pub fn completed(progress: &Value) -> bool {
    progress.get("completed_at").is_some_and(|t| !t.is_null())
}

/// The event id a reconnecting client last saw (`Last-Event-ID`); anything unreadable starts afresh.
pub fn last_event_id(header: Option<&str>) -> u64 {
    header.and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

impl ProgressFeed {
    /// A stream opened at `now_ms`, numbering its events after `last_event_id` (0 for a new client).
    pub fn new(now_ms: u64, last_event_id: u64) -> Self {
        Self::until(completed, now_ms, last_event_id)
    }

    /// A stream whose last event is the first progress for which `ended` holds.
    pub fn until(ended: fn(&Value) -> bool, now_ms: u64, last_event_id: u64) -> Self {
        Self {
            last: None,
            sent: last_event_id,
            opened_ms: now_ms,
            quiet_since_ms: now_ms,
            hinted: false,
            done: false,
            ended,
        }
    }

    /// The stream has sent its last event.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// What to send after reading the progress (`batch_progress_of`'s raw answer, or the read's error): a chunk of
    /// the stream, or `None` when there is nothing new yet (read again after `EVENTS_POLL_MS`).
    pub fn on_read(&mut self, read: Result<Value, ApiError>, now_ms: u64) -> Option<String> {
        let chunk = self.decide(read, now_ms)?;
        if std::mem::replace(&mut self.hinted, true) {
            return Some(chunk);
        }
        Some(format!("retry: {EVENTS_RETRY_MS}\n\n{chunk}"))
    }

    fn decide(&mut self, read: Result<Value, ApiError>, now_ms: u64) -> Option<String> {
        let progress = match read {
            Ok(progress) if !progress.is_null() => progress,
            Ok(_) => return Some(self.last_event("error", &ApiError::not_found("the batch is gone").body())),
            Err(e) => return Some(self.last_event("error", &e.body())),
        };
        if (self.ended)(&progress) {
            return Some(self.last_event("end", &api_json(progress)));
        }
        if self.last.as_ref() != Some(&progress) {
            self.quiet_since_ms = now_ms;
            let chunk = self.event("progress", &api_json(progress.clone()));
            self.last = Some(progress);
            return Some(chunk);
        }
        if now_ms.saturating_sub(self.opened_ms) >= EVENTS_LIFETIME_MS {
            self.done = true;
            return Some(": this stream ends here; reconnect with Last-Event-ID to follow on\n\n".to_owned());
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
        let mut feed = ProgressFeed::new(0, 0);
        let first = feed.on_read(Ok(progress(0, Value::Null)), 0).unwrap();
        assert_eq!(
            first,
            format!(
                "retry: 3000\n\nid: 1\nevent: progress\ndata: {}\n\n",
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

        let mut gone = ProgressFeed::new(0, 0);
        assert!(gone.on_read(Ok(Value::Null), 0).unwrap().contains("event: error"));
        assert!(gone.is_done());
        let mut failing = ProgressFeed::new(0, 0);
        assert!(failing.on_read(Err(ApiError::upstream("db down")), 0).unwrap().contains("upstream_error"));
        assert!(failing.is_done());
    }

    #[test]
    fn pausing_and_resuming_are_events_of_the_stream() {
        let progress = |paused_at: Value| {
            json!({"batch_id": ID, "counts": {"queued": 3}, "completed_at": null,
                   "paused": !paused_at.is_null(), "paused_at": paused_at})
        };
        let mut feed = ProgressFeed::new(0, 0);
        feed.on_read(Ok(progress(Value::Null)), 0).unwrap();
        let paused = feed.on_read(Ok(progress(json!("2026-11-21T10:00:00Z"))), 1_000).unwrap();
        assert!(
            paused.contains(r#""paused":true"#) && paused.contains(r#""pausedAt":"2026-11-21T10:00:00Z""#),
            "{paused}"
        );
        let resumed = feed.on_read(Ok(progress(Value::Null)), 2_000).unwrap();
        assert!(resumed.starts_with("id: 3\nevent: progress\n") && resumed.contains(r#""paused":false"#), "{resumed}");
    }

    #[test]
    fn a_stream_ends_after_its_lifetime_and_resumes_from_last_event_id() {
        let progress = |n: u64| json!({"batch_id": ID, "counts": {"in_progress": n}, "completed_at": null});
        let mut feed = ProgressFeed::new(1_000, 0);
        assert!(feed.on_read(Ok(progress(3)), 1_000).unwrap().starts_with("retry: 3000\n\nid: 1\n"));
        assert!(feed.on_read(Ok(progress(2)), 2_000).unwrap().starts_with("id: 2\n"), "the hint comes once");
        let last = feed.on_read(Ok(progress(2)), 1_000 + EVENTS_LIFETIME_MS).unwrap();
        assert!(last.starts_with(": ") && last.contains("Last-Event-ID"), "{last}");
        assert!(feed.is_done(), "the stream closes at its lifetime, the batch still running");

        let mut resumed = ProgressFeed::new(0, last_event_id(Some("2")));
        let first = resumed.on_read(Ok(progress(2)), 0).unwrap();
        assert!(first.starts_with("retry: 3000\n\nid: 3\nevent: progress\n"), "numbering goes on: {first}");
        assert_eq!(last_event_id(None), 0);
        assert_eq!(last_event_id(Some("not a number")), 0, "an unreadable id starts afresh");
        assert_eq!(last_event_id(Some(" 41 ")), 41);
    }
}
