#!/usr/bin/env python3
"""Benchmark orchestration: data sets, contenders, workloads, interleaving.

Started by bench/run once the private ext4 image is mounted at --root.  This
process owns every per-measurement mount and FUSE daemon and removes them in
`finally` blocks; bench/run owns the image and loop device and, as a last
safety net, also unmounts anything left below its work directory and kills
the daemons listed in --state/pids.

Measurements are interleaved: for every repetition, every workload runs once
per contender, with the contender order rotated each repetition, so that the
drift of a shared machine spreads over all contenders instead of biasing one.
"""

import argparse
import contextlib
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
OPS = os.path.join(HERE, "ops.py")
sys.path.insert(0, HERE)
import report  # noqa: E402  (sibling module, after the path tweak)

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30

WORKLOADS = ["dmfs", "seqread", "append", "smallfiles", "untar", "make"]
CONTENDERS = ["raw", "kernel", "fuse-overlayfs", "overtier"]

SIZES = {
    "full": dict(dmfs_bytes=512 * MiB, big_bytes=1 * GiB, sf_count=20000,
                 sf_whiteouts=2000, tree_entries=20000, tree_bytes=300 * MiB),
    "quick": dict(dmfs_bytes=32 * MiB, big_bytes=64 * MiB, sf_count=2000,
                  sf_whiteouts=200, tree_entries=2000, tree_bytes=20 * MiB),
}

MOUNT_TIMEOUT = 60      # mount(8) / a FUSE daemon's start-up
UMOUNT_TIMEOUT = 120    # a FUSE unmount may have to flush dirty data first
OP_TIMEOUT = 900        # any single timed operation (make of a big package)


class BenchError(Exception):
    """A measurement failed; the run goes on with the next one."""


def log(msg):
    line = time.strftime("%H:%M:%S ") + msg
    print(line, file=sys.stderr, flush=True)
    if LOG_PATH:
        with open(LOG_PATH, "a") as f:
            f.write(line + "\n")


LOG_PATH = None


def run(cmd, timeout, check=True, **kw):
    """subprocess.run with a mandatory timeout; returns CompletedProcess.
    With check=False (clean-up paths) a timeout is just a failure (124, like
    timeout(1)), so that the clean-up goes on to its next step."""
    try:
        p = subprocess.run(cmd, timeout=timeout, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, **kw)
    except subprocess.TimeoutExpired:
        if not check:
            return subprocess.CompletedProcess(cmd, 124, "", f"timed out after {timeout}s")
        raise BenchError(f"timed out after {timeout}s: {' '.join(cmd)}")
    if check and p.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} exited {p.returncode}: "
                         f"{(p.stderr or p.stdout).strip()[-400:]}")
    return p


def drop_caches():
    """Cold-cache point: write back, then drop page cache, dentries, inodes.

    Dropping dentries and inodes also makes the kernel send FORGETs to the
    FUSE daemons, so a "cold" FUSE lookup really goes to the daemon.
    """
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def copy_tree(src, dst):
    """cp -a src/. dst/ (keeps owners, modes, times, xattrs)."""
    os.makedirs(dst, exist_ok=True)
    run(["cp", "-a", "--", os.path.join(src, "."), dst], timeout=OP_TIMEOUT)


def rm_tree(path):
    if os.path.lexists(path):
        run(["rm", "-rf", "--one-file-system", "--", path], timeout=OP_TIMEOUT)


def is_mounted(path):
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def warm(path):
    """Read a file once so that it is in the page cache."""
    with open(path, "rb", buffering=0) as f:
        while f.read(MiB):
            pass


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


# --------------------------------------------------------------------------
# contenders


class Raw:
    """The upper file system used directly: the "lower" data is simply there.

    Workloads that modify lower data get a private copy (made outside the
    clock); read-only ones read the single lower directory in place.
    """

    name = "raw"

    def mount(self, stage, mdir, lowers, seed, readonly):
        if readonly and len(lowers) == 1 and seed is None:
            return lowers[0]
        merged = os.path.join(mdir, "merged")
        for layer in reversed(lowers):       # bottom first, upper copies win
            copy_tree(layer, merged)
        if seed:
            copy_tree(seed, merged)
        os.makedirs(merged, exist_ok=True)
        return merged

    def unmount(self, stage, mdir):
        pass


