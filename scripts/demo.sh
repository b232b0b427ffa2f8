#!/usr/bin/env bash
# The main job, end to end on a fresh machine: install, build, mount a union
# and show what it does: a base image imported into a store (an embedded
# local store: a RocksDB catalog and vv containers in one folder) is the
# bottom layer of a union, under a plain-directory layer and a writable upper.
# Then the migration tier: a file of the upper layer is archived into the
# store, released (its blocks freed), and restored transparently on access.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh >/dev/null
[ -d build/meson-private ] || meson setup build >/dev/null
ninja -C build tools/overtier >/dev/null
bin=$PWD/build/tools/overtier

demo=$(mktemp -d /tmp/overtier-demo.XXXXXX)
mnt=$demo/merged
cleanup() {
  fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
  rm -rf "$demo"
}
trap cleanup EXIT

mkdir -p "$demo"/{base,app,upper,work,merged}
store=$demo/store
echo "base layer: os-release"       > "$demo/base/os-release"
mkdir -p "$demo/base/etc" "$demo/app/etc"
echo "from the base layer"          > "$demo/base/etc/motd"
echo "from the app layer"           > "$demo/app/etc/app.conf"
echo "obsolete"                     > "$demo/base/etc/old.conf"

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; eval "$@"; }

step "$bin store init $store"
step "$bin image import $store base $demo/base"
step "$bin image ls $store"
step "$bin -o lowerdir=$demo/app:image:base,upperdir=$demo/upper,workdir=$demo/work,store=$store $mnt"
step "ls -l $mnt/etc"
step "echo 'edited in the union' >> $mnt/etc/motd   # copy-up"
step "cat $mnt/etc/motd; cat $demo/base/etc/motd    # the image is untouched"
step "rm $mnt/etc/old.conf                           # a whiteout hides the lower file"
step "mv $mnt/etc $mnt/config                        # a merged directory renames (no EXDEV)"
step "ls -l $mnt/config"
step "ls -l $demo/upper $demo/upper/config         # the upper layer, overlayfs format"
step "getfattr -d -m trusted.overlay $demo/upper/config"
step "head -c 20M /dev/urandom > $mnt/data.bin; md5sum $mnt/data.bin"
step "$bin archive --release --keep 4K $mnt/data.bin      # into the store, then the space is freed"
step "$bin ls -l $mnt; du -h $demo/upper/data.bin         # A: archived and released; 4 KiB still on disk"
step "md5sum $mnt/data.bin                                 # read: restored transparently"
step "$bin status $mnt/data.bin; du -h $demo/upper/data.bin"
step "fusermount3 -u $mnt"
step "$bin fsck $store"
echo
echo "demo: done"
