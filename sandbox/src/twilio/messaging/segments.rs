//! How many SMS segments a body costs (operators.md §5.7): GSM-7 when every character is in the GSM 03.38
//! default alphabet or its extension table (extension characters cost two septets), else UCS-2 for the whole
//! message. Counted here independently of the Worker's own count, so the two can be compared.

/// GSM 03.38 basic table (one septet each).
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\u{1b}ÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// GSM 03.38 extension table (escape + one septet).
const GSM7_EXTENSION: &str = "\u{0c}^{}\\[~]|€";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

impl Encoding {
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "GSM-7",
            Encoding::Ucs2 => "UCS-2",
        }
    }
}

/// The body's encoding and its number of segments (at least 1, also for an empty body).
pub fn count(body: &str) -> (Encoding, u32) {
    let septets: Option<usize> = body
        .chars()
        .map(|c| {
            if GSM7_BASIC.contains(c) {
                Some(1)
            } else if GSM7_EXTENSION.contains(c) {
                Some(2)
            } else {
                None
            }
        })
        .sum();
    let (encoding, units, single, per_part) = match septets {
        Some(n) => (Encoding::Gsm7, n, 160, 153),
        // UCS-2 counts UTF-16 code units: a character beyond the BMP (most emoji) takes two.
        None => (Encoding::Ucs2, body.encode_utf16().count(), 70, 67),
    };
    let segments = if units <= single { 1 } else { units.div_ceil(per_part) };
    (encoding, segments as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm7_limits() {
        assert_eq!(count(""), (Encoding::Gsm7, 1));
        assert_eq!(count(&"a".repeat(160)), (Encoding::Gsm7, 1));
        assert_eq!(count(&"a".repeat(161)), (Encoding::Gsm7, 2));
        assert_eq!(count(&"a".repeat(306)), (Encoding::Gsm7, 2));
        assert_eq!(count(&"a".repeat(307)), (Encoding::Gsm7, 3));
        assert_eq!(count(&"a".repeat(1600)), (Encoding::Gsm7, 11));
        // Accented letters of the table stay GSM-7.
        assert_eq!(count("Ñandu é ü ß Ø à"), (Encoding::Gsm7, 1));
    }

    #[test]
    fn extension_characters_cost_two_septets() {
        assert_eq!(count(&"€".repeat(80)), (Encoding::Gsm7, 1));
        assert_eq!(count(&"€".repeat(81)), (Encoding::Gsm7, 2));
        assert_eq!(count(&format!("{}{{", "a".repeat(159))), (Encoding::Gsm7, 2));
    }

    #[test]
    fn one_character_outside_switches_everything_to_ucs2() {
        assert_eq!(count(&format!("{}’", "a".repeat(69))), (Encoding::Ucs2, 1));
        assert_eq!(count(&format!("{}“", "a".repeat(70))), (Encoding::Ucs2, 2));
        assert_eq!(count(&"ç".repeat(134)), (Encoding::Ucs2, 2));
        assert_eq!(count(&"ç".repeat(135)), (Encoding::Ucs2, 3));
        // An emoji is two UTF-16 units.
        assert_eq!(count(&"😀".repeat(35)), (Encoding::Ucs2, 1));
        assert_eq!(count(&"😀".repeat(36)), (Encoding::Ucs2, 2));
        assert_eq!(count("Hi – there").0, Encoding::Ucs2);
        assert_eq!(count("Ñandú").0, Encoding::Ucs2, "ú is not in the table");
    }
}
