//! `postgres_changes` filters: `column=op.value`, `op` one of `eq, neq, lt, lte, gt, gte, in` (`in.(a,b)`, at
//! most 100 values); several joined by commas must all hold (Realtime's `parse_filters`). Realtime compares
//! in SQL after casting the filter value to the column's type (`realtime.check_equality_op`); here values
//! compare as numbers, booleans, instants, uuids or text by the column type, which agrees with Postgres for
//! the types a dashboard filters on. A row whose column is null matches no filter, as in Realtime.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::values::{parse_array, ArrayItem};

/// Realtime's limit on `in` lists.
pub const MAX_IN_VALUES: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    In,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub column: String,
    pub op: Op,
    /// One value, or the `in` list (None = a NULL in the list, which matches nothing).
    pub values: Vec<Option<String>>,
}

/// Parses a `filter` string; an empty one means no filter. The error reads like Realtime's.
pub fn parse_filters(text: &str) -> Result<Vec<Filter>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    split_top_level(text)
        .into_iter()
        .map(parse_one)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("Error parsing `filter` params: {e}"))
}

/// Splits on commas outside parentheses and double quotes.
fn split_top_level(text: &str) -> Vec<&str> {
    let (mut parts, mut start, mut depth, mut quoted, mut escaped) = (Vec::new(), 0, 0usize, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth = depth.saturating_sub(1),
            ',' if !quoted && depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn parse_one(segment: &str) -> Result<Filter, String> {
    let segment = segment.trim();
    if segment.is_empty() {
        return Err("filter must not contain empty segments (check for extra commas)".into());
    }
    let Some((column, rest)) = segment.split_once('=') else { return Err(format!("[{segment:?}]")) };
    let Some((op, value)) = rest.split_once('.') else { return Err(format!("[{column:?}, {rest:?}]")) };
    let op = match op {
        "eq" => Op::Eq,
        "neq" => Op::Neq,
        "lt" => Op::Lt,
        "lte" => Op::Lte,
        "gt" => Op::Gt,
        "gte" => Op::Gte,
        "in" => Op::In,
        _ => return Err(format!("[{op:?}, {value:?}]")),
    };
    if column.trim().is_empty() {
        return Err(format!("a filter needs a column: {segment:?}"));
    }
    let values = if op == Op::In { in_values(value)? } else { vec![Some(unquote(value))] };
    Ok(Filter { column: column.trim().to_owned(), op, values })
}

/// `(a,"b c",3)` → the values, read like the Postgres array `{a,"b c",3}` Realtime turns it into.
fn in_values(value: &str) -> Result<Vec<Option<String>>, String> {
    let inner = value
        .strip_prefix('(')
        .and_then(|v| v.strip_suffix(')'))
        .ok_or("`in` filter value must be wrapped by parentheses")?;
    let items =
        parse_array(&format!("{{{inner}}}")).ok_or_else(|| format!("`in` filter values are not a list: {value:?}"))?;
    if items.len() > MAX_IN_VALUES {
        return Err(format!("too many values for `in` filter. Maximum {MAX_IN_VALUES}"));
    }
    items
        .into_iter()
        .map(|item| match item {
            ArrayItem::Null => Ok(None),
            ArrayItem::Text(text) => Ok(Some(text)),
            ArrayItem::Nested(_) => Err(format!("`in` filter values cannot be nested: {value:?}")),
        })
        .collect()
}

/// `"a \"b\""` → `a "b"`; anything else as it is.
fn unquote(value: &str) -> String {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else { return value.to_owned() };
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(next) => out.push(next),
                None => return value.to_owned(),
            },
            '"' => return value.to_owned(),
            c => out.push(c),
        }
    }
    out
}

impl Filter {
    /// Whether the row (column → value as Realtime sends it) passes; `typname` gives each column's type.
    pub fn matches<'a>(&self, row: &Map<String, Value>, typname: impl Fn(&str) -> Option<&'a str>) -> bool {
        let Some(value) = row.get(&self.column).filter(|v| !v.is_null()) else { return false };
        let typname = typname(&self.column).unwrap_or("text");
        let compare = |wanted: &Option<String>| wanted.as_deref().and_then(|w| compare(value, typname, w));
        match self.op {
            Op::Eq => compare(&self.values[0]) == Some(Ordering::Equal),
            Op::Neq => matches!(compare(&self.values[0]), Some(Ordering::Less | Ordering::Greater)),
            Op::Lt => compare(&self.values[0]) == Some(Ordering::Less),
            Op::Lte => matches!(compare(&self.values[0]), Some(Ordering::Less | Ordering::Equal)),
            Op::Gt => compare(&self.values[0]) == Some(Ordering::Greater),
            Op::Gte => matches!(compare(&self.values[0]), Some(Ordering::Greater | Ordering::Equal)),
            Op::In => self.values.iter().any(|wanted| compare(wanted) == Some(Ordering::Equal)),
        }
    }
}

