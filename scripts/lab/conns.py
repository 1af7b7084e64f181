#!/usr/bin/env python3
"""HTTP/1.0 GETs, one new TCP connection each from its own source port, for the scale-out lab.

  conns.py HOST PORT FIRST_SRC_PORT COUNT [THREADS] [PAUSE_S]

Connection i leaves from source port FIRST_SRC_PORT + i. Prints one JSON object: answers per
body, failures, and the body each source port got ("by_port").
"""
import json
import socket
import sys
import threading
import time

host, port, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
threads = int(sys.argv[5]) if len(sys.argv) > 5 else 4
pause = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
lock = threading.Lock()
answers, by_port, errors = {}, {}, []


def one(src):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.settimeout(5)
    try:
        s.bind(("0.0.0.0", src))
        s.connect((host, port))
        s.sendall(b"GET / HTTP/1.0\r\nHost: lab\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.") or b" 200 " not in head.split(b"\r\n")[0]:
            raise OSError("bad answer %r" % head[:40])
        b = body.decode().strip()
        with lock:
            answers[b] = answers.get(b, 0) + 1
            by_port[src] = b
    except OSError as e:
        with lock:
            errors.append("%d: %s" % (src, e))
    finally:
        s.close()


def worker(k):
    for i in range(k, count, threads):
        one(first + i)
        if pause:
            time.sleep(pause)


ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print(json.dumps({"answers": answers, "failed": len(errors), "errors": errors[:10],
                  "by_port": by_port}))
