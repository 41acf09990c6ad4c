"""The server fixes glibc's mmap threshold (server/vecdb_server/malloc.py): a large block
freed after others of its size goes back to the OS instead of staying in the heap."""
import subprocess
import sys

import pytest

CHILD = r"""
import sys
sys.path.insert(0, "server")
if sys.argv[1] == "fixed":
    from vecdb_server.malloc import fix_mmap_threshold
    assert fix_mmap_threshold()
import ctypes
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
size = 8 << 20
first = libc.malloc(size); libc.memset(first, 1, size); libc.free(first)  # raises the dynamic threshold
before = rss()
block = libc.malloc(size); libc.memset(block, 1, size)
keep = libc.malloc(1024)  # above it in the heap: the freed block cannot be trimmed off the top
libc.free(block)
print(rss() - before)
"""


def grown_mb(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True,
                         check=True)
    return int(out.stdout.strip())


def glibc() -> bool:
    """glibc's allocator (not musl's, not another platform's): the fix is for it alone."""
    import ctypes
    import ctypes.util
    name = ctypes.util.find_library("c")
    return name is not None and hasattr(ctypes.CDLL(name), "gnu_get_libc_version")


@pytest.mark.skipif(not glibc(), reason="glibc's allocator")
def test_large_freed_blocks_leave_the_process():
    assert grown_mb("fixed") < 2
    assert grown_mb("default") >= 6  # what the fix is for: glibc keeps it by default
