#!/usr/bin/env bash
# The lessons of LESSONS.md, each an experiment run end to end on loopback:
# it starts what it needs, measures, stops everything it started, prints the
# figure the lesson is about and a one-line verdict on whether it matches what
# LESSONS.md says to expect.
#
#   scripts/lesson.sh [--quick] [--no-verdict] [--bin-dir DIR] N
#
# N              the lesson: 1 (two fds per connection), 2 (the fd limit),
#                3 (watching a socket change hands, under strace), 4 (why one
#                worker takes all the load), 5 (a worker dies), 6 (upgrading
#                without dropping anyone)
# --quick        fewer connections and shorter loads, the same verdicts (the
#                test, bench/loadgen/tests/lessons.rs, runs every lesson so)
# --no-verdict   for students: the figures only, no verdict line (which would
#                give the answer away), and exit 0 whatever it would have said
# --bin-dir DIR  use the proxy, handoff and loadgen binaries already built in
#                DIR (the test passes target/debug) instead of building them
#                with `cargo build --release` into target/release
#
# Exit codes: 0 when the verdict is `ok` (or hidden), 1 when it `differs`
# (or a run failed), 2 for a lesson that does not exist, bad usage or a
# missing tool.
# Servers listen on 127.0.0.1 port 0 (scripts/lib.sh's start_server; lesson
# 6's are scripts/upgrade.py's) and are stopped by their pid, also when a
# lesson fails or is interrupted.
set -euo pipefail

quick=0 no_verdict=0 bin_dir= lesson=
usage_error() { echo "lesson.sh: $*" >&2; exit 2; }
while (($#)); do
  case $1 in
    --quick) quick=1; shift ;;
    --no-verdict) no_verdict=1; shift ;;
    --bin-dir) bin_dir=${2:?--bin-dir needs a folder}; shift 2 ;;
    -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) usage_error "unknown argument $1 (see --help)" ;;
    *) [[ -z $lesson ]] || usage_error "one lesson at a time (got $lesson and $1)"; lesson=$1; shift ;;
  esac
done
[[ -n $lesson ]] || usage_error "which lesson? scripts/lesson.sh N, N one of 1 2 3 4 5 6 (see LESSONS.md)"
case $lesson in
  1 | 2 | 3 | 4 | 5 | 6) ;;
  *) usage_error "there is no lesson $lesson: the lessons are 1 2 3 4 5 6 (see LESSONS.md)" ;;
esac
if [[ $lesson == 3 ]]; then
  command -v strace >/dev/null || usage_error "lesson 3 needs strace, which is not installed: apt-get install strace"
  traced=$(strace -f -o /dev/null true 2>&1) || usage_error "lesson 3 needs strace -f, which cannot trace here (${traced//$'\n'/ }); in a container, allow ptrace (docker run --cap-add SYS_PTRACE)"
fi
command -v python3 >/dev/null || usage_error "python3 is needed (it reads the JSON lines): apt-get install python3"

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source "$root/scripts/lib.sh"
if [[ -z $bin_dir ]]; then
  echo "building (cargo build --release)" >&2
  cargo build --release --quiet -p proxy -p handoff -p loadgen --bin proxy --bin handoff --bin loadgen
  bin_dir=$root/target/release
fi
bin_dir=$(cd "$bin_dir" 2>/dev/null && pwd) || usage_error "--bin-dir: no folder $bin_dir"
for b in proxy handoff loadgen; do
  [[ -x $bin_dir/$b ]] || usage_error "no $bin_dir/$b: build it first (cargo build -p $b)"
done
export SERVER_BIN_DIR=$bin_dir
bin=$bin_dir
workers=2
modes=(proxy handoff-socket handoff-listener handoff-reuseport)

tmp=$(mktemp -d)
running=0
# stop_server: SIGTERM to the master (a graceful stop of at most 5 s), then
# wait for the process this shell started (the master, or strace around it).
stop_server() {
  ((running)) || return 0
  kill -TERM "$master" 2>/dev/null || true
  wait "$launched" 2>/dev/null || true
  running=0
}
# Lesson 6 runs scripts/upgrade.py ($driver), which stops every master it
# started, by its pid, when it ends or is sent SIGTERM.
driver=
stop_driver() {
  [[ -n $driver ]] || return 0
  kill -TERM "$driver" 2>/dev/null || true
  wait "$driver" 2>/dev/null || true
  driver=
}
cleanup() { stop_server; stop_driver; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# serve MODE [FLAGS...]: start_server (scripts/lib.sh) with the lesson's
# workers; $master, $port, $first_worker, $worker_pids, $launched are set.
serve() {
  local mode=$1; shift
  start_server "$mode" "$workers" "$tmp" "$@"
  running=1
}

# fds PID: the open fds of PID: the entries of /proc/PID/fd (`ls /proc/PID/fd | wc -l`).
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 | wc -l; }

