#!/usr/bin/env bash
# The demo, as the LVS tutorials show it: a client, fnatd as the gateway and two real servers,
# each in its own network namespace (scripts/lab/lab.sh), then `curl VIP` a few times and the
# answers alternate between the real servers under rr. Then it leaves the lab running and shows
# how to look at it with fnatctl / ipvsadm, until Ctrl-C (everything is removed on the way out).
#
#   DEMO_MODE=fnat  full NAT (the default): rules from the config file, local address 198.19.0.10
#   DEMO_MODE=nat   LVS-NAT:  real servers route their default via fnatd; ipvsadm ... -m
#   DEMO_MODE=dr    LVS-DR:   VIP on the real servers' lo, arp_ignore/arp_announce, replies
#                             through a router namespace; ipvsadm ... -g
#   DEMO_MODE=tun   LVS-TUN:  IPIP (port 80), GUE (443) and GRE (8443) to real servers that
#                             decapsulate with scripts/lab/tun_decap.py; ipvsadm ... -i
#   DEMO_MODE=snat  SNAT:     the real servers fetch a page from a WAN host (the client) with
#                             their source rewritten to 198.18.0.1; ipvsadm -H ... / -J
#   DEMO_ONCE=1   run the curl sequence, print it, tear everything down and exit 0
#   DEMO_HEALTH=1 the services come from the tutorial's keepalived.conf (configs/keepalived-seed.conf,
#                 its addresses mapped onto the lab's) with its TCP_CHECKs: a real server is
#                 stopped mid-demo, leaves the table, and comes back when it answers again
#   DEMO_HA=1     high availability instead (scripts/demo-ha.sh): two directors, a failover
#                 under a live connection
#   FNATD=...     the fnatd binary (default target/release/fnatd, built by `make build`)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${DEMO_HA:-0}" = 1 ]; then exec bash scripts/demo-ha.sh; fi
[ "$(id -u)" = 0 ] || { echo "demo: run as root (network namespaces, veths, DPDK)"; exit 1; }
export FNATD=${FNATD:-target/release/fnatd}
fnatctl=${FNATCTL:-$(dirname "$FNATD")/fnatctl}
[ -x "$FNATD" ] || { echo "demo: $FNATD missing: run make build"; exit 1; }
[ -x "$fnatctl" ] || { echo "demo: $fnatctl missing: run make build"; exit 1; }
VIP=198.18.10.100
mode=${DEMO_MODE:-fnat}
case "$mode" in fnat|nat|dr|tun|snat) ;; *) echo "demo: DEMO_MODE=$mode: fnat, nat, dr, tun or snat"; exit 2 ;; esac

export LAB_PREFIX=${LAB_PREFIX:-fd$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')}
export LAB_SERVERS=2
p=$LAB_PREFIX
st=/tmp/fnat-lab-$p
cleanup() {
  trap - EXIT INT TERM
  echo
  echo "== removing the lab ($p): fnatd's exit statistics follow"
  LAB_KEEP_STATE=1 scripts/lab/lab.sh down "$p" || true
  sed -n '/Accumulated forward statistics/,$p' "$st/fnatd.log" 2>/dev/null \
    | grep -E "RX-packets|TX-packets|ARP:|accounted|leaked" || true
  rm -rf "$st" "/tmp/fnat-demo-$p"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

health=${DEMO_HEALTH:-0}
if [ "$health" = 1 ]; then
  [ "$mode" = fnat ] || { echo "demo: DEMO_HEALTH=1 runs with DEMO_MODE=fnat"; exit 2; }
  # The tutorial's keepalived.conf on the lab's addresses: VIP .10.100, real servers .11 and .12.
  kdir=$(mktemp -d /tmp/fnat-demo-ka.XXXXXX)
  sed -e 's/198\.19\.1\.11/198.19.1.12/; s/198\.19\.1\.10 /198.19.1.11 /; s/198\.18\.0\.100/198.18.10.100/' \
    configs/keepalived-seed.conf > "$kdir/keepalived.conf"
  : > "$kdir/services.toml"
  export LAB_HTTP=python LAB_SERVICES="$kdir/services.toml" LAB_KERNEL_TWIN=1
  export LAB_FNATD_ARGS="--keepalived $kdir/keepalived.conf"
  trap 'cleanup; rm -rf "$kdir"' EXIT
fi

# ipvsadm as the tutorials type it: the fnatctl binary under the name ipvsadm.
bin=/tmp/fnat-demo-$p
mkdir -p "$bin"
ln -sf "$(realpath "$fnatctl")" "$bin/ipvsadm"
ipvsadm() {
  echo "# ipvsadm $*"
  FNAT_SOCKET=$st/ctl.sock "$bin/ipvsadm" "$@"
}

export LAB_RS_MODE=$mode
if [ "$mode" != fnat ]; then
  # The rules come from ipvsadm below, as in the tutorials.
  export LAB_SERVICES=$bin/none.toml LAB_WAIT=socket
  : > "$LAB_SERVICES"
fi
[ "$mode" = snat ] && export LAB_CLIENT_HTTP=1

echo "== building the lab $p ($mode): client ─ fnatd (gateway) ─ rs1, rs2   (scripts/lab/lab.sh)"
scripts/lab/lab.sh up >/dev/null
cat <<EOT
   client   ${p}c  198.18.0.2  ──veth──  wan 198.18.0.1 (VIP $VIP)
   gateway  ${p}g  fnatd on net_af_packet, no static neighbours: ARP both ways
   servers  ${p}s1 198.19.1.11, ${p}s2 198.19.1.12  ──bridge──  lan 198.19.1.1 (LIP 198.19.0.10)
EOT
case "$mode" in
  dr|tun) echo "   router   ${p}r  198.19.1.254 on the servers' bridge, 198.18.1.1 toward the client: replies go this way" ;;
esac
echo
echo "== the real servers, set up as for $mode (scripts/lab/lab.sh server_mode):"
case "$mode" in
  fnat) echo "   ip route add 198.19.0.0/24 via 198.19.1.1        # only the local addresses via fnatd" ;;
  nat|snat) echo "   ip route add default via 198.19.1.1              # every reply passes fnatd" ;;
  dr) cat <<EOT
   sysctl -w net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
   ip addr add $VIP/32 dev lo                     # accept the VIP, never answer ARP for it
   ip route add default via 198.19.1.254            # replies through the router, not fnatd
