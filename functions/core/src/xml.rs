//! XML text and attribute escaping for TwiML.

/// Escapes the five XML special characters; safe in text and in double-quoted attributes.
pub fn escape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup() {
        assert_eq!(super::escape(r#"a&b<c>"d"'e"#), "a&amp;b&lt;c&gt;&quot;d&quot;&apos;e");
        assert_eq!(super::escape("plain"), "plain");
    }
}
