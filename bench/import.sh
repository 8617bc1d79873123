#!/usr/bin/env bash
# Import benchmark: generates a directory of N students (default 20000), each with one
# guardian, a guardianship, a group membership and a contract, imports it into a fresh
# SQLite database with the release build, then imports it again (the idempotent path),
# and prints wall time, rows per second and peak memory of each run.
#
# Beside them, a reference from the same run on the same disk: the same rows read from
# the same files by Python's csv and sqlite3 modules and written with executemany in
# one transaction into a database with Herald's schema (migrated by Herald, so the
# same tables, indexes and checks) and Herald's settings (WAL, synchronous=NORMAL,
# foreign keys). It checks nothing, reports nothing and writes no audit: what SQLite
# alone does with these rows. The ratio says how much of that Herald reaches.
#
#   bench/import.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release --quiet
python3 - "$work" "$n" <<'PY'
import csv, os, sys
work, n = sys.argv[1], int(sys.argv[2])
def w(name, header, rows):
    with open(os.path.join(work, name), "w", newline="") as f:
        out = csv.writer(f); out.writerow(header); out.writerows(rows)
w("recipients.csv", ["external_id", "role", "name", "email", "phone", "sms_enabled"],
  [r for i in range(n) for r in (
      [f"s-{i}", "student", f"Student {i}", "", "", "no"],
      [f"g-{i}", "guardian", f"Guardian {i}", f"guardian{i}@example.pl", f"+48 600 {i // 1000:03d} {i % 1000:03d}", "yes"])])
w("groups.csv", ["external_id", "name"], [[f"grp-{k}", f"Group {k}"] for k in range(max(1, n // 20))])
w("guardianships.csv", ["guardian_id", "student_id"], [[f"g-{i}", f"s-{i}"] for i in range(n)])
w("memberships.csv", ["group_id", "member_id"], [[f"grp-{i % max(1, n // 20)}", f"s-{i}"] for i in range(n)])
w("contracts.csv", ["external_id", "student_id", "status", "consent"], [[f"c-{i}", f"s-{i}", "active", "yes"] for i in range(n)])
PY
files=()
for kind in recipients groups guardianships memberships contracts; do
  files+=("$work/$kind.csv")
done
lines=$(cat "${files[@]}" | wc -l)
rows=$((lines - ${#files[@]}))
echo "rows: $rows in ${#files[@]} files ($n students)"
herald() {
  env HERALD__DATABASE__URL="sqlite://$work/$1" HERALD__TELEMETRY__LEVEL=warn \
    target/release/herald "${@:2}"
}
herald bench.db operators add bench --role owner >/dev/null
herald reference.db migrate >/dev/null

# One line per run: wall seconds, rows per second, CPU seconds (every thread: on a
# shared machine wall time waits for the others, CPU time much less), peak RSS.
report() {
  awk -v what="$1" -v rows="$rows" '{ printf "%s: %.2f s wall, %.0f rows/s, %.2f s CPU, %d KiB peak RSS\n", what, $1, rows / $1, $3 + $4, $2 }' "$2"
}
for pass in first again; do
  /usr/bin/time -o "$work/time" -f "%e %M %U %S" \
    env HERALD__DATABASE__URL="sqlite://$work/bench.db" HERALD__TELEMETRY__LEVEL=warn \
    target/release/herald import "${files[@]}" --as bench >/dev/null
  report "import ($pass)" "$work/time"
  cp "$work/time" "$work/time-$pass"
done

/usr/bin/time -o "$work/time" -f "%e %M %U %S" python3 - "$work" <<'PY'
import csv, sqlite3, sys
work = sys.argv[1]
now = "2026-09-01T08:00:00+00:00"
def rows(name):
    with open(f"{work}/{name}.csv", newline="") as f:
        reader = csv.reader(f)
        next(reader)
        yield from reader
db = sqlite3.connect(f"{work}/reference.db", isolation_level=None)
db.execute("PRAGMA journal_mode = WAL")
db.execute("PRAGMA synchronous = NORMAL")
db.execute("PRAGMA foreign_keys = ON")
db.execute("BEGIN IMMEDIATE")
db.executemany(
    "INSERT INTO recipients (external_id, role, name, email, phone, sms_enabled, created_at, updated_at)"
    " VALUES (?, ?, ?, nullif(?, ''), nullif(?, ''), ?, ?, ?)",
    ((i, role, name, email, phone, int(sms == "yes"), now, now)
     for i, role, name, email, phone, sms in rows("recipients")))
db.executemany(
    "INSERT INTO groups (external_id, name, created_at, updated_at) VALUES (?, ?, ?, ?)",
    ((i, name, now, now) for i, name in rows("groups")))
# References are looked up by the platform's ids, as Herald does, by SQLite itself.
db.executemany(
    "INSERT INTO guardianships (guardian_id, student_id, created_at)"
    " SELECT g.id, s.id, ? FROM recipients g, recipients s WHERE g.external_id = ? AND s.external_id = ?",
    ((now, g, s) for g, s in rows("guardianships")))
db.executemany(
    "INSERT INTO group_members (group_id, recipient_id, created_at)"
    " SELECT g.id, r.id, ? FROM groups g, recipients r WHERE g.external_id = ? AND r.external_id = ?",
    ((now, g, m) for g, m in rows("memberships")))
db.executemany(
    "INSERT INTO contracts (external_id, student_id, status, consent_email, consent_email_at,"
    " consent_sms, consent_sms_at, created_at, updated_at)"
    " SELECT ?, id, ?, 1, ?, 1, ?, ?, ? FROM recipients WHERE external_id = ?",
    ((c, status, now, now, now, now, s) for c, s, status, _ in rows("contracts")))
db.execute("COMMIT")
PY
report "reference (python sqlite3, executemany, one transaction)" "$work/time"
awk -v first="$(cut -d' ' -f1 "$work/time-first")" '{ printf "herald / reference (first import): %.2f\n", $1 / first }' "$work/time"

/usr/bin/time -o "$work/time" -f "%e s wall, %M KiB peak RSS" \
  env HERALD__DATABASE__URL="sqlite://$work/bench.db" target/release/herald recipients --json >/dev/null
echo "recipients --json: $(cat "$work/time")"