/// All of `filters` hold for `row`.
pub fn all_match<'a>(
    filters: &[Filter],
    row: &Map<String, Value>,
    typname: impl Fn(&str) -> Option<&'a str> + Copy,
) -> bool {
    filters.iter().all(|f| f.matches(row, typname))
}

/// The column's value against the filter's text, in the column type's order; None when they cannot compare
/// (Postgres would have refused the cast).
fn compare(value: &Value, typname: &str, wanted: &str) -> Option<Ordering> {
    match (value, typname) {
        (Value::Number(_), _) | (_, "int2" | "int4" | "int8" | "oid" | "float4" | "float8" | "numeric") => {
            let have = value_text(value);
            match (have.parse::<i128>(), wanted.trim().parse::<i128>()) {
                (Ok(a), Ok(b)) => Some(a.cmp(&b)),
                _ => have.parse::<f64>().ok()?.partial_cmp(&wanted.trim().parse::<f64>().ok()?),
            }
        }
        (Value::Bool(have), _) => Some(have.cmp(&parse_bool(wanted)?)),
        (Value::String(have), "timestamptz") => Some(instant(have)?.cmp(&instant(wanted)?)),
        (Value::String(have), "timestamp") => Some(naive(have)?.cmp(&naive(wanted)?)),
        (Value::String(have), "date") => Some(date(have)?.cmp(&date(wanted)?)),
        (Value::String(have), "uuid") => Some(have.to_ascii_lowercase().cmp(&wanted.trim().to_ascii_lowercase())),
        (Value::String(have), _) => Some(have.as_str().cmp(wanted)),
        (Value::Object(_) | Value::Array(_), "json" | "jsonb") => {
            let wanted: Value = serde_json::from_str(wanted).ok()?;
            (value == &wanted).then_some(Ordering::Equal).or(Some(Ordering::Less))
        }
        _ => None,
    }
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Postgres's boolean input.
fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "t" | "true" | "y" | "yes" | "on" | "1" => Some(true),
        "f" | "false" | "n" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// A timestamptz in ISO or Postgres text form; without an offset it is UTC (Realtime's session time zone).
fn instant(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let text = text.trim().replacen(' ', "T", 1);
    for format in ["%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.fZ"] {
        if let Ok(t) = chrono::DateTime::parse_from_str(&text, format) {
            return Some(t.with_timezone(&chrono::Utc));
        }
    }
    naive(&text).map(|t| t.and_utc())
}

fn naive(text: &str) -> Option<chrono::NaiveDateTime> {
    let text = text.trim().replacen(' ', "T", 1);
    chrono::NaiveDateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .or_else(|| date(&text).and_then(|d| d.and_hms_opt(0, 0, 0)))
}

fn date(text: &str) -> Option<chrono::NaiveDate> {
    chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(text: &str) -> Filter {
        let mut filters = parse_filters(text).unwrap();
        assert_eq!(filters.len(), 1, "{text}");
        filters.remove(0)
    }

    #[test]
    fn parses_every_operator() {
        assert_eq!(
            one("call_status=eq.cancelled"),
            Filter { column: "call_status".into(), op: Op::Eq, values: vec![Some("cancelled".into())] }
        );
        for (text, op) in
            [("a=neq.1", Op::Neq), ("a=lt.1", Op::Lt), ("a=lte.1", Op::Lte), ("a=gt.1", Op::Gt), ("a=gte.1", Op::Gte)]
        {
            assert_eq!(one(text).op, op);
        }
        assert_eq!(one("id=in.(1,2,\"x,y\")").values, vec![Some("1".into()), Some("2".into()), Some("x,y".into())]);
        assert_eq!(one("note=eq.a.b=c").values, vec![Some("a.b=c".into())], "the value is the rest");
        assert_eq!(one("note=eq.\"quoted \\\"x\\\"\"").values, vec![Some("quoted \"x\"".into())]);
        assert_eq!(parse_filters("").unwrap(), vec![]);
        assert_eq!(parse_filters("  ").unwrap(), vec![]);
        let both = parse_filters("id=gt.0, id=lt.100").unwrap();
        assert_eq!((both[0].op, both[1].op), (Op::Gt, Op::Lt), "comma = AND");
    }

    #[test]
    fn refuses_bad_filters() {
        for bad in [
            "undefined",
            "subject=like.hey",
            "a=eq",
            "=eq.1",
            "a=in.1,2",
            "a=in.(1,{2})",
            "a=eq.1,,b=eq.2",
            "a=not.eq.1",
        ] {
            let error = parse_filters(bad).unwrap_err();
            assert!(error.starts_with("Error parsing `filter` params: "), "{bad}: {error}");
        }
        let many = format!("a=in.({})", (0..=MAX_IN_VALUES).map(|i| i.to_string()).collect::<Vec<_>>().join(","));
        assert!(parse_filters(&many).unwrap_err().contains("Maximum 100"));
        let enough = format!("a=in.({})", (0..MAX_IN_VALUES).map(|i| i.to_string()).collect::<Vec<_>>().join(","));
        assert_eq!(one(&enough).values.len(), MAX_IN_VALUES);
    }

    fn row() -> Map<String, Value> {
        json!({"call_status": "cancelled", "attempts": 2, "cost": 0.25, "live": true, "note": null,
               "created_at": "2026-12-03T07:08:08.5+00:00", "id": "FC5860E2-4B54-446C-917F-12DDA0D01AAD",
               "due": "2026-12-03"})
        .as_object()
        .unwrap()
        .clone()
    }

    fn types(column: &str) -> Option<&'static str> {
        Some(match column {
            "attempts" => "int4",
            "cost" => "numeric",
            "live" => "bool",
            "created_at" => "timestamptz",
            "id" => "uuid",
            "due" => "date",
            _ => "text",
        })
    }

    fn holds(text: &str) -> bool {
        all_match(&parse_filters(text).unwrap(), &row(), types)
    }

    #[test]
    fn matches_by_the_column_type() {
        assert!(holds("call_status=eq.cancelled") && !holds("call_status=eq.pending"));
        assert!(holds("call_status=neq.pending") && !holds("call_status=neq.cancelled"));
        assert!(holds("call_status=in.(pending,cancelled)") && !holds("call_status=in.(pending,failed)"));
        assert!(
            holds("attempts=gt.1") && holds("attempts=gte.2") && !holds("attempts=gt.2") && holds("attempts=lt.10")
        );
        assert!(holds("attempts=eq.2") && holds("attempts=in.(1,2)") && !holds("attempts=lte.1"));
        assert!(holds("cost=lt.0.3") && holds("cost=eq.0.25") && !holds("cost=gt.1"));
        assert!(holds("live=eq.true") && holds("live=eq.t") && !holds("live=eq.false"));
        assert!(holds("created_at=gt.2026-12-03 07:00:00+00") && holds("created_at=lt.2026-12-03T09:00:00+01:00"));
        assert!(holds("due=eq.2026-12-03") && holds("due=lt.2026-12-10"));
        assert!(holds("id=eq.fc5860e2-4b54-446c-917f-12dda0d01aad"), "uuids ignore case");
        assert!(holds("call_status=eq.cancelled,attempts=eq.2") && !holds("call_status=eq.cancelled,attempts=eq.3"));
    }

    #[test]
    fn arbitrary_filters_never_panic() {
        // Filters come from any client: strings of their syntax's characters, from a fixed-seed generator.
        let alphabet: Vec<char> = "=.,()\"\\{} eqnltgiNUL0129-:éa_".chars().collect();
        let mut state: u64 = 0x5eed;
        for _ in 0..20_000 {
            let len = (state >> 59) as usize + 1;
            let text: String = (0..len)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    alphabet[(state >> 33) as usize % alphabet.len()]
                })
                .collect();
            for candidate in [
                text.clone(),
                format!("call_status=eq.{text}"),
                format!("attempts=in.({text})"),
                format!("created_at=gt.{text}"),
            ] {
                if let Ok(filters) = parse_filters(&candidate) {
                    all_match(&filters, &row(), types);
                }
            }
        }
    }

    #[test]
    fn null_and_missing_columns_match_nothing() {
        assert!(!holds("note=eq.x") && !holds("note=neq.x") && !holds("nothing=eq.x"));
        assert!(!holds("attempts=eq.two"), "a value that is not a number never equals one");
        assert!(!holds("call_status=in.(NULL)"));
    }
}
