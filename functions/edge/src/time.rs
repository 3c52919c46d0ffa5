//! The Worker's clock and sleep (JavaScript's, the only ones in workerd).

use chrono::{DateTime, Utc};
use std::time::Duration;

pub fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(now_ms() as i64).unwrap_or_default()
}

pub fn now_ms() -> u64 {
    worker::Date::now().as_millis()
}

pub async fn sleep(duration: Duration) {
    worker::Delay::from(duration).await;
}
