#!/usr/bin/env bash
# The demo, as the LVS tutorials show it: a client, fnatd as the gateway and two real servers,
# each in its own network namespace (scripts/lab/lab.sh), then `curl VIP` a few times and the
# answers alternate between the real servers under rr. Then it leaves the lab running and shows
# how to look at it with fnatctl / ipvsadm, until Ctrl-C (everything is removed on the way out).
#
#   DEMO_ONCE=1   run the curl sequence, print it, tear everything down and exit 0
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