# load NAME LOADGEN-ARGS...: loadgen against the public port, watching the
# master, its JSON in $tmp/NAME.json; its summary in $tmp/NAME.txt.
load() {
  local name=$1; shift
  if ! "$bin/loadgen" --watch "$master" --json "$tmp/$name.json" "$@" >"$tmp/$name.txt" 2>&1; then
    echo "lesson.sh: loadgen failed:" >&2
    tail -3 "$tmp/$name.txt" >&2
    exit 1
  fi
}

# load_watching NAME N LOADGEN-ARGS...: `load`, and while it runs, once the
# kernel has N connections established on the public port (at most 10 s), its
# view of them in $tmp/NAME.kernel: the listening socket(s) (`ss -ltn`: Recv-Q
# is how many connections wait in the accept queue, Send-Q its limit), a blank
# line, then the server end of each connection with the process that holds it
# (`ss -tnp`: users:(("name",pid=…,fd=…)); none while it waits in the queue).
load_watching() {
  local name=$1 n=$2 i loading
  shift 2
  load "$name" "$@" &
  loading=$!
  for ((i = 0; i < 200; i++)); do
    (($(ss -Htn state established "( sport = :$port )" | wc -l) >= n)) && break
    kill -0 "$loading" 2>/dev/null || break
    sleep 0.05
  done
  { ss -Hltn "( sport = :$port )"; echo; ss -Htnp state established "( sport = :$port )"; } >"$tmp/$name.kernel"
  wait "$loading"
}

# judge ARGS... <<'PY' ... PY: runs the lesson's Python (on stdin) with
# ARGS, after a prelude that defines verdict(wrong, ok): the one verdict
# line (`verdict: differs — …` and exit 1 when `wrong` lists anything,
# else `verdict: ok — …`), or with --no-verdict a line saying it is hidden,
# and exit 0 either way.
verdict_prelude='
import os, sys
def verdict(wrong, ok):
    if os.environ.get("LESSON_NO_VERDICT") == "1":
        print("(no verdict shown (--no-verdict); answer the questions of LESSONS.md with the figures above)")
        return
    if wrong:
        print("verdict: differs — " + "; ".join(wrong))
        sys.exit(1)
    print("verdict: ok — " + ok)
'
judge() {
  { printf '%s\n' "$verdict_prelude"; cat; } | LESSON_NO_VERDICT=$no_verdict python3 - "$@"
}

