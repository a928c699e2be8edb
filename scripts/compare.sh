#!/usr/bin/env bash
# The suite's main job: runs every way of sharing one port under the same loads,
# measured by loadgen, and writes a report people learn from.
#
#   scripts/compare.sh [--quick] [--out DIR] [--workers N] [--repeats K] [--seed N]
#                      [--loadgen-cpus LIST --server-cpus LIST] [--peers|--no-peers] [--dry-run]
#
# --quick      fewer, shorter runs (every section still present, 1 round, a
#              sweep of 3 rates), ~2 min after the build on 2 cores
# --out DIR    where to write (default results/<date>-<host>/): REPORT.md, SVG charts,
#              runs/*.json (every loadgen report), README.md (the machine, the
#              affinity, the seed: how to reproduce) and commands.log (a log of
#              every command as it ran, with that run's pids and ports)
# --workers N  workers per cluster (default 2)
# --repeats K  rounds of the throughput matrix (§1), every mode once per round,
#              in an order shuffled per round (default 5 of 5 s; 1 with --quick)
# --seed N     the seed of that shuffle (default: the clock); the same seed gives
#              the same order; recorded in README.md
# --loadgen-cpus LIST --server-cpus LIST
#              pin loadgen and the server tree (master, workers, peers) to
#              disjoint CPUs, lists as taskset's (`0`, `0-1`, `2,3`); both or
#              neither. Default: with 4 CPUs or more, loadgen on the lower half
#              and the server on the upper half; with fewer, shared (no pinning,
#              and README.md says so first)
# --peers      measure nginx (stream proxy) and Node.js cluster too; on by default
#              when they are installed, skipped with a line saying how otherwise
# --dry-run    print the plan (affinity, seed, every load in order as [n/total],
#              the sweep's rate rule, an estimate of the total seconds from the
#              planned durations) and exit, building and starting nothing
#
# The script only orchestrates: clusters, loads and the report renderer are the
# project's binaries (proxy, handoff, loadgen); see README.md.
set -euo pipefail

quick=0 out= workers=2 repeats= peers=auto seed= loadgen_cpus= server_cpus= dry_run=0
usage_error() { echo "compare.sh: $*" >&2; exit 2; }
while (($#)); do
  case $1 in
    --quick) quick=1; shift ;;
    --out) out=${2:?--out needs a folder}; shift 2 ;;
    --workers) workers=${2:?--workers needs a number}; shift 2 ;;
    --repeats) repeats=${2:?--repeats needs a number}; shift 2 ;;
    --seed) seed=${2:?--seed needs a number}; shift 2 ;;
    --loadgen-cpus) loadgen_cpus=${2:?--loadgen-cpus needs a CPU list}; shift 2 ;;
    --server-cpus) server_cpus=${2:?--server-cpus needs a CPU list}; shift 2 ;;
    --peers) peers=yes; shift ;;
    --no-peers) peers=no; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) usage_error "unknown argument $1 (see --help)" ;;
  esac
done
[[ $workers =~ ^[1-9][0-9]*$ ]] || usage_error "--workers must be a positive integer"
[[ -z $repeats || $repeats =~ ^[1-9][0-9]*$ ]] || usage_error "--repeats must be a positive integer"
[[ -z $seed || $seed =~ ^[0-9]{1,18}$ ]] || usage_error "--seed must be a non-negative integer"
: "${seed:=$(date +%s)}"

