//! How many SMS segments a body takes, which is what carriers pace and Twilio prices (not characters).
//!
//! A body that fits GSM-7 (the basic table plus the escaped extension characters, which cost two septets) is
//! sent in it: 160 septets in one segment, 153 per segment when split. One character outside it switches
//! the whole body to UCS-2: 70 UTF-16 units in one segment, 67 per segment when split.

use serde::Serialize;

/// The GSM 03.38 basic character set (without the escape code itself).
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡\
                          ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// The extension table, each sent as escape + character.
const GSM7_EXTENSION: &str = "^{}\\[~]|€\u{c}";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Encoding {
    #[serde(rename = "GSM-7")]
    Gsm7,
    #[serde(rename = "UCS-2")]
    Ucs2,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gsm7 => "GSM-7",
            Self::Ucs2 => "UCS-2",
        }
    }
}

/// A body's encoding and its number of segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segments {
    pub encoding: Encoding,
    pub count: u32,
}

pub fn count(body: &str) -> Segments {
    match gsm7_septets(body) {
        Some(septets) => Segments { encoding: Encoding::Gsm7, count: parts(septets, 160, 153) },
        None => Segments { encoding: Encoding::Ucs2, count: parts(body.encode_utf16().count(), 70, 67) },
    }
}

/// The septets a body takes in GSM-7, or `None` when a character is not in it.
fn gsm7_septets(body: &str) -> Option<usize> {
    body.chars().try_fold(0, |septets, c| {
        if GSM7_BASIC.contains(c) {
            Some(septets + 1)
        } else if GSM7_EXTENSION.contains(c) {
            Some(septets + 2)
        } else {
            None
        }
    })
}

fn parts(units: usize, single: usize, per_part: usize) -> u32 {
    if units <= single {
        1
    } else {
        units.div_ceil(per_part) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gsm(count: u32) -> Segments {
        Segments { encoding: Encoding::Gsm7, count }
    }
    fn ucs(count: u32) -> Segments {
        Segments { encoding: Encoding::Ucs2, count }
    }

    #[test]
    fn plain_text_is_gsm7_with_160_then_153_per_segment() {
        assert_eq!(count("Hi Dana, your exam is at 9:30."), gsm(1));
        assert_eq!(count(&"a".repeat(160)), gsm(1));
        assert_eq!(count(&"a".repeat(161)), gsm(2));
        assert_eq!(count(&"a".repeat(306)), gsm(2));
        assert_eq!(count(&"a".repeat(307)), gsm(3));
        assert_eq!(count(""), gsm(1));
    }

    #[test]
    fn extension_characters_cost_two_septets() {
        assert_eq!(count(&"{".repeat(80)), gsm(1));
        assert_eq!(count(&"€".repeat(81)), gsm(2));
        assert_eq!(count("Café £5 — no"), ucs(1), "an em dash is not GSM-7");
        assert_eq!(count("Ärger über Öl, ñ, ß, É"), gsm(1), "these accented letters are in the table");
    }

    #[test]
    fn one_character_outside_gsm7_makes_the_whole_body_ucs2() {
        assert_eq!(count(&format!("{}“", "a".repeat(69))), ucs(1));
        assert_eq!(count(&format!("{}’", "a".repeat(70))), ucs(2));
        assert_eq!(count(&"ç".repeat(134)), ucs(2), "ç is not in the table (Ç is)");
        assert_eq!(count(&"ç".repeat(135)), ucs(3));
        // An emoji is two UTF-16 units.
        assert_eq!(count(&"😀".repeat(35)), ucs(1));
        assert_eq!(count(&"😀".repeat(36)), ucs(2));
    }
}
