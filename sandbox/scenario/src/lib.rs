//! The sandbox's call scenarios: how the callee behaves, chosen by the dialled number: `+1555000` + S + 3
//! digits. A crate of its own so the end-to-end tests pick numbers without linking the whole sandbox.

use serde::{Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Human,
    IvrThenHuman,
    IvrOnly,
    Voicemail,
    Busy,
    NoAnswer,
    Failed,
}

impl Serialize for Scenario {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

const PREFIX: &str = "+1555000";

impl Scenario {
    pub const ALL: [Scenario; 7] = [
        Scenario::Human,
        Scenario::IvrThenHuman,
        Scenario::IvrOnly,
        Scenario::Voicemail,
        Scenario::Busy,
        Scenario::NoAnswer,
        Scenario::Failed,
    ];

    /// The number that plays this scenario, with `suffix` (0–999) as its last three digits.
    pub fn number(self, suffix: u16) -> String {
        let digit = Scenario::ALL.iter().position(|s| *s == self).unwrap_or(0) + 1;
        format!("{PREFIX}{digit}{:03}", suffix % 1000)
    }

    /// Any number outside the `+1555000Sxxx` plan is answered by a human.
    pub fn for_number(to: &str) -> Scenario {
        let Some(rest) = to.strip_prefix(PREFIX) else {
            return Scenario::Human;
        };
        if rest.len() != 4 || !rest.bytes().all(|b| b.is_ascii_digit()) {
            return Scenario::Human;
        }
        match rest.as_bytes()[0] {
            b'2' => Scenario::IvrThenHuman,
            b'3' => Scenario::IvrOnly,
            b'4' => Scenario::Voicemail,
            b'5' => Scenario::Busy,
            b'6' => Scenario::NoAnswer,
            b'7' => Scenario::Failed,
            _ => Scenario::Human,
        }
    }

    /// The name used in records and logs (the serialized form).
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Human => "human",
            Scenario::IvrThenHuman => "ivr_then_human",
            Scenario::IvrOnly => "ivr_only",
            Scenario::Voicemail => "voicemail",
            Scenario::Busy => "busy",
            Scenario::NoAnswer => "no-answer",
            Scenario::Failed => "failed",
        }
    }

    /// Nominal length of the VAPI conversation once the call is bridged.
    pub fn conversation_secs(self) -> u64 {
        match self {
            Scenario::Human | Scenario::IvrThenHuman => 20,
            _ => 8,
        }
    }

    /// The `endedReason` VAPI reports when the conversation runs its course.
    pub fn ended_reason(self) -> &'static str {
        match self {
            Scenario::IvrOnly => "assistant-ended-call",
            Scenario::Voicemail => "voicemail",
            _ => "customer-ended-call",
        }
    }

    /// What Twilio's answering machine detection reports, when it was requested.
    pub fn answered_by(self, detect_message_end: bool) -> &'static str {
        match self {
            Scenario::Human => "human",
            Scenario::Voicemail if detect_message_end => "machine_end_beep",
            // An IVR greeting is a recording, which AMD classifies as a machine.
            _ => "machine_start",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenarios_number_plays_it() {
        for scenario in Scenario::ALL {
            for suffix in [0, 7, 999] {
                assert_eq!(Scenario::for_number(&scenario.number(suffix)), scenario);
            }
        }
    }

    #[test]
    fn numbers_select_scenarios() {
        let cases = [
            ("+15550001001", Scenario::Human),
            ("+15550002001", Scenario::IvrThenHuman),
            ("+15550003999", Scenario::IvrOnly),
            ("+15550004000", Scenario::Voicemail),
            ("+15550005123", Scenario::Busy),
            ("+15550006001", Scenario::NoAnswer),
            ("+15550007001", Scenario::Failed),
            ("+15550008001", Scenario::Human),
            ("+15550000001", Scenario::Human),
            ("+155500050011", Scenario::Human),
            ("+1555000500", Scenario::Human),
            ("+1555000500a", Scenario::Human),
            ("+14155550100", Scenario::Human),
            ("", Scenario::Human),
        ];
        for (number, expected) in cases {
            assert_eq!(Scenario::for_number(number), expected, "{number}");
        }
    }

    #[test]
    fn serialized_names() {
        assert_eq!(serde_json::to_value(Scenario::IvrThenHuman).unwrap(), "ivr_then_human");
        assert_eq!(serde_json::to_value(Scenario::NoAnswer).unwrap(), "no-answer");
    }

    #[test]
    fn conversation_outcomes() {
        assert_eq!(Scenario::Human.conversation_secs(), 20);
        assert_eq!(Scenario::Voicemail.conversation_secs(), 8);
        assert_eq!(Scenario::IvrOnly.ended_reason(), "assistant-ended-call");
        assert_eq!(Scenario::IvrThenHuman.ended_reason(), "customer-ended-call");
        assert_eq!(Scenario::Voicemail.ended_reason(), "voicemail");
    }
}
