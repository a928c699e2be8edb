#!/usr/bin/env python3
"""Replace a running master by a new one, N times in a row, and measure it:
per mode and strategy, from the new master's start to its `ready` line and to
the old master's exit, and (with --rate) what the clients saw meanwhile.

usage: scripts/upgrade.py [--bin-dir target/release] [--workers 2] [--init-delay 0s]
                          [--strategy S]... [--upgrades 10] [--every 2s] [--lead 1s]
                          [--rate R --out DIR] [--loadgen-cpus LIST --server-cpus LIST]
                          [--commands FILE] [--log FILE] [MODE...]
MODE: proxy, handoff-socket, handoff-listener, handoff-reuseport (default: all)
S (default: takeover):
  takeover         the new master takes the listening sockets over SCM_RIGHTS
                   (`--takeover`, ARCHITECTURE.md "Upgrades")
  restart          SIGTERM to the old master, wait for its exit, start the new one
                   on the same port
  overlap          handoff-reuseport only: the new master binds its own
                   SO_REUSEPORT listeners on the port; at its `ready`, SIGTERM to
                   the old one (net.ipv4.tcp_migrate_req as the host has it)
  overlap-migrate  the same, in a network namespace of its own (`unshare -n`,
                   root only) with net.ipv4.tcp_migrate_req=1 (Linux >= 5.14: a
                   closing listener's queue moves to the others)
A strategy that does not apply to a mode (overlap outside handoff-reuseport)
is skipped.

Without --rate: no load, one line per cell (the mechanism's own time). With
--rate R: loadgen makes R requests/s in an open loop, a new connection per
request, with `--timeline`, for --lead before the first upgrade and --every per
upgrade (an upgrade every --every); its JSON goes to
DIR/upgrade-MODE-STRATEGY.json with labels section=upgrade, mode, strategy,
and this script adds the `upgrades` block (bench/loadgen/schema.json) to it:
per upgrade the pids, the times, the old master's exit code, and what the two
masters said of each other (the old one's `handover` line, the new `ready`
line's `takeover_from`), recorded, not judged: its readers judge (REPORT.md
§8; lesson 6 of scripts/lesson.sh). Every server, and loadgen, is stopped by
its pid, also on failure or SIGTERM. Exit 2 on bad usage.
"""
import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time

COMMANDS = {
    "proxy": ["proxy"],
    "handoff-socket": ["handoff", "--pass", "socket"],
    "handoff-listener": ["handoff", "--pass", "listener"],
    "handoff-reuseport": ["handoff", "--pass", "reuseport"],
}
STRATEGIES = ["takeover", "restart", "overlap", "overlap-migrate"]
MIGRATE_REQ = "/proc/sys/net/ipv4/tcp_migrate_req"
# How long a master may take to print its ready line or to exit.
READY_TIMEOUT_S = 30
EXIT_TIMEOUT_S = 30


def usage_error(message):
    print(f"upgrade.py: {message}", file=sys.stderr)
    sys.exit(2)


def seconds(text):
    """A duration as the binaries take it (humantime: 500ms, 2s, 1m); seconds."""
    units = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}
    for unit in sorted(units, key=len, reverse=True):
        if text.endswith(unit):
            try:
                return float(text[: -len(unit)]) * units[unit]
            except ValueError:
                break
    raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 500ms or 2s")


def applies(mode, strategy):
    return not strategy.startswith("overlap") or mode == "handoff-reuseport"


class Cluster:
    """The masters started, so that every one is stopped by its pid."""

    def __init__(self, options, mode):
        self.options, self.mode, self.started = options, mode, []

    def start(self, args):
        command = COMMANDS[self.mode]
        argv = [os.path.join(self.options.bin_dir, command[0])] + command[1:]
        argv += ["--workers", self.options.workers, "--init-delay", self.options.init_delay] + args
        if self.options.server_cpus:
            argv = ["taskset", "-c", self.options.server_cpus] + argv
        log(self.options, argv)
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.options.log_file, text=True)
        self.started.append(process)
        return process

    def stop_all(self):
        for process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def log(options, argv):
    if options.commands:
        with open(options.commands, "a") as commands:
            commands.write(" ".join(argv) + "\n")


def ready_line(process):
    """The `ready` event of a master (other lines, e.g. `handover`, skipped)."""
    for line in process.stdout:
        event = json.loads(line)
        if event["event"] == "ready":
            return event
    raise SystemExit(f"upgrade.py: a master exited before its ready line (exit {process.wait()})")


def handover_to(process):
    """After a master's exit: the `to_pid` of the `handover` line it printed
    after its ready line, None without one. Only the master writes to its
    stdout (its workers' is /dev/null), so the pipe ends at its exit."""
    to_pid = None
    for line in process.stdout:
        event = json.loads(line)
        if event["event"] == "handover":
            to_pid = event["to_pid"]
    return to_pid


