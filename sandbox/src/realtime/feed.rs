//! The change feed, read as Supabase Realtime reads it: a logical replication slot with the wal2json plugin,
//! polled with `pg_logical_slot_get_changes` (format 2) every 100 ms for the tables of the publication
//! `supabase_realtime` (read at each poll, so a table added later is picked up). While no channel listens, the
//! slot is only advanced (nothing decoded for nobody, and no WAL kept for them).
//!
//! The slot is persistent: it outlives a Postgres restart (`./dev restart-postgres`), so the changes made
//! while the feed reconnects still arrive. The sandbox's first connection replaces a slot an earlier run left
//! (its changes are stale), and shutting down drops it, so it does not pin WAL after the sandbox is gone
//! (a fresh `./dev up` recreates the cluster in any case).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio_postgres::{Client, NoTls};

use super::catalog::{Catalog, TableInfo};
use super::change::{self, Action, Change, Rows};
use super::hub::{Subscriber, Target};
use super::{rls, Realtime};
use crate::state::AppState;

const POLL_EVERY: Duration = Duration::from_millis(100);
const RECONNECT_AFTER: Duration = Duration::from_secs(1);
/// After a failure to set the slot up (wal_level, plugin missing): no point retrying every second.
const RETRY_SETUP_AFTER: Duration = Duration::from_secs(5);
/// Changes taken per poll; a full batch is followed by another poll at once.
const MAX_CHANGES: i32 = 1000;
pub const PUBLICATION: &str = "supabase_realtime";

const PUBLICATION_TABLES: &str = "select schemaname::text, tablename::text from pg_catalog.pg_publication_tables
 where pubname = $1 order by 1, 2";

const CHANGES: &str = "select data from pg_catalog.pg_logical_slot_get_changes($1, null, $2,
  'format-version', '2', 'include-timestamp', 'true', 'include-pk', 'true', 'include-type-oids', 'true',
  'include-transaction', 'false', 'actions', 'insert,update,delete', 'add-tables', $3)";

const SKIP: &str = "select 1 from pg_catalog.pg_replication_slot_advance($1, pg_catalog.pg_current_wal_lsn())";

/// Runs until the sandbox stops: reconnects after any failure, never panics. Spawned by `serve`.
pub async fn run(state: Arc<AppState>) {
    let realtime = &state.realtime;
    let mut stopping = realtime.stopping();
    let mut logged_failure: Option<String> = None;
    let mut first_connection = true;
    while !*stopping.borrow() {
        let mut client = match connect(&state.config.database_url).await {
            Ok(client) => client,
            Err(e) => {
                log_failure_once(
                    &mut logged_failure,
                    format!(
                        "cannot connect to DATABASE_URL, retrying every second: {}",
                        crate::logging::error_chain(&e)
                    ),
                );
                wait(&mut stopping, RECONNECT_AFTER).await;
                continue;
            }
        };
        if let Err(e) = prepare(&client, &realtime.slot, first_connection).await {
            log_failure_once(&mut logged_failure, setup_problem(&e));
            wait(&mut stopping, RETRY_SETUP_AFTER).await;
            continue;
        }
        first_connection = false;
        logged_failure = None;
        crate::log!(
            info,
            "realtime",
            "reading changes of publication {PUBLICATION} through slot {} (wal2json)",
            realtime.slot
        );
        while !client.is_closed() && !*stopping.borrow() {
            let poll = realtime.hub.begin_poll();
            match poll_once(realtime, &mut client).await {
                Ok(taken) => {
                    realtime.hub.end_poll(poll);
                    logged_failure = None;
                    if taken >= MAX_CHANGES as usize {
                        continue;
                    }
                }
                Err(e) if client.is_closed() => {
                    crate::log!(
                        warn,
                        "realtime",
                        "database connection lost; reconnecting: {}",
                        crate::logging::error_chain(&e)
                    )
                }
                Err(e) => {
                    log_failure_once(&mut logged_failure, format!("poll failed: {}", crate::logging::error_chain(&e)))
                }
            }
            wait(&mut stopping, POLL_EVERY).await;
        }
        if *stopping.borrow() && !client.is_closed() {
            drop_slot(&client, &realtime.slot).await;
            return;
        }
    }
    // Stopped while disconnected: one attempt with a fresh connection.
    if let Ok(client) = connect(&state.config.database_url).await {
        drop_slot(&client, &realtime.slot).await;
    }
}