def overlay_options(lowers, upper, work):
    return f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work}"


class Overlay:
    """Shared set-up of the union contenders: upper, work and mount dirs."""

    def mount(self, stage, mdir, lowers, seed, readonly):
        upper = os.path.join(mdir, "upper")
        work = os.path.join(mdir, "work")
        mnt = os.path.join(mdir, "mnt")
        if seed:
            copy_tree(seed, upper)
        for d in (upper, work, mnt):
            os.makedirs(d, exist_ok=True)
        self.do_mount(stage, overlay_options(lowers, upper, work), mnt)
        stage.note_options(self.name, mnt)
        return mnt


class Kernel(Overlay):
    name = "kernel"

    def do_mount(self, stage, opts, mnt):
        run(["mount", "-t", "overlay", "overlay", "-o", opts, mnt], MOUNT_TIMEOUT)

    def unmount(self, stage, mdir):
        mnt = os.path.join(mdir, "mnt")
        if not is_mounted(mnt):
            return
        if run(["umount", mnt], UMOUNT_TIMEOUT, check=False).returncode != 0:
            run(["umount", "-l", mnt], UMOUNT_TIMEOUT, check=False)


class Fuse(Overlay):
    """fuse-overlayfs and overtier: same -o syntax, both daemonize."""

    def __init__(self, name, binary):
        self.name = name
        self.binary = binary
        self.pids = {}

    def do_mount(self, stage, opts, mnt):
        # Output to a file, not a pipe: a daemon that keeps the inherited
        # stdout/stderr open would make us wait for EOF until the timeout.
        with open(os.path.join(stage.h.results, "logs", f"{self.name}-daemon.log"), "a") as out:
            out.write(f"--- {stage.workload} rep {stage.rep}: {self.binary} -o {opts} {mnt}\n")
            out.flush()
            try:
                rc = subprocess.run([self.binary, "-o", opts, mnt], stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=out, timeout=MOUNT_TIMEOUT).returncode
            except subprocess.TimeoutExpired:
                raise BenchError(f"{self.name} did not return within {MOUNT_TIMEOUT}s")
        if rc != 0:
            raise BenchError(f"{self.name} exited {rc} (see logs/{self.name}-daemon.log)")
        deadline = time.monotonic() + 10
        while not is_mounted(mnt):
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name} exited 0 but {mnt} is not mounted")
            time.sleep(0.05)
        pid = find_fuse_daemon(mnt)
        if pid:
            self.pids[mnt] = pid
            stage.daemon(pid)

    def unmount(self, stage, mdir):
        mnt = os.path.join(mdir, "mnt")
        # A mount that half-failed has no recorded PID: look for it anyway.
        pid = self.pids.pop(mnt, None) or find_fuse_daemon(mnt)
        if is_mounted(mnt):
            r = run(["fusermount3", "-u", mnt], UMOUNT_TIMEOUT, check=False)
            if r.returncode != 0:
                log(f"  {self.name}: fusermount3 -u failed ({r.stderr.strip()}); "
                    "killing the daemon and detaching the mount")
                kill_daemon(pid, mnt, grace=0)
                run(["umount", "-l", mnt], UMOUNT_TIMEOUT, check=False)
        kill_daemon(pid, mnt, grace=15)


