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

echo "== format check"
scripts/check-format.sh

echo "== build"
# -O2 as shipped, without debug info: -g cost a third of the compile time,
# and CI reads logs, not cores (the ASan build below keeps it).
setup build -Ddebug=false
ninja -C build -j"$(nproc)"

status=0
suites=(--suite unit --suite integration --suite fsx --suite stress --suite store --suite image-mount
  --suite migrate --suite migrate-mount --suite migrate-slow --suite rados --suite podman --suite xfs)
echo "== tests (plain build)"
meson test -C build "${suites[@]}" --print-errorlogs --num-processes 1 || status=1
logs=(build/meson-logs/testlog.json)

if [ $quick -eq 0 ]; then
  echo "== tests (ASan + UBSan build)"
  setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
  ninja -C build-asan -j"$(nproc)"
  # The daemon runs under the sanitizers too: every mount in the tests is
  # served by the instrumented binary.
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  # The differential test's 16 seeds ran in the plain build; under the
  # sanitizers 4 reach the same code (16 took 162 s of the CI's time).
  export OVERTIER_DIFF_SEEDS=4
  meson test -C build-asan --suite unit --suite integration --suite fsx --suite store \
    --suite image-mount --suite migrate --suite migrate-mount \
    --print-errorlogs --num-processes 1 || status=1
  logs+=(build-asan/meson-logs/testlog.json)
fi

python3 scripts/test-summary.py "${logs[@]}" || status=1
exit $status
