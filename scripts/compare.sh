#!/usr/bin/env bash
# The suite's main job: runs every way of sharing one port under the same loads,
# measured by loadgen, and writes a report people learn from.
#
#   scripts/compare.sh [--quick] [--out DIR] [--workers N] [--repeats K] [--peers|--no-peers]
#
# --quick      fewer, shorter runs (every section still present), ~90 s after the build
# --out DIR    where to write (default results/<date>-<host>/): REPORT.md, SVG charts,
#              runs/*.json (every loadgen report) and README.md (how to reproduce)
# --workers N  workers per cluster (default 2)
# --repeats K  rounds of the throughput matrix, modes interleaved A B C D A B C D
#              so that ratios hold on a noisy machine (default 3; 1 with --quick)
# --peers      measure nginx (stream proxy) and Node.js cluster too; on by default
#              when they are installed, skipped with a line saying how otherwise
#
# The script only orchestrates: clusters, loads and the report renderer are the
# project's binaries (proxy, handoff, loadgen); see README.md.
set -euo pipefail

quick=0 out= workers=2 repeats= peers=auto
while (($#)); do
  case $1 in
    --quick) quick=1; shift ;;
    --out) out=${2:?--out needs a folder}; shift 2 ;;
    --workers) workers=${2:?--workers needs a number}; shift 2 ;;
    --repeats) repeats=${2:?--repeats needs a number}; shift 2 ;;
    --peers) peers=yes; shift ;;
    --no-peers) peers=no; shift ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "compare.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $workers =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: --workers must be a positive integer" >&2; exit 2; }
