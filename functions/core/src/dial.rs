//! Placing one attempt's call, as a state machine with no I/O (in the style of quinn-proto): the Worker
//! carries out each [`Action`] and reports what came of it as an [`Event`]; every decision is made here.
//!
//! Two rules hold whatever Twilio answers:
//! - **Nothing is dialled twice for one attempt.** After an answer that may hide a created call (504, a
//!   timeout, a dropped connection) the machine looks for that call at Twilio before sending again; when it
//!   cannot tell, it leaves the session `dialing` for the sweep to reconcile.
//! - **Every try is sent inside the calls-per-second limit.** A try goes only with a send slot from SQL (the
//!   claim grants the first, `reserve_dial_slot` each re-send), and a try that failed gives its slot back
//!   (`release_dial_slot`) before the machine backs off, so a waiting attempt holds no slot.
//!
//! Each failed try is reported once to the providers' circuit breaker ([`ProviderFailure`]): with its release,
//! or with the result when the machine gives up at once. While the breaker holds dialling a re-send is refused
//! ([`Event::BreakerOpen`]): the machine gives up without waiting, and SQL gives the attempt back.

use crate::retry::{provider_failure, verdict, Backoff, NextTry, ProviderFailure, Reply, Verdict};
use crate::rpc::{ReconcileOutcome, Reconciled, SlotReservation};
use crate::twilio::{dial_outcome, ApiError as TwilioError, DialOutcome};
use std::time::Duration;

/// The reason SQL gives while the providers' circuit breaker holds dialling (claims and re-sends).
pub const BREAKER_OPEN: &str = "breaker_open";

/// How long one dial may keep trying, from its claim: a Worker's work after its answer (`waitUntil`) is
/// cut off 30 s after the response; what a dial cannot finish by then is left to the sweep.
pub const DIAL_BUDGET: Duration = Duration::from_secs(25);

/// What the Worker does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send the create request now (a send slot is held); report [`Event::Answered`].
    Send,
    /// Tell SQL the last try was answered, so its send slot counts from now, and what it told of Twilio
    /// (`release_dial_slot`); report [`Event::Released`].
    Release(Option<ProviderFailure>),
    /// Sleep this long; report [`Event::Woke`].
    Sleep(Duration),
    /// Ask Twilio for its calls to the phone and let SQL match them to the session
    /// (`reconcile_dialing_session`, not final); report [`Event::Found`], [`Event::NotThere`] or
    /// [`Event::LookFailed`].
    LookUp,
    /// Ask SQL for a send slot for the next try (`reserve_dial_slot`); report [`Event::Reserved`],
    /// [`Event::ReserveLater`] or [`Event::Settled`].
    Reserve,
    /// Record the attempt's result (`record_dial_result`); report [`Event::Recorded`].
    Record(DialResult),
    /// Finished.
    Done(Dial),
}

/// What to record of the attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialResult {
    /// Twilio created the call.
    Placed { call_sid: String },
    /// Twilio refused it, or every try failed. `retryable`: the row gets another attempt (a permanent
    /// refusal such as an invalid number would only fail again). `failure`: the last try's, when no release
    /// reported it.
    Failed { reason: String, code: Option<String>, retryable: bool, failure: Option<ProviderFailure> },
}

/// How an attempt's dial ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dial {
    /// Twilio has the call (created now, or found after an unclear answer).
    Placed(String),
    /// Twilio refused, or every try failed; recorded on the session and the row.
    Failed(String),
    /// We cannot tell whether Twilio has the call, or ran out of time; the sweep will ask Twilio later.
    Unknown,
}

/// What came of an [`Action`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Twilio's answer to the create request (or none: [`Reply::NoAnswer`]).
    Answered {
        reply: Reply,
        body: String,
        retry_after: Option<Duration>,
    },
    Released,
    Woke,
    /// Twilio has a call for this session; SQL adopted it.
    Found {
        call_sid: String,
    },
    /// Twilio has no call for it: sending again is safe.
    NotThere,
    /// Twilio could not be asked, or the session was settled meanwhile (by a callback or the sweep).
    LookFailed,
    /// A send slot is held: send now.
    Reserved,
    /// No slot now; ask again after this long.
    ReserveLater(Duration),
    /// The providers' circuit breaker holds dialling: give up now (the attempt is given back).
    BreakerOpen,
    /// The session no longer waits for its dial (a callback or the sweep settled it).
    Settled,
    Recorded,
}

