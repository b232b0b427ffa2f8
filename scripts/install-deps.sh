#!/usr/bin/env bash
# Installs every Debian 12 package overtier needs to build, test and
# benchmark. Idempotent; run as root on a fresh machine.
set -euo pipefail

packages=(
  # build
  build-essential pkg-config meson ninja-build clang-format
  # libraries
  libfuse3-dev fuse3 librocksdb-dev liburing-dev libxxhash-dev libarchive-dev
  googletest libgtest-dev libcli11-dev nlohmann-json3-dev
  # SHA-256 of OCI image blobs (libcrypto)
  libssl-dev
  # tests: xattr/acl tools, the references we compare with, a C code base
  # (tests/stress builds the OCaml runtime from ocaml-source)
  attr acl fuse-overlayfs python3 kmod e2fsprogs xfsprogs util-linux procps psmisc
  ocaml-source
  # store tests: compressed tars, a static shell for the chroot test
  zstd xz-utils busybox-static
  # overtier as podman's mount_program (tests/podman); runc: crun cannot run
  # in some sandboxes' cgroup setups
  podman runc
  # RADOS volume sets: librados (C and C++ headers; no pkg-config file) and
  # the daemons of the single-node test cluster (scripts/ceph-test-cluster.sh)
  librados-dev libradospp-dev ceph-mon ceph-osd ceph-common
)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: run as root (apt-get install)" >&2
  exit 2
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# FUSE needs its device; the kernel overlayfs reference needs its module.
[ -e /dev/fuse ] || modprobe fuse 2>/dev/null || true
grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || true
echo "install-deps: all packages present"