EOT
  ;;
  tun) cat <<EOT
   tun_decap.py --dev ${p}t --vip $VIP --gue-port 6080   # what ipip/gre/fou modules would do
   ip route add default via 198.19.1.254            # replies through the router, not fnatd
EOT
  ;;
esac
echo

case "$mode" in
  nat)
    ipvsadm -A -t $VIP:80 -s rr
    ipvsadm -a -t $VIP:80 -r 198.19.1.11:80 -m
    ipvsadm -a -t $VIP:80 -r 198.19.1.12:80 -m ;;
  dr)
    ipvsadm --add-mark 66 tcp $VIP 80,443    # fnat's mark table (iptables -t mangle ... --set-mark 66)
    ipvsadm -A -f 66 -s rr
    ipvsadm -a -f 66 -r 198.19.1.11 -g
    ipvsadm -a -f 66 -r 198.19.1.12 -g ;;
  tun)
    ipvsadm -A -t $VIP:80 -s rr
    ipvsadm -a -t $VIP:80 -r 198.19.1.11 -i
    ipvsadm -a -t $VIP:80 -r 198.19.1.12 -i
    ipvsadm -A -t $VIP:443 -s rr
    ipvsadm -a -t $VIP:443 -r 198.19.1.11 -i --tun-type gue --tun-port 6080
    ipvsadm -a -t $VIP:443 -r 198.19.1.12 -i --tun-type gue --tun-port 6080
    ipvsadm -A -t $VIP:8443 -s rr
    ipvsadm -a -t $VIP:8443 -r 198.19.1.11 -i --tun-type gre
    ipvsadm -a -t $VIP:8443 -r 198.19.1.12 -i --tun-type gre --tun-csum ;;
  snat)
    ipvsadm -A -H proto=tcp,src-range=198.19.1.0-198.19.1.255,oif=wan -s rr
    ipvsadm -a -H proto=tcp,src-range=198.19.1.0-198.19.1.255,oif=wan -r 198.18.0.1:0 -J ;;
esac
echo

curl_as() {
  local role=$1 url=$2
  printf '%-4s$ curl http://%s/   ->  %s\n' "$role" "$url" "$(ip netns exec "${p}$role" curl -s -m 3 "http://$url/")"
}
case "$mode" in
  snat)
    for i in 1 2 1 2; do curl_as "s$i" 198.18.0.2; done
    echo "   the WAN host's log (the source it saw):"
    grep '"GET / ' "$st/httpc.log" | awk '{print "     " $1, $6, $7}' ;;
  tun)
    for port in 80 80 443 443 8443 8443; do curl_as c "$VIP:$port"; done
    echo "   what rs1 decapsulated (scripts/lab/tun_decap.py's log):"
    grep -E "^(ipip|gue|gre)" "$st/decap1.pkts" | awk '{print $1}' | sort | uniq -c | sed 's/^/     /' ;;
  dr)
    for url in $VIP $VIP:443 $VIP $VIP:443 $VIP $VIP:443; do curl_as c "$url"; done ;;
  *)
    for _ in 1 2 3 4 5 6 7 8; do curl_as c "$VIP"; done ;;
esac

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
  echo
  ipvsadm -Ln
  ipvsadm -Lnc
  exit 0
fi
echo
ipvsadm -Ln 2>&1 || true
echo
ipvsadm -Lnc 2>&1 || true
cat <<EOT

The lab stays up until Ctrl-C. Try, in another shell:
  ip netns exec ${p}c curl http://$VIP/                      # rr over rs1, rs2
  ip netns exec ${p}c ping -c 3 198.18.0.1                    # fnatd answers ICMP echo
  FNAT_SOCKET=$st/ctl.sock $bin/ipvsadm -Ln --stats
  FNAT_SOCKET=$st/ctl.sock $bin/ipvsadm -Lnc                 # connections
  $fnatctl --socket $st/ctl.sock service list
fnatd's config: $st/fnatd.toml   its log: $st/fnatd.log
EOT
# Wait for Ctrl-C (bounded: at most DEMO_MINUTES, default 60).
end=$(( $(date +%s) + 60 * ${DEMO_MINUTES:-60} ))
while [ "$(date +%s)" -lt "$end" ]; do sleep 1; done
