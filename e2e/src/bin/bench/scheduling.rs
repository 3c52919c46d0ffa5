//! Smart scheduling (`./dev bench scheduling`, and part of `./dev bench`): does it raise the answer rate?
//! - synthetic clinics, each with hidden answer probabilities by local weekday and hour (a peak hour of its own, a
//!   day effect), in five time zones;
//! - a history drawn from them (a fixed seed): sessions over the past weeks inside the deployment's window
//!   (Mon–Fri 09:00–17:00 local), stored as the Worker stores them, so the dashboard's view learns from them;
//! - the same new attempts, each with an earliest instant uniform in its clinic's window, scheduled (a) there
//!   (today's behaviour without smart scheduling) and (b) by the running Postgres: `create_batch` with that
//!   `not_before`, dialled where the claim would (`row_window_opening` of the row's `next_attempt_at`);
//! - each attempt's outcome drawn from the hidden probability of its local slot with one uniform number per
//!   attempt, the same for (a) and (b): the answer rates, their ratio, and the expected rates (no draw);
//! - what it costs: accepting 10,000 targets of these clinics (`POST /api/v1/batches`) with it on and off.

use outcall_e2e::Stack;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const SEED: u64 = 16;
const CLINICS: usize = 12;
const ZONES: [&str; 5] =
    ["America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles", "Europe/London"];
const WEEKS: i64 = 6;
/// Attempts per clinic and weekday hour in a week of history: 6 × 6 weeks = 36 a slot (the policy's minimum: 30).
const PER_HOUR: usize = 6;
const NEW_ATTEMPTS: usize = 2_400;
/// The window the history and the new attempts keep to (the deployment's default; the local stack's is all week).
const WINDOW: &str = "window_days = '{1,2,3,4,5}', window_start = '09:00', window_end = '17:00'";
const ACCEPT_TARGETS: usize = 10_000;
const ACCEPT_RUNS: usize = 3;

/// splitmix64: a fixed seed gives the same clinics, history and draws on every run.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

struct Clinic {
    name: String,
    zone: &'static str,
    peak_hour: f64,
    /// Added to every hour of ISO weekday d at day_effect[d - 1].
    day_effect: [f64; 7],
}

impl Clinic {
    /// The hidden answer probability at local ISO weekday `weekday` and hour `hour`.
    fn answer_probability(&self, weekday: u32, hour: u32) -> f64 {
        let distance = hour as f64 + 0.5 - self.peak_hour;
        let p = 0.2 + 0.55 * (-(distance * distance) / (2.0 * 1.5 * 1.5)).exp() + self.day_effect[weekday as usize - 1];
        p.clamp(0.02, 0.98)
    }
}

fn clinics(rng: &mut Rng) -> Vec<Clinic> {
    (0..CLINICS)
        .map(|i| Clinic {
            name: format!("Bench clinic {i}"),
            zone: ZONES[i % ZONES.len()],
            peak_hour: 9.0 + rng.unit() * 8.0,
            day_effect: std::array::from_fn(|_| (rng.unit() - 0.5) * 0.2),
        })
        .collect()
}

/// A local instant as `YYYY-MM-DD HH:MM:SS` and its ISO weekday and hour.
struct Local {
    text: String,
    weekday: u32,
    hour: u32,
}

fn local(date: chrono::NaiveDate, hour: u32, minute: u32) -> Local {
    use chrono::Datelike;
    Local { text: format!("{date} {hour:02}:{minute:02}:00"), weekday: date.weekday().number_from_monday(), hour }
}

fn is_weekday(date: chrono::NaiveDate) -> bool {
    use chrono::Datelike;
    date.weekday().number_from_monday() <= 5
}

