#!/usr/bin/env bash
# Requests/s of every cluster mode under wrk, side by side, each round
# running every mode once (README.md, "Under wrk"):
#   scripts/wrk-modes.sh [--rounds K] [--duration S] [--workers N]
#                        [--modes "ceiling proxy ..."] [--loads "keepalive close"]
# The harness is the `suite` binary (bench/suite, `suite wrk-modes --help`):
# this builds it and hands it the arguments.
set -euo pipefail
[[ ${BASH_SOURCE[0]} == */* ]] && root=${BASH_SOURCE[0]%/*}/.. || root=..
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p suite --bin suite
exec "$root/target/release/suite" wrk-modes "$@"
