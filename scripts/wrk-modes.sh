#!/usr/bin/env bash
# Requests/s of every cluster mode under wrk, measured side by side: each round
# runs every mode once (A B C D E, A B C D E, ...), so the ratios between modes
# hold on a noisy machine. Prints a table of medians and each mode's ratio to
# the ceiling (one worker's own port, reached directly), plus the master's CPU.
#
# usage: scripts/wrk-modes.sh [--rounds K] [--duration S] [--workers N]
#                             [--modes "ceiling proxy ..."] [--loads "keepalive close"]
# Modes: ceiling proxy handoff-socket handoff-listener handoff-reuseport, and the
# Node.js cluster peers node-rr and node-none (scripts/peers/node-cluster.js).
# needs: wrk (installed with apt-get when missing and run as root); builds in release mode
set -euo pipefail
rounds=3 duration=5 workers=2
modes=(ceiling proxy handoff-socket handoff-listener handoff-reuseport)
loads=(keepalive close)
while (($#)); do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --modes) read -ra modes <<<"$2"; shift 2 ;;
    --loads) read -ra loads <<<"$2"; shift 2 ;;
    *) echo "usage: $0 [--rounds K] [--duration S] [--workers N] [--modes LIST] [--loads LIST]" >&2; exit 2 ;;
  esac
done
if ! command -v wrk >/dev/null && [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
  echo "installing wrk (apt-get install wrk)" >&2
  apt-get update -qq >&2 && apt-get install -y -qq wrk >&2
fi
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/lib.sh"
(cd "$root" && cargo build --release --quiet -p proxy -p handoff --bin proxy --bin handoff)
tmp=$(mktemp -d)
master=
cleanup() { [[ -n $master ]] && kill "$master" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

# start MODE: starts a cluster (scripts/lib.sh), sets $master and $port (the
# public port; for the ceiling, the first worker's own port of a proxy cluster).
start() { start_server "$1" "$workers" "$tmp"; }

stop() { kill -TERM "$master"; wait "$master" || true; master=; }

# CPU seconds (user+system) used so far by a pid, from /proc/PID/stat.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); print ($12 + $13) / hz }' "/proc/$1/stat"; }

echo "# $(date -u +%FT%TZ) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r)"
echo "# wrk -t2 -c50 -d${duration}s, $workers workers, $rounds rounds"
for ((r = 1; r <= rounds; r++)); do
  for load in "${loads[@]}"; do
    for mode in "${modes[@]}"; do
      start "$mode"
      extra=(); [[ $load == close ]] && extra=(-H 'Connection: close')
      c0=$(cpu "$master")
      rps=$(wrk -t2 -c50 -d"${duration}s" "${extra[@]}" "http://127.0.0.1:$port/" | awk '/^Requests\/sec/ {print $2}')
      c1=$(cpu "$master")
      stop
      echo "$r $load $mode $rps $(python3 -c "print(round(($c1 - $c0) / $duration, 3))")" | tee -a "$tmp/rows" >&2
    done
  done
done
python3 - "$tmp/rows" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1])]
loads = list(dict.fromkeys(r[1] for r in rows))
modes = list(dict.fromkeys(r[2] for r in rows))
for load in loads:
    base = modes[0]
    ceiling = statistics.median(float(r[3]) for r in rows if r[1] == load and r[2] == base)
    print(f"\n{load}: median requests/s (min-max), ratio to {base}, master CPU (cores)")
    for mode in modes:
        rps = [float(r[3]) for r in rows if r[1] == load and r[2] == mode]
        cpu = [float(r[4]) for r in rows if r[1] == load and r[2] == mode]
        m = statistics.median(rps)
        print(f"  {mode:18} {m:9.0f} ({min(rps):.0f}-{max(rps):.0f})  {m / ceiling:5.2f}x  {statistics.median(cpu):.2f}")
PY
