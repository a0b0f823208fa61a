#!/usr/bin/env bash
# The README's test command. The end-to-end tests drive the real `indextap` binary, and a
# `cargo test` of the tests crate does not rebuild another package's binary, so build it
# first; then run every test of the workspace (unit, golden, end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -p indextap-proxy --bin indextap
cargo test --workspace "$@"
