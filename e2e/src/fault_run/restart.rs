//! Restarting a part of the stack in the middle of a run, and timing its recovery.

use super::db::Db;
use crate::postgres::restart_stack_postgres;
use crate::worker::restart_stack_worker;
use crate::Stack;
use std::time::{Duration, Instant};

/// How long the run may dial nothing after a restart. Generous: the send slots of create requests a stopped
/// Worker left unanswered stay busy for their lease (2 minutes, `outcall_private.dial_request_lease`) unless
/// the sweep settles their sessions first, which many Twilio faults delay.
const RECOVERY_LIMIT: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Component {
    /// The Worker (`wrangler dev`): its isolate and every request in flight are lost.
    Worker,
    /// Postgres, a fast restart: open transactions rolled back, every connection (PostgREST's pool, the
    /// sandbox's pg_net loop) closed.
    Postgres,
}

impl std::fmt::Display for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Component::Worker => "the Worker",
            Component::Postgres => "Postgres",
        })
    }
}

/// A restart the run makes.
#[derive(Clone, Copy)]
pub struct Restart {
    pub component: Component,
    /// Once this share of the rows is terminal.
    pub when_done: f64,
}

/// What a restart did.
pub struct Restarted {
    pub component: Component,
    /// Since the run started.
    pub at: Duration,
    pub rows_open: i64,
    /// From stopping it until it answered again.
    pub down: Duration,
    /// From stopping it until the run's next attempt was dialled (its CallSid recorded): the whole path
    /// (claim, Twilio, record) working again. None until then.
    pub dialling_again: Option<Duration>,
    began: Instant,
    /// The database's clock when the part answered again (`dialed_at` is written on it).
    back: String,
}

impl Restart {
    /// Restarts the part; returns once it answers again.
    pub async fn perform(&self, stack: &Stack, db: &mut Db, started: Instant, rows_open: i64) -> Restarted {
        let at = started.elapsed();
        println!("{:>5} s: {rows_open} rows open; restarting {}", at.as_secs(), self.component);
        let began = Instant::now();
        match self.component {
            Component::Worker => restart_stack_worker(&stack.worker_url).await,
            Component::Postgres => restart_stack_postgres().await,
        }
        let down = began.elapsed();
        let back = db.query("select now()::text", &[]).await[0].get(0);
        println!("       {} answered again after {:.1} s", self.component, down.as_secs_f64());
        Restarted { component: self.component, at, rows_open, down, dialling_again: None, began, back }
    }
}

impl Restarted {
    /// Notes the first attempt of the run dialled since the part came back, to the millisecond (from the
    /// database's record, whatever the polling).
    pub async fn watch(&mut self, db: &mut Db, run_id: &str) {
        if self.dialling_again.is_some() {
            return;
        }
        let first_dial = "select extract(epoch from min(s.dialed_at) - $2::text::timestamptz)::float8
                            from call_sessions s join pending_calls p on p.id = s.pending_call_id
                           where p.variables->>'run' = $1 and s.dialed_at >= $2::text::timestamptz";
        match db.query(first_dial, &[&run_id, &self.back]).await[0].get::<_, Option<f64>>(0) {
            Some(after) => {
                let again = self.down + Duration::from_secs_f64(after);
                self.dialling_again = Some(again);
                println!("       dialling again {:.1} s after {} was stopped", again.as_secs_f64(), self.component);
            }
            None => assert!(
                self.began.elapsed() < RECOVERY_LIMIT,
                "nothing dialled {RECOVERY_LIMIT:?} after restarting {}",
                self.component
            ),
        }
    }
}
