//! The run's own view of the database, which outlives a restart of Postgres: a query on a lost connection
//! connects again and asks again.

use crate::Stack;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row};

/// How long the database may stay out of reach before the run fails.
const OUT_OF_REACH: Duration = Duration::from_secs(60);

const TERMINAL: &str = "('completed', 'failed', 'cancelled')";

/// One look at the run.
pub struct Sample {
    pub open: i64,
    /// Sessions holding a live-call slot (`outcall_private.live_sessions`).
    pub live_sessions: i64,
    pub busy_send_slots: i64,
}

pub struct Db {
    url: String,
    client: Option<Client>,
}

impl Db {
    pub fn new(stack: &Stack) -> Db {
        Db { url: stack.database_url.clone(), client: None }
    }

    pub async fn query(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Vec<Row> {
        let deadline = Instant::now() + OUT_OF_REACH;
        loop {
            let error = match self.client().await {
                Ok(client) => match client.query(sql, params).await {
                    Ok(rows) => return rows,
                    // An error on a live connection is the query's own.
                    Err(e) if !client.is_closed() => panic!("{sql}: {e}"),
                    Err(e) => e,
                },
                Err(e) => e,
            };
            self.client = None;
            assert!(Instant::now() < deadline, "the database out of reach for {OUT_OF_REACH:?}: {error}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn client(&mut self) -> Result<&Client, tokio_postgres::Error> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            let (client, connection) = tokio_postgres::connect(&self.url, NoTls).await?;
            tokio::spawn(connection);
            self.client = Some(client);
        }
        Ok(self.client.as_ref().unwrap())
    }

    /// The run's rows not yet terminal, and the limits as the claims count them.
    pub async fn sample(&mut self, run_id: &str) -> Sample {
        // A send slot is busy while its request is in flight (within the lease) or was answered within the
        // last window (1 s at 1 call/s or more): `outcall_private.send_slot_wait`'s rule.
        let sql = format!(
            "select (select count(*) from pending_calls where variables->>'run' = $1 and call_status not in {TERMINAL}),
                    (select count(*) from outcall_private.live_sessions),
                    (select count(*) from outcall_private.dial_requests r
                      where (r.answered_at is null and r.sent_at > clock_timestamp() - outcall_private.dial_request_lease())
                         or r.answered_at > clock_timestamp() - interval '1 second')"
        );
        let row = &self.query(&sql, &[&run_id]).await[0];
        Sample { open: row.get(0), live_sessions: row.get(1), busy_send_slots: row.get(2) }
    }

    /// The run's rows not yet terminal, by `call_status`.
    pub async fn open_by_status(&mut self, run_id: &str) -> HashMap<String, i64> {
        let sql = format!(
            "select call_status, count(*) from pending_calls
              where variables->>'run' = $1 and call_status not in {TERMINAL} group by call_status"
        );
        self.query(&sql, &[&run_id]).await.iter().map(|row| (row.get(0), row.get(1))).collect()
    }
}