# --- affinity: checked before anything is built or run ----------------------
# cpu_list LIST: the CPUs of a taskset-style list (`0`, `0-3`, `1,3`, `0-1,4`),
# one per line, ascending; fails on anything else.
cpu_list() {
  local item lo hi c items
  [[ $1 =~ ^[0-9]{1,5}(-[0-9]{1,5})?(,[0-9]{1,5}(-[0-9]{1,5})?)*$ ]] || return 1
  IFS=, read -ra items <<<"$1"
  for item in "${items[@]}"; do
    lo=$((10#${item%-*})) hi=$((10#${item#*-}))
    ((lo <= hi)) || return 1
    for ((c = lo; c <= hi; c++)); do echo "$c"; done
  done | sort -nu
}
# The CPUs this script may run on (its own affinity, which its children inherit).
mapfile -t machine_cpus < <(cpu_list "$(awk '/^Cpus_allowed_list:/ { print $2 }' /proc/$$/status)")
if [[ -n $loadgen_cpus || -n $server_cpus ]]; then
  [[ -n $loadgen_cpus && -n $server_cpus ]] || usage_error "--loadgen-cpus and --server-cpus go together: give both or neither"
  for flag in loadgen server; do
    list_var=${flag}_cpus
    mapfile -t cpus < <(cpu_list "${!list_var}" || echo bad)
    [[ ${cpus[*]} != *bad* ]] || usage_error "--$flag-cpus ${!list_var} is not a CPU list like 0, 0-1 or 2,3"
    for c in "${cpus[@]}"; do
      [[ " ${machine_cpus[*]} " == *" $c "* ]] || usage_error "--$flag-cpus ${!list_var}: this machine has no CPU $c for us (ours: ${machine_cpus[*]})"
    done
    declare -a "${flag}_set=(${cpus[*]})"
  done
  for c in "${loadgen_set[@]}"; do
    [[ " ${server_set[*]} " != *" $c "* ]] || usage_error "--loadgen-cpus $loadgen_cpus and --server-cpus $server_cpus overlap (CPU $c)"
  done
  affinity_origin="given: \`--loadgen-cpus $loadgen_cpus --server-cpus $server_cpus\`"
elif ((${#machine_cpus[@]} >= 4)); then
  half=$((${#machine_cpus[@]} / 2))
  loadgen_cpus=$(IFS=,; echo "${machine_cpus[*]:0:half}")
  server_cpus=$(IFS=,; echo "${machine_cpus[*]:half}")
  affinity_origin="the default with ${#machine_cpus[@]} CPUs: the lower half for loadgen, the upper half for the server"
fi
if [[ -n $loadgen_cpus ]]; then
  command -v taskset >/dev/null || usage_error "pinning needs taskset (util-linux), which is not installed"
  affinity="CPUs pinned: loadgen on CPUs $loadgen_cpus, the server tree on CPUs $server_cpus ($affinity_origin)"
  loadgen_pin=(taskset -c "$loadgen_cpus")
else
  affinity="CPUs shared: loadgen and the server ran on the same ${#machine_cpus[@]} CPUs ($(IFS=,; echo "${machine_cpus[*]}"); no pinning by default with fewer than 4), so every figure at saturation includes loadgen's own CPU"
  loadgen_pin=()
fi
export SERVER_CPUS=$server_cpus

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source "$root/scripts/lib.sh"
# The sweep (§1b): sweep_timeout is how long a request may take before it
# counts as failed (far past any objective the report reads), and the most a
# step past capacity drains after its window.
if ((quick)); then
  : "${repeats:=1}"
  round_duration=500ms round_warmup=200ms # §1: per throughput run
  sweep_steps=3 sweep_duration=300ms sweep_warmup=100ms sweep_timeout=500ms
  duration=500ms warmup=200ms           # §4: per fairness run
  held=(100 500)                          # fd bill: connections held open
  limit_steps=(50 150 300)                # fd limit: rising connections
  fault_duration=2s fault_at=700ms
  # §4 fairness: 1 round, 4 workers, short loads (~15 s)
  fairness_rounds=1 fairness_workers=(4) fairness_rate=300
  fairness_duration=300ms fairness_warmup=100ms fairness_burst=200ms
  stall_ms=250 stall_at=(100ms 500ms) stall_duration=900ms
else
  : "${repeats:=5}"
  round_duration=5s round_warmup=500ms
  sweep_steps=6 sweep_duration=1500ms sweep_warmup=500ms sweep_timeout=1s
  duration=2s warmup=500ms
  held=(100 500 1000 2000)
  limit_steps=(50 100 150 200 300 400)
  fault_duration=4s fault_at=1500ms
  # §4 fairness: 2 rounds, 4 and 8 workers (~3 min)
  fairness_rounds=2 fairness_workers=(4 8) fairness_rate=400
  fairness_duration=1500ms fairness_warmup=300ms fairness_burst=1s
  stall_ms=500 stall_at=(500ms 1500ms) stall_duration=2500ms
fi
max_fds=256

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

# `direct` is the baseline: clients straight to every worker's own port, no
# master in between, what a perfect way of sharing a port would cost.
modes=(direct proxy handoff-socket handoff-listener handoff-reuseport "${peer_modes[@]}")
cluster_modes=(proxy handoff-socket handoff-listener handoff-reuseport)

# The order of the modes in every round of the throughput matrix, one round a
# line, shuffled per round by Python's random.Random(seed): the same seed gives
# the same order.
mapfile -t round_orders < <(python3 - "$seed" "$repeats" "${modes[@]}" <<'PY'
import random, sys
rng = random.Random(int(sys.argv[1]))
modes = sys.argv[3:]
for _ in range(int(sys.argv[2])):
    order = modes[:]
    rng.shuffle(order)
    print(" ".join(order))
PY
)
# §4's ways of sharing the port: the modes, handoff-listener once per
# --accept strategy (MODE:STRATEGY); the order shuffled per round as above.
# `proxy` (a round robin like handoff-socket's) only in the full run.
fairness_variants=(handoff-socket handoff-listener:drain handoff-listener:single handoff-listener:exclusive handoff-listener:blocking handoff-reuseport)
((quick)) || fairness_variants=(proxy "${fairness_variants[@]}")
mapfile -t fairness_orders < <(python3 - "$seed" "$fairness_rounds" "${fairness_variants[@]}" <<'PY'
import random, sys
rng = random.Random(int(sys.argv[1]) + 4)
variants = sys.argv[3:]
for _ in range(int(sys.argv[2])):
    order = variants[:]
    rng.shuffle(order)
    print(" ".join(order))
PY
)
# Every load this run makes, counted up front for the progress line.
fairness_loads=$((fairness_rounds * ${#fairness_variants[@]} * (2 * ${#fairness_workers[@]} + 2)))
total=$((repeats * ${#modes[@]} * 2 + ${#modes[@]} * 2 * sweep_steps + ${#cluster_modes[@]} * (${#held[@]} + ${#limit_steps[@]} + 1) + fairness_loads))
# 8. Upgrades: takeover and restart per mode, overlap and overlap-migrate in handoff-reuseport.
total=$((total + ${#cluster_modes[@]} * 2 + 2))

if ((dry_run)); then
  echo "affinity: $affinity"
  echo "seed: $seed"
else
  # The sources the binaries are built from: before the build, and before
  # this run writes anything.
  git_status=$(git -C "$root" status --porcelain 2>/dev/null || echo "?? (not a git checkout)")
  echo "building (cargo build --release)" >&2
  cargo build --release --quiet -p proxy -p handoff -p loadgen -p report --bin proxy --bin handoff --bin loadgen --bin report
  out=${out:-$root/results/$(date -u +%Y-%m-%d)-$(hostname -s)}
  mkdir -p "$out/runs"
  rm -f "$out"/runs/*.json "$out/commands.sh"
  commands=$out/commands.log
  export SERVER_COMMANDS=$commands
  echo "# A log of every command compare.sh ran, in order, with this run's pids and ports: a record, not a script to rerun" >"$commands"
  tmp=$(mktemp -d)
fi
bin=$root/target/release

# --- clusters ---------------------------------------------------------------
# start MODE [FLAGS...]: starts a server (start_server in scripts/lib.sh, or
# nginx in front of a proxy cluster's workers); sets $targets (the ports loadgen
# loads: the public port, or for `direct` every worker's own port), $watches
# (the pids loadgen watches, the one it counts as the master first),
# $first_worker (a worker pid, for the fault experiment), and $pids (every
# process to stop, master first).
pids=() targets=() watches=()
start() {
  local mode=$1; shift
  local as=$mode
  starts=$((starts + 1))
  if ((dry_run)); then first_worker=0; return 0; fi
  [[ $mode == nginx || $mode == direct ]] && as=proxy
  start_server "$as" "$workers" "$tmp" "$@"
  pids=("$master")
  targets=("$port") watches=("$master")
  [[ $mode == direct ]] && read -ra targets <<<"${worker_ports//,/ }"
  [[ $mode == nginx ]] && start_nginx "$worker_ports"
  local server_pids
  read -ra server_pids <<<"${pids[*]} ${worker_pids//,/ }"
  note_affinity "${server_pids[@]}"
}

# note_affinity PID...: the CPUs each server process may run on, read from
# /proc/PID/status, appended to $tmp/affinity for README.md.
note_affinity() {
  local p
  for p in "$@"; do
    echo "$p $(awk '/^Cpus_allowed_list:/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo gone)" >>"$tmp/affinity"
  done
}

# run_bg FILE CMD...: CMD in the background, stdout to FILE, stderr to the log.
run_bg() {
  local file=$1; shift
  echo "$*" >>"$commands"
  "$@" >"$file" 2>>"$tmp/log" &
  bg_pid=$!
}

# listens PID PORT: PID holds a socket listening on 127.0.0.1:PORT (its fds
# against /proc/net/tcp), so a port someone else took is not mistaken for it.
listens() {
  python3 - "$1" "$2" <<'PY'
import os, sys
pid, port = sys.argv[1], int(sys.argv[2])
inodes = set()
try:
    fds = os.listdir(f"/proc/{pid}/fd")
except OSError:  # it has exited
    sys.exit(1)
for fd in fds:
    try:
        link = os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
        continue
    if link.startswith("socket:["):
        inodes.add(link[8:-1])
for line in open("/proc/net/tcp").readlines()[1:]:
    f = line.split()
    if f[1] == f"0100007F:{port:04X}" and f[3] == "0A" and f[9] in inodes:
        sys.exit(0)
sys.exit(1)
PY
}

# nginx's stream proxy in front of the proxy cluster's workers, one process
# (master_process off), like our single-threaded master. A free port is picked,
# then nginx binds it: if someone took it in between, nginx exits and another
# port is tried (5 at most); the port counts once nginx itself listens on it.
start_nginx() {
  local upstreams="" p try i nginx_pid pin=()
  for p in ${1//,/ }; do upstreams+="server 127.0.0.1:$p; "; done
  [[ -n ${SERVER_CPUS:-} ]] && pin=(taskset -c "$SERVER_CPUS")
  mkdir -p "$tmp/nginx"
  for ((try = 1; try <= 5; try++)); do
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat >"$tmp/nginx/nginx.conf" <<CONF
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
CONF
    run_bg /dev/null "${pin[@]}" nginx -c "$tmp/nginx/nginx.conf" -p "$tmp/nginx"
    nginx_pid=$bg_pid
    for ((i = 0; i < 200; i++)); do
      kill -0 "$nginx_pid" 2>/dev/null || break
      if listens "$nginx_pid" "$port"; then
        pids=("$nginx_pid" "${pids[@]}")
        targets=("$port")
        watches=("$nginx_pid" "${watches[@]}")
        return 0
      fi
      sleep 0.05
    done
    kill -TERM "$nginx_pid" 2>/dev/null || true
    wait "$nginx_pid" 2>/dev/null || true
    echo "nginx did not listen on 127.0.0.1:$port (try $try of 5); its log ends with:" >&2
    tail -2 "$tmp/log" >&2
  done
  echo "compare.sh: nginx never listened; giving up" >&2
  exit 1
}

stop() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
cleanup() { stop; [[ -z ${tmp:-} ]] || rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- loads ------------------------------------------------------------------
step=0 started_s=$SECONDS starts=0 loads_ms=0 drain_ms=0
# duration_text SECONDS: 42s, 3m05s.
duration_text() {
  if (($1 >= 60)); then printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); else printf '%ds' "$1"; fi
}
# millis DURATION: a loadgen duration (`500ms`, `2s`, `1m`, `0`) in ms.
millis() {
  case $1 in
    0) echo 0 ;;
    *ms) echo "${1%ms}" ;;
    *s) echo $((${1%s} * 1000)) ;;
    *m) echo $((${1%m} * 60000)) ;;
    *) echo "compare.sh: cannot read the duration $1" >&2; exit 1 ;;
  esac
}
# What a load costs besides its warm-up and duration (loadgen's start, the
# drain of the requests in flight, the JSON), and a server's start and stop:
# on the 2-core VM of the reference runs, `--quick --no-peers` took 83 s of
# loads for 63 s of warm-ups and durations, 72 loads and 26 starts (other
# work on the machine); for the estimate --dry-run prints.
load_overhead_ms=250 start_overhead_ms=300
# estimate_s: the plan's seconds so far, from the loads and starts counted.
estimate_s() {
  echo $(((loads_ms + step * load_overhead_ms + starts * start_overhead_ms) / 1000))
}
# progress NAME: the line of step $step, NAME: on stdout in a dry run, and
# then false (nothing is to run); else on stderr as [n/total] NAME (time
# spent, ~time left at the pace so far).
progress() {
  if ((dry_run)); then echo "[$step/$total] $1"; return 1; fi
  local spent=$((SECONDS - started_s)) left="?"
  ((step == 1)) || left=$(duration_text $((spent * (total - step + 1) / (step - 1))))
  echo "[$step/$total] $1 ($(duration_text "$spent"), ~$left left)" >&2
}
# load NAME LABELS -- LOADGEN-ARGS...: one loadgen run against $targets,
# watching $watches, its JSON in runs/NAME.json with LABELS (k=v ...). The keys
# and values are the contract with the renderer,
# bench/loadgen/src/report/labels.rs: loadgen refuses any other. Progress on
# stderr: [n/total] NAME (time spent, ~time left at the pace so far).
load() {
  local name=$1 labels=() t w; shift
  while [[ $1 != -- ]]; do labels+=(--label "$1"); shift; done
  shift
  step=$((step + 1))
  # The plan's time: the warm-up (loadgen's default 1s) and duration of every
  # load; a sweep step behind its schedule may drain up to its --timeout more.
  local args=("$@") i warmup_ms=1000 timeout_ms=5000
  for ((i = 0; i < ${#args[@]}; i++)); do
    case ${args[i]} in
      --duration) loads_ms=$((loads_ms + $(millis "${args[i + 1]}"))) ;;
      --warmup) warmup_ms=$(millis "${args[i + 1]}") ;;
      --timeout) timeout_ms=$(millis "${args[i + 1]}") ;;
    esac
  done
  loads_ms=$((loads_ms + warmup_ms))
  [[ $name != sweep-* ]] || drain_ms=$((drain_ms + timeout_ms))
  progress "$name" || return 0
  local cmd=("${loadgen_pin[@]}" "$bin/loadgen")
  for t in "${targets[@]}"; do cmd+=(--target "http://127.0.0.1:$t${path:-/}"); done
  for w in "${watches[@]}"; do cmd+=(--watch "$w"); done
  cmd+=("${labels[@]}" --label workers="$workers" --json "$out/runs/$name.json" "$@")
  echo "${cmd[*]}" >>"$commands"
  "${cmd[@]}" >>"$tmp/loadgen.log" 2>&1 || { echo "compare.sh: loadgen failed for $name:" >&2; tail -3 "$tmp/loadgen.log" >&2; exit 1; }
}

# 1. Throughput and latency, closed loop: keep-alive and a new connection per
# request; every mode once per round, in the round's shuffled order.
for ((r = 1; r <= repeats; r++)); do
  for mode in ${round_orders[r - 1]}; do
    start "$mode"
    load "throughput-$mode-keepalive-r$r" section=throughput mode="$mode" load=keepalive round="$r" -- \
      --connections 50 --duration "$round_duration" --warmup "$round_warmup"
    load "throughput-$mode-newconn-r$r" section=throughput mode="$mode" load=newconn round="$r" -- \
      --connections 50 --duration "$round_duration" --warmup "$round_warmup" --new-conn
    stop
  done
done

# 1b. Latency against offered load: an open loop at the same absolute rates
# for every mode, per load, from light load to past every mode's capacity.
# The rates come from §1's runs: sweep_steps rates spaced evenly on a log
# scale from 10 % of the slowest mode's median closed-loop requests/s to the
# larger of 150 % of it and 120 % of the fastest mode's, two significant
# digits. The modes in round 1's order, a server per mode, its steps from
# the lowest rate up, keep-alive then a new connection per request.
sweep_rule="$sweep_steps rates per load, spaced evenly on a log scale from 10 % of the slowest mode's median closed-loop requests/s in §1 to the larger of 150 % of it and 120 % of the fastest mode's, rounded to two significant digits"
declare -A sweep_rates sweep_origin
for kind in keepalive newconn; do
  if ((dry_run)); then
    sweep_rates[$kind]=$(seq -s ' ' -f 's%g' 1 "$sweep_steps")
    continue
  fi
  read -r origin rates < <(python3 - "$out/runs" "$kind" "$sweep_steps" <<'PY'
import collections, glob, json, math, statistics, sys
runs, kind, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
per_mode = collections.defaultdict(list)
for f in glob.glob(f"{runs}/throughput-*-{kind}-r*.json"):
    r = json.load(open(f))
    per_mode[r["labels"]["mode"]].append(r["requests"]["per_s"])
medians = {mode: statistics.median(v) for mode, v in per_mode.items()}
slow = min(medians, key=medians.get)
fast = max(medians, key=medians.get)
low = max(10.0, 0.1 * medians[slow])
high = max(1.5 * medians[slow], 1.2 * medians[fast], 2 * low)
def two_digits(x):
    scale = 10 ** (math.floor(math.log10(x)) - 1)
    return int(round(x / scale) * scale)
rates = sorted({two_digits(low * (high / low) ** (i / (steps - 1))) for i in range(steps)})
origin = f"slowest:{slow}:{medians[slow]:.0f},fastest:{fast}:{medians[fast]:.0f}"
print(origin, " ".join(map(str, rates)))
PY
  )
  sweep_rates[$kind]=$rates sweep_origin[$kind]=$origin
  echo "sweep, $kind: $rates requests/s ($origin)" >&2
done
for mode in ${round_orders[0]}; do
  start "$mode"
  for kind in keepalive newconn; do
    new_conn=()
    [[ $kind == newconn ]] && new_conn=(--new-conn)
    k=0
    for rate in ${sweep_rates[$kind]}; do
      k=$((k + 1))
      load "sweep-$mode-$kind-s$k" section=sweep mode="$mode" load="$kind" rate="${rate#s}" -- \
        --connections 50 --duration "$sweep_duration" --warmup "$sweep_warmup" \
        --timeout "$sweep_timeout" --rate "${rate#s}" "${new_conn[@]}"
    done
  done
  stop
done

# 2. The fd bill: connections held open (keep-alive, one request a second each).
# Connection i opens at its first request, due i/n s after the start: the
# warm-up outlasts the last by half a second, so that every connection is
# open in the measured window even on a loaded machine.
for mode in "${cluster_modes[@]}"; do
  start "$mode"
  for n in "${held[@]}"; do
    load "fdbill-$mode-$n" section=fdbill mode="$mode" connections="$n" -- \
      --connections "$n" --rate "$n" --duration 1s --warmup 1500ms
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

# 4. Fairness (issue 13): who gets the connections, and who waits when a
# worker stalls. More workers than cores, so the accept path, not the CPU
# scheduler alone, decides. Per round, every way of sharing the port
# (`handoff-listener` once per --accept strategy), in a shuffled order:
#  - spread: a new connection per request in an open loop below saturation,
#    and keep-alive connections opened in a burst (no warm-up: every
#    connection counts), with 4 workers and (full run) 8;
#  - stall: the open loop with one worker stopped (SIGSTOP, loadgen --stop)
#    twice for $stall_ms ms;
#  - mix: the open loop with ?work_us= drawn from a heavy-tailed mix (95 % 0,
#    5 % 5 ms), so a busy worker shows in its own p99.
fairness_load() { # fairness_load NAME LABELS... -- ARGS...: load with this section's labels
  local name=$1; shift
  load "fairness-$name" section=fairness "$@"
}
for ((r = 1; r <= fairness_rounds; r++)); do
  for variant in ${fairness_orders[r - 1]}; do
    mode=${variant%%:*} accept_flags=() accept_label=()
    if [[ $variant == *:* ]]; then
      accept_flags=(--accept "${variant#*:}") accept_label=(accept="${variant#*:}")
    fi
    for w in "${fairness_workers[@]}"; do
      saved_workers=$workers workers=$w
      start "$mode" "${accept_flags[@]}"
      tag="${variant/:/-}-w$w-r$r"
      fairness_load "newconn-$tag" mode="$mode" "${accept_label[@]}" load=newconn round="$r" -- \
        --connections "$((4 * w))" --new-conn --rate "$fairness_rate" --duration "$fairness_duration" --warmup "$fairness_warmup"
      fairness_load "keepalive-$tag" mode="$mode" "${accept_label[@]}" load=keepalive round="$r" -- \
        --connections "$((8 * w))" --duration "$fairness_burst" --warmup 0
      if ((w == fairness_workers[0])); then
        # Enough connections that the requests stuck behind the stalled
        # worker do not hold up the schedule of the others (each connection
        # sends one request at a time): 32 per worker.
        fairness_load "stall-$tag" mode="$mode" "${accept_label[@]}" load=newconn round="$r" stall_ms="$stall_ms" -- \
          --connections "$((32 * w))" --new-conn --rate "$fairness_rate" --duration "$stall_duration" --warmup "$fairness_warmup" \
          --stop "$first_worker" --stop-after "${stall_at[0]}" --stop-after "${stall_at[1]}" --stop-for "${stall_ms}ms"
        fairness_load "mix-$tag" mode="$mode" "${accept_label[@]}" load=newconn round="$r" -- \
          --connections "$((16 * w))" --new-conn --rate "$fairness_rate" --duration "$fairness_duration" --warmup "$fairness_warmup" \
          --mix /=95 --mix "/?work_us=5000=5" --seed "$seed"
      fi
      stop
      workers=$saved_workers
    done
  done
done

# 6. Faults: one worker killed mid-run, 8 clients each making a new connection per request.
for mode in "${cluster_modes[@]}"; do
  start "$mode"
  load "faults-$mode" section=faults mode="$mode" load=newconn -- \
    --connections 8 --duration "$fault_duration" --warmup 200ms --new-conn \
    --kill "$first_worker" --kill-after "$fault_at"
  stop
done

# 8. Upgrades: a master replaced under load, by scripts/upgrade.py (the one
# tool for it, which runs alone too): every mode by takeover and by restart,
# handoff-reuseport also by overlap, on the host's tcp_migrate_req and (as
# root) in a network namespace with tcp_migrate_req=1. Open loop, a new
# connection per request, at a rate the slowest mode holds easily; each worker
# takes --init-delay to start. One loadgen run per cell, with its upgrades.
upgrade_rate=500 upgrade_init_delay=200ms
# upgrade_cell_ms: what one cell took, start to end, on the reference VM
# (10 cells: 17 s with --quick, 117 s without), for the estimate.
if ((quick)); then
  upgrade_args=(--upgrades 1 --lead 200ms --every 600ms) upgrade_cell_ms=1700
else
  upgrade_args=(--upgrades 5 --lead 1s --every 2s) upgrade_cell_ms=11700
fi
((dry_run)) || echo "upgrades: open loop at $upgrade_rate requests/s, --init-delay $upgrade_init_delay, ${upgrade_args[*]}" >&2
for mode in "${cluster_modes[@]}"; do
  strategies=(takeover restart)
  [[ $mode == handoff-reuseport ]] && strategies+=(overlap overlap-migrate)
  for strategy in "${strategies[@]}"; do
    step=$((step + 1)) loads_ms=$((loads_ms + upgrade_cell_ms))
    progress "upgrade-$mode-$strategy" || continue
    cmd=(python3 "$root/scripts/upgrade.py" --bin-dir "$bin" --workers "$workers"
      --init-delay "$upgrade_init_delay" --strategy "$strategy" --rate "$upgrade_rate"
      "${upgrade_args[@]}" --out "$out/runs" --commands "$commands" --log "$tmp/log")
    [[ -n $loadgen_cpus ]] && cmd+=(--loadgen-cpus "$loadgen_cpus" --server-cpus "$server_cpus")
    echo "${cmd[*]} $mode" >>"$commands"
    "${cmd[@]}" "$mode" >>"$tmp/upgrade.log" 2>&1 || { echo "compare.sh: upgrade.py failed for $mode $strategy:" >&2; tail -3 "$tmp/upgrade.log" >&2; exit 1; }
    [[ $strategy != overlap-migrate ]] || [[ -f $out/runs/upgrade-$mode-$strategy.json ]] || tail -1 "$tmp/upgrade.log" >&2
  done
done

if ((dry_run)); then
  ((step == total)) || { echo "compare.sh: counted $total loads up front but planned $step" >&2; exit 1; }
  echo "sweep (§1b): $sweep_rule"
  estimate_s=$(estimate_s)
  echo "estimate: ${estimate_s} s ($(duration_text "$estimate_s")) of loads after the build: $total loads, their warm-ups and durations $((loads_ms / 1000)) s, ${load_overhead_ms} ms more each, $starts server starts at ${start_overhead_ms} ms; the sweep's steps behind their schedule may add up to $((drain_ms / 1000)) s more (their --timeout)"
  exit 0
fi

# --- the record and the report ------------------------------------------------
git_revision=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)
sysctls=()
for key in net.core.somaxconn net.ipv4.tcp_max_syn_backlog net.ipv4.tcp_tw_reuse net.ipv4.ip_local_port_range fs.file-max; do
  sysctls+=("\`$key = $(xargs <"/proc/sys/${key//.//}" 2>/dev/null || echo unknown)\`")
done
{
  echo "# How this report was made"
  echo
  # The first lines: whether loadgen shared the server's CPUs.
  echo "**${affinity%%:*}**:${affinity#*:}."
  echo
  echo "Run: \`scripts/compare.sh$( ((quick)) && echo ' --quick') --workers $workers --repeats $repeats --seed $seed$( [[ -n $loadgen_cpus ]] && echo " --loadgen-cpus $loadgen_cpus --server-cpus $server_cpus")\`, $(date -u '+%Y-%m-%d %H:%M UTC'), $(duration_text $((SECONDS - started_s))) of loads (the plan's estimate: $(duration_text "$(estimate_s)"), \`--dry-run\` prints it)."
  echo
  if [[ -z $git_status ]]; then
    echo "- git revision: $git_revision, clean (nothing uncommitted)"
  else
    echo "- git revision: $git_revision, with uncommitted changes (\`git status --porcelain\` before the build):"
    echo
    echo '  ```'
    sed 's/^/  /' <<<"$git_status"
    echo '  ```'
    echo
  fi
  echo "- rustc: $(rustc -V)"
  echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc --all) cores, ${#machine_cpus[@]} usable here"
  echo "- kernel: $(uname -sr)"
  echo "- ulimit -n: $(ulimit -n) (soft), $(ulimit -Hn) (hard)"
  echo "- sysctls: $(IFS=,; echo "${sysctls[*]}" | sed 's/`,`/`, `/g')"
  echo "- affinity: loadgen $([[ -n $loadgen_cpus ]] && echo "pinned to CPUs $loadgen_cpus" || echo "not pinned"); the server processes, Cpus_allowed_list read from /proc/PID/status after each start: $(awk '{ n[$2]++ } END { for (c in n) { printf "%s%d on CPUs %s", sep, n[c], c; sep = "; " } }' "$tmp/affinity")"
  echo "- round order (seed $seed; Python's random.Random(seed), one shuffle per round):"
  for ((r = 1; r <= repeats; r++)); do echo "  round $r: ${round_orders[r - 1]}"; done
  echo "- §4 order (seed $seed + 4, the same way; \`MODE:STRATEGY\` is \`handoff --pass listener --accept STRATEGY\`):"
  for ((r = 1; r <= fairness_rounds; r++)); do echo "  round $r: ${fairness_orders[r - 1]}"; done
  echo "- peers: $( ((have_nginx)) && nginx -v 2>&1 | cut -d/ -f2 | sed 's/^/nginx /' || echo 'nginx not measured')$( ((have_node)) && echo ", Node.js $(node --version)" || echo ', Node.js not measured')"
  echo "- sweep (§1b): $sweep_rule; 50 connections, --timeout $sweep_timeout, one run per step of ${sweep_warmup} warm-up and ${sweep_duration}, the modes in round 1's order:"
  bt='`'
  for kind in keepalive newconn; do
    IFS=, read -r slowest fastest <<<"${sweep_origin[$kind]}"
    IFS=: read -r _ slow_mode slow_rate <<<"$slowest"
    IFS=: read -r _ fast_mode fast_rate <<<"$fastest"
    echo "  $kind: $(sed 's/ /, /g' <<<"${sweep_rates[$kind]}") requests/s (slowest $bt$slow_mode$bt $slow_rate/s, fastest $bt$fast_mode$bt $fast_rate/s)"
  done
  echo "- upgrades (§8): \`scripts/upgrade.py\` at $upgrade_rate requests/s, \`--init-delay $upgrade_init_delay\`, ${upgrade_args[*]}; net.ipv4.tcp_migrate_req = $(cat /proc/sys/net/ipv4/tcp_migrate_req 2>/dev/null || echo unknown) on the host"
  echo
  echo "[commands.log](commands.log) is a log of every command as it ran, in order,"
  echo "with this run's pids and ports; to run it again, use the command above. Every"
  echo "loadgen report is in [runs/](runs/). Render again with \`target/release/report ${out#"$root"/}\`."
} >"$out/README.md"
echo "$bin/report $out" >>"$commands"
"$bin/report" "$out"
echo "report: $out/REPORT.md" >&2
