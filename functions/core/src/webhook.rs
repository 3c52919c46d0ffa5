//! Supabase's database-webhook payload: `{type, table, schema, record, old_record}`.

use crate::ids::PendingCallId;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseWebhook {
    #[serde(rename = "type")]
    pub kind: String,
    pub table: String,
    pub schema: String,
    #[serde(default)]
    pub record: Option<Value>,
}

/// What the webhook asks of us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookAction {
    /// A new pending call: try to dial it.
    Dispatch(PendingCallId),
    /// Some other table or event: acknowledged, nothing done.
    Ignore(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the webhook's record has no valid id")]
pub struct MissingRecordId;

impl DatabaseWebhook {
    pub fn action(&self) -> Result<WebhookAction, MissingRecordId> {
        if self.schema != "public" || self.table != "pending_calls" {
            return Ok(WebhookAction::Ignore("not the pending_calls table"));
        }
        if self.kind != "INSERT" {
            return Ok(WebhookAction::Ignore("only inserts are dispatched"));
        }
        let id = self.record.as_ref().and_then(|r| r.get("id")).and_then(Value::as_str).ok_or(MissingRecordId)?;
        PendingCallId::parse(id).map(WebhookAction::Dispatch).map_err(|_| MissingRecordId)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> DatabaseWebhook {
        serde_json::from_str(raw).unwrap()
    }

    #[test]
    fn an_insert_into_pending_calls_is_dispatched() {
        let hook = parse(
            r#"{"type":"INSERT","table":"pending_calls","schema":"public",
            "record":{"id":"6f9619ff-8b86-d011-b42d-00c04fc964ff","phone":"+15550001001"},"old_record":null}"#,
        );
        assert_eq!(
            hook.action().unwrap(),
            WebhookAction::Dispatch(PendingCallId::parse("6f9619ff-8b86-d011-b42d-00c04fc964ff").unwrap())
        );
    }

    #[test]
    fn other_events_are_ignored_and_bad_records_refused() {
        let update = parse(r#"{"type":"UPDATE","table":"pending_calls","schema":"public","record":{"id":"x"}}"#);
        assert!(matches!(update.action(), Ok(WebhookAction::Ignore(_))));
        let other = parse(r#"{"type":"INSERT","table":"call_sessions","schema":"public","record":{}}"#);
        assert!(matches!(other.action(), Ok(WebhookAction::Ignore(_))));
        let no_id = parse(r#"{"type":"INSERT","table":"pending_calls","schema":"public","record":{"id":"nope"}}"#);
        assert_eq!(no_id.action(), Err(MissingRecordId));
        assert!(serde_json::from_str::<DatabaseWebhook>(r#"{"table":"pending_calls"}"#).is_err());
    }
}
