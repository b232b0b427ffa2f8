#!/usr/bin/env bash
# overtier as podman's mount_program (containers/storage's overlay driver
# with overlay.mount_program=overtier): what a container runtime really
# passes (-o lowerdir=l/A:l/B,upperdir=...,workdir=...,volatile, --version,
# read-only mounts for images, allow_other) through real containers: files
# written, changed and deleted inside, a process that is not root (--user),
# a container with its own user namespace (--uidmap: uidmapping= and, in
# podman 4.3, id-mapped lowers), podman commit of the result (its upper
# directory, whiteouts included, becomes a layer), a container of the
# committed image, and all of it again with the storage on an overlayfs
# (podman inside a container).
#
# Skips (exit 77) without root, podman or runc. Everything lives under a
# fresh temporary directory, removed at the end, also on failure.
#
#   OVERTIER_BIN   the overtier binary (set by meson)
set -euo pipefail

bin=${OVERTIER_BIN:?OVERTIER_BIN is not set}
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
command -v podman >/dev/null || { echo "SKIP: podman is not installed"; exit 77; }
command -v runc >/dev/null || { echo "SKIP: runc is not installed"; exit 77; }
busybox=$(command -v busybox || true)
[ -n "$busybox" ] || { echo "SKIP: busybox is not installed"; exit 77; }

dir=$(mktemp -d /tmp/ovt-podman.XXXXXX)
P=(podman --root "$dir/graph" --runroot "$dir/run" --storage-driver overlay
   --storage-opt "overlay.mount_program=$bin" --runtime runc --cgroup-manager cgroupfs
   --events-backend none)
# Limits the sandboxes we run in allow (crun/runc set them in the container).
R=(--rm --network none --ulimit nofile=1024:1024 --ulimit nproc=1000:1000)
cleanup() {
  local rc=$?
  set +e +o pipefail
  "${P[@]}" rm -af >/dev/null 2>&1 || true
  "${P[@]}" rmi -af >/dev/null 2>&1 || true
  # Whatever podman left mounted under our directory.
  grep -o " $dir/[^ ]*" /proc/mounts 2>/dev/null | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf "$dir"
  exit $rc
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  cat "$dir/podman.err" >&2 2>/dev/null || true
  exit 1
}

# A busybox root file system, imported as an image.
mkdir -p "$dir/root/bin" "$dir/root/etc" "$dir/root/data"
cp "$busybox" "$dir/root/bin/busybox"
for c in sh ls cat echo rm mkdir test wc; do ln -s busybox "$dir/root/bin/$c"; done
echo "from the image" > "$dir/root/etc/motd"
echo "to be deleted" > "$dir/root/data/old"
tar -C "$dir/root" -cf "$dir/root.tar" .
"${P[@]}" import "$dir/root.tar" localhost/ovt-bb:1 >/dev/null 2>>"$dir/podman.err" ||
  fail "podman import"

# A container: read the image, write, change and delete, in a --rm
# container (volatile) and in a kept one.
out=$("${P[@]}" run "${R[@]}" localhost/ovt-bb:1 /bin/sh -c \
  'cat /etc/motd; echo new > /new; cat /new; echo changed >> /etc/motd; cat /etc/motd; rm /data/old; ls /data | wc -l')
expected=$'from the image\nnew\nfrom the image\nchanged\n0'
[ "$out" = "$expected" ] || fail "run --rm: got [$out], expected [$expected]"

# A process that is not root inside the container (podman run --user):
# containers/storage passes no allow_other, so the daemon must let other
# users in by itself, and the modes still hold for them.
out=$("${P[@]}" run "${R[@]}" --user 1000:1000 localhost/ovt-bb:1 /bin/sh -c \
  'cat /etc/motd; { echo x > /etc/motd; } 2>/dev/null && echo wrote-motd || echo motd-refused')
expected=$'from the image\nmotd-refused'
[ "$out" = "$expected" ] || fail "run --user 1000: got [$out], expected [$expected]"

