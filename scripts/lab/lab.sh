#!/usr/bin/env bash
# The network-namespace lab: a client, the gateway and N real servers joined by veth pairs.
#
#   client ns  ${P}c  : ${P}c0 198.18.0.2/24, route 198.18.10.0/24 via 198.18.0.1
#   gateway ns ${P}g  : ${P}gw (peer of ${P}c0)         -> fnatd port "wan": 198.18.0.1/24,
#                                                          VIPs 198.18.10.100 and .101
#                       ${P}gl (peer ${P}gb on bridge ${P}br) -> fnatd port "lan": 198.19.1.1/24,
#                                                          LIP 198.19.0.10
#                       bridge ${P}br joins ${P}gb and every server's ${P}bI
#   server ns  ${P}sI : ${P}sI 198.19.1.(10+I)/24, route 198.19.0.0/24 via 198.19.1.1
#                       http :80, :443 and :8443 (a page naming the server; 443 is plain http,
#                       the https port of the LVS tutorials; /1m.bin: the same 1 MB of random
#                       bytes, $state/1m.bin, on every server), TCP echo :9000 (echo.py),
#                       UDP echo :9001; with nginx also http :8081 expecting a Proxy
#                       Protocol header (v1 or v2), logging the address it names to
#                       $state/ppI.log; with haproxy (LAB_HAPROXY=1) also http :8091
#                       `bind ... accept-proxy` (v1 or v2) answering "haproxy ADDRESS PORT"
#                       with the client address the header named
#
# With LAB_RS_MODE the real servers are set up as the LVS tutorials set them up per method:
#   fnat (default)  as above: only the local addresses route via fnatd
#   nat             default route via fnatd (198.19.1.1): replies must pass it (LVS-NAT)
#   dr              VIPs on lo, arp_ignore=1/arp_announce=2, default route via the router
#   tun             tun_decap.py (IPIP, GRE, GUE port 6080) writing inner packets into TUN
#                   device ${P}t holding the VIPs; default route via the router
#   snat            default route via fnatd, as nat: they reach the WAN side through SNAT
# dr and tun add a router namespace ${P}r that carries replies to the client without fnatd:
#   ${P}r0 198.19.1.254/24 on the servers' bridge, ${P}r1 198.18.1.1/24 <-> client ${P}c1
#   198.18.1.2/24 (the client's own 198.18.0.2 is routed there).
#
# No static neighbours anywhere: the client, the servers and fnatd resolve each other by ARP.
# With LAB_GATEWAY=nft the gateway namespace's own kernel does DNAT+SNAT with nftables instead
# of fnatd (the kernel baseline), on the same addresses.
#
# Usage (as root):
#   lab.sh up            builds the lab; prints the prefix; state in /tmp/fnat-lab-$P
#   lab.sh down PREFIX   removes everything of that lab (idempotent)
#   lab.sh exec PREFIX ROLE CMD...   runs CMD in ROLE's namespace (c, g, s1, s2, ...)
#
# Environment for `up`: LAB_PREFIX (default: random "fl" + 4 hex), LAB_SERVERS (2),
# LAB_PMD (af_packet | af_xdp | tap; default af_packet), LAB_GATEWAY (fnatd | nft),
# FNATD (the fnatd binary), LAB_FNATD_ARGS (extra arguments to `fnatd run`, e.g. --socket),
# LAB_SERVICES (a TOML file of [[service]] tables replacing the default ones),
# LAB_EXTRA_SERVICES (a TOML file appended to them, e.g. an SNAT match service),
# LAB_HTTP (nginx | python; default nginx when installed), LAB_HAPROXY (1: haproxy :8091 on
# every server, a Proxy Protocol receiver), LAB_WORKER_CPU (1),
# LAB_METRICS (ADDRESS:PORT of fnatd's Prometheus endpoint, inside the gateway namespace),
# LAB_WORKERS (1; N > 1 gives fnatd N workers, N queue pairs per port, replies spread over
# them by the kernel's packet fanout), LAB_WORKER_CPUS ("1", or "1, 1, ..." for N workers),
# LAB_RS_MODE (fnat | nat | dr | tun | snat, see above), LAB_ROUTER (1: the router namespace
# even without dr/tun), LAB_CLIENT_HTTP (1: the client serves http :80 too, a page "wan", the
# WAN host of the SNAT lab), LAB_SERVER_SETUP (a program run as `PROG PREFIX I ADDRESS` after
# server I is set up, e.g. extra addresses), LAB_WAIT (vip: wait until the VIP answers http,
# the default; socket: only until fnatd's control socket is there, for labs that add their
# rules with ipvsadm afterwards).
# LAB_KERNEL_TWIN (1: each fnatd port gets a kernel twin, ${P}kw for wan and ${P}kl for lan,
# in the gateway namespace: the exception path, docs/exception-path.md).
# LAB_GW_KERNEL_ADDR (an ADDRESS/PREFIX for the gateway namespace's own kernel on the real
# servers' bridge: where fnatd's health checks leave from until its ports have kernel twins).
# Addresses are only from 198.18.0.0/15 (RFC 2544), only inside the lab's namespaces.
set -euo pipefail

