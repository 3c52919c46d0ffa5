//! The classifier against the labelled corpus (`functions/core/corpus/*.json`): per-class accuracy and the
//! confusions are printed (`cargo test -p outcall-core --test corpus -- --nocapture`); the overall accuracy must
//! reach a floor, and every entry marked as a trap (the cases that fool others) must be right.

use outcall_core::learning::classify::{classify, Learned};
use outcall_core::learning::timeline::Timeline;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
struct Entry {
    label: Learned,
    #[serde(default)]
    trap: Option<String>,
    timeline: Timeline,
}

const FLOOR_PERCENT: usize = 90;

#[test]
fn the_corpus_is_classified() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus");
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "json"));
    files.sort();
    assert!(files.len() >= 60, "the corpus has {} entries", files.len());
    let mut per_class: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let (mut right, mut traps_wrong) = (0, Vec::new());
    let mut confusions = Vec::new();
    for path in &files {
        let entry: Entry = serde_json::from_str(&std::fs::read_to_string(path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let verdict = classify(&entry.timeline);
        let class = format!("{:?}", entry.label);
        let tally = per_class.entry(class).or_default();
        tally.1 += 1;
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if verdict.classification == entry.label {
            tally.0 += 1;
            right += 1;
        } else {
            confusions.push(format!(
                "  {name}: {:?} taken for {:?} ({:?})",
                entry.label, verdict.classification, verdict.evidence.reasons
            ));
            if let Some(trap) = entry.trap {
                traps_wrong.push(format!("{name} ({trap})"));
            }
        }
    }
    println!("corpus: {right}/{} right", files.len());
    for (class, (ok, all)) in &per_class {
        println!("  {class}: {ok}/{all} ({}%)", ok * 100 / all);
    }
    println!("confusions:{}", if confusions.is_empty() { " none" } else { "" });
    for c in &confusions {
        println!("{c}");
    }
    assert!(traps_wrong.is_empty(), "traps misclassified: {traps_wrong:?}");
    assert!(right * 100 >= files.len() * FLOOR_PERCENT, "{right}/{} is under {FLOOR_PERCENT}%", files.len());
}
