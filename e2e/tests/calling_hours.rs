//! Calling hours: a row that arrives outside its clinic's window is deferred to the next opening on
//! the clinic's wall clock, never dropped, and dialled once the window opens. This binary narrows the
//! stack's window for its one test (cargo runs test binaries one after another) and puts it back.

use outcall_e2e::{fresh_phone, sample_row, Scenario, Stack};
use serde_json::json;

#[tokio::test]
async fn a_row_outside_its_calling_hours_waits_for_the_opening_then_is_dialled() {
    let stack = Stack::from_env();
    // A window that is closed right now in the clinic's zone: it opens at the next full hour, local.
    let db = stack.db().await;
    let zone = "Asia/Kolkata"; // (UTC+05:30 all year: the opening is an exact instant to check)
    let opens: String = db
        .query_one(
            "select to_char(date_trunc('hour', (now() at time zone $1::text)) + interval '1 hour', 'HH24:MI')",
            &[&zone],
        )
        .await
        .unwrap()
        .get(0);
    let saved = stack
        .set_policy(&format!(
            "window_days = '{{1,2,3,4,5,6,7}}', window_start = '{opens}', window_end = '{}'",
            if opens == "00:00" { "01:00".to_owned() } else { "24:00".to_owned() }
        ))
        .await;

    let outcome = tokio::spawn(async move {
        let stack = Stack::from_env();
        let mut row = sample_row(&fresh_phone(Scenario::Human), "Tara Singh");
        row["clinic_timezone"] = json!(zone);
        let id = stack.insert_pending_call(row).await["id"].as_str().unwrap().to_owned();
        // The webhook came and went: the row waits for the opening, with no session and no call.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let waiting = loop {
            let row = stack.pending_call(&id).await;
            if row["next_attempt_at"] != row["created_at"] {
                break row;
            }
            assert!(std::time::Instant::now() < deadline, "the row was never deferred: {row}");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        };
        assert_eq!((waiting["call_status"].as_str(), waiting["attempts"].as_i64()), (Some("pending"), Some(0)));
        let db = stack.db().await;
        let local_opening: String = db
            .query_one(
                "select to_char(next_attempt_at at time zone clinic_timezone, 'HH24:MI:SS')
                   from pending_calls where id = $1::text::uuid",
                &[&id],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(local_opening, format!("{opens}:00"), "deferred to the opening on the clinic's clock");
        stack.sweep().await;
        assert!(stack.sessions(&id).await.is_empty(), "nothing is dialled before the opening");

        // The window opens (here: the policy widens); the sweep dials the row.
        db.execute("update outcall_private.dispatch_policy set window_start = '00:00', window_end = '24:00'", &[])
            .await
            .unwrap();
        db.execute("update pending_calls set next_attempt_at = now() where id = $1::text::uuid", &[&id]).await.unwrap();
        stack.sweep().await;
        let row = stack.wait_terminal(&id).await;
        assert_eq!((row["call_status"].as_str(), row["attempts"].as_i64()), (Some("completed"), Some(1)), "{row}");
    })
    .await;
    stack.restore_policy(&saved).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
