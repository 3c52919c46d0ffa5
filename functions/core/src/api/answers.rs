//! How the SQL functions' answers become HTTP answers: 202/409/400 for a created batch, 404/409 for one
//! batch, the database's snake_case as the API's camelCase.

use crate::batch::ItemError;
use crate::error::ApiError;
use crate::ids::BatchId;
use crate::rpc::sms::SmsBatchCreated;
use crate::rpc::suppression::SuppressionAdded;
use crate::rpc::{BatchCreated, BatchEstimated, DatabaseItemError};
use serde_json::{json, Map, Value};

/// A batch accepted (or replayed under the same `Idempotency-Key`): 202 with a `Location`.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub location: String,
    pub replayed: bool,
    pub body: Value,
}

/// `create_batch`'s answer as HTTP: created/replayed → 202, conflict → 409, invalid → 400. (An answer
/// of another shape never gets here: reading it failed, a 502.)
pub fn create_answer(rpc: &BatchCreated, public_base_url: &str) -> Result<Accepted, ApiError> {
    match rpc {
        BatchCreated::Created(batch) | BatchCreated::Replayed(batch) => Ok(accepted(
            ("batches", "batchId", &batch.batch_id.to_string()),
            public_base_url,
            matches!(rpc, BatchCreated::Replayed(_)),
            json!({"accepted": batch.accepted, "rejected": batch.rejected,
                   "costEstimate": api_json(batch.cost_estimate.clone())}),
        )),
        BatchCreated::Conflict { batch_id } => Err(idempotency_conflict(&batch_id.to_string())),
        BatchCreated::Invalid { errors } => Err(validation_error(errors.iter().map(database_item_error).collect())),
    }
}

/// `estimate_batch_cost`'s answer as HTTP: estimated → 200 `{accepted, rejected, costEstimate}`, invalid → 400.
pub fn estimate_answer(rpc: &BatchEstimated) -> Result<Value, ApiError> {
    match rpc {
        BatchEstimated::Estimated(batch) => Ok(json!({"accepted": batch.accepted, "rejected": batch.rejected,
                                                      "costEstimate": api_json(batch.cost_estimate.clone())})),
        BatchEstimated::Invalid { errors } => Err(validation_error(errors.iter().map(database_item_error).collect())),
    }
}

/// `create_sms_batch`'s answer as HTTP: created/replayed → 202, conflict → 409.
pub fn sms_create_answer(rpc: &SmsBatchCreated, public_base_url: &str) -> Result<Accepted, ApiError> {
    match rpc {
        SmsBatchCreated::Created(batch) | SmsBatchCreated::Replayed(batch) => Ok(accepted(
            ("sms-batches", "smsBatchId", &batch.batch_id.to_string()),
            public_base_url,
            matches!(rpc, SmsBatchCreated::Replayed(_)),
            json!({"accepted": batch.accepted, "optedOut": batch.opted_out}),
        )),
        SmsBatchCreated::Conflict { batch_id } => Err(idempotency_conflict(&batch_id.to_string())),
    }
}

/// A created batch's 202: `(collection, id key, id)` make its `Location` and the body's id and `statusUrl`;
/// `fields` (an object) the rest of the body.
fn accepted(
    (collection, id_key, id): (&str, &str, &str),
    public_base_url: &str,
    replayed: bool,
    fields: Value,
) -> Accepted {
    let location = format!("/api/v1/{collection}/{id}");
    let mut body = json!({id_key: id, "statusUrl": format!("{public_base_url}{location}")});
    if let (Some(body), Value::Object(fields)) = (body.as_object_mut(), fields) {
        body.extend(fields);
    }
    Accepted { location, replayed, body }
}

fn idempotency_conflict(batch: &str) -> ApiError {
    ApiError::new(
        409,
        "idempotency_conflict",
        format!("this Idempotency-Key was used for batch {batch} with a different body"),
    )
}

