#!/usr/bin/env python3
"""Aggregation and reports for the overtier benchmark (stdlib only).

Input: samples.jsonl (one line per measured value or error) and meta.json in
a results directory.  Output: a markdown report and a JSON summary with the
medians per contender, time ratios, and the issue's targets evaluated.

Run on its own to print the report of an earlier run (e.g. a published one
in bench/published/) with the current code:
    python3 bench/lib/report.py bench/results/<run> [--out F.md] [--json F.json]
"""

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

CONTENDERS = ["raw", "kernel", "fuse-overlayfs", "overtier"]
CANDIDATE = "overtier"

# id, workload, label (formatted with the run's sizes), unit, category.
# Categories decide which targets apply: "seqio" = large sequential I/O
# (within 1.3x of the kernel), "meta" = metadata-heavy (2x faster than
# fuse-overlayfs), every row = at least as fast as fuse-overlayfs.
METRICS = [
    ("dmfs_create_64k", "dmfs", "create a {dmfs} file, 64 KiB writes", "MB/s", "seqio"),
    ("dmfs_overwrite_1m", "dmfs", "overwrite it, 1 MiB writes", "MB/s", "seqio"),
    ("dmfs_overwrite_8k", "dmfs", "overwrite it, 8 KiB writes", "MB/s", "seqio"),
    ("read_cold", "seqread", "read a {big} lower file, cold", "MB/s", "seqio"),
    ("read_warm", "seqread", "read a {big} lower file, warm", "MB/s", "seqio"),
    ("append_copyup", "append", "first 1-byte append to a {big} lower file (copy-up)", "s", "copyup"),
    ("append_copyup_fsync", "append", "the same, with fsync before close", "s", "copyup"),
    ("sf_create", "smallfiles", "create {n} x 4 KiB files", "s", "meta"),
    ("sf_stat_cold", "smallfiles", "stat those {n} files, cold", "s", "meta"),
    ("sf_stat_merged_cold", "smallfiles", "stat {n} entries of a merged dir, cold", "s", "meta"),
    ("sf_readdir_cold", "smallfiles", "readdir of a merged dir of {n} entries (2 lowers + upper), cold", "s", "meta"),
    ("sf_unlink", "smallfiles", "unlink the {n} new files", "s", "meta"),
    ("sf_unlink_lower", "smallfiles", "unlink {w} lower files (whiteouts)", "s", "meta"),
    ("untar", "untar", "untar {entries} entries, {tree}", "s", "meta"),
    ("make", "make", "make -j2 of {pkg}, sources in the lower layer", "s", "meta"),
]
METRIC = {m[0]: m for m in METRICS}

TARGETS = [
    # key, column title, applies to categories, reference, max time ratio
    ("vs_fuse", "≥ fuse-ovl", None, "fuse-overlayfs", 1.0),
    ("meta_2x", "2× fuse-ovl (meta)", {"meta"}, "fuse-overlayfs", 0.5),
    ("seq_kernel", "≤1.3× kernel (seq)", {"seqio"}, "kernel", 1.3),
]

SHORT = {"raw": "raw", "kernel": "kernel", "fuse-overlayfs": "fuse-ovl",
         "overtier": "overtier"}


def metrics_of(workload):
    return [m[0] for m in METRICS if m[1] == workload]


def fmt(v):
    """Values as a reader wants them: MB/s and seconds with 3 significant
    digits, but no exponent notation for big numbers."""
    if v is None:
        return "–"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.2f}"
    if v <= 0:
        return f"{v:g}"
    return f"{v:.{2 - math.floor(math.log10(v))}f}"


def human_bytes(n):
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} B"


