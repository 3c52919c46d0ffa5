//! The Worker's contract with the database (`outcall_core::rpc`) held against the running database.
//!
//! For every SQL function the Worker calls, and every set of arguments it sends (`rpc::contract()`, from
//! the request types' examples), `pg_proc` must have exactly one `public.<name>` returning `jsonb`,
//! executable by `service_role`, whose argument names include every argument the Worker sends and whose
//! arguments the Worker leaves out all have defaults; each argument's type must take the JSON the Worker
//! sends for it (a UUID string a `uuid`, a number an integer or numeric type, an object or array `jsonb`).
//! A rename on either side, without the other, fails here.
//!
//! Then each example is sent as the Worker sends it (through PostgREST, service role) and the answer must
//! read as the type's answer (unknown ids: mostly `null`). Two functions change rows whatever the ids
//! (`claim_next_due` claims a due row, `sweep_stale_sessions` sweeps) and are only checked in `pg_proc`.

use outcall_core::rpc;
use outcall_e2e::Stack;
use serde_json::{Map, Value};

/// Functions whose examples would change rows that other tests own (claims, a sweep, an SMS batch or reply
/// written whatever the ids; sql/tests/23_sms.sql and 24_sms_opt_out.sql send those), and the operators' actions:
/// they need an operator's JWT (the service key gets 42501; sql/tests/20_operator_actions.sql,
/// 33_operator_suppression.sql and the dashboard's tests send them).
const NOT_SENT: [&str; 9] = [
    "claim_next_due",
    "sweep_stale_sessions",
    "claim_sms",
    "create_sms_batch",
    "record_sms_reply",
    "operator_call_action",
    "operator_batch_action",
    "operator_classification_action",
    "operator_suppression_action",
];

struct Function {
    names: Vec<String>,
    types: Vec<String>,
    defaults: usize,
    returns: String,
    in_only: bool,
    service_role: bool,
}

async fn functions_named(db: &tokio_postgres::Client, name: &str) -> Vec<Function> {
    let rows = db
        .query(
            "select coalesce(p.proargnames, '{}')::text[],
                    array(select pg_catalog.format_type(a.t, null)
                            from unnest(p.proargtypes::oid[]) with ordinality as a(t, n) order by a.n),
                    p.pronargdefaults::int,
                    pg_catalog.format_type(p.prorettype, null),
                    coalesce(p.proargmodes::text[], '{}') <@ '{i}'::text[],
                    pg_catalog.has_function_privilege('service_role', p.oid, 'execute')
               from pg_catalog.pg_proc as p join pg_catalog.pg_namespace as n on n.oid = p.pronamespace
              where n.nspname = 'public' and p.proname::text = $1",
            &[&name],
        )
        .await
        .expect("pg_proc readable");
    rows.iter()
        .map(|row| Function {
            names: row.get(0),
            types: row.get(1),
            defaults: row.get::<_, i32>(2) as usize,
            returns: row.get(3),
            in_only: row.get(4),
            service_role: row.get(5),
        })
        .collect()
}

/// Whether an argument of SQL type `sql` takes the JSON the Worker sends (null fits anything).
fn takes(sql: &str, sent: &Value) -> bool {
    match sent {
        Value::Null => true,
        Value::Bool(_) => sql == "boolean",
        Value::Number(n) if n.is_f64() => matches!(sql, "numeric" | "double precision" | "real"),
        Value::Number(_) => matches!(sql, "integer" | "bigint" | "smallint" | "numeric"),
        Value::String(s) if uuid::Uuid::parse_str(s).is_ok() => sql == "uuid",
        Value::String(_) => matches!(sql, "text" | "character varying"),
        // An array is a jsonb, or a Postgres array of what each item is (PostgREST reads `["a", "b"]` as `{a,b}`).
        Value::Array(items) => {
            matches!(sql, "jsonb" | "json")
                || sql.strip_suffix("[]").is_some_and(|item| items.iter().all(|i| takes(item, i)))
        }
        Value::Object(_) => matches!(sql, "jsonb" | "json"),
    }
}