async fn connect(database_url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(database_url, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    // wal2json prints values with the session's settings: timestamps in UTC, ISO, as Realtime's database has them.
    client
        .batch_execute(
            "set application_name = 'outcall-sandbox realtime'; set timezone = 'UTC'; set datestyle = 'ISO, MDY';
             set intervalstyle = 'postgres'",
        )
        .await?;
    Ok(client)
}

/// Creates the slot, or keeps the one this sandbox made before a reconnect; `fresh` replaces a leftover.
async fn prepare(client: &Client, slot: &str, fresh: bool) -> Result<(), tokio_postgres::Error> {
    let exists: bool = client
        .query_one("select exists (select 1 from pg_catalog.pg_replication_slots where slot_name = $1)", &[&slot])
        .await?
        .get(0);
    if exists && fresh {
        client.query("select pg_catalog.pg_drop_replication_slot($1)", &[&slot]).await?;
    }
    if !exists || fresh {
        client.query("select pg_catalog.pg_create_logical_replication_slot($1, 'wal2json')", &[&slot]).await?;
    }
    Ok(())
}

async fn drop_slot(client: &Client, slot: &str) {
    let dropped = client
        .query(
            "select pg_catalog.pg_drop_replication_slot(slot_name) from pg_catalog.pg_replication_slots
              where slot_name = $1 and not active",
            &[&slot],
        )
        .await;
    match dropped {
        Ok(rows) if !rows.is_empty() => crate::log!(info, "realtime", "dropped slot {slot}"),
        Ok(_) => {}
        Err(e) => crate::log!(warn, "realtime", "could not drop slot {slot}: {}", crate::logging::error_chain(&e)),
    }
}

/// What to tell a person whose database cannot feed Realtime.
fn setup_problem(e: &tokio_postgres::Error) -> String {
    let text = crate::logging::error_chain(e);
    let hint = if text.contains("wal_level") {
        " (start Postgres with wal_level=logical, as ./dev up does)"
    } else if text.contains("wal2json") {
        " (install Debian's postgresql-15-wal2json: ./dev setup)"
    } else {
        ""
    };
    format!("cannot set up the replication slot, retrying every {} s: {text}{hint}", RETRY_SETUP_AFTER.as_secs())
}

fn log_failure_once(logged: &mut Option<String>, problem: String) {
    if logged.as_deref() != Some(problem.as_str()) {
        crate::log!(warn, "realtime", "{problem}");
        *logged = Some(problem);
    }
}

async fn wait(stopping: &mut tokio::sync::watch::Receiver<bool>, pause: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(pause) => {}
        _ = stopping.changed() => {}
    }
}

/// wal2json's `add-tables` value: `schema.table` joined by commas, its special characters escaped.
pub fn add_tables(tables: &[(String, String)]) -> String {
    let escape = |name: &str| -> String {
        name.chars()
            .flat_map(
                |c| if matches!(c, '\\' | ',' | '.' | '*') || c.is_whitespace() { vec!['\\', c] } else { vec![c] },
            )
            .collect()
    };
    tables.iter().map(|(schema, table)| format!("{}.{}", escape(schema), escape(table))).collect::<Vec<_>>().join(",")
}

/// One poll; returns how many changes it took from the slot.
async fn poll_once(realtime: &Realtime, client: &mut Client) -> Result<usize, tokio_postgres::Error> {
    let tables: Vec<(String, String)> = if realtime.hub.is_empty() {
        Vec::new()
    } else {
        client.query(PUBLICATION_TABLES, &[&PUBLICATION]).await?.iter().map(|r| (r.get(0), r.get(1))).collect()
    };
    if tables.is_empty() {
        client.query(SKIP, &[&realtime.slot]).await?;
        return Ok(0);
    }
    let rows = client.query(CHANGES, &[&realtime.slot, &MAX_CHANGES, &add_tables(&tables)]).await?;
    let mut catalog = Catalog::default();
    let mut summary = Summary::default();
    for row in &rows {
        match change::parse(row.get(0)) {
            Ok(change) => deliver(realtime, client, &mut catalog, &change, &mut summary).await?,
            Err(e) => crate::log!(warn, "realtime", "skipped an unreadable wal2json row: {e}"),
        }
    }
    summary.log();
    Ok(rows.len())
}

