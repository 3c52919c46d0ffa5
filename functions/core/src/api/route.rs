//! Which `/api/v1` route a request is: the route table the OpenAPI document describes, and 405 with the
//! methods a path takes.

use crate::error::ApiError;
use crate::ids::{BatchId, SmsBatchId};
use uuid::Uuid;

/// The API's OpenAPI 3.1 description, served at `/api/v1/openapi.json`.
pub const OPENAPI_DOCUMENT: &str = include_str!("../../openapi.json");

/// Every route, as the OpenAPI document names it: (method, path template).
pub const ROUTES: [(&str, &str); 20] = [
    ("GET", "/api/v1/openapi.json"),
    ("POST", "/api/v1/batches"),
    ("POST", "/api/v1/batches/estimate"),
    ("GET", "/api/v1/batches"),
    ("GET", "/api/v1/batches/{batchId}"),
    ("GET", "/api/v1/batches/{batchId}/transcripts"),
    ("GET", "/api/v1/batches/{batchId}/events"),
    ("POST", "/api/v1/batches/{batchId}/cancel"),
    ("POST", "/api/v1/batches/{batchId}/retry-failed"),
    ("POST", "/api/v1/batches/{batchId}/pause"),
    ("POST", "/api/v1/batches/{batchId}/resume"),
    ("POST", "/api/v1/sms-batches"),
    ("GET", "/api/v1/sms-batches/{smsBatchId}"),
    ("GET", "/api/v1/sms-batches/{smsBatchId}/messages"),
    ("GET", "/api/v1/sms-batches/{smsBatchId}/events"),
    ("POST", "/api/v1/sms-batches/{smsBatchId}/cancel"),
    ("POST", "/api/v1/suppressions"),
    ("GET", "/api/v1/suppressions"),
    ("POST", "/api/v1/suppressions/remove"),
    ("GET", "/api/v1/providers"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    OpenApi,
    CreateBatch,
    /// `POST /api/v1/batches/estimate`: a create request's cost estimate, nothing written.
    EstimateBatch,
    ListBatches,
    GetBatch(BatchId),
    Transcripts(BatchId),
    Events(BatchId),
    Cancel(BatchId),
    RetryFailed(BatchId),
    Pause(BatchId),
    Resume(BatchId),
    /// `/api/v1/sms-batches...`
    Sms(SmsRoute),
    /// The providers' circuit breaker and refusal counts.
    Providers,
    /// `/api/v1/suppressions...`: the do-not-call list.
    Suppressions(SuppressionRoute),
}

/// The do-not-call list's routes (the phone always in the body, never in the path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuppressionRoute {
    Add,
    List,
    Remove,
}

/// The SMS batches' routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsRoute {
    Create,
    Get(SmsBatchId),
    Messages(SmsBatchId),
    Events(SmsBatchId),
    Cancel(SmsBatchId),
}

