#!/usr/bin/env bash
# The fnat benchmark suite: fnatd vs dpdk-testpmd on net_pcap(infinite_rx) → net_null.
#
#   perf/run.sh            full suite (< 10 min): writes perf/RESULTS.md (its section) and
#                          perf/results.json
#   perf/run.sh --smoke    < 60 s, no thresholds, writes nothing: fails loudly if fnatd or
#                          testpmd cannot start or forward
#   perf/run.sh --methods  established forwarding per method (FNAT, NAT, DR, TUN IPIP/GUE/GRE)
#                          beside testpmd 5tswap (~3 min): its own section of perf/RESULTS.md
#
# Environment: FNATD=path (skip the build, use this binary), TESTPMD=path (default
# dpdk-testpmd), CARGO_TARGET_DIR (where the release build goes), BENCH_WORKDIR (scratch,
# default /tmp/fnat-bench). Extra arguments go to perf/bench.py (e.g. --runs 7).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"

fail() { echo "perf/run.sh: FAILED: $*" >&2; exit 1; }

testpmd="${TESTPMD:-dpdk-testpmd}"
command -v "$testpmd" >/dev/null || fail "$testpmd not found (apt-get install dpdk-dev)"
command -v python3 >/dev/null || fail "python3 not found"

if [[ -z "${FNATD:-}" ]]; then
    target="${CARGO_TARGET_DIR:-$root/target}"
    echo "perf/run.sh: building fnatd (release) into $target" >&2
    (cd "$root" && CARGO_TARGET_DIR="$target" cargo build --release -p fnatd) \
        || fail "cargo build --release -p fnatd"
    FNATD="$target/release/fnatd"
fi
[[ -x "$FNATD" ]] || fail "fnatd binary $FNATD missing"

# Both forwarders need the same CPUs: 0 for the main lcore, 1 for the forwarding lcore.
[[ "$(nproc)" -ge 2 ]] || fail "needs at least 2 CPUs"

workdir="${BENCH_WORKDIR:-/tmp/fnat-bench}"
exec python3 "$here/bench.py" --fnatd "$FNATD" --testpmd "$testpmd" --workdir "$workdir" "$@"
