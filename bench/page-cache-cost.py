#!/usr/bin/env python3
"""System time per GiB of buffered 1 MiB `pwrite`s into the page cache, three ways.

    bench/page-cache-cost.py [DIR] [MIB]      # default: target/bench, 3072 MiB per case

1. fresh:     a new file, pages allocated from free memory (what a log append does);
2. overwrite: the same file again, its pages already cached (no allocation);
3. drop-behind: a new file, dropping the pages 32 MiB behind the end as it goes
   (`posix_fadvise(DONTNEED)`, as `log.drop.behind.bytes=33554432` does), so freed pages are
   reused.

On a VM whose balloon device reports free pages to the host (virtio_balloon with
FREE_PAGE_REPORTING), case 1 pays a host page fault per page allocated from reported memory;
cases 2 and 3 mostly do not. Why shardlog has `log.drop.behind.bytes`: see docs/PERFORMANCE.md ("Drop-behind").
"""
import os
import sys
import time

DIR = sys.argv[1] if len(sys.argv) > 1 else "target/bench"
MIB = int(sys.argv[2]) if len(sys.argv) > 2 else 3072
KEEP_MIB = 32
STEP_MIB = 16


def write(path, drop_behind, truncate=True):
    buf = os.urandom(1 << 20)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if truncate else 0)
    fd = os.open(path, flags, 0o644)
    t0, c0 = time.time(), os.times()
    for i in range(MIB):
        os.pwrite(fd, buf, i << 20)
        if drop_behind and i % STEP_MIB == STEP_MIB - 1 and i >= KEEP_MIB:
            # The first call starts writeback of dirty pages; the second, later, drops them
            # once clean (DONTNEED skips pages that are dirty or under writeback).
            os.posix_fadvise(fd, (i - KEEP_MIB - STEP_MIB + 1) << 20, STEP_MIB << 20,
                             os.POSIX_FADV_DONTNEED)
            if i >= 4 * KEEP_MIB:
                os.posix_fadvise(fd, (i - 4 * KEEP_MIB - STEP_MIB + 1) << 20, STEP_MIB << 20,
                                 os.POSIX_FADV_DONTNEED)
    c1, t1 = os.times(), time.time()
    os.close(fd)
    gib = MIB / 1024
    return (c1.system - c0.system) / gib, (t1 - t0) / gib


def main():
    os.makedirs(DIR, exist_ok=True)
    a, b = os.path.join(DIR, "page-cache-cost-a"), os.path.join(DIR, "page-cache-cost-b")
    try:
        print(f"{MIB} MiB per case, 1 MiB pwrites, in {DIR}")
        print("case          sys s/GiB  wall s/GiB")
        for name, path, drop, trunc in (("fresh", a, False, True),
                                        ("overwrite", a, False, False),
                                        ("drop-behind", b, True, True)):
            sys_s, wall_s = write(path, drop, trunc)
            print(f"{name:12}  {sys_s:9.2f}  {wall_s:10.2f}")
    finally:
        for p in (a, b):
            if os.path.exists(p):
                os.unlink(p)


if __name__ == "__main__":
    main()