die() { echo "lab: $*" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

VIP=198.18.10.100
VIP2=198.18.10.101
LIP=198.19.0.10

need_root() {
  [ "$(id -u)" = 0 ] || die "needs root (network namespaces, veths, DPDK); run as root"
  ip netns list >/dev/null 2>&1 || die "ip netns does not work here"
  for t in ip ethtool curl socat; do command -v $t >/dev/null || die "$t missing (make setup)"; done
}

state_of() { echo "/tmp/fnat-lab-$1"; }

# Runs a command in a lab namespace.
nsx() { local p=$1 role=$2; shift 2; ip netns exec "${p}${role}" "$@"; }

# Starts a background process in a namespace and records its PID (killed by `down`).
bg() {
  local p=$1 role=$2 name=$3; shift 3
  local st; st=$(state_of "$p")
  ip netns exec "${p}${role}" setsid "$@" >"$st/$name.log" 2>&1 < /dev/null &
  echo $! >> "$st/pids"
}

quiet_if() {
  # A lab interface: no IPv6 chatter, no offloads that hide real checksums from raw sockets.
  local p=$1 role=$2 dev=$3
  nsx "$p" "$role" sysctl -qw "net.ipv6.conf.$dev.disable_ipv6=1" || true
  nsx "$p" "$role" ethtool -K "$dev" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true
  nsx "$p" "$role" ip link set "$dev" up
}

ns_sysctls() {
  local p=$1 role=$2
  nsx "$p" "$role" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
  nsx "$p" "$role" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  nsx "$p" "$role" ip link set lo up
}

http_server() {
  local p=$1 i=$2 st; st=$(state_of "$p")
  local www="$st/www$i"
  mkdir -p "$www"
  printf 'rs%s\n' "$i" > "$www/index.html"
  # 1 MB of random bytes every http server serves as /1m.bin (integrity checks): the same
  # file on every server of the lab, made by the first.
  [ -e "$st/1m.bin" ] || head -c 1048576 /dev/urandom > "$st/1m.bin"
  cp "$st/1m.bin" "$www/1m.bin"
  if [ "${LAB_HTTP:-}" != python ] && command -v nginx >/dev/null; then
    # A server that speaks first once it has read a Proxy Protocol header (v1 or v2): it
    # answers the client address it was told (libnginx-mod-stream).
    local stream_mod=/usr/lib/nginx/modules/ngx_stream_module.so load_stream="" stream=""
    if [ -e "$stream_mod" ]; then
      load_stream="load_module $stream_mod;"
      stream="stream { server { listen 8083 proxy_protocol; return \"\$proxy_protocol_addr\\n\"; } }"
    fi
    cat > "$st/nginx$i.conf" <<CONF
$load_stream
daemon off;
worker_processes 1;
pid $st/nginx$i.pid;
error_log $st/nginx$i.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $st/nginx$i.tmp;
  server { listen 80 reuseport; listen 443; listen 8443; root $www; }
  # Proxy Protocol (v1 and v2 both): the client address fnatd sends, logged per request.
  log_format pp '\$proxy_protocol_addr \$proxy_protocol_port \$remote_addr \$request';
  server { listen 8081 proxy_protocol; root $www; access_log $st/pp$i.log pp; }
}
$stream
CONF
    bg "$p" "s$i" "nginx$i" nginx -c "$st/nginx$i.conf"
  else
    bg "$p" "s$i" "http$i" /usr/bin/python3 -m http.server 80 --bind 0.0.0.0 --directory "$www"
    bg "$p" "s$i" "https$i" /usr/bin/python3 -m http.server 8443 --bind 0.0.0.0 --directory "$www"
    bg "$p" "s$i" "http443$i" /usr/bin/python3 -m http.server 443 --bind 0.0.0.0 --directory "$www"
  fi
  if [ "${LAB_HAPROXY:-}" = 1 ]; then
    command -v haproxy >/dev/null || die "LAB_HAPROXY=1 needs haproxy (scripts/setup-debian.sh)"
    # accept-proxy takes a v1 or v2 header; src/src_port are then the addresses it named.
    cat > "$st/haproxy$i.cfg" <<CONF
global
  pidfile $st/haproxy$i.pid
defaults
  mode http
  timeout connect 5s
  timeout client 10s
  timeout server 10s
frontend pp
  bind 0.0.0.0:8091 accept-proxy
  http-request return status 200 content-type text/plain lf-string "haproxy %[src] %[src_port]\\n"
CONF
    haproxy -c -q -f "$st/haproxy$i.cfg" || die "haproxy rejects $st/haproxy$i.cfg"
    bg "$p" "s$i" "haproxy$i" haproxy -db -f "$st/haproxy$i.cfg"
  fi
  bg "$p" "s$i" "echo$i" /usr/bin/python3 "$here/echo.py" serve 9000
  bg "$p" "s$i" "uecho$i" socat UDP4-RECVFROM:9001,fork PIPE
}

