//! What happens to a message: the `To` number decides, like Twilio's test numbers.
//!
//! - `+15005550001` → 400/21211 (invalid), `+15005550004` → 400/21610 (opted out), `+15005550009` → 400/21614
//!   (not SMS-capable), all refused at create (Twilio's magic test numbers, §5.8).
//! - last five digits `30003`, `30005`, `30006`, `30008` → `sent`, then `undelivered` with that error code;
//!   `30007`, `30034` → `failed` with that code, without `sent` (a failed message never left Twilio).
//! - anything else → `sent`, then `delivered`.

use super::super::TwilioError;

/// The final status of a message once its sender's queue releases it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Delivered,
    Undelivered(TwilioError),
    Failed(TwilioError),
}

impl Delivery {
    pub fn for_number(to: &str) -> Delivery {
        let tail = to.len().checked_sub(5).and_then(|start| to.get(start..)).unwrap_or_default();
        match tail {
            "30003" => Delivery::Undelivered(TwilioError::new(30003, "Unreachable destination handset")),
            "30005" => Delivery::Undelivered(TwilioError::new(30005, "Unknown destination handset")),
            "30006" => Delivery::Undelivered(TwilioError::new(30006, "Landline or unreachable carrier")),
            "30008" => Delivery::Undelivered(TwilioError::new(30008, "Unknown error")),
            "30007" => Delivery::Failed(TwilioError::new(30007, "Message filtered")),
            "30034" => Delivery::Failed(TwilioError::new(30034, "Message from an unregistered number")),
            _ => Delivery::Delivered,
        }
    }

    pub fn status(&self) -> &'static str {
        match self {
            Delivery::Delivered => "delivered",
            Delivery::Undelivered(_) => "undelivered",
            Delivery::Failed(_) => "failed",
        }
    }

    pub fn error(&self) -> Option<&TwilioError> {
        match self {
            Delivery::Delivered => None,
            Delivery::Undelivered(e) | Delivery::Failed(e) => Some(e),
        }
    }
}

/// Twilio's test numbers that refuse a create.
pub fn refused_number(to: &str) -> Option<TwilioError> {
    match to {
        "+15005550001" => Some(TwilioError::new(21211, format!("The 'To' number {to} is not a valid phone number."))),
        "+15005550004" => Some(opted_out()),
        "+15005550009" => Some(TwilioError::new(21614, format!("'To' number {to} is not a valid mobile number"))),
        _ => None,
    }
}

/// 21610, for a (person, sender) pair blocked by STOP.
pub fn opted_out() -> TwilioError {
    TwilioError::new(21610, "Attempt to send to unsubscribed recipient")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_five_digits_pick_the_outcome() {
        assert_eq!(Delivery::for_number("+15550001001"), Delivery::Delivered);
        assert_eq!(Delivery::for_number("+15553030003").status(), "undelivered");
        assert_eq!(Delivery::for_number("+15553030003").error().map(|e| e.code), Some(30003));
        assert_eq!(Delivery::for_number("+15550030007").status(), "failed");
        assert_eq!(Delivery::for_number("+15550030034").error().map(|e| e.code), Some(30034));
        assert_eq!(Delivery::for_number("+1"), Delivery::Delivered);
    }

    #[test]
    fn test_numbers_refused() {
        assert_eq!(refused_number("+15005550009").map(|e| e.code), Some(21614));
        assert_eq!(refused_number("+15005550004").map(|e| e.code), Some(21610));
        assert_eq!(refused_number("+15005550001").map(|e| e.code), Some(21211));
        assert_eq!(refused_number("+15005550006"), None);
    }
}
