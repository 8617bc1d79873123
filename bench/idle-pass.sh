#!/usr/bin/env bash
# Idle-pass benchmark: how long a dispatch pass takes when nothing is due, over a
# SQLite database holding N messages of history (default 1,000,000: sent, failed,
# unknown and expired messages with their attempts and events, plus messages queued
# for tomorrow), beside the same pass over an empty database in the same run. A pass
# must read indexes, never the history, so the two should be alike (target < 10 ms).
#
# Measured twice per database: `herald dispatch --once` (a fresh process: statements
# prepared and pages read for the first time) and `herald run` for a while with a
# pass every second (the daemon's own pass-duration histogram, read from /metrics).
#
#   bench/idle-pass.sh [N] [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."
n=1000000
build=yes
for arg in "$@"; do
  case $arg in
    --no-build) build=no ;;
    *) n=$arg ;;
  esac
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
[ "$build" = yes ] && cargo build --release --quiet
herald=$PWD/target/release/herald
echo "== idle pass, SQLite, release build ($(nproc) cores, load average $(cut -d' ' -f1 /proc/loadavg))"
for size in 0 "$n"; do
  db="$work/history-$size.db"
  export HERALD__DATABASE__URL="sqlite://$db" HERALD__TELEMETRY__LEVEL=warn
  "$herald" operators add bench --role owner >/dev/null
  started=$(date +%s.%N)
  python3 bench/idle_pass.py seed "$db" "$size"
  echo "  $size messages of history written in $(echo "$(date +%s.%N) - $started" | bc | xargs printf '%.1f') s ($(du -h "$db" | cut -f1))"
  runs=()
  for _ in 1 2 3 4 5; do
    runs+=("$("$herald" dispatch --once | sed -n 's/^Dispatch pass in \([0-9.]*\) ms.*/\1/p')")
  done
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  HERALD__HTTP__LISTEN="" HERALD__HTTP__METRICS_LISTEN="127.0.0.1:$port" \
    HERALD__DISPATCH__SCHEDULE="* * * * * *" "$herald" run >"$work/run.log" 2>&1 &
  daemon=$!
  sleep 12
  daemon_mean=$(python3 bench/idle_pass.py scrape "$port")
  kill -TERM "$daemon"
  wait "$daemon" || true
  printf '  %9s messages: dispatch --once %s ms (5 runs); herald run: %s\n' \
    "$size" "${runs[*]}" "$daemon_mean"
done
echo "  target: < 10 ms over 1,000,000 messages; the empty database is the reference"
