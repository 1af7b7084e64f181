#!/usr/bin/env python3
"""Rule-publish latency through the control socket, while the workers forward.

Starts `fnatd run` on configs/null-fnat.toml (two net_null ports, two workers: the null RX
feeds every worker as fast as it polls, so the dataplane is busy throughout), keeps one
connection to the control socket, and times N changes: request line sent → reply read.
Each reply comes only after validation, compilation, publication and every worker's
acknowledgement (each worker runs `FullNat::update` between two bursts), so this is the whole
path an operator waits for. Bounded: N requests, one daemon, stopped with SIGTERM at the end.

  perf/publish_latency.py [FNATD] [N] [SERVICES] [REALS_PER_SERVICE] [replace|apply] [state]
      (default target/release/fnatd, 500, 0, 10, replace, no state file)

SERVICES = 0: N weight edits of the config's one service (the original measurement).
SERVICES > 0: first one `replace` loads SERVICES wrr services (10.0.0.0 + i, port 80) of
REALS_PER_SERVICE real servers each (timed on its own; `apply`: as one batch of single
changes, -A then -a per real then -P, which is what `ipvsadm -R` sends), then the N changes
cycle through two
weight edits, a real server added and the same one removed, on services spread over the
table (as dataplane/examples/control_publish_latency.rs). A refused change (e.g. workers that
did not switch within the daemon's 5 s) is counted, not fatal. `state`: with a state file
(`control.state_file`), which every change must reach (fsync) before its reply.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ip(n):
    return ".".join(str((n >> s) & 255) for s in (24, 16, 8, 0))


def vip(i):
    return f"tcp/{ip(0x0a000000 + i)}:80"


def main():
    fnatd = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/fnatd")
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    services = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    reals_per = int(sys.argv[4]) if len(sys.argv) > 4 else 10
    load = sys.argv[5] if len(sys.argv) > 5 else "replace"
    state = len(sys.argv) > 6 and sys.argv[6] == "state"
    with tempfile.TemporaryDirectory(prefix="fnat-publish-") as tmp:
        sock_path = os.path.join(tmp, "ctl.sock")
        config = os.path.join(ROOT, "configs/null-fnat.toml")
        if services or state:
            # The same config, taking a request line big enough for the whole rule set.
            with open(config) as f:
                text = f.read()
            control = "\n[control]\nmax_request_bytes = 67108864\n"
            if state:
                control += f'state_file = "{os.path.join(tmp, "state.toml")}"\n'
            config = os.path.join(tmp, "fnat.toml")
            with open(config, "w") as f:
                f.write(text.replace("\n[control]\n", control))
        daemon = subprocess.Popen(
            [fnatd, "run", "--config", config, "--socket", sock_path],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.time() + 30
            conn = None
            while conn is None:
                if daemon.poll() is not None:
                    sys.exit("fnatd exited: " + daemon.stderr.read().decode())
                try:
                    conn = socket.socket(socket.AF_UNIX)
                    conn.connect(sock_path)
                except OSError:
                    conn = None
                    if time.time() > deadline:
                        sys.exit("fnatd did not open its socket in 30 s")
                    time.sleep(0.05)
            reader = conn.makefile("rb")

            def call(req):
                t0 = time.perf_counter()
                conn.sendall((json.dumps(req) + "\n").encode())
                reply = json.loads(reader.readline())
                return time.perf_counter() - t0, reply

            result = {}
            if services:
                rules = {"service": [{
                    "addr": vip(i), "scheduler": "wrr",
                    "reals": [{"addr": ip(0xc0a80000 + i * reals_per + j), "port": 8080, "weight": 1}
                              for j in range(reals_per)],
                    "local_addresses": [{"addr": "198.19.0.10"}],
                } for i in range(services)]}
                if load == "apply":
                    changes = []
                    for s in rules["service"]:
                        changes.append({"op": "service_add", "args": {"service": {
                            "addr": s["addr"], "scheduler": s["scheduler"]}}})
                        changes += [{"op": "real_add", "args": {"service": s["addr"], "real": r}}
                                    for r in s["reals"]]
                        changes.append({"op": "laddr_add", "args": {
                            "service": s["addr"], "laddr": s["local_addresses"][0]}})
                    req = {"version": 1, "op": "apply", "args": {"changes": changes}}
                else:
                    req = {"version": 1, "op": "replace", "args": {"rules": rules}}
                took, reply = call(req)
                result.update({"services": services, "reals": services * reals_per, "load": load,
                               "state_file": state,
                               "load_ms": round(took * 1e3), "load_ok": bool(reply.get("ok"))})
            time.sleep(1.0)  # workers busy with null traffic
            samples = []
            refused = 0
            for k in range(n):
                if not services:
                    req = {"version": 1, "op": "real_edit", "args": {
                        "service": "tcp/198.18.0.100:80",
                        "real": {"addr": "198.19.1.10", "port": 80, "weight": 1 + k % 5}}}
                else:
                    i = (k * 7919) % services
                    if k % 4 in (0, 1):
                        req = {"version": 1, "op": "real_edit", "args": {
                            "service": vip(i),
                            "real": {"addr": ip(0xc0a80000 + i * reals_per), "port": 8080,
                                     "weight": k % 100}}}
                    elif k % 4 == 2:
                        req = {"version": 1, "op": "real_add", "args": {
                            "service": vip(i), "real": {"addr": "172.16.0.1", "port": 80, "weight": 1}}}
                    else:
                        req = {"version": 1, "op": "real_del", "args": {
                            "service": vip(((k - 1) * 7919) % services), "addr": "172.16.0.1", "port": 80}}
                took, reply = call(req)
                samples.append(took)
                if not reply.get("ok"):
                    refused += 1
                    if not services:
                        sys.exit(f"request {k} refused: {reply}")
            samples.sort()
            pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))] * 1e6
            result.update({"publishes": n, "refused": refused, "p50_us": round(pick(0.50)),
                           "p99_us": round(pick(0.99)), "max_us": round(samples[-1] * 1e6)})
            print(json.dumps(result))
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()


if __name__ == "__main__":
    main()
