#!/usr/bin/env python3
"""A tunnel real server's decapsulation, for kernels without ipip, gre or fou modules.

LVS-TUN sends the client's packet, untouched, inside an outer IPv4 header to the real server:
IPIP (protocol 4), GRE (protocol 47, GRE protocol type 0x0800) or GUE (UDP to a chosen port,
a 4-byte GUE header, or none: GUE "variant 1" puts the IPv4 packet right after UDP). The real
server's kernel would strip the outer header (tunl0, gre0, fou) and take the inner packet as
arriving on that device, the VIP being one of its addresses. This program does the same in
user space: it reads the tunnel packets from raw sockets (and a UDP socket for GUE) and writes
each inner packet into a TUN device, on which (or on `lo`) the VIP is configured; the kernel
then answers the client directly with the VIP as source, as a real TUN real server does.

Usage (as root, inside the real server's namespace):
  tun_decap.py --dev NAME [--vip ADDR]... [--gue-port N] [--log FILE]

Creates TUN device NAME (no packet information header), brings it up, adds each --vip as /32,
prints "ready" and runs until killed. One line per packet goes to --log (or stderr):
  ipip|gre|gue outer=SRC>DST ttl=T df=0|1 [csum=0|1] [sport=S] inner=SRC>DST proto=P len=L
Malformed packets are counted and logged as `bad KIND reason`, never fatal.
"""

import argparse
import fcntl
import os
import select
import socket
import struct
import subprocess
import sys

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def open_tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    ifr = struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI)
    fcntl.ioctl(fd, TUNSETIFF, ifr)
    return fd


def ip(*args):
    subprocess.run(["ip", *args], check=True)


def outer_info(pkt):
    """(ihl bytes, src, dst, ttl, df) of an IPv4 header, or None."""
    if len(pkt) < 20 or pkt[0] >> 4 != 4:
        return None
    ihl = (pkt[0] & 0x0F) * 4
    if ihl < 20 or len(pkt) < ihl:
        return None
    flags = struct.unpack("!H", pkt[6:8])[0]
    return (
        ihl,
        socket.inet_ntoa(pkt[12:16]),
        socket.inet_ntoa(pkt[16:20]),
        pkt[8],
        1 if flags & 0x4000 else 0,
    )


def inner_desc(inner):
    if len(inner) < 20 or inner[0] >> 4 != 4:
        return None
    total = struct.unpack("!H", inner[2:4])[0]
    if total != len(inner):
        return None
    return "inner=%s>%s proto=%d len=%d" % (
        socket.inet_ntoa(inner[12:16]),
        socket.inet_ntoa(inner[16:20]),
        inner[9],
        total,
    )


def gre_payload(body):
    """The inner packet of a GRE packet (RFC 2784/2890), and whether it had a checksum."""
    if len(body) < 4:
        return None, "short"
    flags, ptype = struct.unpack("!HH", body[:4])
    if flags & 0x0007 != 0:
        return None, "version %d" % (flags & 7)
    if ptype != 0x0800:
        return None, "protocol type 0x%04x" % ptype
    off = 4
    csum = 1 if flags & 0x8000 else 0
    if csum:
        off += 4
    if flags & 0x2000:  # key
        off += 4
    if flags & 0x1000:  # sequence
        off += 4
    if len(body) < off:
        return None, "short options"
    return (body[off:], csum), None


def gue_payload(data):
    """The inner IPv4 packet of a GUE datagram (variant 0 with IPIP, or variant 1)."""
    if not data:
        return None, "empty"
    variant = data[0] >> 6
    if variant == 1:
        return data, None
    if variant != 0:
        return None, "variant %d" % variant
    if len(data) < 4:
        return None, "short"
    hlen = (data[0] & 0x1F) * 4
    if data[0] & 0x20:
        return None, "control message"
    if data[1] != 4:
        return None, "inner protocol %d" % data[1]
    if len(data) < 4 + hlen:
        return None, "short options"
    return data[4 + hlen :], None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dev", required=True)
    ap.add_argument("--vip", action="append", default=[])
    ap.add_argument("--gue-port", type=int)
    ap.add_argument("--log")
    a = ap.parse_args()
    log = open(a.log, "a", buffering=1) if a.log else sys.stderr

    tun = open_tun(a.dev)
    ip("link", "set", a.dev, "up")
    for v in a.vip:
        ip("addr", "add", v + "/32", "dev", a.dev)
    subprocess.run(["sysctl", "-qw", "net.ipv4.conf.%s.rp_filter=0" % a.dev], check=False)

    socks = {}
    for proto, kind in ((4, "ipip"), (47, "gre")):
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, proto)
        socks[s.fileno()] = (s, kind)
    if a.gue_port:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("0.0.0.0", a.gue_port))
        socks[u.fileno()] = (u, "gue")
    print("ready", flush=True)

    poll = select.poll()
    for fd in socks:
        poll.register(fd, select.POLLIN)
    while True:
        for fd, _ in poll.poll():
            s, kind = socks[fd]
            if kind == "gue":
                data, (src, sport) = s.recvfrom(65535)
                inner, why = gue_payload(data)
                head = "gue outer=%s>? sport=%d" % (src, sport)
            else:
                pkt = s.recv(65535)
                info = outer_info(pkt)
                if info is None:
                    print("bad %s outer header" % kind, file=log)
                    continue
                ihl, src, dst, ttl, df = info
                head = "%s outer=%s>%s ttl=%d df=%d" % (kind, src, dst, ttl, df)
                body = pkt[ihl:]
                if kind == "ipip":
                    inner, why = body, None
                else:
                    got, why = gre_payload(body)
                    inner = None
                    if got:
                        inner, csum = got
                        head += " csum=%d" % csum
            if inner is None:
                print("bad %s %s" % (kind, why), file=log)
                continue
            desc = inner_desc(inner)
            if desc is None:
                print("bad %s inner packet" % kind, file=log)
                continue
            os.write(tun, inner)
            print("%s %s" % (head, desc), file=log)


if __name__ == "__main__":
    main()
