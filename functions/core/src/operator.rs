//! The dashboard's API: its configuration, who the signed-in user is, and the operators' actions.
//!
//! Every route but the configuration takes a Supabase user's access token (`user_jwt`). The actions are one SQL
//! function each (`rpc::OperatorCallAction`, ...), called with the user's own token so that `auth.uid()` is the
//! operator: the function checks the role itself and writes the audit row. This module decides the routes, reads
//! the bodies, and turns the database's refusals into HTTP answers ([`sql_refusal`]).

use crate::classification::{ClassificationType, IvrAction};
use crate::error::ApiError;
use crate::ids::{BatchId, PendingCallId};
use crate::rpc::suppression::{OperatorSuppressionAction, SuppressionAction};
use crate::rpc::{BatchAction, CallAction, ClassificationAction, MAX_CALL_ACTION_IDS as MAX_CALL_IDS};
use crate::suppression::{self, Source};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

/// Every route, as the OpenAPI document names it: (method, path template).
pub const ROUTES: [(&str, &str); 6] = [
    ("GET", "/api/v1/dashboard/config"),
    ("GET", "/api/v1/operator/me"),
    ("POST", "/api/v1/operator/calls/{action}"),
    ("POST", "/api/v1/operator/batches/{batchId}/{action}"),
    ("POST", "/api/v1/operator/classifications/{classificationId}/{action}"),
    ("POST", "/api/v1/operator/suppressions/{action}"),
];

