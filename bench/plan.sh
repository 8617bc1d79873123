#!/usr/bin/env bash
# Planning benchmark: generates N guardians (default 20000), each with one student in
# a group of twenty and a contract, imports them into a fresh SQLite database with the
# release build, then times composing one email to the guardians of all groups: its
# dry run, then the real send (planned, judged and stored as one batch awaiting
# approval). Every 50th guardian has no email address and every 97th contract no
# consent, so the batch holds blocked messages too. Prints wall time and peak memory
# beside the target, and as a reference from the same run, the time Python's sqlite3
# takes to insert the same number of message rows (and their events) in one
# transaction into a copy of the same database.
#
#   bench/plan.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release --quiet
python3 - "$work" "$n" <<'PY'
import csv, os, sys
work, n = sys.argv[1], int(sys.argv[2])
groups = max(1, n // 20)
def w(name, header, rows):
    with open(os.path.join(work, name), "w", newline="") as f:
        out = csv.writer(f); out.writerow(header); out.writerows(rows)
w("recipients.csv", ["external_id", "role", "name", "email", "phone", "sms_enabled"],
  [r for i in range(n) for r in (
      [f"s-{i}", "student", f"Student {i}", "", "", "no"],
      [f"g-{i}", "guardian", f"Guardian {i}", "" if i % 50 == 49 else f"guardian{i}@example.pl",
       f"+48 600 {i // 1000 % 1000:03d} {i % 1000:03d}", "yes"])])
w("groups.csv", ["external_id", "name"], [[f"grp-{k}", f"Group {k}"] for k in range(groups)])
w("guardianships.csv", ["guardian_id", "student_id"], [[f"g-{i}", f"s-{i}"] for i in range(n)])
w("memberships.csv", ["group_id", "member_id"], [[f"grp-{i % groups}", f"s-{i}"] for i in range(n)])
w("contracts.csv", ["external_id", "student_id", "status", "consent"],
  [[f"c-{i}", f"s-{i}", "active", "no" if i % 97 == 96 else "yes"] for i in range(n)])
PY
export HERALD__DATABASE__URL="sqlite://$work/bench.db" HERALD__TELEMETRY__LEVEL=warn
herald=target/release/herald
$herald operators add bench --role owner >/dev/null
$herald operators add secretary --role secretary --as bench >/dev/null
$herald import "$work"/recipients.csv "$work"/groups.csv "$work"/guardianships.csv \
  "$work"/memberships.csv "$work"/contracts.csv --as bench >/dev/null
# A copy through SQLite's backup, which includes what is still in the WAL file.
python3 -c 'import sqlite3, sys; sqlite3.connect(sys.argv[1]).backup(sqlite3.connect(sys.argv[2]))' \
  "$work/bench.db" "$work/reference.db"
subject="Zebranie rodziców w czwartek"
# About 500 bytes: an announcement of ordinary length.
body="Szanowni Państwo, zapraszamy na zebranie rodziców w czwartek o 17:30 w auli \
szkoły. Omówimy plan zajęć na drugi semestr, wyjazd integracyjny klas oraz zasady \
korzystania z biblioteki i pracowni komputerowej. Prosimy o potwierdzenie obecności \
u wychowawcy do środy. Osoby, które nie mogą przyjść, zachęcamy do kontaktu mailowego \
lub telefonicznego z sekretariatem. Dziękujemy i do zobaczenia. Dyrekcja szkoły."
echo "$n guardians of $n students in $((n > 20 ? n / 20 : 1)) groups; an email of ${#body} characters"
echo "target: stored in < 2 s with < 150 MiB peak RSS; its dry run in < 1 s"
send=($herald send --as secretary --all-groups --reach guardians --channel email
  --subject "$subject" --body "$body" --json)
/usr/bin/time -f "send --dry-run: %e s wall, %M KiB peak RSS" "${send[@]}" --dry-run \
  | python3 -c 'import json,sys; d=json.load(sys.stdin); print("  {} messages: {}".format(d["messages"], d["counts"]))'
/usr/bin/time -f "send: %e s wall, %M KiB peak RSS" "${send[@]}" \
  | python3 -c 'import json,sys; d=json.load(sys.stdin); print("  batch {}, {} messages".format(d["batch_id"], d["messages"]))'
python3 - "$work/reference.db" "$n" "$subject" "$body" <<'PY'
import sqlite3, sys, time
path, n, subject, body = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
db = sqlite3.connect(path, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous=NORMAL")
ids = db.execute("SELECT id, external_id, email FROM recipients WHERE role = 'guardian'").fetchall()
now = "2026-11-20T07:00:00.000000Z"
start = time.perf_counter()
db.execute("BEGIN IMMEDIATE")
batch = db.execute(
    "INSERT INTO batches (kind, channel, status, audience, subject, body, created_by, created_at, channels)"
    " VALUES ('informational', 'email', 'awaiting_approval', 'bench', ?, ?, 'secretary', ?, 'email')",
    (subject, body, now)).lastrowid
db.executemany(
    "INSERT INTO messages (batch_id, kind, channel, recipient_id, recipient_external_id, address,"
    " subject, body, status, reason, created_at, updated_at)"
    " VALUES (?, 'informational', 'email', ?, ?, ?, ?, ?, 'awaiting_approval', 'awaiting_approval', ?, ?)",
    ((batch, i, x, e, subject, body, now, now) for i, x, e in ids))
db.execute(
    "INSERT INTO message_events (message_id, at, status, reason, actor, note)"
    " SELECT id, ?, status, reason, 'secretary', 'created' FROM messages WHERE batch_id = ?",
    (now, batch))
db.execute("COMMIT")
print(f"reference: Python's sqlite3 inserts {len(ids)} message rows and their events in one "
      f"transaction in {time.perf_counter() - start:.2f} s")
PY
