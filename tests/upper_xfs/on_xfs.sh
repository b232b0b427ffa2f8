#!/usr/bin/env bash
# usage: on_xfs.sh TEST_BINARY...
# Runs each test binary with TMPDIR on a fresh XFS file system (a sparse loop
# image under /var/tmp), so that its layers, work directory and store live on
# XFS. Exit 77 (skipped) without mkfs.xfs or a loop device; the image is
# unmounted and deleted on every exit.
set -euo pipefail

if ! command -v mkfs.xfs >/dev/null; then
  echo "on_xfs.sh: mkfs.xfs not installed (xfsprogs): skipped"
  exit 77
fi
img="$(mktemp /var/tmp/overtier-xfs.XXXXXX)"
mnt="$(mktemp -d /tmp/overtier-xfs.XXXXXX)"
# shellcheck disable=SC2317  # reached through the EXIT trap
cleanup() {
  local rc=$? m
  set +e
  if mountpoint -q "$mnt"; then
    # A test that failed may have left a FUSE mount below: detach it first.
    while read -r m; do
      umount -l "$m"
    done < <(awk -v p="$mnt/" 'index($2, p) == 1 { print $2 }' /proc/mounts | sort -r)
    umount "$mnt" || umount -l "$mnt"
  fi
  rmdir "$mnt" 2>/dev/null || true
  rm -f "$img"
  exit "$rc"
}
trap cleanup EXIT
truncate -s 2G "$img"
# reflink=1 (mkfs.xfs's default since xfsprogs 5.1): restores clone blocks
# there, and OVERTIER_EXPECT_REFLINK makes restorer_test fail if not.
mkfs.xfs -q -f -m reflink=1 "$img"
if ! mount -o loop "$img" "$mnt"; then
  echo "on_xfs.sh: cannot mount a loop image here: skipped"
  exit 77
fi
chmod 0755 "$mnt"
rc=0
for t in "$@"; do
  echo "=== $(basename "$t") on XFS ($mnt)"
  TMPDIR="$mnt" OVERTIER_EXPECT_REFLINK=1 "$t" || rc=1
done
exit "$rc"
