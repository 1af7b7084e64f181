#!/usr/bin/env bash
# Checks scripts/setup-debian.sh on a fresh bookworm (debootstrap minbase chroot, as root; not
# part of `make test`: it downloads ~1 GB of packages and builds the workspace, ~15 min).
#   1. no Rust, and apt offers no rustc-web (pinned away, as on a bookworm older than the point
#      release that added it): setup must refuse and name bookworm-security;
#   2. Debian's rustc/cargo 1.63 installed: setup must refuse and name rustc-web/cargo-web;
#   3. 1.63 removed, bookworm-updates and -security enabled: setup installs rustc-web 1.96 and
#      cargo-nextest, and `cargo build --workspace --bins` succeeds in the chroot.
# Usage: scripts/check-setup-chroot.sh [MIRROR [SECURITY_MIRROR]]   (default: deb.debian.org)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
mirror=${1:-http://deb.debian.org/debian}
security=${2:-http://deb.debian.org/debian-security}
root=$(mktemp -d /var/tmp/fnat-setup-chroot.XXXXXX)
cleanup() {
  for m in proc sys dev/pts dev; do umount -l "$root/$m" 2>/dev/null || true; done
  rm -rf --one-file-system "$root"
}
trap cleanup EXIT
fail() { echo "check-setup-chroot: FAIL: $*" >&2; exit 1; }

debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.debootstrap.log" 2>&1 \
  || { cat "$root.debootstrap.log"; fail "debootstrap"; }
rm -f "$root.debootstrap.log"
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# A machine behind an intercepting proxy trusts a local CA: so must the chroot (ca-certificates,
# installed by setup, picks these up).
mkdir -p "$root/usr/local/share/ca-certificates"
cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
# The committed tree (HEAD), not the working tree: what a fresh clone holds.
mkdir -p "$root/src"
git -C "$repo" archive HEAD | tar -x -C "$root/src"
in_root() { chroot "$root" env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin TERM=dumb "$@"; }

echo "== 1: no Rust, no rustc-web offered"
echo "deb $mirror bookworm main" >"$root/etc/apt/sources.list"
printf 'Package: rustc-web cargo-web\nPin: release *\nPin-Priority: -1\n' \
  >"$root/etc/apt/preferences.d/no-rustc-web"
if in_root bash /src/scripts/setup-debian.sh >"$root/out1" 2>&1; then fail "setup succeeded without a toolchain"; fi
tail -5 "$root/out1"
grep -q "bookworm-security" "$root/out1" || fail "refusal does not name bookworm-security"

echo "== 2: Debian's rustc 1.63"
in_root apt-get install -y -q rustc cargo >/dev/null
if in_root bash /src/scripts/setup-debian.sh >"$root/out2" 2>&1; then fail "setup accepted rustc 1.63"; fi
tail -4 "$root/out2"
need_rust=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "$repo/Cargo.toml")
grep -q "older than the workspace's rust-version $need_rust" "$root/out2" || fail "no rust-version refusal"
grep -q "rustc-web cargo-web" "$root/out2" || fail "refusal does not name rustc-web/cargo-web"

echo "== 3: the suites a fresh install has (updates, security): setup installs the toolchain"
in_root apt-get purge -y -q rustc cargo >/dev/null
in_root apt-get autoremove -y -q >/dev/null
rm "$root/etc/apt/preferences.d/no-rustc-web"
echo "deb $mirror bookworm-updates main" >>"$root/etc/apt/sources.list"
echo "deb ${security:-http://deb.debian.org/debian-security} bookworm-security main" \
  >>"$root/etc/apt/sources.list"
in_root bash /src/scripts/setup-debian.sh >"$root/out3" 2>&1 || { tail -20 "$root/out3"; fail "setup"; }
grep -E '^setup:' "$root/out3" || true
in_root rustc --version
in_root sh -c 'cd /src && PATH=/root/.cargo/bin:$PATH cargo nextest --version && nice cargo build --workspace --bins -q' \
  || fail "the workspace does not build with the installed toolchain"
echo "check-setup-chroot: OK"
