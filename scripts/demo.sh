#!/usr/bin/env bash
# The demo: replay a real HTTP capture (from Debian's python3-dpkt) through the pass-through
# config, show testpmd-style statistics, and read the output back with tshark.
# (The network-lab issue turns this into a live lab with real servers.)
set -euo pipefail
cd "$(dirname "$0")/.."
fnatd=target/release/fnatd
[ -x "$fnatd" ] || { echo "demo: $fnatd missing: run make build"; exit 1; }
input=/usr/share/doc/python3-dpkt/examples/data/http.pcap
[ -f "$input" ] || { echo "demo: $input missing: apt-get install python3-dpkt"; exit 1; }
work=$(mktemp -d /tmp/fnat-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "== fnatd replay --config configs/passthrough.toml --rx a=$input --tx b=$work/out.pcap"
"$fnatd" replay --config configs/passthrough.toml --rx "a=$input" --tx "b=$work/out.pcap"
echo
echo "== the output capture, read by tshark:"
tshark -r "$work/out.pcap" 2>/dev/null | head -12
if cmp -s <(tshark -r "$input" -T fields -e frame.protocols -e frame.len 2>/dev/null) \
          <(tshark -r "$work/out.pcap" -T fields -e frame.protocols -e frame.len 2>/dev/null); then
  echo "== input and output hold the same $(capinfos -c -M "$input" | awk '/Number/ {print $4}') frames"
else
  echo "== input and output differ"; exit 1
fi
