#!/usr/bin/env bash
# The demo, as the LVS tutorials show it: a client, fnatd as the gateway and two real servers,
# each in its own network namespace (scripts/lab/lab.sh), then `curl VIP` a few times and the
# answers alternate between the real servers under rr. Then it leaves the lab running and shows
# how to look at it with fnatctl / ipvsadm, until Ctrl-C (everything is removed on the way out).
#
#   DEMO_ONCE=1   run the curl sequence, print it, tear everything down and exit 0
#   DEMO_HEALTH=1 the services come from the tutorial's keepalived.conf (configs/keepalived-seed.conf,
#                 its addresses mapped onto the lab's) with its TCP_CHECKs: a real server is
#                 stopped mid-demo, leaves the table, and comes back when it answers again
#   FNATD=...     the fnatd binary (default target/release/fnatd, built by `make build`)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: run as root (network namespaces, veths, DPDK)"; exit 1; }
export FNATD=${FNATD:-target/release/fnatd}
fnatctl=${FNATCTL:-$(dirname "$FNATD")/fnatctl}
[ -x "$FNATD" ] || { echo "demo: $FNATD missing: run make build"; exit 1; }
VIP=198.18.10.100

export LAB_PREFIX=${LAB_PREFIX:-fd$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')}
export LAB_SERVERS=2
p=$LAB_PREFIX
cleanup() {
  trap - EXIT INT TERM
  echo
  echo "== removing the lab ($p): fnatd's exit statistics follow"
  LAB_KEEP_STATE=1 scripts/lab/lab.sh down "$p" || true
  sed -n '/Accumulated forward statistics/,$p' "/tmp/fnat-lab-$p/fnatd.log" 2>/dev/null \
    | grep -E "RX-packets|TX-packets|ARP:|accounted|leaked" || true
  rm -rf "/tmp/fnat-lab-$p"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

health=${DEMO_HEALTH:-0}
if [ "$health" = 1 ]; then
  # The tutorial's keepalived.conf on the lab's addresses: VIP .10.100, real servers .11 and .12.
  kdir=$(mktemp -d /tmp/fnat-demo-ka.XXXXXX)
  sed -e 's/198\.19\.1\.11/198.19.1.12/; s/198\.19\.1\.10 /198.19.1.11 /; s/198\.18\.0\.100/198.18.10.100/' \
    configs/keepalived-seed.conf > "$kdir/keepalived.conf"
  : > "$kdir/services.toml"
  export LAB_HTTP=python LAB_SERVICES="$kdir/services.toml" LAB_GW_KERNEL_ADDR=198.19.1.254/24
  export LAB_FNATD_ARGS="--keepalived $kdir/keepalived.conf"
  trap 'cleanup; rm -rf "$kdir"' EXIT
fi
echo "== building the lab $p: client ─ fnatd (gateway) ─ rs1, rs2   (scripts/lab/lab.sh)"
scripts/lab/lab.sh up >/dev/null
st=/tmp/fnat-lab-$p
cat <<EOT
   client   ${p}c  198.18.0.2  ──veth──  wan 198.18.0.1 (VIP $VIP)
   gateway  ${p}g  fnatd on net_af_packet, no static neighbours: ARP both ways
   servers  ${p}s1 198.19.1.11, ${p}s2 198.19.1.12  ──bridge──  lan 198.19.1.1 (LIP 198.19.0.10)

EOT
for i in 1 2 3 4 5 6 7 8; do
  printf '$ curl http://%s/   ->  %s\n' "$VIP" "$(ip netns exec "${p}c" curl -s -m 3 "http://$VIP/")"
done

table() { "$fnatctl" --socket "$st/ctl.sock" ipvsadm -Ln; }
if [ "$health" = 1 ]; then
  echo
  echo "== health checks: the tutorial's keepalived.conf ($kdir/keepalived.conf), TCP_CHECK on port 80"
  echo "\$ fnatctl health"; "$fnatctl" --socket "$st/ctl.sock" health
  echo "\$ ipvsadm -Ln"; table
  # rs1's http server: a process the lab started in rs1's namespace.
  pid=$(for q in $(ip netns pids "${p}s1"); do
          if tr '\0' ' ' < "/proc/$q/cmdline" 2>/dev/null | grep -q "http.server 80 "; then echo "$q"; fi
        done | head -n1 || true)
  [ -n "$pid" ] || { echo "demo: rs1's web server not found"; exit 1; }
  echo
  echo "== stopping rs1's web server (pid $pid) at $(date +%T): keepalived's bound is"
  echo "   delay_loop + (retry+1)·(delay_before_retry + connect_timeout) = 6 + 4·(3 + 10) = 58 s"
  kill "$pid"
  t0=$(date +%s)
  while table | grep -q 198.19.1.11 && [ $(( $(date +%s) - t0 )) -lt 70 ]; do sleep 0.5; done
  echo "== rs1 left the table after $(( $(date +%s) - t0 )) s"
  echo "\$ ipvsadm -Ln"; table
  echo "\$ fnatctl health"; "$fnatctl" --socket "$st/ctl.sock" health
  for i in 1 2 3 4; do
    printf '$ curl http://%s/   ->  %s\n' "$VIP" "$(ip netns exec "${p}c" curl -s -m 3 "http://$VIP/")"
  done
  echo "== fnatd's log (keepalived's wording):"
  grep 'fnatd: health:' "$st/fnatd.log" | grep -v 'TCP connection' || true
  echo
  echo "== starting rs1's web server again"
  ip netns exec "${p}s1" setsid /usr/bin/python3 -m http.server 80 --bind 0.0.0.0 \
    --directory "$st/www1" >/dev/null 2>&1 < /dev/null &
  echo $! >> "$st/pids"
  t0=$(date +%s)
  until table | grep -q 198.19.1.11 || [ $(( $(date +%s) - t0 )) -ge 30 ]; do sleep 0.5; done
  echo "== rs1 back in the table after $(( $(date +%s) - t0 )) s"
  echo "\$ ipvsadm -Ln"; table
  echo "\$ fnatctl save   # the operator's rules, whatever the checks did"
  "$fnatctl" --socket "$st/ctl.sock" save | grep -E '198\.19\.1\.' || true
  echo "== fnatd's log since:"
  grep 'fnatd: health:' "$st/fnatd.log" | grep -v 'TCP connection' | tail -n 2 || true
fi

if [ "${DEMO_ONCE:-0}" = 1 ]; then
  exit 0
fi
if [ -x "$fnatctl" ]; then
  echo
  echo "\$ fnatctl --socket $st/ctl.sock ipvsadm -Ln"
  "$fnatctl" --socket "$st/ctl.sock" ipvsadm -Ln 2>&1 || true
fi
cat <<EOT

The lab stays up until Ctrl-C. Try, in another shell:
  ip netns exec ${p}c curl http://$VIP/                      # rr over rs1, rs2
  ip netns exec ${p}c curl http://$VIP:8080/                 # wrr 3:1
  ip netns exec ${p}c ping -c 3 198.18.0.1                    # fnatd answers ICMP echo
  $fnatctl --socket $st/ctl.sock ipvsadm -Ln
  $fnatctl --socket $st/ctl.sock ipvsadm -Ln --stats
  $fnatctl --socket $st/ctl.sock ipvsadm -Lnc                 # connections
  ln -sf \$(realpath $fnatctl) /usr/local/bin/ipvsadm; FNAT_SOCKET=$st/ctl.sock ipvsadm -Ln
fnatd's config: $st/fnatd.toml   its log: $st/fnatd.log
EOT
# Wait for Ctrl-C (bounded: at most DEMO_MINUTES, default 60).
end=$(( $(date +%s) + 60 * ${DEMO_MINUTES:-60} ))
while [ "$(date +%s)" -lt "$end" ]; do sleep 1; done
