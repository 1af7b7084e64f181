#!/usr/bin/env bash
# Runs every cargo-fuzz target of fnat for a bounded time: what CI calls.
#
#   scripts/fuzz-smoke.sh                 # FUZZ_SECONDS (default 20) per target
#   FUZZ_SECONDS=600 scripts/fuzz-smoke.sh engine_process
#
# Works with the stable toolchain: `--sanitizer none` needs no nightly flag (the engine has no
# `unsafe`; libFuzzer's coverage instrumentation is a stable codegen option), and builds are
# release with debug assertions and overflow checks on (cargo-fuzz's default), so arithmetic
# overflow is a crash too. For AddressSanitizer on stable: FUZZ_SANITIZER=address (this script
# then sets RUSTC_BOOTSTRAP=1 for the -Zsanitizer flag).
#
# The seed corpora in fuzz/corpus/<target> are read, never written: what a run
# discovers goes to a scratch directory. A crash fails the script and leaves the input in
# fuzz/artifacts/<target>/; reproduce it with
#   (cd fuzz && cargo fuzz run --sanitizer none <target> <artifact>)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FUZZ_DIR="$ROOT/fuzz"
SECONDS_PER_TARGET="${FUZZ_SECONDS:-20}"
SANITIZER="${FUZZ_SANITIZER:-none}"
ALL_TARGETS=(engine_process config_parse control_proto keepalived_conf client_address sync_decode)
if [ "$#" -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi

fail() { echo "fuzz-smoke: FAILED: $*" >&2; exit 1; }

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz-smoke: cargo-fuzz is missing; installing it with cargo install"
    cargo install cargo-fuzz --locked || fail "cannot install cargo-fuzz (cargo install cargo-fuzz)"
    cargo fuzz --version >/dev/null 2>&1 || fail "cargo-fuzz installed but 'cargo fuzz' does not run (is ~/.cargo/bin on PATH?)"
fi
command -v c++ >/dev/null || fail "libFuzzer needs a C++ compiler (apt-get install g++)"
if [ "$SANITIZER" != none ]; then export RUSTC_BOOTSTRAP=1; fi

cd "$FUZZ_DIR"
echo "fuzz-smoke: $(cargo fuzz --version), $(rustc --version), sanitizer $SANITIZER"
for t in "${TARGETS[@]}"; do
    cargo fuzz build --sanitizer "$SANITIZER" "$t" || fail "building fuzz target $t"
done

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for t in "${TARGETS[@]}"; do
    [ -d "corpus/$t" ] || fail "no seed corpus corpus/$t"
    mkdir -p "$scratch/$t" "artifacts/$t"
    echo "fuzz-smoke: $t for ${SECONDS_PER_TARGET}s (seeds: $(ls "corpus/$t" | wc -l))"
    log="$scratch/$t.log"
    if ! cargo fuzz run --sanitizer "$SANITIZER" "$t" "$scratch/$t" "corpus/$t" -- \
        -max_total_time="$SECONDS_PER_TARGET" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        fail "$t found a crash (input saved under $FUZZ_DIR/artifacts/$t/)"
    fi
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
    rate="$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
    [ "$runs" != '?' ] && [ "$runs" -gt 0 ] || { tail -n 30 "$log" >&2; fail "$t ran no input"; }
    echo "fuzz-smoke: $t ok: $runs runs, $rate exec/s, $(grep -o 'cov: [0-9]*' "$log" | tail -n 1)"
done
echo "fuzz-smoke: ${#TARGETS[@]} passed, 0 failed"