[[ -z $repeats || $repeats =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: --repeats must be a positive integer" >&2; exit 2; }

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source "$root/scripts/lib.sh"
if ((quick)); then
  : "${repeats:=1}"
  duration=500ms warmup=200ms           # per throughput run
  held=(100 500)                          # fd bill: connections held open
  limit_steps=(50 150 300)                # fd limit: rising connections
  works=(200)                             # fairness: ?work_us=
  fault_duration=2s fault_at=700ms
else
  : "${repeats:=3}"
  duration=2s warmup=500ms
  held=(100 500 1000 2000)
  limit_steps=(50 100 150 200 300 400)
  works=(0 200)
  fault_duration=4s fault_at=1500ms
fi
max_fds=256

echo "building (cargo build --release)" >&2
cargo build --release --quiet -p proxy -p handoff -p loadgen --bin proxy --bin handoff --bin loadgen
bin=$root/target/release

out=${out:-$root/results/$(date -u +%Y-%m-%d)-$(hostname -s)}
mkdir -p "$out/runs"
rm -f "$out"/runs/*.json
commands=$out/commands.sh
export SERVER_COMMANDS=$commands
echo "# every command compare.sh ran, in order (cluster starts, loads, the report)" >"$commands"
tmp=$(mktemp -d)

# --- peers: which are here --------------------------------------------------
nginx_module=/usr/lib/nginx/modules/ngx_stream_module.so
have_nginx=0 have_node=0
if [[ $peers != no ]]; then
  command -v nginx >/dev/null && [[ -f $nginx_module ]] && have_nginx=1
  command -v node >/dev/null && have_node=1
fi
peer_modes=()
((have_nginx)) && peer_modes+=(nginx)
((have_node)) && peer_modes+=(node-rr node-none)
if [[ $peers == yes ]] && ((!have_nginx || !have_node)); then
  echo "compare.sh: --peers asked, but nginx with its stream module or node is missing" >&2
  echo "  install: apt-get install nginx libnginx-mod-stream; Node.js 20" >&2
  exit 2
fi
((have_nginx)) || [[ $peers == no ]] || echo "peers: nginx skipped (apt-get install nginx libnginx-mod-stream)" >&2
((have_node)) || [[ $peers == no ]] || echo "peers: Node.js skipped (install Node.js 20)" >&2

# --- clusters ---------------------------------------------------------------
# start MODE [FLAGS...]: starts a server (start_server in scripts/lib.sh, or
# nginx in front of a proxy cluster's workers); sets $master (the pid loadgen
# watches), $port (what loadgen loads), $first_worker (a worker pid, for the
# fault experiment), and $pids (every process to stop, master first).
pids=()
start() {
  local mode=$1; shift
  local as=$mode
  [[ $mode == nginx ]] && as=proxy
  start_server "$as" "$workers" "$tmp" "$@"
  pids=("$master")
  [[ $mode == nginx ]] && start_nginx "$worker_ports"
  return 0
}

# run_bg FILE CMD...: CMD in the background, stdout to FILE, stderr to the log.
run_bg() {
  local file=$1; shift
  echo "$*" >>"$commands"
  "$@" >"$file" 2>>"$tmp/log" &
  bg_pid=$!
}

# nginx's stream proxy in front of the proxy cluster's workers, one process
# (master_process off), like our single-threaded master.
start_nginx() {
  local upstreams="" p
  for p in ${1//,/ }; do upstreams+="server 127.0.0.1:$p; "; done
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  mkdir -p "$tmp/nginx"
  cat >"$tmp/nginx/nginx.conf" <<EOF
load_module $nginx_module;
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 20000;
pid $tmp/nginx/nginx.pid;
error_log stderr error;
events { worker_connections 10000; }
stream {
  upstream workers { $upstreams }
  server { listen 127.0.0.1:$port; proxy_pass workers; }
}
EOF
  run_bg /dev/null nginx -c "$tmp/nginx/nginx.conf" -p "$tmp/nginx"
  local nginx_pid=$bg_pid i
  for ((i = 0; i < 100; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
  done
  pids=("$nginx_pid" "${pids[@]}")
  master=$nginx_pid
}

stop() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
cleanup() { stop; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- loads ------------------------------------------------------------------
step=0
# load NAME LABELS -- LOADGEN-ARGS...: one loadgen run against $port, watching
# $master, its JSON in runs/NAME.json with LABELS (k=v ...). The keys and values
# are the contract with the renderer, bench/loadgen/src/report/labels.rs: loadgen
# refuses any other.
load() {
  local name=$1 labels=() l; shift
  while [[ $1 != -- ]]; do labels+=(--label "$1"); shift; done
  shift
  step=$((step + 1))
  printf '[%3d] %s\n' "$step" "$name" >&2
  local cmd=("$bin/loadgen" --target "http://127.0.0.1:$port${path:-/}" --watch "$master"
    "${labels[@]}" --label workers="$workers" --json "$out/runs/$name.json" "$@")
  echo "${cmd[*]}" >>"$commands"
  "${cmd[@]}" >>"$tmp/loadgen.log" 2>&1 || { echo "compare.sh: loadgen failed for $name:" >&2; tail -3 "$tmp/loadgen.log" >&2; exit 1; }
}

modes=(ceiling proxy handoff-socket handoff-listener handoff-reuseport "${peer_modes[@]}")
cluster_modes=(proxy handoff-socket handoff-listener handoff-reuseport)

# 1. Throughput and latency, closed loop: keep-alive and a new connection per request.
for ((r = 1; r <= repeats; r++)); do
  for mode in "${modes[@]}"; do
    start "$mode"
    load "throughput-$mode-keepalive-r$r" section=throughput mode="$mode" load=keepalive round="$r" -- \
      --connections 50 --duration "$duration" --warmup "$warmup"
    load "throughput-$mode-newconn-r$r" section=throughput mode="$mode" load=newconn round="$r" -- \
      --connections 50 --duration "$duration" --warmup "$warmup" --new-conn
    stop
  done
done

# Open loop at one rate every mode can hold: half the slowest mode's keep-alive capacity.
rate=$(python3 - "$out/runs" <<'PY'
import json, sys, glob, statistics, collections
per_mode = collections.defaultdict(list)
for f in glob.glob(sys.argv[1] + "/throughput-*-keepalive-*.json"):
    r = json.load(open(f))
    per_mode[r["labels"]["mode"]].append(r["requests"]["per_s"])
print(max(100, int(min(statistics.median(v) for v in per_mode.values()) / 2)))
PY
)
echo "open loop at $rate requests/s (half the slowest mode's keep-alive capacity)" >&2
for ((r = 1; r <= repeats; r++)); do
  for mode in "${modes[@]}"; do
    start "$mode"
    load "throughput-$mode-openloop-r$r" section=throughput mode="$mode" load=openloop round="$r" -- \
      --connections 50 --duration "$duration" --warmup "$warmup" --rate "$rate"
    stop
  done
done

# 2. The fd bill: connections held open (keep-alive, one request a second each).
for mode in "${cluster_modes[@]}"; do
  start "$mode"
  for n in "${held[@]}"; do
    load "fdbill-$mode-$n" section=fdbill mode="$mode" connections="$n" -- \
      --connections "$n" --rate "$n" --duration 1s --warmup 500ms
  done
  stop
done

# 3. The fd limit: the master started with --max-fds, connections rising.
for mode in "${cluster_modes[@]}"; do
  start "$mode" --max-fds "$max_fds"
  for n in "${limit_steps[@]}"; do
    # No warm-up: a client left waiting in the accept queue must time out
    # inside the measured window, where it counts.
    load "fdlimit-$mode-$n" section=fdlimit mode="$mode" connections="$n" max_fds="$max_fds" -- \
      --connections "$n" --duration 1500ms --warmup 0 --timeout 1s
  done
  stop
done

# 4. Fairness: busy work per request, so an unlucky worker shows in the tail.
for mode in "${cluster_modes[@]}"; do
  start "$mode"
  for w in "${works[@]}"; do
    path="/?work_us=$w"
    load "fairness-$mode-keepalive-w$w" section=fairness mode="$mode" load=keepalive work_us="$w" -- \
      --connections 16 --duration "$duration" --warmup "$warmup"
    load "fairness-$mode-newconn-w$w" section=fairness mode="$mode" load=newconn work_us="$w" -- \
      --connections 16 --duration "$duration" --warmup "$warmup" --new-conn
    path=
  done
  stop
done

# 6. Faults: one worker killed mid-run, 8 clients each making a new connection per request.
for mode in "${cluster_modes[@]}"; do
  start "$mode"
  load "faults-$mode" section=faults mode="$mode" load=newconn -- \
    --connections 8 --duration "$fault_duration" --warmup 200ms --new-conn \
    --kill "$first_worker" --kill-after "$fault_at"
  stop
done

# --- the record and the report ------------------------------------------------
{
  echo "# How this report was made"
  echo
  echo "Run: \`scripts/compare.sh$( ((quick)) && echo ' --quick') --workers $workers --repeats $repeats\`, $(date -u '+%Y-%m-%d %H:%M UTC')."
  echo
  echo "- git revision: $(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)$(git -C "$root" diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "- rustc: $(rustc -V)"
  echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
  echo "- kernel: $(uname -sr)"
  echo "- ulimit -n: $(ulimit -n) (soft), $(ulimit -Hn) (hard)"
  echo "- peers: $( ((have_nginx)) && nginx -v 2>&1 | cut -d/ -f2 | sed 's/^/nginx /' || echo 'nginx not measured')$( ((have_node)) && echo ", Node.js $(node --version)" || echo ', Node.js not measured')"
  echo "- open-loop rate: $rate requests/s"
  echo
  echo "Every command, in order, is in [commands.sh](commands.sh); every loadgen"
  echo "report is in [runs/](runs/). Render again with \`target/release/loadgen report ${out#"$root"/}\`."
} >"$out/README.md"
echo "$bin/loadgen report $out" >>"$commands"
"$bin/loadgen" report "$out"
echo "report: $out/REPORT.md" >&2
