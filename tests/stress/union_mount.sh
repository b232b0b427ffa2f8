# shellcheck shell=bash
# Pluggable union mounts for the fsx and stress drivers (sourced, not run).
#
# OVERTIER_TEST_TARGET picks the implementation under test:
#   overtier        (default) $OVERTIER_BIN -o lowerdir=..,upperdir=..,workdir=..[,$UNION_OVERTIER_OPTS] MNT
#   kernel          mount -t overlay
#   fuse-overlayfs  the reference FUSE implementation
#   raw             no mount: MNT becomes a plain directory holding a copy of the merged lowers
#                   (checks the test itself; there is no copy-up to exercise)
#
# API:
#   union_target                    print the validated target name
#   union_mount MNT LOWERS [UPPER WORK]
#                                   LOWERS is colon separated, top first; no UPPER = read-only
#   union_umount MNT                unmount; fails if that needs force or the daemon lingers
#   union_cleanup_all               best-effort forced teardown of everything still mounted
#                                   (for EXIT traps; never fails)
#   union_remove_tmp DIR KEEP WHO   then remove the run's temp DIR unless kept or still mounted
#   union_churn DIR [PAUSE]         archive/release/restore every file of DIR/mnt in a loop
#   union_fail MSG                  print MSG and exit 1

# Mounts made through union_mount, in order, and the FUSE daemon pid behind each (or "-").
UNION_MOUNTS=()
UNION_PIDS=()
: "${UNION_MOUNT_TIMEOUT:=30}"

union_fail() {
  echo "FAILURE: $*" >&2
  exit 1
}

union_target() {
  local t="${OVERTIER_TEST_TARGET:-overtier}"
  case "$t" in
    overtier | kernel | fuse-overlayfs | raw) echo "$t" ;;
    *) union_fail "unknown OVERTIER_TEST_TARGET='$t' (overtier|kernel|fuse-overlayfs|raw)" ;;
  esac
}

# Prints the pid of the FUSE daemon serving MNT: the process whose last argument is MNT and
# whose command is the daemon we started. Needed because both daemons detach themselves, and
# `fusermount3 -u` must make them exit (a lingering daemon is a bug worth reporting).
_union_daemon_pid() {
  local mnt="$1" exe="$2" p arg last
  for p in /proc/[0-9]*; do
    [[ -r "$p/cmdline" ]] || continue
    last=""
    while IFS= read -r -d '' arg; do last="$arg"; done <"$p/cmdline" 2>/dev/null || true
    if [[ "$last" == "$mnt" ]] && [[ "$(readlink "$p/exe" 2>/dev/null)" == "$exe" ]]; then
      echo "${p#/proc/}"
      return 0
    fi
  done
  echo "-"
}

_union_is_mounted() {
  # mountinfo field 5 is the mount point; plain string compare avoids stat() on a hung mount.
  awk -v m="$1" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo
}

