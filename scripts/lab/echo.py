#!/usr/bin/env python3
"""TCP echo server and client for the lab's data-integrity checks.

A single-process relay such as `socat ... PIPE` or `socat ... EXEC:cat` deadlocks once more
than a pipe buffer (64 KiB) is in flight in both directions: it blocks writing into a pipe
that only it drains. Here the server echoes each connection on its own thread and the client
writes and reads on two threads, so neither side can stall on full buffers.

  echo.py serve PORT                      echo every TCP connection until the peer closes
  echo.py send HOST PORT IN OUT [SECONDS] send IN, half-close, write what comes back to OUT
"""
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


def main(argv):
    if len(argv) == 3 and argv[1] == "serve":
        serve(int(argv[2]))
    elif len(argv) in (6, 7) and argv[1] == "send":
        send(argv[2], int(argv[3]), argv[4], argv[5], float(argv[6]) if len(argv) == 7 else 30.0)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
