#!/usr/bin/env bash
# Installs what fnat needs on Debian bookworm (as root): DPDK 22.11, the build tools for its
# bindings, capture readers for the tests, and a Rust toolchain if none is there.
set -euo pipefail

packages=(
  build-essential pkg-config libclang-dev clang   # bindgen and the C shim
  ca-certificates                                 # cargo fetches crates over https
  libdpdk-dev dpdk dpdk-dev libpcap-dev           # DPDK 22.11, PMD plugins, dpdk-testpmd
  iproute2 tshark tcpdump python3                 # labs and capture readers
  prometheus                                      # a real scraper for the metrics test
  python3-dpkt                                    # ships the real captures the tests replay
  ethtool curl socat nginx-light iputils-ping     # the namespace lab (scripts/lab/lab.sh)
  libnginx-mod-stream                             # lab: a server-speaks-first Proxy Protocol server (stream :8083)
  wrk apache2-utils nftables                      # lab load tests and the kernel baseline
  keepalived                                      # its doc/samples: the keepalived.conf reader's corpus; the VRRP interop lab (lab_vrrp)
  dnsmasq-base openssl                            # health-check lab: a DNS_CHECK target, an SSL_GET certificate
  bird2                                           # scale-out lab and recipe: BGP announcements (docs/scale-out.md)
  haproxy                                         # client-address lab: a Proxy Protocol receiver (bind ... accept-proxy)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Some machines cannot write apt's archive into /tmp: use /var/tmp.
  TMPDIR=/var/tmp apt-get update -q
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  TMPDIR=/var/tmp apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The workspace's rust-version: bookworm's own rustc (1.63) is older, so a machine without Rust gets
# Debian's rustc-web/cargo-web (1.85 in bookworm since a point release, 1.96 in
# bookworm-security), which install as /usr/bin/rustc and cargo.
need_rust=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "$(dirname "$0")/../Cargo.toml")
rust_web=(rustc-web cargo-web rustfmt-web rust-web-clippy)
version_at_least() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1 && ! command -v rustc >/dev/null 2>&1; then
  TMPDIR=/var/tmp apt-get update -q
  candidate=$(apt-cache policy rustc-web 2>/dev/null | sed -n 's/^ *Candidate: *//p')
  if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
    echo "setup: no Rust toolchain, and apt offers no rustc-web (bookworm's rustc 1.63 is older" >&2
    echo "  than the workspace's rust-version $need_rust). Update to a current bookworm point release" >&2
    echo "  and enable bookworm-updates and bookworm-security, e.g. add" >&2
    echo "  'deb http://deb.debian.org/debian-security bookworm-security main' to /etc/apt/sources.list," >&2
    echo "  then run this again; or install Rust >= $need_rust with rustup." >&2
    exit 1
  fi
  echo "setup: installing Rust $candidate (Debian's ${rust_web[*]})"
  TMPDIR=/var/tmp DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${rust_web[@]}"
fi
found=$(rustc --version 2>/dev/null | awk '{print $2}')
if [ -z "$found" ] || ! command -v cargo >/dev/null 2>&1; then
  echo "setup: found ${found:+rustc $found but }no working rustc and cargo pair; install" >&2
  echo "  ${rust_web[*]} (bookworm) or Rust >= $need_rust with rustup" >&2
  exit 1
fi
if ! version_at_least "${found%%-*}" "$need_rust"; then
  echo "setup: rustc $found ($(command -v rustc)) is older than the workspace's rust-version $need_rust." >&2
  echo "  On bookworm: apt-get install ${rust_web[*]} (bookworm, bookworm-security; it replaces" >&2
  echo "  Debian's rustc/cargo 1.63), or rustup update if this toolchain came from rustup." >&2
  exit 1
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  # The newest cargo-nextest needs Rust 1.91; 0.9.100 builds with 1.85 (bookworm's rustc-web
  # without bookworm-security).
  nextest_version=()
  version_at_least "${found%%-*}" 1.91 || nextest_version=(--version 0.9.100)
  echo "setup: installing cargo-nextest ${nextest_version[*]}"
  cargo install --locked cargo-nextest "${nextest_version[@]}"
fi
