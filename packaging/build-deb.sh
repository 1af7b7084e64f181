#!/usr/bin/env bash
# Builds the fnat Debian package from the workspace with dpkg-deb over a staged tree (no
# debhelper/cargo-deb: the tree is small, the maintainer scripts are ours, and dpkg-deb and
# dpkg-shlibdeps ship with dpkg-dev, which the build already needs).
#   packaging/build-deb.sh [--profile release|debug] [--out DIR]
# release (default) builds the binaries first; debug packages what `cargo build` left (tests).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
profile=release
out="$repo/target/deb"
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "usage: $0 [--profile release|debug] [--out DIR]" >&2; exit 2 ;;
  esac
done
cd "$repo"
if [ "$profile" = release ]; then
  cargo build --release -p fnatd -p fnatctl
fi
bin="$repo/target/$profile"
for b in fnatd fnatctl; do
  [ -x "$bin/$b" ] || { echo "build-deb: $bin/$b missing (cargo build first)" >&2; exit 1; }
done
version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)
arch=$(dpkg --print-architecture)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/root"
doc="$root/usr/share/doc/fnat"
install -d "$root/DEBIAN" "$root/usr/sbin" "$root/usr/bin" "$root/etc/fnat" \
  "$root/lib/systemd/system" "$root/usr/share/man/man8" "$doc/examples" \
  "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
  "$root/usr/share/fish/vendor_completions.d"
install -m 755 -s "$bin/fnatd" "$root/usr/sbin/fnatd"
install -m 755 -s "$bin/fnatctl" "$root/usr/bin/fnatctl"
install -m 644 packaging/fnatd.service "$root/lib/systemd/system/fnatd.service"
# Scale-out (docs/scale-out.md): the BIRD announcement hook's unit (not enabled: only BGP
# appliances run it) and the BIRD recipe.
install -m 644 packaging/fnat-bird-hook.service "$root/lib/systemd/system/fnat-bird-hook.service"
install -d "$doc/examples/bird"
install -m 644 docs/examples/bird/appliance.conf docs/examples/bird/router.conf "$doc/examples/bird/"
install -m 644 docs/scale-out.md "$doc/scale-out.md"
# The default config: two net_null ports (no NIC needed), metrics on 127.0.0.1:9417.
{
  echo "# /etc/fnat/fnatd.toml: fnatd's config (fnatd.service reads it). As shipped it runs on"
  echo "# two net_null devices, so the service starts on any machine; replace the ports with"
  echo "# your NICs (see /usr/share/doc/fnat/examples and \`fnatd preflight\`)."
  echo "#"
  cat configs/null-fnat.toml
  printf '\n[metrics]\nlisten = "127.0.0.1:9417"\n'
} >"$root/etc/fnat/fnatd.toml"
chmod 644 "$root/etc/fnat/fnatd.toml"
install -m 644 configs/*.toml "$doc/examples/"
install -m 644 README.md "$doc/README.md"
printf 'fnat\nLicense: Apache-2.0 (see /usr/share/common-licenses/Apache-2.0)\n' >"$doc/copyright"
# Man pages and completions from the binaries' own clap definitions.
"$bin/fnatd" gen-docs "$work/fnatd"
"$bin/fnatctl" gen-docs "$work/fnatctl"
for b in fnatd fnatctl; do
  install -m 644 "$work/$b"/man/*.8 "$root/usr/share/man/man8/"
  install -m 644 "$work/$b/completions/$b.bash" "$root/usr/share/bash-completion/completions/$b"
  install -m 644 "$work/$b/completions/_$b" "$root/usr/share/zsh/vendor-completions/_$b"
  install -m 644 "$work/$b/completions/$b.fish" "$root/usr/share/fish/vendor_completions.d/$b.fish"
done
gzip -9n "$root"/usr/share/man/man8/*.8
install -m 755 packaging/postinst packaging/prerm packaging/postrm "$root/DEBIAN/"
echo /etc/fnat/fnatd.toml >"$root/DEBIAN/conffiles"
mkdir -p "$work/debian"
printf 'Source: fnat\n\nPackage: fnat\nArchitecture: any\n' >"$work/debian/control"
shlibs=$(cd "$work" && dpkg-shlibdeps -O "$root/usr/sbin/fnatd" "$root/usr/bin/fnatctl" 2>/dev/null |
  sed -n 's/^shlibs:Depends=//p')
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CONTROL
Package: fnat
Version: $version
Architecture: $arch
Maintainer: fnat developers <fnat@localhost>
Installed-Size: $size
Depends: $shlibs, dpdk
Suggests: prometheus
Section: net
Priority: optional
Description: DPDK full-NAT layer-4 load balancer (LVS/ipvsadm in user space)
 fnatd forwards TCP and UDP services to real servers with LVS's schedulers,
 full-NAT (source and destination rewritten) on DPDK ports; fnatctl drives it
 and answers to the name ipvsadm (an alternative, never over a real ipvsadm).
CONTROL
(cd "$root" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) \
  >"$root/DEBIAN/md5sums"
mkdir -p "$out"
deb="$out/fnat_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$root" "$deb" >/dev/null
echo "$deb"
