//! A batch SMS request, parsed, validated and rendered whole before anything is written.
//!
//! `POST /api/v1/sms-batches` takes `{"name", "from" | "messagingServiceSid", "bodyTemplate", "targets":
//! [{"phone", "name", "variables", "body"}], "schedule": {"notBefore"}, "metadata"}`. Every problem is
//! collected with its path, as for call batches (`batch.rs`, whose error type and field checks this
//! shares). A target's text is its own `body` (sent as written) or the batch's `bodyTemplate` filled from
//! its `name` and `variables`: a placeholder a target cannot fill is refused at
//! `targets[i].variables.NAME`, never sent as a hole.

use crate::batch::{
    list, object_error, parse_metadata, parse_not_before, text_error, BatchRequestError, ItemError, MAX_NAME_CHARS,
};
use crate::context::as_text;
use crate::phone::PhoneNumber;
use crate::sms::segments::{self, Segments};
use crate::sms::template::Template;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// The most characters one message may have (Twilio's limit for `Body`).
pub const MAX_BODY_CHARS: usize = 1_600;
/// A template may be longer than a message: its placeholders' names do not count once filled.
pub const MAX_TEMPLATE_CHARS: usize = 5_000;

const REQUEST_KEYS: [&str; 7] =
    ["name", "from", "messagingServiceSid", "bodyTemplate", "targets", "schedule", "metadata"];
const TARGET_KEYS: [&str; 4] = ["phone", "name", "variables", "body"];

/// Who sends: one Twilio number, or a Messaging Service that picks from its pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    From(PhoneNumber),
    Service(String),
}

impl Sender {
    /// As `sms_batches.sender` holds it (the key of the sender's rate limit).
    pub fn as_str(&self) -> &str {
        match self {
            Self::From(phone) => phone.as_str(),
            Self::Service(sid) => sid,
        }
    }

    /// `sms_batches.sender` read back: an `MG…` SID or a phone number.
    pub fn parse(raw: &str) -> Option<Self> {
        if is_service_sid(raw) {
            Some(Self::Service(raw.to_owned()))
        } else {
            PhoneNumber::parse(raw).ok().map(Self::From)
        }
    }
}

fn is_service_sid(raw: &str) -> bool {
    raw.strip_prefix("MG").is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// One message, rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub to: PhoneNumber,
    pub variables: Map<String, Value>,
    pub body: String,
    pub segments: Segments,
}

/// A valid request, ready for `create_sms_batch`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSmsBatch {
    pub name: Option<String>,
    pub metadata: Map<String, Value>,
    pub sender: Sender,
    pub body_template: Option<String>,
    pub not_before: Option<DateTime<Utc>>,
    pub messages: Vec<Message>,
}

impl NewSmsBatch {
    /// `create_sms_batch`'s argument.
    pub fn rpc_request(&self, idempotency_key: Option<&str>, request_hash: &str) -> Value {
        let messages: Vec<Value> = self
            .messages
            .iter()
            .map(|m| {
                json!({"to_phone": m.to, "variables": m.variables, "body": m.body,
                       "encoding": m.segments.encoding.as_str(), "segments": m.segments.count})
            })
            .collect();
        json!({
            "name": self.name,
            "metadata": self.metadata,
            "sender": self.sender.as_str(),
            "body_template": self.body_template,
            "not_before": self.not_before.map(|t| t.to_rfc3339()),
            "idempotency_key": idempotency_key,
            "request_hash": request_hash,
            "messages": messages,
        })
    }
}