/// Counts for the log: tables and change types only, never values.
#[derive(Default)]
struct Summary {
    changes: BTreeMap<(String, &'static str), usize>,
    messages: usize,
    dropped: usize,
}

impl Summary {
    fn log(&self) {
        if self.changes.is_empty() {
            return;
        }
        let changes: Vec<String> = self.changes.iter().map(|((t, a), n)| format!("{t} {a}×{n}")).collect();
        crate::log!(
            info,
            "realtime",
            "changes {}; {} message(s) sent, {} dropped (slow socket)",
            changes.join(", "),
            self.messages,
            self.dropped
        );
    }
}

/// Sends `change` to every channel that wants it and may see it.
async fn deliver(
    realtime: &Realtime,
    client: &mut Client,
    catalog: &mut Catalog,
    change: &Change,
    summary: &mut Summary,
) -> Result<(), tokio_postgres::Error> {
    *summary.changes.entry((change.table.clone(), change.action.as_str())).or_default() += 1;
    let Some(table) = catalog.table(client, &change.schema, &change.table).await? else { return Ok(()) };
    let rows = change.rows(&table);
    let targets = realtime.hub.targets(change, &table, &rows);
    // One check per role and claims, whatever the number of channels sharing them (e.g. one user's tabs).
    let mut groups: HashMap<Subscriber, Vec<&Target>> = HashMap::new();
    for target in &targets {
        groups.entry((*target.subscriber).clone()).or_default().push(target);
    }
    for (subscriber, group) in groups {
        let Some(data) = message_for(client, catalog, change, &table, &rows, &subscriber).await? else { continue };
        for target in group {
            if target.send(data.clone()) {
                summary.messages += 1;
            } else {
                summary.dropped += 1;
            }
        }
    }
    Ok(())
}

/// The `data` a subscriber gets for the change, or None when RLS hides the row from them.
async fn message_for(
    client: &mut Client,
    catalog: &mut Catalog,
    change: &Change,
    table: &TableInfo,
    rows: &Rows,
    subscriber: &Subscriber,
) -> Result<Option<Value>, tokio_postgres::Error> {
    let selectable = match catalog.selectable(client, table, &subscriber.role).await {
        Ok(columns) => columns,
        Err(e) if client.is_closed() => return Err(e),
        // An unknown role: it may select nothing.
        Err(e) => {
            crate::log!(
                warn,
                "realtime",
                "column privileges of role {} unknown: {}",
                subscriber.role,
                crate::logging::error_chain(&e)
            );
            Default::default()
        }
    };
    if change.action != Action::Delete {
        if table.primary_key().next().is_none() {
            return Ok(Some(change.error_data("Error 400: Bad Request, no primary key")));
        }
        if !table.primary_key().all(|c| selectable.contains(&c.name)) {
            return Ok(Some(change.error_data("Error 401: Unauthorized")));
        }
        if table.rls {
            let Some(key) = change.primary_key_text(table) else { return Ok(None) };
            match rls::visible(client, table, &key, subscriber).await {
                Ok(true) => {}
                Ok(false) => return Ok(None),
                Err(e) if client.is_closed() => return Err(e),
                Err(e) => {
                    // The code only: a message could quote the key.
                    let code = e.code().map_or("?", |c| c.code());
                    crate::log!(warn, "realtime", "RLS check on {} failed (SQLSTATE {code})", change.table);
                    return Ok(Some(
                        change.error_data("Error 500: Internal Server Error, RLS policy evaluation failed"),
                    ));
                }
            }
        }
    }
    Ok(Some(change.data(table, rows, |c| selectable.contains(c))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_tables_escapes_what_wal2json_reads_as_syntax() {
        let tables = [("public".to_string(), "pending_calls".to_string()), ("my schema".into(), "a.b,c*".into())];
        assert_eq!(add_tables(&tables), r"public.pending_calls,my\ schema.a\.b\,c\*");
    }
}