def find_fuse_daemon(mnt):
    """PID of the process serving MNT: it names MNT on its command line and
    holds /dev/fuse open.  MNT is unique to this run, so this never matches
    a colleague's daemon."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
            if mnt.encode() not in args:
                continue
            fds = f"/proc/{entry}/fd"
            if any(os.readlink(os.path.join(fds, fd)) == "/dev/fuse"
                   for fd in os.listdir(fds)):
                return int(entry)
        except OSError:
            continue
    return None


def kill_tree(pid):
    """SIGKILL PID and all its descendants (found through /proc ppids)."""
    parent = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                with open(f"/proc/{entry}/stat") as f:
                    # The ppid follows the parenthesized command name.
                    parent[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
    doomed, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        doomed.append(p)
        frontier.extend(c for c, pp in parent.items() if pp == p)
    for p in doomed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)


def owns(pid, mnt):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return mnt.encode() in f.read().split(b"\0")
    except OSError:
        return False


def kill_daemon(pid, mnt, grace):
    """Wait GRACE seconds for the daemon to exit after its unmount, then
    TERM, then KILL; the cmdline check guards against a recycled PID."""
    if not pid:
        return
    deadline = time.monotonic() + grace
    while owns(pid, mnt) and time.monotonic() < deadline:
        time.sleep(0.05)
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        if not owns(pid, mnt):
            return
        log(f"  daemon {pid} for {mnt} still alive: sending {sig.name}")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while owns(pid, mnt) and time.monotonic() < deadline:
            time.sleep(0.05)


# --------------------------------------------------------------------------
# one measurement: a workload on a contender in one repetition


class Stage:
    def __init__(self, h, workload, contender, rep):
        self.h, self.workload, self.contender, self.rep = h, workload, contender, rep
        self.dir = os.path.join(h.root, "run", f"{workload}-{contender.name}-r{rep}")
        self.nmounts = 0
        self.recorded = set()

    # bench/run's trap kills leftover daemons listed here (the mounts it
    # finds itself, below its work directory).
    def daemon(self, pid):
        with open(os.path.join(self.h.state, "pids"), "a") as f:
            f.write(f"{pid}\n")

    def note_options(self, name, mnt):
        """Keep each contender's effective mount options for the report."""
        if name in self.h.mount_options:
            return
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                if fields[4] == mnt:
                    sep = fields.index("-")
                    # Layer paths are this run's temp dirs: noise in a report.
                    sup = ",".join(o for o in fields[sep + 3].split(",")
                                   if not o.startswith(("lowerdir=", "upperdir=", "workdir=")))
                    self.h.mount_options[name] = f"{fields[sep + 1]} {fields[5]} {sup}"

    @contextlib.contextmanager
    def mount(self, lowers, seed=None, readonly=False):
        """A fresh union of LOWERS (+ a copy of SEED as upper) for this stage."""
        mdir = os.path.join(self.dir, f"m{self.nmounts}")
        self.nmounts += 1
        os.makedirs(mdir)
        try:
            yield self.contender.mount(self, mdir, lowers, seed, readonly)
        finally:
            self.contender.unmount(self, mdir)

    def op(self, *args, timeout=OP_TIMEOUT):
        """Run one ops.py subcommand in a child; returns its JSON result."""
        cmd = [sys.executable, OPS] + [str(a) for a in args]
        child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 stdin=subprocess.DEVNULL, text=True)
        try:
            out, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BenchError(f"ops {args[0]} timed out after {timeout}s")
        finally:
            if child.poll() is None:
                # Also tar/make below it.  A process stuck in a FUSE request
                # dies on SIGKILL; if it does not, the unmount path kills the
                # daemon, which aborts the connection and frees it.
                kill_tree(child.pid)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=10)
        if child.returncode != 0:
            raise BenchError(err.strip() or f"ops {args[0]} exited {child.returncode}")
        return json.loads(out.strip().splitlines()[-1])

    def record(self, metric, value):
        self.recorded.add(metric)
        self.h.sample(self, metric, value=value)


# --------------------------------------------------------------------------
# workloads (each: prepare data once, measure per stage)


def wl_dmfs(st, d):
    """DMFS paper, Table 1: create with 64 KiB writes, overwrite with 1 MiB
    and with 8 KiB writes; each durable (fdatasync) before the clock stops."""
    size = d.sizes["dmfs_bytes"]
    with st.mount([d.empty]) as m:
        path = os.path.join(m, "dmfs.bin")
        for metric, bs, mode in (("dmfs_create_64k", 64 * KiB, "create"),
                                 ("dmfs_overwrite_1m", MiB, "overwrite"),
                                 ("dmfs_overwrite_8k", 8 * KiB, "overwrite")):
            drop_caches()
            r = st.op("write", path, "--size", size, "--bs", bs, "--mode", mode)
            st.record(metric, r["mbps"])


