//! Column values as Realtime sends them. wal2json prints numbers and booleans as JSON and everything else as
//! Postgres's text output; Realtime recasts each value to its column type and sends `to_jsonb` of it
//! (`realtime.cast` in apply_rls.sql). So: jsonb as objects, arrays as JSON arrays, timestamps in ISO form.
//! realtime-js then converts by the `columns` types and accepts either form, but the JSON is what it gets from
//! Supabase. Types are `pg_type.typname` (`int8`, `timestamptz`, `_text`), as in the payload's `columns`.

use serde_json::{Number, Value};

/// The value Realtime sends for wal2json's `raw` value of a column of type `typname`.
pub fn to_json(raw: &Value, typname: &str) -> Value {
    match raw {
        Value::String(text) => text_to_json(text, typname),
        other => other.clone(),
    }
}

/// `to_jsonb(text::typname)` for the types a dashboard meets; other types keep their text form.
pub fn text_to_json(text: &str, typname: &str) -> Value {
    if let Some(element) = typname.strip_prefix('_') {
        return match parse_array(text) {
            Some(items) => array_to_json(&items, element),
            None => Value::String(text.to_owned()),
        };
    }
    match typname {
        "json" | "jsonb" => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned())),
        "int2" | "int4" | "int8" | "oid" | "float4" | "float8" | "numeric" => number(text),
        "bool" => match text {
            "t" | "true" => Value::Bool(true),
            "f" | "false" => Value::Bool(false),
            _ => Value::String(text.to_owned()),
        },
        "timestamptz" => Value::String(iso_timestamptz(text)),
        "timestamp" => Value::String(text.replacen(' ', "T", 1)),
        _ => Value::String(text.to_owned()),
    }
}

/// A number as JSON; `NaN` and the infinities stay strings, as `to_jsonb` leaves them.
fn number(text: &str) -> Value {
    if let Ok(i) = text.parse::<i64>() {
        return Value::Number(i.into());
    }
    match text.parse::<f64>().ok().and_then(Number::from_f64) {
        Some(n) if text.bytes().all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) => Value::Number(n),
        _ => Value::String(text.to_owned()),
    }
}

/// `2026-12-03 07:08:08.5295+00` (text output, TimeZone UTC) → `2026-12-03T07:08:08.5295+00:00` (to_jsonb).
pub fn iso_timestamptz(text: &str) -> String {
    let iso = text.replacen(' ', "T", 1);
    let Some(t) = iso.find('T') else { return iso };
    match iso[t..].rfind(['+', '-']).map(|i| t + i) {
        Some(sign) if iso.len() - sign == 3 => format!("{iso}:00"),
        _ => iso,
    }
}

