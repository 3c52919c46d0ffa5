//! The sandbox's clinics: each number has a phone system (a tree of menus, announcements, holds and
//! the people, voicemail boxes and recordings calls end up at), a default per scenario that
//! `/_sandbox/phones/{number}` can replace. An answered call walks it on its nominal clock.

pub mod api;
pub mod defaults;
pub mod line;
pub mod tree;
pub mod walk;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::state::lock;
pub use line::{Line, Track};
pub use tree::PhoneSystem;

/// The phone systems set at run time, by number; every other number has its default.
#[derive(Default)]
pub struct Phones {
    overrides: Mutex<BTreeMap<String, Arc<PhoneSystem>>>,
}

impl Phones {
    /// The system answering `number` now, and whether it is the `default` or an `override`.
    pub fn get(&self, number: &str) -> (Arc<PhoneSystem>, &'static str) {
        match lock(&self.overrides).get(number) {
            Some(system) => (system.clone(), "override"),
            None => (Arc::new(defaults::for_number(number)), "default"),
        }
    }

    pub fn set(&self, number: &str, system: PhoneSystem) {
        lock(&self.overrides).insert(number.to_string(), Arc::new(system));
    }

    /// Back to the default.
    pub fn restore(&self, number: &str) {
        lock(&self.overrides).remove(number);
    }

    pub fn overrides(&self) -> BTreeMap<String, Arc<PhoneSystem>> {
        lock(&self.overrides).clone()
    }

    /// The line of a call to `number` answered now.
    pub fn line(&self, number: &str) -> Line {
        let (system, source) = self.get(number);
        Line::new(number, system, source)
    }
}
