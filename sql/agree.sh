#!/usr/bin/env bash
# The agreement test: the migrations and the declared schema build the same database.
#
#   DATABASE_URL=postgres://postgres@127.0.0.1:54329/postgres sql/agree.sh [A B]
#
# A and B are directories of .sql files, each applied in name order after sandbox/sql/*.sql (the local
# stand-ins for what hosted Supabase already has) to a fresh database of its own on DATABASE_URL's server
# (outcall_agree_a, outcall_agree_b; dropped first, left behind for inspection). Defaults:
# A = supabase/migrations (what `supabase db push` applies), B = sql/schema (the declared schema).
# Then sql/catalog.sql lists each database's catalogue (tables, columns, constraints, indexes, functions,
# triggers, views, policies, ACLs, publications, comments, seed rows, ...) and the two lists are compared:
# any difference is printed (diff -u, A's lines '-', B's '+') and the script exits 1.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
side_a="${1:-$root/supabase/migrations}"
side_b="${2:-$root/sql/schema}"

if [[ -z "${DATABASE_URL:-}" ]]; then
  echo "sql/agree.sh: DATABASE_URL is not set (a superuser postgres:// URI)" >&2
  exit 2
fi
case "$DATABASE_URL" in
  postgres://* | postgresql://*) ;;
  *) echo "sql/agree.sh: DATABASE_URL must be a postgres:// URI" >&2; exit 2 ;;
esac

# DATABASE_URL with another database: replace the URI's path, keep its query string.
url_of() {
  local scheme="${DATABASE_URL%%://*}" rest="${DATABASE_URL#*://}" query=""
  if [[ "$rest" == *\?* ]]; then
    query="?${rest#*\?}"
    rest="${rest%%\?*}"
  fi
  echo "${scheme}://${rest%%/*}/$1${query}"
}

export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
shopt -s nullglob
sandbox_files=("$root"/sandbox/sql/*.sql)

# build NAME DIR: a fresh database NAME from the sandbox and DIR's files, and its catalogue in $work/NAME.txt
build() {
  local name=$1 dir=$2 f
  local files=("$dir"/*.sql)
  if (( ${#files[@]} == 0 )); then
    echo "sql/agree.sh: no .sql files in $dir" >&2
    exit 2
  fi
  psql -X -v ON_ERROR_STOP=1 -q -d "$DATABASE_URL" -c "drop database if exists $name with (force)" \
    -c "create database $name"
  for f in "${sandbox_files[@]}" "${files[@]}"; do
    psql -X -v ON_ERROR_STOP=1 -q -d "$(url_of "$name")" -f "$f" >/dev/null
  done
  psql -X -v ON_ERROR_STOP=1 -q -At -d "$(url_of "$name")" -f "$here/catalog.sql" >"$work/$name.txt"
  echo "  $name: ${dir#"$root"/} (${#files[@]} files), $(grep -c '' "$work/$name.txt") catalogue lines"
}

echo "sql/agree.sh: ${side_a#"$root"/} against ${side_b#"$root"/}"
build outcall_agree_a "$side_a"
build outcall_agree_b "$side_b"

if diff -u --label "${side_a#"$root"/}" --label "${side_b#"$root"/}" \
     "$work/outcall_agree_a.txt" "$work/outcall_agree_b.txt" >"$work/diff"; then
  echo "sql/agree.sh: the same catalogue"
else
  cat "$work/diff"
  echo "sql/agree.sh: ${side_a#"$root"/} and ${side_b#"$root"/} build different databases (above: - ${side_a#"$root"/}, + ${side_b#"$root"/})" >&2
  exit 1
fi
