#!/usr/bin/env bash
# Renders docs/images/dashboard-queries.png: the Grafana dashboard's queries
# (packaging/grafana/fnat-dashboard.json) drawn by Prometheus's own web UI in headless
# chromium, from a real run: the namespace lab (scripts/lab/lab.sh) with fnatd's metrics on,
# Debian's prometheus scraping it inside the gateway namespace, and ~3 minutes of bounded
# traffic (wrk, curl to a port with no service, a weight change). Grafana itself is not in
# Debian, so this is not a Grafana screenshot. As root; everything stops by itself.
# Needs Debian's chromium and python3-pil besides what setup-debian.sh installs (it is not part
# of the tests): apt-get install chromium python3-pil.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$repo/docs/images/dashboard-queries.png}
fnatd=${FNATD:-$repo/target/debug/fnatd}
fnatctl=$(dirname "$fnatd")/fnatctl
P=$(LAB_METRICS=127.0.0.1:9417 FNATD="$fnatd" bash "$repo/scripts/lab/lab.sh" up)
st=/tmp/fnat-lab-$P
prom=""
cleanup() {
  [ -n "$prom" ] && kill "$prom" 2>/dev/null || true
  bash "$repo/scripts/lab/lab.sh" down "$P" >/dev/null 2>&1 || true
}
trap cleanup EXIT
lab() { bash "$repo/scripts/lab/lab.sh" exec "$P" "$@"; }

cat >"$st/prometheus.yml" <<YML
global:
  scrape_interval: 2s
scrape_configs:
  - job_name: fnatd
    static_configs:
      - targets: ['127.0.0.1:9417']
YML
ip netns exec "${P}g" prometheus --config.file="$st/prometheus.yml" \
  --storage.tsdb.path="$st/tsdb" --web.listen-address=127.0.0.1:9090 >"$st/prometheus.log" 2>&1 &
prom=$!
sleep 5

echo "render-dashboard: lab $P, traffic for ~3 minutes"
lab c wrk -t1 -c4 -d50s http://198.18.10.100/ >/dev/null
lab c wrk -t1 -c8 -d50s http://198.18.10.100:8080/ >/dev/null &
w=$!
for _ in $(seq 200); do lab c curl -s --max-time 0.2 http://198.18.10.100:7777/ >/dev/null || true; done
wait "$w"
"$fnatctl" --socket "$st/ctl.sock" ipvsadm -e -t 198.18.10.100:80 -r 198.19.1.11:80 -w 3 -b
lab c wrk -t1 -c16 -d50s http://198.18.10.100/ >/dev/null
sleep 6

# One Prometheus graph per dashboard panel (its first query, last 4 minutes), each rendered
# alone, then put side by side with the panel's title (python3-pil).
shots="$st/shots"
mkdir -p "$shots"
/usr/bin/python3 - "$repo/packaging/grafana/fnat-dashboard.json" "$shots" <<'PY' >"$shots/list"
import json, sys, urllib.parse
d = json.load(open(sys.argv[1]))
for i, p in enumerate(d["panels"][:7]):
    expr = p["targets"][0]["expr"].replace("$__rate_interval", "30s")
    expr = expr.replace('{instance=~"$instance"}', "").replace('instance=~"$instance"', "")
    q = {"g0.expr": expr, "g0.tab": "0", "g0.range_input": "4m", "g0.stacked": "0"}
    print(f"{sys.argv[2]}/{i}.png\t{p['title']}\thttp://127.0.0.1:9090/graph?{urllib.parse.urlencode(q)}")
PY
while IFS=$'\t' read -r png _ url; do
  ip netns exec "${P}g" chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --window-size=1200,900 --virtual-time-budget=15000 --screenshot="$png" "$url" >/dev/null 2>&1
done <"$shots/list"
mkdir -p "$(dirname "$out")"
/usr/bin/python3 - "$shots/list" "$out" <<'PY'
import sys
from PIL import Image, ImageDraw
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
w, h, cap = 800, 600, 28
cols = 2
grid = Image.new("RGB", (cols * w, ((len(rows) + cols - 1) // cols) * (h + cap)), "white")
draw = ImageDraw.Draw(grid)
for k, (png, title, _) in enumerate(rows):
    x, y = (k % cols) * w, (k // cols) * (h + cap)
    draw.text((x + 10, y + 8), f"{title}  (Prometheus graph of the dashboard panel's query)", fill="black")
    grid.paste(Image.open(png).convert("RGB").resize((w, h)), (x, y + cap))
grid.save(sys.argv[2], optimize=True)
PY
echo "render-dashboard: wrote $out"