/// What is wrong with sending `args` to `function`, if anything.
fn problems(name: &str, args: &Map<String, Value>, found: &[Function]) -> Vec<String> {
    let function = match found {
        [one] => one,
        [] => return vec![format!("{name}: no function public.{name}")],
        _ => return vec![format!("{name}: {} overloads of public.{name} (PostgREST must pick one)", found.len())],
    };
    let mut wrong = Vec::new();
    if function.returns != "jsonb" {
        wrong.push(format!("{name}: returns {}, not jsonb", function.returns));
    }
    if !function.in_only || function.names.len() != function.types.len() {
        wrong.push(format!("{name}: has unnamed or OUT arguments {:?}", function.names));
    }
    if !function.service_role {
        wrong.push(format!("{name}: service_role may not execute it"));
    }
    for (arg, value) in args {
        match function.names.iter().position(|n| n == arg) {
            None => {
                wrong.push(format!("{name}: Rust sends {arg}, SQL has no such argument (it has {:?})", function.names))
            }
            Some(i) if !takes(&function.types[i], value) => {
                wrong.push(format!("{name}: {arg} is {} in SQL, Rust sends {value}", function.types[i]))
            }
            Some(_) => {}
        }
    }
    let required = function.names.len().saturating_sub(function.defaults);
    for arg in &function.names[..required.min(function.names.len())] {
        if !args.contains_key(arg) {
            wrong.push(format!("{name}: SQL argument {arg} has no default and Rust does not send it"));
        }
    }
    wrong
}

#[tokio::test]
async fn every_function_the_worker_calls_takes_the_arguments_it_sends() {
    let stack = Stack::from_env();
    let db = stack.db().await;
    let contract = rpc::contract();
    assert!(rpc::functions().len() >= 18, "the contract lists {:?}", rpc::functions());
    let mut wrong = Vec::new();
    for (name, args) in &contract {
        wrong.extend(problems(name, args, &functions_named(&db, name).await));
    }
    assert!(wrong.is_empty(), "the Rust contract and the database disagree:\n  {}", wrong.join("\n  "));
}

#[tokio::test]
async fn every_answer_reads_as_its_type() {
    let stack = Stack::from_env();
    for (name, args) in rpc::contract() {
        if NOT_SENT.contains(&name) {
            continue;
        }
        let response = stack
            .rest(reqwest::Method::POST, &format!("rpc/{name}"), &stack.service_key)
            .json(&Value::Object(args.clone()))
            .send()
            .await
            .expect("PostgREST reachable");
        let status = response.status();
        let body = response.text().await.unwrap();
        assert!(status.is_success(), "{name} {}: {status} {body}", Value::Object(args));
        let answer: Value = if body.trim().is_empty() { Value::Null } else { serde_json::from_str(&body).unwrap() };
        match rpc::read_answer(name, answer.clone()) {
            Some(Ok(())) => {}
            Some(Err(e)) => panic!("{name} answered {answer}, which its Rust answer type does not read: {e}"),
            None => panic!("{name} is in the contract but read_answer does not know it"),
        }
    }
}

/// The checks themselves: a renamed argument on either side, a missing default, a wrong kind.
#[test]
fn the_check_finds_renames_on_either_side() {
    let sql = |names: &[&str], types: &[&str], defaults| Function {
        names: names.iter().map(|s| s.to_string()).collect(),
        types: types.iter().map(|s| s.to_string()).collect(),
        defaults,
        returns: "jsonb".into(),
        in_only: true,
        service_role: true,
    };
    let args = |v: Value| v.as_object().unwrap().clone();
    let id = "11111111-1111-1111-1111-111111111111";
    let f = [sql(&["p_session_id", "p_final"], &["uuid", "boolean"], 1)];
    assert!(problems("f", &args(serde_json::json!({"p_session_id": id})), &f).is_empty(), "a default may be left out");
    assert!(problems("f", &args(serde_json::json!({"p_session_id": id, "p_final": true})), &f).is_empty());
    assert_eq!(problems("f", &args(serde_json::json!({"p_session": id})), &f).len(), 2, "renamed in Rust");
    let renamed_in_sql = [sql(&["p_session", "p_final"], &["uuid", "boolean"], 1)];
    assert!(!problems("f", &args(serde_json::json!({"p_session_id": id})), &renamed_in_sql).is_empty());
    assert_eq!(problems("f", &args(serde_json::json!({"p_session_id": "x"})), &f).len(), 1, "text for a uuid");
    assert_eq!(problems("f", &args(serde_json::json!({})), &[]).len(), 1, "no such function");
}
