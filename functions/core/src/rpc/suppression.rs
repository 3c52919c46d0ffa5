//! The do-not-call list's functions of the contract (`sql/schema/62_suppression.sql`): one type per SQL
//! function, with its answer, as the rest of [`super`]. What each function does is written beside it in SQL.

use super::{BatchDocument, Rpc};
use crate::phone::PhoneNumber;
use crate::suppression::{Source, ADDED_BY_API};
use serde::{Deserialize, Serialize};
use serde_json::Value;

fn phone() -> PhoneNumber {
    PhoneNumber::parse("+15550001001").expect("E.164")
}

/// `add_suppression`: a phone onto the list (idempotent).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AddSuppression {
    #[serde(rename = "p_phone")]
    pub phone: PhoneNumber,
    #[serde(rename = "p_reason")]
    pub reason: Option<String>,
    #[serde(rename = "p_source")]
    pub source: Source,
    /// Who asked: [`ADDED_BY_API`] for the API key.
    #[serde(rename = "p_added_by")]
    pub added_by: Option<String>,
}

/// `add_suppression`'s answer: whether the entry is new (201) or was there already (200), and the entry
/// (`{phone, reason, source, added_by, created_at}`, passed on in camelCase).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SuppressionAdded {
    pub created: bool,
    pub suppression: serde_json::Map<String, Value>,
}

impl Rpc for AddSuppression {
    const NAME: &'static str = "add_suppression";
    type Answer = SuppressionAdded;
    fn examples() -> Vec<Self> {
        vec![Self {
            phone: phone(),
            reason: Some("asked".into()),
            source: Source::Manual,
            added_by: Some(ADDED_BY_API.into()),
        }]
    }
}

/// `remove_suppression`: `{removed, suppression: the entry removed | null}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemoveSuppression {
    #[serde(rename = "p_phone")]
    pub phone: PhoneNumber,
}

impl Rpc for RemoveSuppression {
    const NAME: &'static str = "remove_suppression";
    type Answer = BatchDocument;
    fn examples() -> Vec<Self> {
        vec![Self { phone: phone() }]
    }
}

/// `list_suppressions`: `{suppressions: [...], page: {limit, offset, total}}`, newest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListSuppressions {
    #[serde(rename = "p_limit")]
    pub limit: u32,
    #[serde(rename = "p_offset")]
    pub offset: u32,
}

impl Rpc for ListSuppressions {
    const NAME: &'static str = "list_suppressions";
    type Answer = BatchDocument;
    fn examples() -> Vec<Self> {
        vec![Self { limit: 100, offset: 0 }]
    }
}

/// What an operator may do to the do-not-call list (`operator_suppression_action`'s `p_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SuppressionAction {
    /// `add_suppression` with the operator's email as `added_by`.
    Add,
    /// `remove_suppression`.
    Remove,
}

/// `operator_suppression_action`: an operator adds (source manual or clinic) or removes a phone, audited
/// (`sql/schema/87_operator_actions.sql`). Answers `{action, created, suppression}` or `{action, removed,
/// suppression | null}`, passed on as SQL wrote it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperatorSuppressionAction {
    #[serde(rename = "p_action")]
    pub action: SuppressionAction,
    #[serde(rename = "p_phone")]
    pub phone: PhoneNumber,
    #[serde(rename = "p_reason", skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(rename = "p_source", skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
}

impl Rpc for OperatorSuppressionAction {
    const NAME: &'static str = "operator_suppression_action";
    type Answer = BatchDocument;
    fn examples() -> Vec<Self> {
        vec![Self {
            action: SuppressionAction::Add,
            phone: phone(),
            reason: Some("asked".into()),
            source: Some(Source::Clinic),
        }]
    }
}
