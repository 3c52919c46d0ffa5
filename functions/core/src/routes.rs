//! Every route of the Worker in one table, and the one rule that answers what no route takes: 404 for an
//! unknown path, 405 with `Allow` for a known path and another method. The batch API's own paths
//! (`/api/v1/...`, with their ids) are parsed by [`crate::api::route`], the dashboard's and the operators'
//! (`/api/v1/dashboard/...`, `/api/v1/operator/...`) by [`crate::operator::route`], under the same rule.

use crate::error::ApiError;
use crate::{api, operator};

/// What a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /health`: whether the configuration is complete.
    Health,
    /// `POST /hooks/pending-calls`: the database webhook (a new `pending_calls` row).
    PendingCallWebhook,
    /// `POST /twilio/status`: Twilio's status callbacks.
    TwilioStatus,
    /// `POST /twilio/sms-status`: Twilio Messaging's delivery status callbacks.
    TwilioSmsStatus,
    /// `POST /twilio/sms-inbound`: messages people send to our numbers (replies, STOP, START).
    TwilioSmsInbound,
    /// `POST /vapi/events`: VAPI's server messages.
    VapiEvents,
    /// `GET /twilio/stream`: a call's audio (Twilio Media Streams, a WebSocket), for its listener.
    ListenerStream,
    /// `/api/v1/...`: the batch API.
    Api(api::Route),
    /// `GET /`: the dashboard's page (its other files are static assets, served without the Worker).
    Dashboard,
    /// `POST /mcp`: the MCP server (streamable HTTP; GET and DELETE are 405), the batch API as tools.
    Mcp,
    /// `/api/v1/dashboard/config` and `/api/v1/operator/...`: the dashboard's API (users' access tokens).
    Operator(operator::Route),
}

/// The routes outside the batch API: (method, path, route).
pub const SERVICE_ROUTES: [(&str, &str, Route); 9] = [
    ("GET", "/", Route::Dashboard),
    ("GET", "/health", Route::Health),
    ("POST", "/hooks/pending-calls", Route::PendingCallWebhook),
    ("POST", "/twilio/status", Route::TwilioStatus),
    ("POST", "/twilio/sms-status", Route::TwilioSmsStatus),
    ("POST", "/twilio/sms-inbound", Route::TwilioSmsInbound),
    ("POST", "/vapi/events", Route::VapiEvents),
    ("GET", crate::dispatch::STREAM_PATH, Route::ListenerStream),
    ("POST", "/mcp", Route::Mcp),
];

/// The path and the query of a URL as the fetch API serializes it (WHATWG: `scheme://host[:port]/path[?query][#frag]`,
/// the path never empty, `?` and `#` percent-encoded inside the path and `#` inside the query), as written: what
/// `url::Url`'s `path()` and `query()` give for it, without parsing the URL again.
pub fn path_and_query(url: &str) -> (&str, Option<&str>) {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let rest = url[after_scheme..].find('/').map_or("/", |i| &url[after_scheme + i..]);
    let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
    match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    }
}

/// Why no route takes a request: the error to answer, and for a 405 the `Allow` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub error: ApiError,
    pub allow: Option<String>,
}

/// The route of a request, or why there is none.
pub fn route(method: &str, path: &str) -> Result<Route, Refused> {
    if let Some(operator_route) = operator::route(method, path) {
        return operator_route.map(Route::Operator).map_err(|error| {
            let allow = if error.status == 405 { operator::allow_header(path) } else { None };
            Refused { error, allow }
        });
    }
    if let Some(api_route) = api::route(method, path) {
        return api_route.map(Route::Api).map_err(|error| {
            let allow = if error.status == 405 { api::allow_header(path) } else { None };
            Refused { error, allow }
        });
    }
    if let Some((_, _, route)) = SERVICE_ROUTES.iter().find(|(m, p, _)| *m == method && *p == path) {
        return Ok(*route);
    }
    let allowed: Vec<&str> = SERVICE_ROUTES.iter().filter(|(_, p, _)| *p == path).map(|(m, _, _)| *m).collect();
    if allowed.is_empty() {
        return Err(Refused { error: ApiError::not_found(format!("no route for {path}")), allow: None });
    }
    let allow = allowed.join(", ");
    let error = ApiError::new(405, "method_not_allowed", format!("{path} takes {allow}, not {method}"));
    Err(Refused { error, allow: Some(allow) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_serialized_url_splits_into_path_and_query() {
        let cases = [
            ("https://outcall.example.workers.dev/health", ("/health", None)),
            (
                "http://127.0.0.1:8787/api/v1/batches?limit=5&cursor=a%3Fb",
                ("/api/v1/batches", Some("limit=5&cursor=a%3Fb")),
            ),
            ("https://h/twilio/status?session=1#frag", ("/twilio/status", Some("session=1"))),
            ("https://h/p%3Fq?", ("/p%3Fq", Some(""))),
            ("https://h/", ("/", None)),
            ("https://xn--bcher-kva.example/a/b", ("/a/b", None)),
        ];
        for (url, expected) in cases {
            assert_eq!(path_and_query(url), expected, "{url}");
        }
    }

    #[test]
    fn every_service_route_is_found_by_its_method_and_path() {
        for (method, path, expected) in SERVICE_ROUTES {
            assert_eq!(route(method, path), Ok(expected), "{method} {path}");
        }
    }

    #[test]
    fn api_paths_are_routed_to_the_api() {
        assert_eq!(route("POST", "/api/v1/batches"), Ok(Route::Api(api::Route::CreateBatch)));
        assert_eq!(route("GET", "/api/v1/openapi.json"), Ok(Route::Api(api::Route::OpenApi)));
        assert_eq!(route("GET", "/api/v1/operator/me"), Ok(Route::Operator(operator::Route::Me)));
        let refused = route("GET", "/api/v1/operator/calls/cancel").unwrap_err();
        assert_eq!((refused.error.status, refused.allow.as_deref()), (405, Some("POST")));
        assert_eq!(route("POST", "/api/v1/operator/calls/nope").unwrap_err().allow, None);
    }

    #[test]
    fn an_unknown_path_is_404_without_allow() {
        let refused = route("GET", "/nowhere").unwrap_err();
        assert_eq!((refused.error.status, refused.allow), (404, None));
    }

    #[test]
    fn a_known_path_with_another_method_is_405_with_allow_on_every_route() {
        for (method, path, _) in SERVICE_ROUTES {
            let other = if method == "GET" { "POST" } else { "GET" };
            let refused = route(other, path).unwrap_err();
            assert_eq!(refused.error.status, 405, "{other} {path}");
            assert_eq!(refused.allow.as_deref(), Some(method), "{other} {path}");
        }
        let refused = route("DELETE", "/api/v1/batches").unwrap_err();
        assert_eq!((refused.error.status, refused.allow.as_deref()), (405, Some("GET, POST")));
        let refused = route("PUT", "/api/v1/batches/3f9c1b2e-8d4a-4c6b-9e1f-2a7d5c8b0e13/cancel").unwrap_err();
        assert_eq!((refused.error.status, refused.allow.as_deref()), (405, Some("POST")));
    }

    #[test]
    fn a_malformed_batch_id_is_400_without_allow() {
        let refused = route("GET", "/api/v1/batches/not-a-uuid").unwrap_err();
        assert_eq!((refused.error.status, refused.allow), (400, None));
    }
}
