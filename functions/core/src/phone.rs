//! E.164 phone numbers: parsed once at the edge, trusted everywhere after.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A phone number in E.164 form: `+`, a non-zero country digit, 7 to 15 digits in all.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct PhoneNumber(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("a phone number must start with '+' and its country code (E.164)")]
    MissingPlus,
    #[error("a phone number may contain only digits after '+' (spaces, dashes, dots and brackets are ignored)")]
    NotDigits,
    #[error("a phone number has 7 to 15 digits and does not start with 0")]
    BadLength,
}

impl PhoneNumber {
    /// Accepts E.164 written with common separators (`+1 (555) 000-1001`) and returns the bare form.
    pub fn parse(raw: &str) -> Result<Self, PhoneError> {
        let trimmed = raw.trim();
        let rest = trimmed.strip_prefix('+').ok_or(PhoneError::MissingPlus)?;
        let mut digits = String::with_capacity(16);
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(PhoneError::NotDigits),
            }
        }
        if !(7..=15).contains(&digits.len()) || digits.starts_with('0') {
            return Err(PhoneError::BadLength);
        }
        Ok(Self(format!("+{digits}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PhoneNumber {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_bare_and_formatted_numbers() {
        assert_eq!(PhoneNumber::parse("+15550001001").unwrap().as_str(), "+15550001001");
        assert_eq!(PhoneNumber::parse(" +1 (555) 000-1001 ").unwrap().as_str(), "+15550001001");
        assert_eq!(PhoneNumber::parse("+44.20.7946.0958").unwrap().as_str(), "+442079460958");
    }

    #[test]
    fn rejects_what_is_not_e164() {
        assert_eq!(PhoneNumber::parse("5550001001"), Err(PhoneError::MissingPlus));
        assert_eq!(PhoneNumber::parse("+1555abc1001"), Err(PhoneError::NotDigits));
        assert_eq!(PhoneNumber::parse("+012345678"), Err(PhoneError::BadLength));
        assert_eq!(PhoneNumber::parse("+123456"), Err(PhoneError::BadLength));
        assert_eq!(PhoneNumber::parse("+1234567890123456"), Err(PhoneError::BadLength));
        assert_eq!(PhoneNumber::parse("+"), Err(PhoneError::BadLength));
    }

    #[test]
    fn deserializes_through_parse() {
        let ok: PhoneNumber = serde_json::from_str("\"+1 555 000 1001\"").unwrap();
        assert_eq!(ok.as_str(), "+15550001001");
        assert!(serde_json::from_str::<PhoneNumber>("\"555\"").is_err());
    }

    proptest! {
        #[test]
        fn every_valid_number_round_trips(digits in "[1-9][0-9]{6,14}") {
            let phone = PhoneNumber::parse(&format!("+{digits}")).unwrap();
            prop_assert_eq!(phone.as_str(), format!("+{digits}"));
            prop_assert_eq!(PhoneNumber::parse(phone.as_str()).unwrap(), phone);
        }
    }
}
