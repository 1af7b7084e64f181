#!/usr/bin/env bash
# The high-availability demo (`make demo DEMO_HA=1`): two fnatd directors running the seed's
# two-director keepalived.conf (scripts/lab/ha.sh), a client with one TCP connection open
# through the VIP sending a numbered line every 100 ms to an echo server, and a `kill -9` of
# the master under it. It prints the takeover as it happens: the backup's VRRP state, the
# client's ARP entry for the VIP moving to the backup's MAC, and the same connection's lines
# still coming back in order.
#
#   DEMO_ONCE=1       run the failover, print it, tear everything down; exit 0 when the
#                     connection survived (1 when not)
#   DEMO_HA_MODE=fnat the service's lb_kind: fnat (default), nat or dr
#   FNATD=...         the fnatd binary (default target/release/fnatd, built by `make build`)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: run as root (network namespaces, veths, DPDK)"; exit 1; }
export FNATD=${FNATD:-target/release/fnatd}
fnatctl=${FNATCTL:-$(dirname "$FNATD")/fnatctl}
[ -x "$FNATD" ] || { echo "demo: $FNATD missing: run make build"; exit 1; }
[ -x "$fnatctl" ] || { echo "demo: $fnatctl missing: run make build"; exit 1; }
VIP=198.18.0.100
export HA_MODE=${DEMO_HA_MODE:-fnat}
export LAB_PREFIX=${LAB_PREFIX:-fh$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')}
p=$LAB_PREFIX
st=/tmp/fnat-lab-$p
client=""
cleanup() {
  trap - EXIT INT TERM
  [ -n "$client" ] && kill "$client" 2>/dev/null || true
  echo
  echo "== removing the lab ($p)"
  scripts/lab/ha.sh down "$p" || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

vrrp() { "$fnatctl" --socket "$st/$1.sock" vrrp 2>/dev/null; }
state() {
  "$fnatctl" --socket "$st/$1.sock" vrrp --json 2>/dev/null \
    | python3 -c 'import json,sys; v=json.load(sys.stdin); print(" ".join(i["name"]+"="+i["state"] for i in v["instances"]))' \
    2>/dev/null || echo "(not answering)"
}
mac() { ip netns exec "${p}$1" cat "/sys/class/net/$2/address"; }
arp() { ip netns exec "${p}c" ip -4 neigh show "$VIP" | awk '{for(i=1;i<=NF;i++) if($i=="lladdr") print $(i+1)}'; }
echoed() { wc -l < "$st/live.log" 2>/dev/null || echo 0; }
last() { tail -n1 "$st/live.log" 2>/dev/null | cut -d' ' -f1; }
now() { date +%s.%N; }
since() { python3 -c "print('%.2f' % ($(now) - $1))"; }

echo "== building the HA lab $p ($HA_MODE): two directors, one client segment, one server segment"
scripts/lab/ha.sh up >/dev/null
mac_a=$(mac a "${p}aw"); mac_b=$(mac b "${p}bw")
cat <<EOT
   client      ${p}c  198.18.0.2 ──┐ client segment (bridge)
   director A  ${p}a  wan 198.18.0.11 ─┤  MAC $mac_a   lan 198.19.1.2 ─┐
   director B  ${p}b  wan 198.18.0.12 ─┘  MAC $mac_b   lan 198.19.1.3 ─┤ server segment (bridge)
   real servers 198.19.1.10, 198.19.1.11 (echo :9000), route to the LIP via 198.19.1.1 ─┘
   VRRP VI_1 (vrid 51) holds the VIP $VIP on wan; VI_2 (vrid 52) holds the servers'
   gateway 198.19.1.1 and the local address 198.19.0.10 on lan; vrrp_sync_group VG_1 moves
   them together. A: priority 100, B: priority 90, advert_int ${HA_ADVERT_INT:-1}, auth PASS.

== director A's keepalived.conf (the seed's, addresses mapped): $st/a-keepalived.conf
EOT
sed -n '/^vrrp_sync_group/,/^local_address_group/p' "$st/a-keepalived.conf" | sed '$d' | sed 's/^/   /'
for _ in $(seq 1 100); do
  case "$(state a) $(state b)" in *VI_1=MASTER*VI_1=BACKUP*) break ;; esac
  sleep 0.1
done
echo
echo "\$ fnatctl vrrp   # on A"; vrrp a | sed 's/^/   /'
echo "\$ fnatctl vrrp   # on B"; vrrp b | sed 's/^/   /'
echo
echo "== the client opens ONE TCP connection to $VIP:9000 and sends a numbered line every 100 ms"
: > "$st/live.log"
ip netns exec "${p}c" python3 scripts/lab/echo.py lines "$VIP" 9000 "$st/live.log" "$st/live.stop" \
  > "$st/live.json" 2>&1 &
client=$!
sleep 3
echo "   $(echoed) lines echoed so far; the client's ARP entry for $VIP: $(arp) (A)"
echo
t0=$(now)
echo "== kill -9 director A (fnatd pid $(cat "$st/a.pid")) at $(date +%T.%N | cut -c1-12)"
scripts/lab/ha.sh kill "$p" a KILL
shown=""
for _ in $(seq 1 300); do
  # The client's ARP entry first, then B's state: a line never shows the effect before
  # its cause.
  a=$(arp); l=$(last); s=$(state b)
  line="   t+$(since "$t0")s  B: $s   client ARP $VIP -> $a   last line echoed: $l"
  key="$s $a $l"
  if [ "$key" != "$shown" ]; then echo "$line"; shown=$key; fi
  case "$s" in *VI_1=MASTER*) [ "$a" = "$mac_b" ] && break ;; esac
  sleep 0.1
done
before=$(echoed)
for _ in $(seq 1 200); do [ "$(echoed)" -ge $((before + 30)) ] && break; sleep 0.1; done
echo "   t+$(since "$t0")s  the same connection: line $(last) echoed back through B"
touch "$st/live.stop"
# The client half-closes and reads what is still coming back (bounded).
for _ in $(seq 1 100); do kill -0 "$client" 2>/dev/null || break; sleep 0.1; done
kill "$client" 2>/dev/null || true
ok=0
if wait "$client"; then ok=1; fi
client=""
echo
echo "== the client's summary (one connection, every line back in order, no reset):"
sed 's/^/   /' "$st/live.json"
echo
echo "== a new connection through B:"
printf '   $ curl http://%s/   ->  %s\n' "$VIP" "$(ip netns exec "${p}c" curl -s -m 3 "http://$VIP/")"
echo
echo "\$ fnatctl vrrp   # on B"; vrrp b | sed 's/^/   /'
if [ "${DEMO_ONCE:-0}" = 1 ]; then
  [ $ok = 1 ] && exit 0
  echo "demo: the connection did not survive the failover"; exit 1
fi
cat <<EOT

The lab stays up until Ctrl-C. Try, in another shell:
  scripts/lab/ha.sh start $p a                         # A again: nopreempt, it stays backup
  $fnatctl --socket $st/b.sock vrrp
  ip netns exec ${p}c ip neigh                         # the client's ARP entries
Logs: $st/fnatd-a.log $st/fnatd-b.log
EOT
end=$(( $(date +%s) + 60 * ${DEMO_MINUTES:-60} ))
while [ "$(date +%s)" -lt "$end" ]; do sleep 1; done
