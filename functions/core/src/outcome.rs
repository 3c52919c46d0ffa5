//! What a finished VAPI call means for the pending call.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The assistant had its conversation (with a person, or with an automated system it served).
    Completed,
    /// Nobody was reached: voicemail, silence, a failure before the conversation.
    NotReached,
}

impl Outcome {
    /// Classifies VAPI's `endedReason`. Reasons are many and grow over time, so the rule is
    /// positive: only the endings of a held conversation count as completed.
    pub fn from_ended_reason(reason: &str) -> Self {
        const CONVERSATION_ENDINGS: [&str; 5] = [
            "customer-ended-call",
            "assistant-ended-call",
            "assistant-said-end-call-phrase",
            "assistant-forwarded-call",
            "exceeded-max-duration",
        ];
        if CONVERSATION_ENDINGS.contains(&reason) {
            Self::Completed
        } else {
            Self::NotReached
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::NotReached => "not_reached",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversations_complete_and_everything_else_did_not_reach() {
        assert_eq!(Outcome::from_ended_reason("customer-ended-call"), Outcome::Completed);
        assert_eq!(Outcome::from_ended_reason("assistant-ended-call"), Outcome::Completed);
        for reason in [
            "voicemail",
            "silence-timed-out",
            "assistant-request-returned-error",
            "customer-did-not-answer",
            "call.start.error-subscription-concurrency-limit-reached",
            "",
            "something-new",
        ] {
            assert_eq!(Outcome::from_ended_reason(reason), Outcome::NotReached, "{reason}");
        }
    }
}
