#!/usr/bin/env python3
"""How long a takeover takes, per mode: N takeovers in a chain (A -> B -> C ...),
each timed from the new master's start (it connects to the upgrade socket at
once) to its `ready` line, and to the old master's exit. No load: this is the
mechanism's own time (the worker start-up is `--init-delay` plus exec).

usage: scripts/takeover-time.py [--bin-dir target/release] [--takeovers 10]
                                [--workers 2] [--init-delay 0s] [MODE...]
MODE: proxy, handoff-socket, handoff-listener, handoff-reuseport (default: all)
"""
import argparse
import json
import os
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


def start(bin_dir, mode, args):
    command = COMMANDS[mode]
    argv = [os.path.join(bin_dir, command[0])] + command[1:] + args
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def ready_line(process):
    for line in process.stdout:
        event = json.loads(line)
        if event["event"] == "ready":
            return event
    raise SystemExit(f"no ready line (exit {process.wait()})")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin-dir", default="target/release")
    parser.add_argument("--takeovers", type=int, default=10)
    parser.add_argument("--workers", default="2")
    parser.add_argument("--init-delay", default="0s")
    parser.add_argument("modes", nargs="*", default=list(COMMANDS))
    options = parser.parse_args()
    common = ["--workers", options.workers, "--init-delay", options.init_delay]
    print(f"mode | init-delay | takeovers | start->ready median (max) ms | start->old exit median (max) ms")
    for mode in options.modes:
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "upgrade.sock")
            old = start(options.bin_dir, mode, common + ["--listen", "127.0.0.1:0", "--upgrade-socket", path])
            ready_line(old)
            to_ready, to_exit = [], []
            try:
                for _ in range(options.takeovers):
                    began = time.monotonic()
                    new = start(options.bin_dir, mode, common + ["--takeover", path, "--upgrade-socket", path])
                    event = ready_line(new)
                    ready = time.monotonic()
                    assert event["takeover_from"] == old.pid, event
                    code = old.wait(timeout=30)
                    exited = time.monotonic()
                    assert code == 0, f"old master exited {code}"
                    to_ready.append((ready - began) * 1000)
                    to_exit.append((exited - began) * 1000)
                    old = new
            finally:
                old.kill()
                old.wait()
        print(
            f"{mode} | {options.init_delay} | {options.takeovers} | "
            f"{statistics.median(to_ready):.0f} ({max(to_ready):.0f}) | "
            f"{statistics.median(to_exit):.0f} ({max(to_exit):.0f})"
        )


if __name__ == "__main__":
    sys.exit(main())
