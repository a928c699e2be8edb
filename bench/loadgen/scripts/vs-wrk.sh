#!/usr/bin/env bash
# loadgen against wrk, side by side on the same target: one worker's own port
# (the first worker of `proxy --workers 2`), 50 connections, 2 threads each,
# keep-alive and then a new connection per request (wrk with
# `-H 'Connection: close'`, loadgen with --new-conn). Runs are interleaved
# (wrk, loadgen, wrk, loadgen, ...) so that a noisy machine hurts both alike;
# prints every run and the medians.
#
# usage: bench/loadgen/scripts/vs-wrk.sh [--rounds K] [--duration S] [--loads "keepalive close"]
# needs: wrk, python3; builds proxy and loadgen in release mode
set -euo pipefail
rounds=3 duration=5
loads=(keepalive close)
while (($#)); do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --loads) read -ra loads <<<"$2"; shift 2 ;;
    *) echo "usage: $0 [--rounds K] [--duration S] [--loads LIST]" >&2; exit 2 ;;
  esac
done
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 2; }
root=$(cd "$(dirname "$0")/../../.." && pwd)
bin=$root/target/release
source "$root/scripts/lib.sh"
(cd "$root" && cargo build --release --quiet -p proxy -p loadgen --bin proxy --bin loadgen)
tmp=$(mktemp -d)
master=
cleanup() { [[ -n $master ]] && kill "$master" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

start_server ceiling 2 "$tmp"
url=http://127.0.0.1:$port/

echo "# $(date -u +%FT%TZ) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r)"
echo "# target $url (one worker's own port); 50 connections, 2 threads, ${duration}s per run, $rounds rounds"
for ((r = 1; r <= rounds; r++)); do
  for load in "${loads[@]}"; do
    if [[ $load == close ]]; then wrk_extra=(-H 'Connection: close'); lg_extra=(--new-conn); else wrk_extra=(); lg_extra=(); fi
    rps=$(wrk -t2 -c50 -d"${duration}s" "${wrk_extra[@]}" "$url" | awk '/^Requests\/sec/ {print $2}')
    echo "$r $load wrk $rps" | tee -a "$tmp/rows" >&2
    "$bin/loadgen" --target "$url" --connections 50 --threads 2 --duration "${duration}s" --warmup 0 \
      "${lg_extra[@]}" --json "$tmp/lg.json" >/dev/null
    rps=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["requests"]["per_s"])' "$tmp/lg.json")
    echo "$r $load loadgen $rps" | tee -a "$tmp/rows" >&2
  done
done
python3 - "$tmp/rows" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1])]
for load in dict.fromkeys(r[1] for r in rows):
    med = {}
    for tool in ("wrk", "loadgen"):
        rps = [float(r[3]) for r in rows if r[1] == load and r[2] == tool]
        med[tool] = statistics.median(rps)
        print(f"{load:9} {tool:8} median {med[tool]:9.0f} requests/s  (runs: {', '.join(f'{x:.0f}' for x in rps)})")
    print(f"{load:9} loadgen/wrk {med['loadgen'] / med['wrk']:.2f}")
PY