def cmd_output(cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=10,
                           stdin=subprocess.DEVNULL)
        return (p.stdout + p.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unavailable ({e})"


def environment(args, contenders):
    """What a reader needs to judge the numbers: machine, versions, sizes."""
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    env = {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "kernel": platform.release(),
        "cpu": f"{os.cpu_count()} x {cpu}",
        "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)),
        "python": platform.python_version(),
        "mode": "quick" if args.quick else "full",
        "reps": args.reps,
        "workloads": args.only,
        "contenders": [c.name for c in contenders],
        "image": args.image_info,
        "versions": {},
    }
    for c in contenders:
        if c.name == "fuse-overlayfs":
            # It also prints fusermount3's version and option warnings.
            lines = cmd_output([c.binary, "--version"]).splitlines()
            env["versions"][c.name] = [x for x in lines if x.startswith(c.name)][:1] or lines[:1]
        elif c.name == "overtier":
            env["versions"][c.name] = [c.binary] + cmd_output([c.binary, "--version"]).splitlines()[:1]
    return env


def labels(meta):
    s = meta.get("sizes", {})
    u = meta.get("untar", {})
    mk = meta.get("make", {})
    return dict(dmfs=human_bytes(s.get("dmfs_bytes", 0)), big=human_bytes(s.get("big_bytes", 0)),
                n=f"{s.get('sf_count', 0):,}", w=f"{s.get('sf_whiteouts', 0):,}",
                entries=f"{u.get('entries', s.get('tree_entries', 0)):,}",
                tree=human_bytes(u.get("bytes", s.get("tree_bytes", 0))),
                pkg=mk.get("dir", "?"))


def time_ratio(unit, a, b):
    """How many times longer contender a takes than b (MB/s is inverted)."""
    if a is None or b is None or a <= 0 or b <= 0:
        return None
    return a / b if unit == "s" else b / a


def paired_ratio(unit, a, b):
    """Median over the repetitions of a's time ratio to b in the SAME
    repetition.  The contenders of one repetition run within a minute or two
    of each other, so pairing cancels most of the shared machine's drift,
    which a ratio of the two medians would keep (the loads of colleagues'
    builds come and go on a scale of minutes)."""
    if not a or not b:
        return None
    rs = [time_ratio(unit, a[rep], b[rep]) for rep in a if rep in b]
    rs = [r for r in rs if r is not None]
    return statistics.median(rs) if rs else None


def summarize(samples, meta):
    present = [c for c in CONTENDERS if any(s["contender"] == c for s in samples)]
    out = {}
    for mid, workload, label, unit, cat in METRICS:
        rows = [s for s in samples if s["metric"] == mid]
        if not rows:
            continue
        per = {}
        for c in present:
            ok = [s for s in rows if s["contender"] == c and "value" in s]
            vals = [s["value"] for s in ok]
            loads = [s["load"] for s in ok]
            errs = [s["error"] for s in rows if s["contender"] == c and "error" in s]
            if not vals and not errs:
                continue
            per[c] = {"median": statistics.median(vals) if vals else None,
                      "min": min(vals) if vals else None, "max": max(vals) if vals else None,
                      "n": len(vals), "values": vals, "loads": loads, "errors": errs,
                      "by_rep": {s["rep"]: s["value"] for s in ok}}
        ratios = {}
        for a, b in (("kernel", "raw"), ("fuse-overlayfs", "raw"), (CANDIDATE, "raw"),
                     (CANDIDATE, "fuse-overlayfs"), (CANDIDATE, "kernel")):
            ratios[f"{a}/{b}"] = paired_ratio(unit, per.get(a, {}).get("by_rep"),
                                              per.get(b, {}).get("by_rep"))
        targets = {}
        for key, _title, cats, ref, limit in TARGETS:
            if cats is not None and cat not in cats:
                continue
            r = ratios[f"{CANDIDATE}/{ref}"]
            targets[key] = None if r is None else ("PASS" if r <= limit else "FAIL")
        out[mid] = {"workload": workload, "label": label.format(**labels(meta)), "unit": unit,
                    "category": cat, "contenders": per, "time_ratios": ratios,
                    "targets": targets}
    return out


def markdown(summary, meta):
    present = [c for c in CONTENDERS if any(c in m["contenders"] for m in summary.values())]
    shown = present + ([CANDIDATE] if CANDIDATE not in present else [])
    L = []
    L.append(f"# overtier benchmark: {meta.get('mode', '?')} run of {meta.get('date', '?')}")
    L.append("")
    L.append(f"- machine: {meta.get('cpu')}, {meta.get('mem_gib')} GiB RAM, kernel "
             f"{meta.get('kernel')}; **shared with colleagues compiling** (1-min load "
             f"average {meta.get('load_min', '?')}–{meta.get('load_max', '?')} during the run)")
    L.append(f"- file system: {meta.get('image')}")
    L.append(f"- {meta.get('reps')} repetition(s), contenders interleaved (order rotated each "
             f"repetition); medians; run took {meta.get('duration_s', '?')} s")
    for name, v in meta.get("versions", {}).items():
        L.append(f"- {name}: {' '.join(v)}")
    for name, opts in meta.get("mount_options", {}).items():
        L.append(f"- {name} mount: `{opts}`")
    for name, why in meta.get("skipped", {}).items():
        L.append(f"- **{name} not measured: {why}**")
    for name, why in meta.get("skipped_workloads", {}).items():
        L.append(f"- **workload {name} not run: {why}**")
    L.append("")
    L.append("Medians in MB/s (higher is better) or seconds (lower is better). "
             "Ratios are **time ratios** (MB/s inverted): 1.50 = takes 1.5× as long "
             "as the reference; each is the median of the per-repetition ratios "
             "(paired within a repetition, which cancels the machine's drift), so it "
             "can differ from the ratio of the two medians. Targets (for overtier): ≥ fuse-ovl: "
             "overtier/fuse-ovl ≤ 1.0 on every row; 2× fuse-ovl (meta): ≤ 0.5 on "
             "metadata rows; ≤1.3× kernel (seq): overtier/kernel ≤ 1.3 on large "
             "sequential I/O rows. n/a = target does not apply; – = not measured.")
    L.append("")
    ratio_cols = [("kernel/raw", "kernel ÷ raw"), ("fuse-overlayfs/raw", "fuse-ovl ÷ raw"),
                  (f"{CANDIDATE}/raw", "overtier ÷ raw"),
                  (f"{CANDIDATE}/fuse-overlayfs", "overtier ÷ fuse-ovl"),
                  (f"{CANDIDATE}/kernel", "overtier ÷ kernel")]
    head = (["metric", "unit"] + [SHORT[c] for c in shown] + [t for _k, t in ratio_cols]
            + [t[1] for t in TARGETS])
    L.append("| " + " | ".join(head) + " |")
    L.append("|" + "|".join(["---", "---"] + ["--:"] * (len(head) - 2)) + "|")
    passes = fails = 0
    for mid, m in summary.items():
        cells = [m["label"], m["unit"]]
        for c in shown:
            d = m["contenders"].get(c)
            if d is None:
                cells.append("–")
            elif d["median"] is None:
                cells.append("ERR")
            else:
                cells.append(fmt(d["median"]) + (f" ({len(d['errors'])} err)" if d["errors"] else ""))
        for key, _t in ratio_cols:
            r = m["time_ratios"].get(key)
            cells.append("–" if r is None else f"{r:.0f}" if r >= 100 else f"{r:.2f}")
        for key, _t, _c, _r, _l in TARGETS:
            if key not in m["targets"]:
                cells.append("n/a")
            else:
                v = m["targets"][key]
                cells.append("–" if v is None else f"**{v}**")
                passes += v == "PASS"
                fails += v == "FAIL"
        L.append("| " + " | ".join(cells) + " |")
    L.append("")
    if passes + fails:
        L.append(f"Targets: **{passes} PASS, {fails} FAIL** of {passes + fails} checks.")
    else:
        L.append("Targets: not evaluated (overtier was not measured in this run).")
    L.append("")
    L.append("Spread over the repetitions (min – max):")
    L.append("")
    L.append("| metric | " + " | ".join(SHORT[c] for c in present) + " |")
    L.append("|---|" + "|".join(["--:"] * len(present)) + "|")
    for m in summary.values():
        cells = [m["label"]]
        for c in present:
            d = m["contenders"].get(c)
            if not d or d["min"] is None:
                cells.append("–")
            else:
                cells.append(f"{fmt(d['min'])} – {fmt(d['max'])}")
        L.append("| " + " | ".join(cells) + " |")
    # The machine is shared: a contender that ran under a heavier load than
    # the others is at a disadvantage, and this row shows it.
    cells = ["1-min load average when sampled (median)"]
    for c in present:
        loads = [x for m in summary.values() for x in m["contenders"].get(c, {}).get("loads", [])]
        cells.append(f"{statistics.median(loads):.1f}" if loads else "–")
    L.append("| " + " | ".join(cells) + " |")
    errs = [(mid, c, e) for mid, m in summary.items()
            for c, d in m["contenders"].items() for e in d["errors"]]
    if errs:
        L.append("")
        L.append("Errors:")
        L.append("")
        for mid, c, e in errs:
            L.append(f"- {mid} / {c}: {e}")
    L.append("")
    return "\n".join(L)


def load_samples(path):
    with open(path) as f:
        return [json.loads(x) for x in f if x.strip()]


def write_reports(samples_path, meta, results, out=None, json_out=None, save=True):
    """Print the markdown report; write it and the JSON summary into the
    results directory (SAVE) and to OUT / JSON_OUT."""
    summary = summarize(load_samples(samples_path), meta)
    md = markdown(summary, meta)
    doc = {"meta": meta, "metrics": summary}
    targets = []
    if save:
        targets += [(os.path.join(results, "report.md"), md),
                    (os.path.join(results, "report.json"), json.dumps(doc, indent=1))]
    if out:
        targets.append((out, md))
    if json_out:
        targets.append((json_out, json.dumps(doc, indent=1)))
    for path, text in targets:
        with open(path, "w") as f:
            f.write(text + ("" if text.endswith("\n") else "\n"))
    print(md)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", help="a results directory of bench/run")
    ap.add_argument("--out")
    ap.add_argument("--json")
    a = ap.parse_args()
    with open(os.path.join(a.results, "meta.json")) as f:
        meta = json.load(f)
    # Read-only on the directory: it may be a published run kept in git.
    write_reports(os.path.join(a.results, "samples.jsonl"), meta, a.results, a.out, a.json,
                  save=False)


if __name__ == "__main__":
    sys.exit(main())