default_services() {
  local n=$1 reals="" wreals="" i
  for i in $(seq 1 "$n"); do
    reals+="{ address = \"198.19.1.$((10 + i))\", port = PORT }, "
    wreals+="{ address = \"198.19.1.$((10 + i))\", port = 80, weight = $([ "$i" = 1 ] && echo 3 || echo 1) }, "
  done
  local r80=${reals//PORT/80} r9000=${reals//PORT/9000} r9001=${reals//PORT/9001} r0=${reals//PORT/0}
  cat <<TOML
[[service]]    # http, round robin
vip = "$VIP"
port = 80
protocol = "tcp"
scheduler = "rr"
local_addresses = ["$LIP"]
real = [ ${r80%, } ]

[[service]]    # http, weighted round robin 3:1:1...
vip = "$VIP"
port = 8080
protocol = "tcp"
scheduler = "wrr"
local_addresses = ["$LIP"]
real = [ ${wreals%, } ]

[[service]]    # TCP echo (echo.py)
vip = "$VIP"
port = 9000
protocol = "tcp"
scheduler = "rr"
local_addresses = ["$LIP"]
real = [ ${r9000%, } ]

[[service]]    # UDP echo (socat)
vip = "$VIP"
port = 9001
protocol = "udp"
scheduler = "rr"
local_addresses = ["$LIP"]
real = [ ${r9001%, } ]

[[service]]    # persistence: one client keeps its real server
vip = "$VIP"
port = 81
protocol = "tcp"
scheduler = "rr"
persistence_timeout = 360
local_addresses = ["$LIP"]
real = [ ${r80%, } ]

[[port_group]] # http and https-like 8443 of VIP2, persistent together
name = "web"
mark = 1
protocol = "tcp"
vip = "$VIP2"
ports = [80, 8443]

[[service]]
fwmark = 1
scheduler = "rr"
persistence_timeout = 360
local_addresses = ["$LIP"]
real = [ ${r0%, } ]
TOML
}

# The router of the dr and tun labs: replies from the real servers reach the client through
# it, never through fnatd.
router_up() {
  local p=$1
  ip netns add "${p}r"; ns_sysctls "$p" r
  nsx "$p" r sysctl -qw net.ipv4.ip_forward=1
  ip link add "${p}r0" netns "${p}r" type veth peer name "${p}rb" netns "${p}g"
  ip link add "${p}r1" netns "${p}r" type veth peer name "${p}c1" netns "${p}c"
  quiet_if "$p" r "${p}r0"; quiet_if "$p" r "${p}r1"; quiet_if "$p" g "${p}rb"; quiet_if "$p" c "${p}c1"
  nsx "$p" g ip link set "${p}rb" master "${p}br"
  nsx "$p" r ip addr add 198.19.1.254/24 dev "${p}r0"
  nsx "$p" r ip addr add 198.18.1.1/24 dev "${p}r1"
  nsx "$p" r ip route add 198.18.0.0/24 via 198.18.1.2
  nsx "$p" c ip addr add 198.18.1.2/24 dev "${p}c1"
}

# A real server set up for LAB_RS_MODE (after its address and services).
server_mode() {
  local p=$1 i=$2 mode=$3 st; st=$(state_of "$p")
  case "$mode" in
    fnat) ;;
    nat|snat) nsx "$p" "s$i" ip route add default via 198.19.1.1 ;;
    dr)
      nsx "$p" "s$i" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
        "net.ipv4.conf.${p}s$i.arp_ignore=1" "net.ipv4.conf.${p}s$i.arp_announce=2"
      nsx "$p" "s$i" ip addr add "$VIP/32" dev lo
      nsx "$p" "s$i" ip addr add "$VIP2/32" dev lo
      nsx "$p" "s$i" ip route add default via 198.19.1.254 ;;
    tun)
      bg "$p" "s$i" "decap$i" /usr/bin/python3 "$here/tun_decap.py" --dev "${p}t" \
        --vip "$VIP" --vip "$VIP2" --gue-port 6080 --log "$st/decap$i.pkts"
      for _ in $(seq 1 50); do
        nsx "$p" "s$i" ip addr show dev "${p}t" 2>/dev/null | grep -q "$VIP2" && break; sleep 0.1
      done
      nsx "$p" "s$i" ip route add default via 198.19.1.254 ;;
    *) die "LAB_RS_MODE=$mode: fnat, nat, dr, tun or snat" ;;
  esac
  if [ -n "${LAB_SERVER_SETUP:-}" ]; then "$LAB_SERVER_SETUP" "$p" "$i" "198.19.1.$((10 + i))"; fi
}