/// 400 `validation_error` listing every problem.
pub fn validation_error(items: Vec<ItemError>) -> ApiError {
    let message = match items.len() {
        1 => format!("{}: {}", items[0].path, items[0].message),
        n => format!("{n} problems in the request; see items"),
    };
    let items = items.iter().map(|i| serde_json::to_value(i).unwrap_or(Value::Null)).collect();
    ApiError::bad_request("validation_error", message).with_items(items)
}

/// A problem only the database could see, in the same shape as ours.
fn database_item_error(raw: &DatabaseItemError) -> ItemError {
    let field = raw.field.clone().unwrap_or_default();
    let path = match (raw.index, raw.pending_call_id.as_deref()) {
        (Some(i), _) => format!("targets[{i}].{field}"),
        (None, Some(id)) => format!("pendingCallIds ({id})"),
        (None, None) => field,
    };
    let code = match raw.code.as_deref() {
        Some("invalid_timezone") => "invalid_timezone",
        Some("window_outside_policy") => "window_outside_policy",
        Some("nothing_to_call") => "nothing_to_call",
        Some("expires_in_past") => "expires_in_past",
        _ => "invalid",
    };
    let message = raw.message.clone().unwrap_or_default();
    ItemError { path, index: raw.index, code, message, value: raw.value.clone() }
}

/// The database's snake_case keys as the API's camelCase, at every depth but inside `metadata`, which
/// is the caller's own and comes back as it was given.
pub fn api_json(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = if k == "metadata" { v } else { api_json(v) };
                    (camel_case(&k), v)
                })
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(api_json).collect()),
        other => other,
    }
}

fn camel_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        match (c, upper) {
            ('_', _) => upper = !out.is_empty(),
            (c, true) => {
                out.extend(c.to_uppercase());
                upper = false;
            }
            (c, false) => out.push(c),
        }
    }
    out
}

/// `add_suppression`'s answer as HTTP: 201 for a phone listed now, 200 for one listed already; in camelCase.
pub fn suppression_added(answer: SuppressionAdded) -> (u16, Value) {
    let status = if answer.created { 201 } else { 200 };
    (status, api_json(json!({"created": answer.created, "suppression": answer.suppression})))
}

