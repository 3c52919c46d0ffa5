//! Input generation: a seeded RNG with helpers for the shapes outcall's inputs take, and byte mutations.

use crate::FIELD;
use serde_json::{Map, Number, Value};

/// Strings worth trying anywhere: edges of number types, odd unicode, markup, encodings, dates.
pub const DICTIONARY: &[&str] = &[
    "",
    " ",
    "\0",
    "\t",
    "\r\n",
    "\u{7f}",
    "\u{85}",
    "\u{a0}",
    "\u{2028}",
    "\u{202e}",
    "\u{feff}",
    "\u{fffd}",
    "\u{10ffff}",
    "é",
    "ß",
    "😀",
    "👩‍👩‍👧",
    "\u{301}",
    "１２３",
    "١٢٣",
    "%",
    "%zz",
    "%FF",
    "%00",
    "%2B",
    "%C3%A9",
    "+",
    "&",
    "=",
    "&&==",
    "?",
    "#",
    "/",
    "//",
    "..",
    "\\",
    "\\u0000",
    "\\ud800",
    "\\udc00\\ud800",
    "\"",
    "'",
    "<",
    ">",
    "]]>",
    "<![CDATA[",
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "null",
    "true",
    "false",
    "NaN",
    "Infinity",
    "-0",
    "0",
    "00",
    "-1",
    "1.5",
    "1e309",
    "-1e309",
    "1e-400",
    "123456789012345678901234567890",
    "2147483647",
    "2147483648",
    "-2147483648",
    "-2147483649",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "-9999999999999999",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999",
    "100000000000",
    "0x10",
    "1_000",
    "+5",
    " 5 ",
    "Bearer ",
    "sha256=",
    "CA0123456789abcdef0123456789abcdef",
    "6f9619ff-8b86-d011-b42d-00c04fc964ff",
    "{6f9619ff-8b86-d011-b42d-00c04fc964ff}",
    "urn:uuid:6f9619ff-8b86-d011-b42d-00c04fc964ff",
    "6f9619ff8b86d011b42d00c04fc964ff",
    "+15550001001",
    "+1 (555) 000-1001",
    "2026-12-01T09:30:00-05:00",
    "9999-12-31T23:59:59+23:59",
    "0000-01-01T00:00:00-23:59",
    "2026-02-30",
    "+262143-12-31",
    "24:00",
    "23:60",
    "Sat, 21 Nov 2026 12:00:00 +0000",
    "Fri, 31 Dec 9999 23:59:59 -2359",
    "Mon, 01 Jan 0000 00:00:00 +2359",
    "pending_calls",
    "INSERT",
    "public",
    "message",
    "type",
    "tool-calls",
    "end-of-call-report",
    "assistant-request",
    "status-update",
];

/// Bytes that tend to matter to parsers.
const INTERESTING_BYTES: &[u8] = &[
    0, 1, 0x7f, 0x80, 0xbf, 0xc0, 0xc3, 0xe2, 0xf0, 0xf4, 0xff, b' ', b'"', b'\\', b'{', b'}', b'[', b']', b':', b',',
    b'%', b'&', b'=', b'+', b'-', b'.', b'0', b'9', b'e', b'/', b'<', b'\n',
];

/// A seeded source of inputs.
pub struct Gen {
    rng: fastrand::Rng,
    /// Generate only valid-looking values (no odd fields, no near misses), so that a good share of
    /// inputs gets past validation to the code behind it. Set for some generated inputs by the driver.
    pub strict: bool,
}

impl Gen {
    pub fn new(seed: u64) -> Self {
        Self { rng: fastrand::Rng::with_seed(seed), strict: false }
    }

