#!/usr/bin/env python3
"""One process of the metadata storm (metadata_storm.sh): random creates, rewrites, appends,
unlinks, renames of files and directories, hard links, symlinks, mkdir, rmdir and listings among
a few names in a few directories of ROOT, for SECONDS. Errors a racing peer explains (ENOENT,
EEXIST, ENOTEMPTY, ...) are expected; EIO, ENOTCONN and ESTALE are printed as BAD."""
import errno
import os
import random
import sys
import time

BAD = (errno.EIO, errno.ENOTCONN, errno.ESTALE)
NAMES = ['a', 'b', 'c', 'd', 'e']
DIRS = ['', 'd1', 'd2', 'd1/s', 'd2/s']


def main():
    root, seed, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    rnd = random.Random(seed)

    def name():
        return os.path.join(root, rnd.choice(DIRS), rnd.choice(NAMES))

    def directory():
        return os.path.join(root, rnd.choice(DIRS))

    def rewrite():
        with open(name(), 'w') as f:
            f.write('x' * rnd.randrange(5000))

    def append():
        with open(name(), 'a') as f:
            f.write('y')

    ops = [
        rewrite, append,
        lambda: os.unlink(name()),
        lambda: os.rename(name(), name()),
        lambda: os.rename(directory() if rnd.random() < 0.3 else name(), name()),
        lambda: os.mkdir(name()),
        lambda: os.rmdir(name()),
        lambda: os.link(name(), name()),
        lambda: os.symlink('t', name()),
        lambda: os.listdir(directory()),
    ]
    end = time.time() + seconds
    n = bad = 0
    while time.time() < end:
        try:
            rnd.choice(ops)()
        except OSError as e:
            if e.errno in BAD:
                print(f'BAD: {e}', flush=True)
                bad += 1
        n += 1
    print(f'ops {n}')
    sys.exit(1 if bad else 0)


if __name__ == '__main__':
    main()
