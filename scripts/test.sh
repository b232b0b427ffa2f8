#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what is needed, builds
# (plain and ASan+UBSan), checks formatting, runs every test suite, and
# prints one closing line "tests: N passed, N failed".
#
#   scripts/test.sh            everything CI runs
#   scripts/test.sh --quick    the plain build's suites only (no ASan)
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
[ "${1:-}" = "--quick" ] && quick=1

scripts/install-deps.sh

setup() {  # setup DIR [meson args...]
  local dir=$1; shift
  if [ -d "$dir/meson-private" ]; then
    meson setup --reconfigure "$dir" "$@" >/dev/null
  else
    meson setup "$dir" "$@" >/dev/null
  fi
}

started=$SECONDS
elapsed() { printf '(at %dm%02ds)' $(((SECONDS - started) / 60)) $(((SECONDS - started) % 60)); }

echo "== format check"
scripts/check-format.sh

echo "== build $(elapsed)"
# -O2 as shipped, without debug info: -g cost a third of the compile time,
# and CI reads logs, not cores (the ASan build below keeps it).
setup build -Ddebug=false
ninja -C build -j"$(nproc)"

status=0
logs=()
# run_suites BUILD SUITE...: the unit tests (no mount, no shared state) two
# at a time, then every other suite one at a time: the mount tests time
# what they wait for, and must not share the two CPUs with each other.
run_suites() {
  local dir=$1; shift
  local -a rest=()
  local s
  for s in "$@"; do [ "$s" = unit ] || rest+=(--suite "$s"); done
  meson test -C "$dir" --suite unit --logbase unitlog --print-errorlogs --num-processes 2 || status=1
  meson test -C "$dir" "${rest[@]}" --no-suite unit --print-errorlogs --num-processes 1 || status=1
  logs+=("$dir/meson-logs/unitlog.json" "$dir/meson-logs/testlog.json")
}

echo "== tests (plain build) $(elapsed)"
run_suites build unit integration fsx stress store image-mount migrate migrate-mount migrate-slow \
  rados podman xfs

if [ $quick -eq 0 ]; then
  echo "== build (ASan + UBSan) $(elapsed)"
  # -O0 with line tables only (-g1): the sanitizers' reports name file and
  # line; full debug info (for a debugger's locals) made this build some
  # 25 s longer (6:01 against 5:36 in CI, 2026-12-08).
  setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=plain \
    -Doptimization=0 -Dcpp_args=-g1
  ninja -C build-asan -j"$(nproc)"
  # The daemon runs under the sanitizers too: every mount in the tests is
  # served by the instrumented binary.
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  # The differential test's 16 seeds ran in the plain build; under the
  # sanitizers 4 reach the same code (16 took 162 s of the CI's time).
  export OVERTIER_DIFF_SEEDS=4
  # Likewise fsx: its 100k operations ran in the plain build; 40% of them
  # under the sanitizers walk the same paths (the full count took 94 s).
  export OVERTIER_FSX_OPS_PERCENT=40
  echo "== tests (ASan + UBSan build) $(elapsed)"
  run_suites build-asan unit integration fsx store image-mount migrate migrate-mount
fi
echo "== done $(elapsed)"

python3 scripts/test-summary.py "${logs[@]}" || status=1
exit $status
