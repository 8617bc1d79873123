#!/usr/bin/env bash
# Dispatch benchmark (issue 17): how fast `herald dispatch --once` empties a queue of
# informational emails into Postfix's smtp-sink on loopback, beside what Postfix's own
# smtp-source pushes into the same sink in the same run (the wire's limit on this
# machine). bench/dispatch_bench.py does the work and says what each part checks.
#
#   bench/dispatch.sh [N]                  N emails (default 100000), 1 KiB, 20 SMTP
#                                          connections, SQLite: rate, ratio to
#                                          smtp-source, peak RSS, every message recorded
#   bench/dispatch.sh --scale [SMALL LARGE]  the same at 10000 and 100000 queued (or
#                                          SMALL and LARGE): both rates and their ratio
#   bench/dispatch.sh --system-latency [N] `herald run` drains N emails while 100 system
#                                          messages are created through the HTTP API;
#                                          p50/p99/max until each reaches the sink
#   bench/dispatch.sh --postgres URL [N]   PostgreSQL: one `dispatch --once`, then three
#                                          at once on one database (URL: a role that may
#                                          create databases; a fresh one is made and dropped)
#   bench/dispatch.sh --sms [N]            N SMS (default 20000) through a signed webhook
#                                          gateway on loopback, then through the file
#                                          gateway; the wallet checked to the point
#   bench/dispatch.sh --all [--postgres URL]  all of the above with their defaults
#
# Options for every part: --no-build (use target/release/herald as it is),
# --herald BIN, --keep (keep the work folder), --connections C (default 20),
# --runs R (throughput: R runs of smtp-source and of Herald on the same queue, the
# medians judged; default 3).
#
# Postfix's smtp-sink and smtp-source come from Debian's postfix package, downloaded
# (`apt-get download`, no mail server installed) and unpacked once into
# ${XDG_CACHE_HOME:-~/.cache}/herald-bench (HERALD_BENCH_CACHE overrides it).
set -euo pipefail
cd "$(dirname "$0")/.."

build=yes
herald=target/release/herald
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) build=no ;;
    --herald) herald=$2; build=no; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$1") ;;
  esac
  shift
done

if [ "$build" = yes ]; then
  cargo build --release --quiet --bin herald
fi
[ -x "$herald" ] || { echo "no Herald binary at $herald" >&2; exit 1; }

# --- Postfix's test tools, without a mail server -------------------------------------
cache=${HERALD_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/herald-bench}
postfix=$cache/postfix
if [ ! -x "$postfix/usr/sbin/smtp-sink" ] || [ ! -x "$postfix/usr/sbin/smtp-source" ]; then
  echo "fetching Postfix's smtp-sink and smtp-source (apt-get download postfix) into $cache"
  mkdir -p "$cache"
  fetch=$(mktemp -d "$cache/fetch.XXXXXX")
  # apt's sandbox user cannot write into a folder of ours: let it (it only warns otherwise).
  chmod 0777 "$fetch"
  if ! (cd "$fetch" && apt-get download -q postfix >/dev/null 2>&1); then
    echo "apt-get download postfix failed: updating the package lists and trying again"
    if [ "$(id -u)" -eq 0 ]; then apt-get update -qq; else sudo apt-get update -qq; fi
    (cd "$fetch" && apt-get download -q postfix >/dev/null)
  fi
  rm -rf "$postfix"
  dpkg -x "$fetch"/postfix_*.deb "$postfix"
  rm -rf "$fetch"
fi
export LD_LIBRARY_PATH="$postfix/usr/lib/postfix${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
for tool in smtp-sink smtp-source; do
  if ldd "$postfix/usr/sbin/$tool" | grep -q 'not found'; then
    echo "$tool is missing shared libraries:" >&2
    ldd "$postfix/usr/sbin/$tool" | grep 'not found' >&2
    exit 1
  fi
done

exec python3 bench/dispatch_bench.py --herald "$herald" --postfix "$postfix" "${args[@]}"