# A container with its own user namespace (--uidmap): containers/storage
# passes uidmapping=:0:100000:65536 for the upper and, in podman 4.3, the
# lowers through id-mapped mounts (docs/SEMANTICS.md). Its root must own
# its root file system, and what it writes is stored with its own ids.
out=$("${P[@]}" run "${R[@]}" --uidmap 0:100000:65536 --gidmap 0:100000:65536 localhost/ovt-bb:1 \
  /bin/sh -c 'cat /etc/motd; echo mapped > /etc/motd-mapped; cat /etc/motd-mapped; mkdir /made && echo made')
expected=$'from the image\nmapped\nmade'
[ "$out" = "$expected" ] || fail "run --uidmap: got [$out], expected [$expected]"

"${P[@]}" run --name kept --network none --ulimit nofile=1024:1024 --ulimit nproc=1000:1000 \
  localhost/ovt-bb:1 /bin/sh -c 'echo kept > /data/new; echo changed >> /etc/motd; rm /data/old' >/dev/null
# The change becomes a layer (the upper, with its whiteout), then an image.
"${P[@]}" commit kept localhost/ovt-bb:2 >/dev/null 2>>"$dir/podman.err" || fail "podman commit"
out=$("${P[@]}" run "${R[@]}" localhost/ovt-bb:2 /bin/sh -c \
  'cat /data/new; cat /etc/motd; test -e /data/old && echo old-is-back || echo old-is-gone')
expected=$'kept\nfrom the image\nchanged\nold-is-gone'
[ "$out" = "$expected" ] || fail "committed image: got [$out], expected [$expected]"

# Podman inside a container keeps its storage on the container's overlayfs
# root: a graph root on an overlayfs, whose upper directories take no
# whiteout devices (whiteouts become .wh. files, docs/SEMANTICS.md).
mkdir -p "$dir/ovl-l" "$dir/ovl-u" "$dir/ovl-w" "$dir/ovl"
mount -t overlay overlay -o "lowerdir=$dir/ovl-l,upperdir=$dir/ovl-u,workdir=$dir/ovl-w" "$dir/ovl" ||
  fail "mount the outer overlayfs"
Q=(podman --root "$dir/ovl/graph" --runroot "$dir/run2" --storage-driver overlay
   --storage-opt "overlay.mount_program=$bin" --runtime runc --cgroup-manager cgroupfs
   --events-backend none)
"${Q[@]}" import "$dir/root.tar" localhost/ovt-bb:1 >/dev/null 2>>"$dir/podman.err" ||
  fail "podman import onto an overlayfs"
"${Q[@]}" run --name nested --network none --ulimit nofile=1024:1024 --ulimit nproc=1000:1000 \
  localhost/ovt-bb:1 /bin/sh -c 'rm /data/old; mkdir /data/d; echo in > /data/d/f; mv /data/d /data/e' \
  >/dev/null 2>>"$dir/podman.err" || fail "run with the storage on an overlayfs"
"${Q[@]}" commit nested localhost/ovt-bb:3 >/dev/null 2>>"$dir/podman.err" ||
  fail "podman commit onto an overlayfs"
out=$("${Q[@]}" run "${R[@]}" localhost/ovt-bb:3 /bin/sh -c \
  'cat /data/e/f; ls /data; test -e /data/old && echo old-is-back || echo old-is-gone')
expected=$'in\ne\nold-is-gone'
[ "$out" = "$expected" ] || fail "storage on an overlayfs: got [$out], expected [$expected]"
"${Q[@]}" rm -af >/dev/null
"${Q[@]}" rmi -af >/dev/null 2>&1 || true

# Nothing of ours stays mounted once the containers are gone.
"${P[@]}" rm -af >/dev/null
if grep -q "fuse.overtier .*$dir\|$dir.* fuse.overtier" /proc/mounts; then
  fail "an overtier mount was left behind: $(grep "$dir" /proc/mounts)"
fi
echo "podman with overtier as mount_program: OK"
