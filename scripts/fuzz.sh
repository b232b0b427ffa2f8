#!/usr/bin/env bash
# Runs the libFuzzer targets of fuzz/ (not part of CI: a bug hunt, for as
# long as you give it). Builds them with clang, ASan and UBSan in
# build-fuzz/, then runs each target for SECONDS (default 60) from its
# corpus in fuzz/corpus/TARGET, new inputs going to build-fuzz/corpus/TARGET
# (merge the ones worth keeping into fuzz/corpus with -merge=1). A crash
# leaves its input as build-fuzz/crash-*; add it to fuzz/corpus/TARGET once
# fixed, where every test run replays it (TARGET_replay).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(catalog_records vv_container vv_recovery content_reader
  publication policy_rules mount_options tar_import oci_layout store_config)

# clang and its libFuzzer runtime: not among scripts/install-deps.sh's
# packages, as CI does not fuzz (it replays the corpus with GCC).
if ! command -v clang++ >/dev/null || ! dpkg-query -W -f='${Status}' libclang-rt-14-dev 2>/dev/null |
  grep -q "install ok installed"; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "fuzz.sh: needs clang and libclang-rt-14-dev (apt-get install as root)" >&2
    exit 2
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends clang \
    libclang-rt-14-dev
fi

if [ ! -d build-fuzz/meson-private ]; then
  CC=clang CXX=clang++ meson setup build-fuzz -Dfuzz=true -Dtests=false \
    -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized >/dev/null
fi
ninja -C build-fuzz $(printf 'fuzz/%s_fuzz ' "${targets[@]}")

export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=suppressions=$PWD/fuzz/lsan.supp
export TMPDIR=${TMPDIR:-/tmp}
status=0
for t in "${targets[@]}"; do
  mkdir -p "build-fuzz/corpus/$t"
  dict=()
  [ -f "fuzz/$t.dict" ] && dict=(-dict="../fuzz/$t.dict")
  echo "== $t ($seconds s)"
  (cd build-fuzz && "./fuzz/${t}_fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
    -print_final_stats=1 "${dict[@]}" "corpus/$t" "../fuzz/corpus/$t") || status=1
done
exit $status
