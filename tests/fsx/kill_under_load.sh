#!/usr/bin/env bash
# SIGKILL of the daemon at a random instant under load, on a mount with a store.
#
# The crash tests (tests/migrate_mount, MigrationCrashTest) kill the daemon at named points
# inside one archive, release or restore at a time. This kills it wherever it happens to be
# while everything runs at once: overtier-fsx in 4 processes, a loop archiving, releasing and
# restoring every file, the daemon's own policy releasing every file each second, 4
# request-loop threads. Each round then remounts (without the policy) and checks what a user
# and an administrator would:
#   - every file reads to its end without an error (no released byte lost, no EIO),
#   - `overtier restore --wait -r` brings every file back,
#   - `overtier fsck` of the store reports no error,
#   - no record had to be rebuilt from an archive mark (nobody touched the catalog: a
#     rebuild means a mark outlived its record).
# fsx's own model is not checked after the kill: writes it made without an fsync may be gone,
# as after any crash; what must hold is that nothing became unreadable or inconsistent.
#
# usage: kill_under_load.sh --fsx PATH [--rounds N]
#   OVERTIER_BIN        overtier binary
#   OVERTIER_KILL_SEED  base seed (default: random; always printed)
#   OVERTIER_KILL_KEEP  1 keeps each round's directory
# Not in CI (meson test --suite long): a round takes 20-40 s.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../stress/union_mount.sh
source "$here/../stress/union_mount.sh"

fsx=""
rounds=5
while [[ $# -gt 0 ]]; do
  case "$1" in
    --fsx) fsx="$(realpath "$2")"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    *) echo "usage: $0 --fsx PATH [--rounds N]" >&2; exit 2 ;;
  esac
done
[[ -x "$fsx" ]] || { echo "kill_under_load.sh: --fsx PATH (overtier-fsx) is required" >&2; exit 2; }
ot="$(realpath "${OVERTIER_BIN:?set OVERTIER_BIN to the overtier binary}")"
export OVERTIER_TEST_TARGET=overtier
seed="${OVERTIER_KILL_SEED:-$(((RANDOM << 15) | RANDOM))}"
echo "kill_under_load.sh: $rounds rounds, base seed $seed (OVERTIER_KILL_SEED to repeat)"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/overtier-kill.XXXXXX")"
cleanup() {
  local rc=$?
  [[ -n "${churn_pid:-}" ]] && kill "$churn_pid" 2>/dev/null
  [[ -n "${fsx_pid:-}" ]] && kill -9 "$fsx_pid" 2>/dev/null
  union_cleanup_all
  union_remove_tmp "$tmp" "${OVERTIER_KILL_KEEP:-0}" kill_under_load.sh
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

round() {
  local r="$1" s="$2" d="$tmp/round$1" at pid bad=0 f
  local -a common=(--files 16 --seed "$s" --max-size 262144)
  at=$((3 + s % 12))
  mkdir -p "$d/lower1" "$d/lower2" "$d/upper" "$d/work" "$d/mnt"
  "$fsx" prepare --lower "$d/lower1:$d/lower2" "${common[@]}" >/dev/null
  "$ot" store init "$d/store" --copies 1 >/dev/null
  printf 'release\n' >"$d/policy.rules"
  UNION_OVERTIER_OPTS="store=$d/store,threads=4,policy=$d/policy.rules,policy_interval=1" \
    union_mount "$d/mnt" "$d/lower1:$d/lower2" "$d/upper" "$d/work"
  pid="$(_union_pid_of "$(realpath -m "$d/mnt")")"
  [[ "$pid" != "-" ]] || union_fail "round $r: no daemon pid"
  union_churn "$d" &
  churn_pid=$!
  timeout -k 5 120 "$fsx" run --dir "$d/mnt" "${common[@]}" --ops 400000 --jobs 4 \
    --max-len 32768 --quiet >"$d/fsx.log" 2>&1 &
  fsx_pid=$!
  sleep "$at"
  kill -9 "$pid"
  touch "$d/churn.stop"
  wait "$fsx_pid" 2>/dev/null || true
  wait "$churn_pid" 2>/dev/null || true
  fsx_pid="" churn_pid=""
  _union_force_umount "$(realpath -m "$d/mnt")"
  _union_forget "$(realpath -m "$d/mnt")"
  local released
  released="$(awk '/^archived and released / { n += $4 } END { print n + 0 }' "$d/churn.log")"

  # The daemon's log of the remount sits beside the mount point: mnt.daemon.log.
  mv "$d/mnt.daemon.log" "$d/killed.daemon.log" 2>/dev/null || true
  UNION_OVERTIER_OPTS="store=$d/store" union_mount "$d/mnt" "$d/lower1:$d/lower2" "$d/upper" \
    "$d/work"
  for f in "$d"/mnt/*; do
    [[ -f "$f" ]] || continue
    if ! timeout 60 cat "$f" >/dev/null 2>>"$d/read.err"; then
      echo "round $r: reading $f failed: $(tail -1 "$d/read.err")"
      bad=1
    fi
  done
  if ! timeout 120 "$ot" restore --wait -r "$d/mnt" >"$d/restore.log" 2>&1; then
    echo "round $r: restore --wait -r failed: $(tail -3 "$d/restore.log")"
    bad=1
  fi
  union_umount "$d/mnt" || bad=1
  if ! "$ot" fsck "$d/store" >"$d/fsck.log" 2>&1; then
    echo "round $r: fsck: $(tail -5 "$d/fsck.log")"
    bad=1
  fi
  if grep -q "carries archive" "$d/mnt.daemon.log"; then
    echo "round $r: a record was rebuilt from an archive mark: $(grep -m1 'carries archive' \
      "$d/mnt.daemon.log")"
    bad=1
  fi
  if ((bad != 0)); then
    OVERTIER_KILL_KEEP=1  # for the trap: the round's directory is the evidence
    union_fail "round $r (seed $s, killed after $at s) failed; see $d"
  fi
  echo "round $r: killed after $at s ($released files released before), seed $s: ok"
  [[ "${OVERTIER_KILL_KEEP:-0}" == 1 ]] || rm -rf "$d"
}

for ((i = 1; i <= rounds; i++)); do round "$i" "$((seed + i))"; done
echo "kill_under_load.sh: $rounds rounds passed (base seed $seed)"
