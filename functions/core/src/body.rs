//! How much of a request body each route may read, decided before a byte of it is read.
//!
//! Every route that reads a body has a cap, sized for its real sender. The Worker asks [`plan`] with
//! the request's method, route and `Content-Length`: a declared length over the cap is refused at once
//! (413 `payload_too_large`, nothing read, nothing written); otherwise the body is read through a
//! [`CappedBody`], which refuses the same way the moment the bytes received pass the cap (a body sent
//! without `Content-Length`, chunked).
//!
//! Where a route's credential is a header alone (the database webhook's `X-Webhook-Secret`, VAPI's
//! bearer credential, the API's key), the Worker checks it before asking here, so an unauthenticated
//! caller cannot make it read anything. Twilio's signature and VAPI's HMAC are computed over the body:
//! there the cap is what bounds the read.

use crate::error::ApiError;
use crate::routes::Route;
use crate::{api, operator};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// `POST /twilio/status` and the SMS callbacks: a status callback is about twenty short form fields (well
/// under 2 KB); an inbound message adds its body (1,600 characters at most) and media URLs.
pub const TWILIO_STATUS_MAX_BYTES: usize = 64 * KIB;
/// `POST /hooks/pending-calls`: the database webhook carries Supabase's payload with the row's id only
/// (`{type, table, schema, record: {id}, old_record}`, about 150 bytes; `sql/schema/70_webhook.sql`).
pub const WEBHOOK_MAX_BYTES: usize = 16 * KIB;
/// `POST /vapi/events`: VAPI publishes no size for its server messages; an end-of-call report carries
/// the whole transcript, the message list (each turn with its timings, and again in OpenAI's format),
/// the analysis and the call object with its assistant. A 30-minute call makes well under 2 MB of that;
/// 8 MiB leaves four times as much.
pub const VAPI_EVENTS_MAX_BYTES: usize = 8 * MIB;
/// `POST /api/v1/batches`, before the targets: the request's own fields (`metadata` at its cap, the
/// name, the schedule) and a few targets with every field at its cap, so a small `BATCH_MAX_TARGETS`
/// never refuses a valid request for its size.
pub const BATCH_BASE_BYTES: usize = 256 * KIB;
/// `POST /api/v1/batches`, per target allowed by `BATCH_MAX_TARGETS`: a target's own fields take a few
/// hundred bytes; 4 KiB on average leaves room for a prompt or instructions of a few thousand characters
/// on every target.
pub const BATCH_PER_TARGET_BYTES: usize = 4 * KIB;
/// The most a batch request may ever be, whatever `BATCH_MAX_TARGETS` says: well below Cloudflare's
/// 100 MB request limit, and a size the Worker's 128 MB of memory can parse and forward. At the default
/// 10,000 targets this is the cap (about 3.3 KB per target).
pub const BATCH_MAX_BYTES: usize = 32 * MIB;

/// The cap of a batch request when one may carry `max_targets` targets and ids.
pub fn batch_max_bytes(max_targets: usize) -> usize {
    BATCH_BASE_BYTES.saturating_add(max_targets.saturating_mul(BATCH_PER_TARGET_BYTES)).min(BATCH_MAX_BYTES)
}

/// What to do with a request's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyPlan {
    /// The route takes no body: none is read, whatever was sent.
    Ignore,
    /// Read at most this many bytes (through a [`CappedBody`]).
    Read { cap: usize },
}

