#!/usr/bin/env python3
"""TCP echo server and client for the lab's data-integrity checks.

A single-process relay such as `socat ... PIPE` or `socat ... EXEC:cat` deadlocks once more
than a pipe buffer (64 KiB) is in flight in both directions: it blocks writing into a pipe
that only it drains. Here the server echoes each connection on its own thread and the client
writes and reads on two threads, so neither side can stall on full buffers.

  echo.py serve PORT                      echo every TCP connection until the peer closes
  echo.py send HOST PORT IN OUT [SECONDS] send IN, half-close, write what comes back to OUT
  echo.py lines HOST PORT LOG STOP        one connection, a numbered line every 100 ms until the
                                          file STOP exists; each echoed number appended to LOG
                                          as it comes back; then half-close, read the rest and
                                          print a JSON summary (the HA lab's live connection)
"""
import json
import os
import time
import socket
import socketserver
import sys
import threading


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        conn = self.request
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            conn.sendall(chunk)
        conn.shutdown(socket.SHUT_WR)


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def serve(port):
    with Server(("0.0.0.0", port), Echo) as server:
        server.serve_forever()


def send(host, port, infile, outfile, seconds):
    with open(infile, "rb") as f:
        data = f.read()
    conn = socket.create_connection((host, port), timeout=seconds)

    def writer():
        conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)

    t = threading.Thread(target=writer)
    t.start()
    received = bytearray()
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            break
        received += chunk
    t.join()
    with open(outfile, "wb") as f:
        f.write(received)


def lines(host, port, log, stop):
    conn = socket.create_connection((host, port), timeout=10)
    conn.settimeout(None)
    sent = [0]
    error = [None]

    def writer():
        try:
            while not os.path.exists(stop):
                conn.sendall(b"%d\n" % sent[0])
                sent[0] += 1
                time.sleep(0.1)
            conn.shutdown(socket.SHUT_WR)
        except OSError as e:
            error[0] = "send: %r" % e

    t = threading.Thread(target=writer)
    t.start()
    received, in_order, rest, last, max_gap = 0, True, b"", time.monotonic(), 0.0
    with open(log, "a") as out:
        try:
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                rest += chunk
                while b"\n" in rest:
                    line, rest = rest.split(b"\n", 1)
                    now = time.monotonic()
                    max_gap = max(max_gap, now - last)
                    last = now
                    if int(line) != received:
                        in_order = False
                    received += 1
                    out.write("%d %.3f\n" % (int(line), time.time()))
                    out.flush()
        except OSError as e:
            error[0] = "recv: %r" % e
    t.join()
    print(json.dumps({"sent": sent[0], "received": received, "in_order": in_order,
                      "max_gap_ms": round(max_gap * 1000), "error": error[0]}))
    sys.exit(0 if error[0] is None and in_order and received == sent[0] else 1)


def main(argv):
    if len(argv) == 3 and argv[1] == "serve":
        serve(int(argv[2]))
    elif len(argv) == 6 and argv[1] == "lines":
        lines(argv[2], int(argv[3]), argv[4], argv[5])
    elif len(argv) in (6, 7) and argv[1] == "send":
        send(argv[2], int(argv[3]), argv[4], argv[5], float(argv[6]) if len(argv) == 7 else 30.0)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