/// The route for a request under `/api/v1`: `None` for paths outside the API, an error for a known path
/// with the wrong method (405) or a malformed batch id (400).
pub fn route(method: &str, path: &str) -> Option<Result<Route, ApiError>> {
    let rest = path.strip_prefix("/api/v1/")?;
    let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let (template, id) = match segments.as_slice() {
        [document @ ("openapi.json" | "providers")] => (format!("/api/v1/{document}"), None),
        [collection @ ("batches" | "sms-batches" | "suppressions")] => (format!("/api/v1/{collection}"), None),
        ["suppressions", "remove"] => ("/api/v1/suppressions/remove".to_owned(), None),
        ["batches", "estimate"] => ("/api/v1/batches/estimate".to_owned(), None),
        ["batches", id] => ("/api/v1/batches/{batchId}".to_owned(), Some(*id)),
        ["sms-batches", id] => ("/api/v1/sms-batches/{smsBatchId}".to_owned(), Some(*id)),
        ["batches", id, action] => (format!("/api/v1/batches/{{batchId}}/{action}"), Some(*id)),
        ["sms-batches", id, action] => (format!("/api/v1/sms-batches/{{smsBatchId}}/{action}"), Some(*id)),
        _ => return None,
    };
    let template = ROUTES.iter().map(|(_, t)| *t).find(|t| *t == template)?;
    if !ROUTES.iter().any(|(m, t)| *m == method && *t == template) {
        let allowed = allowed_methods(template).join(", ");
        let message = format!("{path} takes {allowed}, not {method}");
        return Some(Err(ApiError::new(405, "method_not_allowed", message)));
    }
    let id = match id.map(Uuid::parse_str) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => return Some(Err(ApiError::bad_request("invalid_id", "a batch id is a UUID"))),
    };
    let batch = || BatchId::from(id.unwrap_or_default());
    let sms = || SmsBatchId::from(id.unwrap_or_default());
    Some(Ok(match (method, template) {
        (_, "/api/v1/openapi.json") => Route::OpenApi,
        ("POST", "/api/v1/batches") => Route::CreateBatch,
        (_, "/api/v1/batches/estimate") => Route::EstimateBatch,
        ("GET", "/api/v1/batches") => Route::ListBatches,
        (_, "/api/v1/batches/{batchId}") => Route::GetBatch(batch()),
        (_, "/api/v1/batches/{batchId}/transcripts") => Route::Transcripts(batch()),
        (_, "/api/v1/batches/{batchId}/events") => Route::Events(batch()),
        (_, "/api/v1/batches/{batchId}/cancel") => Route::Cancel(batch()),
        (_, "/api/v1/batches/{batchId}/retry-failed") => Route::RetryFailed(batch()),
        (_, "/api/v1/batches/{batchId}/pause") => Route::Pause(batch()),
        (_, "/api/v1/batches/{batchId}/resume") => Route::Resume(batch()),
        (_, "/api/v1/sms-batches") => Route::Sms(SmsRoute::Create),
        (_, "/api/v1/sms-batches/{smsBatchId}") => Route::Sms(SmsRoute::Get(sms())),
        (_, "/api/v1/sms-batches/{smsBatchId}/messages") => Route::Sms(SmsRoute::Messages(sms())),
        (_, "/api/v1/sms-batches/{smsBatchId}/events") => Route::Sms(SmsRoute::Events(sms())),
        (_, "/api/v1/sms-batches/{smsBatchId}/cancel") => Route::Sms(SmsRoute::Cancel(sms())),
        ("POST", "/api/v1/suppressions") => Route::Suppressions(SuppressionRoute::Add),
        ("GET", "/api/v1/suppressions") => Route::Suppressions(SuppressionRoute::List),
        (_, "/api/v1/suppressions/remove") => Route::Suppressions(SuppressionRoute::Remove),
        (_, "/api/v1/providers") => Route::Providers,
        _ => return None,
    }))
}

/// The methods a route template takes (a 405's `Allow` header).
pub fn allowed_methods(template: &str) -> Vec<&'static str> {
    ROUTES.iter().filter(|(_, t)| *t == template).map(|(m, _)| *m).collect()
}