/// A read or change of one batch as the API answers it: `null` (no such batch) → 404, a finished
/// batch's refusal (cancelled; completed, for pause and resume) → 409, anything else in camelCase.
pub fn batch_answer(answer: Value, batch: Option<BatchId>) -> Result<Value, ApiError> {
    let which = batch.map_or_else(String::new, |id| format!(" {id}"));
    if answer.is_null() {
        return Err(ApiError::not_found(format!("no batch{which}")));
    }
    match answer.get("error").and_then(Value::as_str) {
        Some("batch_cancelled") => Err(ApiError::new(409, "batch_cancelled", format!("batch{which} was cancelled"))),
        Some("batch_completed") => Err(ApiError::new(409, "batch_completed", format!("batch{which} has completed"))),
        _ => Ok(api_json(answer)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "6f9619ff-8b86-d011-b42d-00c04fc964ff";

    #[test]
    fn create_answers_map_to_http() {
        let read = |raw: Value| serde_json::from_value::<BatchCreated>(raw).expect("a create_batch answer");
        let created = read(json!({"outcome": "created", "batch_id": ID, "accepted": 3,
                             "rejected": [{"pendingCallId": ID, "code": "not_found", "message": "m"}]}));
        let accepted = create_answer(&created, "https://w.example").unwrap();
        assert_eq!(accepted.location, format!("/api/v1/batches/{ID}"));
        assert_eq!(accepted.body["statusUrl"], format!("https://w.example/api/v1/batches/{ID}"));
        assert_eq!(accepted.body["accepted"], 3);
        assert_eq!(accepted.body["rejected"][0]["code"], "not_found");
        assert!(!accepted.replayed);
        let replayed = read(json!({"outcome": "replayed", "batch_id": ID, "accepted": 3, "rejected": []}));
        assert!(create_answer(&replayed, "https://w.example").unwrap().replayed);
        let conflict = create_answer(&read(json!({"outcome": "conflict", "batch_id": ID})), "x").unwrap_err();
        assert_eq!((conflict.status, conflict.code), (409, "idempotency_conflict"));
        let invalid = read(json!({"outcome": "invalid", "errors": [
            {"index": 2, "field": "clinic_timezone", "code": "invalid_timezone", "message": "unknown zone", "value": "Mars/Base"}]}));
        let error = create_answer(&invalid, "x").unwrap_err();
        assert_eq!((error.status, error.code), (400, "validation_error"));
        assert_eq!(error.body()["error"]["items"][0]["path"], "targets[2].clinic_timezone");
        assert_eq!(error.body()["error"]["items"][0]["index"], 2);
        let copied = read(json!({"outcome": "invalid", "errors": [
            {"index": null, "pending_call_id": ID, "field": "clinic_timezone", "code": "nothing_to_call", "message": "m", "value": null}]}));
        assert_eq!(
            create_answer(&copied, "x").unwrap_err().body()["error"]["items"][0]["path"],
            format!("pendingCallIds ({ID})")
        );
        assert!(serde_json::from_value::<BatchCreated>(json!({})).is_err(), "no outcome: the Worker answers 502");
    }

    #[test]
    fn sms_create_answers_map_to_http() {
        let read = |raw: Value| serde_json::from_value::<SmsBatchCreated>(raw).expect("a create_sms_batch answer");
        let created = read(json!({"outcome": "created", "batch_id": ID, "accepted": 3, "opted_out": [1]}));
        let accepted = sms_create_answer(&created, "https://w.example").unwrap();
        assert_eq!(accepted.location, format!("/api/v1/sms-batches/{ID}"));
        assert_eq!(
            accepted.body,
            json!({"smsBatchId": ID, "statusUrl": format!("https://w.example/api/v1/sms-batches/{ID}"),
                   "accepted": 3, "optedOut": [1]})
        );
        let replayed = read(json!({"outcome": "replayed", "batch_id": ID, "accepted": 3, "opted_out": []}));
        assert!(sms_create_answer(&replayed, "x").unwrap().replayed);
        let conflict = sms_create_answer(&read(json!({"outcome": "conflict", "batch_id": ID})), "x").unwrap_err();
        assert_eq!((conflict.status, conflict.code), (409, "idempotency_conflict"));
    }

    #[test]
    fn a_suppression_is_201_when_new_and_200_when_listed_already() {
        let read = |created: bool| {
            serde_json::from_value::<SuppressionAdded>(json!({"created": created, "suppression":
                {"phone": "+15550001001", "reason": null, "source": "manual", "added_by": "api", "created_at": "t"}}))
            .unwrap()
        };
        let (status, body) = suppression_added(read(true));
        assert_eq!(status, 201);
        assert_eq!(body["suppression"]["addedBy"], "api");
        assert_eq!(suppression_added(read(false)).0, 200);
    }

    #[test]
    fn api_json_is_camel_case_except_the_callers_metadata() {
        let db = json!({"batch_id": 1, "counts": {"in_progress": 2}, "results": [{"pending_call_id": 3}],
                        "metadata": {"my_key": {"inner_key": 1}}});
        assert_eq!(
            api_json(db),
            json!({"batchId": 1, "counts": {"inProgress": 2}, "results": [{"pendingCallId": 3}],
                   "metadata": {"my_key": {"inner_key": 1}}})
        );
    }

    #[test]
    fn batch_answers_map_to_http() {
        let id = BatchId::parse(ID).unwrap();
        assert_eq!(batch_answer(Value::Null, Some(id)).unwrap_err().status, 404);
        let refused = batch_answer(json!({"batch_id": ID, "error": "batch_cancelled"}), Some(id)).unwrap_err();
        assert_eq!((refused.status, refused.code), (409, "batch_cancelled"));
        let finished = batch_answer(json!({"batch_id": ID, "error": "batch_completed"}), Some(id)).unwrap_err();
        assert_eq!((finished.status, finished.code), (409, "batch_completed"));
        assert_eq!(
            batch_answer(json!({"batch_id": ID, "requeued": 1}), Some(id)),
            Ok(json!({"batchId": ID, "requeued": 1}))
        );
    }
}