    /// A number in `0..n` (0 for `n == 0`).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            self.rng.usize(..n)
        }
    }

    pub fn percent(&mut self, p: usize) -> bool {
        self.below(100) < p
    }

    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    pub fn pick_str(&mut self, items: &[&'static str]) -> &'static str {
        items[self.below(items.len())]
    }

    pub fn u64(&mut self) -> u64 {
        self.rng.u64(..)
    }

    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        self.rng.u64(lo..=hi)
    }

    /// A length: mostly short, sometimes long, rarely very long.
    pub fn size(&mut self) -> usize {
        if self.strict {
            return self.below(33);
        }
        match self.below(100) {
            0..=59 => self.below(9),
            60..=89 => self.below(65),
            90..=98 => self.below(513),
            _ if self.one_in(10) => self.below(20_000),
            _ => self.below(4097),
        }
    }

    pub fn random_bytes(&mut self) -> Vec<u8> {
        let mut bytes = vec![0; self.size()];
        self.rng.fill(&mut bytes);
        if self.percent(50) {
            // Mostly printable ASCII: closer to what parsers look at.
            for b in &mut bytes {
                if self.percent(90) {
                    *b = 0x20 + (*b % 0x5f);
                }
            }
        }
        bytes
    }

    /// Random fields (random text between field separators).
    pub fn random_fields(&mut self) -> Vec<u8> {
        let n = 1 + self.below(8);
        let parts: Vec<String> = (0..n).map(|_| self.text()).collect();
        crate::frame(&parts)
    }

    /// A character from a mix of classes: ASCII, controls, Latin-1, the BMP, astral, specials.
    pub fn char(&mut self) -> char {
        match self.below(100) {
            0..=59 => char::from(0x20 + self.below(0x5f) as u8),
            60..=67 => char::from(self.below(0x20) as u8),
            68..=71 => char::from_u32(0x7f + self.below(0x21) as u32).unwrap_or('?'),
            72..=79 => char::from_u32(0xa0 + self.below(0x160) as u32).unwrap_or('?'),
            80..=89 => self.rng.char('\u{100}'..='\u{ffff}'),
            90..=94 => self.rng.char('\u{10000}'..='\u{10ffff}'),
            _ => *self
                .pick(&['\u{200b}', '\u{202e}', '\u{feff}', '\u{2028}', '\u{3000}', '\u{ff10}', '\u{661}', '\u{301}']),
        }
    }

    /// Random text of [`Gen::size`] characters, now and then with a dictionary word.
    pub fn text(&mut self) -> String {
        let n = self.size();
        let mut s = String::with_capacity(n);
        for _ in 0..n {
            if self.one_in(16) {
                s.push_str(self.word());
            } else {
                s.push(self.char());
            }
        }
        s
    }

    /// Text drawn from `alphabet`, `min..=max` characters.
    pub fn text_of(&mut self, alphabet: &str, min: usize, max: usize) -> String {
        let chars: Vec<char> = alphabet.chars().collect();
        let n = min + self.below(max - min + 1);
        (0..n).map(|_| *self.pick(&chars)).collect()
    }

    pub fn digits(&mut self, min: usize, max: usize) -> String {
        self.text_of("0123456789", min, max)
    }

    pub fn word(&mut self) -> &'static str {
        self.pick_str(DICTIONARY)
    }

    /// Mostly `valid`, else a dictionary word or random text.
    pub fn or_odd(&mut self, valid: impl FnOnce(&mut Gen) -> String) -> String {
        if self.strict {
            return valid(self);
        }
        match self.below(100) {
            0..=79 => valid(self),
            80..=89 => self.word().to_owned(),
            _ => self.text(),
        }
    }

    /// A number as text: small, at a type's edge, huge, negative, fractional, exponent.
    pub fn number(&mut self) -> String {
        match self.below(10) {
            0..=3 => self.below(100).to_string(),
            4 => self.u64().to_string(),
            5 => format!("-{}", self.u64()),
            6 => self.digits(1, 40),
            7 => format!("{}.{}", self.below(1000), self.digits(1, 5)),
            8 => format!("{}e{}", self.below(10), self.pick(&["1", "-1", "10", "308", "309", "400", "-400", "99999"])),
            _ => self
                .pick(&[
                    "0",
                    "-0",
                    "2147483647",
                    "2147483648",
                    "4294967295",
                    "4294967296",
                    "9223372036854775807",
                    "9223372036854775808",
                    "-9223372036854775808",
                    "-9223372036854775809",
                    "18446744073709551616",
                    "1e309",
                ])
                .to_string(),
        }
    }

    /// A UUID, in its usual form mostly, in its other forms or a near miss otherwise.
    pub fn uuid(&mut self) -> String {
        let hex = format!("{:016x}{:016x}", self.u64(), self.u64());
        let hyphenated = format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..]);
        match self.below(if self.strict { 16 } else { 20 }) {
            0..=11 => hyphenated,
            12 => hyphenated.to_uppercase(),
            13 => hex,
            14 => format!("{{{hyphenated}}}"),
            15 => format!("urn:uuid:{hyphenated}"),
            16 => format!(" {hyphenated}\t"),
            17 => hyphenated[..self.below(36)].to_owned(),
            18 => hyphenated.replacen(|c: char| c.is_ascii_hexdigit(), "g", 1),
            _ => format!("{hyphenated}{}", self.char()),
        }
    }

    /// A Twilio Call SID, or a near miss.
    pub fn call_sid(&mut self) -> String {
        let hex = format!("{:016x}{:016x}", self.u64(), self.u64());
        match self.below(if self.strict { 7 } else { 10 }) {
            0..=6 => format!("CA{hex}"),
            7 => format!("CA{}", &hex[..self.below(32)]),
            8 => format!("{}{hex}", self.pick(&["SM", "ca", "CA ", "", "CAx"])),
            _ => format!("CA{hex}{}", self.char()),
        }
    }

    /// A phone-like string: E.164 with or without separators, or nearly.
    pub fn phone(&mut self) -> String {
        if self.strict {
            let mut s = format!("+{}", 1 + self.below(9));
            for c in self.digits(6, 14).chars() {
                if self.one_in(5) {
                    s.push(*self.pick(&[' ', '-', '.', '(', ')']));
                }
                s.push(c);
            }
            return s;
        }
        let digits = self.digits(0, 18);
        let mut s = String::new();
        match self.below(10) {
            0 => {}
            1 => s.push_str(self.pick_str(&["00", "＋", "++", " +", "+\u{a0}"])),
            _ => s.push('+'),
        }
        for c in digits.chars() {
            if self.one_in(5) {
                s.push(*self.pick(&[' ', '-', '.', '(', ')', '/', 'x', '\u{a0}', '\u{ff11}', '\u{661}', '\u{2009}']));
            }
            s.push(c);
        }
        if self.one_in(8) {
            s.push_str(self.pick_str(&[" ", "\n", "\t", "\u{3000}", " ext. 12", "#", "\0"]));
        }
        s
    }

    /// An RFC 3339 time, or nearly.
    pub fn rfc3339(&mut self) -> String {
        if self.strict {
            let offset = match self.below(3) {
                0 => "Z".to_owned(),
                _ => format!("{}{:02}:{:02}", self.pick(&["+", "-"]), self.below(24), self.below(60)),
            };
            return format!(
                "{}-{:02}-{:02}T{:02}:{:02}:{:02}{offset}",
                2020 + self.below(10),
                1 + self.below(12),
                1 + self.below(28),
                self.below(24),
                self.below(60),
                self.below(60)
            );
        }
        let offset = match self.below(4) {
            0 => "Z".to_owned(),
            1 => format!("{}{:02}:{:02}", self.pick(&["+", "-"]), self.below(30), self.below(70)),
            2 => String::new(),
            _ => format!("{}{:02}:00", self.pick(&["+", "-"]), self.below(24)),
        };
        let year = match self.below(5) {
            0 => self.below(10_000),
            _ => 2020 + self.below(10),
        };
        format!(
            "{year:04}-{:02}-{:02}{}{:02}:{:02}:{:02}{}{offset}",
            self.below(14),
            self.below(33),
            self.pick(&["T", "t", " "]),
            self.below(26),
            self.below(61),
            self.below(62),
            if self.one_in(4) { format!(".{}", self.digits(1, 12)) } else { String::new() }
        )
    }

    /// A JSON scalar, biased to edges.
    pub fn json_scalar(&mut self) -> Value {
        match self.below(12) {
            0 => Value::Null,
            1 => Value::Bool(self.percent(50)),
            2 => Value::Number(Number::from(self.u64())),
            3 => Value::Number(Number::from(-(self.below(1_000_000) as i64))),
            4 => Number::from_f64(f64::from_bits(self.u64())).map_or(Value::Null, Value::Number),
            5 => Value::Number(Number::from(self.below(30) as u64)),
            6 => Value::String(self.uuid()),
            7 => Value::String(self.word().to_owned()),
            _ => Value::String(self.text()),
        }
    }

    /// Any JSON value, at most `depth` deep.
    pub fn json_any(&mut self, depth: usize) -> Value {
        if depth == 0 || self.percent(60) {
            return self.json_scalar();
        }
        let n = self.below(6);
        if self.percent(50) {
            Value::Array((0..n).map(|_| self.json_any(depth - 1)).collect())
        } else {
            let mut map = Map::new();
            for _ in 0..n {
                let key = if self.percent(50) { self.word().to_owned() } else { self.text() };
                map.insert(key, self.json_any(depth - 1));
            }
            Value::Object(map)
        }
    }

    /// `valid` mostly; else left out (`None`), null, or any other value.
    pub fn field(&mut self, valid: Value) -> Option<Value> {
        if self.strict {
            return Some(valid);
        }
        match self.below(100) {
            0..=79 => Some(valid),
            80..=86 => None,
            87..=90 => Some(Value::Null),
            _ => Some(self.json_any(3)),
        }
    }

    /// An object of these fields, each through [`Gen::field`], now and then with an unknown key.
    pub fn object(&mut self, fields: Vec<(&str, Value)>) -> Value {
        let mut map = Map::new();
        for (key, valid) in fields {
            if let Some(value) = self.field(valid) {
                map.insert(key.to_owned(), value);
            }
        }
        if !self.strict && self.one_in(10) {
            map.insert(self.text(), self.json_any(2));
        }
        Value::Object(map)
    }

    /// A value as JSON text: compact, pretty, or with odd whitespace; now and then wrapped in deep nesting.
    pub fn json_text(&mut self, value: &Value) -> String {
        let text = match self.below(10) {
            0 => serde_json::to_string_pretty(value).unwrap_or_default(),
            1 => format!(" \t\n{}\r\n ", value),
            _ => value.to_string(),
        };
        if !self.strict && self.one_in(50) {
            let depth = 1 + self.below(300);
            let (open, close) = if self.percent(50) { ("[", "]") } else { ("{\"message\":", "}") };
            return format!("{}{text}{}", open.repeat(depth), close.repeat(depth));
        }
        text
    }
}