def now_ms():
    return time.time() * 1000.0


def upgrade(cluster, strategy, old, old_ready, path, port):
    """One upgrade of `old` by `strategy`; returns (the new master, its ready
    event, the event record)."""
    began = now_ms()
    at = lambda: now_ms() - began  # noqa: E731 (ms since the upgrade began)
    if strategy == "restart":
        old.send_signal(signal.SIGTERM)
        code = old.wait(timeout=EXIT_TIMEOUT_S)
        old_exit = at()
        new_start = at()
        new = cluster.start(["--listen", f"127.0.0.1:{port}"])
        ready = ready_line(new)
        new_ready = at()
    else:
        new_start = at()
        if strategy == "takeover":
            new = cluster.start(["--takeover", path, "--upgrade-socket", path])
        else:
            new = cluster.start(["--listen", f"127.0.0.1:{port}"])
        ready = ready_line(new)
        new_ready = at()
        if strategy != "takeover":
            old.send_signal(signal.SIGTERM)
        code = old.wait(timeout=EXIT_TIMEOUT_S)
        old_exit = at()
    event = {
        "at_unix_ms": began,
        "old_master": old.pid,
        "old_workers": [worker["pid"] for worker in old_ready["workers"]],
        "new_master": new.pid,
        "new_workers": [worker["pid"] for worker in ready["workers"]],
        "new_start_ms": round(new_start, 3),
        "new_ready_ms": round(new_ready, 3),
        "old_exit_ms": round(old_exit, 3),
        "old_exit_code": code if code >= 0 else None,
        # What the two masters said of each other (a takeover: the old one's
        # `handover` names the new one, the new `ready` names the old one);
        # recorded, not judged, so that a reader (lesson 6) can check them.
        "old_handover_to": handover_to(old),
        "new_takeover_from": ready.get("takeover_from"),
    }
    return new, ready, event


def loadgen(options, mode, strategy, port, json_path):
    duration = options.lead + options.upgrades * options.every
    argv = [
        os.path.join(options.bin_dir, "loadgen"),
        "--target", f"http://127.0.0.1:{port}/",
        "--rate", str(options.rate), "--new-conn", "--connections", "32",
        "--duration", f"{duration * 1000:.0f}ms", "--warmup", "200ms", "--timeout", "2s",
        "--timeline", "--sample-interval", "50ms",
        "--label", "section=upgrade", "--label", f"mode={mode}",
        "--label", f"strategy={strategy}", "--label", "load=newconn",
        "--label", f"workers={options.workers}", "--json", json_path,
    ]
    if options.loadgen_cpus:
        argv = ["taskset", "-c", options.loadgen_cpus] + argv
    log(options, argv)
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=options.log_file)


def migrate_req():
    try:
        with open(MIGRATE_REQ) as value:
            return int(value.read())
    except OSError:
        return None


def cell(options, mode, strategy):
    """N upgrades of one mode by one strategy; returns the events and the
    loadgen JSON path (None without load)."""
    if strategy == "overlap-migrate" and not options.in_netns:
        return in_netns(options, mode)
    cluster = Cluster(options, mode)
    events, json_path = [], None
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "upgrade.sock")
        first = ["--listen", "127.0.0.1:0"]
        if strategy == "takeover":
            first += ["--upgrade-socket", path]
        load = None
        try:
            old = cluster.start(first)
            old_ready = ready_line(old)
            port = int(old_ready["listen"].rsplit(":", 1)[1])
            if options.rate:
                json_path = os.path.join(options.out, f"upgrade-{mode}-{strategy}.json")
                load = loadgen(options, mode, strategy, port, json_path)
                time.sleep(0.2 + options.lead)  # the warm-up, then the lead
            for n in range(options.upgrades):
                due = time.monotonic() + options.every
                old, old_ready, event = upgrade(cluster, strategy, old, old_ready, path, port)
                events.append(event)
                if load is not None and n + 1 < options.upgrades:
                    time.sleep(max(0.0, due - time.monotonic()))
            if load is not None and load.wait() != 0:
                raise SystemExit(f"upgrade.py: loadgen failed for {mode} {strategy} (exit {load.returncode})")
        finally:
            if load is not None and load.poll() is None:  # on failure or SIGTERM
                load.terminate()
                load.wait()
            cluster.stop_all()
    if json_path:
        with open(json_path) as report_file:
            report = json.load(report_file)
        report["upgrades"] = {
            "init_delay_ms": seconds(options.init_delay) * 1000,
            "tcp_migrate_req": migrate_req(),
            "netns": options.in_netns,
            "kernel": platform.release(),
            "events": events,
        }
        with open(json_path, "w") as report_file:
            json.dump(report, report_file, indent=2)
    return events, json_path


