//! Reading the calls the sandbox's Twilio saw (`Stack::sandbox_calls`): when each was created, how many were live
//! at once. The limits tests (`batch_limits.rs`, `campaign_controls.rs`) judge the dispatcher by these.

use serde_json::Value;

/// The calls' creation times (ms on the sandbox's clock), in order.
pub fn created_ms(calls: &[Value]) -> Vec<u64> {
    let mut created: Vec<u64> = calls.iter().map(|c| c["created_ms"].as_u64().unwrap()).collect();
    created.sort_unstable();
    created
}

/// The most calls live at once: at each call's creation, those created by then and not yet ended.
pub fn peak_live(calls: &[Value]) -> usize {
    let live_at = |at: u64| {
        calls
            .iter()
            .filter(|c| c["created_ms"].as_u64().unwrap() <= at && c["ended_ms"].as_u64().is_none_or(|end| end > at))
            .count()
    };
    calls.iter().map(|c| live_at(c["created_ms"].as_u64().unwrap())).max().unwrap_or(0)
}
