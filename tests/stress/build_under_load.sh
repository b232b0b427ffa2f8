#!/usr/bin/env bash
# Build-under-load stress for a union mount:
#   build a real C code base (the OCaml 4.13 runtime, ocamlyacc and, with the freshly built
#   runtime, the OCaml standard library) with `make -j8` inside a union mount whose only lower
#   layer holds the configured sources, while
#     - a second process runs `find -exec stat` over the same mount in a loop, and
#     - a third checksums every file through a second, read-only mount of the same lower;
#   then incremental edits (append, sed -i, chmod, hard link, rm -rf and mv of lower
#   directories) and a rebuild. Nothing may hang, crash or return a spurious error; the final
#   tree must equal, file for file, the same sequence run on a plain directory at the same path
#   (same path, so the debug info and OCaml bytecode embedding it are comparable byte for
#   byte), and must still be there after unmount + remount.
#
# Needs the Debian package ocaml-source (the OCaml source tarball), gcc and make.
#   OVERTIER_TEST_TARGET  overtier (default) | kernel | fuse-overlayfs | raw (see union_mount.sh)
#   OVERTIER_BIN          overtier binary (target overtier)
#   STRESS_MAKE_JOBS      make -j value (default 8)
#   STRESS_BUDGET         seconds for everything (default 560, under meson's 600-s timeout, so
#                         a hang still ends in our own teardown)
#   STRESS_KEEP=1         keep the temp dir
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=union_mount.sh
source "$here/union_mount.sh"

readonly src_pkg=ocaml-source
jobs="${STRESS_MAKE_JOBS:-8}"
target="$(union_target)"

deadline=$((SECONDS + ${STRESS_BUDGET:-560}))
# step_timeout WANT: WANT seconds, but never past the deadline.
step_timeout() {
  local left=$((deadline - SECONDS))
  if ((left < 5)); then left=5; fi
  if (($1 < left)); then echo "$1"; else echo "$left"; fi
}
fail() { union_fail "$*"; }
log() { echo "[stress $(date +%T)] $*"; }