impl Event {
    /// What SQL made of Twilio's calls to the phone (`reconcile_dialing_session`, not final): adopted (with
    /// its CallSid), none, or anything else (the session was settled meanwhile, or it is unknown).
    pub fn looked_up(answer: Option<Reconciled>) -> Self {
        match answer {
            Some(Reconciled { outcome: ReconcileOutcome::Adopted, call_sid: Some(call_sid), .. }) => {
                Event::Found { call_sid }
            }
            Some(Reconciled { outcome: ReconcileOutcome::None, .. }) => Event::NotThere,
            _ => Event::LookFailed,
        }
    }

    /// `reserve_dial_slot`'s answer; an unknown session is as good as settled.
    pub fn reservation(answer: Option<SlotReservation>) -> Self {
        match answer {
            Some(SlotReservation::Reserved) => Event::Reserved,
            Some(SlotReservation::Wait { reason: Some(reason), .. }) if reason == BREAKER_OPEN => Event::BreakerOpen,
            Some(SlotReservation::Wait { retry_after_ms, .. }) => {
                Event::ReserveLater(Duration::from_millis(retry_after_ms))
            }
            Some(SlotReservation::Settled) | None => Event::Settled,
        }
    }
}

#[derive(Debug, Clone)]
enum State {
    Sending,
    /// The failed try's slot is being released; then `next`.
    Releasing {
        next: NextTry,
    },
    /// Backing off (or waiting for a slot); then `then`.
    Sleeping {
        then: AfterSleep,
    },
    Looking {
        give_up_if_absent: bool,
    },
    Reserving,
    Recording(Dial),
    Done,
}

#[derive(Debug, Clone, Copy)]
enum AfterSleep {
    Reserve,
    Look { give_up_if_absent: bool },
}

/// Why the last try failed, kept for the record if the machine gives up.
#[derive(Debug, Clone, Default)]
struct Failure {
    reason: String,
    code: Option<String>,
    /// What it told of Twilio, until a release reported it.
    unreported: Option<ProviderFailure>,
}

/// One attempt's dial.
#[derive(Debug, Clone)]
pub struct DialMachine {
    backoff: Backoff,
    /// Failed tries so far.
    retries: usize,
    deadline_ms: u64,
    state: State,
    /// Why the last try failed: what is recorded if the machine gives up.
    last_failure: Failure,
}

impl DialMachine {
    /// A dial whose first try holds the claim's send slot; `now_ms` and `deadline_ms` on the Worker's clock.
    pub fn new(backoff: Backoff, now_ms: u64, budget: Duration) -> Self {
        let deadline_ms = now_ms.saturating_add(budget.as_millis() as u64);
        Self { backoff, retries: 0, deadline_ms, state: State::Sending, last_failure: Failure::default() }
    }

    /// The first action: send with the claim's slot.
    pub fn start(&self) -> Action {
        Action::Send
    }

    /// Failed tries so far (for logs).
    pub fn retries(&self) -> usize {
        self.retries
    }

