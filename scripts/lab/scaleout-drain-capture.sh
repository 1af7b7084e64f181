#!/usr/bin/env bash
# Evidence for what a drain under load does to the connections on the wire (docs/scale-out.md,
# "Drain without losing connections"): builds the scale-out lab, captures at the router's two
# appliance-facing interfaces and its route changes (`ip -ts monitor route`), runs 3,000
# requests of 2 ms on 4 threads, drains appliance a 0.7 s in, then reports the failed
# requests and, from the captures, the client flows that went through a before the router's
# route changed and still sent after it: kept on a, or moved to b.
#
#   scripts/lab/scaleout-drain-capture.sh OUT_DIR      (as root; binaries in target/debug)
# LAB_ROUTER_PIN=0 for plain ECMP (default 1: the router pins connections, router-pin.nft).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:?usage: scaleout-drain-capture.sh OUT_DIR}
mkdir -p "$out"
P=fd$(od -An -N2 -tx2 /dev/urandom | tr -d ' ')
export LAB_PREFIX=$P LAB_HTTP=python LAB_BGP_HOLD=3 LAB_ROUTER_PIN=${LAB_ROUTER_PIN:-1}
export FNATD=${FNATD:-$root/target/debug/fnatd} FNATCTL=${FNATCTL:-$root/target/debug/fnatctl}
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  bash "$root/scripts/lab/scaleout.sh" down "$P" >/dev/null 2>&1 || true
}
trap cleanup EXIT
bash "$root/scripts/lab/scaleout.sh" up >"$out/up.log" 2>&1
st=/tmp/fnat-lab-$P
for x in a b; do
  ip netns exec "${P}r" tcpdump -i "${P}r$x" -n -U -w "$out/r$x.pcap" tcp port 80 2>/dev/null &
  pids+=($!)
done
ip netns exec "${P}r" ip -ts monitor route >"$out/monitor.log" 2>&1 &
pids+=($!)
sleep 1
ip netns exec "${P}c" python3 "$root/scripts/lab/conns.py" 198.18.10.100 80 40000 3000 4 0.002 \
  >"$out/load.json" &
load=$!
sleep 0.7
"$FNATCTL" --socket "$st/a.sock" --json drain --timeout 8 --settle 3 >"$out/drain.json"
wait "$load"
"$FNATCTL" --socket "$st/b.sock" --json stats >"$out/b-stats.json"
sleep 0.5
python3 - "$out" <<'PY'
import collections, datetime, json, subprocess, sys
out = sys.argv[1]
load = json.load(open(f"{out}/load.json"))
drops = json.load(open(f"{out}/b-stats.json"))["drops"].get("no_session", 0)
line = open(f"{out}/monitor.log").readline()
t_change = datetime.datetime.fromisoformat(line[1:line.index("]")]).replace(
    tzinfo=datetime.timezone.utc).timestamp()
flows = collections.defaultdict(collections.Counter)
for x in "ab":
    fields = subprocess.run(
        ["tshark", "-r", f"{out}/r{x}.pcap", "-T", "fields", "-e", "frame.time_epoch",
         "-e", "ip.src", "-e", "tcp.srcport"], capture_output=True, text=True).stdout
    for row in fields.splitlines():
        t, src, port = row.split("\t")
        if src == "198.18.0.2":  # client -> VIP
            flows[int(port)][(x, float(t) >= t_change)] += 1
on_wire = [p for p, c in flows.items() if c[("a", False)] and (c[("a", True)] or c[("b", True)])]
moved = sorted(p for p in on_wire if flows[p][("b", True)])
kept = sorted(p for p in on_wire if not flows[p][("b", True)])
print(f"failed {load['failed']} of 3000 {load['errors']}; b no_session drops {drops}; "
      f"a's flows on the wire at the route change: {len(on_wire)}, kept on a {kept}, moved to b {moved}")
PY
