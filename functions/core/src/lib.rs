//! outcall-core
