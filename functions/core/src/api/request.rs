//! What a request brings besides its body: the API key, a page of a list, an `Idempotency-Key`, and
//! the 400s for a request that cannot be read.

use crate::api::validation_error;
use crate::batch::{self, BatchRequestError};
use crate::error::{constant_time_eq, ApiError};

/// `Authorization: Bearer <API_KEY>`: missing → 401, wrong → 403. Compared in constant time.
pub fn authorize(authorization: Option<&str>, api_key: &str) -> Result<(), ApiError> {
    let Some(given) = authorization.and_then(|h| h.trim().strip_prefix("Bearer ")) else {
        return Err(ApiError::unauthorized("send the API key as Authorization: Bearer <key>"));
    };
    if constant_time_eq(given.trim().as_bytes(), api_key.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::new(403, "forbidden", "the API key does not match"))
    }
}

/// A page of a list: `?limit=&offset=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: u32,
    pub offset: u32,
}

pub const MAX_PAGE: u32 = 1_000;
/// The largest `offset`: the database's `int` (`p_offset`), as the OpenAPI document's `maximum` says.
pub const MAX_OFFSET: u32 = i32::MAX as u32;

impl Page {
    /// Reads `limit` (1..=1000, default `default_limit`) and `offset` (0..=2^31-1, default 0) from a query
    /// string; other parameters are refused so a typo (`limt`) is not silently ignored.
    pub fn from_query(query: Option<&str>, default_limit: u32) -> Result<Self, ApiError> {
        let mut page = Page { limit: default_limit, offset: 0 };
        for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let number = value.parse::<u32>();
            match (name.as_ref(), number) {
                ("limit", Ok(n @ 1..=MAX_PAGE)) => page.limit = n,
                ("offset", Ok(n @ 0..=MAX_OFFSET)) => page.offset = n,
                ("limit", _) => return Err(invalid_parameter(format!("limit must be 1 to {MAX_PAGE}, got {value:?}"))),
                ("offset", _) => {
                    return Err(invalid_parameter(format!("offset must be 0 to {MAX_OFFSET}, got {value:?}")))
                }
                (other, _) => return Err(invalid_parameter(format!("unknown query parameter {other:?}"))),
            }
        }
        Ok(page)
    }
}

fn invalid_parameter(message: String) -> ApiError {
    ApiError::bad_request("invalid_parameter", message)
}

/// The `Idempotency-Key` header, when sent: 1 to 255 visible ASCII characters, else 400.
pub fn idempotency_key(header: Option<&str>) -> Result<Option<String>, ApiError> {
    header
        .map(|raw| {
            batch::parse_idempotency_key(raw)
                .map(str::to_owned)
                .map_err(|m| ApiError::bad_request("invalid_idempotency_key", m))
        })
        .transpose()
}

impl From<BatchRequestError> for ApiError {
    fn from(e: BatchRequestError) -> Self {
        match e {
            BatchRequestError::Malformed(message) => ApiError::bad_request("invalid_json", message),
            BatchRequestError::Invalid(items) => validation_error(items),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_the_api_key() {
        assert!(authorize(Some("Bearer k3y"), "k3y").is_ok());
        assert_eq!(authorize(None, "k3y").unwrap_err().status, 401);
        assert_eq!(authorize(Some("Basic k3y"), "k3y").unwrap_err().status, 401);
        assert_eq!(authorize(Some("Bearer k3Y"), "k3y").unwrap_err().status, 403);
    }

    #[test]
    fn pages_are_bounded() {
        assert_eq!(Page::from_query(None, 100), Ok(Page { limit: 100, offset: 0 }));
        assert_eq!(Page::from_query(Some("limit=5&offset=10"), 100), Ok(Page { limit: 5, offset: 10 }));
        let last = format!("limit=1000&offset={MAX_OFFSET}");
        assert_eq!(Page::from_query(Some(&last), 100), Ok(Page { limit: 1000, offset: 2_147_483_647 }));
        for bad in [
            "limit=0",
            "limit=1001",
            "offset=-1",
            "offset=2147483648",
            "offset=18446744073709551616",
            "limit=x",
            "limt=5",
        ] {
            assert_eq!(Page::from_query(Some(bad), 100).unwrap_err().code, "invalid_parameter", "{bad}");
        }
    }

    #[test]
    fn request_problems_are_400s() {
        assert_eq!(idempotency_key(None), Ok(None));
        assert_eq!(idempotency_key(Some(" k-1 ")), Ok(Some("k-1".into())));
        assert_eq!(idempotency_key(Some("a b")).unwrap_err().code, "invalid_idempotency_key");
        let malformed: ApiError = BatchRequestError::Malformed("not JSON".into()).into();
        assert_eq!((malformed.status, malformed.code), (400, "invalid_json"));
        let invalid: ApiError = BatchRequestError::Invalid(vec![]).into();
        assert_eq!(invalid.code, "validation_error");
    }
}