    /// What to do after `event`, at `now_ms`. An event the current state does not expect is a bug in the
    /// shell; the machine then leaves the session to the sweep rather than guess.
    pub fn on(&mut self, event: Event, now_ms: u64) -> Action {
        let state = std::mem::replace(&mut self.state, State::Done);
        match (state, event) {
            (State::Sending, Event::Answered { reply, body, retry_after }) => self.answered(reply, &body, retry_after),
            (State::Releasing { next }, Event::Released) => self.after_release(next, now_ms),
            (State::Sleeping { then: AfterSleep::Reserve }, Event::Woke) => self.go(State::Reserving, Action::Reserve),
            (State::Sleeping { then: AfterSleep::Look { give_up_if_absent } }, Event::Woke) => {
                self.go(State::Looking { give_up_if_absent }, Action::LookUp)
            }
            (State::Looking { .. }, Event::Found { call_sid }) => self.finish(Dial::Placed(call_sid)),
            (State::Looking { give_up_if_absent: true }, Event::NotThere) => self.give_up(),
            (State::Looking { give_up_if_absent: false, .. }, Event::NotThere) => {
                self.go(State::Reserving, Action::Reserve)
            }
            (State::Looking { .. }, Event::LookFailed) => self.finish(Dial::Unknown),
            (State::Reserving, Event::Reserved) => self.go(State::Sending, Action::Send),
            (State::Reserving, Event::ReserveLater(wait)) => self.sleep(wait, AfterSleep::Reserve, now_ms),
            // Nothing was created (a re-send waits only after a refusal or a look that found nothing).
            (State::Reserving, Event::BreakerOpen) => self.give_up(),
            (State::Reserving, Event::Settled) => self.finish(Dial::Unknown),
            (State::Recording(dial), Event::Recorded) => self.finish(dial),
            _ => self.finish(Dial::Unknown),
        }
    }

    fn go(&mut self, state: State, action: Action) -> Action {
        self.state = state;
        action
    }

    fn finish(&mut self, dial: Dial) -> Action {
        self.go(State::Done, Action::Done(dial))
    }

    fn record(&mut self, result: DialResult) -> Action {
        let dial = match &result {
            DialResult::Placed { call_sid } => Dial::Placed(call_sid.clone()),
            DialResult::Failed { reason, .. } => Dial::Failed(reason.clone()),
        };
        self.go(State::Recording(dial), Action::Record(result))
    }

    fn give_up(&mut self) -> Action {
        let Failure { reason, code, unreported } = std::mem::take(&mut self.last_failure);
        self.record(DialResult::Failed { reason, code, retryable: true, failure: unreported })
    }

    /// Sleeps unless the sleep would end past the deadline: then the session is left to the sweep.
    fn sleep(&mut self, wait: Duration, then: AfterSleep, now_ms: u64) -> Action {
        if now_ms.saturating_add(wait.as_millis() as u64) > self.deadline_ms {
            return self.finish(Dial::Unknown);
        }
        self.go(State::Sleeping { then }, Action::Sleep(wait))
    }

    fn answered(&mut self, reply: Reply, body: &str, retry_after: Option<Duration>) -> Action {
        let failure = match (verdict(reply), reply) {
            (Verdict::Success | Verdict::Permanent, Reply::Status(status)) => {
                return match dial_outcome(status, body) {
                    DialOutcome::Dialled(sid) => self.record(DialResult::Placed { call_sid: sid.as_str().to_owned() }),
                    DialOutcome::Failed { reason, code } => self.record(DialResult::Failed {
                        reason,
                        code,
                        retryable: false,
                        failure: provider_failure(reply),
                    }),
                };
            }
            (_, Reply::Status(status)) => {
                Failure { reason: format!("twilio {status}"), code: error_code(body), unreported: None }
            }
            (_, Reply::NoAnswer) => {
                Failure { reason: "twilio did not answer".to_owned(), code: None, unreported: None }
            }
        };
        self.retries += 1;
        let next = self.backoff.next_try(verdict(reply), self.retries, retry_after);
        self.last_failure = Failure { unreported: provider_failure(reply), ..failure };
        match next {
            // Giving up records the failure (and reports it), which releases the slot with it.
            NextTry::GiveUp => self.give_up(),
            _ => {
                let reported = self.last_failure.unreported.take();
                self.go(State::Releasing { next }, Action::Release(reported))
            }
        }
    }

    fn after_release(&mut self, next: NextTry, now_ms: u64) -> Action {
        match next {
            NextTry::Resend(wait) => self.sleep(wait, AfterSleep::Reserve, now_ms),
            NextTry::LookThenResend(wait) => self.sleep(wait, AfterSleep::Look { give_up_if_absent: false }, now_ms),
            NextTry::LookThenGiveUp(wait) => self.sleep(wait, AfterSleep::Look { give_up_if_absent: true }, now_ms),
            NextTry::GiveUp => self.give_up(),
        }
    }
}

