#!/usr/bin/env bash
# Import benchmark: generates a directory of N students (default 20000), each with one
# guardian, a guardianship, a group membership and a contract, imports it into a fresh
# SQLite database with the release build, then imports it again (the idempotent path),
# and prints wall time and peak memory of each run.
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
rows=$(cat "$work"/*.csv | wc -l)
echo "rows: $((rows - 5)) in 5 files ($n students)"
env HERALD__DATABASE__URL="sqlite://$work/bench.db" HERALD__TELEMETRY__LEVEL=warn \
  target/release/herald operators add bench --role owner >/dev/null
for pass in first again; do
  /usr/bin/time -f "import ($pass): %e s wall, %M KiB peak RSS" \
    env HERALD__DATABASE__URL="sqlite://$work/bench.db" HERALD__TELEMETRY__LEVEL=warn \
    target/release/herald import "$work"/recipients.csv "$work"/groups.csv \
      "$work"/guardianships.csv "$work"/memberships.csv "$work"/contracts.csv --as bench >/dev/null
done
/usr/bin/time -f "recipients --json: %e s wall, %M KiB peak RSS" \
  env HERALD__DATABASE__URL="sqlite://$work/bench.db" target/release/herald recipients --json >/dev/null
