#!/usr/bin/env bash
# image.sh builds the kvserver container image without pulling anything: a
# root filesystem made of this machine's binaries — kvserver and kvctl from
# BIN, every shared library ldd lists for them (RocksDB, glibc, libstdc++, ...)
# and the dynamic loader — plus /etc/passwd, /etc/group, /etc/nsswitch.conf
# and /data (owned by the user kvserver runs as, 65532), packed into a tar
# that deploy/Dockerfile ADDs to an image FROM scratch.
#
#   scripts/image.sh BIN TAG      e.g. scripts/image.sh bin actorkv:latest
#
# The libraries are Debian's (librocksdb-dev's runtime among them), so the
# image runs on any x86-64 Linux Docker host whatever its own distribution.
set -euo pipefail

[[ $# -eq 2 ]] || { echo "usage: $0 BIN TAG" >&2; exit 2; }
bin=$1 tag=$2
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
for b in kvserver kvctl; do
  [[ -x $bin/$b ]] || { echo "image.sh: $bin/$b not found: build it first (make image does)" >&2; exit 1; }
done
command -v docker >/dev/null || { echo "image.sh: docker not found" >&2; exit 1; }

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
fs=$ctx/rootfs
mkdir -p "$fs/usr/local/bin" "$fs/etc" "$fs/tmp" "$ctx/own/data"
chmod 1777 "$fs/tmp"
cp "$bin/kvserver" "$bin/kvctl" "$fs/usr/local/bin/"

# Every library the binaries load, at the path the loader finds it (the
# files themselves, not their symbolic links), and the loader.
# (A statically linked binary has none: ldd says so and fails.)
libs=$(for b in kvserver kvctl; do ldd "$bin/$b" 2>/dev/null || true; done | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
[[ -n $libs ]] || { echo "image.sh: ldd lists no library for $bin/kvserver (it links RocksDB dynamically)" >&2; exit 1; }
for lib in $libs; do
  mkdir -p "$fs$(dirname "$lib")"
  cp -L "$lib" "$fs$lib"
done

cat >"$fs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
kvserver:x:65532:65532:kvserver:/data:/sbin/nologin
PASSWD
cat >"$fs/etc/group" <<'GROUP'
root:x:0:
kvserver:x:65532:
GROUP
echo "hosts: files dns" >"$fs/etc/nsswitch.conf"

# Root owns everything but /data, which the replica writes (a named volume
# mounted there starts with this ownership).
tar -C "$fs" --numeric-owner --owner=0 --group=0 -cf "$ctx/rootfs.tar" .
tar -C "$ctx/own" --numeric-owner --owner=65532 --group=65532 -rf "$ctx/rootfs.tar" data
cp "$root/deploy/Dockerfile" "$ctx/Dockerfile"

old=$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
# The legacy builder needs nothing beyond the engine (BuildKit is a plugin
# that may be absent); FROM scratch pulls nothing.
# Its deprecation notice is shown only when the build fails.
if ! out=$(DOCKER_BUILDKIT=0 docker build --quiet --tag "$tag" "$ctx" 2>&1); then
  echo "$out" >&2
  echo "image.sh: docker build failed" >&2
  exit 1
fi
# The image the tag named before is removed, unless a container uses it or
# another tag names it (then docker rmi refuses, and it stays).
new=$(docker image inspect --format '{{.Id}}' "$tag")
if [[ -n $old && $old != "$new" ]]; then
  docker rmi "$old" >/dev/null 2>&1 || echo "image.sh: the previous $tag ($old) is still used or tagged; kept" >&2
fi
size=$(docker image inspect --format '{{.Size}}' "$tag")
echo "image.sh: built $tag ($((size / 1024 / 1024)) MiB)"
