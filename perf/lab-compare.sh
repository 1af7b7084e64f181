#!/usr/bin/env bash
# End-to-end comparison in the namespace lab (scripts/lab/lab.sh): fnatd vs the gateway
# namespace's own kernel doing nftables DNAT+SNAT, same addresses, same real servers (nginx).
#
#   requests/s     wrk -t1 -c32, keep-alive, 8 s
#   connections/s  ab -c32 -n 10000, one new TCP connection per request
#
# The gateway has CPU 1 to itself in both cases: fnatd's worker lcore is pinned there; the
# kernel gateway's receive processing is steered there with RPS on its interfaces. The client
# (wrk/ab) and the servers are pinned to CPU 0. Also measures fnatd on each PMD that can attach
# to a veth (net_af_packet, net_af_xdp, net_tap) with the wrk run.
#
# Usage (as root): perf/lab-compare.sh [--append]   (--append adds the table to perf/RESULTS.md)
# FNATD: the fnatd binary (default target/release/fnatd). PMDS: the PMDs to try.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "lab-compare: run as root"; exit 1; }
export FNATD=${FNATD:-target/release/fnatd}
[ -x "$FNATD" ] || { echo "lab-compare: $FNATD missing (make build)"; exit 1; }
for t in wrk ab nft taskset nginx; do command -v $t >/dev/null || { echo "lab-compare: $t missing (make setup)"; exit 1; }; done
VIP=198.18.10.100
DUR=${DUR:-8}
current=""
trap '[ -n "$current" ] && scripts/lab/lab.sh down "$current"' EXIT INT TERM

# One measurement: $1 = label; environment selects the gateway.
measure() {
  local label=$1 p
  p=lc$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')
  current=$p
  LAB_PREFIX=$p LAB_SERVERS=2 LAB_HTTP=nginx scripts/lab/lab.sh up >/dev/null
  # Servers and client on CPU 0.
  for pid in $(cat "/tmp/fnat-lab-$p/pids"); do
    for t in $(pgrep -g "$pid" 2>/dev/null || true); do taskset -a -p -c 0 "$t" >/dev/null 2>&1 || true; done
  done
  ip netns exec "${p}c" taskset -c 0 wrk -t1 -c32 -d2s "http://$VIP/" >/dev/null 2>&1 || true  # warm-up
  local rps cps werr aerr
  local w; w=$(ip netns exec "${p}c" taskset -c 0 wrk -t1 -c32 -d"${DUR}s" "http://$VIP/" 2>&1)
  rps=$(awk '/Requests\/sec/ {printf "%d", $2}' <<<"$w")
  werr=$(grep -E "Socket errors|Non-2xx" <<<"$w" | tr -s ' ' | tr '\n' ' ' || true)
  if [ "${SKIP_AB:-0}" != 1 ]; then
    local a; a=$(ip netns exec "${p}c" taskset -c 0 ab -q -s 5 -c 32 -n 10000 "http://$VIP/" 2>&1)
    cps=$(awk '/Requests per second/ {printf "%d", $4}' <<<"$a")
    aerr=$(awk '/Failed requests/ {print $3}' <<<"$a")
  else
    cps="-"; aerr="-"
  fi
  scripts/lab/lab.sh down "$p"
  current=""
  printf '| %s | %s | %s | %s |\n' "$label" "${rps:-?}" "${cps:-?}" "failed: ab ${aerr:-?} ${werr:+; wrk $werr}"
}

rows=()
for pmd in ${PMDS:-af_packet af_xdp tap}; do
  skip=1; [ "$pmd" = af_packet ] && skip=0
  if row=$(LAB_GATEWAY=fnatd LAB_PMD=$pmd SKIP_AB=$skip measure "fnatd, net_$pmd, 1 worker on CPU 1" 2>&1 | tail -1); then
    rows+=("$row")
  else
    rows+=("| fnatd, net_$pmd | did not come up | - | $(tail -c 200 <<<"$row" | tr '\n' ' ') |")
  fi
  echo "$row"
done
row=$(LAB_GATEWAY=nft measure "kernel nftables DNAT+SNAT, RPS on CPU 1" | tail -1)
rows+=("$row"); echo "$row"

table=$(
  echo "| gateway | requests/s (wrk -c32, keep-alive) | connections/s (ab -c32, 1 conn/request) | errors |"
  echo "|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
)
echo "$table"
if [ "${1:-}" = --append ]; then
  {
    echo
    echo "## Namespace lab: fnatd vs kernel nftables (perf/lab-compare.sh, $(date -u +%Y-%m-%d))"
    echo
    echo "$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)); veth pairs;"
    echo "2 nginx real servers; client and servers on CPU 0, the gateway on CPU 1; no hugepages."
    echo
    echo "$table"
  } >> perf/RESULTS.md
fi
