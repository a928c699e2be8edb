#!/usr/bin/env bash
# loadgen against wrk, side by side on the same target (one worker's own
# port), interleaved; every run and the medians:
#   bench/loadgen/scripts/vs-wrk.sh [--rounds K] [--duration S] [--loads "keepalive close"]
# The harness is the `suite` binary (bench/suite, `suite vs-wrk --help`):
# this builds it and hands it the arguments.
set -euo pipefail
[[ ${BASH_SOURCE[0]} == */* ]] && root=${BASH_SOURCE[0]%/*}/../../.. || root=../../..
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p suite --bin suite
exec "$root/target/release/suite" vs-wrk "$@"