# Hides the veths WAN and LAN of namespace ROLE from its kernel's stack: af_packet and af_xdp
# read the veths the kernel also receives on, and once the twins give that kernel the ports'
# addresses it would answer the ports' traffic too (RSTs, duplicate echo replies). An ingress
# drop hides them; packet sockets still see every frame (they tap in before the hook).
#   hide_from_kernel P ROLE WAN LAN
hide_from_kernel() {
  local p=$1 role=$2 wan=$3 lan=$4
  command -v nft >/dev/null || die "nft missing (apt-get install nftables)"
  nsx "$p" "$role" nft -f - <<NFT
table netdev fnatlab_hide {
  chain wan { type filter hook ingress device "$wan" priority 0; policy drop; }
  chain lan { type filter hook ingress device "$lan" priority 0; policy drop; }
}
NFT
}

# Takes down lab P of two appliances a and b: lab.sh's own part (what `bg` recorded, c, s1,
# s2), then the namespaces NS... and both appliances' DPDK runtime directories.
#   down_appliances P NS...
down_appliances() {
  local p=$1 ns; shift
  [[ "$p" =~ ^[a-z0-9]+$ ]] || die "bad prefix '$p'"
  LAB_KEEP_STATE=1 down "$p"
  for ns in "$@"; do ip netns del "${p}$ns" 2>/dev/null || true; done
  rm -rf "/var/run/dpdk/${p}a" "/var/run/dpdk/${p}b"
  if [ "${LAB_KEEP_STATE:-0}" != 1 ]; then rm -rf "$(state_of "$p")"; fi
}

