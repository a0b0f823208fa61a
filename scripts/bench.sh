#!/usr/bin/env bash
# All of indextap's benchmarks, in order, with the machine they ran on:
#   1. cargo bench -p indextap-analyzer --bench normalise   (shape normalisation, one thread)
#   2. cargo bench -p indextap-proxy --bench overhead       (MongoDB round trips, raw and
#                                                            through the driver: direct,
#                                                            HAProxy, indextap; fake upstream)
#   3. scripts/bench-pg.sh                                  (pgbench -S: direct, HAProxy,
#                                                            PgBouncer, indextap)
#   4. scripts/bench-mem.sh                                 (peak RSS at 10,000 shapes and 2,000
#                                                            idle connections; admin latencies)
# Each of 2 and 3 prints the verdicts of issue 10's targets and ends with a "README table"
# block: the Performance section's tables are those blocks, pasted as they are. Everything
# runs as a release build. Nothing is pinned to a core: on a small machine the load
# generator, the proxy and the server share the cores, and the figures say so (the load
# average is printed at the start and at the end).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

NORMALISE_OUTPUT=$(mktemp -t indextap-normalise-XXXXXX)
trap 'rm -f "$NORMALISE_OUTPUT"' EXIT

echo "indextap benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "  cores (nproc): $(nproc)"
echo "  CPU model:     $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "  memory:        $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
echo "  kernel:        $(uname -sr)"
echo "  rustc:         $(rustc --version)"
echo "  haproxy:       $(/usr/sbin/haproxy -v 2>/dev/null | head -1 | awk '{print $3}')"
echo "  pgbouncer:     $(/usr/sbin/pgbouncer --version 2>/dev/null | head -1 | awk '{print $2}')"
echo "  load avg:      $(cut -d" " -f1-3 /proc/loadavg) (other work on the machine skews every figure)"
echo "  commit:        $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo

echo "== 1/4  cargo bench -p indextap-analyzer --bench normalise"
cargo bench -p indextap-analyzer --bench normalise | tee "$NORMALISE_OUTPUT"
echo

echo "== 2/4  cargo bench -p indextap-proxy --bench overhead"
cargo bench -p indextap-proxy --bench overhead
echo

echo "== 3/4  scripts/bench-pg.sh"
NORMALISE_OUTPUT=$NORMALISE_OUTPUT "$ROOT/scripts/bench-pg.sh"
echo

echo "== 4/4  scripts/bench-mem.sh"
"$ROOT/scripts/bench-mem.sh"
echo
echo "load avg at the end: $(cut -d" " -f1-3 /proc/loadavg)"