def in_netns(options, mode):
    """overlap-migrate: this script again, in a network namespace of its own
    with net.ipv4.tcp_migrate_req=1; its events read back from a file."""
    with tempfile.TemporaryDirectory() as folder:
        events_path = os.path.join(folder, "events.json")
        argv = ["unshare", "--net", "--", sys.executable, os.path.abspath(__file__), "--in-netns", events_path]
        for flag in ["bin_dir", "workers", "init_delay", "upgrades", "rate", "out", "loadgen_cpus",
                     "server_cpus", "commands", "log"]:
            value = getattr(options, flag)
            if value not in (None, ""):
                argv += ["--" + flag.replace("_", "-"), str(value)]
        argv += ["--every", f"{options.every}s", "--lead", f"{options.lead}s"]
        argv += ["--strategy", "overlap-migrate", mode]
        log(options, argv)
        try:
            code = subprocess.run(argv).returncode
        except OSError as err:  # no unshare(1) here
            code = f"{err}"
        if code != 0 or not os.path.exists(events_path):
            print(f"upgrade.py: overlap-migrate skipped for {mode}: no network namespace here "
                  f"(unshare --net, which needs root: {code})", file=sys.stderr)
            return None
        with open(events_path) as events_file:
            return json.load(events_file)


def netns_setup():
    """In the new namespace: loopback up, and migration of a closing
    listener's requests to the other SO_REUSEPORT listeners."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    with open(MIGRATE_REQ, "w") as value:
        value.write("1")


def describe(mode, strategy, events, json_path, options):
    ready = [e["new_ready_ms"] - e["new_start_ms"] for e in events]
    exits = [e["old_exit_ms"] for e in events]
    line = (f"{mode} | {strategy} | {options.init_delay} | {len(events)} | "
            f"{statistics.median(ready):.0f} ({max(ready):.0f}) | {statistics.median(exits):.0f} ({max(exits):.0f})")
    if json_path:
        with open(json_path) as report_file:
            report = json.load(report_file)
        kinds = report["errors"]["by_kind"]
        failed = ", ".join(f"{kind} {count}" for kind, count in kinds.items() if count) or "none"
        line += f" | {report['requests']['ok']} | {failed}"
    print(line, flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin-dir", default="target/release")
    parser.add_argument("--workers", default="2")
    parser.add_argument("--init-delay", default="0s")
    parser.add_argument("--strategy", action="append", choices=STRATEGIES)
    parser.add_argument("--upgrades", type=int, default=10)
    parser.add_argument("--every", type=seconds, default=2.0)
    parser.add_argument("--lead", type=seconds, default=1.0)
    parser.add_argument("--rate", type=int)
    parser.add_argument("--out")
    parser.add_argument("--loadgen-cpus")
    parser.add_argument("--server-cpus")
    parser.add_argument("--commands")
    parser.add_argument("--log")
    parser.add_argument("--in-netns", help=argparse.SUPPRESS)
    parser.add_argument("modes", nargs="*", default=list(COMMANDS))
    parser.error = usage_error  # one line, exit 2
    # SIGTERM (a caller stopping this script by its pid) as Ctrl-C: unwind,
    # so that `finally` stops every master by its pid.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    options = parser.parse_args()
    for mode in options.modes:
        if mode not in COMMANDS:
            usage_error(f"{mode!r} is not a mode ({', '.join(COMMANDS)})")
    if options.upgrades < 1:
        usage_error("--upgrades must be at least 1")
    if options.rate is not None and (options.rate < 1 or not options.out):
        usage_error("--rate needs a positive rate and --out DIR")
    if options.out and not os.path.isdir(options.out):
        usage_error(f"--out {options.out}: no such folder")
    try:
        seconds(options.init_delay)
    except argparse.ArgumentTypeError as err:
        usage_error(f"--init-delay: {err}")
    strategies = options.strategy or ["takeover"]
    events_path, options.in_netns = options.in_netns, options.in_netns is not None
    options.log_file = open(options.log, "a") if options.log else subprocess.DEVNULL
    if options.in_netns:
        netns_setup()
        events, json_path = cell(options, options.modes[0], strategies[0])
        with open(events_path, "w") as events_file:
            json.dump([events, json_path], events_file)
        return 0
    load_columns = " | ok | failed" if options.rate else ""
    print("mode | strategy | init-delay | upgrades | start->ready median (max) ms | "
          f"upgrade start->old exit median (max) ms{load_columns}", flush=True)
    for mode in options.modes:
        for strategy in strategies:
            if not applies(mode, strategy):
                continue
            result = cell(options, mode, strategy)
            if result is not None:
                describe(mode, strategy, *result, options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