def wl_seqread(st, d):
    """Sequential 1 MiB reads of a big lower file: cold, then again warm."""
    size = d.sizes["big_bytes"]
    with st.mount([d.big_lower], readonly=True) as m:
        path = os.path.join(m, "big.bin")
        drop_caches()
        st.record("read_cold", st.op("read", path, "--expect", size)["mbps"])
        st.record("read_warm", st.op("read", path, "--expect", size)["mbps"])


def wl_append(st, d):
    """First 1-byte append to a big lower file: the cost of copy-up.  Each
    variant gets a fresh mount (a copy-up happens only once per file); the
    lower file is cold, as it would be for a long-running container."""
    for metric, extra in (("append_copyup", []), ("append_copyup_fsync", ["--fsync"])):
        with st.mount([d.big_lower]) as m:
            drop_caches()
            r = st.op("append", os.path.join(m, "big.bin"), *extra)
            st.record(metric, r["seconds"])


def wl_smallfiles(st, d):
    """20k 4 KiB files: create/stat/unlink in a new (upper) directory, and
    stat/readdir/unlink in a merged directory spread over 2 lowers + upper."""
    n, w = d.sizes["sf_count"], d.sizes["sf_whiteouts"]
    with st.mount([d.sf_l1, d.sf_l2], seed=d.sf_upper) as m:
        merged = os.path.join(m, "d")
        created = os.path.join(m, "created")
        os.sync()
        st.record("sf_create", st.op("mkfiles", created, "--names", d.sf_created)["seconds"])
        drop_caches()
        st.record("sf_stat_cold", st.op("stat", created, "--names", d.sf_created)["seconds"])
        drop_caches()
        st.record("sf_stat_merged_cold",
                  st.op("stat", merged, "--names", d.sf_merged)["seconds"])
        drop_caches()
        st.record("sf_readdir_cold",
                  st.op("readdir", merged, "--expect", n)["seconds"])
        os.sync()
        st.record("sf_unlink", st.op("unlink", created, "--names", d.sf_created)["seconds"])
        os.sync()
        st.record("sf_unlink_lower",
                  st.op("unlink", merged, "--names", d.sf_whiteout)["seconds"])
        # The whiteouts must hide exactly the unlinked lower entries.
        st.op("readdir", merged, "--expect", n - w)


def wl_untar(st, d):
    """Extract the generated tree (as root: owners, modes, times restored).
    The tarball is read warm so that only the extraction is compared."""
    with st.mount([d.empty]) as m:
        warm(d.tarball)
        os.sync()
        r = st.op("run", "--cwd", m, "--log", d.log("untar", st), "--",
                  "tar", "-xf", d.tarball)
        st.record("untar", r["seconds"])
        st.op("count", os.path.join(m, "tree"), "--expect", d.tree_entries)


def wl_make(st, d):
    """make -j2 inside the union, sources in the lower layer, objects going
    to the upper.  Warm cache (sources and toolchain), like a developer's
    rebuild after checkout: the compiler dominates, the union adds lookups,
    opens and creates."""
    with st.mount([d.make_lower]) as m:
        src = os.path.join(m, d.make_dir)
        os.sync()
        cmd = ["make", "-j2"] + ([d.make_target] if d.make_target else [])
        r = st.op("run", "--cwd", src, "--log", d.log("make", st), "--", *cmd)
        if not any(f.endswith(".o") for _r, _d, fs in os.walk(src) for f in fs):
            raise BenchError("make produced no object file: nothing was built")
        st.record("make", r["seconds"])


WORKLOAD_FN = {"dmfs": wl_dmfs, "seqread": wl_seqread, "append": wl_append,
               "smallfiles": wl_smallfiles, "untar": wl_untar, "make": wl_make}


# --------------------------------------------------------------------------
# data sets (made once per run, outside the clock, on the private ext4)