/// Parses, validates and renders a whole request. `max_targets` bounds the targets.
pub fn parse_request(body: &str, max_targets: usize) -> Result<NewSmsBatch, BatchRequestError> {
    let value: Value =
        serde_json::from_str(body).map_err(|e| BatchRequestError::Malformed(format!("not JSON: {e}")))?;
    let Value::Object(request) = value else {
        return Err(BatchRequestError::Malformed("the body must be a JSON object".into()));
    };
    let mut errors = Vec::new();
    for key in request.keys().filter(|k| !REQUEST_KEYS.contains(&k.as_str())) {
        errors.push(ItemError::new(key.clone(), "unknown_field", format!("{key} is not an SMS batch field")));
    }
    let name = optional_text(&request, "name", MAX_NAME_CHARS, &mut errors);
    let metadata = parse_metadata(&request, &mut errors);
    let sender = sender(&request, &mut errors);
    let template_text = optional_text(&request, "bodyTemplate", MAX_TEMPLATE_CHARS, &mut errors);
    let template = template_text.as_deref().and_then(|raw| match Template::parse(raw) {
        Ok(template) => Some(template),
        Err(e) => {
            errors.push(ItemError::new("bodyTemplate", "invalid_template", e.to_string()));
            None
        }
    });
    let not_before = schedule(&request, &mut errors);
    let targets = list(&request, "targets", &mut errors);
    if targets.is_empty() && errors.is_empty() {
        errors.push(ItemError::new("targets", "empty", "an SMS batch needs at least one target"));
    }
    if targets.len() > max_targets {
        let message = format!("{} targets; at most {max_targets} per batch", targets.len());
        errors.push(ItemError::new("targets", "too_many", message));
        return Err(BatchRequestError::Invalid(errors));
    }
    // Only a template that parsed is filled in; without one, each target needs its own body.
    let template = Filling { template: template.as_ref(), given: template_text.is_some() };
    let messages: Vec<Message> =
        targets.iter().enumerate().filter_map(|(i, t)| parse_target(i, t, &template, &mut errors)).collect();
    if messages.len() == targets.len() {
        report_duplicates(&messages, &mut errors);
    }
    match (errors.is_empty(), sender) {
        (true, Some(sender)) => {
            Ok(NewSmsBatch { name, metadata, sender, body_template: template_text, not_before, messages })
        }
        _ => Err(BatchRequestError::Invalid(errors)),
    }
}

struct Filling<'a> {
    template: Option<&'a Template>,
    /// A template was sent (it may not have parsed: its targets then are not reported twice).
    given: bool,
}

fn optional_text(request: &Map<String, Value>, key: &str, max: usize, errors: &mut Vec<ItemError>) -> Option<String> {
    let value = request.get(key).filter(|v| !v.is_null())?;
    match value.as_str() {
        Some(raw) if text_error(raw, true, max).is_none() => Some(raw.trim().to_owned()),
        _ => {
            let message = format!("{key} must be text of 1 to {max} characters, not blank, without U+0000");
            let error = ItemError::new(key, "invalid_text", message);
            errors.push(if value.as_str().is_some_and(|s| s.len() > max) { error } else { error.with_value(value) });
            None
        }
    }
}

fn sender(request: &Map<String, Value>, errors: &mut Vec<ItemError>) -> Option<Sender> {
    let from = request.get("from").filter(|v| !v.is_null());
    let service = request.get("messagingServiceSid").filter(|v| !v.is_null());
    match (from, service) {
        (Some(from), None) => match from.as_str().map(|s| PhoneNumber::parse(s.trim())) {
            Some(Ok(phone)) => Some(Sender::From(phone)),
            _ => {
                let message = "from must be a Twilio phone number in E.164, e.g. +15550001000";
                errors.push(ItemError::new("from", "invalid_phone", message).with_value(from));
                None
            }
        },
        (None, Some(sid)) => match sid.as_str().map(str::trim).filter(|s| is_service_sid(s)) {
            Some(sid) => Some(Sender::Service(sid.to_owned())),
            None => {
                let message = "messagingServiceSid must be MG followed by 32 hex digits";
                errors.push(ItemError::new("messagingServiceSid", "invalid_sid", message).with_value(sid));
                None
            }
        },
        (Some(_), Some(_)) => {
            errors.push(ItemError::new("from", "conflict", "give either from or messagingServiceSid, not both"));
            None
        }
        (None, None) => {
            errors.push(ItemError::new("from", "required", "a sender is required: from or messagingServiceSid"));
            None
        }
    }
}

fn schedule(request: &Map<String, Value>, errors: &mut Vec<ItemError>) -> Option<DateTime<Utc>> {
    match request.get("schedule") {
        None | Some(Value::Null) => None,
        Some(Value::Object(fields)) => {
            for key in fields.keys().filter(|k| k.as_str() != "notBefore") {
                let message = format!("{key} is not an SMS schedule field (only notBefore)");
                errors.push(ItemError::new(format!("schedule.{key}"), "unknown_field", message));
            }
            parse_not_before(fields, errors)
        }
        Some(other) => {
            errors.push(ItemError::new("schedule", "invalid_type", "schedule must be an object").with_value(other));
            None
        }
    }
}