/// The body cap of every action: 500 ids are about 20 KB; a correction a few hundred bytes of IVR steps.
pub const ACTION_MAX_BYTES: usize = 64 * 1024;
/// The longest reason an operator may give (it is kept in the audit row).
pub const MAX_REASON_CHARS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /api/v1/dashboard/config`: where the dashboard finds Supabase (no token: the page needs it to sign in).
    DashboardConfig,
    /// `GET /api/v1/operator/me`: the signed-in user's id, email and role.
    Me,
    Calls(CallAction),
    Batch(BatchId, BatchAction),
    Classification(Uuid, ClassificationAction),
    /// `POST /api/v1/operator/suppressions/{add|remove}`: the phone in the body, never in the path.
    Suppressions(SuppressionAction),
}

impl Route {
    /// Whether the route takes a body (the actions: a JSON body, capped at [`ACTION_MAX_BYTES`]).
    pub fn reads_body(self) -> bool {
        matches!(self, Route::Calls(_) | Route::Batch(..) | Route::Classification(..) | Route::Suppressions(_))
    }
}

fn call_action(name: &str) -> Option<CallAction> {
    Some(match name {
        "retry_now" => CallAction::RetryNow,
        "cancel" => CallAction::Cancel,
        "reset" => CallAction::Reset,
        "archive" => CallAction::Archive,
        "unarchive" => CallAction::Unarchive,
        _ => return None,
    })
}

/// The route of a request under `/api/v1/dashboard/` or `/api/v1/operator/`: `None` for other paths; an error
/// for a known path with another method (405), a malformed id (400) or an unknown action (400).
pub fn route(method: &str, path: &str) -> Option<Result<Route, ApiError>> {
    let rest = path.strip_prefix("/api/v1/")?;
    let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let template = match segments.as_slice() {
        ["dashboard", "config"] => ROUTES[0].1,
        ["operator", "me"] => ROUTES[1].1,
        ["operator", "calls", _] => ROUTES[2].1,
        ["operator", "batches", _, _] => ROUTES[3].1,
        ["operator", "classifications", _, _] => ROUTES[4].1,
        ["operator", "suppressions", _] => ROUTES[5].1,
        _ => return None,
    };
    let allowed = allowed_method(template);
    if method != allowed {
        let message = format!("{path} takes {allowed}, not {method}");
        return Some(Err(ApiError::new(405, "method_not_allowed", message)));
    }
    Some(match segments.as_slice() {
        ["operator", "calls", action] => call_action(action).map(Route::Calls).ok_or_else(|| unknown_action(action)),
        ["operator", "batches", id, action] => {
            BatchId::parse(id).map_err(|_| invalid_id("a batch id")).and_then(|id| match *action {
                "cancel" => Ok(Route::Batch(id, BatchAction::Cancel)),
                "retry-failed" => Ok(Route::Batch(id, BatchAction::RetryFailed)),
                "pause" => Ok(Route::Batch(id, BatchAction::Pause)),
                "resume" => Ok(Route::Batch(id, BatchAction::Resume)),
                other => Err(unknown_action(other)),
            })
        }
        ["operator", "classifications", id, action] => {
            Uuid::parse_str(id).map_err(|_| invalid_id("a classification id")).and_then(|id| match *action {
                "invalidate" => Ok(Route::Classification(id, ClassificationAction::Invalidate)),
                "correct" => Ok(Route::Classification(id, ClassificationAction::Correct)),
                other => Err(unknown_action(other)),
            })
        }
        ["operator", "suppressions", action] => match *action {
            "add" => Ok(Route::Suppressions(SuppressionAction::Add)),
            "remove" => Ok(Route::Suppressions(SuppressionAction::Remove)),
            other => Err(unknown_action(other)),
        },
        ["operator", "me"] => Ok(Route::Me),
        _ => Ok(Route::DashboardConfig),
    })
}

/// The method a route template takes (each takes one): a 405's `Allow` header.
pub fn allowed_method(template: &str) -> &'static str {
    ROUTES.iter().find(|(_, t)| *t == template).map_or("GET", |(m, _)| m)
}

/// The `Allow` header of a 405 for `path`.
pub fn allow_header(path: &str) -> Option<String> {
    ["GET", "POST"]
        .into_iter()
        .find(|m| matches!(route(m, path), Some(Ok(_)) | Some(Err(ApiError { status: 400, .. }))))
        .map(str::to_owned)
}

fn invalid_id(what: &str) -> ApiError {
    ApiError::bad_request("invalid_id", format!("{what} is a UUID"))
}

fn unknown_action(action: &str) -> ApiError {
    let shown: String = action.chars().take(40).collect();
    ApiError::bad_request("unknown_action", format!("no action {shown:?} here"))
}

fn invalid_body(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_body", message)
}

// ------------------------------------------------------------------------------------------------ bodies

/// `{"ids": [uuid, ...]}`: 1 to [`MAX_CALL_IDS`] ids (duplicates count once, the order kept).
pub fn call_ids(body: &str) -> Result<Vec<PendingCallId>, ApiError> {
    let shape = || invalid_body("send {\"ids\": [\"<pending call id>\", ...]}: 1 to 500 UUIDs");
    let parsed = json_object(body).map_err(|_| shape())?;
    let raw_ids = match (parsed.len(), parsed.get("ids")) {
        (1, Some(Value::Array(ids))) => ids,
        _ => return Err(shape()),
    };
    let mut ids: Vec<PendingCallId> = Vec::with_capacity(raw_ids.len().min(MAX_CALL_IDS));
    for (i, raw) in raw_ids.iter().enumerate() {
        let id = raw
            .as_str()
            .and_then(|raw| PendingCallId::parse(raw).ok())
            .ok_or_else(|| invalid_body(format!("ids[{i}] is not a UUID")))?;
        if !ids.contains(&id) {
            ids.push(id);
        }
        if ids.len() > MAX_CALL_IDS {
            return Err(invalid_body(format!("at most {MAX_CALL_IDS} ids per request")));
        }
    }
    if ids.is_empty() {
        return Err(invalid_body("ids is empty: send 1 to 500 UUIDs"));
    }
    Ok(ids)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InvalidateBody {
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CorrectBody {
    classification_type: ClassificationType,
    ivr_actions: Vec<IvrAction>,
    reason: String,
}

/// The body of a classification action, which is `p_correction` as the SQL function takes it (snake_case, like the
/// rows the dashboard reads): `invalidate` takes `{"reason"}`, `correct` `{"classification_type", "ivr_actions",
/// "reason"}` (the table's own checks, in SQL, refuse a correction that is
/// no valid classification: 400 too).
pub fn correction(action: ClassificationAction, body: &str) -> Result<Value, ApiError> {
    match action {
        ClassificationAction::Invalidate => {
            let parsed: InvalidateBody =
                from_json(body).map_err(|_| invalid_body("send {\"reason\": \"why the classification is wrong\"}"))?;
            Ok(json!({"reason": reason(&parsed.reason)?}))
        }
        ClassificationAction::Correct => {
            let parsed: CorrectBody = from_json(body).map_err(|e| {
                invalid_body(format!(
                    "send {{\"classification_type\": \"human\" | \"ivr_only\" | \"ivr_then_human\", \"ivr_actions\": \
                     [{{\"action\", \"value\", \"timing_ms\"}}], \"reason\"}} ({})",
                    e.to_string().chars().take(120).collect::<String>()
                ))
            })?;
            if parsed.ivr_actions.iter().any(|step| !step.speech_is_clean()) {
                return Err(invalid_body("an IVR step's value holds a control character"));
            }
            Ok(json!({
                "classification_type": parsed.classification_type,
                "ivr_actions": parsed.ivr_actions,
                "reason": reason(&parsed.reason)?,
            }))
        }
    }
}

/// The body of a do-not-call action, parsed as `/api/v1/suppressions`' (`suppression::parse_add` /
/// `parse_remove`: every problem with its path, 400 `validation_error`): add takes `{"phone", "reason"?,
/// "source"?: "manual" | "clinic"}` (an `sms_opt_out` entry is the SMS opt-outs' own), remove `{"phone"}`.
pub fn suppression_request(action: SuppressionAction, body: &str) -> Result<OperatorSuppressionAction, ApiError> {
    match action {
        SuppressionAction::Add => {
            let new = suppression::parse_add(body)?;
            if new.source == Source::SmsOptOut {
                let message = "source must be manual or clinic (sms_opt_out entries come from SMS opt-outs)";
                return Err(crate::api::validation_error(vec![crate::batch::ItemError::new(
                    "source",
                    "invalid_source",
                    message,
                )]));
            }
            Ok(OperatorSuppressionAction { action, phone: new.phone, reason: new.reason, source: Some(new.source) })
        }
        SuppressionAction::Remove => {
            let phone = suppression::parse_remove(body)?;
            Ok(OperatorSuppressionAction { action, phone, reason: None, source: None })
        }
    }
}

/// A body read as text into a `Value` first, then into its type: the Worker has both deserializers already (the
/// rpc answers are read so); one from text per body type would add to the wasm (docs/wasm-size.md).
fn from_json<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, serde_json::Error> {
    serde_json::from_value(serde_json::from_str::<Value>(body)?)
}

fn json_object(body: &str) -> Result<serde_json::Map<String, Value>, ()> {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(()),
    }
}