union_mount() {
  local mnt lowers="$2" upper="${3:-}" work="${4:-}" target exe pid="-" opts
  mnt="$(realpath -m "$1")"
  target="$(union_target)"
  mkdir -p "$mnt"
  if [[ -n "$upper" ]]; then
    opts="lowerdir=$lowers,upperdir=$upper,workdir=$work"
  else
    opts="lowerdir=$lowers"
  fi
  case "$target" in
    overtier)
      exe="$(realpath "${OVERTIER_BIN:?set OVERTIER_BIN to the overtier binary}")"
      [[ -x "$exe" ]] || union_fail "OVERTIER_BIN=$exe is not executable"
      # The daemon's messages (why a restore failed, ...) next to the mount
      # point: a background daemon's stderr is gone (src/daemon_log.h).
      opts="$opts${UNION_OVERTIER_OPTS:+,$UNION_OVERTIER_OPTS},log=$mnt.daemon.log"
      timeout "$UNION_MOUNT_TIMEOUT" "$exe" -o "$opts" "$mnt" ||
        union_fail "overtier -o $opts $mnt failed (exit $?)"
      pid="$(_union_daemon_pid "$mnt" "$exe")"
      ;;
    fuse-overlayfs)
      exe="$(command -v fuse-overlayfs)" || union_fail "fuse-overlayfs is not installed"
      exe="$(realpath "$exe")"
      timeout "$UNION_MOUNT_TIMEOUT" "$exe" -o "$opts" "$mnt" ||
        union_fail "fuse-overlayfs -o $opts $mnt failed (exit $?)"
      pid="$(_union_daemon_pid "$mnt" "$exe")"
      ;;
    kernel)
      if [[ -z "$upper" && "$lowers" != *:* ]]; then
        # The kernel wants two lower layers when there is no upper: add an empty one.
        mkdir -p "$mnt.empty-lower"
        opts="ro,lowerdir=$lowers:$mnt.empty-lower"
      fi
      timeout "$UNION_MOUNT_TIMEOUT" mount -t overlay overlay -o "$opts" "$mnt" ||
        union_fail "mount -t overlay -o $opts $mnt failed (exit $?)"
      ;;
    raw)
      # Populate once (a "remount" must keep what the run wrote): bottom layer first, so
      # upper layers overwrite the names they shadow.
      if [[ -z "$(ls -A "$mnt")" ]]; then
        local -a layers
        local i
        IFS=: read -r -a layers <<<"$lowers"
        for ((i = ${#layers[@]} - 1; i >= 0; i--)); do
          cp -a "${layers[$i]}/." "$mnt/"
        done
      fi
      ;;
  esac
  if [[ "$target" != raw ]] && ! _union_is_mounted "$mnt"; then
    union_fail "$target reported success but $mnt is not a mount point"
  fi
  UNION_MOUNTS+=("$mnt")
  UNION_PIDS+=("$pid")
}

# Forced unmount of a (possibly hung) mount: abort the FUSE connection, then detach lazily.
_union_force_umount() {
  local mnt="$1" dev
  dev="$(awk -v m="$mnt" '$5 == m { print $3; exit }' /proc/self/mountinfo)"
  if [[ -n "$dev" ]]; then
    if [[ ! -d /sys/fs/fuse/connections/${dev#*:} ]] && [[ -d /sys/fs/fuse/connections ]]; then
      mount -t fusectl none /sys/fs/fuse/connections 2>/dev/null || true
    fi
    if [[ -w /sys/fs/fuse/connections/${dev#*:}/abort ]]; then
      echo 1 >"/sys/fs/fuse/connections/${dev#*:}/abort" || true
    fi
  fi
  timeout 10 umount -l "$mnt" 2>/dev/null || true
}

_union_forget() {
  local mnt="$1" i
  for i in "${!UNION_MOUNTS[@]}"; do
    if [[ "${UNION_MOUNTS[$i]}" == "$mnt" ]]; then
      unset 'UNION_MOUNTS[i]' 'UNION_PIDS[i]'
    fi
  done
  UNION_MOUNTS=("${UNION_MOUNTS[@]}")
  UNION_PIDS=("${UNION_PIDS[@]}")
}

_union_pid_of() {
  local mnt="$1" i
  for i in "${!UNION_MOUNTS[@]}"; do
    if [[ "${UNION_MOUNTS[$i]}" == "$mnt" ]]; then
      echo "${UNION_PIDS[$i]}"
      return
    fi
  done
  echo "-"
}

# Clean unmount. Returns non-zero (after forcing the mount away) if the unmount was refused or
# the daemon did not exit within 20 s: both are failures of the filesystem under test.
union_umount() {
  local mnt target pid rc=0 i
  mnt="$(realpath -m "$1")"
  target="$(union_target)"
  pid="$(_union_pid_of "$mnt")"
  case "$target" in
    raw) ;;
    kernel)
      if ! timeout "$UNION_MOUNT_TIMEOUT" umount "$mnt"; then
        echo "FAILURE: umount $mnt failed" >&2
        _union_force_umount "$mnt"
        rc=1
      fi
      ;;
    *)
      if ! timeout "$UNION_MOUNT_TIMEOUT" fusermount3 -u "$mnt"; then
        echo "FAILURE: fusermount3 -u $mnt failed" >&2
        _union_force_umount "$mnt"
        rc=1
      fi
      if [[ "$pid" != "-" ]]; then
        for ((i = 0; i < 200; i++)); do
          kill -0 "$pid" 2>/dev/null || break
          sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
          echo "FAILURE: $target daemon (pid $pid) still running 20 s after unmounting $mnt" >&2
          kill -9 "$pid" 2>/dev/null || true
          rc=1
        fi
      fi
      ;;
  esac
  _union_forget "$mnt"
  rm -rf "$mnt.empty-lower"
  return "$rc"
}

union_cleanup_all() {
  local i mnt pid
  for ((i = ${#UNION_MOUNTS[@]} - 1; i >= 0; i--)); do
    mnt="${UNION_MOUNTS[$i]}"
    pid="${UNION_PIDS[$i]}"
    if _union_is_mounted "$mnt"; then
      case "$(union_target)" in
        kernel) timeout 10 umount "$mnt" 2>/dev/null || _union_force_umount "$mnt" ;;
        *) timeout 10 fusermount3 -u "$mnt" 2>/dev/null || _union_force_umount "$mnt" ;;
      esac
    fi
    if [[ "$pid" != "-" ]]; then
      sleep 0.2
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -rf "$mnt.empty-lower"
  done
  UNION_MOUNTS=()
  UNION_PIDS=()
  return 0
}

# union_churn DIR [PAUSE]: the migration tier's churn over a mount with store=: archives and
# releases, then restores, every file of DIR/mnt (`$OVERTIER_BIN archive --release -r`,
# `restore -r`), sleeping PAUSE seconds (default 0) after each pass, until DIR/churn.stop
# exists; the commands' output goes to DIR/churn.log. Refusals (a file open elsewhere, one
# changed while being archived) are expected: the callers check what the churn must not break.
union_churn() {
  local d="$1" pause="${2:-0}"
  while [[ ! -e "$d/churn.stop" ]]; do
    timeout 60 "$OVERTIER_BIN" archive --release -r "$d/mnt" >>"$d/churn.log" 2>&1 || true
    sleep "$pause"
    timeout 60 "$OVERTIER_BIN" restore -r "$d/mnt" >>"$d/churn.log" 2>&1 || true
    sleep "$pause"
  done
}

# union_remove_tmp DIR KEEP WHO: for EXIT traps, after union_cleanup_all: removes the run's
# temp DIR, unless KEEP is 1 (says where it is) or something is still mounted below it (says
# so, and leaves it: rm -rf would reach into a layer through the mount). WHO names the script.
union_remove_tmp() {
  local dir="$1" keep="$2" who="$3"
  if [[ "$keep" == 1 ]]; then
    echo "$who: kept $dir"
  elif union_nothing_mounted_under "$dir"; then
    rm -rf "$dir"
  else
    echo "$who: something is still mounted under $dir; not deleting it" >&2
  fi
}

# True when nothing is mounted at or below DIR, i.e. `rm -rf DIR` cannot reach into a lower
# or upper layer through a leftover mount.
union_nothing_mounted_under() {
  local dir
  dir="$(realpath -m "$1")"
  ! awk -v d="$dir" 'index($5, d "/") == 1 || $5 == d { found = 1 } END { exit !found }' \
    /proc/self/mountinfo
}