fn parse_target(index: usize, target: &Value, filling: &Filling, errors: &mut Vec<ItemError>) -> Option<Message> {
    let at = |field: &str| format!("targets[{index}]{field}");
    let before = errors.len();
    let Value::Object(fields) = target else {
        errors.push(ItemError::new(at(""), "invalid_type", "a target must be an object").at(index));
        return None;
    };
    for key in fields.keys().filter(|k| !TARGET_KEYS.contains(&k.as_str())) {
        errors.push(
            ItemError::new(at(&format!(".{key}")), "unknown_field", format!("{key} is not a target field")).at(index),
        );
    }
    let to = match fields.get("phone").filter(|v| !v.is_null()) {
        None => {
            errors.push(ItemError::new(at(".phone"), "required", "phone is required").at(index));
            None
        }
        Some(raw) => match raw.as_str().map(|s| PhoneNumber::parse(s.trim())) {
            Some(Ok(phone)) => Some(phone),
            Some(Err(e)) => {
                errors.push(ItemError::new(at(".phone"), "invalid_phone", e.to_string()).at(index).with_value(raw));
                None
            }
            None => {
                errors.push(ItemError::new(at(".phone"), "invalid_type", "must be text").at(index).with_value(raw));
                None
            }
        },
    };
    let mut values = match fields.get("variables").filter(|v| !v.is_null()) {
        None => Map::new(),
        Some(value @ Value::Object(map)) => match object_error(value) {
            None => map.clone(),
            Some((code, message)) => {
                errors.push(ItemError::new(at(".variables"), code, message).at(index));
                Map::new()
            }
        },
        Some(other) => {
            let error = ItemError::new(at(".variables"), "invalid_type", "must be an object");
            errors.push(error.at(index).with_value(other));
            Map::new()
        }
    };
    let stored = values.clone();
    // As the call prompts' variables: text, and the target's own name wins over a variable of that name.
    values = values.into_iter().filter_map(|(k, v)| as_text(&v).map(|t| (k, Value::String(t)))).collect();
    match fields.get("name").filter(|v| !v.is_null()) {
        None => {}
        Some(Value::String(name)) if text_error(name, true, MAX_NAME_CHARS).is_none() => {
            values.insert("name".into(), Value::String(name.trim().to_owned()));
        }
        Some(other) => {
            let message = format!("must be text of 1 (not blank) to {MAX_NAME_CHARS} characters");
            errors.push(ItemError::new(at(".name"), "invalid_text", message).at(index).with_value(other));
        }
    }
    let body = match (fields.get("body").filter(|v| !v.is_null()), filling.template) {
        (Some(Value::String(own)), _) if text_error(own, true, MAX_BODY_CHARS).is_none() => Some(own.trim().to_owned()),
        (Some(_), _) => {
            let message = format!("must be text of 1 (not blank) to {MAX_BODY_CHARS} characters, without U+0000");
            errors.push(ItemError::new(at(".body"), "invalid_text", message).at(index));
            None
        }
        (None, Some(template)) => match template.render(&values) {
            Ok(body) => rendered_body(index, body, errors),
            Err(missing) => {
                for name in missing {
                    let message =
                        format!("bodyTemplate uses {{{{{name}}}}}, which this target's name and variables do not give");
                    errors
                        .push(ItemError::new(at(&format!(".variables.{name}")), "unknown_variable", message).at(index));
                }
                None
            }
        },
        (None, None) if filling.given => None,
        (None, None) => {
            let message = "this target has no body and the batch no bodyTemplate";
            errors.push(ItemError::new(at(".body"), "required", message).at(index));
            None
        }
    };
    if errors.len() != before {
        return None;
    }
    let (to, body) = (to?, body?);
    let segments = segments::count(&body);
    Some(Message { to, variables: stored, body, segments })
}

