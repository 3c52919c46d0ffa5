#!/usr/bin/env bash
# The SQL layer's tests, against fresh databases.
#
#   DATABASE_URL=postgres://postgres@127.0.0.1:54329/postgres sql/test.sh
#
# DATABASE_URL: a superuser connection (URI form) to a server with pgTAP and dblink (contrib) installed.
#  1. sql/baseline.sh --check: the baseline migration is what sql/schema generates (while it is the only one).
#  2. sql/agree.sh: the migrations (supabase/migrations) and the declared schema (sql/schema) build the same
#     catalogue (databases outcall_agree_a and outcall_agree_b).
#  3. pgTAP: creates (drops first) the database `outcall_sqltest` on that server, applies sandbox/sql/*.sql
#     (the local stand-ins for what hosted Supabase already has), supabase/migrations/*.sql in order, then
#     sandbox/sql/*.sql once more (they must be idempotent, also over a migrated database), the test fixtures
#     sql/tests/fixtures/*.sql (schema test_fixtures, shared by the tests; only in this database), and runs
#     `pg_prove` on sql/tests/*.sql.
# Exits non-zero on any failure. The databases are left behind for inspection.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
test_db="outcall_sqltest"

if [[ -z "${DATABASE_URL:-}" ]]; then
  echo "sql/test.sh: DATABASE_URL is not set (a superuser postgres:// URI)" >&2
  exit 2
fi
for tool in psql pg_prove; do
  command -v "$tool" >/dev/null || { echo "sql/test.sh: $tool not found" >&2; exit 2; }
done

# The same server, database $test_db: replace the URI's path, keep its query string.
case "$DATABASE_URL" in
  postgres://* | postgresql://*) ;;
  *) echo "sql/test.sh: DATABASE_URL must be a postgres:// URI" >&2; exit 2 ;;
esac
scheme="${DATABASE_URL%%://*}"
rest="${DATABASE_URL#*://}"
query=""
if [[ "$rest" == *\?* ]]; then
  query="?${rest#*\?}"
  rest="${rest%%\?*}"
fi
authority="${rest%%/*}"
test_url="${scheme}://${authority}/${test_db}${query}"

"$here/baseline.sh" --check
"$here/agree.sh"

export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"
psql_admin=(psql -X -v ON_ERROR_STOP=1 -q -d "$DATABASE_URL")
psql_test=(psql -X -v ON_ERROR_STOP=1 -q -d "$test_url")

echo "sql/test.sh: fresh database $test_db"
"${psql_admin[@]}" -c "drop database if exists ${test_db} with (force)"
"${psql_admin[@]}" -c "create database ${test_db}"

shopt -s nullglob
sandbox_files=("$root"/sandbox/sql/*.sql)
migration_files=("$root"/supabase/migrations/*.sql)
# (the fixtures sit in a subfolder: not in the glob of test files, pg_prove does not run them)
fixture_files=("$root"/sql/tests/fixtures/*.sql)
test_files=("$root"/sql/tests/*.sql)
if (( ${#migration_files[@]} == 0 || ${#fixture_files[@]} == 0 || ${#test_files[@]} == 0 )); then
  echo "sql/test.sh: no migrations, no test fixtures or no tests found" >&2
  exit 2
fi

apply() {
  local f
  for f in "$@"; do
    echo "  apply ${f#"$root"/}"
    "${psql_test[@]}" -f "$f"
  done
}

apply "${sandbox_files[@]}"
apply "${migration_files[@]}"
echo "  re-apply sandbox/sql (idempotence)"
apply "${sandbox_files[@]}"

"${psql_test[@]}" -c "create extension if not exists pgtap" -c "create extension if not exists dblink"
# (after the extensions: test_fixtures.connect calls dblink)
apply "${fixture_files[@]}"

echo "sql/test.sh: pg_prove"
cd "$root"
pg_prove --failures -d "$test_url" "${test_files[@]#"$root"/}"
