#!/usr/bin/env bash
# Memory benchmark (issue 9): 10,000 distinct shapes (8,000 MongoDB filters over 50
# collections, 2,000 SQL statements over 20 tables) and 2,000 idle client connections (900
# MongoDB (SecantusDB takes no more), the rest PostgreSQL) through the release build of indextap, in front of a real
# SecantusDB and a real PostgreSQL. Prints the proxy's RSS after each phase, its peak
# (VmHWM from /proc/PID/status) against the 64 MiB target, and the admin API's latencies
# (/metrics, a page of /api/v1/shapes, /api/v1/recommendations) at that size. Then, the idle
# connections closed, 40 connections send 4 MiB statements and MongoDB finds at once (3
# each), and that phase's own peak is printed against its starting RSS plus the inspection
# budget (capture.max_inspect_total_bytes).
#
# The servers, the proxy and the load run as children of the bench
# (tests/benches/memory.rs) and stop when it ends.
#
# Environment: BENCH_MEM_MONGO_SHAPES (default 8000), BENCH_MEM_SQL_SHAPES (2000),
# BENCH_MEM_CONNECTIONS (2000), BENCH_MEM_LARGE_CONNECTIONS (40), BENCH_MEM_LARGE_MIB (4),
# BENCH_MEM_LARGE_ROUNDS (3), INDEXTAP_BIN (default: build target/release/indextap),
# PG_BIN_DIR, SECANTUSD, MALLOC_MMAP_THRESHOLD_ (default 131072, as the deploy files run the
# proxy; set it empty to measure glibc's default).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

if [[ -z ${INDEXTAP_BIN:-} ]]; then
  cargo build --release -p indextap-proxy --bin indextap
  INDEXTAP_BIN=$ROOT/target/release/indextap
fi
export INDEXTAP_BIN
# Each idle connection is a file descriptor at the proxy (two: client and upstream) and at
# the bench; the default soft limit of 1024 is too low.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 16384 2>/dev/null || true

# As deploy/Dockerfile and deploy/indextap.service run the proxy (see README).
export MALLOC_MMAP_THRESHOLD_=${MALLOC_MMAP_THRESHOLD_-131072}
[[ -n $MALLOC_MMAP_THRESHOLD_ ]] || unset MALLOC_MMAP_THRESHOLD_

echo "memory benchmark: MALLOC_MMAP_THRESHOLD_=${MALLOC_MMAP_THRESHOLD_:-unset}, $(nproc) cores, load avg $(cut -d' ' -f1-3 /proc/loadavg), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
cargo bench -p indextap-tests --bench memory
