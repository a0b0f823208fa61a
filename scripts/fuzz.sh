#!/usr/bin/env bash
# Fuzz the decoders and shape lowerings with cargo-fuzz (libFuzzer).
#
#   scripts/fuzz.sh                      every target for $FUZZ_SECONDS (default 30) each
#   FUZZ_SECONDS=3600 scripts/fuzz.sh sql_lowering     one target for an hour
#
# Each run starts from the committed seeds (fuzz/seeds/<target>, made from the tests'
# fixtures) and keeps what it learns in fuzz/corpus/<target> (not committed). A crash leaves
# its input in fuzz/artifacts/<target>/; replay it with
# `cargo fuzz run --fuzz-dir fuzz -s none <target> <file>`.
#
# cargo-fuzz passes the compiler a few unstable flags; only the stable toolchain exists
# here, so RUSTC_BOOTSTRAP=1 lets it accept them. No sanitizer (`-s none`): the code is
# safe Rust, and what is hunted is panics, hangs and runaway memory.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-30}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi

cargo fuzz build --fuzz-dir fuzz -s none
for target in "${targets[@]}"; do
    printf '\n==> fuzzing %s for %ss\n' "$target" "$seconds"
    mkdir -p "fuzz/corpus/${target}"
    # -rss_limit_mb: a sidecar's budget; -timeout: no input may take seconds.
    cargo fuzz run --fuzz-dir fuzz -s none "$target" \
        "fuzz/corpus/${target}" "fuzz/seeds/${target}" -- \
        -max_total_time="$seconds" -rss_limit_mb=1024 -timeout=10 -max_len=65536 \
        -print_final_stats=1
done
