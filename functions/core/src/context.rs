//! The call's context as `call_context()` returns it, turned into VAPI template variables.

use serde::Deserialize;
use serde_json::{Map, Value};

/// The context of one pending call: exactly the fields the SQL function chose to expose (an object).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CallContext(Map<String, Value>);

/// Fields of the context that hold nested objects to be flattened into variables.
const NESTED: [&str; 2] = ["instructions", "variables"];
/// The field that is the assistant's first sentence for this call, not a variable.
const FIRST_MESSAGE: &str = "first_message";

impl CallContext {
    /// Reads `call_context()`'s answer; `null` (unknown id) gives `None`.
    pub fn from_rpc(value: Value) -> Option<Self> {
        match value {
            Value::Object(map) => Some(Self(map)),
            // PostgREST answers a scalar-returning function with the bare value.
            _ => None,
        }
    }

    pub fn as_json(&self) -> Value {
        Value::Object(self.0.clone())
    }

    /// The assistant's `{{variables}}`: every top-level field as text, then the entries of
    /// `instructions` and of the row's own `variables`. Top-level fields win a name clash, so a
    /// per-row variable can add to the context but not disguise the row's identity.
    pub fn variable_values(&self) -> Map<String, Value> {
        let mut out = Map::new();
        for (name, value) in &self.0 {
            if NESTED.contains(&name.as_str()) || name == FIRST_MESSAGE {
                continue;
            }
            if let Some(text) = as_text(value) {
                out.insert(name.clone(), Value::String(text));
            }
        }
        for nested in NESTED {
            if let Some(Value::Object(entries)) = self.0.get(nested) {
                for (name, value) in entries {
                    if let (false, Some(text)) = (out.contains_key(name), as_text(value)) {
                        out.insert(name.clone(), Value::String(text));
                    }
                }
            }
        }
        out
    }

    /// What the assistant says first on this call, when the row (a batch target) says it.
    pub fn first_message(&self) -> Option<&str> {
        self.0.get(FIRST_MESSAGE).and_then(Value::as_str).filter(|s| !s.is_empty())
    }
}

/// A JSON value as the text a prompt template shows: nothing for null, lists joined by ", ".
pub(crate) fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(_) | Value::Number(_) => Some(value.to_string()),
        Value::Array(items) => Some(items.iter().filter_map(as_text).collect::<Vec<_>>().join(", ")),
        Value::Object(_) => Some(value.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flattens_the_context_into_text_variables() {
        let ctx = CallContext::from_rpc(json!({
            "pending_call_id": "6f9619ff-8b86-d011-b42d-00c04fc964ff",
            "employee_name": "Dana Whitfield",
            "employee_dob": "1985-03-14",
            "procedures": ["Drug screen", "Hearing test"],
            "exam_id": null,
            "instructions": {"arrival": "Arrive 15 minutes early", "employee_name": "ignored"},
            "variables": {"language": "en", "attempt_note": 2}
        }))
        .unwrap();
        let vars = ctx.variable_values();
        assert_eq!(vars["employee_name"], "Dana Whitfield");
        assert_eq!(vars["procedures"], "Drug screen, Hearing test");
        assert_eq!(vars["arrival"], "Arrive 15 minutes early");
        assert_eq!(vars["language"], "en");
        assert_eq!(vars["attempt_note"], "2");
        assert!(!vars.contains_key("exam_id"), "nulls are left out");
        assert!(!vars.contains_key("instructions"));
    }

    #[test]
    fn a_targets_prompt_is_a_variable_and_its_first_message_an_override() {
        let ctx = CallContext::from_rpc(json!({
            "employee_name": "Dana", "prompt": "Mention the storm.", "first_message": "Hi Dana",
            "variables": {"route": 7}
        }))
        .unwrap();
        let vars = ctx.variable_values();
        assert_eq!(vars["prompt"], "Mention the storm.");
        assert_eq!(vars["route"], "7");
        assert!(!vars.contains_key("first_message"));
        assert_eq!(ctx.first_message(), Some("Hi Dana"));
        let plain = CallContext::from_rpc(json!({"employee_name": "Dana", "first_message": null})).unwrap();
        assert_eq!(plain.first_message(), None);
    }

    #[test]
    fn unknown_id_is_none() {
        assert!(CallContext::from_rpc(Value::Null).is_none());
    }
}
