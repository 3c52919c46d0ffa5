//! The schema has one source: `supabase/migrations` (what `supabase db push` applies) is
//! `sql/migrations` (what `./dev up` and the pgTAP run apply), not a hand-kept copy.

use std::path::Path;

#[test]
fn supabase_applies_the_same_migrations_as_the_local_stack() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let supabase = root.join("supabase/migrations").canonicalize().unwrap();
    let sql = root.join("sql/migrations").canonicalize().unwrap();
    assert_eq!(supabase, sql, "supabase/migrations must link to sql/migrations");

    // The CLI applies `<timestamp>_<name>.sql` files in name order.
    let names: Vec<String> =
        std::fs::read_dir(&sql).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(!names.is_empty());
    for name in &names {
        let (stamp, rest) = name.split_once('_').unwrap_or_else(|| panic!("{name}: no timestamp"));
        assert!(stamp.len() == 14 && stamp.bytes().all(|b| b.is_ascii_digit()), "{name}: 14-digit timestamp");
        assert!(rest.ends_with(".sql"), "{name}");
    }
}