/// The body cap of a route (`None`: the route reads no body). `batch_max_targets` is `BATCH_MAX_TARGETS`.
pub fn route_cap(method: &str, route: Route, batch_max_targets: usize) -> Option<usize> {
    if !method.eq_ignore_ascii_case("POST") {
        return None;
    }
    match route {
        Route::Health | Route::ListenerStream | Route::Dashboard => None,
        Route::Operator(route) if route.reads_body() => Some(operator::ACTION_MAX_BYTES),
        Route::Operator(_) => None,
        Route::PendingCallWebhook => Some(WEBHOOK_MAX_BYTES),
        Route::TwilioStatus | Route::TwilioSmsStatus | Route::TwilioSmsInbound => Some(TWILIO_STATUS_MAX_BYTES),
        Route::VapiEvents => Some(VAPI_EVENTS_MAX_BYTES),
        // A `tools/call` of trigger-batch-calls carries a batch request: the batch route's cap. An SMS
        // target (a phone, a name, its variables or a body of at most 1,600 characters) fits the same.
        Route::Api(api::Route::CreateBatch | api::Route::EstimateBatch | api::Route::Sms(api::SmsRoute::Create))
        | Route::Mcp => Some(batch_max_bytes(batch_max_targets)),
        Route::Api(api::Route::Suppressions(api::SuppressionRoute::Add | api::SuppressionRoute::Remove)) => {
            Some(crate::suppression::SUPPRESSION_MAX_BYTES)
        }
        Route::Api(_) => None,
    }
}

/// The decision for one request: its method, route and `Content-Length` header (as sent, if sent).
/// A declared length over the route's cap is 413; an unreadable one 400; otherwise read up to the cap.
pub fn plan(
    method: &str,
    route: Route,
    content_length: Option<&str>,
    batch_max_targets: usize,
) -> Result<BodyPlan, ApiError> {
    let Some(cap) = route_cap(method, route, batch_max_targets) else {
        return Ok(BodyPlan::Ignore);
    };
    if let Some(raw) = content_length {
        let declared: u64 = raw.trim().parse().map_err(|_| {
            ApiError::bad_request("invalid_content_length", "Content-Length must be a whole number of bytes")
        })?;
        if declared > cap as u64 {
            return Err(too_large(cap));
        }
    }
    Ok(BodyPlan::Read { cap })
}

/// 413 `payload_too_large`, naming the cap.
pub fn too_large(cap: usize) -> ApiError {
    ApiError::new(413, "payload_too_large", format!("the request body is larger than this route's {} bytes", cap))
}

/// A body being received, chunk by chunk, that refuses to grow past its cap.
#[derive(Debug)]
pub struct CappedBody {
    cap: usize,
    bytes: Vec<u8>,
}

impl CappedBody {
    pub fn new(cap: usize) -> Self {
        Self { cap, bytes: Vec::new() }
    }

