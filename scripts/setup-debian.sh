#!/usr/bin/env bash
# Installs what fnat needs on Debian bookworm (as root): DPDK 22.11, the build tools for its
# bindings, capture readers for the tests, and a Rust toolchain if none is there.
set -euo pipefail

packages=(
  build-essential pkg-config libclang-dev clang   # bindgen and the C shim
  libdpdk-dev dpdk dpdk-dev libpcap-dev           # DPDK 22.11, PMD plugins, dpdk-testpmd
  iproute2 tshark tcpdump python3                 # labs and capture readers
  python3-dpkt                                    # ships the real captures the tests replay
  ethtool curl socat nginx-light iputils-ping     # the namespace lab (scripts/lab/lab.sh)
  wrk apache2-utils nftables                      # lab load tests and the kernel baseline
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

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "setup: installing Rust (Debian's rustc/cargo)"
    TMPDIR=/var/tmp apt-get install -y -q cargo rustc
  fi
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