pub async fn run(stack: &Stack) {
    let mut rng = Rng(SEED);
    let clinics = clinics(&mut rng);
    let saved = stack.set_policy(&format!("smart_scheduling = true, {WINDOW}")).await;
    let db = stack.db().await;
    clean_up(&db).await;
    let today = chrono::Utc::now().date_naive();

    // The history: every weekday of the past WEEKS weeks, every window hour, PER_HOUR attempts per clinic.
    let (mut names, mut zones, mut locals, mut answered) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for days_ago in 1..=WEEKS * 7 {
        let date = today - chrono::Duration::days(days_ago);
        if !is_weekday(date) {
            continue;
        }
        for clinic in &clinics {
            for hour in 9..17 {
                for _ in 0..PER_HOUR {
                    let at = local(date, hour, rng.below(60) as u32);
                    answered.push(rng.unit() < clinic.answer_probability(at.weekday, at.hour));
                    names.push(clinic.name.clone());
                    zones.push(clinic.zone.to_owned());
                    locals.push(at.text);
                }
            }
        }
    }
    let started = Instant::now();
    db.execute(HISTORY_SQL, &[&names, &zones, &locals, &answered]).await.unwrap();
    let history = names.len();
    let history_seconds = started.elapsed().as_secs_f64();
    println!(
        "smart scheduling: {CLINICS} synthetic clinics in {} time zones, hidden answer probabilities by local weekday and hour (seed {SEED})",
        ZONES.len()
    );
    println!(
        "  history: {history} attempts over {WEEKS} weeks in Mon–Fri 09:00–17:00 local, {} per clinic and weekday hour (stored in {history_seconds:.1} s)",
        PER_HOUR as i64 * WEEKS
    );
    // Before the attempts below: each of their batches wakes the Worker (a webhook), which then has a backlog.
    accepting(stack, &clinics).await;

    // The new attempts: a clinic in turn, a weekday of the next two weeks (from tomorrow: never due during the
    // bench), a minute of the window; one uniform number each for the outcome.
    let mut attempts = Vec::with_capacity(NEW_ATTEMPTS);
    while attempts.len() < NEW_ATTEMPTS {
        let date = today + chrono::Duration::days(1 + rng.below(14) as i64);
        if !is_weekday(date) {
            continue;
        }
        let minute = rng.below(8 * 60) as u32;
        let clinic = &clinics[attempts.len() % CLINICS];
        attempts.push((clinic, local(date, 9 + minute / 60, minute % 60), rng.unit()));
    }
    let (names, zones, locals): (Vec<String>, Vec<String>, Vec<String>) = (
        attempts.iter().map(|(c, _, _)| c.name.clone()).collect(),
        attempts.iter().map(|(c, _, _)| c.zone.to_owned()).collect(),
        attempts.iter().map(|(_, l, _)| l.text.clone()).collect(),
    );
    db.batch_execute(SCHEDULE_FUNCTION).await.unwrap();
    let started = Instant::now();
    let scheduled =
        db.query("select * from pg_temp.bench_schedule($1, $2, $3)", &[&names, &zones, &locals]).await.unwrap();
    let schedule_seconds = started.elapsed().as_secs_f64();

    let (mut uniform, mut smart, mut expected_uniform, mut expected_smart, mut moved) = (0, 0, 0.0, 0.0, Vec::new());
    for ((clinic, at, draw), row) in attempts.iter().zip(&scheduled) {
        let (weekday, hour, moved_minutes): (i32, i32, f64) = (row.get(0), row.get(1), row.get(2));
        let p_uniform = clinic.answer_probability(at.weekday, at.hour);
        let p_smart = clinic.answer_probability(weekday as u32, hour as u32);
        uniform += (*draw < p_uniform) as usize;
        smart += (*draw < p_smart) as usize;
        expected_uniform += p_uniform;
        expected_smart += p_smart;
        if moved_minutes > 0.0 {
            moved.push(moved_minutes);
        }
    }
    moved.sort_by(f64::total_cmp);
    let n = NEW_ATTEMPTS as f64;
    let rate = |answered: usize| answered as f64 / n;
    println!(
        "  {NEW_ATTEMPTS} new attempts, each from a uniform instant of its clinic's window; outcomes drawn from the hidden probabilities:"
    );
    println!("    (a) uniform over the window (without smart scheduling): answer rate {:.3}", rate(uniform));
    println!(
        "    (b) scheduled by create_batch (smart_attempt_at, {:.1} ms an attempt): answer rate {:.3}",
        schedule_seconds * 1000.0 / n,
        rate(smart)
    );
    println!("    ratio (b)/(a): {:.2}", smart as f64 / uniform as f64);
    println!(
        "    expected (the hidden probabilities, no draw): {:.3} and {:.3}, ratio {:.2}",
        expected_uniform / n,
        expected_smart / n,
        expected_smart / expected_uniform
    );
    if !moved.is_empty() {
        println!(
            "    moved: {} of {NEW_ATTEMPTS}, by {:.1} h median, {:.1} h at most",
            moved.len(),
            moved[moved.len() / 2] / 60.0,
            moved[moved.len() - 1] / 60.0
        );
    }

    clean_up(&db).await;
    stack.restore_policy(&saved).await;
}