fn reason(raw: &str) -> Result<String, ApiError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(invalid_body("reason is required"));
    }
    if trimmed.chars().count() > MAX_REASON_CHARS {
        return Err(invalid_body(format!("reason is longer than {MAX_REASON_CHARS} characters")));
    }
    Ok(trimmed.to_owned())
}

/// The batch and classification actions read a body only to refuse what they do not take: a batch action takes
/// none (an empty body or `{}`).
pub fn no_body(body: &str) -> Result<(), ApiError> {
    match body.trim() {
        "" | "{}" => Ok(()),
        _ => Err(invalid_body("this action takes no body")),
    }
}

// ------------------------------------------------------------------------------------------------ answers

/// `GET /api/v1/operator/me`'s answer, from `operator_of`'s: `{"userId", "email", "role"}`, role `viewer`,
/// `operator` or null.
pub fn me_answer(identity: &crate::rpc::OperatorIdentity) -> Value {
    json!({"userId": identity.user_id, "email": identity.email, "role": identity.role})
}

/// What PostgREST answered when an action function refused (its status and body): the SQLSTATE the function
/// raised decides. 42501 (not an operator) → 403 `forbidden`; P0002 (unknown batch or classification) → 404;
/// 22023 / 22P02 (a bad argument) → 400; PostgREST refusing the token (401) → 401; anything else → 502. The
/// function's message is passed on (the functions write no personal data in them); PostgREST's `details`, which
/// can quote a row, never are.
pub fn sql_refusal(function: &str, status: u16, body: &str) -> ApiError {
    let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let field = |name: &str| parsed.get(name).and_then(Value::as_str).unwrap_or("").to_owned();
    let (code, message) = (field("code"), field("message"));
    match code.as_str() {
        "42501" => ApiError::new(403, "forbidden", message),
        "P0002" => ApiError::not_found(message),
        "22023" | "22P02" => ApiError::bad_request("invalid_parameter", message),
        _ if status == 401 => ApiError::unauthorized(format!("the database refused the access token: {message}")),
        _ => ApiError::upstream(format!("{function} failed ({status}): {}", format!("{code} {message}").trim())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "6f9619ff-8b86-d011-b42d-00c04fc964ff";

    fn ok(method: &str, path: &str) -> Route {
        route(method, path).expect("an operator path").expect("a route")
    }

    fn refused(method: &str, path: &str) -> ApiError {
        route(method, path).expect("an operator path").expect_err("refused")
    }

    #[test]
    fn routes_every_path() {
        let batch = BatchId::parse(ID).unwrap();
        let class = Uuid::parse_str(ID).unwrap();
        assert_eq!(ok("GET", "/api/v1/dashboard/config"), Route::DashboardConfig);
        assert_eq!(ok("GET", "/api/v1/operator/me/"), Route::Me);
        for (name, action) in [
            ("retry_now", CallAction::RetryNow),
            ("cancel", CallAction::Cancel),
            ("reset", CallAction::Reset),
            ("archive", CallAction::Archive),
            ("unarchive", CallAction::Unarchive),
        ] {
            assert_eq!(ok("POST", &format!("/api/v1/operator/calls/{name}")), Route::Calls(action));
            assert_eq!(serde_json::to_value(action).unwrap(), name, "p_action is the path's name");
        }
        assert_eq!(
            ok("POST", &format!("/api/v1/operator/batches/{ID}/cancel")),
            Route::Batch(batch, BatchAction::Cancel)
        );
        assert_eq!(
            ok("POST", &format!("/api/v1/operator/batches/{ID}/retry-failed")),
            Route::Batch(batch, BatchAction::RetryFailed)
        );
        assert_eq!(serde_json::to_value(BatchAction::RetryFailed).unwrap(), "retry_failed");
        for (name, action) in [("pause", BatchAction::Pause), ("resume", BatchAction::Resume)] {
            assert_eq!(ok("POST", &format!("/api/v1/operator/batches/{ID}/{name}")), Route::Batch(batch, action));
            assert_eq!(serde_json::to_value(action).unwrap(), name, "p_action is the path's name");
        }
        assert_eq!(
            ok("POST", &format!("/api/v1/operator/classifications/{ID}/invalidate")),
            Route::Classification(class, ClassificationAction::Invalidate)
        );
        assert_eq!(
            ok("POST", &format!("/api/v1/operator/classifications/{ID}/correct")),
            Route::Classification(class, ClassificationAction::Correct)
        );
        assert_eq!(ok("POST", "/api/v1/operator/suppressions/add"), Route::Suppressions(SuppressionAction::Add));
        assert_eq!(ok("POST", "/api/v1/operator/suppressions/remove"), Route::Suppressions(SuppressionAction::Remove));
        assert!(Route::Suppressions(SuppressionAction::Add).reads_body());
        assert!(Route::Calls(CallAction::Cancel).reads_body() && !Route::Me.reads_body());
    }

    #[test]
    fn refuses_methods_ids_and_actions_and_ignores_other_paths() {
        assert_eq!(refused("POST", "/api/v1/dashboard/config").status, 405);
        assert_eq!(refused("GET", "/api/v1/operator/calls/cancel").status, 405);
        assert_eq!(refused("GET", "/api/v1/operator/calls/explode").status, 405, "the method first");
        assert_eq!(refused("POST", "/api/v1/operator/calls/explode").code, "unknown_action");
        assert_eq!(refused("POST", "/api/v1/operator/calls/RETRY_NOW").code, "unknown_action");
        assert_eq!(refused("POST", &format!("/api/v1/operator/batches/{ID}/explode")).code, "unknown_action");
        assert_eq!(refused("POST", "/api/v1/operator/batches/nope/cancel").code, "invalid_id");
        assert_eq!(refused("POST", "/api/v1/operator/classifications/nope/correct").code, "invalid_id");
        assert_eq!(refused("POST", &format!("/api/v1/operator/classifications/{ID}/delete")).code, "unknown_action");
        assert_eq!(refused("POST", "/api/v1/operator/suppressions/+15550001001").code, "unknown_action");
        assert_eq!(refused("GET", "/api/v1/operator/suppressions/add").status, 405);
        assert_eq!(allow_header("/api/v1/operator/me").as_deref(), Some("GET"));
        assert_eq!(allow_header("/api/v1/operator/calls/cancel").as_deref(), Some("POST"));
        assert_eq!(allow_header("/api/v1/operator/batches/nope/cancel").as_deref(), Some("POST"));
        for other in ["/api/v1/operator", "/api/v1/operator/calls", "/api/v1/batches", "/health", "/api/v1/dashboard"] {
            assert!(route("GET", other).is_none(), "{other}");
        }
    }

    #[test]
    fn call_ids_are_one_to_500_uuids() {
        let id = PendingCallId::parse(ID).unwrap();
        assert_eq!(call_ids(&format!(r#"{{"ids": ["{ID}"]}}"#)).unwrap(), vec![id]);
        assert_eq!(call_ids(&format!(r#"{{"ids": ["{ID}", " {} "]}}"#, ID.to_uppercase())).unwrap(), vec![id], "once");
        let many: Vec<String> = (0..500).map(|_| Uuid::new_v4().to_string()).collect();
        assert_eq!(call_ids(&json!({"ids": many}).to_string()).unwrap().len(), 500);
        let too_many: Vec<String> = (0..501).map(|_| Uuid::new_v4().to_string()).collect();
        for bad in [
            json!({"ids": too_many}).to_string(),
            r#"{"ids": []}"#.into(),
            r#"{"ids": ["nope"]}"#.into(),
            r#"{"ids": [1]}"#.into(),
            r#"{"ids": null}"#.into(),
            format!(r#"{{"ids": ["{ID}"], "all": true}}"#),
            r#"["a"]"#.into(),
            "".into(),
        ] {
            let e = call_ids(&bad).unwrap_err();
            assert_eq!((e.status, e.code), (400, "invalid_body"), "{bad:.60}");
        }
    }

    #[test]
    fn corrections_become_p_correction() {
        let invalidate = correction(ClassificationAction::Invalidate, r#"{"reason": " menu changed "}"#).unwrap();
        assert_eq!(invalidate, json!({"reason": "menu changed"}));
        let correct = correction(
            ClassificationAction::Correct,
            r#"{"classification_type": "ivr_then_human", "ivr_actions": [{"action": "dtmf", "value": "2", "timing_ms": 1500}], "reason": "press 2"}"#,
        )
        .unwrap();
        assert_eq!(
            correct,
            json!({"classification_type": "ivr_then_human", "reason": "press 2",
                   "ivr_actions": [{"action": "dtmf", "value": "2", "timing_ms": 1500}]})
        );
        for (action, bad) in [
            (ClassificationAction::Invalidate, r#"{}"#.to_owned()),
            (ClassificationAction::Invalidate, r#"{"reason": "  "}"#.to_owned()),
            (ClassificationAction::Invalidate, json!({"reason": "x".repeat(MAX_REASON_CHARS + 1)}).to_string()),
            (ClassificationAction::Invalidate, r#"{"reason": "x", "extra": 1}"#.to_owned()),
            (ClassificationAction::Correct, r#"{"reason": "x"}"#.to_owned()),
            (ClassificationAction::Correct, r#"{"classification_type": "robot", "ivr_actions": [], "reason": "x"}"#.to_owned()),
            (
                ClassificationAction::Correct,
                r#"{"classification_type": "human", "ivr_actions": [{"action": "fax"}], "reason": "x"}"#.to_owned(),
            ),
            (
                ClassificationAction::Correct,
                r#"{"classification_type": "ivr_only", "ivr_actions": [{"action": "speech", "value": "a\u0007"}], "reason": "x"}"#
                    .to_owned(),
            ),
        ] {
            let e = correction(action, &bad).unwrap_err();
            assert_eq!((e.status, e.code), (400, "invalid_body"), "{bad:.80}");
        }
        assert!(no_body("").is_ok() && no_body(" {} ").is_ok());
        assert_eq!(no_body(r#"{"ids": []}"#).unwrap_err().status, 400);
    }

    #[test]
    fn suppression_bodies_are_parsed_with_their_paths() {
        let add = suppression_request(
            SuppressionAction::Add,
            r#"{"phone": "+1 (555) 600-0001", "reason": " asked ", "source": "clinic"}"#,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&add).unwrap(),
            json!({"p_action": "add", "p_phone": "+15556000001", "p_reason": "asked", "p_source": "clinic"})
        );
        let remove = suppression_request(SuppressionAction::Remove, r#"{"phone": "+15556000001"}"#).unwrap();
        assert_eq!(serde_json::to_value(&remove).unwrap(), json!({"p_action": "remove", "p_phone": "+15556000001"}));
        for (action, bad, path) in [
            (SuppressionAction::Add, r#"{"phone": "555"}"#, "phone"),
            (SuppressionAction::Add, r#"{"reason": "x"}"#, "phone"),
            (SuppressionAction::Add, r#"{"phone": "+15556000001", "source": "sms_opt_out"}"#, "source"),
            (SuppressionAction::Add, r#"{"phone": "+15556000001", "source": "robot"}"#, "source"),
            (SuppressionAction::Remove, r#"{"phone": "not a phone"}"#, "phone"),
            (SuppressionAction::Remove, r#"{"phone": "+15556000001", "reason": "x"}"#, "reason"),
        ] {
            let e = suppression_request(action, bad).unwrap_err();
            assert_eq!((e.status, e.code), (400, "validation_error"), "{bad}");
            assert_eq!(e.body()["error"]["items"][0]["path"], path, "{bad}");
        }
    }

    #[test]
    fn the_databases_refusals_become_http_answers() {
        let answer = |code: &str, status| {
            let e = sql_refusal(
                "operator_call_action",
                status,
                &json!({"code": code, "message": "m", "details": "Ada"}).to_string(),
            );
            assert!(!e.message.contains("Ada"), "details never travel: {}", e.message);
            (e.status, e.code)
        };
        assert_eq!(answer("42501", 403), (403, "forbidden"));
        assert_eq!(answer("P0002", 404), (404, "not_found"));
        assert_eq!(answer("22023", 400), (400, "invalid_parameter"));
        assert_eq!(answer("22P02", 400), (400, "invalid_parameter"));
        assert_eq!(answer("PGRST301", 401), (401, "unauthorized"));
        assert_eq!(answer("XX000", 500), (502, "upstream_error"));
        assert_eq!(sql_refusal("f", 503, "not json").status, 502);
    }

    #[test]
    fn me_is_camel_case() {
        let identity = crate::rpc::OperatorIdentity {
            user_id: Uuid::parse_str(ID).unwrap(),
            email: Some("ada@example.com".into()),
            role: None,
        };
        assert_eq!(me_answer(&identity), json!({"userId": ID, "email": "ada@example.com", "role": null}));
    }
}
