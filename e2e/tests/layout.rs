//! The database has one house: the declared schema `sql/schema/NN_area.sql` (each object once, as it is
//! now) and the migrations in `supabase/migrations` (what `supabase db push`, `./dev up` and the pgTAP run
//! apply): first the baseline generated from `sql/schema` by `./dev schema`, then any later change.
//! `sql/test.sh` checks that the baseline is what `sql/schema` generates and that the migrations and the
//! schema build the same catalogue; this checks the layout those rely on.

use std::path::Path;

fn sql_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sql"))
        .collect();
    names.sort();
    names
}

#[test]
fn supabase_applies_the_migrations_the_local_stack_applies() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let migrations = root.join("supabase/migrations");
    assert!(
        !std::fs::symlink_metadata(&migrations).unwrap().file_type().is_symlink(),
        "supabase/migrations is the migrations' one directory, not a link"
    );
    assert!(
        !root.join("sql/migrations").exists(),
        "sql/migrations is gone: the migrations live in supabase/migrations"
    );

    // The CLI applies `<timestamp>_<name>.sql` files in name order; the first is the generated baseline.
    let names = sql_files(&migrations);
    assert_eq!(names.first().map(String::as_str), Some("20261202000000_baseline.sql"), "{names:?}");
    for name in &names {
        let (stamp, rest) = name.split_once('_').unwrap_or_else(|| panic!("{name}: no timestamp"));
        assert!(stamp.len() == 14 && stamp.bytes().all(|b| b.is_ascii_digit()), "{name}: 14-digit timestamp");
        assert!(rest.len() > ".sql".len(), "{name}: a name after the timestamp");
    }
    let baseline = std::fs::read_to_string(migrations.join(&names[0])).unwrap();
    assert!(
        baseline.starts_with("-- GENERATED FILE, do not edit: `./dev schema`"),
        "the baseline says it is generated"
    );
}

#[test]
fn the_declared_schema_is_one_file_per_area_in_a_fixed_order() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let names = sql_files(&root.join("sql/schema"));
    assert!(!names.is_empty());
    let mut prefixes = Vec::new();
    for name in &names {
        let (prefix, area) = name.split_once('_').unwrap_or_else(|| panic!("{name}: no NN_ prefix"));
        assert!(prefix.len() == 2 && prefix.bytes().all(|b| b.is_ascii_digit()), "{name}: a two-digit prefix");
        assert!(area.len() > ".sql".len(), "{name}: an area after the prefix");
        prefixes.push(prefix.to_owned());
    }
    prefixes.dedup();
    assert_eq!(prefixes.len(), names.len(), "one file per prefix, so the order is explicit: {names:?}");
}
