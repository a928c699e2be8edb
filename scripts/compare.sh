#!/usr/bin/env bash
# The comparison: every way of sharing one port under the same loads,
# measured by loadgen, written as a results folder people learn from
# (ARCHITECTURE.md, "The comparison"). The harness is the `suite` binary
# (bench/suite): this builds it and hands it the arguments; `--help` lists
# them. SUITE_BIN names a suite binary already built (the tests pass
# theirs), which then runs as it is.
set -euo pipefail
[[ ${BASH_SOURCE[0]} == */* ]] && root=${BASH_SOURCE[0]%/*}/.. || root=..
if [[ -z ${SUITE_BIN:-} ]]; then
  cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p suite --bin suite
  SUITE_BIN=$root/target/release/suite
fi
exec "$SUITE_BIN" compare "$@"