/// A filled-in template: not empty, and no longer than one message may be.
fn rendered_body(index: usize, body: String, errors: &mut Vec<ItemError>) -> Option<String> {
    let chars = body.chars().count();
    let (code, message) = match body.trim() {
        "" => ("empty_body", "bodyTemplate filled with this target's variables is blank".to_owned()),
        _ if chars > MAX_BODY_CHARS => {
            ("body_too_long", format!("bodyTemplate filled in is {chars} characters; at most {MAX_BODY_CHARS}"))
        }
        _ if body.contains('\0') => ("invalid_text", "the filled-in body contains U+0000".to_owned()),
        trimmed => return Some(trimmed.to_owned()),
    };
    errors.push(ItemError::new(format!("targets[{index}].body"), code, message).at(index));
    None
}

/// The same text to the same number twice in one batch is a mistake, not a reminder.
fn report_duplicates(messages: &[Message], errors: &mut Vec<ItemError>) {
    let mut first_seen: HashMap<(&str, &str), usize> = HashMap::with_capacity(messages.len());
    for (index, message) in messages.iter().enumerate() {
        match first_seen.get(&(message.to.as_str(), message.body.as_str())) {
            Some(first) => {
                let text = format!("the same phone and text as targets[{first}]");
                let error = ItemError::new(format!("targets[{index}]"), "duplicate", text).at(index);
                errors.push(error.with_value(&Value::String(message.to.to_string())));
            }
            None => {
                first_seen.insert((message.to.as_str(), message.body.as_str()), index);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sms::segments::Encoding;

    const SERVICE: &str = "MG0123456789abcdef0123456789abcdef";

    fn parse(body: Value) -> Result<NewSmsBatch, BatchRequestError> {
        parse_request(&body.to_string(), 100)
    }

    fn errors(body: Value) -> Vec<(String, &'static str)> {
        match parse(body) {
            Err(BatchRequestError::Invalid(items)) => items.into_iter().map(|e| (e.path, e.code)).collect(),
            other => panic!("expected item errors, got {other:?}"),
        }
    }

    #[test]
    fn a_template_is_filled_per_target_and_counted_in_segments() {
        let batch = parse(json!({
            "name": " Reminders ", "from": "+1 (555) 000-1000",
            "bodyTemplate": "Hi {{name}}, your exam is {{when}}.",
            "targets": [
                {"phone": "+15550001001", "name": "Dana", "variables": {"when": "Tuesday 9:30"}},
                {"phone": "+15550001002", "name": "Zoë", "variables": {"when": "Wed", "name": "ignored"}},
                {"phone": "+15550001003", "body": "Your own text “quoted”"}
            ],
            "schedule": {"notBefore": "2026-12-03T09:00:00-05:00"}
        }))
        .unwrap();
        assert_eq!(batch.name.as_deref(), Some("Reminders"));
        assert_eq!(batch.sender, Sender::From(PhoneNumber::parse("+15550001000").unwrap()));
        let bodies: Vec<&str> = batch.messages.iter().map(|m| m.body.as_str()).collect();
        assert_eq!(
            bodies,
            ["Hi Dana, your exam is Tuesday 9:30.", "Hi Zoë, your exam is Wed.", "Your own text “quoted”"]
        );
        assert_eq!(batch.messages[1].variables, json!({"when": "Wed", "name": "ignored"}).as_object().unwrap().clone());
        assert_eq!(batch.messages[0].segments.encoding, Encoding::Gsm7);
        assert_eq!(batch.messages[2].segments.encoding, Encoding::Ucs2);
        let rpc = batch.rpc_request(Some("k1"), "hash");
        assert_eq!(rpc["sender"], "+15550001000");
        assert_eq!(rpc["not_before"], "2026-12-03T14:00:00+00:00");
        assert_eq!(rpc["messages"][0]["to_phone"], "+15550001001");
        assert_eq!(rpc["messages"][2]["encoding"], "UCS-2");
        assert_eq!(rpc["messages"][0]["segments"], 1);
    }

    #[test]
    fn an_unknown_variable_is_reported_at_the_targets_path() {
        let found = errors(json!({
            "messagingServiceSid": SERVICE, "bodyTemplate": "{{name}}: {{when}} at {{clinic}}",
            "targets": [{"phone": "+15550001001", "name": "Dana", "variables": {"when": "9:30", "clinic": "A"}},
                        {"phone": "+15550001002", "variables": {"when": null}}]
        }));
        assert_eq!(
            found,
            vec![
                ("targets[1].variables.name".into(), "unknown_variable"),
                ("targets[1].variables.when".into(), "unknown_variable"),
                ("targets[1].variables.clinic".into(), "unknown_variable")
            ]
        );
    }

    #[test]
    fn the_sender_is_one_number_or_one_service() {
        let target = json!([{"phone": "+15550001001", "body": "hi"}]);
        assert_eq!(errors(json!({"targets": target})), vec![("from".into(), "required")]);
        assert_eq!(
            errors(json!({"from": "+15550001000", "messagingServiceSid": SERVICE, "targets": target})),
            vec![("from".into(), "conflict")]
        );
        assert_eq!(errors(json!({"from": "shop", "targets": target})), vec![("from".into(), "invalid_phone")]);
        assert_eq!(
            errors(json!({"messagingServiceSid": "MG12", "targets": target})),
            vec![("messagingServiceSid".into(), "invalid_sid")]
        );
        let batch = parse(json!({"messagingServiceSid": SERVICE, "targets": target})).unwrap();
        assert_eq!(Sender::parse(batch.sender.as_str()), Some(batch.sender));
    }

    #[test]
    fn every_bad_part_is_reported_with_its_path() {
        let found = errors(json!({
            "from": "+15550001000", "bodyTemplate": "Hi {{name",
            "targets": [{"phone": "12"}, "x", {"phone": "+15550001003", "extra": 1, "variables": [1]}],
            "schedule": {"notBefore": "tomorrow", "window": {}}, "colour": "red"
        }));
        assert_eq!(
            found,
            vec![
                ("colour".into(), "unknown_field"),
                ("bodyTemplate".into(), "invalid_template"),
                ("schedule.window".into(), "unknown_field"),
                ("schedule.notBefore".into(), "invalid_time"),
                ("targets[0].phone".into(), "invalid_phone"),
                ("targets[1]".into(), "invalid_type"),
                ("targets[2].extra".into(), "unknown_field"),
                ("targets[2].variables".into(), "invalid_type"),
            ]
        );
    }

    #[test]
    fn bodies_are_required_not_blank_and_at_most_1600_characters() {
        let one = |target: Value, template: Option<&str>| {
            errors(json!({"from": "+15550001000", "bodyTemplate": template, "targets": [target]}))
        };
        assert_eq!(one(json!({"phone": "+15550001001"}), None), vec![("targets[0].body".into(), "required")]);
        assert_eq!(
            one(json!({"phone": "+15550001001", "body": "  "}), None),
            vec![("targets[0].body".into(), "invalid_text")]
        );
        let long = "a".repeat(1_000);
        let filled = one(json!({"phone": "+15550001001", "variables": {"x": long}}), Some("{{x}}{{x}}"));
        assert_eq!(filled, vec![("targets[0].body".into(), "body_too_long")]);
        let blank = one(json!({"phone": "+15550001001", "variables": {"x": " "}}), Some("{{x}}"));
        assert_eq!(blank, vec![("targets[0].body".into(), "empty_body")]);
    }

    #[test]
    fn empty_oversized_and_duplicate_batches_are_refused() {
        assert_eq!(errors(json!({"from": "+15550001000", "targets": []})), vec![("targets".into(), "empty")]);
        let many: Vec<Value> = (0..101).map(|i| json!({"phone": format!("+1555000{i:04}"), "body": "x"})).collect();
        assert_eq!(errors(json!({"from": "+15550001000", "targets": many})), vec![("targets".into(), "too_many")]);
        let twice = errors(json!({"from": "+15550001000", "bodyTemplate": "Hi {{name}}", "targets": [
            {"phone": "+15550001001", "name": "Dana"}, {"phone": "+15550001001", "name": "Sam"},
            {"phone": "+1 555 000 1001", "name": "Dana"}]}));
        assert_eq!(twice, vec![("targets[2]".into(), "duplicate")]);
        assert!(matches!(parse_request("[1]", 10), Err(BatchRequestError::Malformed(_))));
        assert!(matches!(parse_request("{", 10), Err(BatchRequestError::Malformed(_))));
    }
}
