#!/usr/bin/env bash
# Periodic-rule benchmark: N students (default 20000), each with a guardian, a
# contract and an instalment falling due seven days after the run's day, imported
# into a fresh SQLite database; then `herald rules run` writes one reminder per
# instalment (rendered from a template, judged, in the day's batch), and runs again
# (every occurrence exists: the idempotent path). Prints wall time and peak memory
# beside the target, and checks that the database holds each reminder once.
#
#   bench/rules.sh [N]
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
w("guardianships.csv", ["guardian_id", "student_id"], [[f"g-{i}", f"s-{i}"] for i in range(n)])
w("contracts.csv", ["external_id", "student_id", "number", "status", "consent"], [[f"c-{i}", f"s-{i}", f"UM/{i}", "active", "yes"] for i in range(n)])
w("instalments.csv", ["external_id", "contract_id", "due_date", "amount"], [[f"i-{i}", f"c-{i}", "2026-11-27", "320.00"] for i in range(n)])
PY
export HERALD__DATABASE__URL="sqlite://$work/bench.db" HERALD__TELEMETRY__LEVEL=warn
herald=target/release/herald
$herald operators add bench --role owner >/dev/null
$herald import "$work"/recipients.csv "$work"/guardianships.csv "$work"/contracts.csv \
  "$work"/instalments.csv --as bench >/dev/null
$herald templates add reminder --subject 'Rata {{ instalment.amount | money }}' \
  --body 'Dzień dobry {{ recipient.first_name }}, termin raty za {{ student.first_name }}: {{ instalment.due_date }}.' \
  --as bench >/dev/null
export HERALD__RULES__INSTALMENT_DUE__ENABLED=true HERALD__RULES__INSTALMENT_DUE__TEMPLATE=reminder
echo "$n students, $n instalments due on 2026-11-27"
for pass in first again; do
  /usr/bin/time -o "$work/time.$pass" -f "%e %M" \
    $herald rules run --rule instalment_due --at 2026-11-20T07:00 --as bench
done
# The figures beside the target, and what the database holds after both runs (each
# reminder once, with its "created" event).
python3 - "$work" "$n" <<'PY'
import os, sqlite3, sys
work, n = sys.argv[1], int(sys.argv[2])
def timed(p):
    wall, kib = open(os.path.join(work, "time." + p)).read().split()[-2:]
    return float(wall), int(kib) / 1024
(first, first_mib), (again, again_mib) = timed("first"), timed("again")
db = sqlite3.connect(os.path.join(work, "bench.db"))
one = lambda sql: db.execute(sql).fetchone()[0]
occurrences = one("SELECT count(*) FROM occurrences")
messages = one("SELECT count(*) FROM messages WHERE kind = 'periodic'")
events = one("SELECT count(*) FROM message_events e JOIN messages m ON m.id = e.message_id "
             "WHERE m.kind = 'periodic'")
batches = one("SELECT count(*) FROM batches WHERE kind = 'periodic'")
print(f"{n:,} reminders in {first:.2f} s (target for 20,000: < 3 s), "
      f"{n / first:,.0f} reminders/s, {first_mib:.0f} MiB peak RSS")
print(f"again, every occurrence existing: {again:.2f} s, {again_mib:.0f} MiB peak RSS")
print(f"in the database: {occurrences:,} occurrences, {messages:,} reminders, "
      f"{events:,} events, {batches} batch(es)")
if (occurrences, messages, events, batches) != (n, n, n, 1):
    sys.exit("not each reminder once, with its event, in one batch")
PY
