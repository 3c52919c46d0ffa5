//! How the callee behaves, chosen by the dialled number (the `outcall-scenario` crate).

pub use outcall_scenario::Scenario;