class Data:
    def __init__(self, h):
        self.h = h
        self.sizes = h.sizes
        self.base = os.path.join(h.root, "data")
        self.empty = os.path.join(self.base, "empty")
        os.makedirs(self.empty, exist_ok=True)

    def log(self, what, st):
        return os.path.join(self.h.results, "logs",
                            f"{what}-{st.contender.name}-r{st.rep}.log")

    def ops(self, *args):
        cmd = [sys.executable, OPS] + [str(a) for a in args]
        return json.loads(run(cmd, OP_TIMEOUT).stdout.strip().splitlines()[-1])

    def prepare(self, workloads):
        """Make the data sets; returns the workloads that can run.  One that
        cannot (say, its source package cannot be fetched) is reported and
        left out instead of ending the whole run."""
        ready = []
        for w in workloads:
            t0 = time.monotonic()
            try:
                getattr(self, f"prep_{w}", lambda: None)()
            except (BenchError, OSError) as e:
                log(f"NOT RUNNING {w}: its data set could not be made: {e}")
                self.h.meta.setdefault("skipped_workloads", {})[w] = str(e)
                continue
            ready.append(w)
            log(f"prepared {w} data in {time.monotonic() - t0:.1f}s")
        os.sync()
        return ready

    def prep_seqread(self):
        self.big_lower = os.path.join(self.base, "big")
        path = os.path.join(self.big_lower, "big.bin")
        if not os.path.exists(path):
            os.makedirs(self.big_lower, exist_ok=True)
            self.ops("mkbig", path, "--size", self.sizes["big_bytes"])

    prep_append = prep_seqread

    def prep_smallfiles(self):
        """Names f00000.. spread over L2 (bottom), L1 and the upper seed, with
        overlaps so that the merge must also drop shadowed duplicates:
            L2: [0, .35n)   L1: [.30n, .675n)   upper: [.65n, n)
        The whiteout victims exist only in one lower layer."""
        n, w = self.sizes["sf_count"], self.sizes["sf_whiteouts"]
        sf = os.path.join(self.base, "sf")
        self.sf_l1, self.sf_l2, self.sf_upper = (os.path.join(sf, x) for x in ("l1", "l2", "up"))
        names = [f"f{i:05d}" for i in range(n)]

        def write_names(fname, items):
            path = os.path.join(sf, fname)
            with open(path, "w") as f:
                f.writelines(x + "\n" for x in items)
            return path

        os.makedirs(sf, exist_ok=True)
        cut = lambda frac: int(n * frac)  # noqa: E731
        layers = ((self.sf_l2, names[:cut(.35)]), (self.sf_l1, names[cut(.30):cut(.675)]),
                  (self.sf_upper, names[cut(.65):]))
        for layer, items in layers:
            self.ops("mksmall", os.path.join(layer, "d"), "--names",
                     write_names(os.path.basename(layer) + ".txt", items))
        only_l2, only_l1 = names[:cut(.30)], names[cut(.35):cut(.65)]
        victims = only_l2[:: max(1, len(only_l2) // (w // 2))][: w // 2]
        victims += only_l1[:: max(1, len(only_l1) // (w - w // 2))][: w - w // 2]
        assert len(victims) == w and len(set(victims)) == w
        self.sf_merged = write_names("merged.txt", names)
        self.sf_whiteout = write_names("whiteout.txt", victims)
        self.sf_created = write_names("created.txt", [f"c{i:05d}" for i in range(n)])

    def prep_untar(self):
        u = os.path.join(self.base, "untar")
        src = os.path.join(u, "src")
        self.tarball = os.path.join(u, "tree.tar")
        r = self.ops("gentree", os.path.join(src, "tree"), "--entries",
                     self.sizes["tree_entries"], "--bytes", self.sizes["tree_bytes"])
        self.tree_entries, self.tree_bytes = r["entries"], r["bytes"]
        # Deterministic archive: sorted, fixed owners and times.
        run(["tar", "-C", src, "--sort=name", "--mtime=@1700000000", "--owner=0",
             "--group=0", "--numeric-owner", "--format=gnu", "-cf", self.tarball,
             "tree"], OP_TIMEOUT)
        rm_tree(src)
        self.h.meta["untar"] = {"entries": self.tree_entries, "bytes": self.tree_bytes,
                                "tar_bytes": os.path.getsize(self.tarball)}

    def prep_make(self):
        tarball = fetch_make_source(self.h.args, self.h.results)
        lower = os.path.join(self.base, "make")
        os.makedirs(lower, exist_ok=True)
        if os.path.isdir(tarball):
            copy_tree(tarball, os.path.join(lower, os.path.basename(tarball.rstrip("/"))))
        else:
            run(["tar", "-C", lower, "-xf", tarball], OP_TIMEOUT)
        tops = os.listdir(lower)
        if len(tops) != 1:
            raise BenchError(f"{tarball}: expected one top-level directory, got {tops}")
        self.make_lower, self.make_dir = lower, tops[0]
        self.make_target = self.h.args.make_target
        tree = os.path.join(lower, self.make_dir)
        if os.path.exists(os.path.join(tree, "configure")) and \
                not os.path.exists(os.path.join(tree, "Makefile")):
            # Configuring is set-up, not the measured build: do it in the lower.
            run(["./configure"], OP_TIMEOUT, cwd=tree)
        self.h.meta["make"] = {"source": os.path.basename(tarball), "dir": self.make_dir,
                               "target": self.make_target or "(default)", "jobs": 2}


def fetch_make_source(args, results):
    """The C code base for the make workload: --make-src, else the Debian
    source package --make-pkg, downloaded once with apt-get into a cache.

    apt-get runs with private source lists (deb-src twins of the system's
    entries) and private state/cache dirs, so the system's apt configuration
    is neither needed nor changed."""
    if args.make_src:
        return os.path.abspath(args.make_src)
    cache = os.path.join(os.path.dirname(results), "cache", args.make_pkg)
    found = sorted(glob.glob(os.path.join(cache, "*.orig.tar.*")))
    if found:
        return found[0]
    apt = os.path.join(cache, "apt")
    parts = os.path.join(apt, "sources.list.d")
    for d in (parts, os.path.join(apt, "lists", "partial"),
              os.path.join(apt, "cache", "archives", "partial")):
        os.makedirs(d, exist_ok=True)
    n = 0
    for src in glob.glob("/etc/apt/sources.list.d/*.sources"):
        with open(src) as f:
            text = f.read().replace("Types: deb\n", "Types: deb-src\n")
        with open(os.path.join(parts, os.path.basename(src)), "w") as f:
            f.write(text)
        n += 1
    for src in ["/etc/apt/sources.list"] + glob.glob("/etc/apt/sources.list.d/*.list"):
        if os.path.exists(src):
            with open(src) as f:
                lines = [ln.replace("deb ", "deb-src ", 1) for ln in f
                         if ln.startswith("deb ")]
            with open(os.path.join(parts, f"{n}-{os.path.basename(src)}"), "w") as f:
                f.writelines(lines)
            n += 1
    opts = ["-o", "Dir::Etc::SourceList=/dev/null", "-o", f"Dir::Etc::SourceParts={parts}",
            "-o", f"Dir::State::Lists={apt}/lists", "-o", f"Dir::Cache={apt}/cache",
            "-o", "APT::Sandbox::User=root"]
    log(f"fetching Debian source package {args.make_pkg} (once; cached in {cache})")
    run(["apt-get", "-qq"] + opts + ["update"], 600)
    run(["apt-get", "-qq"] + opts + ["source", "--download-only", args.make_pkg],
        600, cwd=cache)
    found = sorted(glob.glob(os.path.join(cache, "*.orig.tar.*")))
    if not found:
        raise BenchError(f"apt-get source {args.make_pkg} gave no *.orig.tar.* in {cache}")
    rm_tree(apt)    # the lists are ~20 MB and only needed for this download
    return found[0]


# --------------------------------------------------------------------------


class Harness:
    def __init__(self, args):
        self.args = args
        self.root, self.state, self.results = args.root, args.state, args.results
        self.sizes = SIZES["quick" if args.quick else "full"]
        self.mount_options = {}
        self.samples_path = os.path.join(self.results, "samples.jsonl")
        self.meta = {}
        os.makedirs(os.path.join(self.results, "logs"), exist_ok=True)

    def sample(self, st, metric, **fields):
        rec = dict(rep=st.rep, workload=st.workload, contender=st.contender.name,
                   metric=metric, load=loadavg(), **fields)
        with open(self.samples_path, "a") as f:
            f.write(json.dumps(rec) + "\n")

    def write_meta(self):
        self.meta["mount_options"] = self.mount_options
        with open(os.path.join(self.results, "meta.json"), "w") as f:
            json.dump(self.meta, f, indent=1)

    def contenders(self):
        out = []
        for name in self.args.contenders:
            if name == "raw":
                out.append(Raw())
            elif name == "kernel":
                out.append(Kernel())
            elif name == "fuse-overlayfs":
                out.append(Fuse(name, self.args.fuse_overlayfs))
            elif name == "overtier":
                out.append(Fuse(name, self.args.overtier))
        return out

    def measure(self, workload, contender, rep, data):
        st = Stage(self, workload, contender, rep)
        t0 = time.monotonic()
        try:
            os.makedirs(st.dir)
            WORKLOAD_FN[workload](st, data)
        except (BenchError, OSError, ValueError) as e:
            log(f"  ERROR {workload}/{contender.name} rep {rep}: {e}")
            for m in report.metrics_of(workload):
                if m not in st.recorded:
                    self.sample(st, m, error=str(e))
        finally:
            rm_tree(st.dir)
            os.sync()
        got = self.last_values(st)
        log(f"  {workload:<10} {contender.name:<15} rep {rep}: "
            + ", ".join(f"{m}={report.fmt(v)}" for m, v in got)
            + f"  [{time.monotonic() - t0:.0f}s, load {loadavg():.1f}]")

    def last_values(self, st):
        if not os.path.exists(self.samples_path):
            return []
        with open(self.samples_path) as f:
            recs = [json.loads(x) for x in f]
        return [(r["metric"], r["value"]) for r in recs
                if r["rep"] == st.rep and r["workload"] == st.workload
                and r["contender"] == st.contender.name and "value" in r]

    def main(self):
        a = self.args
        conts = self.contenders()
        self.meta.update(report.environment(a, conts))
        self.meta["sizes"] = self.sizes
        self.meta["skipped"] = dict(a.skipped)
        data = Data(self)
        workloads = data.prepare(a.only)
        self.write_meta()      # early, so that report.py works on a cut-short run
        loads = [loadavg()]
        t_start = time.monotonic()
        for rep in range(1, a.reps + 1):
            # Rotate the contender order each repetition: nobody always runs
            # first (after the data set was made) or last.
            k = (rep - 1) % len(conts)
            order = conts[k:] + conts[:k]
            log(f"repetition {rep}/{a.reps}: order {', '.join(c.name for c in order)}")
            for w in workloads:
                for c in order:
                    self.measure(w, c, rep, data)
                    loads.append(loadavg())
        self.meta["duration_s"] = round(time.monotonic() - t_start)
        self.meta["load_min"], self.meta["load_max"] = min(loads), max(loads)
        self.write_meta()
        report.write_reports(self.samples_path, self.meta, self.results,
                             a.out, a.json)


def on_term(signum, _frame):
    # Turn SIGTERM (sent by bench/run's trap) into an exception so that every
    # `finally` unmounts what it mounted.
    raise SystemExit(128 + signum)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", required=True, help="mounted private ext4")
    ap.add_argument("--state", required=True, help="where daemon PIDs are listed for the trap")
    ap.add_argument("--results", required=True, help="this run's results directory")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default=",".join(WORKLOADS))
    ap.add_argument("--contenders", default=",".join(CONTENDERS))
    ap.add_argument("--skip", action="append", default=[], metavar="NAME=WHY",
                    help="contender skipped by bench/run, with the reason")
    ap.add_argument("--overtier")
    ap.add_argument("--fuse-overlayfs", default="fuse-overlayfs")
    ap.add_argument("--make-pkg", default="lua5.4")
    ap.add_argument("--make-src")
    ap.add_argument("--make-target", default="")
    ap.add_argument("--image-info", default="", help="how the private ext4 was made")
    ap.add_argument("--out")
    ap.add_argument("--json")
    a = ap.parse_args()
    a.only = [w for w in WORKLOADS if w in a.only.split(",")]
    a.contenders = [c for c in CONTENDERS if c in a.contenders.split(",")]
    a.skipped = [s.split("=", 1) for s in a.skip]
    global LOG_PATH
    LOG_PATH = os.path.join(a.results, "run.log")
    signal.signal(signal.SIGTERM, on_term)
    # Own process group: if this process is killed outright, bench/run can
    # still end the tar/make/ops children it left, by this group's id.
    os.setpgrp()
    Harness(a).main()


if __name__ == "__main__":
    main()