    /// Adds a chunk; past the cap, 413 (the caller stops reading: nothing more is kept).
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        if chunk.len() > self.cap - self.bytes.len() {
            self.bytes = Vec::new();
            return Err(too_large(self.cap));
        }
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }

    /// The whole body as text; 400 `invalid_body` when it is not UTF-8.
    pub fn finish(self) -> Result<String, ApiError> {
        String::from_utf8(self.bytes)
            .map_err(|_| ApiError::bad_request("invalid_body", "the request body is not UTF-8 text"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::BatchId;
    use crate::routes::route;

    fn route_of(method: &str, path: &str) -> Route {
        route(method, path).unwrap()
    }

    #[test]
    fn every_route_that_reads_a_body_has_a_cap_and_the_others_read_none() {
        let max = crate::batch::DEFAULT_MAX_TARGETS;
        let cases = [
            ("POST", "/twilio/status", Some(64 * KIB)),
            ("POST", "/hooks/pending-calls", Some(16 * KIB)),
            ("POST", "/vapi/events", Some(8 * MIB)),
            ("POST", "/api/v1/batches", Some(BATCH_MAX_BYTES)),
            ("POST", "/mcp", Some(BATCH_MAX_BYTES)),
            ("GET", "/health", None),
            ("GET", "/api/v1/batches", None),
            ("GET", "/api/v1/openapi.json", None),
            ("POST", "/api/v1/suppressions", Some(8 * KIB)),
            ("POST", "/api/v1/suppressions/remove", Some(8 * KIB)),
            ("GET", "/api/v1/suppressions", None),
            ("POST", "/api/v1/operator/calls/cancel", Some(64 * KIB)),
            ("POST", "/api/v1/operator/batches/3f9c1b2e-8d4a-4c6b-9e1f-2a7d5c8b0e13/cancel", Some(64 * KIB)),
            ("POST", "/api/v1/operator/classifications/3f9c1b2e-8d4a-4c6b-9e1f-2a7d5c8b0e13/correct", Some(64 * KIB)),
            ("GET", "/api/v1/operator/me", None),
            ("GET", "/api/v1/dashboard/config", None),
            ("GET", "/", None),
        ];
        for (method, path, cap) in cases {
            assert_eq!(route_cap(method, route_of(method, path), max), cap, "{method} {path}");
        }
        let id = BatchId::parse("3f9c1b2e-8d4a-4c6b-9e1f-2a7d5c8b0e13").unwrap();
        for route in
            [api::Route::Cancel(id), api::Route::RetryFailed(id), api::Route::Pause(id), api::Route::Resume(id)]
        {
            assert_eq!(route_cap("POST", Route::Api(route), max), None, "{route:?} takes no body");
        }
    }

    #[test]
    fn the_batch_cap_follows_the_target_limit_up_to_a_ceiling() {
        assert_eq!(batch_max_bytes(1), BATCH_BASE_BYTES + BATCH_PER_TARGET_BYTES);
        assert_eq!(batch_max_bytes(1_000), 256 * KIB + 4_000 * KIB);
        assert_eq!(batch_max_bytes(crate::batch::DEFAULT_MAX_TARGETS), BATCH_MAX_BYTES);
        assert_eq!(batch_max_bytes(100_000), BATCH_MAX_BYTES);
        assert_eq!(batch_max_bytes(usize::MAX), BATCH_MAX_BYTES);
        const { assert!(BATCH_MAX_BYTES < 100_000_000, "below Cloudflare's 100 MB request limit") };
    }

    #[test]
    fn a_declared_length_over_the_cap_is_refused_before_reading() {
        let twilio = route_of("POST", "/twilio/status");
        assert_eq!(plan("POST", twilio, Some("65536"), 1), Ok(BodyPlan::Read { cap: 64 * KIB }));
        assert_eq!(plan("POST", twilio, None, 1), Ok(BodyPlan::Read { cap: 64 * KIB }));
        let refused = plan("POST", twilio, Some("65537"), 1).unwrap_err();
        assert_eq!((refused.status, refused.code), (413, "payload_too_large"));
        assert_eq!(refused.body()["error"]["code"], "payload_too_large");
        assert!(refused.message.contains("65536"), "{}", refused.message);
        let huge = plan("POST", route_of("POST", "/vapi/events"), Some("60000000"), 1).unwrap_err();
        assert_eq!(huge.status, 413);
        let bad = plan("POST", twilio, Some("lots"), 1).unwrap_err();
        assert_eq!((bad.status, bad.code), (400, "invalid_content_length"));
        // A route that reads no body does not look at its length.
        assert_eq!(plan("GET", route_of("GET", "/health"), Some("99999999999"), 1), Ok(BodyPlan::Ignore));
    }

    #[test]
    fn the_batch_route_cap_depends_on_batch_max_targets() {
        let create = route_of("POST", "/api/v1/batches");
        let small = batch_max_bytes(10).to_string();
        assert!(plan("POST", create, Some(&small), 10).is_ok());
        assert_eq!(plan("POST", create, Some(&(batch_max_bytes(10) + 1).to_string()), 10).unwrap_err().status, 413);
        assert!(plan("POST", create, Some(&(batch_max_bytes(10) + 1).to_string()), 10_000).is_ok());
    }

    #[test]
    fn a_streamed_body_stops_at_its_cap() {
        let mut body = CappedBody::new(10);
        body.push(b"hello").unwrap();
        body.push(b"").unwrap();
        body.push(b"worl").unwrap();
        body.push(b"d").unwrap();
        assert_eq!(body.finish().unwrap(), "helloworld");

        let mut body = CappedBody::new(10);
        body.push(b"hello").unwrap();
        let refused = body.push(b"world!").unwrap_err();
        assert_eq!((refused.status, refused.code), (413, "payload_too_large"));

        assert_eq!(CappedBody::new(0).finish().unwrap(), "");
        let mut body = CappedBody::new(4);
        body.push(&[0xff, 0xfe]).unwrap();
        assert_eq!(body.finish().unwrap_err().code, "invalid_body");
    }
}
