//! What was heard on a call, on the audio clock: milliseconds since the Twilio stream started, taken from the
//! media timestamps (never wall-clock or database time), so a replay's first verb lines up with t = 0.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeline {
    /// How much audio was heard.
    pub duration_ms: u32,
    pub events: Vec<TimelineEvent>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TimelineEvent {
    /// A final transcript segment of the callee's audio.
    Speech { start_ms: u32, end_ms: u32, text: String },
    /// The STT heard voice-like audio begin (speech, or music that sounds like it).
    SpeechStarted { at_ms: u32 },
    /// Keys pressed into the call (tones heard on the outbound track).
    Key { at_ms: u32, digits: String },
    /// A stretch with nothing heard.
    Silence { start_ms: u32, end_ms: u32 },
}

impl TimelineEvent {
    /// When the event begins.
    pub fn at_ms(&self) -> u32 {
        match self {
            TimelineEvent::Speech { start_ms, .. } | TimelineEvent::Silence { start_ms, .. } => *start_ms,
            TimelineEvent::SpeechStarted { at_ms } | TimelineEvent::Key { at_ms, .. } => *at_ms,
        }
    }
}

impl Timeline {
    /// Adds an event, keeping the events in time order (a late STT result may land before the last key).
    pub fn push(&mut self, event: TimelineEvent) {
        let at = event.at_ms();
        let index = self.events.partition_point(|e| e.at_ms() <= at);
        self.events.insert(index, event);
    }

    /// Adds a `silence` event for every stretch of at least `min_ms` with no speech (segments and speech
    /// starts), from the start of the stream to `duration_ms`. Existing silences are replaced.
    pub fn mark_silences(&mut self, min_ms: u32) {
        self.events.retain(|e| !matches!(e, TimelineEvent::Silence { .. }));
        let mut spans: Vec<(u32, u32)> = self
            .events
            .iter()
            .filter_map(|e| match e {
                TimelineEvent::Speech { start_ms, end_ms, .. } => Some((*start_ms, (*end_ms).max(*start_ms))),
                TimelineEvent::SpeechStarted { at_ms } => Some((*at_ms, *at_ms)),
                _ => None,
            })
            .collect();
        spans.sort_unstable();
        let mut quiet_from = 0u32;
        let mut silences = Vec::new();
        for (start, end) in spans.into_iter().chain(std::iter::once((self.duration_ms, self.duration_ms))) {
            if start >= quiet_from.saturating_add(min_ms) {
                silences.push(TimelineEvent::Silence { start_ms: quiet_from, end_ms: start });
            }
            quiet_from = quiet_from.max(end);
        }
        for silence in silences {
            self.push(silence);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_with_a_type_tag() {
        let t = Timeline {
            duration_ms: 5000,
            events: vec![
                TimelineEvent::SpeechStarted { at_ms: 100 },
                TimelineEvent::Speech { start_ms: 120, end_ms: 900, text: "Hello?".into() },
                TimelineEvent::Key { at_ms: 1200, digits: "1".into() },
                TimelineEvent::Silence { start_ms: 1300, end_ms: 5000 },
            ],
        };
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(json["events"][0], serde_json::json!({"type": "speech_started", "at_ms": 100}));
        assert_eq!(json["events"][1]["type"], "speech");
        assert_eq!(json["events"][2], serde_json::json!({"type": "key", "at_ms": 1200, "digits": "1"}));
        assert_eq!(serde_json::from_value::<Timeline>(json).unwrap(), t);
        assert!(serde_json::from_str::<TimelineEvent>(r#"{"type":"music","at_ms":1}"#).is_err());
    }

    #[test]
    fn push_keeps_time_order() {
        let mut t = Timeline::default();
        t.push(TimelineEvent::Key { at_ms: 500, digits: "1".into() });
        t.push(TimelineEvent::Speech { start_ms: 100, end_ms: 400, text: "press one".into() });
        t.push(TimelineEvent::SpeechStarted { at_ms: 500 });
        let at: Vec<u32> = t.events.iter().map(TimelineEvent::at_ms).collect();
        assert_eq!(at, [100, 500, 500]);
        assert!(matches!(t.events[2], TimelineEvent::SpeechStarted { .. }));
    }

    #[test]
    fn silences_fill_the_quiet_stretches() {
        let mut t = Timeline {
            duration_ms: 10_000,
            events: vec![
                TimelineEvent::Speech { start_ms: 3000, end_ms: 4000, text: "hi".into() },
                TimelineEvent::SpeechStarted { at_ms: 4500 },
                TimelineEvent::Key { at_ms: 5000, digits: "2".into() },
            ],
        };
        t.mark_silences(2000);
        let silences: Vec<(u32, u32)> = t
            .events
            .iter()
            .filter_map(|e| match e {
                TimelineEvent::Silence { start_ms, end_ms } => Some((*start_ms, *end_ms)),
                _ => None,
            })
            .collect();
        assert_eq!(silences, [(0, 3000), (4500, 10_000)]);
    }
}
