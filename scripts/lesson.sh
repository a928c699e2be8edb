#!/usr/bin/env bash
# The lessons of LESSONS.md, each an experiment run end to end on loopback:
# it starts what it needs, measures, stops everything it started, prints the
# figure the lesson is about and a one-line verdict on whether it matches what
# LESSONS.md says to expect.
#
#   scripts/lesson.sh [--quick] [--bin-dir DIR] N
#
# N              the lesson: 1 (two fds per connection), 2 (the fd limit),
#                3 (watching a socket change hands, under strace), 4 (why one
#                worker takes all the load), 5 (a worker dies), 6 (upgrading
#                without dropping anyone)
# --quick        fewer connections and shorter loads, the same verdicts (the
#                test, bench/loadgen/tests/lessons.rs, runs every lesson so)
# --bin-dir DIR  use the proxy, handoff and loadgen binaries already built in
#                DIR (the test passes target/debug) instead of building them
#                with `cargo build --release` into target/release
#
# Exit codes: 0 when the verdict is `ok`, 1 when it `differs` (or a run
# failed), 2 for a lesson that does not exist, bad usage or a missing tool.
# Servers listen on 127.0.0.1 port 0 (scripts/lib.sh's start_server; lesson
# 6's are scripts/upgrade.py's) and are stopped by their pid, also when a
# lesson fails or is interrupted.
set -euo pipefail

quick=0 bin_dir= lesson=
usage_error() { echo "lesson.sh: $*" >&2; exit 2; }
while (($#)); do
  case $1 in
    --quick) quick=1; shift ;;
    --bin-dir) bin_dir=${2:?--bin-dir needs a folder}; shift 2 ;;
    -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
    echo "$mode $(fds "$master") $tree" >>"$tmp/idle"
    load "$mode" --target "http://127.0.0.1:$port/" --connections "$n" --rate "$n" --duration 1s --warmup 1s
    stop_server
  done
  python3 - "$tmp" "$n" "$workers" <<'PY'
import json, sys
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
for line in open(f"{tmp}/idle"):
    mode, idle, tree_idle = line.split()
    idle, tree_idle = int(idle), int(tree_idle)
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
if wrong:
    print("verdict: differs — " + "; ".join(wrong))
    sys.exit(1)
