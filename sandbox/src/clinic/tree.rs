//! A phone system as data: nodes by id, each a menu, an announcement, a hold, or where a call ends up
//! (a person, a voicemail box, an automated message). The JSON form is what `PUT /_sandbox/phones/{number}`
//! takes and `GET` shows.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How long a menu waits for a key after its prompt, unless the tree says otherwise.
pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;
/// How many times a menu plays before `otherwise` applies, unless the tree says otherwise.
pub const DEFAULT_REPEATS: u32 = 3;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhoneSystem {
    /// Shown in call records: which system answered.
    pub name: String,
    /// The node that answers the call.
    pub start: String,
    /// The node a caller of this clinic wants (its appointments desk); reaching another person or
    /// message is a wrong department.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub nodes: BTreeMap<String, Node>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Node {
    /// Speaks its prompt and waits for a key (a key during the prompt interrupts it). No key within
    /// `timeout_ms` of the prompt's end plays the menu again; after `repeats` plays, `otherwise`
    /// (when set) takes over. A key it does not offer gets "not a valid option" and the menu again.
    Menu {
        prompt: Vec<String>,
        /// Key → node.
        options: BTreeMap<char, String>,
        #[serde(default = "default_timeout")]
        timeout_ms: u64,
        #[serde(default = "default_repeats")]
        repeats: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        otherwise: Option<String>,
    },
    /// An announcement ("please hold while i connect you"), then `next`.
    Say { prompt: Vec<String>, next: String },
    /// `ms` of ringing, hold music or silence, then `next`.
    Hold { ms: u64, sound: HoldSound, next: String },
    /// A person picks up and greets; the call stays with them.
    Person {
        prompt: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        department: Option<String>,
    },
    /// A voicemail greeting, the beep, then silence (recording).
    Voicemail { prompt: Vec<String> },
    /// A recorded message and nobody behind it.
    Automated { prompt: Vec<String> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldSound {
    Ring,
    Music,
    Silence,
}

/// What kind of place a node is, as call records name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    Menu,
    Say,
    Hold,
    Person,
    Voicemail,
    Automated,
}

impl NodeKind {
    /// Where a call ends up: nothing moves on from here.
    pub fn is_final(self) -> bool {
        matches!(self, NodeKind::Person | NodeKind::Voicemail | NodeKind::Automated)
    }

    pub fn name(self) -> &'static str {
        match self {
            NodeKind::Menu => "menu",
            NodeKind::Say => "say",
            NodeKind::Hold => "hold",
            NodeKind::Person => "person",
            NodeKind::Voicemail => "voicemail",
            NodeKind::Automated => "automated",
        }
    }
}

fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_MS
}

fn default_repeats() -> u32 {
    DEFAULT_REPEATS
}

impl Node {
    pub fn kind(&self) -> NodeKind {
        match self {
            Node::Menu { .. } => NodeKind::Menu,
            Node::Say { .. } => NodeKind::Say,
            Node::Hold { .. } => NodeKind::Hold,
            Node::Person { .. } => NodeKind::Person,
            Node::Voicemail { .. } => NodeKind::Voicemail,
            Node::Automated { .. } => NodeKind::Automated,
        }
    }

    pub fn prompt(&self) -> &[String] {
        match self {
            Node::Menu { prompt, .. }
            | Node::Say { prompt, .. }
            | Node::Person { prompt, .. }
            | Node::Voicemail { prompt }
            | Node::Automated { prompt } => prompt,
            Node::Hold { .. } => &[],
        }
    }

    /// The nodes this one can lead to.
    fn links(&self) -> Vec<&String> {
        match self {
            Node::Menu { options, otherwise, .. } => options.values().chain(otherwise).collect(),
            Node::Say { next, .. } | Node::Hold { next, .. } => vec![next],
            _ => Vec::new(),
        }
    }
}

/// The DTMF keys a menu can offer.
pub fn is_key(c: char) -> bool {
    c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D')
}

/// Longest hold or menu timeout a tree may ask for: a typo should not freeze a call for hours.
const MAX_WAIT_MS: u64 = 600_000;

impl PhoneSystem {
    /// Every reference resolves, keys are DTMF keys, and no wait is absurd.
    pub fn validate(&self) -> Result<(), String> {
        let known = |id: &String, what: &str| {
            if self.nodes.contains_key(id) {
                Ok(())
            } else {
                Err(format!("{what} names unknown node {id:?}"))
            }
        };
        known(&self.start, "start")?;
        if let Some(target) = &self.target {
            known(target, "target")?;
        }
        for (id, node) in &self.nodes {
            for link in node.links() {
                known(link, &format!("node {id:?}"))?;
            }
            match node {
                Node::Menu { options, timeout_ms, repeats, prompt, .. } => {
                    if let Some(bad) = options.keys().find(|k| !is_key(**k)) {
                        return Err(format!("node {id:?}: {bad:?} is not a DTMF key"));
                    }
                    if *timeout_ms == 0 || *timeout_ms > MAX_WAIT_MS {
                        return Err(format!("node {id:?}: timeout_ms must be within 1..={MAX_WAIT_MS}"));
                    }
                    if *repeats == 0 {
                        return Err(format!("node {id:?}: repeats must be at least 1"));
                    }
                    if prompt.is_empty() {
                        return Err(format!("node {id:?}: a menu needs a prompt"));
                    }
                }
                Node::Hold { ms, .. } if *ms == 0 || *ms > MAX_WAIT_MS => {
                    return Err(format!("node {id:?}: ms must be within 1..={MAX_WAIT_MS}"));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_form_round_trips_and_is_checked() {
        let tree = json!({
            "name": "t", "start": "main", "target": "desk",
            "nodes": {
                "main": {"type": "menu", "prompt": ["for appointments press 1."], "options": {"1": "hold"}},
                "hold": {"type": "hold", "ms": 2000, "sound": "ring", "next": "desk"},
                "desk": {"type": "person", "prompt": ["front desk."]}
            }
        });
        let system: PhoneSystem = serde_json::from_value(tree).unwrap();
        system.validate().unwrap();
        let Node::Menu { timeout_ms, repeats, .. } = &system.nodes["main"] else { panic!("menu") };
        assert_eq!((*timeout_ms, *repeats), (DEFAULT_TIMEOUT_MS, DEFAULT_REPEATS));
        let back: PhoneSystem = serde_json::from_value(serde_json::to_value(&system).unwrap()).unwrap();
        assert_eq!(back, system);

        let mut broken = system.clone();
        broken.start = "nowhere".into();
        assert!(broken.validate().unwrap_err().contains("nowhere"));
        let mut bad_key = system.clone();
        bad_key.nodes.insert(
            "main".into(),
            Node::Menu {
                prompt: vec!["x".into()],
                options: [('x', "desk".to_string())].into(),
                timeout_ms: 1,
                repeats: 1,
                otherwise: None,
            },
        );
        assert!(bad_key.validate().unwrap_err().contains("DTMF"));
        assert!(
            serde_json::from_value::<PhoneSystem>(json!({"name": "t", "start": "a", "nodes": {}, "extra": 1})).is_err()
        );
    }
}
