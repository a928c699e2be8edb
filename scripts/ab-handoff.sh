#!/usr/bin/env bash
# ab-handoff.sh OLD_BIN NEW_BIN [--rounds N] [--duration 3s] [--keepalive] [--perf] [--out DIR]
#
# Two builds of `handoff --pass socket` side by side, in the same run: rounds
# of OLD then NEW, the order swapped every other round (A B, B A, A B, ...),
# each a `loadgen --new-conn --connections 20` run (or keep-alive with
# --keepalive) watching the master. Prints, per build, the median and the
# range over the rounds of: the master's CPU per 1,000 requests, the whole
# tree's, the master's share of the tree, and requests/s. CPU time per request
# keeps its meaning on a machine shared with other work; requests/s does not.
# The runs' JSON stay in DIR/runs (default: a new temporary directory).
#
# --perf: also count the master's syscalls and context switches during each
# run (`perf stat -p MASTER`, the syscalls:sys_enter_* tracepoints; needs perf
# and the right to trace) and print them per request. Unlike `strace -c`,
# which slows the master until it is the bottleneck, this leaves its pace
# alone. With --perf loadgen runs with --warmup 0s, so that the counts and
# the requests cover the same time.
#
# LOADGEN names the loadgen binary (default: this tree's target/release/loadgen).
set -euo pipefail

usage() {
  echo "ab-handoff.sh: error: $1" >&2
  echo "usage: ab-handoff.sh OLD_BIN NEW_BIN [--rounds N] [--duration 3s] [--keepalive] [--perf] [--out DIR]" >&2
  exit 2
}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=lib.sh
source "$root/scripts/lib.sh"

[[ $# -ge 2 ]] || usage "two binaries needed"
old=$1 new=$2
shift 2
rounds=5 duration=3s load=newconn out= perf= load_flags=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --rounds) rounds=${2:-}; shift 2 ;;
    --duration) duration=${2:-}; shift 2 ;;
    --keepalive) load=keepalive; shift ;;
    --perf) perf=1; load_flags+=(--warmup 0s); shift ;;
    --out) out=${2:-}; shift 2 ;;
    *) usage "unknown argument $1" ;;
  esac
done
[[ -x $old && -x $new ]] || usage "OLD_BIN and NEW_BIN must be executables"
# start_server (lib.sh) runs SERVER_BIN_DIR/handoff: each build is named by its folder.
[[ ${old##*/} == handoff && ${new##*/} == handoff ]] || usage "OLD_BIN and NEW_BIN must be \`handoff\` binaries (e.g. OLD/target/release/handoff)"
[[ $rounds =~ ^[1-9][0-9]*$ ]] || usage "--rounds takes a positive number"
loadgen=${LOADGEN:-$root/target/release/loadgen}
[[ -x $loadgen ]] || usage "no loadgen at $loadgen (set LOADGEN)"
out=${out:-$(mktemp -d)}
mkdir -p "$out/runs"

perf_events=syscalls:sys_enter_accept4,syscalls:sys_enter_sendmsg,syscalls:sys_enter_recvmsg
perf_events+=,syscalls:sys_enter_close,syscalls:sys_enter_epoll_wait,context-switches
[[ $load == newconn ]] && load_flags+=(--new-conn)
master=
stop() { [[ -n $master ]] && kill -TERM "$master" 2>/dev/null && wait "$master" 2>/dev/null; master=; }
trap stop EXIT

run_one() {
  local name=$1 bin=$2 round=$3
  SERVER_BIN_DIR=$(dirname "$bin") start_server handoff-socket 2 "$out"
  local counter=
  if [[ -n $perf ]]; then
    perf stat -x, -o "$out/runs/$name-$round.perf" -p "$master" -e "$perf_events" &
    counter=$!
  fi
  "$loadgen" --target "http://127.0.0.1:$port/" "${load_flags[@]}" --connections 20 \
    --duration "$duration" --watch "$master" --json "$out/runs/$name-$round.json" >/dev/null
  if [[ -n $counter ]]; then
    kill -INT "$counter"
    wait "$counter" || true
  fi
  stop
  echo "[round $round] $name done" >&2
}

for ((round = 1; round <= rounds; round++)); do
  if ((round % 2)); then
    run_one old "$old" "$round"
    run_one new "$new" "$round"
  else
    run_one new "$new" "$round"
    run_one old "$old" "$round"
  fi
done

python3 - "$out/runs" "$load" <<'PY'
import json, pathlib, statistics, sys
runs, load = pathlib.Path(sys.argv[1]), sys.argv[2]
print(f"load: {load}; runs in {runs}")
rows = {}
for name in ("old", "new"):
    vals = {"master ms/1k": [], "tree ms/1k": [], "master % of tree": [], "requests/s": []}
    for f in sorted(runs.glob(f"{name}-*.json")):
        r = json.loads(f.read_text())
        w = r["watch"][0]
        master = next(p for p in w["processes"] if p["role"] == "watched")["summary"]
        m, t = master["cpu_ms_per_1000_requests"], w["summary"]["cpu_ms_per_1000_requests"]
        vals["master ms/1k"].append(m)
        vals["tree ms/1k"].append(t)
        vals["master % of tree"].append(100 * m / t)
        vals["requests/s"].append(r["requests"]["per_s"])
        # The counts cover the whole run, which has no warm-up with --perf.
        counts = f.with_suffix(".perf")
        if counts.exists():
            requests = r["requests"]["ok"] + r["requests"]["failed"]
            for line in counts.read_text().splitlines():
                fields = line.split(",")
                if len(fields) > 2 and fields[0].isdigit():
                    event = fields[2].replace("syscalls:sys_enter_", "") + " /req"
                    vals.setdefault(event, []).append(int(fields[0]) / requests)
    rows[name] = vals
for key in rows["old"]:
    line = [f"{key:>17}"]
    for name in ("old", "new"):
        v = rows[name].get(key) or [float("nan")]
        line.append(f"{name} {statistics.median(v):8.2f} [{min(v):.2f}–{max(v):.2f}]")
    print("  ".join(line))
om, nm = (statistics.median(rows[n]["master ms/1k"]) for n in ("old", "new"))
if om > 0:
    print(f"master CPU per request, new/old (medians): {nm / om:.2f}")
PY