/// Twilio's error code in an error body, if any.
fn error_code(body: &str) -> Option<String> {
    serde_json::from_str::<TwilioError>(body).ok()?.code.map(|c| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "CA0123456789abcdef0123456789abcdef";

    fn answered(status: u16, body: &str) -> Event {
        Event::Answered { reply: Reply::Status(status), body: body.to_owned(), retry_after: None }
    }

    fn created() -> Event {
        answered(201, &format!(r#"{{"sid": "{SID}"}}"#))
    }

    fn silence() -> Event {
        Event::Answered { reply: Reply::NoAnswer, body: String::new(), retry_after: None }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A machine with the default backoff (1 s, 4 s, 10 s), started at t = 0.
    fn machine(budget: Duration) -> DialMachine {
        DialMachine::new(Backoff::default(), 0, budget)
    }

    /// Feeds events at the given times and returns the actions, the first (`Send`) included.
    fn run(machine: &mut DialMachine, events: Vec<(u64, Event)>) -> Vec<Action> {
        let mut actions = vec![machine.start()];
        for (at, event) in events {
            actions.push(machine.on(event, at));
        }
        actions
    }

    fn failed(reason: &str, code: Option<&str>, retryable: bool, failure: Option<ProviderFailure>) -> Action {
        Action::Record(DialResult::Failed { reason: reason.into(), code: code.map(Into::into), retryable, failure })
    }

    /// The release of a try that Twilio answered 5xx or not at all.
    const RELEASE: Action = Action::Release(Some(ProviderFailure::Unavailable));

    #[test]
    fn created_at_once_is_recorded() {
        let mut m = machine(DIAL_BUDGET);
        let actions = run(&mut m, vec![(10, created()), (20, Event::Recorded)]);
        assert_eq!(
            actions,
            [
                Action::Send,
                Action::Record(DialResult::Placed { call_sid: SID.into() }),
                Action::Done(Dial::Placed(SID.into()))
            ]
        );
    }

    #[test]
    fn a_504_is_looked_up_then_resent_in_a_fresh_slot() {
        let mut m = machine(DIAL_BUDGET);
        let actions = run(
            &mut m,
            vec![
                (100, answered(504, "")),
                (110, Event::Released),
                (1_110, Event::Woke),
                (1_150, Event::NotThere),
                (1_160, Event::Reserved),
                (1_200, created()),
                (1_210, Event::Recorded),
            ],
        );
        assert_eq!(
            actions,
            [
                Action::Send,
                RELEASE,
                Action::Sleep(ms(1_000)),
                Action::LookUp,
                Action::Reserve,
                Action::Send,
                Action::Record(DialResult::Placed { call_sid: SID.into() }),
                Action::Done(Dial::Placed(SID.into())),
            ]
        );
    }

    #[test]
    fn a_timeout_then_a_call_found_at_twilio_is_adopted_not_resent() {
        let mut m = machine(DIAL_BUDGET);
        let actions = run(
            &mut m,
            vec![
                (2_000, silence()),
                (2_010, Event::Released),
                (3_010, Event::Woke),
                (3_050, Event::Found { call_sid: SID.into() }),
            ],
        );
        assert_eq!(
            actions,
            [Action::Send, RELEASE, Action::Sleep(ms(1_000)), Action::LookUp, Action::Done(Dial::Placed(SID.into()))]
        );
    }

    #[test]
    fn a_429_with_retry_after_30_s_sleeps_30_s_not_the_scheduled_4() {
        let mut m = machine(Duration::from_secs(120));
        let too_many = Event::Answered {
            reply: Reply::Status(429),
            body: String::new(),
            retry_after: Some(Duration::from_secs(30)),
        };
        // The first retry is scheduled after 1 s; make it the second (4 s) to show Retry-After wins.
        let actions = run(
            &mut m,
            vec![
                (0, answered(503, "")),
                (0, Event::Released),
                (1_000, Event::Woke),
                (1_000, Event::Reserved),
                (1_100, too_many),
                (1_100, Event::Released),
            ],
        );
        assert_eq!(actions.last(), Some(&Action::Sleep(Duration::from_secs(30))));
        assert_eq!(actions[1..4], [RELEASE, Action::Sleep(ms(1_000)), Action::Reserve]);
        assert_eq!(actions[5], Action::Release(Some(ProviderFailure::Throttled)), "a 429 is reported as quota");
    }

    #[test]
    fn a_permanent_refusal_gives_up_at_once_without_another_try() {
        let mut m = machine(DIAL_BUDGET);
        let body = r#"{"code": 21211, "message": "Invalid 'To' Phone Number"}"#;
        let actions = run(&mut m, vec![(50, answered(400, body)), (60, Event::Recorded)]);
        let reason = "twilio 400: Invalid 'To' Phone Number";
        assert_eq!(
            actions,
            [Action::Send, failed(reason, Some("21211"), false, None), Action::Done(Dial::Failed(reason.into()))]
        );
    }

    #[test]
    fn a_budget_spent_mid_backoff_leaves_the_session_to_the_sweep() {
        // 503 at 20 s: the next retry would sleep 1 s, past a 20.5 s budget.
        let mut m = machine(ms(20_500));
        let actions = run(&mut m, vec![(20_000, answered(503, "")), (20_000, Event::Released)]);
        assert_eq!(actions, [Action::Send, RELEASE, Action::Done(Dial::Unknown)]);
    }

    #[test]
    fn retries_used_up_on_not_processed_answers_record_a_retryable_failure() {
        let mut m = machine(Duration::from_secs(60));
        let mut events = Vec::new();
        let mut at = 0;
        for wait in [1_000, 4_000, 10_000] {
            events.extend([(at, answered(503, "")), (at, Event::Released), (at + wait, Event::Woke)]);
            at += wait;
            events.push((at, Event::Reserved));
        }
        events.push((at, answered(503, r#"{"code": 20503, "message": "Service unavailable"}"#)));
        let actions = run(&mut m, events);
        let unreported = Some(ProviderFailure::Unavailable);
        assert_eq!(
            actions.last(),
            Some(&failed("twilio 503", Some("20503"), true, unreported)),
            "the last 503 reported with it"
        );
        let released = actions.iter().filter(|a| **a == RELEASE).count();
        assert_eq!(released, 3, "each 503 reported once: three with their release, the last with the result");
        assert_eq!(actions.iter().filter(|a| **a == Action::Send).count(), 4, "four tries in all");
        assert_eq!(m.retries(), 4);
    }

    #[test]
    fn the_last_unclear_answer_is_looked_up_and_given_up_only_if_nothing_is_there() {
        let mut m = machine(Duration::from_secs(60));
        let mut events = Vec::new();
        let mut at = 0;
        for wait in [1_000, 4_000, 10_000] {
            events.extend([(at, answered(504, "")), (at, Event::Released), (at + wait, Event::Woke)]);
            at += wait;
            events.extend([(at, Event::NotThere), (at, Event::Reserved)]);
        }
        events.extend([
            (at, silence()),
            (at, Event::Released),
            (at + 1_000, Event::Woke),
            (at + 1_000, Event::NotThere),
        ]);
        let actions = run(&mut m, events);
        let tail = &actions[actions.len() - 4..];
        assert_eq!(
            tail,
            [RELEASE, Action::Sleep(LAST_LOOK), Action::LookUp, failed("twilio did not answer", None, true, None)]
        );
    }

    const LAST_LOOK: Duration = crate::retry::LAST_LOOK_AFTER;

    #[test]
    fn a_slot_not_free_yet_is_asked_for_again_after_the_wait() {
        let mut m = machine(DIAL_BUDGET);
        let actions = run(
            &mut m,
            vec![
                (0, answered(503, "")),
                (0, Event::Released),
                (1_000, Event::Woke),
                (1_000, Event::ReserveLater(ms(450))),
                (1_450, Event::Woke),
                (1_450, Event::Reserved),
            ],
        );
        assert_eq!(actions[4..], [Action::Sleep(ms(450)), Action::Reserve, Action::Send]);
    }

    #[test]
    fn a_breaker_open_re_send_gives_up_at_once_with_the_failure_already_reported() {
        let mut m = machine(DIAL_BUDGET);
        let actions = run(
            &mut m,
            vec![
                (0, answered(503, r#"{"code": 20503, "message": "Service unavailable"}"#)),
                (0, Event::Released),
                (1_000, Event::Woke),
                (1_000, Event::BreakerOpen),
                (1_010, Event::Recorded),
            ],
        );
        assert_eq!(
            actions,
            [
                Action::Send,
                RELEASE,
                Action::Sleep(ms(1_000)),
                Action::Reserve,
                failed("twilio 503", Some("20503"), true, None),
                Action::Done(Dial::Failed("twilio 503".into())),
            ],
            "no wait for the cool-down, no second report of the 503"
        );
    }

    #[test]
    fn a_500_is_refused_for_good_and_reported_as_an_outage() {
        let mut m = machine(DIAL_BUDGET);
        let actions = run(&mut m, vec![(0, answered(500, r#"{"code": 20500, "message": "Internal"}"#))]);
        match &actions[1] {
            Action::Record(DialResult::Failed { retryable, failure, .. }) => {
                assert_eq!((*retryable, *failure), (false, Some(ProviderFailure::Unavailable)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_session_settled_while_backing_off_is_not_sent_again() {
        let mut m = machine(DIAL_BUDGET);
        let actions = run(
            &mut m,
            vec![(0, answered(503, "")), (0, Event::Released), (1_000, Event::Woke), (1_000, Event::Settled)],
        );
        assert_eq!(actions.last(), Some(&Action::Done(Dial::Unknown)));
        assert_eq!(actions.iter().filter(|a| **a == Action::Send).count(), 1);
    }

    #[test]
    fn a_lookup_that_fails_leaves_the_session_to_the_sweep() {
        let mut m = machine(DIAL_BUDGET);
        let actions = run(
            &mut m,
            vec![(0, answered(504, "")), (0, Event::Released), (1_000, Event::Woke), (1_000, Event::LookFailed)],
        );
        assert_eq!(actions.last(), Some(&Action::Done(Dial::Unknown)));
    }

    #[test]
    fn an_unexpected_event_never_sends() {
        let mut m = machine(DIAL_BUDGET);
        assert_eq!(m.on(Event::Reserved, 0), Action::Done(Dial::Unknown), "Reserved while a try is in flight");
    }

    #[test]
    fn sqls_answers_become_events() {
        let reconciled = |outcome, call_sid: Option<&str>| {
            Some(Reconciled {
                session_id: crate::ids::SessionId::parse("11111111-1111-1111-1111-111111111111").unwrap(),
                outcome,
                call_sid: call_sid.map(Into::into),
                call_status: "calling".into(),
            })
        };
        assert_eq!(
            Event::looked_up(reconciled(ReconcileOutcome::Adopted, Some(SID))),
            Event::Found { call_sid: SID.into() }
        );
        assert_eq!(Event::looked_up(reconciled(ReconcileOutcome::Adopted, None)), Event::LookFailed, "adopted, no sid");
        assert_eq!(Event::looked_up(reconciled(ReconcileOutcome::None, None)), Event::NotThere);
        assert_eq!(Event::looked_up(reconciled(ReconcileOutcome::Unchanged, Some(SID))), Event::LookFailed);
        assert_eq!(Event::looked_up(None), Event::LookFailed);
        assert_eq!(Event::reservation(Some(SlotReservation::Reserved)), Event::Reserved);
        assert_eq!(
            Event::reservation(Some(SlotReservation::Wait { retry_after_ms: 450, reason: None })),
            Event::ReserveLater(ms(450))
        );
        let breaker = SlotReservation::Wait { retry_after_ms: 30_000, reason: Some(BREAKER_OPEN.into()) };
        assert_eq!(Event::reservation(Some(breaker)), Event::BreakerOpen);
        assert_eq!(Event::reservation(Some(SlotReservation::Settled)), Event::Settled);
        assert_eq!(Event::reservation(None), Event::Settled);
    }
}
