//! Message templates: `{{name}}` placeholders, the syntax of the call prompts' assistant variables
//! (VAPI's Liquid), filled from one target's variables. Only plain names are taken: a filter or tag
//! (`{{ name | upcase }}`, `{% if %}`) is refused rather than sent as text.

use serde_json::{Map, Value};

/// A parsed template: text and the names to fill in, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Variable(String),
}

/// Why a template cannot be used, with the character position of the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("the {{{{ at character {0} is never closed by }}}}")]
    Unclosed(usize),
    #[error("the placeholder at character {0} is not a variable name (letters, digits, _ and -): {1:?}")]
    NotAName(usize, String),
    #[error("the Liquid tag {{% at character {0} is not supported; use {{{{name}}}} placeholders only")]
    Tag(usize),
}

impl Template {
    pub fn parse(raw: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = raw;
        let mut offset = 0;
        while let Some(open) = rest.find("{{") {
            if let Some(tag) = rest[..open].find("{%") {
                return Err(TemplateError::Tag(char_at(raw, offset + tag)));
            }
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or(TemplateError::Unclosed(char_at(raw, offset + open)))?;
            let name = after[..close].trim();
            if !is_name(name) {
                return Err(TemplateError::NotAName(char_at(raw, offset + open), after[..close].to_owned()));
            }
            parts.push(Part::Variable(name.to_owned()));
            let consumed = open + 2 + close + 2;
            offset += consumed;
            rest = &rest[consumed..];
        }
        if let Some(tag) = rest.find("{%") {
            return Err(TemplateError::Tag(char_at(raw, offset + tag)));
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Self { parts })
    }

    /// The body for one target, or the names it uses that `values` does not hold (each once, in order).
    pub fn render(&self, values: &Map<String, Value>) -> Result<String, Vec<String>> {
        let mut body = String::new();
        let mut missing: Vec<String> = Vec::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => body.push_str(text),
                Part::Variable(name) => match values.get(name) {
                    Some(Value::String(text)) => body.push_str(text),
                    Some(value) if !value.is_null() => body.push_str(&value.to_string()),
                    _ if !missing.contains(name) => missing.push(name.clone()),
                    _ => {}
                },
            }
        }
        if missing.is_empty() {
            Ok(body)
        } else {
            Err(missing)
        }
    }
}

fn is_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}

/// A byte offset as a character position (what a person counting the template sees).
fn char_at(raw: &str, byte: usize) -> usize {
    raw[..byte].chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn values(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn placeholders_are_filled_from_the_targets_values() {
        let template = Template::parse("Hi {{name}}, your exam is at {{ time }} ({{name}}).").unwrap();
        let body = template.render(&values(json!({"name": "Dana", "time": "9:30", "unused": 1}))).unwrap();
        assert_eq!(body, "Hi Dana, your exam is at 9:30 (Dana).");
        assert_eq!(Template::parse("no placeholders").unwrap().render(&Map::new()).unwrap(), "no placeholders");
        let numbers = Template::parse("{{n}} {{ok}}").unwrap().render(&values(json!({"n": 7, "ok": true})));
        assert_eq!(numbers.unwrap(), "7 true");
    }

    #[test]
    fn a_missing_or_null_variable_is_reported_not_left_as_a_hole() {
        let template = Template::parse("{{name}} {{time}} {{time}} {{clinic}}").unwrap();
        let missing = template.render(&values(json!({"name": "Dana", "clinic": null}))).unwrap_err();
        assert_eq!(missing, vec!["time".to_owned(), "clinic".to_owned()]);
    }

    #[test]
    fn malformed_templates_are_refused_with_where() {
        assert_eq!(Template::parse("Hi {{name"), Err(TemplateError::Unclosed(3)));
        assert_eq!(Template::parse("é {{ name | upcase }}"), Err(TemplateError::NotAName(2, " name | upcase ".into())));
        assert_eq!(Template::parse("{{}}"), Err(TemplateError::NotAName(0, String::new())));
        assert_eq!(Template::parse("{% if x %}hi{% endif %}"), Err(TemplateError::Tag(0)));
        assert_eq!(Template::parse("{{a}} {% x %}"), Err(TemplateError::Tag(6)));
        assert!(Template::parse("50% off, {braces} are text").is_ok());
    }
}
