#!/usr/bin/env bash
# Fails if any C++ source differs from clang-format's output (.clang-format).
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.cc' '*.h' 2>/dev/null; git ls-files --others --exclude-standard '*.cc' '*.h' 2>/dev/null)
[ ${#files[@]} -eq 0 ] && exit 0
clang-format --dry-run --Werror "${files[@]}"