shopt -s nullglob
tarballs=(/usr/src/ocaml-source-*.tar)
shopt -u nullglob
if [[ ${#tarballs[@]} -eq 0 ]]; then
  fail "the Debian package '$src_pkg' is not installed (no /usr/src/ocaml-source-*.tar):" \
    "add it to the install script (apt-get install $src_pkg)"
fi
for tool in gcc make tar md5sum find stat xargs; do
  command -v "$tool" >/dev/null || fail "'$tool' is missing (Debian: build-essential, coreutils)"
done

tmp="$(mktemp -d "${TMPDIR:-/tmp}/overtier-stress.XXXXXX")"
bg_pids=()
stop_background() {
  local pid
  touch "$tmp/stop"
  for pid in "${bg_pids[@]}"; do
    # The loop shells and whatever find/xargs/md5sum they are running: all started here.
    pkill -TERM -P "$pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${bg_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  bg_pids=()
}
cleanup() {
  local rc=$?
  stop_background
  union_cleanup_all
  union_remove_tmp "$tmp" "${STRESS_KEEP:-0}" build_under_load.sh
  [[ "$rc" == 0 ]] && echo "build_under_load.sh: PASSED on $target" ||
    echo "build_under_load.sh: FAILED on $target (exit $rc)" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

logs="$tmp/logs"
mkdir -p "$logs" "$tmp/x" "$tmp/lower" "$tmp/upper" "$tmp/work" "$tmp/tree" "$tmp/ro"
t_start=$SECONDS

# --- Sources: unpack and configure once, outside any mount ------------------------------------
log "unpacking ${tarballs[-1]} (package $src_pkg)"
tar -xf "${tarballs[-1]}" -C "$tmp/x"
orig=("$tmp"/x/*/ocaml_*.orig.tar.gz)
[[ -f "${orig[0]}" ]] || fail "unexpected layout of ${tarballs[-1]}: no ocaml_*.orig.tar.gz"
tar -xzf "${orig[0]}" -C "$tmp/lower" --strip-components=1
rm -rf "$tmp/x"
# Only the plain and the debug runtime (-g: its debug info embeds the build path, compared too);
# the instrumented and shared variants would double the build time without adding coverage.
log "configuring (once, on the plain lower dir; load: $(cut -d' ' -f1-3 /proc/loadavg))"
(cd "$tmp/lower" && timeout -k 10 "$(step_timeout 300)" ./configure --prefix=/usr/local \
  --disable-instrumented-runtime --disable-shared >"$logs/configure.log" 2>&1) ||
  fail "configure failed, see $logs/configure.log"

# manifest DIR OUT: every entry's type, mode and symlink target, then every file's checksum.
# Timestamps and link counts are left out: they legitimately differ. Fails (errors in OUT.err)
# if anything listed cannot be read.
manifest() {
  (
    cd "$1" &&
      LC_ALL=C find . -mindepth 1 -printf '%y %m %p %l\n' | LC_ALL=C sort &&
      LC_ALL=C find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r md5sum
  ) >"$2" 2>"$2.err"
}
manifest "$tmp/lower" "$tmp/lower.manifest" || fail "cannot read the unpacked sources"

# --- The build, run identically on the plain dir and on the mount -----------------------------
# $1 = tree, $2 = label for logs. Prints program outputs to $logs/$2.out.
build_sequence() {
  local dir="$1" label="$2" out="$logs/$2.out"
  local -a mk=(timeout -k 10 "$(step_timeout 300)" make -j"$jobs")
  (
    cd "$dir"
    # 1. Full build: runtime (4 variants), ocamlyacc, then the stdlib compiled by boot/ocamlc
    #    running on the runtime just built; coldstart also replaces files in boot/.
    "${mk[@]}" coldstart ocamlyacc >"$logs/$label-build1.log" 2>&1 ||
      { echo "make coldstart failed, see $logs/$label-build1.log" >&2; exit 1; }
    # 2. Edits that copy up lower files in every way a build tree sees: in-place append,
    #    replace-by-rename (sed -i), metadata only (chmod), hard link to a lower file, and
    #    removal / rename of lower directories (whiteouts, redirects or copy+delete).
    #    (errexit does not apply inside a function called from a `||` list: chain explicitly.)
    { echo '/* touched by the stress test */' >>runtime/gc_ctrl.c &&
      sed -i 's/^\(#include "defs.h"\)$/\1 \/* stress *\//' yacc/closure.c &&
      chmod 600 Changes && chmod 755 README.adoc &&
      ln VERSION VERSION.hardlink &&
      rm -rf testsuite/tests/lib-str testsuite/tests/typing-gadts &&
      mv testsuite/tests/basic testsuite/tests/basic-renamed &&
      mv otherlibs/str otherlibs/str-moved; } >"$logs/$label-edits.log" 2>&1 ||
      { echo "editing the tree failed, see $logs/$label-edits.log" >&2; exit 1; }
    # 3. Incremental rebuild, a clean of the yacc dir (removes files that exist only in the
    #    upper layer) and a rebuild of it.
    "${mk[@]}" coldstart ocamlyacc >"$logs/$label-build2.log" 2>&1 ||
      { echo "incremental make failed, see $logs/$label-build2.log" >&2; exit 1; }
    timeout -k 10 "$(step_timeout 60)" make -C yacc clean >"$logs/$label-clean.log" 2>&1 ||
      { echo "make -C yacc clean failed, see $logs/$label-clean.log" >&2; exit 1; }
    "${mk[@]}" ocamlyacc >"$logs/$label-build3.log" 2>&1 ||
      { echo "make ocamlyacc failed, see $logs/$label-build3.log" >&2; exit 1; }
    # 4. Run what was built (bounded: a program stuck on the mount must not outlive the
    #    deadline).
    printf 'let () = Printf.printf "sum %%d\\n" (List.fold_left ( + ) 0 [1; 2; 3; 4])\n' \
      >stress_hello.ml
    timeout -k 5 "$(step_timeout 120)" bash -c '
      runtime/ocamlrun -version &&
        boot/ocamlrun boot/ocamlc -version &&
        runtime/ocamlrun boot/ocamlc -nostdlib -I boot -use-prims runtime/primitives \
          stress_hello.ml -o stress_hello.byte &&
        runtime/ocamlrun ./stress_hello.byte &&
        yacc/ocamlyacc -b stress_parser lex/parser.mly &&
        md5sum stress_parser.ml stress_parser.mli' >"$out" 2>&1 ||
      { echo "running the built programs failed, see $out" >&2; exit 1; }
  )
}

# --- Reference: plain directory at the same path ----------------------------------------------
log "reference build on a plain directory ($tmp/tree)"
t0=$SECONDS
cp -a "$tmp/lower/." "$tmp/tree/"
build_sequence "$tmp/tree" plain || fail "the reference build on a plain directory failed"
t_plain=$((SECONDS - t0))
manifest "$tmp/tree" "$tmp/plain.manifest" || fail "cannot read the reference tree"
rm -rf "$tmp/tree"
mkdir "$tmp/tree"
log "reference build took ${t_plain}s"

# --- Mounts and background load ---------------------------------------------------------------
union_mount "$tmp/tree" "$tmp/lower" "$tmp/upper" "$tmp/work"
union_mount "$tmp/ro" "$tmp/lower"
rm -f "$tmp/stop"

# stat everything in the build tree, over and over. Files vanish between readdir and stat
# while make runs (temporaries, rm -rf): ENOENT is expected, any other error is a bug.
stat_loop() {
  local n=0
  while :; do
    timeout -k 5 120 find "$tmp/tree" -exec stat --format='%n %s %i' {} + \
      >/dev/null 2>>"$logs/stat-loop.err" || true
    n=$((n + 1))
    echo "$n" >"$logs/stat-loop.count"
    [[ -e "$tmp/stop" ]] && break
  done
}
# Checksum every file through the read-only mount and compare with the lower dir's manifest.
read_loop() {
  local n=0
  while :; do
    if ! (cd "$tmp/ro" && timeout -k 5 120 find . -type f -print0 | LC_ALL=C sort -z |
      timeout -k 5 120 xargs -0 -r md5sum) >"$logs/read-loop.cur" 2>>"$logs/read-loop.err"; then
      echo "iteration $n: reading through the read-only mount failed" >>"$logs/read-loop.bad"
    elif ! diff -q <(grep -v '^[a-z] ' "$tmp/lower.manifest") "$logs/read-loop.cur" >/dev/null; then
      echo "iteration $n: content differs from the lower dir" >>"$logs/read-loop.bad"
      diff <(grep -v '^[a-z] ' "$tmp/lower.manifest") "$logs/read-loop.cur" |
        head -20 >>"$logs/read-loop.bad" || true
    fi
    n=$((n + 1))
    echo "$n" >"$logs/read-loop.count"
    [[ -e "$tmp/stop" ]] && break
  done
}
stat_loop &
bg_pids+=($!)
read_loop &
bg_pids+=($!)

log "build inside the $target mount, with the stat and read loops running"
t0=$SECONDS
build_rc=0
build_sequence "$tmp/tree" mount || build_rc=$?
t_mount=$((SECONDS - t0))
log "mount build took ${t_mount}s (plain: ${t_plain}s)"

# Let both loops finish their current pass, bounded.
touch "$tmp/stop"
for pid in "${bg_pids[@]}"; do
  wait_until=$((SECONDS + $(step_timeout 150)))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < wait_until)); do sleep 0.5; done
  kill -0 "$pid" 2>/dev/null && fail "a background loop did not finish its pass (hang?)"
  wait "$pid" || true
