#!/usr/bin/env bash
# Metadata storm: 4 processes (metadata_storm.py) create, rewrite, append, unlink, rename
# (files and directories), link, symlink, mkdir and rmdir among a few names of a few merged
# directories over two lower layers, for 15 s, on a mount with threads=4; with --store, on a
# mount with a store while a loop archives, releases and restores every file. Then every file is
# restored, and the tree (names, types, sizes, content) must be the same through the mount, after
# an unmount and a remount, and through the kernel overlayfs mounting the upper layer as its own
# top lower layer; with --store, `overtier fsck` must find no error.
#
# usage: metadata_storm.sh [--store] [--rounds N]
#   OVERTIER_BIN          overtier binary
#   OVERTIER_STORM_SEED   base seed (default: random; always printed)
#   OVERTIER_STORM_KEEP   1 keeps a failed round's directory
# Not in CI (meson test --suite long).
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=union_mount.sh
source "$here/union_mount.sh"

store=0
rounds=3
while [[ $# -gt 0 ]]; do
  case "$1" in
    --store) store=1; shift ;;
    --rounds) rounds="$2"; shift 2 ;;
    *) echo "usage: $0 [--store] [--rounds N]" >&2; exit 2 ;;
  esac
done
ot="$(realpath "${OVERTIER_BIN:?set OVERTIER_BIN to the overtier binary}")"
export OVERTIER_TEST_TARGET=overtier
seed="${OVERTIER_STORM_SEED:-$(((RANDOM << 15) | RANDOM))}"
echo "metadata_storm.sh: $rounds rounds, store=$store, base seed $seed (OVERTIER_STORM_SEED)"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/overtier-storm.XXXXXX")"
keep=0
cleanup() {
  local rc=$?
  [[ -n "${churn_pid:-}" ]] && kill "$churn_pid" 2>/dev/null
  umount "$tmp/kernel" 2>/dev/null || true
  union_cleanup_all
  union_remove_tmp "$tmp" "$keep" metadata_storm.sh
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# view DIR OUT: every name below DIR with its type, size and content digest; fails (its
# errors in OUT.err) if any name cannot be looked up or read.
view() {
  (cd "$1" && find . -printf '%p %y %s\n' | sort && find . -type f -exec md5sum {} + | sort -k2) \
    >"$2" 2>"$2.err" && [[ ! -s "$2.err" ]]
}

round() {
  local r="$1" s="$2" d="$tmp/round$1" i dir name opts bad=0
  mkdir -p "$d/lower1/d1/s" "$d/lower1/d2/s" "$d/lower2/d1/d" "$d/upper" "$d/work" "$d/mnt" \
    "$tmp/kernel"
  for dir in "" d1 d2 d1/s d2/s; do
    for name in a b c; do
      head -c $(((s + ${#dir} * 7 + ${#name}) % 70000)) /dev/urandom >"$d/lower1/$dir/$name"
    done
  done
  echo lower2 >"$d/lower2/d1/e"
  echo z >"$d/lower2/d1/d/z"
  opts="threads=4"
  if ((store)); then
    "$ot" store init "$d/store" --copies 1 >/dev/null
    opts="$opts,store=$d/store"
  fi
  UNION_OVERTIER_OPTS="$opts" union_mount "$d/mnt" "$d/lower1:$d/lower2" "$d/upper" "$d/work"
  if ((store)); then
    union_churn "$d" &
    churn_pid=$!
  fi
  local -a pids=()
  for i in 1 2 3 4; do
    timeout 60 python3 "$here/metadata_storm.py" "$d/mnt" "$((s * 10 + i))" 15 >"$d/storm$i.log" 2>&1 &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || bad=1; done
  ((bad == 0)) || echo "round $r: $(grep -h BAD "$d"/storm*.log | head -3)"
  if ((store)); then
    touch "$d/churn.stop"
    wait "$churn_pid" || true
    churn_pid=""
    if ! timeout 120 "$ot" restore --wait -r "$d/mnt" >"$d/restore.log" 2>&1; then
      echo "round $r: restore --wait -r failed: $(tail -2 "$d/restore.log")"
      bad=1
    fi
  fi
  if ! view "$d/mnt" "$d/view.mount"; then
    echo "round $r: walking the mount failed: $(head -3 "$d/view.mount.err")"
    bad=1
  fi
  union_umount "$d/mnt" || bad=1
  opts=""
  if ((store)); then opts="store=$d/store"; fi
  UNION_OVERTIER_OPTS="$opts" union_mount "$d/mnt" "$d/lower1:$d/lower2" "$d/upper" "$d/work"
  if ! view "$d/mnt" "$d/view.remount"; then
    echo "round $r: walking the remount failed: $(head -3 "$d/view.remount.err")"
    bad=1
  fi
  union_umount "$d/mnt" || bad=1
  mount -t overlay overlay \
    -o "ro,lowerdir=$d/upper:$d/lower1:$d/lower2,redirect_dir=follow,metacopy=on" "$tmp/kernel"
  if ! view "$tmp/kernel" "$d/view.kernel"; then
    echo "round $r: walking the kernel overlayfs failed: $(head -3 "$d/view.kernel.err")"
    bad=1
  fi
  umount "$tmp/kernel"
  if ! cmp -s "$d/view.mount" "$d/view.remount"; then
    echo "round $r: the tree differs after a remount:"
    diff "$d/view.mount" "$d/view.remount" | head -5
    bad=1
  fi
  if ! cmp -s "$d/view.remount" "$d/view.kernel"; then
    echo "round $r: the kernel overlayfs sees another tree in the layers:"
    diff "$d/view.remount" "$d/view.kernel" | head -5
    bad=1
  fi
  if ((store)) && ! "$ot" fsck "$d/store" >"$d/fsck.log" 2>&1; then
    echo "round $r: fsck: $(tail -3 "$d/fsck.log")"
    bad=1
  fi
  if ((bad != 0)); then
    [[ "${OVERTIER_STORM_KEEP:-0}" == 1 ]] && keep=1
    union_fail "round $r (seed $s) failed; OVERTIER_STORM_KEEP=1 keeps its directory"
  fi
  echo "round $r, seed $s: $(awk '/^ops/ { n += $2 } END { print n + 0 }' "$d"/storm*.log) ops: ok"
  rm -rf "$d"
}

for ((i = 1; i <= rounds; i++)); do round "$i" "$((seed + i))"; done
echo "metadata_storm.sh: $rounds rounds passed (base seed $seed)"
