//! `phx_join` on `realtime:<name>`: the payload's `config.postgres_changes` bindings and `access_token`, and
//! the join reply, which echoes each binding in order with an integer `id` (realtime-js pairs them by index
//! and demands equal `event/schema/table/filter`).

use serde_json::{json, Map, Value};

use super::change::Action;
use super::filter::{parse_filters, Filter};

/// Which changes a binding wants (`event`: `INSERT | UPDATE | DELETE | *`, case-insensitive; anything else is `*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventFilter {
    All,
    Only(Action),
}

/// One `postgres_changes` entry of a join.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// What the reply and each change message call it.
    pub id: u32,
    /// The client's own keys, echoed in the reply.
    pub params: Map<String, Value>,
    pub event: EventFilter,
    /// `*` matches any.
    pub schema: String,
    pub table: String,
    pub filters: Vec<Filter>,
}

impl Binding {
    pub fn wants(&self, action: Action, schema: &str, table: &str) -> bool {
        (self.event == EventFilter::All || self.event == EventFilter::Only(action))
            && (self.schema == "*" || self.schema == schema)
            && (self.table == "*" || self.table == table)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct JoinRequest {
    /// The topic without `realtime:` (the `channel` of `system` messages).
    pub channel: String,
    pub bindings: Vec<Binding>,
    /// `access_token` (or the older `user_token`) when it is a JWT; None means the socket's apikey.
    pub access_token: Option<String>,
}

/// Parses a join; the error is the reply's `reason`.
pub fn parse_join(topic: &str, payload: &Value) -> Result<JoinRequest, String> {
    let channel = match topic.strip_prefix("realtime:") {
        Some("") => return Err("TopicNameRequired: You must provide a topic name".into()),
        Some(name) => name.to_owned(),
        None => return Err("unmatched topic".into()),
    };
    let changes = payload.pointer("/config/postgres_changes").and_then(Value::as_array).cloned().unwrap_or_default();
    let bindings = changes
        .iter()
        .filter(|params| !params.is_null())
        .map(binding)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("InvalidPostgresChanges: {e}"))?;
    let token = ["access_token", "user_token"]
        .iter()
        .find_map(|key| payload.get(*key).and_then(Value::as_str))
        // `sb_…` keys are not JWTs: Realtime then uses the socket's key.
        .filter(|token| !token.starts_with("sb_"))
        .map(str::to_owned);
    Ok(JoinRequest { channel, bindings, access_token: token })
}

/// Realtime's `parse_subscription_params`: schema + table (+ filter), schema alone (any table), table alone
/// (schema `public`).
fn binding(params: &Value) -> Result<Binding, String> {
    let Value::Object(params) = params else {
        return Err(format!("a postgres_changes entry must be an object: {params}"));
    };
    let text = |key: &str| params.get(key).and_then(Value::as_str);
    let (schema, table, filters) = match (text("schema"), text("table"), params.get("filter")) {
        (Some(schema), Some(table), None) => (schema, table, Vec::new()),
        (Some(schema), Some(table), Some(Value::String(filter))) => (schema, table, parse_filters(filter)?),
        (Some(schema), None, None) if !params.contains_key("table") => (schema, "*", Vec::new()),
        (None, Some(table), None) if !params.contains_key("schema") => ("public", table, Vec::new()),
        _ => {
            return Err(format!(
                "No subscription params provided. Please provide at least a `schema` or `table` to subscribe to: {}",
                Value::Object(params.clone())
            ))
        }
    };
    let event = match params.get("event").and_then(Value::as_str).map(str::to_ascii_uppercase).as_deref() {
        Some("INSERT") => EventFilter::Only(Action::Insert),
        Some("UPDATE") => EventFilter::Only(Action::Update),
        Some("DELETE") => EventFilter::Only(Action::Delete),
        _ => EventFilter::All,
    };
    Ok(Binding {
        id: binding_id(params),
        params: params.clone(),
        event,
        schema: schema.to_owned(),
        table: table.to_owned(),
        filters,
    })
}

/// An integer from the binding's parameters, like Realtime's `:erlang.phash2(params)` (range 0..2^27): the
/// same parameters get the same id, whatever the order of their keys.
pub fn binding_id(params: &Map<String, Value>) -> u32 {
    let mut pairs: Vec<(&String, String)> = params.iter().map(|(k, v)| (k, v.to_string())).collect();
    pairs.sort();
    // FNV-1a: stable across runs and builds (std's hasher is seeded per process).
    let mut hash: u32 = 0x811c_9dc5;
    for (key, value) in pairs {
        for byte in key.bytes().chain([0]).chain(value.bytes()).chain([0]) {
            hash ^= u32::from(byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    }
    // Never 0: realtime-js skips a binding whose id is falsy.
    (hash & ((1 << 27) - 1)).max(1)
}

/// The join's `ok` response: each binding as the client sent it, with its `id`, in order.
pub fn ok_response(bindings: &[Binding]) -> Value {
    let echoed: Vec<Value> = bindings
        .iter()
        .map(|b| {
            let mut params = b.params.clone();
            params.insert("id".into(), json!(b.id));
            Value::Object(params)
        })
        .collect();
    json!({ "postgres_changes": echoed })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The join realtime-js sends with its defaults for `.channel('ops').on('postgres_changes', …)` twice.
    fn realtime_js_join() -> Value {
        json!({"config": {"broadcast": {"ack": false, "self": false}, "presence": {"key": "", "enabled": false},
                          "postgres_changes": [{"event": "*", "schema": "public", "table": "pending_calls"},
                                               {"event": "UPDATE", "schema": "public", "table": "pending_calls",
                                                "filter": "call_status=eq.cancelled"}],
                          "private": false},
               "access_token": "header.claims.signature"})
    }

    #[test]
    fn parses_realtime_js_join() {
        let join = parse_join("realtime:ops", &realtime_js_join()).unwrap();
        assert_eq!(join.channel, "ops");
        assert_eq!(join.access_token.as_deref(), Some("header.claims.signature"));
        assert_eq!(join.bindings.len(), 2);
        assert_eq!(join.bindings[0].event, EventFilter::All);
        assert_eq!(join.bindings[1].event, EventFilter::Only(Action::Update));
        assert_eq!(join.bindings[1].filters.len(), 1);
        assert_ne!(join.bindings[0].id, join.bindings[1].id);
    }

    #[test]
    fn the_reply_echoes_each_binding_in_order_with_an_id() {
        let join = parse_join("realtime:ops", &realtime_js_join()).unwrap();
        let reply = ok_response(&join.bindings);
        let list = reply["postgres_changes"].as_array().unwrap();
        assert_eq!(list.len(), 2);
        for (echoed, sent) in list.iter().zip(realtime_js_join()["config"]["postgres_changes"].as_array().unwrap()) {
            for key in ["event", "schema", "table", "filter"] {
                assert_eq!(echoed.get(key), sent.get(key), "{key}");
            }
            assert!(echoed["id"].as_u64().is_some_and(|id| id < 1 << 27));
        }
        assert_eq!(ok_response(&[]), json!({"postgres_changes": []}));
    }

    #[test]
    fn ids_depend_on_the_parameters_only() {
        let a = json!({"event": "*", "schema": "public", "table": "t"});
        let b = json!({"table": "t", "schema": "public", "event": "*"});
        let c = json!({"event": "INSERT", "schema": "public", "table": "t"});
        let id = |v: &Value| binding_id(v.as_object().unwrap());
        assert_eq!(id(&a), id(&b));
        assert_ne!(id(&a), id(&c));
    }

    #[test]
    fn topics_and_tokens() {
        assert_eq!(
            parse_join("realtime:", &json!({})).unwrap_err(),
            "TopicNameRequired: You must provide a topic name"
        );
        assert_eq!(parse_join("room:lobby", &json!({})).unwrap_err(), "unmatched topic");
        let bare = parse_join("realtime:x", &json!({})).unwrap();
        assert!(bare.bindings.is_empty() && bare.access_token.is_none());
        let publishable = parse_join("realtime:x", &json!({"access_token": "sb_publishable_abc"})).unwrap();
        assert_eq!(publishable.access_token, None);
        let legacy = parse_join("realtime:x", &json!({"user_token": "a.b.c"})).unwrap();
        assert_eq!(legacy.access_token.as_deref(), Some("a.b.c"));
    }

    #[test]
    fn binding_shapes() {
        let parse = |entry: Value| parse_join("realtime:x", &json!({"config": {"postgres_changes": [entry]}}));
        let schema_only = parse(json!({"event": "*", "schema": "public"})).unwrap();
        assert_eq!((schema_only.bindings[0].schema.as_str(), schema_only.bindings[0].table.as_str()), ("public", "*"));
        let table_only = parse(json!({"event": "insert", "table": "batches"})).unwrap();
        assert_eq!(table_only.bindings[0].schema, "public");
        assert_eq!(table_only.bindings[0].event, EventFilter::Only(Action::Insert));
        assert!(table_only.bindings[0].wants(Action::Insert, "public", "batches"));
        assert!(!table_only.bindings[0].wants(Action::Update, "public", "batches"));
        assert!(!table_only.bindings[0].wants(Action::Insert, "public", "pending_calls"));
        assert!(schema_only.bindings[0].wants(Action::Delete, "public", "anything"));
        for bad in [
            json!({"event": "*"}),
            json!("public"),
            json!({"schema": "public", "filter": "a=eq.1"}),
            json!({"schema": "public", "table": "t", "filter": "a=like.x"}),
            json!({"schema": "public", "table": "t", "filter": 7}),
        ] {
            let error = parse(bad.clone()).unwrap_err();
            assert!(error.starts_with("InvalidPostgresChanges: "), "{bad}: {error}");
        }
    }
}