/// Accepting 10,000 targets of the clinics (a year ahead, cancelled after) with smart scheduling on and off, in
/// alternation: what deciding each clinic's start costs a batch.
async fn accepting(stack: &Stack, clinics: &[Clinic]) {
    let not_before = (chrono::Utc::now() + chrono::Duration::days(365)).to_rfc3339();
    let targets: Vec<Value> = (0..ACCEPT_TARGETS)
        .map(|i| {
            let clinic = &clinics[i % CLINICS];
            json!({"phone": format!("+1555000{}{:03}", 1 + i % 3, i % 1000), "name": format!("Target {i}"),
                   "clinic_name": clinic.name, "clinic_timezone": clinic.zone})
        })
        .collect();
    let request = json!({"name": "bench scheduling accept", "targets": targets, "schedule": {"notBefore": not_before}})
        .to_string();
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for run in 0..ACCEPT_RUNS * 2 {
        let smart = run % 2 == 0;
        stack.set_policy(&format!("smart_scheduling = {smart}")).await;
        let started = Instant::now();
        let (status, _, body) = stack.api(reqwest::Method::POST, "batches", &[], Some(request.clone())).await;
        let elapsed = started.elapsed();
        assert_eq!(status, 202, "{body}");
        crate::cancel_batch(stack, &body).await;
        if smart {
            on.push(elapsed)
        } else {
            off.push(elapsed)
        }
    }
    stack.set_policy("smart_scheduling = true").await;
    let median = |mut samples: Vec<Duration>| {
        samples.sort();
        samples[samples.len() / 2].as_secs_f64() * 1000.0
    };
    println!(
        "  accepting {ACCEPT_TARGETS} targets of these {CLINICS} clinics (POST /api/v1/batches), median of {ACCEPT_RUNS}: {:.0} ms with smart scheduling, {:.0} ms without",
        median(on),
        median(off)
    );
}

async fn clean_up(db: &tokio_postgres::Client) {
    db.batch_execute(
        "delete from pending_calls where clinic_name like 'Bench clinic %';
         delete from batches where name like 'bench scheduling %';",
    )
    .await
    .unwrap();
}

/// The history as the Worker leaves it: a finished row per attempt and its session, answered (completed, with
/// answered_at) or not (no-answer), at a local instant of its clinic's zone.
const HISTORY_SQL: &str = "
  with h as (
    select h.*, row_number() over () as n
      from unnest($1::text[], $2::text[], $3::text[], $4::bool[]) as h (clinic, zone, local, answered)
  ), r as (
    insert into pending_calls (employee_name, phone, clinic_name, clinic_timezone, call_status, attempts)
    select 'Bench history ' || h.n, '+1555' || lpad((h.n % 10000000)::text, 7, '0'), h.clinic, h.zone, 'completed', 1
      from h
    returning id, employee_name
  )
  insert into call_sessions (pending_call_id, attempt, status, created_at, answered_at)
  select r.id, 1, case when h.answered then 'completed' else 'no-answer' end, t.at, case when h.answered then t.at end
    from r
    join h on r.employee_name = 'Bench history ' || h.n
   cross join lateral (select h.local::timestamp at time zone h.zone as at) as t";

/// One batch per new attempt, created by the real function with the attempt's earliest instant as not_before;
/// answers where the claim would dial its row (the row's window opening at its next_attempt_at), as local ISO weekday
/// and hour, and how far that is from the earliest instant, in minutes.
const SCHEDULE_FUNCTION: &str = "
  create function pg_temp.bench_schedule(p_clinics text[], p_zones text[], p_locals text[])
  returns table (weekday int, hour int, moved_minutes float8)
  language plpgsql as $$
  declare
    v_earliest timestamptz;
    v_batch uuid;
    v_dial timestamptz;
  begin
    for i in 1 .. cardinality(p_clinics) loop
      v_earliest := p_locals[i]::timestamp at time zone p_zones[i];
      v_batch := (public.create_batch(jsonb_build_object(
                    'name', 'bench scheduling ' || i, 'not_before', v_earliest,
                    'targets', jsonb_build_array(jsonb_build_object(
                      'employee_name', 'Bench new ' || i, 'phone', '+15550001' || lpad((i % 1000)::text, 3, '0'),
                      'clinic_name', p_clinics[i], 'clinic_timezone', p_zones[i])))) ->> 'batch_id')::uuid;
      select outcall_private.row_window_opening(p, p.next_attempt_at) into v_dial
        from public.pending_calls as p where p.batch_id = v_batch;
      weekday := extract(isodow from v_dial at time zone p_zones[i]);
      hour := extract(hour from v_dial at time zone p_zones[i]);
      moved_minutes := extract(epoch from v_dial - v_earliest) / 60;
      return next;
    end loop;
  end
  $$;";
