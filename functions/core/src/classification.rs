//! What we know of a callee's phone system, as cached in `call_classifications`.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassificationType {
    /// A person answers: dial VAPI at once.
    Human,
    /// An automated system only: replay the menu, then let the assistant deal with it.
    IvrOnly,
    /// A menu first, then a person: replay the menu, then dial VAPI.
    IvrThenHuman,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IvrActionKind {
    /// Press keys (`value` is digits, `*`, `#`, `w`).
    Dtmf,
    /// Say something (`value` is the text).
    Speech,
    /// Only wait (`timing_ms`); `value` is ignored.
    Wait,
}

/// One recorded step of navigating a phone menu.
///
/// `timing_ms` is how long after the previous step (or after the call is answered, for the first)
/// the step happens: the menu's prompt must be heard out before a key is pressed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IvrAction {
    pub action: IvrActionKind,
    #[serde(default)]
    pub value: String,
    #[serde(default)]
    pub timing_ms: u32,
}

impl IvrAction {
    /// Whether the step's text is free of control characters (Unicode `Cc`: U+0000–U+001F,
    /// U+007F–U+009F), which have no place in speech and most of which XML (so TwiML) cannot carry.
    /// The same rule is `outcall_private.ivr_actions_valid` in SQL; the replay refuses a step breaking it.
    pub fn speech_is_clean(&self) -> bool {
        !self.value.chars().any(char::is_control)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classification {
    pub id: Uuid,
    pub classification_type: ClassificationType,
    #[serde(default)]
    pub ivr_actions: Vec<IvrAction>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_claim_functions_classification() {
        let raw = r#"{"id":"6f9619ff-8b86-d011-b42d-00c04fc964ff","classification_type":"ivr_then_human",
            "ivr_actions":[{"action":"wait","value":"","timing_ms":1500},{"action":"dtmf","value":"2","timing_ms":2000},
            {"action":"speech","value":"appointments","timing_ms":500}]}"#;
        let c: Classification = serde_json::from_str(raw).unwrap();
        assert_eq!(c.classification_type, ClassificationType::IvrThenHuman);
        assert_eq!(c.ivr_actions.len(), 3);
        assert_eq!(c.ivr_actions[1].action, IvrActionKind::Dtmf);
        assert_eq!(c.ivr_actions[1].timing_ms, 2000);
    }

    #[test]
    fn rejects_unknown_kinds() {
        assert!(serde_json::from_str::<ClassificationType>("\"robot\"").is_err());
        assert!(serde_json::from_str::<IvrAction>(r#"{"action":"fax","value":"1"}"#).is_err());
    }
}
