//! How an injected fault changes a Calls or Messages API answer. A 429 or 503 refuses
//! the request before anything happens; a 504 or a timeout lets the request
//! be processed (a create places its call) and spoils only the answer, which
//! is the case a client cannot tell from a lost request.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;

use super::TwilioError;
use crate::faults::TwilioFault;

/// The error a fault answers with instead of processing the request, or `None` if it lets it through.
pub fn refusal_error(fault: TwilioFault) -> Option<(StatusCode, TwilioError)> {
    match fault {
        TwilioFault::TooManyRequests => {
            Some((StatusCode::TOO_MANY_REQUESTS, TwilioError::new(20429, "Too Many Requests")))
        }
        TwilioFault::Unavailable => {
            Some((StatusCode::SERVICE_UNAVAILABLE, TwilioError::new(20503, "Service unavailable")))
        }
        TwilioFault::GatewayTimeout | TwilioFault::Timeout { .. } => None,
    }
}

/// The answer to a request the fault refuses, or `None` to process it.
pub fn refusal(fault: Option<TwilioFault>, request: &str) -> Option<Response> {
    let fault = fault?;
    let (status, error) = refusal_error(fault)?;
    let mut refused = error.api_response(status);
    if status == StatusCode::TOO_MANY_REQUESTS {
        refused.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    crate::log!(info, "faults", "{} on {request}: refused", fault.kind().name());
    Some(refused)
}

/// The answer the client gets for a request that was processed.
pub async fn spoil(fault: Option<TwilioFault>, request: &str, processed: Response) -> Response {
    match fault {
        Some(TwilioFault::GatewayTimeout) => {
            crate::log!(info, "faults", "twilio_504 on {request}: processed, answered 504");
            // 20500 is Twilio's code for "an error or a timeout in the API".
            TwilioError::new(20500, "Gateway Timeout").api_response(StatusCode::GATEWAY_TIMEOUT)
        }
        Some(TwilioFault::Timeout { hold }) => {
            crate::log!(info, "faults", "twilio_timeout on {request}: processed, answer held {} ms", hold.as_millis());
            // A client that gives up drops the connection and, with it, this future.
            tokio::time::sleep(hold).await;
            processed
        }
        _ => processed,
    }
}
