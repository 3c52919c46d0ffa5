//! What is said on a simulated call, built from the variables the Worker
//! delivered. Missing variables are left out of the sentence, never printed
//! as blanks or placeholders.

use serde_json::{json, Map, Value};

use crate::twilio::scenario::Scenario;

/// Where the conversation's variables come from: the assistant's
/// variableValues first, then the fields of the tool call's result.
pub struct Context<'a> {
    pub variables: &'a Map<String, Value>,
    pub tool_result: Option<&'a Map<String, Value>>,
}

impl Context<'_> {
    pub fn get(&self, name: &str) -> Option<String> {
        let from = |m: &Map<String, Value>| match m.get(name) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        from(self.variables).or_else(|| self.tool_result.and_then(from))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    Ai,
    User,
}

pub struct Script {
    pub lines: Vec<(Speaker, String)>,
    pub summary: &'static str,
    pub success: bool,
    pub structured: Value,
}

impl Script {
    /// VAPI's transcript format: one `AI:` / `User:` line per turn.
    pub fn transcript(&self) -> String {
        self.lines
            .iter()
            .map(|(who, text)| format!("{}: {text}", if *who == Speaker::Ai { "AI" } else { "User" }))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn greeting(ctx: &Context) -> String {
    let mut s = String::from("Hello, this is the scheduling assistant calling");
    if let Some(client) = ctx.get("client_name") {
        s.push_str(&format!(" on behalf of {client}"));
    }
    match ctx.get("employee_name") {
        Some(employee) => s.push_str(&format!(" about {employee}'s appointment")),
        None => s.push_str(" about an appointment"),
    }
    if let Some(clinic) = ctx.get("clinic_name") {
        s.push_str(&format!(" at {clinic}"));
    }
    s.push('.');
    s
}

fn clinic_or(ctx: &Context, fallback: &str) -> String {
    ctx.get("clinic_name").unwrap_or_else(|| fallback.to_string())
}

pub fn for_scenario(scenario: Scenario, ctx: &Context) -> Script {
    use Speaker::{Ai, User};
    let appointment = match ctx.get("appointment_time") {
        Some(t) => format!("the appointment on {t}"),
        None => "the appointment".to_string(),
    };
    match scenario {
        Scenario::IvrOnly => Script {
            lines: vec![
                (
                    User,
                    format!(
                        "Thank you for calling {}. Our office is closed. Please call back during business hours.",
                        clinic_or(ctx, "our office")
                    ),
                ),
                (Ai, "I reached an automated system. I will try again later. Goodbye.".to_string()),
            ],
            summary: "The call reached an automated phone system; no person was available.",
            success: false,
            structured: json!({ "reached": "ivr", "appointment_confirmed": false }),
        },
        Scenario::Voicemail => Script {
            lines: vec![
                (
                    User,
                    format!(
                        "You have reached {}. Please leave a message after the tone.",
                        clinic_or(ctx, "this number")
                    ),
                ),
                (Ai, format!("{} Please call us back to confirm {appointment}. Thank you.", greeting(ctx))),
            ],
            summary: "The call went to voicemail; the assistant left a message.",
            success: false,
            structured: json!({ "reached": "voicemail", "appointment_confirmed": false }),
        },
        _ => {
            let mut lines = Vec::new();
            if scenario == Scenario::IvrThenHuman {
                lines.push((
                    User,
                    format!(
                        "Thank you for calling {}. Please hold while we connect you.",
                        clinic_or(ctx, "the clinic")
                    ),
                ));
            }
            lines.extend([
                (Ai, greeting(ctx)),
                (User, "Hi, this is the front desk. How can I help?".to_string()),
                (Ai, format!("I would like to confirm {appointment} and any instructions for the visit.")),
                (User, "Yes, that is confirmed. Please bring a photo ID.".to_string()),
                (Ai, "Thank you, I have noted that. Goodbye.".to_string()),
                (User, "Goodbye.".to_string()),
            ]);
            Script {
                lines,
                summary: "The assistant reached the front desk and confirmed the appointment.",
                success: true,
                structured: json!({ "reached": "human", "appointment_confirmed": true }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Map<String, Value> {
        pairs.iter().map(|(k, v)| (k.to_string(), Value::String(v.to_string()))).collect()
    }

    #[test]
    fn greeting_uses_every_variable() {
        let v = vars(&[("client_name", "Acme"), ("employee_name", "Jo Doe"), ("clinic_name", "North Clinic")]);
        let script = for_scenario(Scenario::Human, &Context { variables: &v, tool_result: None });
        assert!(script.transcript().starts_with(
            "AI: Hello, this is the scheduling assistant calling on behalf of Acme about Jo Doe's appointment at North Clinic.\nUser: "
        ));
        assert!(script.success);
    }

    #[test]
    fn missing_variables_are_skipped_and_tool_result_fills_in() {
        let empty = Map::new();
        let script = for_scenario(Scenario::Human, &Context { variables: &empty, tool_result: None });
        assert!(script
            .transcript()
            .starts_with("AI: Hello, this is the scheduling assistant calling about an appointment.\n"));
        assert!(!script.transcript().contains("{"));

        let tool = vars(&[("clinic_name", "South"), ("employee_name", "")]);
        let v = vars(&[("pendingcallid", "p1")]);
        let script = for_scenario(Scenario::IvrThenHuman, &Context { variables: &v, tool_result: Some(&tool) });
        let t = script.transcript();
        assert!(t.starts_with("User: Thank you for calling South."), "{t}");
        assert!(t.contains("about an appointment at South."), "{t}");
    }

    #[test]
    fn unreached_scenarios_are_not_successes() {
        let empty = Map::new();
        let ctx = Context { variables: &empty, tool_result: None };
        assert!(!for_scenario(Scenario::IvrOnly, &ctx).success);
        assert!(!for_scenario(Scenario::Voicemail, &ctx).success);
    }
}