# The EAL, dataplane and two af_packet ports of appliance X of a multi-appliance lab P (HA,
# sync, scale-out): wan on ${P}${X}w, lan on ${P}${X}l, each with its kernel twin.
#   appliance_ports P X "WAN addresses" "LAN addresses"   (TOML array items, quoted)
appliance_ports() {
  local p=$1 x=$2 wan=$3 lan=$4
  cat <<TOML
[eal]
main_cpu = 0
worker_cpus = [${LAB_WORKER_CPU:-1}]
file_prefix = "$p$x"
memory_mb = 256

[dataplane]
workers = 1
mbufs = 8191

[[port]]
name = "wan"
device = "net_af_packet0,iface=${p}${x}w,qpairs=1"
addresses = [$wan]
kernel_interface = "${p}${x}kw"

[[port]]
name = "lan"
device = "net_af_packet1,iface=${p}${x}l,qpairs=1"
addresses = [$lan]
kernel_interface = "${p}${x}kl"
TOML
}

fnatd_config() {
  local p=$1 n=$2 pmd=$3 st; st=$(state_of "$p")
  local wan lan workers=${LAB_WORKERS:-1} cpus="${LAB_WORKER_CPU:-1}" i
  for i in $(seq 2 "$workers"); do cpus+=", ${LAB_WORKER_CPU:-1}"; done
  local wan_twin="" lan_twin=""
  if [ "${LAB_KERNEL_TWIN:-0}" = 1 ]; then
    wan_twin="kernel_interface = \"${p}kw\""; lan_twin="kernel_interface = \"${p}kl\""
  fi
  case "$pmd" in
    af_packet) wan="net_af_packet0,iface=${p}gw,qpairs=$workers"
               lan="net_af_packet1,iface=${p}gl,qpairs=$workers" ;;
    af_xdp) wan="net_af_xdp0,iface=${p}gw,start_queue=0,queue_count=1"
            lan="net_af_xdp1,iface=${p}gl,start_queue=0,queue_count=1" ;;
    tap) wan="net_tap0,iface=${p}tw"; lan="net_tap1,iface=${p}tl" ;;
    *) die "LAB_PMD=$pmd: af_packet, af_xdp or tap" ;;
  esac
  cat <<TOML
# Generated by scripts/lab/lab.sh for lab $p ($pmd).
[eal]
main_cpu = 0
worker_cpus = [${LAB_WORKER_CPUS:-$cpus}]
file_prefix = "$p"
memory_mb = 256

[dataplane]
workers = $workers
mbufs = 8191

[[port]]
name = "wan"
device = "$wan"
addresses = ["198.18.0.1/24", "$VIP/32", "$VIP2/32"]
$wan_twin

[[port]]
name = "lan"
device = "$lan"
addresses = ["198.19.1.1/24", "$LIP/32"]
$lan_twin

[control]
socket = "$st/ctl.sock"
state_file = "$st/rules.state"

TOML
  if [ -n "${LAB_METRICS:-}" ]; then printf '[metrics]\nlisten = "%s"\n\n' "$LAB_METRICS"; fi
  if [ -n "${LAB_SERVICES:-}" ]; then cat "$LAB_SERVICES"; else default_services "$n"; fi
  if [ -n "${LAB_EXTRA_SERVICES:-}" ]; then echo; cat "$LAB_EXTRA_SERVICES"; fi
}

nft_rules() {
  local n=$1 i map=""
  for i in $(seq 1 "$n"); do map+="$((i - 1)) : 198.19.1.$((10 + i)), "; done
  cat <<NFT
table ip fnatlab {
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr $VIP tcp dport { 80, 9000 } dnat to numgen inc mod $n map { ${map%, } }
    ip daddr $VIP udp dport 9001 dnat to numgen inc mod $n map { ${map%, } }
  }
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    ip daddr 198.19.1.0/24 snat to $LIP
  }
}
NFT
}