print(f"verdict: ok — the proxy master held 2 fds per connection ({2 * n} ± {slack} for {n}: "
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
    load "$mode" --target "http://127.0.0.1:$port/" --connections "$n" --duration 3s --warmup 0 --timeout 2s
    stop_server
  done
  python3 - "$tmp" "$n" "$limit" "$spare" "$workers" <<'PY'
import json, sys
tmp, n, limit, spare, workers = sys.argv[1], *map(int, sys.argv[2:])
wrong = []
for line in open(f"{tmp}/idle"):
    mode, idle = line.split()
    idle = int(idle)
    report = json.load(open(f"{tmp}/{mode}.json"))
    watched = report["watch"][0]
    held = max((s["fds"] for s in watched["processes"][0]["samples"]), default=0)
    if watched["error"] or watched["gone_at_ms"] is not None:
        wrong.append(f"watching the {mode} master stopped: {watched['error'] or 'it exited'}")
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
if wrong:
    print("verdict: differs — " + "; ".join(wrong))
    sys.exit(1)
print(f"verdict: ok — under --max-fds {limit} the proxy served exactly what its formula allows at once "
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
  python3 - "$tmp/trace" "$mark" "$master" "$worker_pids" "$k" <<'PY'
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
if wrong:
    print("verdict: differs — " + "; ".join(wrong))
    sys.exit(1)
print(f"verdict: ok — each of the {k} sockets was accepted by the master, sent once with SCM_RIGHTS, "
      f"arrived in a worker as a new fd, was acknowledged, and only then closed by the master")
PY
}

# --- 4. Why one worker takes all the load -----------------------------------------
lesson_4() {
  local workers=4 duration=3s server
  ((quick)) && duration=1500ms
  local servers=(drain single exclusive blocking reuseport)
  echo "lesson 4: why one worker takes all the load: $workers workers, one connection at a time (each closed before the next)"
  echo "  loadgen --connections 1 --new-conn --duration $duration; handoff --pass listener --accept STRATEGY, and --pass reuseport"
  for server in "${servers[@]}"; do
    if [[ $server == reuseport ]]; then
      serve handoff-reuseport
    else
      serve handoff-listener --accept "$server"
    fi
    echo "$server $worker_pids" >>"$tmp/servers"
    load "$server" --target "http://127.0.0.1:$port/" --connections 1 --new-conn --duration "$duration" --warmup 300ms
    stop_server
  done
  python3 - "$tmp" <<'PY'
import json, sys
tmp = sys.argv[1]
low, high = 0.15, 0.35  # blocking's bound, as handoff/tests/cluster.rs (issue 13) asserts it
wrong, largest = [], {}
print(f"  {'server':<26} {'connections per worker (ready-line order)':<42} {'largest share':<14} Jain's index")
for line in open(f"{tmp}/servers"):
    server, pids = line.split()
    pids = [int(p) for p in pids.split(",")]
    report = json.load(open(f"{tmp}/{server}.json"))
    by_pid = {w["pid"]: w["connections"] for w in report["workers"]["by_pid"]}
    counts = [by_pid.get(p, 0) for p in pids]
    total = sum(counts)
    name = "handoff-reuseport" if server == "reuseport" else f"--accept {server}"
    if total == 0:
        wrong.append(f"{name}: no connection answered")
        continue
    shares = [c / total for c in counts]
    # Jain's fairness index: 1 when even, 1/n when one worker takes all.
    jain = total ** 2 / (len(counts) * sum(c * c for c in counts))
    largest[server] = max(shares)
    print(f"  {name:<26} {' '.join(f'{c:>6}' for c in counts) + f'  of {total}':<42} "
          f"{f'{max(shares):.0%}':<14} {jain:.2f}")
    strays = set(by_pid) - set(pids)
    if strays:
        wrong.append(f"{name}: answers from pids {sorted(strays)} that are not its workers")
    if report["requests"]["failed"]:
        wrong.append(f"{name}: {report['requests']['failed']} requests failed")
    if server == "blocking" and not all(low <= s <= high for s in shares):
        wrong.append(f"--accept blocking gave shares {[f'{s:.0%}' for s in shares]}, expected each {low:.0%}..{high:.0%}")
if "blocking" not in largest:
    wrong.append("--accept blocking did not run")
if wrong:
    print("verdict: differs — " + "; ".join(wrong))
    sys.exit(1)
others = ", ".join(f"{k} {largest[k]:.0%}" for k in ("drain", "single", "exclusive", "reuseport") if k in largest)
print(f"verdict: ok — --accept blocking turned the 4 workers in rotation (each {low:.0%}..{high:.0%} of the connections); "
      f"the largest share elsewhere, printed and not checked (it depends on timing): {others}")
PY
}

# --- 5. A worker dies ---------------------------------------------------------------
lesson_5() {
  local c=8 duration=4s after=1500ms mode
  ((quick)) && duration=2s after=700ms
  echo "lesson 5: a worker dies: SIGKILL to one of $workers workers $after into the run,"
  echo "  $c clients each making a new connection per request (loadgen --new-conn --kill <worker> --kill-after $after)"
  for mode in "${modes[@]}"; do
    serve "$mode"
    load "$mode" --target "http://127.0.0.1:$port/" --connections "$c" --new-conn \
      --duration "$duration" --warmup 200ms --kill "$first_worker" --kill-after "$after"
    stop_server
    # The server's stdout: its ready line, then a respawn line for the successor.
    echo "$mode $first_worker" >>"$tmp/killed"
    cp "$tmp/ready" "$tmp/$mode.events"
  done
  python3 - "$tmp" "$c" <<'PY'
import json, sys
tmp, c = sys.argv[1], int(sys.argv[2])
wrong = []
for line in open(f"{tmp}/killed"):
    mode, killed = line.split()
    report = json.load(open(f"{tmp}/{mode}.json"))
    events = [json.loads(e) for e in open(f"{tmp}/{mode}.events") if e.strip()]
    successor = next((e["pid"] for e in events if e.get("event") == "respawn" and str(e["old_pid"]) == killed), None)
    fault = report["fault"] or {}
    kill_ms = fault.get("at_ms")
    served = {str(w["pid"]): w for w in report["workers"]["by_pid"]}
    failed = report["requests"]["failed"]
    kinds = {k: v for k, v in report["errors"]["by_kind"].items() if v}
    longest = report["latency"]["request"]["max_us"] / 1000
    after = None
    if successor is not None and str(successor) in served and kill_ms is not None:
        after = served[str(successor)]["first_ms"] - kill_ms
    print(f"  {mode:<18} {report['requests']['ok']:>7,} ok, {failed} failed"
          f" ({', '.join(f'{k} {v}' for k, v in kinds.items()) or 'none'}); "
          + (f"successor {successor} answered {after:.0f} ms after the kill" if after is not None else "no successor answered")
          + f"; longest request {longest:.1f} ms")
    if fault.get("error") or kill_ms is None:
        wrong.append(f"{mode}: the kill did not happen ({fault.get('error')})")
    if failed > c:
        wrong.append(f"{mode} lost {failed} requests, more than the {c} that can be in flight")
    if kinds.get("connect_refused") or kinds.get("timeout"):
        wrong.append(f"{mode}: {kinds}")
    if after is None:
        wrong.append(f"{mode}: no successor of {killed} answered")
if wrong:
    print("verdict: differs — " + "; ".join(wrong))
    sys.exit(1)
print(f"verdict: ok — in every mode at most the requests in flight on the killed worker failed "
      f"(≤ {c}, one per client), no client was refused or left waiting, and a successor served")
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
  python3 - "$tmp" "$rate" "${modes[@]}" <<'PY'
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
if wrong:
    print("verdict: differs — " + "; ".join(wrong))
    sys.exit(1)
print(f"verdict: ok — every restart refused connections while no socket listened on the port, "
      f"every takeover failed none: the socket never stopped listening, and the old workers served until the new ones were ready")
PY
}

"lesson_$lesson"
