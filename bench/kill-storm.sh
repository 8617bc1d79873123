#!/usr/bin/env bash
# The kill storm: N emails and N SMS, with `herald run` killed (SIGKILL) K times at
# random moments while they go, then drained and counted (bench/kill_storm.py says
# how). Four runs: SQLite with one instance and PostgreSQL with three (a random one
# killed each time), each through an SMSAPI-like gateway (idempotency by idx) and a
# Twilio-like one (none). Fails when anything is lost, an SMS went twice, more
# emails went twice than were in flight at the kills, or the wallet does not add up.
#
#   bench/kill-storm.sh [N] [K]   the full storm: release build, N=2000, K=20
#   bench/kill-storm.sh --short   a few hundred messages and three kills, on the debug
#                                 build `cargo test` made (what .ci/run runs)
#
# PostgreSQL: HERALD_TEST_POSTGRES (a URL of a role that may create databases), by
# default postgres://postgres@127.0.0.1:5432/postgres.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--short" ]; then
  n=200 k=3
  cargo build --quiet --bin herald
  bin=target/debug/herald
else
  n=${1:-2000} k=${2:-20}
  cargo build --release --quiet --bin herald
  bin=target/release/herald
fi
export HERALD_STORM_POSTGRES="${HERALD_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}"
status=0
for run in "sqlite 1 smsapi" "sqlite 1 twilio" "postgres 3 smsapi" "postgres 3 twilio"; do
  set -- $run
  python3 bench/kill_storm.py --herald "$bin" --backend "$1" --instances "$2" \
    --gateway "$3" --messages "$n" --kills "$k" || status=1
done
exit $status
