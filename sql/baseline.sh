#!/usr/bin/env bash
# The baseline migration, generated from the declared schema.
#
#   sql/baseline.sh           writes supabase/migrations/20261202000000_baseline.sql: sql/schema/*.sql in name
#                             order, under a header (`./dev schema` runs this)
#   sql/baseline.sh --check   exits 1 when the baseline differs from what the line above would write
#                             (sql/test.sh runs this)
#
# Only while the baseline is the only migration. Once another migration exists, the baseline is frozen (it may
# have been applied somewhere: `supabase db push` never applies a file twice, so a regenerated baseline would
# never reach that database): writing refuses, and --check has nothing to compare (the agreement test,
# sql/agree.sh, checks that the baseline and the later migrations build what sql/schema builds).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
name=20261202000000_baseline.sql
baseline="$root/supabase/migrations/$name"
mode="${1:-write}"
case "$mode" in write | --check) ;; *) echo "usage: sql/baseline.sh [--check]" >&2; exit 2 ;; esac

shopt -s nullglob
schema_files=("$root"/sql/schema/*.sql)
if (( ${#schema_files[@]} == 0 )); then
  echo "sql/baseline.sh: no sql/schema/*.sql" >&2
  exit 2
fi
later=()
for f in "$root"/supabase/migrations/*.sql; do
  [[ "$(basename "$f")" == "$name" ]] || later+=("$(basename "$f")")
done

generate() {
  local f
  cat <<EOF
-- GENERATED FILE, do not edit: \`./dev schema\` (sql/baseline.sh) writes it from sql/schema/*.sql.
-- The baseline migration: the whole database, the declared schema's files concatenated in name order.
-- To change the database, edit sql/schema/ and add a migration with the change (sql/README.md, "How to change
-- a function"); \`./dev test sql\` checks that the migrations and sql/schema build the same database.
EOF
  for f in "${schema_files[@]}"; do
    printf '\n-- ======== sql/schema/%s ========\n\n' "$(basename "$f")"
    cat "$f"
  done
}

if [[ "$mode" == --check ]]; then
  if (( ${#later[@]} > 0 )); then
    echo "sql/baseline.sh: the baseline is frozen (later migrations: ${later[*]}); not compared with sql/schema"
    exit 0
  fi
  if ! [[ -f "$baseline" ]]; then
    echo "sql/baseline.sh: supabase/migrations/$name is missing: run ./dev schema" >&2
    exit 1
  fi
  if ! diff -u --label "supabase/migrations/$name" --label "generated from sql/schema" \
         "$baseline" <(generate) >&2; then
    echo "sql/baseline.sh: supabase/migrations/$name is not what sql/schema generates (above)." >&2
    echo "  Nothing deployed yet: run ./dev schema. Deployed: add a migration instead (sql/README.md)." >&2
    exit 1
  fi
  echo "sql/baseline.sh: supabase/migrations/$name is what sql/schema generates"
  exit 0
fi

if (( ${#later[@]} > 0 )); then
  echo "sql/baseline.sh: the baseline is frozen once later migrations exist (${later[*]});" \
       "write a migration for the change instead (sql/README.md, \"How to change a function\")" >&2
  exit 1
fi
mkdir -p "$(dirname "$baseline")"
generate >"$baseline.tmp"
mv "$baseline.tmp" "$baseline"
echo "sql/baseline.sh: wrote supabase/migrations/$name from ${#schema_files[@]} files of sql/schema"