up() {
  need_root
  local p=${LAB_PREFIX:-fl$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')}
  local n=${LAB_SERVERS:-2} pmd=${LAB_PMD:-af_packet} gwmode=${LAB_GATEWAY:-fnatd}
  [ ${#p} -le 8 ] || die "LAB_PREFIX '$p' longer than 8 characters (interface names)"
  local st; st=$(state_of "$p")
  [ -e "$st" ] && die "lab $p exists already ($st)"
  mkdir -p "$st"
  : > "$st/pids"
  echo "$n" > "$st/servers"
  local mode=${LAB_RS_MODE:-fnat}
  # A failure half-way leaves nothing behind.
  trap 'echo "lab: set-up of $p failed; removing it" >&2; down "$p" >/dev/null 2>&1' ERR INT TERM

  ip netns add "${p}c"; ip netns add "${p}g"
  ns_sysctls "$p" c; ns_sysctls "$p" g
  ip link add "${p}c0" netns "${p}c" type veth peer name "${p}gw" netns "${p}g"
  nsx "$p" g ip link add "${p}br" type bridge
  nsx "$p" g sysctl -qw "net.ipv6.conf.${p}br.disable_ipv6=1" || true
  nsx "$p" g ip link set "${p}br" type bridge stp_state 0 forward_delay 0
  nsx "$p" g ip link set "${p}br" up
  for i in $(seq 1 "$n"); do
    ip netns add "${p}s$i"; ns_sysctls "$p" "s$i"
    ip link add "${p}s$i" netns "${p}s$i" type veth peer name "${p}b$i" netns "${p}g"
    quiet_if "$p" "s$i" "${p}s$i"; quiet_if "$p" g "${p}b$i"
    nsx "$p" g ip link set "${p}b$i" master "${p}br"
    nsx "$p" "s$i" ip addr add "198.19.1.$((10 + i))/24" dev "${p}s$i"
    nsx "$p" "s$i" ip route add 198.19.0.0/24 via 198.19.1.1
  done
  quiet_if "$p" c "${p}c0"; quiet_if "$p" g "${p}gw"
  nsx "$p" c ip addr add 198.18.0.2/24 dev "${p}c0"
  nsx "$p" c ip route add 198.18.10.0/24 via 198.18.0.1

  for i in $(seq 1 "$n"); do http_server "$p" "$i"; done
  if [ "$mode" = dr ] || [ "$mode" = tun ] || [ "${LAB_ROUTER:-0}" = 1 ]; then router_up "$p"; fi
  for i in $(seq 1 "$n"); do server_mode "$p" "$i" "$mode"; done
  if [ "${LAB_CLIENT_HTTP:-0}" = 1 ]; then
    mkdir -p "$st/wwwc"; head -c 1048576 /dev/urandom > "$st/wwwc/1m.bin"; echo wan > "$st/wwwc/index.html"
    bg "$p" c httpc /usr/bin/python3 -m http.server 80 --bind 0.0.0.0 --directory "$st/wwwc"
    bg "$p" c uechoc socat UDP4-RECVFROM:9001,fork PIPE
  fi

  if [ "$gwmode" = nft ]; then
    command -v nft >/dev/null || die "nft missing (apt-get install nftables)"
    nsx "$p" g ip addr add 198.18.0.1/24 dev "${p}gw"
    nsx "$p" g ip addr add 198.19.1.1/24 dev "${p}br"
    nsx "$p" g ip addr add "$LIP/32" dev "${p}br"
    nsx "$p" g sysctl -qw net.ipv4.ip_forward=1
    nft_rules "$n" > "$st/rules.nft"
    nsx "$p" g nft -f "$st/rules.nft"
    # The gateway's packet work on one core: RPS steers its receive processing to CPU 1.
    for d in "${p}gw" "${p}br" $(for i in $(seq 1 "$n"); do echo "${p}b$i"; done); do
      nsx "$p" g sh -c "echo ${LAB_GATEWAY_CPUMASK:-2} > /sys/class/net/$d/queues/rx-0/rps_cpus" 2>/dev/null || true
    done
  else
    local fnatd=${FNATD:-$root/target/release/fnatd}
    [ -x "$fnatd" ] || die "fnatd binary '$fnatd' missing (make build, or set FNATD)"
    case "$pmd" in
      tap)
        # The tap PMD makes its own kernel interfaces; bridge them to the lab's veths.
        nsx "$p" g ip link add "${p}bw" type bridge
        nsx "$p" g ip link set "${p}bw" type bridge stp_state 0 forward_delay 0
        nsx "$p" g sysctl -qw "net.ipv6.conf.${p}bw.disable_ipv6=1" || true
        nsx "$p" g ip link set "${p}bw" up
        nsx "$p" g ip link set "${p}gw" master "${p}bw" ;;
      *)
        ip link add "${p}gl" netns "${p}g" type veth peer name "${p}gb" netns "${p}g"
        quiet_if "$p" g "${p}gl"; quiet_if "$p" g "${p}gb"
        nsx "$p" g ip link set "${p}gb" master "${p}br" ;;
    esac
    if [ "${LAB_KERNEL_TWIN:-0}" = 1 ] && [ "$pmd" != tap ]; then
      # The gateway's kernel must not answer the ports' traffic (hide_from_kernel).
      hide_from_kernel "$p" g "${p}gw" "${p}gl"
    fi
    if [ -n "${LAB_GW_KERNEL_ADDR:-}" ]; then
      nsx "$p" g ip addr add "$LAB_GW_KERNEL_ADDR" dev "${p}br"
    fi
    fnatd_config "$p" "$n" "$pmd" > "$st/fnatd.toml"
    # shellcheck disable=SC2086
    bg "$p" g fnatd "$fnatd" run --config "$st/fnatd.toml" ${LAB_FNATD_ARGS:-}
    if [ "$pmd" = tap ]; then
      for t in "${p}tw" "${p}tl"; do
        for _ in $(seq 1 100); do nsx "$p" g ip link show "$t" >/dev/null 2>&1 && break; sleep 0.1; done
        quiet_if "$p" g "$t"
      done
      nsx "$p" g ip link set "${p}tw" master "${p}bw"
      nsx "$p" g ip link set "${p}tl" master "${p}br"
    fi
  fi
  # Ready when every real server answers through the VIP (ARP both ways included), or with
  # LAB_WAIT=socket when fnatd's control socket is there.
  local ok=0
  for _ in $(seq 1 100); do
    if [ "${LAB_WAIT:-vip}" = socket ]; then
      if [ -S "$st/ctl.sock" ]; then ok=1; break; fi
    elif nsx "$p" c curl -s -m 1 "http://$VIP/" >/dev/null 2>&1; then ok=1; break; fi
    if [ "$gwmode" != nft ] && ! kill -0 "$(tail -n1 "$st/pids")" 2>/dev/null; then break; fi
    sleep 0.2
  done
  if [ $ok != 1 ]; then
    echo "lab: $VIP does not answer; fnatd log:" >&2
    cat "$st/fnatd.log" >&2 2>/dev/null || true
    false
  fi
  trap - ERR INT TERM
  echo "$p"
}

down() {
  local p=$1 st; st=$(state_of "$p")
  [[ "$p" =~ ^[a-z0-9]+$ ]] || die "bad prefix '$p'"
  if [ -f "$st/pids" ]; then
    # Only what this lab started: SIGTERM first (fnatd prints its statistics), then SIGKILL.
    while read -r pid; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done < "$st/pids"
    for _ in $(seq 1 50); do
      alive=0
      while read -r pid; do kill -0 "$pid" 2>/dev/null && alive=1; done < "$st/pids"
      [ $alive = 0 ] && break
      sleep 0.1
    done
    while read -r pid; do kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; done < "$st/pids"
  fi
  for ns in $(ip netns list | awk '{print $1}' | grep -E "^${p}(c|g|r|s[0-9]+)$" || true); do
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "/var/run/dpdk/$p"
  if [ "${LAB_KEEP_STATE:-0}" != 1 ]; then rm -rf "$st"; fi
}

# LAB_LIB=1: only define the functions (scripts/lab/scaleout.sh sources this file).
[ "${LAB_LIB:-0}" = 1 ] && return 0
case "${1:-}" in
  up) up ;;
  down) [ -n "${2:-}" ] || die "usage: lab.sh down PREFIX"; down "$2" ;;
  exec) [ -n "${3:-}" ] || die "usage: lab.sh exec PREFIX ROLE CMD..."; p=$2 role=$3; shift 3; nsx "$p" "$role" "$@" ;;
  *) die "usage: lab.sh up | down PREFIX | exec PREFIX ROLE CMD..." ;;
esac
