#!/usr/bin/env python3
"""Shrinks a failing seed of differential_test to a few steps (ddmin).

    tests/integration/shrink_differential.py BUILD/tests/integration/differential_test \\
        SEED [OPS [TEST]]

TEST is SameOutcomesAsTheKernel (the default) or TheKernelReadsTheUpperLayerAsItsOwn.

Runs the test again and again with OVERTIER_DIFF_KEEP set to subsets of the
seed's steps and prints the smallest subset that still fails, then the two
logs of that subset. OVERTIER_BIN must name the overtier binary, as for the
test itself.
"""
import os
import subprocess
import sys


KINDS = ("the outcome of step", "the final views differ", "upper layer differently")


def run(binary, test, seed, ops, keep, dump=False):
    env = dict(os.environ, OVERTIER_DIFF_SEED=str(seed), OVERTIER_DIFF_OPS=str(ops))
    if keep is not None:
        env["OVERTIER_DIFF_KEEP"] = ",".join(map(str, keep))
    if dump:
        env["OVERTIER_DIFF_DUMP"] = "1"
    return subprocess.run([binary, "--gtest_filter=*." + test + "/*"], env=env,
                          capture_output=True, text=True, timeout=120)


def kind(r):
    """Which difference a run found (None: passed, or the harness broke)."""
    if r.returncode == 0:
        return None
    return next((k for k in KINDS if k in r.stdout), None)


def ddmin(fails, steps):
    n = 2
    while len(steps) >= 2:
        chunk = max(1, len(steps) // n)
        parts = [steps[i:i + chunk] for i in range(0, len(steps), chunk)]
        reduced = False
        for i in range(len(parts)):
            rest = [s for j, p in enumerate(parts) if j != i for s in p]
            if rest and fails(rest):
                steps, n, reduced = rest, max(n - 1, 2), True
                print(f"  {len(steps)} steps still fail", file=sys.stderr)
                break
        if not reduced:
            if n >= len(steps):
                break
            n = min(len(steps), n * 2)
    return steps


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    binary, seed = sys.argv[1], int(sys.argv[2])
    ops = int(sys.argv[3]) if len(sys.argv) > 3 else 400
    test = sys.argv[4] if len(sys.argv) > 4 else "SameOutcomesAsTheKernel"
    want = kind(run(binary, test, seed, ops, None))
    if want is None:
        sys.exit(f"{test}, seed {seed}, {ops} steps: no difference found")
    # Shrink towards the same kind of difference, not any failure.
    steps = ddmin(lambda keep: kind(run(binary, test, seed, ops, keep)) == want,
                  list(range(ops + 1)))  # the remount is one more step
    print("OVERTIER_DIFF_KEEP=" + ",".join(map(str, steps)))
    r = run(binary, test, seed, ops, steps, dump=True)
    print(r.stderr + r.stdout)


if __name__ == "__main__":
    main()
