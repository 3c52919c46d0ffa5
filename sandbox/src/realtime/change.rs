//! One row change from wal2json (format 2, with timestamps, primary keys and type oids), and the `data` of
//! the `postgres_changes` message Realtime makes of it (apply_rls.sql): `columns` the subscriber's role may
//! select, `record` (INSERT, UPDATE), `old_record` (UPDATE, DELETE; only the primary key for a DELETE when
//! RLS is on, since a deleted row cannot be checked), `commit_timestamp` in UTC with milliseconds.

use serde_json::{json, Map, Value};

use super::catalog::TableInfo;
use super::values::{commit_timestamp, to_json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Insert,
    Update,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Insert => "INSERT",
            Action::Update => "UPDATE",
            Action::Delete => "DELETE",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub schema: String,
    pub table: String,
    pub action: Action,
    /// wal2json's commit time, Postgres text form.
    pub timestamp: Option<String>,
    /// wal2json's `columns` (new values; unchanged TOASTed values are missing), as printed.
    pub new: Vec<(String, Value)>,
    /// wal2json's `identity` (the old row under REPLICA IDENTITY FULL, else its key).
    pub old: Vec<(String, Value)>,
}

/// Parses one row of `pg_logical_slot_get_changes(..., 'format-version', '2', ...)`.
pub fn parse(data: &str) -> Result<Change, String> {
    let value: Value = serde_json::from_str(data).map_err(|e| format!("not JSON: {e}"))?;
    let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    let action = match text("action").as_deref() {
        Some("I") => Action::Insert,
        Some("U") => Action::Update,
        Some("D") => Action::Delete,
        other => return Err(format!("not a row change: action {other:?}")),
    };
    let columns = |key: &str| -> Vec<(String, Value)> {
        value
            .get(key)
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|c| {
                        Some((c.get("name")?.as_str()?.to_owned(), c.get("value").cloned().unwrap_or(Value::Null)))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(Change {
        schema: text("schema").ok_or("no schema")?,
        table: text("table").ok_or("no table")?,
        action,
        timestamp: text("timestamp"),
        new: columns("columns"),
        old: columns("identity"),
    })
}

/// The change's rows as Realtime sends them (values converted by column type), before column privileges.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rows {
    pub new: Option<Map<String, Value>>,
    pub old: Option<Map<String, Value>>,
}

impl Rows {
    /// The row filters are evaluated on: the new one, the old one for a DELETE.
    pub fn filtered(&self, action: Action) -> Option<&Map<String, Value>> {
        match action {
            Action::Delete => self.old.as_ref(),
            Action::Insert | Action::Update => self.new.as_ref(),
        }
    }
}

impl Change {
    pub fn rows(&self, table: &TableInfo) -> Rows {
        let convert = |columns: &[(String, Value)]| -> Map<String, Value> {
            columns
                .iter()
                .map(|(name, raw)| (name.clone(), to_json(raw, table.typname(name).unwrap_or("text"))))
                .collect()
        };
        let old = (self.action != Action::Insert).then(|| convert(&self.old));
        let new = (self.action != Action::Delete).then(|| {
            let mut new = convert(&self.new);
            // An unchanged TOASTed value is not in the new tuple: Realtime takes it from the old one.
            for (name, value) in old.iter().flatten() {
                new.entry(name.clone()).or_insert_with(|| value.clone());
            }
            new
        });
        Rows { new, old }
    }

    /// The primary key's values as text, in the table's key order (the RLS check's parameters); None when
    /// the table has no key or the change lacks a value.
    pub fn primary_key_text(&self, table: &TableInfo) -> Option<Vec<String>> {
        let source = if self.action == Action::Delete { &self.old } else { &self.new };
        let key: Vec<String> = table
            .primary_key()
            .map(|column| {
                source.iter().find(|(name, _)| *name == column.name).and_then(|(_, value)| match value {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    other => Some(other.to_string()),
                })
            })
            .collect::<Option<_>>()?;
        (!key.is_empty()).then_some(key)
    }

    /// The message's `data` for a subscriber whose role may select `selectable`.
    pub fn data(&self, table: &TableInfo, rows: &Rows, selectable: impl Fn(&str) -> bool) -> Value {
        let visible = |row: &Map<String, Value>, keep: &dyn Fn(&str) -> bool| -> Value {
            Value::Object(row.iter().filter(|(name, _)| keep(name)).map(|(k, v)| (k.clone(), v.clone())).collect())
        };
        let columns: Vec<Value> = table
            .columns
            .iter()
            .filter(|c| selectable(&c.name))
            .map(|c| json!({ "name": c.name, "type": c.typname }))
            .collect();
        let mut data = self.envelope();
        data.insert("columns".into(), Value::Array(columns));
        data.insert("errors".into(), Value::Null);
        if let (Some(new), Action::Insert | Action::Update) = (&rows.new, self.action) {
            data.insert("record".into(), visible(new, &selectable));
        }
        match (&rows.old, self.action) {
            (Some(old), Action::Update) => {
                data.insert("old_record".into(), visible(old, &selectable));
            }
            (Some(old), Action::Delete) => {
                let is_pk = |name: &str| table.columns.iter().any(|c| c.is_pk && c.name == name);
                let keep = |name: &str| selectable(name) && (!table.rls || is_pk(name));
                data.insert("old_record".into(), visible(old, &keep));
            }
            _ => {}
        }
        Value::Object(data)
    }

    /// The `data` Realtime sends instead of the row when it cannot check it (no primary key, no privilege):
    /// schema, table, type and the error.
    pub fn error_data(&self, error: &str) -> Value {
        let mut data = self.envelope();
        data.insert("commit_timestamp".into(), Value::Null);
        data.insert("columns".into(), json!([]));
        data.insert("errors".into(), json!([error]));
        match self.action {
            Action::Insert => {
                data.insert("record".into(), json!({}));
            }
            Action::Update => {
                data.insert("record".into(), json!({}));
                data.insert("old_record".into(), json!({}));
            }
            Action::Delete => {
                data.insert("old_record".into(), json!({}));
            }
        }
        Value::Object(data)
    }

    fn envelope(&self) -> Map<String, Value> {
        let mut data = Map::new();
        data.insert("schema".into(), json!(self.schema));
        data.insert("table".into(), json!(self.table));
        data.insert("type".into(), json!(self.action.as_str()));
        data.insert("commit_timestamp".into(), json!(self.timestamp.as_deref().and_then(commit_timestamp)));
        data
    }
}

#[cfg(test)]
mod tests {
    use super::super::catalog::Column;
    use super::*;

    /// Recorded from Postgres 15 with wal2json 2.5 (`t` has REPLICA IDENTITY FULL; trimmed to three columns).
    const INSERT: &str = r#"{"action":"I","timestamp":"2026-12-03 07:08:08.529961+00","schema":"public","table":"t","columns":[{"name":"id","type":"uuid","typeoid":2950,"value":"fc5860e2-4b54-446c-917f-12dda0d01aad"},{"name":"n","type":"integer","typeoid":23,"value":1},{"name":"j","type":"jsonb","typeoid":3802,"value":"{\"a\": [1, \"x\"]}"}],"pk":[{"name":"id","type":"uuid","typeoid":2950}]}"#;
    const UPDATE: &str = r#"{"action":"U","timestamp":"2026-12-03 07:08:08.533735+00","schema":"public","table":"t","columns":[{"name":"id","type":"uuid","typeoid":2950,"value":"fc5860e2-4b54-446c-917f-12dda0d01aad"},{"name":"n","type":"integer","typeoid":23,"value":2}],"identity":[{"name":"id","type":"uuid","typeoid":2950,"value":"fc5860e2-4b54-446c-917f-12dda0d01aad"},{"name":"n","type":"integer","typeoid":23,"value":1},{"name":"j","type":"jsonb","typeoid":3802,"value":"{\"a\": [1, \"x\"]}"}],"pk":[{"name":"id","type":"uuid","typeoid":2950}]}"#;
    const DELETE: &str = r#"{"action":"D","timestamp":"2026-12-03 07:08:08.541468+00","schema":"public","table":"t","identity":[{"name":"id","type":"uuid","typeoid":2950,"value":"fc5860e2-4b54-446c-917f-12dda0d01aad"},{"name":"n","type":"integer","typeoid":23,"value":2},{"name":"j","type":"jsonb","typeoid":3802,"value":"{\"a\": [1, \"x\"]}"}],"pk":[{"name":"id","type":"uuid","typeoid":2950}]}"#;
    const ID: &str = "fc5860e2-4b54-446c-917f-12dda0d01aad";

    fn table(rls: bool) -> TableInfo {
        let column = |name: &str, typname: &str, is_pk| Column {
            name: name.into(),
            typname: typname.into(),
            sql_type: typname.into(),
            quoted: name.into(),
            is_pk,
        };
        TableInfo {
            oid: 1,
            quoted: "public.t".into(),
            rls,
            columns: vec![column("id", "uuid", true), column("n", "int4", false), column("j", "jsonb", false)],
        }
    }

    #[test]
    fn an_insert_carries_the_record_only() {
        let change = parse(INSERT).unwrap();
        assert_eq!((change.action, change.table.as_str()), (Action::Insert, "t"));
        let t = table(true);
        let data = change.data(&t, &change.rows(&t), |_| true);
        assert_eq!(
            data,
            json!({"schema": "public", "table": "t", "type": "INSERT", "commit_timestamp": "2026-12-03T07:08:08.529Z",
                   "columns": [{"name": "id", "type": "uuid"}, {"name": "n", "type": "int4"}, {"name": "j", "type": "jsonb"}],
                   "record": {"id": ID, "n": 1, "j": {"a": [1, "x"]}}, "errors": null})
        );
        assert_eq!(change.primary_key_text(&t), Some(vec![ID.to_owned()]));
    }

    #[test]
    fn an_update_carries_both_and_fills_unchanged_toast_from_the_old_row() {
        let change = parse(UPDATE).unwrap();
        let t = table(true);
        let data = change.data(&t, &change.rows(&t), |_| true);
        assert_eq!(data["record"], json!({"id": ID, "n": 2, "j": {"a": [1, "x"]}}));
        assert_eq!(data["old_record"], json!({"id": ID, "n": 1, "j": {"a": [1, "x"]}}));
        let no_n = change.data(&t, &change.rows(&t), |c| c != "n");
        assert_eq!(
            no_n["record"],
            json!({"id": ID, "j": {"a": [1, "x"]}}),
            "columns the role may not select are left out"
        );
        assert_eq!(no_n["columns"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn a_delete_carries_the_old_key_only_under_rls() {
        let change = parse(DELETE).unwrap();
        let with_rls = table(true);
        let data = change.data(&with_rls, &change.rows(&with_rls), |_| true);
        assert_eq!(data["old_record"], json!({"id": ID}));
        assert!(data.get("record").is_none());
        let without = table(false);
        assert_eq!(change.data(&without, &change.rows(&without), |_| true)["old_record"]["n"], json!(2));
        assert_eq!(change.rows(&with_rls).filtered(Action::Delete).unwrap()["n"], json!(2), "filters see the old row");
    }

    #[test]
    fn errors_replace_the_row() {
        let change = parse(INSERT).unwrap();
        let data = change.error_data("Error 401: Unauthorized");
        assert_eq!(data["errors"], json!(["Error 401: Unauthorized"]));
        assert_eq!((data["record"].clone(), data["columns"].clone()), (json!({}), json!([])));
    }

    #[test]
    fn rejects_what_is_not_a_row_change() {
        assert!(parse(r#"{"action":"B"}"#).is_err());
        assert!(parse("nope").is_err());
        let mut keyless = table(true);
        keyless.columns.iter_mut().for_each(|c| c.is_pk = false);
        assert_eq!(parse(INSERT).unwrap().primary_key_text(&keyless), None);
    }
}
