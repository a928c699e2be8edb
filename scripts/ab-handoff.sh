#!/usr/bin/env bash
# Two builds of `handoff --pass socket` side by side, CPU per request
# (README.md, "The handoff-socket master against its floor"):
#   scripts/ab-handoff.sh OLD_BIN NEW_BIN [--rounds N] [--duration 3s] [--keepalive] [--perf] [--out DIR]
# LOADGEN names the loadgen binary (default: target/release/loadgen). The
# harness is the `suite` binary (bench/suite, `suite ab-handoff --help`):
# this builds it and hands it the arguments.
set -euo pipefail
[[ ${BASH_SOURCE[0]} == */* ]] && root=${BASH_SOURCE[0]%/*}/.. || root=..
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p suite --bin suite
exec "$root/target/release/suite" ab-handoff "$@"
