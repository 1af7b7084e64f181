#!/usr/bin/env bash
# The exception path measured in the namespace lab (scripts/lab/lab.sh, LAB_KERNEL_TWIN=1):
# the gateway namespace's own kernel talking to a real server through fnatd's lan twin
# (kernel → net_tap twin → kernel-path thread → ring → worker 0 → af_packet port, and back
# through the engine's ToKernel verdict), against the same kernel talking to the same server
# directly (the lab with LAB_GATEWAY=nft, where the gateway's kernel owns 198.19.1.1 on the
# bridge: the plain kernel path).
#
#   rtt          ping -c 500 -i 0.002 from the gateway to real server 1: avg and max (ms)
#   tcp          one TCP stream gateway → real server 1 (python sender, socat sink), MB/s
#   idle cpu     CPU time of fnatd's kernel-path thread (fnat-kernel) over 10 s with no
#                traffic, in % of one core (from /proc/PID/task/TID/stat)
#
# Usage (as root): perf/exception-path.sh [--append]  (--append adds the table to
# perf/RESULTS.md). FNATD: the fnatd binary (default target/release/fnatd).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "exception-path: run as root"; exit 1; }
export FNATD=${FNATD:-target/release/fnatd}
[ -x "$FNATD" ] || { echo "exception-path: $FNATD missing (make build)"; exit 1; }
for t in socat ping python3 nft; do command -v $t >/dev/null || { echo "exception-path: $t missing (make setup)"; exit 1; }; done
RS=198.19.1.11
MB=${MB:-200}
current=""
trap '[ -n "$current" ] && scripts/lab/lab.sh down "$current" >/dev/null 2>&1' EXIT INT TERM

# Sends $MB MiB to RS:5001 from namespace $1, prints MB/s.
tcp_stream() {
  ip netns exec "$1" python3 - "$RS" "$MB" <<'PY'
import socket, sys, time
host, mb = sys.argv[1], int(sys.argv[2])
buf = b"\0" * (1 << 16)
s = socket.create_connection((host, 5001), timeout=10)
t0 = time.perf_counter()
for _ in range(mb * 16):
    s.sendall(buf)
s.shutdown(socket.SHUT_WR)
s.recv(1)  # the sink closes once it has read everything
print(f"{mb * 1.048576 / (time.perf_counter() - t0):.1f}")
PY
}

measure() {
  local label=$1 p st
  p=ex$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')
  current=$p
  st=/tmp/fnat-lab-$p
  LAB_PREFIX=$p LAB_SERVERS=2 scripts/lab/lab.sh up >/dev/null
  # The sink, recorded with the lab's processes so that `down` ends it.
  ip netns exec "${p}s1" setsid socat -u TCP4-LISTEN:5001,reuseaddr,fork OPEN:/dev/null \
    >/dev/null 2>&1 </dev/null &
  echo $! >> "$st/pids"
  ip netns exec "${p}g" ping -c 20 -i 0.01 -q $RS >/dev/null  # warm-up (ARP both ways)
  local ping rtt_avg rtt_max tcp idle="n/a"
  ping=$(ip netns exec "${p}g" ping -c 500 -i 0.002 -q $RS)
  rtt_avg=$(awk -F'[/ ]' '/rtt/ {print $8}' <<<"$ping")
  rtt_max=$(awk -F'[/ ]' '/rtt/ {print $9}' <<<"$ping")
  tcp=$(tcp_stream "${p}g")
  if [ "$label" = twin ]; then
    local pid tid t0 t1 hz
    pid=$(pgrep -f "fnatd run --config $st/fnatd.toml" | head -n1)
    tid=$(grep -l '^fnat-kernel$' /proc/"$pid"/task/*/comm | head -n1 | cut -d/ -f5)
    hz=$(getconf CLK_TCK)
    t0=$(awk '{print $14 + $15}' /proc/"$pid"/task/"$tid"/stat)
    sleep 10
    t1=$(awk '{print $14 + $15}' /proc/"$pid"/task/"$tid"/stat)
    idle=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" 'BEGIN {printf "%.2f", (b - a) / hz / 10 * 100}')
  fi
  scripts/lab/lab.sh down "$p" >/dev/null 2>&1
  current=""
  printf '| %s | %s | %s | %s | %s |\n' "$label" "$rtt_avg" "$rtt_max" "$tcp" "$idle"
}

table() {
  echo "| gateway kernel → real server | RTT avg (ms) | RTT max (ms) | TCP MB/s | kernel-path thread idle CPU (%) |"
  echo "|---|---|---|---|---|"
  LAB_KERNEL_TWIN=1 measure twin
  LAB_GATEWAY=nft measure "plain kernel"
}

out=$(table)
echo "$out"
if [ "${1:-}" = --append ]; then
  {
    echo
    echo "## Exception path (perf/exception-path.sh, $(date -u +%Y-%m-%d))"
    echo
    echo "$out"
  } >> perf/RESULTS.md
fi
