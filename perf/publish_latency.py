#!/usr/bin/env python3
"""Rule-publish latency through the control socket, while the workers forward.

Starts `fnatd run` on configs/null-fnat.toml (two net_null ports, two workers: the null RX
feeds every worker as fast as it polls, so the dataplane is busy throughout), keeps one
connection to the control socket, and times N weight edits: request line sent → reply read.
Each reply comes only after validation, compilation, publication and every worker's
acknowledgement, so this is the whole path an operator waits for. Bounded: N requests, one
daemon, stopped with SIGTERM at the end.

  perf/publish_latency.py [FNATD] [N]      (default target/release/fnatd, 500)
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


def main():
    fnatd = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/fnatd")
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    with tempfile.TemporaryDirectory(prefix="fnat-publish-") as tmp:
        sock_path = os.path.join(tmp, "ctl.sock")
        daemon = subprocess.Popen(
            [fnatd, "run", "--config", os.path.join(ROOT, "configs/null-fnat.toml"), "--socket", sock_path],
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
            time.sleep(1.0)  # workers busy with null traffic
            samples = []
            for i in range(n):
                req = {"version": 1, "op": "real_edit", "args": {
                    "service": "tcp/198.18.0.100:80",
                    "real": {"addr": "198.19.1.10", "port": 80, "weight": 1 + i % 5}}}
                t0 = time.perf_counter()
                conn.sendall((json.dumps(req) + "\n").encode())
                reply = json.loads(reader.readline())
                samples.append(time.perf_counter() - t0)
                if not reply.get("ok"):
                    sys.exit(f"request {i} refused: {reply}")
            samples.sort()
            pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))] * 1e6
            result = {"publishes": n, "p50_us": round(pick(0.50)), "p99_us": round(pick(0.99)),
                      "max_us": round(samples[-1] * 1e6)}
            print(json.dumps(result))
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()


if __name__ == "__main__":
    main()
