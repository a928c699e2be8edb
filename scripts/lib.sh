# shellcheck shell=bash
# What the scripts share, sourced (`source "$root/scripts/lib.sh"`): starting a
# server of the suite and reading its ready line, once.
#
# start_server MODE WORKERS DIR [FLAGS...]
#   MODE: proxy, handoff-socket, handoff-listener, handoff-reuseport,
#   ceiling (a proxy cluster whose first worker's own port is the target:
#   nobody in between; wrk-modes.sh and vs-wrk.sh use it, while compare.sh's
#   baseline `direct` loads every port of worker_ports), or the Node.js
#   cluster peers node-rr and node-none.
#   Starts it on 127.0.0.1 with a free port (--listen 127.0.0.1:0) in the
#   background, stdout to DIR/ready, stderr appended to DIR/log; FLAGS go to
#   the binary. Waits for the ready line (ARCHITECTURE.md) for at most 10 s, then
#   sets:
#     master        the master's pid
#     port          the port to load: the public port, or for `ceiling` the
#                   first worker's own port
#     first_worker  the first worker's pid
#     worker_ports  the workers' own ports, comma-separated (proxy modes)
#     worker_pids   the workers' pids, comma-separated
#   On failure it prints the end of the log and exits 1. If SERVER_COMMANDS
#   names a file, the command line is appended to it. If SERVER_CPUS holds a
#   CPU list (taskset's: `1`, `2-3`, `0,2`), the server starts pinned to it
#   (`taskset -c`, which execs it, so $master is still the server's pid); its
#   workers inherit the affinity. SERVER_BIN_DIR names the folder of the
#   `proxy` and `handoff` binaries (default: target/release). If the array
#   SERVER_WRAP is set (`SERVER_WRAP=(strace -f -o FILE)`), its words go
#   before the command; $master is still the server's, from its ready line,
#   and $launched is the pid this shell started (the wrapper), the one to
#   wait for.
#
# The caller stops the server (kill -TERM "$master"; wait "$launched").

start_server() {
  local mode=$1 workers=$2 dir=$3
  shift 3
  local root cmd
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  case $mode in
    proxy | ceiling) cmd=("${SERVER_BIN_DIR:-$root/target/release}/proxy") ;;
    handoff-*) cmd=("${SERVER_BIN_DIR:-$root/target/release}/handoff" --pass "${mode#handoff-}") ;;
    node-*) cmd=(node "$root/scripts/peers/node-cluster.js" --sched "${mode#node-}") ;;
    *) echo "start_server: unknown mode $mode" >&2; exit 2 ;;
  esac
  cmd+=(--listen 127.0.0.1:0 --workers "$workers" "$@")
  [[ -n ${SERVER_CPUS:-} ]] && cmd=(taskset -c "$SERVER_CPUS" "${cmd[@]}")
  [[ -n ${SERVER_WRAP+set} ]] && cmd=("${SERVER_WRAP[@]}" "${cmd[@]}")
  [[ -n ${SERVER_COMMANDS:-} ]] && echo "${cmd[*]}" >>"$SERVER_COMMANDS"
  : >"$dir/ready"
  "${cmd[@]}" >"$dir/ready" 2>>"$dir/log" &
  master=$!
  launched=$master
  local i
  for ((i = 0; i < 200; i++)); do
    [[ -s $dir/ready ]] && break
    kill -0 "$launched" 2>/dev/null || break
    sleep 0.05
  done
  if [[ ! -s $dir/ready ]]; then
    echo "$mode did not print its ready line; its log ends with:" >&2
    tail -5 "$dir/log" >&2
    exit 1
  fi
  local listen_port
  read -r master listen_port first_worker worker_ports worker_pids < <(python3 -c '
import json, sys
r = json.loads(sys.stdin.readline())
w = r["workers"]
print(r["master_pid"], r["listen"].rsplit(":", 1)[1], w[0]["pid"],
      ",".join(str(x["port"]) for x in w), ",".join(str(x["pid"]) for x in w))' <"$dir/ready")
  port=$listen_port
  [[ $mode == ceiling ]] && port=${worker_ports%%,*}
  return 0
}