done
bg_pids=()

[[ "$build_rc" == 0 ]] || fail "the build inside the $target mount failed (see $logs)"

# --- Checks -----------------------------------------------------------------------------------
stat_n="$(cat "$logs/stat-loop.count" 2>/dev/null || echo 0)"
read_n="$(cat "$logs/read-loop.count" 2>/dev/null || echo 0)"
log "background passes: stat loop $stat_n, read loop $read_n"
[[ "$stat_n" -ge 1 && "$read_n" -ge 1 ]] || fail "a background loop never completed a pass"
if [[ -s "$logs/stat-loop.err" ]]; then
  if grep -v 'No such file or directory' "$logs/stat-loop.err" >"$logs/stat-loop.unexpected"; then
    head -20 "$logs/stat-loop.unexpected" >&2
    fail "find/stat over the mount reported errors other than ENOENT"
  fi
  log "stat loop: $(wc -l <"$logs/stat-loop.err") ENOENT races with make (expected)"
fi
if [[ -s "$logs/read-loop.bad" || -s "$logs/read-loop.err" ]]; then
  head -30 "$logs/read-loop.bad" "$logs/read-loop.err" >&2 2>/dev/null || true
  fail "reads through the second (read-only) mount of the lower dir were wrong or failed"
fi

compare_with_plain() {
  local what="$1"
  if ! manifest "$tmp/tree" "$tmp/mount.manifest"; then
    head -20 "$tmp/mount.manifest.err" >&2
    fail "$what: listing or reading files failed ($(wc -l <"$tmp/mount.manifest.err") errors)"
  fi
  if ! diff -u "$tmp/plain.manifest" "$tmp/mount.manifest" >"$logs/manifest.diff"; then
    head -40 "$logs/manifest.diff" >&2
    fail "$what differs from the plain-directory build ($(grep -c '^[-+][^-+]' \
      "$logs/manifest.diff") differing lines; full diff in $logs/manifest.diff)"
  fi
}
compare_with_plain "the tree built inside the mount"
diff -u "$logs/plain.out" "$logs/mount.out" >&2 ||
  fail "the programs built inside the mount behave differently"
cat "$logs/mount.out"

manifest "$tmp/lower" "$tmp/lower.after" || fail "cannot read the lower dir after the build"
diff -q "$tmp/lower.manifest" "$tmp/lower.after" >/dev/null ||
  fail "the lower dir was modified through the mount"
if [[ "$target" != raw ]]; then
  [[ -n "$(ls -A "$tmp/upper")" ]] || fail "nothing was written to the upper dir"
fi

union_umount "$tmp/ro" || fail "unmounting the read-only mount failed"
union_umount "$tmp/tree" || fail "unmounting the build mount failed"

log "remounting to check that the result persisted"
union_mount "$tmp/tree" "$tmp/lower" "$tmp/upper" "$tmp/work"
compare_with_plain "the tree after unmount + remount"
union_umount "$tmp/tree" || fail "final unmount failed"

log "done in $((SECONDS - t_start))s: plain build ${t_plain}s, $target build ${t_mount}s," \
  "stat passes $stat_n, read passes $read_n"