/// wal2json's commit time (`2026-12-03 07:08:08.529961+00`) as Realtime's `commit_timestamp`:
/// UTC, milliseconds, `Z` (`to_char(..., 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`).
pub fn commit_timestamp(text: &str) -> Option<String> {
    let parsed = chrono::DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z").ok()?;
    Some(parsed.with_timezone(&chrono::Utc).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

/// One element of a Postgres array literal.
#[derive(Debug, Clone, PartialEq)]
pub enum ArrayItem {
    Null,
    Text(String),
    Nested(Vec<ArrayItem>),
}

fn array_to_json(items: &[ArrayItem], element: &str) -> Value {
    Value::Array(
        items
            .iter()
            .map(|item| match item {
                ArrayItem::Null => Value::Null,
                ArrayItem::Text(text) => text_to_json(text, element),
                ArrayItem::Nested(inner) => array_to_json(inner, element),
            })
            .collect(),
    )
}

/// Postgres's limit on array dimensions (MAXDIM); deeper nesting is refused, not recursed into (the text can
/// come from a client's `in` filter).
const MAX_DIMENSIONS: usize = 6;

/// Parses a Postgres array literal (`{a,"b c",NULL,{1,2}}`, the text output of any array); None if it is not one.
pub fn parse_array(text: &str) -> Option<Vec<ArrayItem>> {
    let mut chars = text.trim().chars().peekable();
    let items = parse_braces(&mut chars, 1)?;
    chars.next().is_none().then_some(items)
}

fn parse_braces(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, depth: usize) -> Option<Vec<ArrayItem>> {
    if chars.next()? != '{' || depth > MAX_DIMENSIONS {
        return None;
    }
    let mut items = Vec::new();
    skip_spaces(chars);
    if chars.peek() == Some(&'}') {
        chars.next();
        return Some(items);
    }
    loop {
        skip_spaces(chars);
        let item = match chars.peek()? {
            '{' => ArrayItem::Nested(parse_braces(chars, depth + 1)?),
            '"' => {
                chars.next();
                let mut text = String::new();
                loop {
                    match chars.next()? {
                        '\\' => text.push(chars.next()?),
                        '"' => break,
                        c => text.push(c),
                    }
                }
                ArrayItem::Text(text)
            }
            _ => {
                let mut text = String::new();
                while let Some(&c) = chars.peek() {
                    if c == ',' || c == '}' {
                        break;
                    }
                    if c == '\\' {
                        chars.next();
                        text.push(chars.next()?);
                    } else {
                        text.push(c);
                        chars.next();
                    }
                }
                let text = text.trim_end();
                if text.is_empty() {
                    return None;
                }
                if text.eq_ignore_ascii_case("null") {
                    ArrayItem::Null
                } else {
                    ArrayItem::Text(text.to_owned())
                }
            }
        };
        items.push(item);
        skip_spaces(chars);
        match chars.next()? {
            ',' => continue,
            '}' => return Some(items),
            _ => return None,
        }
    }
}

fn skip_spaces(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while chars.peek().is_some_and(|c| c.is_whitespace()) {
        chars.next();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_take_their_to_jsonb_form() {
        // Each pair: wal2json's value (recorded from Postgres 15 + wal2json 2.5) and `to_jsonb` of it.
        let cases = [
            (json!("fc5860e2-4b54-446c-917f-12dda0d01aad"), "uuid", json!("fc5860e2-4b54-446c-917f-12dda0d01aad")),
            (json!(9007199254740993i64), "int8", json!(9007199254740993i64)),
            (json!(true), "bool", json!(true)),
            (json!("2026-12-03 07:08:08.529514+00"), "timestamptz", json!("2026-12-03T07:08:08.529514+00:00")),
            (json!("2026-01-02 03:04:05.678"), "timestamp", json!("2026-01-02T03:04:05.678")),
            (json!("2026-01-02"), "date", json!("2026-01-02")),
            (json!("{\"a\": [1, \"x\"]}"), "jsonb", json!({"a": [1, "x"]})),
            (json!("{a,\"b c\",\"d\\\"e\",NULL}"), "_text", json!(["a", "b c", "d\"e", null])),
            (json!("{1,2}"), "_int4", json!([1, 2])),
            (json!("{{1,2},{3,4}}"), "_int8", json!([[1, 2], [3, 4]])),
            (json!("{t,f}"), "_bool", json!([true, false])),
            (json!("{}"), "_text", json!([])),
            (json!("00:05:00"), "interval", json!("00:05:00")),
            (json!("pending"), "call_status", json!("pending")),
            (Value::Null, "text", Value::Null),
        ];
        for (raw, typname, expected) in cases {
            assert_eq!(to_json(&raw, typname), expected, "{raw} as {typname}");
        }
    }

    #[test]
    fn numbers_inside_arrays_and_odd_floats() {
        assert_eq!(text_to_json("{1.5,NaN,-2}", "_numeric"), json!([1.5, "NaN", -2]));
        assert_eq!(text_to_json("Infinity", "float8"), json!("Infinity"));
    }

    #[test]
    fn timestamps() {
        assert_eq!(iso_timestamptz("2026-12-03 07:08:08+05:30"), "2026-12-03T07:08:08+05:30");
        assert_eq!(iso_timestamptz("infinity"), "infinity");
        assert_eq!(commit_timestamp("2026-12-03 07:08:08.529961+00").as_deref(), Some("2026-12-03T07:08:08.529Z"));
        assert_eq!(commit_timestamp("2026-12-03 09:08:08+02").as_deref(), Some("2026-12-03T07:08:08.000Z"));
        assert_eq!(commit_timestamp("yesterday"), None);
    }

    #[test]
    fn array_literals() {
        use ArrayItem::*;
        assert_eq!(parse_array(" { a , b } "), Some(vec![Text("a".into()), Text("b".into())]));
        assert_eq!(parse_array("{\"NULL\",null}"), Some(vec![Text("NULL".into()), Null]));
        assert_eq!(parse_array("{a\\,b}"), Some(vec![Text("a,b".into())]));
        for bad in ["", "a,b", "{a", "{a,}", "{\"a}", "{a}x", "{,}"] {
            assert_eq!(parse_array(bad), None, "{bad:?}");
        }
        assert!(parse_array("{{{{{{1}}}}}}").is_some(), "six dimensions");
        assert_eq!(parse_array("{{{{{{{1}}}}}}}"), None, "seven");
        let deep = format!("{}{}", "{".repeat(1_000_000), "}".repeat(1_000_000));
        assert_eq!(parse_array(&deep), None, "no recursion into what a client nests");
    }
}
