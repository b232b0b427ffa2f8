#!/usr/bin/env python3
"""Sums meson test logs into one closing line: 'tests: N passed, N failed'.

GoogleTest binaries count their test cases (from their '[  PASSED  ] N
tests' / '[  FAILED  ] N tests' lines); other test programs count as one.
"""
import json
import re
import sys

passed = failed = skipped = 0
for path in sys.argv[1:]:
    with open(path) as f:
        for line in f:
            t = json.loads(line)
            out = t.get("stdout", "") or ""
            ok = t["result"] in ("OK", "EXPECTEDFAIL")
            p = re.search(r"^\[  PASSED  \] (\d+) tests?", out, re.M)
            fl = re.search(r"^\[  FAILED  \] (\d+) tests?, listed below", out, re.M)
            sk = re.search(r"^\[  SKIPPED \] (\d+) tests?", out, re.M)
            if p or fl:
                passed += int(p.group(1)) if p else 0
                failed += int(fl.group(1)) if fl else 0
                skipped += int(sk.group(1)) if sk else 0
                if not ok and not fl:
                    failed += 1  # crashed or timed out after its summary
            elif t["result"] == "SKIP":
                skipped += 1
            elif ok:
                passed += 1
            else:
                failed += 1
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
