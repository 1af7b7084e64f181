#!/usr/bin/env bash
# Installs the fnat package on this machine, starts fnatd.service with the shipped config (two
# net_null ports), drives it with `ipvsadm -Ln` (the alternative), has Debian's Prometheus
# scrape its metrics endpoint,
# reloads and stops it, purges the package and checks nothing is left behind. As root.
# With systemd as PID 1 the unit is started by systemctl; otherwise (containers, CI runners)
# the unit's ExecStartPre/ExecStart run the way systemd runs them: /run/fnatd created
# (RuntimeDirectory), NOTIFY_SOCKET set to a socket this script reads (Type=notify: the start
# counts only once READY=1 arrives), part of the unit's hardening (mount namespace with
# ProtectSystem=full, ProtectHome, PrivateTmp; no_new_privs), ExecReload's SIGHUP, SIGTERM.
#   packaging/test-deb.sh [--profile debug|release]   (binaries must be built)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
profile=${2:-debug}
[ "${1:-}" = --profile ] || profile=debug
fail() { echo "test-deb: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root"
# Present while this test has fnat installed: a package found with it is the leftover of an
# interrupted run (purged here); one found without it is someone's, and never touched.
marker=/var/lib/fnat-test-deb.installed
if dpkg-query -W -f='${Status}' fnat 2>/dev/null | grep -q installed; then
  if [ -f "$marker" ]; then
    echo "== purging fnat left installed by an interrupted run of this test ($marker)"
    dpkg --purge fnat >/dev/null || fail "could not purge the leftover fnat package"
  else
    fail "a fnat package this test did not install is installed here; remove it with 'dpkg --purge fnat' (or 'apt-get purge fnat') and run the test again"
  fi
fi
rm -f "$marker"
work=$(mktemp -d /var/tmp/fnat-test-deb.XXXXXX)
pid=""
listener=""
fake_ipvsadm=""
prom=""
cleanup() {
  [ -n "$prom" ] && kill "$prom" 2>/dev/null || true
  [ -n "$fake_ipvsadm" ] && rm -f /usr/sbin/ipvsadm
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  [ -n "$listener" ] && kill "$listener" 2>/dev/null || true
  rm -f "/run/fnat-test-deb.$$.notify"
  if dpkg-query -W -f='${Status}' fnat 2>/dev/null | grep -q installed; then
    dpkg --purge fnat >/dev/null 2>&1 || true
  fi
  dpkg-query -W -f='${Status}' fnat 2>/dev/null | grep -q installed || rm -f "$marker"
  rm -rf "$work"
}
trap cleanup EXIT

deb=$(bash "$repo/packaging/build-deb.sh" --profile "$profile" --out "$work")
ipvsadm_before=$(stat -c '%F' /usr/sbin/ipvsadm 2>/dev/null || echo absent)
echo "== install $(basename "$deb") (ipvsadm before: $ipvsadm_before)"
touch "$marker"
dpkg -i "$deb" >"$work/install.log" 2>&1 || { cat "$work/install.log"; fail "dpkg -i"; }
dpkg -L fnat >"$work/files"
if [ "$ipvsadm_before" = absent ]; then
  [ "$(readlink -f /usr/sbin/ipvsadm)" = /usr/bin/fnatctl ] || fail "ipvsadm alternative not set"
else
  [ "$(stat -c '%F' /usr/sbin/ipvsadm)" = "$ipvsadm_before" ] || fail "a real ipvsadm was replaced"
fi
for f in /usr/share/man/man8/fnatd.8.gz /usr/share/man/man8/fnatctl.8.gz \
  /usr/share/bash-completion/completions/fnatctl /lib/systemd/system/fnatd.service \
  /lib/systemd/system/fnat-bird-hook.service /usr/share/doc/fnat/examples/bird/appliance.conf \
  /usr/share/doc/fnat/examples/bird/router.conf /usr/share/doc/fnat/scale-out.md; do
  [ -f "$f" ] || fail "$f not installed"
done
man -w fnatd-run >/dev/null 2>&1 || [ ! -x /usr/bin/man ] || fail "man fnatd-run not found"

unit=/lib/systemd/system/fnatd.service
unit_cmd() { sed -n "s/^$1=//p" "$unit"; }
if [ "$(ps -p 1 -o comm=)" = systemd ]; then
  echo "== systemctl start fnatd"
  systemctl start fnatd.service || { journalctl -u fnatd --no-pager | tail -20; fail "start"; }
  systemctl is-active --quiet fnatd.service || fail "not active after start"
  pid=$(systemctl show -p MainPID --value fnatd.service)
else
  echo "== PID 1 is $(ps -p 1 -o comm=), not systemd: running the unit's commands as systemd would"
  mkdir -p -m 0750 /run/fnatd
  # In /run, as systemd's: the hardened namespace below hides /tmp and /var/tmp.
  notify=/run/fnat-test-deb.$$.notify
  python3 -u -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
while True:
    print(s.recv(4096).decode().replace("\n", " "), flush=True)
' "$notify" >"$work/notify.log" &
  listener=$!
  for _ in $(seq 50); do [ -S "$notify" ] && break; sleep 0.1; done
  # shellcheck disable=SC2046
  $(unit_cmd ExecStartPre) >/dev/null || fail "ExecStartPre (fnatd check) failed"
  # Part of the unit's hardening, as systemd applies it, around ExecStart: a private mount
  # namespace with /usr, /boot and /etc read-only (ProtectSystem=full), empty /home, /root and
  # /run/user (ProtectHome=yes), a private /tmp (PrivateTmp=yes), and no_new_privs
  # (NoNewPrivileges=yes). The other options need systemd itself.
  for opt in "ProtectSystem=full" "ProtectHome=yes" "PrivateTmp=yes" "NoNewPrivileges=yes"; do
    grep -qx "$opt" "$unit" || fail "the unit lost $opt (this test emulates it)"
  done
  # shellcheck disable=SC2016
  hardened='set -e
    for d in /usr /boot /etc; do
      if [ -d "$d" ]; then mount --bind "$d" "$d"; mount -o remount,bind,ro "$d"; fi
    done
    for d in /home /root /run/user /tmp /var/tmp; do
      if [ -d "$d" ]; then mount -t tmpfs -o mode=0755 tmpfs "$d"; fi
    done
    exec setpriv --no-new-privs "$@"'
  # shellcheck disable=SC2046
  NOTIFY_SOCKET="$notify" unshare --mount --propagation private \
    sh -c "$hardened" hardened $(unit_cmd ExecStart) >"$work/fnatd.out" 2>"$work/fnatd.err" &
  pid=$!
  timeout=$(unit_cmd TimeoutStartSec)
  for _ in $(seq $((${timeout%s} * 10))); do
    grep -q "READY=1" "$work/notify.log" && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/fnatd.err"; fail "fnatd exited before READY=1"; }
    sleep 0.1
  done
  grep -q "READY=1" "$work/notify.log" || fail "no READY=1 within TimeoutStartSec"
  echo "   notified: $(head -n1 "$work/notify.log")"
  [ "$(awk '/^NoNewPrivs:/ {print $2}' "/proc/$pid/status")" = 1 ] || fail "fnatd runs without no_new_privs"
  for d in /usr /etc; do
    awk -v d="$d" '$5 == d {print $6}' "/proc/$pid/mountinfo" | tail -n1 | grep -q '^ro' \
      || fail "$d is writable for fnatd (ProtectSystem=full not in effect)"
  done
  echo "   hardened: no_new_privs, /usr and /etc read-only, private /tmp, /home, /root"
fi

echo "== ipvsadm -Ln"
out=$(ipvsadm -Ln)
echo "$out"
echo "$out" | grep -q '^TCP  198.18.0.100:80 rr$' || fail "service missing from ipvsadm -Ln"
[ "$(echo "$out" | grep -c 'FullNat')" = 2 ] || fail "real servers missing from ipvsadm -Ln"
echo "== bird-hook (fnat-bird-hook.service's command, its file and reconfigure command here)"
hook_cmd=$(sed -n 's/^ExecStart=//p' /lib/systemd/system/fnat-bird-hook.service)
[ "${hook_cmd%% *}" = /usr/bin/fnatctl ] || fail "hook unit runs $hook_cmd"
timeout 3 /usr/bin/fnatctl bird-hook --file "$work/bird-vips.conf" \
  --reconfigure "touch $work/reconfigured" --interval-ms 200 || [ $? = 124 ] || fail "bird-hook"
grep -q '^route 198.18.0.100/32 blackhole;' "$work/bird-vips.conf" \
  || fail "the hook did not announce the shipped config's VIP: $(cat "$work/bird-vips.conf")"
[ -e "$work/reconfigured" ] || fail "the hook did not run its reconfigure command"
echo "== metrics"
curl -sS --max-time 5 http://127.0.0.1:9417/metrics >"$work/metrics"
grep -q '^fnat_up 1$' "$work/metrics" || fail "fnat_up 1 not in the metrics"
promtool check metrics <"$work/metrics" || fail "promtool"
# Debian's Prometheus scrapes the service's endpoint; its query API must see fnatd up and the
# frames net_null feeds it (zero-filled, all dropped) counted.
prom_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: fnatd\n    static_configs:\n      - targets: [127.0.0.1:9417]\n' \
  >"$work/prometheus.yml"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" >"$work/prometheus.log" 2>&1 &
prom=$!
scraped=""
for _ in $(seq 60); do
  answer=$(curl -sS --max-time 2 -g "http://127.0.0.1:$prom_port/api/v1/query?query=sum(fnat_drops_total)*on()fnat_up" 2>/dev/null || true)
  if echo "$answer" | grep -q '"value":\[[0-9.]*,"[1-9]'; then scraped=1; break; fi
  sleep 1
done
kill "$prom"; wait "$prom" 2>/dev/null || true
prom=""
[ -n "$scraped" ] || fail "Prometheus did not scrape fnatd (last answer: ${answer:-none})"
echo "   prometheus: $answer"

echo "== reload (ExecReload: $(unit_cmd ExecReload))"
if [ -z "$listener" ]; then
  systemctl reload fnatd.service
else
  kill -HUP "$pid"
  for _ in $(seq 50); do grep -q "SIGHUP" "$work/fnatd.err" && break; sleep 0.1; done
  grep -q "SIGHUP: config reloaded" "$work/fnatd.err" || fail "reload: $(cat "$work/fnatd.err")"
fi
ipvsadm -Ln | grep -q '^TCP  198.18.0.100:80 rr$' || fail "service gone after reload"

echo "== stop"
if [ -z "$listener" ]; then
  systemctl stop fnatd.service
  pid=""
else
  kill -TERM "$pid"
  rc=0
  wait "$pid" || rc=$?
  pid=""
  [ "$rc" = 0 ] || { cat "$work/fnatd.err"; fail "fnatd exited $rc on SIGTERM"; }
  grep -q "STOPPING=1" "$work/notify.log" || fail "no STOPPING=1"
  [ ! -e /run/fnatd/ctl.sock ] || fail "control socket left behind"
  rm -rf /run/fnatd # RuntimeDirectory= is removed when the unit stops
fi

echo "== purge"
dpkg --purge fnat >"$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "dpkg --purge"; }
left=()
# Every file the package held (its directories are shared: /lib, /usr/share/man, …).
while read -r f; do
  if [ -f "$f" ] || { [ -L "$f" ] && [ ! -d "$f" ]; }; then left+=("$f"); fi
done <"$work/files"
for f in /etc/fnat /var/lib/fnat /run/fnatd /var/lib/dpkg/alternatives/ipvsadm /etc/alternatives/ipvsadm; do
  if [ -e "$f" ] || [ -L "$f" ]; then left+=("$f"); fi
done
[ ${#left[@]} = 0 ] || fail "left behind: ${left[*]}"
[ "$(stat -c '%F' /usr/sbin/ipvsadm 2>/dev/null || echo absent)" = "$ipvsadm_before" ] \
  || fail "/usr/sbin/ipvsadm changed by install and purge"

# A real ipvsadm (the ipvsadm package's binary) must survive install and purge untouched.
if [ "$ipvsadm_before" = absent ]; then
  echo "== with a real /usr/sbin/ipvsadm in place"
  printf '#!/bin/sh\necho real ipvsadm\n' >/usr/sbin/ipvsadm
  chmod 755 /usr/sbin/ipvsadm
  fake_ipvsadm=1
  sum=$(md5sum </usr/sbin/ipvsadm)
  dpkg -i "$deb" >"$work/install2.log" 2>&1 || { cat "$work/install2.log"; fail "dpkg -i (2)"; }
  [ -f /usr/sbin/ipvsadm ] && [ ! -L /usr/sbin/ipvsadm ] && [ "$(md5sum </usr/sbin/ipvsadm)" = "$sum" ] \
    || fail "install replaced a real /usr/sbin/ipvsadm"
  dpkg --purge fnat >"$work/purge2.log" 2>&1 || { cat "$work/purge2.log"; fail "dpkg --purge (2)"; }
  [ "$(md5sum </usr/sbin/ipvsadm)" = "$sum" ] || fail "purge touched a real /usr/sbin/ipvsadm"
  [ ! -e /var/lib/dpkg/alternatives/ipvsadm ] || fail "alternative left behind (2)"
  rm -f /usr/sbin/ipvsadm
  fake_ipvsadm=""
fi
echo "test-deb: OK"
