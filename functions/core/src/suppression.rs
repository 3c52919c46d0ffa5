//! The do-not-call list's requests (`/api/v1/suppressions`), parsed whole before anything is written.
//!
//! `POST /api/v1/suppressions` takes `{"phone", "reason"?, "source"?}` (source `manual` by default);
//! `POST /api/v1/suppressions/remove` takes `{"phone"}`: a phone is personal data, so it travels in a body,
//! never in a URL (a `DELETE /api/v1/suppressions/{phone}` would put it in every access log on the way).
//! Every problem is reported with its path, as for a batch (`batch::ItemError`). The list itself is
//! `public.suppression_list` (`sql/schema/62_suppression.sql`).

use crate::api::validation_error;
use crate::batch::{text_error, ItemError};
use crate::error::ApiError;
use crate::phone::PhoneNumber;
use serde::Serialize;
use serde_json::{Map, Value};

/// The longest `reason` (the table's check says the same).
pub const MAX_REASON_CHARS: usize = 500;
/// The body cap of both routes: a phone, a reason and a source fit many times over.
pub const SUPPRESSION_MAX_BYTES: usize = 8 * 1024;
/// Who added an entry through the API key (the dashboard would name its operator).
pub const ADDED_BY_API: &str = "api";

/// Why a phone is on the list (`suppression_list.source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Asked for by hand (the default).
    Manual,
    /// The person opted out of texts (the SQL triggers on `sms_opt_outs` add these; a START lifts them).
    SmsOptOut,
    /// A clinic asked not to be called.
    Clinic,
}

impl Source {
    const NAMES: [(&'static str, Source); 3] =
        [("manual", Source::Manual), ("sms_opt_out", Source::SmsOptOut), ("clinic", Source::Clinic)];
}

/// `POST /api/v1/suppressions`, valid.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSuppression {
    pub phone: PhoneNumber,
    /// Trimmed; `None` when absent or blank.
    pub reason: Option<String>,
    pub source: Source,
}

/// Parses `POST /api/v1/suppressions`'s body.
pub fn parse_add(body: &str) -> Result<NewSuppression, ApiError> {
    let fields = object(body)?;
    let mut errors = unknown_fields(&fields, &["phone", "reason", "source"]);
    let phone = phone(&fields, &mut errors);
    let reason = match fields.get("reason") {
        None | Some(Value::Null) => None,
        Some(value) => match value.as_str().map(|s| (s, text_error(s, false, MAX_REASON_CHARS))) {
            Some((text, None)) => Some(text.trim().to_owned()).filter(|t| !t.is_empty()),
            Some((_, Some(message))) => {
                errors.push(ItemError::new("reason", "invalid_text", message).with_value(value));
                None
            }
            None => {
                errors.push(ItemError::new("reason", "invalid_type", "reason must be text").with_value(value));
                None
            }
        },
    };
    let source = match fields.get("source") {
        None | Some(Value::Null) => Some(Source::Manual),
        Some(value) => {
            let found = Source::NAMES.iter().find(|(name, _)| Some(*name) == value.as_str()).map(|(_, s)| *s);
            if found.is_none() {
                let message = "source must be manual, sms_opt_out or clinic";
                errors.push(ItemError::new("source", "invalid_source", message).with_value(value));
            }
            found
        }
    };
    match (phone, source) {
        (Some(phone), Some(source)) if errors.is_empty() => Ok(NewSuppression { phone, reason, source }),
        _ => Err(validation_error(errors)),
    }
}

/// Parses `POST /api/v1/suppressions/remove`'s body: the phone to take off the list.
pub fn parse_remove(body: &str) -> Result<PhoneNumber, ApiError> {
    let fields = object(body)?;
    let mut errors = unknown_fields(&fields, &["phone"]);
    match phone(&fields, &mut errors) {
        Some(phone) if errors.is_empty() => Ok(phone),
        _ => Err(validation_error(errors)),
    }
}

fn object(body: &str) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_str(body) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(ApiError::bad_request("invalid_json", "the body must be a JSON object")),
        Err(e) => Err(ApiError::bad_request("invalid_json", format!("not JSON: {e}"))),
    }
}

fn unknown_fields(fields: &Map<String, Value>, known: &[&str]) -> Vec<ItemError> {
    fields
        .keys()
        .filter(|k| !known.contains(&k.as_str()))
        .map(|k| ItemError::new(k.clone(), "unknown_field", format!("{k} is not a field of this request")))
        .collect()
}

fn phone(fields: &Map<String, Value>, errors: &mut Vec<ItemError>) -> Option<PhoneNumber> {
    let Some(value) = fields.get("phone").filter(|v| !v.is_null()) else {
        errors.push(ItemError::new("phone", "required", "phone is required"));
        return None;
    };
    match value.as_str().map(PhoneNumber::parse) {
        Some(Ok(phone)) => Some(phone),
        Some(Err(e)) => {
            errors.push(ItemError::new("phone", "invalid_phone", e.to_string()).with_value(value));
            None
        }
        None => {
            errors.push(ItemError::new("phone", "invalid_type", "phone must be text").with_value(value));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refused(body: Value) -> Value {
        parse_add(&body.to_string()).unwrap_err().body()["error"].clone()
    }

    #[test]
    fn a_phone_with_a_reason_and_source() {
        let parsed = parse_add(r#"{"phone": "+1 (555) 600-0001", "reason": "  asked twice ", "source": "clinic"}"#);
        assert_eq!(
            parsed,
            Ok(NewSuppression {
                phone: PhoneNumber::parse("+15556000001").unwrap(),
                reason: Some("asked twice".into()),
                source: Source::Clinic
            })
        );
        let bare = parse_add(r#"{"phone": "+15556000001", "reason": "  "}"#).unwrap();
        assert_eq!((bare.reason, bare.source), (None, Source::Manual), "a blank reason is none; manual by default");
        assert_eq!(serde_json::to_value(Source::SmsOptOut).unwrap(), json!("sms_opt_out"));
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let error = refused(json!({"phone": "555-0001", "reason": "x".repeat(501), "source": "whim", "extra": 1}));
        assert_eq!(error["code"], "validation_error");
        let paths: Vec<&str> = error["items"].as_array().unwrap().iter().map(|i| i["path"].as_str().unwrap()).collect();
        assert_eq!(paths, ["extra", "phone", "reason", "source"]);
        assert_eq!(error["items"][1]["code"], "invalid_phone");
        assert_eq!(refused(json!({}))["items"][0]["code"], "required");
        assert_eq!(refused(json!({"phone": 5550001}))["items"][0]["code"], "invalid_type");
        assert_eq!(refused(json!({"phone": "+15556000001", "reason": "a\u{0}b"}))["items"][0]["code"], "invalid_text");
        assert_eq!(parse_add("[1]").unwrap_err().code, "invalid_json");
        assert_eq!(parse_add("{").unwrap_err().status, 400);
    }

    #[test]
    fn removal_takes_the_phone_only() {
        assert_eq!(parse_remove(r#"{"phone": "+15556000001"}"#), Ok(PhoneNumber::parse("+15556000001").unwrap()));
        let error = parse_remove(r#"{"phone": "+15556000001", "reason": "x"}"#).unwrap_err();
        assert_eq!(error.body()["error"]["items"][0]["path"], "reason");
        assert_eq!(parse_remove(r#"{"phone": "nope"}"#).unwrap_err().body()["error"]["items"][0]["path"], "phone");
    }
}
