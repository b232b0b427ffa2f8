#!/usr/bin/env python3
"""Timed file-system operations for the overtier benchmark (stdlib only).

Each timed subcommand runs in its own short-lived process started by
harness.py, so that a FUSE request that never returns can be bounded by a
timeout and killed without taking the harness down with it.  The clock runs
only around the operation itself (never around interpreter start-up) and the
result is printed as one JSON object on stdout.

Untimed subcommands build the data sets (lower layers, tarball tree).
"""

import argparse
import json
import math
import os
import random
import subprocess
import sys
import time

MiB = 1 << 20

# One pseudo-random pool per process: contents must not be all zeros (a file
# system or a FUSE daemon could special-case zero pages or holes) and must be
# the same on every run so that runs are comparable.
_POOL_SIZE = 4 * MiB
_pool = None


def pool():
    global _pool
    if _pool is None:
        _pool = random.Random(0x0BE7).randbytes(_POOL_SIZE)
    return _pool


def emit(**fields):
    print(json.dumps(fields), flush=True)


def fail(msg):
    print(f"ops.py: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def read_names(path):
    with open(path) as f:
        return [line.rstrip("\n") for line in f if line.strip()]


# --------------------------------------------------------------------------
# timed operations


def op_write(a):
    """Create or overwrite a file with fixed-size writes, then fdatasync.

    The DMFS paper's Table 1 measures with dd; like `dd conv=fdatasync` the
    time covers open, every write, fdatasync and close, so the number is what
    it costs to get the data durable, not just into the page cache.
    """
    bs, size = a.bs, a.size
    if size % bs:
        fail("size must be a multiple of the block size")
    buf = memoryview(pool())[:bs]
    flags = os.O_WRONLY | os.O_CLOEXEC
    if a.mode == "create":
        flags |= os.O_CREAT | os.O_TRUNC
    t0 = time.perf_counter()
    fd = os.open(a.path, flags, 0o644)
    left = size
    while left:
        n = os.write(fd, buf)
        if n != bs:
            fail(f"short write {n}")
        left -= n
    os.fdatasync(fd)
    os.close(fd)
    t = time.perf_counter() - t0
    emit(seconds=t, bytes=size, mbps=size / 1e6 / t)


def op_read(a):
    """Sequential read of a whole file with fixed-size reads."""
    buf = bytearray(a.bs)
    mv = memoryview(buf)
    total = 0
    t0 = time.perf_counter()
    fd = os.open(a.path, os.O_RDONLY | os.O_CLOEXEC)
    with os.fdopen(fd, "rb", buffering=0) as f:
        while True:
            n = f.readinto(mv)
            if not n:
                break
            total += n
    t = time.perf_counter() - t0
    if a.expect is not None and total != a.expect:
        fail(f"read {total} bytes, expected {a.expect}")
    emit(seconds=t, bytes=total, mbps=total / 1e6 / t)


def op_append(a):
    """First 1-byte append to a (lower) file: on a union this is the copy-up.

    Timed: open(O_APPEND|O_WRONLY) + write(1) [+ fsync] + close.  The size is
    checked afterwards, outside the clock, so a union that "appends" to the
    wrong object is caught.
    """
    before = os.stat(a.path).st_size
    t0 = time.perf_counter()
    fd = os.open(a.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    if os.write(fd, b"x") != 1:
        fail("short append")
    if a.fsync:
        os.fsync(fd)
    os.close(fd)
    t = time.perf_counter() - t0
    after = os.stat(a.path).st_size
    if after != before + 1:
        fail(f"size after append is {after}, expected {before + 1}")
    emit(seconds=t, size=after)


def op_mkfiles(a):
    """Create COUNT files of SIZE bytes (write + close each, no fsync)."""
    names = read_names(a.names)
    buf = memoryview(pool())[: a.size]
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    t0 = time.perf_counter()
    os.makedirs(a.dir, exist_ok=True)
    dfd = os.open(a.dir, os.O_RDONLY | os.O_DIRECTORY)
    for name in names:
        fd = os.open(name, flags, 0o644, dir_fd=dfd)
        if a.size:
            os.write(fd, buf)
        os.close(fd)
    os.close(dfd)
    t = time.perf_counter() - t0
    emit(seconds=t, count=len(names))


def op_stat(a):
    """lstat every name (relative to the directory: no path walk from /)."""
    names = read_names(a.names)
    t0 = time.perf_counter()
    dfd = os.open(a.dir, os.O_RDONLY | os.O_DIRECTORY)
    for name in names:
        os.stat(name, dir_fd=dfd, follow_symlinks=False)
    os.close(dfd)
    t = time.perf_counter() - t0
    emit(seconds=t, count=len(names))


def op_readdir(a):
    """List a directory (names and d_type only, no stat) and count entries."""
    t0 = time.perf_counter()
    count = 0
    with os.scandir(a.dir) as it:
        for _ in it:
            count += 1
    t = time.perf_counter() - t0
    if a.expect is not None and count != a.expect:
        fail(f"readdir of {a.dir} gave {count} entries, expected {a.expect}")
    emit(seconds=t, count=count)


def op_unlink(a):
    names = read_names(a.names)
    t0 = time.perf_counter()
    dfd = os.open(a.dir, os.O_RDONLY | os.O_DIRECTORY)
    for name in names:
        os.unlink(name, dir_fd=dfd)
    os.close(dfd)
    t = time.perf_counter() - t0
    emit(seconds=t, count=len(names))


def op_run(a):
    """Wall time of an external command (tar, make); its output goes to a log."""
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    with open(a.log, "ab") as log:
        t0 = time.perf_counter()
        rc = subprocess.call(cmd, cwd=a.cwd, stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
        t = time.perf_counter() - t0
    if rc != 0:
        fail(f"command {cmd!r} exited {rc} (see {a.log})")
    emit(seconds=t, rc=rc)


def op_count(a):
    """Untimed check: number of entries below a directory (not counting it)."""
    n = 0
    for _root, dirs, files in os.walk(a.dir):
        n += len(dirs) + len(files)
    if a.expect is not None and n != a.expect:
        fail(f"{a.dir} holds {n} entries, expected {a.expect}")
    emit(count=n)


# --------------------------------------------------------------------------
# data set generation (untimed)


def op_mkbig(a):
    """A large file of non-zero, deterministic content, durable on return."""
    p = pool()
    with open(a.path, "wb") as f:
        left, off = a.size, 0
        while left:
            n = min(MiB, left)
            # Rotate through the pool so consecutive blocks differ.
            start = (off // MiB * 4096) % (_POOL_SIZE - MiB)
            f.write(p[start:start + n])
            left -= n
            off += n
        f.flush()
        os.fsync(f.fileno())
    emit(bytes=a.size)


def op_mksmall(a):
    """Files of one size for the given names (lower layers, upper seed)."""
    os.makedirs(a.dir, exist_ok=True)
    data = pool()[: a.size]
    names = read_names(a.names)
    for name in names:
        with open(os.path.join(a.dir, name), "wb") as f:
            f.write(data)
    emit(count=len(names))


def op_gentree(a):
    """A deterministic source-like tree of ENTRIES entries totalling ~BYTES.

    Shape: top-level directories with 20 subdirectories each; files spread
    round-robin over the subdirectories; ~2% symlinks.  File sizes follow a
    log-uniform law between 256 B and 256 KiB (many small files, a few big
    ones, as in real trees) scaled so that the total is close to BYTES.
    """
    rng = random.Random(a.seed)
    subs_per_top = 20
    ntop = max(1, a.entries // 400)
    dirs = []
    for t in range(ntop):
        top = f"d{t:03d}"
        dirs.append(top)
        dirs.extend(f"{top}/s{s:02d}" for s in range(subs_per_top))
    leaves = [d for d in dirs if "/" in d]
    nfiles = a.entries - len(dirs)
    if nfiles <= 0:
        fail("too few entries for the tree shape")
    nlinks = nfiles // 50
    nregular = nfiles - nlinks
    lo, hi = math.log(256), math.log(256 * 1024)
    raw = [math.exp(rng.uniform(lo, hi)) for _ in range(nregular)]
    scale = a.bytes / sum(raw)
    sizes = [max(1, int(s * scale)) for s in raw]
    p = pool()
    for d in dirs:
        os.makedirs(os.path.join(a.dir, d), exist_ok=True)
    files = []
    total = 0
    for i, size in enumerate(sizes):
        rel = f"{leaves[i % len(leaves)]}/f{i:05d}.dat"
        off = rng.randrange(0, _POOL_SIZE - min(size, _POOL_SIZE))
        with open(os.path.join(a.dir, rel), "wb") as f:
            left = size
            while left:
                n = min(left, _POOL_SIZE - off)
                f.write(p[off:off + n])
                left -= n
                off = 0
        files.append(rel)
        total += size
    for j in range(nlinks):
        rel = f"{leaves[(j * 7) % len(leaves)]}/l{j:05d}.lnk"
        target = os.path.relpath(files[j], os.path.dirname(rel))
        os.symlink(target, os.path.join(a.dir, rel))
    emit(entries=len(dirs) + nfiles, bytes=total)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest="op", required=True)

    s = sub.add_parser("write")
    s.add_argument("path")
    s.add_argument("--size", type=int, required=True)
    s.add_argument("--bs", type=int, required=True)
    s.add_argument("--mode", choices=["create", "overwrite"], required=True)
    s.set_defaults(fn=op_write)

    s = sub.add_parser("read")
    s.add_argument("path")
    s.add_argument("--bs", type=int, default=MiB)
    s.add_argument("--expect", type=int)
    s.set_defaults(fn=op_read)

    s = sub.add_parser("append")
    s.add_argument("path")
    s.add_argument("--fsync", action="store_true")
    s.set_defaults(fn=op_append)

    for name, fn in (("mkfiles", op_mkfiles), ("stat", op_stat), ("unlink", op_unlink)):
        s = sub.add_parser(name)
        s.add_argument("dir")
        s.add_argument("--names", required=True, help="file with one name a line")
        if name == "mkfiles":
            s.add_argument("--size", type=int, default=4096)
        s.set_defaults(fn=fn)

    s = sub.add_parser("readdir")
    s.add_argument("dir")
    s.add_argument("--expect", type=int)
    s.set_defaults(fn=op_readdir)

    s = sub.add_parser("run")
    s.add_argument("--cwd")
    s.add_argument("--log", required=True)
    s.add_argument("cmd", nargs=argparse.REMAINDER)
    s.set_defaults(fn=op_run)

    s = sub.add_parser("count")
    s.add_argument("dir")
    s.add_argument("--expect", type=int)
    s.set_defaults(fn=op_count)

    s = sub.add_parser("mkbig")
    s.add_argument("path")
    s.add_argument("--size", type=int, required=True)
    s.set_defaults(fn=op_mkbig)

    s = sub.add_parser("mksmall")
    s.add_argument("dir")
    s.add_argument("--names", required=True)
    s.add_argument("--size", type=int, default=4096)
    s.set_defaults(fn=op_mksmall)

    s = sub.add_parser("gentree")
    s.add_argument("dir")
    s.add_argument("--entries", type=int, required=True)
    s.add_argument("--bytes", type=int, required=True)
    s.add_argument("--seed", type=int, default=1)
    s.set_defaults(fn=op_gentree)

    a = ap.parse_args()
    try:
        a.fn(a)
    except OSError as e:
        fail(f"{a.op}: {e}")


if __name__ == "__main__":
    main()