/// The `Allow` header of a 405 for `path`: the methods its route takes.
pub fn allow_header(path: &str) -> Option<String> {
    ["GET", "POST"]
        .into_iter()
        .filter(|m| matches!(route(m, path), Some(Ok(_)) | Some(Err(ApiError { status: 400, .. }))))
        .map(str::to_owned)
        .reduce(|a, b| format!("{a}, {b}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    const ID: &str = "6f9619ff-8b86-d011-b42d-00c04fc964ff";

    fn ok(method: &str, path: &str) -> Route {
        route(method, path).expect("an API path").expect("a route")
    }

    #[test]
    fn routes_every_documented_path() {
        let id = BatchId::parse(ID).unwrap();
        assert_eq!(ok("GET", "/api/v1/openapi.json"), Route::OpenApi);
        assert_eq!(ok("POST", "/api/v1/batches"), Route::CreateBatch);
        assert_eq!(ok("POST", "/api/v1/batches/estimate"), Route::EstimateBatch);
        assert_eq!(route("GET", "/api/v1/batches/estimate").unwrap().unwrap_err().status, 405, "not a batch id");
        assert_eq!(ok("GET", "/api/v1/batches/"), Route::ListBatches);
        assert_eq!(ok("GET", &format!("/api/v1/batches/{ID}")), Route::GetBatch(id));
        assert_eq!(ok("GET", &format!("/api/v1/batches/{ID}/transcripts")), Route::Transcripts(id));
        assert_eq!(ok("GET", &format!("/api/v1/batches/{ID}/events")), Route::Events(id));
        assert_eq!(ok("POST", &format!("/api/v1/batches/{ID}/cancel")), Route::Cancel(id));
        assert_eq!(ok("POST", &format!("/api/v1/batches/{ID}/retry-failed")), Route::RetryFailed(id));
        assert_eq!(ok("POST", &format!("/api/v1/batches/{ID}/pause")), Route::Pause(id));
        assert_eq!(ok("POST", &format!("/api/v1/batches/{ID}/resume")), Route::Resume(id));
        let sms = SmsBatchId::parse(ID).unwrap();
        assert_eq!(ok("POST", "/api/v1/sms-batches"), Route::Sms(SmsRoute::Create));
        assert_eq!(ok("GET", &format!("/api/v1/sms-batches/{ID}")), Route::Sms(SmsRoute::Get(sms)));
        assert_eq!(ok("GET", &format!("/api/v1/sms-batches/{ID}/messages")), Route::Sms(SmsRoute::Messages(sms)));
        assert_eq!(ok("GET", &format!("/api/v1/sms-batches/{ID}/events")), Route::Sms(SmsRoute::Events(sms)));
        assert_eq!(ok("POST", &format!("/api/v1/sms-batches/{ID}/cancel")), Route::Sms(SmsRoute::Cancel(sms)));
        assert_eq!(ok("POST", "/api/v1/suppressions"), Route::Suppressions(SuppressionRoute::Add));
        assert_eq!(ok("GET", "/api/v1/suppressions"), Route::Suppressions(SuppressionRoute::List));
        assert_eq!(ok("POST", "/api/v1/suppressions/remove"), Route::Suppressions(SuppressionRoute::Remove));
        assert_eq!(ok("GET", "/api/v1/providers"), Route::Providers);
    }

    #[test]
    fn refuses_wrong_methods_and_ids_and_ignores_other_paths() {
        let status = |m: &str, p: &str| route(m, p).unwrap().unwrap_err().status;
        assert_eq!(status("DELETE", "/api/v1/batches"), 405);
        assert_eq!(status("GET", &format!("/api/v1/batches/{ID}/cancel")), 405);
        assert_eq!(status("GET", "/api/v1/batches/not-a-uuid"), 400);
        assert_eq!(allow_header("/api/v1/batches").as_deref(), Some("GET, POST"));
        assert_eq!(allow_header(&format!("/api/v1/batches/{ID}/cancel")).as_deref(), Some("POST"));
        assert!(route("GET", "/api/v1/other").is_none());
        assert!(route("GET", &format!("/api/v1/batches/{ID}/calls")).is_none());
        assert!(route("GET", &format!("/api/v1/sms-batches/{ID}/transcripts")).is_none());
        assert_eq!(status("GET", "/api/v1/sms-batches"), 405);
        assert_eq!(status("POST", &format!("/api/v1/sms-batches/{ID}/events")), 405);
        assert_eq!(status("GET", "/api/v1/sms-batches/x/messages"), 400);
        assert!(route("GET", "/health").is_none());
        assert_eq!(status("DELETE", "/api/v1/suppressions"), 405);
        assert_eq!(status("GET", "/api/v1/suppressions/remove"), 405);
        assert!(route("DELETE", "/api/v1/suppressions/+15550001001").is_none(), "no phone in a path");
        assert_eq!(status("POST", "/api/v1/providers"), 405);
    }

    #[test]
    fn the_openapi_document_lists_exactly_the_routes() {
        use std::collections::BTreeSet;
        let document: Value = serde_json::from_str(OPENAPI_DOCUMENT).expect("openapi.json is JSON");
        assert_eq!(document["openapi"], "3.1.0");
        let methods = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];
        let paths = document["paths"].as_object().expect("paths");
        let mut documented = BTreeSet::new();
        for (path, item) in paths {
            for (method, operation) in item.as_object().expect("a path item") {
                if !methods.contains(&method.as_str()) {
                    continue;
                }
                let route = (method.to_uppercase(), path.clone());
                let statuses: Vec<&String> = operation["responses"].as_object().expect("responses").keys().collect();
                assert!(statuses.iter().any(|s| s.starts_with('2')), "{route:?} has no 2xx response");
                let public = path == "/api/v1/openapi.json" || path == "/api/v1/dashboard/config";
                assert_eq!(
                    statuses.iter().any(|s| *s == "401"),
                    !public,
                    "{route:?}: a 401 exactly when a key is needed"
                );
                assert_eq!(operation.get("security") == Some(&json!([])), public, "{route:?}: security");
                documented.insert(route);
            }
        }
        // The batch API's routes and the dashboard's (`crate::operator`), which the same document describes.
        let routes: BTreeSet<(String, String)> =
            ROUTES.iter().chain(&crate::operator::ROUTES).map(|(m, p)| (m.to_string(), p.to_string())).collect();
        assert_eq!(
            documented.difference(&routes).collect::<Vec<_>>(),
            Vec::<&(String, String)>::new(),
            "documented, not routed"
        );
        assert_eq!(
            routes.difference(&documented).collect::<Vec<_>>(),
            Vec::<&(String, String)>::new(),
            "routed, not documented"
        );
        assert_eq!(document["security"], json!([{"bearerAuth": []}]));
        assert_eq!(document["components"]["securitySchemes"]["bearerAuth"]["scheme"], "bearer");
    }
}
