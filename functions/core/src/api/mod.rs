//! The batch API (`/api/v1`), one module per job: which route a request is (`route`), what it brings
//! besides its body (`request`), how the SQL functions' answers become HTTP answers (`answers`), and the
//! event stream's decisions (`events`). The OpenAPI document (`openapi.json` beside this crate) describes
//! the same routes; a test in `route` holds the two together.

mod answers;
mod events;
mod request;
mod route;

pub use answers::{
    api_json, batch_answer, create_answer, estimate_answer, sms_create_answer, suppression_added, validation_error,
    Accepted,
};
pub use events::{
    completed, last_event_id, ProgressFeed, EVENTS_KEEPALIVE_MS, EVENTS_LIFETIME_MS, EVENTS_POLL_MS, EVENTS_RETRY_MS,
};
pub use request::{authorize, idempotency_key, Page, MAX_OFFSET, MAX_PAGE};
pub use route::{allow_header, allowed_methods, route, Route, SmsRoute, SuppressionRoute, OPENAPI_DOCUMENT, ROUTES};