/// One mutation of `input`, in place. `other` is material for splicing.
pub fn mutate(g: &mut Gen, input: &mut Vec<u8>, other: &[u8]) {
    let len = input.len();
    let at = g.below(len + 1);
    match g.below(16) {
        0 if len > 0 => input[at.min(len - 1)] ^= 1 << g.below(8),
        1 if len > 0 => input[at.min(len - 1)] = *g.pick(INTERESTING_BYTES),
        2 if len > 0 => {
            let end = (at + 1 + g.below(16)).min(len);
            input.drain(at.min(len - 1)..end);
        }
        3 => {
            let mut bytes = vec![0; 1 + g.below(8)];
            for b in &mut bytes {
                *b = g.below(256) as u8;
            }
            input.splice(at..at, bytes);
        }
        4 if len > 0 => {
            let start = g.below(len);
            let end = (start + 1 + g.below(64)).min(len);
            let copy = input[start..end].to_vec();
            input.splice(at..at, copy);
        }
        5 => input.truncate(at),
        6 | 7 => {
            let word = g.word().as_bytes().to_vec();
            input.splice(at..at, word);
        }
        8 if !other.is_empty() => {
            // Splice: our prefix, the other's suffix.
            let from = g.below(other.len());
            input.truncate(at);
            input.extend_from_slice(&other[from..]);
        }
        9 => {
            // A run of digits becomes a huge, negative or fractional number.
            let number = g.number().into_bytes();
            match input.iter().position(|b| b.is_ascii_digit()) {
                Some(start) => {
                    let end = start + input[start..].iter().take_while(|b| b.is_ascii_digit()).count();
                    input.splice(start..end, number);
                }
                None => {
                    input.splice(at..at, number);
                }
            }
        }
        10 => {
            // Deep nesting around a point.
            let depth = 1 + g.below(260);
            let (open, close): (&[u8], &[u8]) = match g.below(3) {
                0 => (b"[", b"]"),
                1 => (b"{\"a\":", b"}"),
                _ => (b"[{\"message\":", b"}]"),
            };
            let mut wrapped = open.repeat(depth);
            wrapped.extend_from_slice(&input[at..]);
            if g.percent(70) {
                wrapped.extend_from_slice(&close.repeat(depth));
            }
            input.truncate(at);
            input.extend_from_slice(&wrapped);
        }
        11 if len > 0 => {
            // A chunk repeated many times (size blow-up).
            let start = g.below(len);
            let end = (start + 1 + g.below(32)).min(len);
            let chunk = input[start..end].to_vec();
            let times = 1 + g.below(4096 / chunk.len().max(1));
            input.splice(at..at, chunk.repeat(times));
        }
        12 => {
            // A field separator added, or one taken away.
            match input.iter().position(|b| *b == FIELD) {
                Some(i) if g.percent(50) => {
                    input.remove(i);
                }
                _ => input.insert(at, FIELD),
            }
        }
        13 if len > 0 => {
            let end = (at + 1 + g.below(32)).min(len);
            for b in &mut input[at.min(len - 1)..end] {
                b.make_ascii_uppercase();
            }
        }
        14 => {
            // Unicode or a control character, encoded.
            let mut buf = [0; 4];
            let c = g.char().encode_utf8(&mut buf).as_bytes().to_vec();
            input.splice(at..at, c);
        }
        _ => {
            // Overwrite with another's bytes, same place.
            if !other.is_empty() {
                let from = g.below(other.len());
                let n = (1 + g.below(32)).min(other.len() - from);
                let end = (at + n).min(input.len());
                input.splice(at..end, other[from..from + n].iter().copied());
            }
        }
    }
}
