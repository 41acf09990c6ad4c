"""The server caps glibc's heap arenas (server/vecdb_server/malloc.py): a multi-MB block
one thread freed serves the next thread's request instead of each thread's arena keeping
its own."""
import subprocess
import sys

import pytest

CHILD = r"""
import ctypes, sys, threading
sys.path.insert(0, "server")
if sys.argv[1] == "limited":
    from vecdb_server.malloc import limit_arenas
    assert limit_arenas()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
size, threads = 8 << 20, 8
first = libc.malloc(size); libc.memset(first, 1, size); libc.free(first)  # raises the dynamic threshold
started, turn = threading.Barrier(threads + 1), threading.Lock()
keep = []
def request():
    keep.append(libc.malloc(64))  # this thread's arena
    started.wait()
    with turn:  # one request at a time, each on its own thread
        block = libc.malloc(size); libc.memset(block, 1, size)
        keep.append(libc.malloc(64))  # above it: the freed block is not trimmed off the top
        libc.free(block)
workers = [threading.Thread(target=request) for _ in range(threads)]
for w in workers:
    w.start()
before = rss()
started.wait()
for w in workers:
    w.join()
print(rss() - before)
"""


def grown_mb(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True,
                         check=True)
    return int(out.stdout.strip())


def glibc() -> bool:
    """glibc's allocator (not musl's, not another platform's): the cap is for it alone."""
    import ctypes
    import ctypes.util
    name = ctypes.util.find_library("c")
    return name is not None and hasattr(ctypes.CDLL(name), "gnu_get_libc_version")


@pytest.mark.skipif(not glibc(), reason="glibc's allocator")
def test_freed_blocks_are_reused_across_threads():
    limited, default = grown_mb("limited"), grown_mb("default")
    assert limited <= 2 * 8 + 2, limited  # at most one kept block per arena
    assert default >= 4 * 8, default  # what the cap is for: an arena per thread keeps each