# --- 1. Two fds per connection ------------------------------------------------
lesson_1() {
  local n=200 mode
  ((quick)) && n=100
  echo "lesson 1: two fds per connection: $n keep-alive connections held open against each mode, $workers workers"
  echo "  loadgen --connections $n --rate $n (one request a second each) --watch <master>; fds from /proc/<pid>/fd"
  for mode in "${modes[@]}"; do
    serve "$mode"
    local tree w
    tree=$(fds "$master")
    for w in ${worker_pids//,/ }; do tree=$((tree + $(fds "$w"))); done
    echo "$mode $(fds "$master") $tree $master $worker_pids" >>"$tmp/idle"
    load_watching "$mode" "$n" --target "http://127.0.0.1:$port/" --connections "$n" --rate "$n" --duration 1s --warmup 1s
    stop_server
  done
  judge "$tmp" "$n" "$workers" <<'PY'
import json, re
tmp, n, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
window = 8 * workers  # handoff-socket: at most 8 unacknowledged handoffs per worker
slack = 2
bounds = {  # (lowest, highest) extra fds the master may hold for n connections
    "proxy": (2 * n - slack, 2 * n + slack),
    "handoff-socket": (0, window + slack),
    "handoff-listener": (0, slack),
    "handoff-reuseport": (0, slack),
}
print(f"  {'mode':<18} {'master fds: idle → held':<25} {'per connection':<15} whole tree: idle → held")
wrong = []
holders = {}
for line in open(f"{tmp}/idle"):
    mode, idle, tree_idle, master, worker_pids = line.split()
    idle, tree_idle = int(idle), int(tree_idle)
    # Who holds the server end of each connection on the public port (ss -tnp).
    ends = open(f"{tmp}/{mode}.kernel").read().split("\n\n", 1)[-1].splitlines()
    by = {"master": 0, "workers": 0, "the accept queue": 0}
    for end in ends:
        pid = re.search(r"pid=(\d+)", end)
        by["the accept queue" if not pid else "master" if pid.group(1) == master else "workers"] += 1
    holders[mode] = ", ".join(f"{who} {count}" for who, count in by.items() if count) or "none"
    report = json.load(open(f"{tmp}/{mode}.json"))
    watched = report["watch"][0]
    # The most fds over every sample, warm-up included: the connections stay
    # open to the end.
    held = max((s["fds"] for s in watched["processes"][0]["samples"]), default=0)
    at = {}
    for process in watched["processes"]:
        for s in process["samples"]:
            at[s["t_ms"]] = at.get(s["t_ms"], 0) + s["fds"]
    tree = max(at.values(), default=0)
    extra = held - idle
    if watched["error"] or watched["gone_at_ms"] is not None:
        wrong.append(f"watching the {mode} master stopped: {watched['error'] or 'it exited'}")
    print(f"  {mode:<18} {f'{idle} → {held} ({extra:+d})':<25} {f'{extra / n:.2f}':<15} {tree_idle} → {tree} ({tree - tree_idle:+d})")
    low, high = bounds[mode]
    if not low <= extra <= high:
        wrong.append(f"the {mode} master held {extra:+d} fds for {n} connections, expected {low}..{high}")
    if report["requests"]["failed"]:
        wrong.append(f"{report['requests']['failed']} requests failed against {mode}")
print()
print(f"  the kernel's view while held: who holds the server end of the {n} connections on the public port (ss -tnp)")
for mode, holders_of_mode in holders.items():
    print(f"  {mode:<18} {holders_of_mode}")
verdict(wrong, f"the proxy master held 2 fds per connection ({2 * n} ± {slack} for {n}: "
      f"the client's socket and its own to a worker), the handoff masters none for the connections they serve "
      f"(handoff-socket: at most {window} in flight, 8 unacknowledged per worker; {slack} of slack for each)")
PY
}

# --- 2. The fd limit ------------------------------------------------------------
lesson_2() {
  local limit=256 n=300 spare=16 mode
  echo "lesson 2: the fd limit: each master started with --max-fds $limit, $n clients on keep-alive connections, $workers workers"
  echo "  loadgen --connections $n --duration 3s --warmup 0 --timeout 2s --watch <master>"
  for mode in "${modes[@]}"; do
    serve "$mode" --max-fds "$limit"
    echo "$mode $(fds "$master")" >>"$tmp/idle"
    load_watching "$mode" "$n" --target "http://127.0.0.1:$port/" --connections "$n" --duration 3s --warmup 0 --timeout 2s
    stop_server
  done
  judge "$tmp" "$n" "$limit" "$spare" "$workers" <<'PY'
import json, sys
tmp, n, limit, spare, workers = sys.argv[1], *map(int, sys.argv[2:])
wrong, queue = [], {}
for line in open(f"{tmp}/idle"):
    mode, idle = line.split()
    idle = int(idle)
    report = json.load(open(f"{tmp}/{mode}.json"))
    watched = report["watch"][0]
    held = max((s["fds"] for s in watched["processes"][0]["samples"]), default=0)
    if watched["error"] or watched["gone_at_ms"] is not None:
        wrong.append(f"watching the {mode} master stopped: {watched['error'] or 'it exited'}")
    # The listening socket while loaded (ss -ltn): Recv-Q, the connections
    # waiting in its accept queue; Send-Q, the queue's limit.
    listening = open(f"{tmp}/{mode}.kernel").read().split("\n\n", 1)[0].split()
    queue[mode] = f"{listening[1]} of {listening[2]}" if len(listening) > 2 else "?"
    failed = report["requests"]["failed"]
    kinds = ", ".join(f"{k} {v}" for k, v in report["errors"]["by_kind"].items() if v) or "none"
    if mode == "proxy":
        # The master counts its own fds by reading /proc/self/fd, whose
        # directory is one more open fd while it reads.
        own = idle + 1
        capacity = max(1, (limit - own - spare) // 2)
        relays = (held - idle) // 2
        print(f"  {mode:<18} master fds {idle} idle, at most {held} of {limit}: {relays} clients served at once; "
              f"{failed} requests failed ({kinds}): the other clients waited in the accept queue")
        print(f"  {'':<18} the formula: (limit − own fds − spare) / 2 = ({limit} − {own} − {spare}) / 2 = {capacity} "
              f"(own: the {idle} fds it holds idle, and the one it opens to read /proc/self/fd)")
        if relays != capacity:
            wrong.append(f"the proxy served {relays} clients at once, the formula says {capacity}")
        if failed < n - capacity:
            wrong.append(f"only {failed} proxy requests failed, but {n - capacity} clients cannot have been served")
    else:
        print(f"  {mode:<18} master fds {idle} idle, at most {held} of {limit}: all {n} clients served; {failed} requests failed ({kinds})")
        if failed:
            wrong.append(f"{failed} requests failed against {mode}")
        # handoff-socket: at most 8 unacknowledged handoffs per worker; 2 of slack.
        bound = idle + (8 * workers if mode == "handoff-socket" else 0) + 2
        if held > bound:
            wrong.append(f"the {mode} master held {held} fds, more than {bound}")
print()
print("  the kernel's view while loaded: connections waiting in the accept queue (ss -ltn: Recv-Q of Send-Q)")
for mode, waiting in queue.items():
    print(f"  {mode:<18} {waiting}")
verdict(wrong, f"under --max-fds {limit} the proxy served exactly what its formula allows at once "
      f"and every handoff mode served all {n} clients with a handful of fds")
PY
}

# --- 3. Watching a socket change hands --------------------------------------------
lesson_3() {
  local k=3 i reply mark
  local syscalls=accept4,sendmsg,recvmsg,close
  echo "lesson 3: watching a socket change hands: strace -f -e trace=$syscalls on a handoff-socket master"
  echo "  and its $workers workers, $k requests with Connection: close"
  SERVER_WRAP=(strace -f -ttt -e "trace=$syscalls" -e signal=none -o "$tmp/trace")
  serve handoff-socket
  unset SERVER_WRAP
  # From here on: only what the requests cause (and the master's pings).
  mark=$(date +%s.%N)
  for ((i = 1; i <= k; i++)); do
    # A request by hand, with bash's /dev/tcp: one connection, one answer.
    exec 3<>"/dev/tcp/127.0.0.1/$port"
    printf 'GET / HTTP/1.1\r\nHost: lesson\r\nConnection: close\r\n\r\n' >&3
    reply=$(timeout 10 cat <&3) || { echo "lesson.sh: request $i got no complete answer within 10 s" >&2; exit 1; }
    exec 3<&-
    echo "  request $i: ${reply##*$'\n'}"
  done
  stop_server
  judge "$tmp/trace" "$mark" "$master" "$worker_pids" "$k" <<'PY'
import codecs, re, sys
path, mark, master, workers, k = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4].split(","), int(sys.argv[5])
KINDS = {1: "Connection", 2: "Listener", 3: "Stop", 4: "Ready", 5: "Ack", 6: "Reject", 7: "Ping", 8: "Pong"}

# strace -f writes a call another process interrupts in two pieces:
# `PID T name(args <unfinished ...>` and later `PID T <... name resumed>rest`.
calls, pending = [], {}
for line in open(path):
    m = re.match(r"(\d+) +([\d.]+) (.*)", line.rstrip("\n"))
    if not m:
        continue
    pid, at, text = m.group(1), float(m.group(2)), m.group(3)
    if text.endswith("<unfinished ...>"):
        pending[pid] = (at, text[: -len("<unfinished ...>")].rstrip())
        continue
    r = re.match(r"<\.\.\. \w+ resumed>(.*)", text)
    if r:
        at, head = pending.pop(pid, (at, ""))
        text = head + (" " if head.endswith(",") else "") + r.group(1)
    c = re.match(r"(\w+)\((\d+)(.*)\) += (-?\d+)", text)
    if c and at >= mark and int(c.group(4)) >= 0:  # successful calls only (no EAGAIN)
        calls.append((at, pid, c.group(1), int(c.group(2)), c.group(3), int(c.group(4)), text))

# In the order the calls began (strace's timestamp is the entry's): a
# receiver's recvmsg begins after its sender's sendmsg began, whichever of the
# two strace finished printing first.
calls.sort(key=lambda call: call[0])

def frame(args):
    """The frame's kind and seq, and the fds of an SCM_RIGHTS control message."""
    data = re.search(r'iov_base="((?:[^"\\]|\\.)*)"', args)
    raw = codecs.escape_decode(data.group(1).encode())[0] if data else b""
    fds = re.search(r"SCM_RIGHTS, cmsg_data=\[([\d, ]+)\]", args)
    kind = KINDS.get(raw[0], f"kind {raw[0]}") if raw else "?"
    seq = int.from_bytes(raw[8:16], "little") if len(raw) >= 16 else None
    return kind, seq, [int(x) for x in fds.group(1).split(",")] if fds else []

def who(pid):
    return "master" if pid == master else f"worker {pid}" if pid in workers else f"thread {pid}"

accepted = {}    # master fd -> the connection's record
by_seq = {}      # seq -> the connection's record
conns, pings, wrong = [], 0, []
print()
for at, pid, name, fd, args, ret, text in calls:
    note = None
    if name in ("sendmsg", "recvmsg"):
        kind, seq, fds = frame(args)
        if kind in ("Ping", "Pong"):
            pings += 1
            continue
    if pid == master and name == "accept4":
        conn = {"fd": ret, "steps": ["accept4"]}
        accepted[ret] = conn
        conns.append(conn)
        note = f"a client's connection: fd {ret} in the master"
    elif pid == master and name == "sendmsg" and kind == "Connection":
        conn = accepted.get(fds[0]) if fds else None
        if conn:
            conn.update(seq=seq, steps=conn["steps"] + ["sendmsg"])
            by_seq[seq] = conn
        note = f"the master sends frame Connection seq {seq} on a worker's channel (fd {fd}), and fd {fds} with it: SCM_RIGHTS"
    elif pid != master and name == "recvmsg" and kind == "Connection":
        conn = by_seq.get(seq)
        if conn and fds:
            conn.update(worker=pid, worker_fd=fds[0], steps=conn["steps"] + ["recvmsg"])
        note = f"{who(pid)} receives Connection seq {seq}: the same socket, now its fd {fds} (the kernel installed a new fd)"
    elif pid != master and name == "sendmsg" and kind == "Ack":
        for conn in conns:
            if conn.get("worker") == pid and conn.get("seq", seq + 1) <= seq and "ack" not in conn["steps"]:
                conn["steps"].append("ack")
        note = f"{who(pid)} acknowledges every handoff up to seq {seq}"
    elif pid == master and name == "recvmsg" and kind == "Ack":
        for conn in conns:
            if conn.get("seq", seq + 1) <= seq and "ack" in conn["steps"] and "acked" not in conn["steps"]:
                conn["steps"].append("acked")
        note = f"the master reads the Ack of seq {seq}"
    elif pid == master and name == "close" and fd in accepted:
        conn = accepted.pop(fd)
        conn["steps"].append("master close")
        note = f"the master closes its copy, fd {fd}: it holds nothing for this client any more"
    elif pid != master and name == "close":
        for conn in conns:
            if conn.get("worker") == pid and conn.get("worker_fd") == fd and "worker close" not in conn["steps"]:
                conn["steps"].append("worker close")
                note = f"{who(pid)} has answered and closes fd {fd} (Connection: close): the client sees the end"
                break
    if note:
        short = re.sub(r"msg_name=NULL, msg_namelen=0, |msg_iovlen=1, |, iov_len=1[67]", "", text).replace(", msg_flags=0}", "}")
        print(f"  {who(pid):<13} {short}")
        print(f"  {'':<13} ↳ {note}")
print()
# The master's chain is in this order; the worker closes its own fd once it
# has answered, before or after the master closes its copy.
expected = ["accept4", "sendmsg", "recvmsg", "ack", "acked", "master close"]
for i, conn in enumerate(conns, 1):
    steps = conn["steps"]
    master_chain = [step for step in steps if step != "worker close"]
    answered = steps.count("worker close") == 1 and steps.index("worker close") > steps.index("recvmsg") if "recvmsg" in steps else False
    if master_chain != expected or not answered:
        wrong.append(f"connection {i} went {' → '.join(steps)}")
if len(conns) != k:
    wrong.append(f"the master accepted {len(conns)} connections for {k} requests")
print(f"  {len(conns)} connections, each: accept4 → sendmsg (SCM_RIGHTS) → the worker's recvmsg → its Ack → the master's recvmsg → the master's close;"
      " the worker closes its own fd when it has answered"
      + (f" ({pings} ping/pong frames left out)" if pings else ""))
verdict(wrong, f"each of the {k} sockets was accepted by the master, sent once with SCM_RIGHTS, "
      f"arrived in a worker as a new fd, was acknowledged, and only then closed by the master")
PY
}

# --- 4. Balance against latency: who takes a connection ----------------------------
lesson_4() {
  local workers=4 burst=40 burst_for=2s rate=200 stall_ms=500 seq_for=3s server
  ((quick)) && burst_for=1s seq_for=1500ms
  local servers=(drain single exclusive blocking reuseport)
  echo "lesson 4: balance against latency: $workers workers take connections from one shared listening socket"
  echo "  (handoff --pass listener --accept STRATEGY) or each from its own (--pass reuseport); three loads each:"
  echo "  a burst: $burst keep-alive connections opened at once (loadgen --connections $burst --duration $burst_for)"
  echo "  a stall: the first worker stopped (SIGSTOP) for ${stall_ms} ms under $rate new connections a second"
  echo "    (loadgen --new-conn --rate $rate --stop <worker> --stop-after 500ms --stop-for ${stall_ms}ms)"
  echo "  one at a time: each connection closed before the next opens (loadgen --connections 1 --new-conn --duration $seq_for)"
  for server in "${servers[@]}"; do
    if [[ $server == reuseport ]]; then
      serve handoff-reuseport
    else
      serve handoff-listener --accept "$server"
    fi
    # The kernel's view: how many sockets listen on the port (ss), and which
    # socket each process's fd names (/proc/PID/fd: socket:[inode]).
    local listening inodes=() pid
    listening=$(ss -Hltn "sport = :$port" | wc -l)
    for pid in "$master" ${worker_pids//,/ }; do
      inodes+=("$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 -lname 'socket:*' -printf '%l\n' | sort -u | tr '\n' ' ')")
    done
    echo "$server $worker_pids $listening" >>"$tmp/servers"
    printf '%s\n' "${inodes[@]}" >"$tmp/$server.inodes"
    load "$server-burst" --target "http://127.0.0.1:$port/" --connections "$burst" --duration "$burst_for" --warmup 0s
    load "$server-stall" --target "http://127.0.0.1:$port/" --new-conn --rate "$rate" --connections 32 \
      --duration 2s --warmup 200ms --timeout 5s --stop "$first_worker" --stop-after 500ms --stop-for "${stall_ms}ms"
    load "$server-seq" --target "http://127.0.0.1:$port/" --connections 1 --new-conn --duration "$seq_for" --warmup 300ms
    stop_server
  done
  judge "$tmp" "$stall_ms" <<'PY'
import json
tmp, stall_ms = sys.argv[1], float(sys.argv[2])
low, high = 0.15, 0.35  # blocking's bound, as handoff/tests/cluster.rs (issue 13) asserts it
servers = [line.split() for line in open(f"{tmp}/servers")]
name = lambda server: "handoff-reuseport" if server == "reuseport" else f"--accept {server}"
wrong = []

def per_worker(server, pids, load):
    report = json.load(open(f"{tmp}/{server}-{load}.json"))
    by_pid = {w["pid"]: w["connections"] for w in report["workers"]["by_pid"]}
    strays = set(by_pid) - set(pids)
    if strays:
        wrong.append(f"{name(server)} {load}: answers from pids {sorted(strays)} that are not its workers")
    if report["requests"]["failed"]:
        wrong.append(f"{name(server)} {load}: {report['requests']['failed']} requests failed")
    return report, [by_pid.get(p, 0) for p in pids]

def shares(counts):
    total = sum(counts)
    # Jain's fairness index: 1 when even, 1/n when one worker takes all.
    jain = total ** 2 / (len(counts) * sum(c * c for c in counts)) if total else 0
    return total, (max(counts) / total if total else 0), jain

print()
print("  the kernel's view: listening sockets on the port (ss -ltn), and the sockets of master and workers (/proc/PID/fd)")
for server, pids, listening in servers:
    inodes = [set(line.split()) for line in open(f"{tmp}/{server}.inodes")]
    shared = set.intersection(*inodes)
    print(f"  {name(server):<26} {listening} listening socket(s); one socket in every process's fd table: "
          + (", ".join(sorted(shared)) if shared else "none"))

print()
print(f"  a burst: connections per worker (ready-line order)   largest share   Jain's index")
for server, pids, _ in servers:
    pids = [int(p) for p in pids.split(",")]
    _, counts = per_worker(server, pids, "burst")
    total, largest, jain = shares(counts)
    print(f"  {name(server):<26} {' '.join(f'{c:>4}' for c in counts)}  of {total:<6} {largest:>6.0%}          {jain:.2f}")

print()
print(f"  a stall of {stall_ms:.0f} ms: requests    p50       p99       longest   waited ≥ {stall_ms / 10:.0f} ms")
waited = {}
for server, pids, _ in servers:
    pids = [int(p) for p in pids.split(",")]
    report, _ = per_worker(server, pids, "stall")
    latency = report["latency"]["request"]
    stall = report.get("stall_waits") or {}
    waited[server] = stall.get("at_least_tenth", 0)
    stalls = report.get("stalls") or []
    if not stalls or stalls[0].get("error"):
        wrong.append(f"{name(server)}: the worker was not stopped ({stalls})")
    print(f"  {name(server):<26} {report['requests']['ok']:>7}  {latency['p50_us'] / 1000:>6.1f} ms {latency['p99_us'] / 1000:>6.1f} ms "
          f"{latency['max_us'] / 1000:>6.0f} ms   {waited[server]}")

print()
print(f"  one at a time: connections per worker (ready-line order)   largest share   Jain's index")
for server, pids, _ in servers:
    pids = [int(p) for p in pids.split(",")]
    _, counts = per_worker(server, pids, "seq")
    total, largest, jain = shares(counts)
    print(f"  {name(server):<26} {' '.join(f'{c:>6}' for c in counts)}  of {total:<7} {largest:>6.0%}          {jain:.2f}")
    if server == "blocking" and (not total or not all(low <= c / total <= high for c in counts)):
        wrong.append(f"--accept blocking gave {counts} one at a time, expected each {low:.0%}..{high:.0%}")

# The stall: reuseport's stopped worker keeps its share of new connections
# (its own queue, chosen by a hash); a shared queue is taken by the others.
shared_most = max(v for k, v in waited.items() if k != "reuseport")
if waited.get("reuseport", 0) < 10 or waited["reuseport"] <= 2 * shared_most:
    wrong.append(f"in the stall {waited.get('reuseport')} requests waited ≥ {stall_ms / 10:.0f} ms with reuseport, "
                 f"at most {shared_most} with a shared queue: expected at least 10, and more than twice as many")
verdict(wrong, f"in the stall, the stopped worker's own queue held {waited.get('reuseport')} of reuseport's requests "
        f"(at most {shared_most} waited with a shared queue, which the other workers took); one at a time, "
        f"--accept blocking turned the 4 workers in rotation (each {low:.0%}..{high:.0%})")
PY
}

# --- 5. A worker dies ---------------------------------------------------------------
# The worker is stopped first (SIGSTOP), then killed while stopped: it dies
# holding what it had taken and what was on its way to it, which is where the
# modes differ.
lesson_5() {
  local c=8 rate=400 duration=4s stop_after=1s kill_after=2s mode
  ((quick)) && duration=2500ms stop_after=500ms kill_after=1200ms
  echo "lesson 5: a worker dies: one of $workers workers stopped (SIGSTOP) $stop_after into the run and killed (SIGKILL)"
  echo "  at $kill_after, still stopped; $c clients, $rate new connections a second, each request computing 2 ms"
  echo "  (loadgen --new-conn --rate $rate --stop <worker> --stop-after $stop_after --kill <worker> --kill-after $kill_after)"
  for mode in "${modes[@]}"; do
    local logged
    logged=0
    [[ -f $tmp/log ]] && logged=$(wc -l <"$tmp/log")
    # --worker-timeout 60s: the master must not replace the stopped worker first.
    serve "$mode" --worker-timeout 60s
    load "$mode" --target "http://127.0.0.1:$port/?work_us=2000" --connections "$c" --new-conn --rate "$rate" \
      --duration "$duration" --warmup 200ms --timeout 5s --stop "$first_worker" --stop-after "$stop_after" \
      --stop-for 5s --kill "$first_worker" --kill-after "$kill_after"
    stop_server
    # The server's stdout: its ready line, then a respawn line for the successor;
    # its log: how many unacknowledged handoffs the master gave to another worker.
    local rescued
    rescued=$(tail -n +"$((logged + 1))" "$tmp/log" | sed -n 's/.*re-handing unacknowledged connections.*connections=\([0-9]*\).*/\1/p' |
      awk '{ n += $1 } END { print n + 0 }')
    echo "$mode $first_worker $rescued" >>"$tmp/killed"
    cp "$tmp/ready" "$tmp/$mode.events"
  done
  judge "$tmp" "$c" <<'PY'
import json
tmp, c = sys.argv[1], int(sys.argv[2])
wrong, failed_by = [], {}
print(f"  {'mode':<18} {'ok':>7} {'failed':>7} {'rescued':>8}  successor answered   longest request")
for line in open(f"{tmp}/killed"):
    mode, killed, rescued = line.split()
    report = json.load(open(f"{tmp}/{mode}.json"))
    events = [json.loads(e) for e in open(f"{tmp}/{mode}.events") if e.strip()]
    successor = next((e["pid"] for e in events if e.get("event") == "respawn" and str(e["old_pid"]) == killed), None)
    fault = report["fault"] or {}
    kill_ms = fault.get("at_ms")
    served = {str(w["pid"]): w for w in report["workers"]["by_pid"]}
    failed = report["requests"]["failed"]
    failed_by[mode] = failed
    kinds = {k: v for k, v in report["errors"]["by_kind"].items() if v}
    longest = report["latency"]["request"]["max_us"] / 1000
    after = None
    if successor is not None and str(successor) in served and kill_ms is not None:
        after = served[str(successor)]["first_ms"] - kill_ms
    how = ", ".join(f"{k} {v}" for k, v in kinds.items())
    print(f"  {mode:<18} {report['requests']['ok']:>7,} {failed:>7} {rescued if mode == 'handoff-socket' else '–':>8}  "
          + (f"{after:>5.0f} ms after the kill" if after is not None else "no successor answered")
          + f"   {longest:>6.0f} ms" + (f"   ({how})" if how else ""))
    if fault.get("error") or kill_ms is None:
        wrong.append(f"{mode}: the kill did not happen ({fault.get('error')})")
    if failed > c:
        wrong.append(f"{mode} lost {failed} requests, more than the {c} clients can have had in flight")
    if kinds.get("connect_refused") or kinds.get("timeout"):
        wrong.append(f"{mode}: {kinds}")
    if after is None:
        wrong.append(f"{mode}: no successor of {killed} answered")
    if mode == "handoff-socket" and int(rescued) < 1:
        wrong.append("the handoff-socket master gave no unacknowledged connection to another worker")
if failed_by.get("proxy", 0) < 1:
    wrong.append("the proxy lost no request: none was relayed to the stopped worker")
verdict(wrong, f"the proxy lost the requests it had relayed to the worker ({failed_by.get('proxy')}); the handoff-socket "
        f"master gave the sockets the worker had not acknowledged to another worker; no mode lost more than its "
        f"{c} clients' requests in flight, none was refused, and a successor served")
PY
}

# --- 6. Upgrading without dropping anyone --------------------------------------------
# The upgrades are scripts/upgrade.py's (REPORT.md §8's driver): one per mode
# and strategy, under its loadgen; this lesson reads the JSON it writes.
lesson_6() {
  local rate=1000 lead=1s every=3s
  ((quick)) && every=2s
  echo "lesson 6: upgrading without dropping anyone: $rate new connections a second (open loop), $workers workers;"
  echo "  ${lead} into the run, the master is replaced by a new one whose workers take 200 ms to start (--init-delay 200ms):"
  echo "  restart = SIGTERM, wait for its exit, start the new one on the same port; takeover = --takeover over --upgrade-socket"
  echo "  scripts/upgrade.py --strategy restart --strategy takeover --upgrades 1 --rate $rate --lead $lead --every $every"
  python3 "$root/scripts/upgrade.py" --bin-dir "$bin" --workers "$workers" --init-delay 200ms \
    --strategy restart --strategy takeover --upgrades 1 --rate "$rate" --lead "$lead" --every "$every" \
    --out "$tmp" --log "$tmp/log" "${modes[@]}" >"$tmp/upgrade.txt" 2>&1 &
  driver=$!
  local status=0
  wait "$driver" || status=$?
  driver=
  if ((status)); then
    echo "lesson.sh: scripts/upgrade.py failed (exit $status):" >&2
    tail -3 "$tmp/upgrade.txt" >&2
    exit 1
  fi
  judge "$tmp" "$rate" "${modes[@]}" <<'PY'
import json, sys
tmp, rate, modes = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
wrong = []
print(f"  {'mode':<18} {'upgrade':<9} {'ok':>6} {'failed':>7} {'refused':>8}  {'≈ port closed':<14} {'answered by':<22} longest request")
for mode in modes:
    for how in ("restart", "takeover"):
        report = json.load(open(f"{tmp}/upgrade-{mode}-{how}.json"))
        events = report["upgrades"]["events"]
        if len(events) != 1:
            wrong.append(f"{mode} {how}: {len(events)} upgrades recorded, expected 1")
            continue
        event = events[0]
        kinds = {k: v for k, v in report["errors"]["by_kind"].items() if v}
        failed, refused = report["requests"]["failed"], kinds.get("connect_refused", 0)
        by_pid = {w["pid"]: w["requests"] for w in report["workers"]["by_pid"]}
        answered_old = sum(by_pid.get(p, 0) for p in event["old_workers"])
        answered_new = sum(by_pid.get(p, 0) for p in event["new_workers"])
        longest = report["latency"]["request"]["max_us"] / 1000
        closed = f"{refused / rate * 1000:.0f} ms" if refused else "never"
        others = ", ".join(f"{k} {v}" for k, v in kinds.items() if k != "connect_refused")
        print(f"  {mode:<18} {how:<9} {report['requests']['ok']:>6,} {failed:>7} {refused:>8}  {closed:<14} "
              f"{f'old {answered_old}, new {answered_new}':<22} {longest:.0f} ms" + (f"  ({others})" if others else ""))
        if not answered_old or not answered_new:
            wrong.append(f"{mode} {how}: answers from the old workers {answered_old}, the new {answered_new}: the upgrade was not inside the run")
        if how == "restart" and not refused:
            wrong.append(f"{mode} restart: no connection refused")
        if how == "takeover":
            old_master, new_master = event["old_master"], event["new_master"]
            if failed:
                wrong.append(f"{mode} takeover: {failed} requests failed ({kinds})")
            if event["old_exit_code"] != 0:
                wrong.append(f"{mode} takeover: the old master exited {event['old_exit_code']}")
            if event.get("old_handover_to") != new_master:
                wrong.append(f"{mode} takeover: the old master {old_master} printed no handover line to {new_master} "
                             f"(to_pid {event.get('old_handover_to')})")
            if event.get("new_takeover_from") != old_master:
                wrong.append(f"{mode} takeover: the new master's ready line says takeover_from "
                             f"{event.get('new_takeover_from')}, not {old_master}")
verdict(wrong, f"every restart refused connections while no socket listened on the port, "
      f"every takeover failed none: the socket never stopped listening, and the old workers served until the new ones were ready")
PY
}

"lesson_$lesson"
