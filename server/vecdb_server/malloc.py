"""glibc's allocator: large blocks go back to the OS when freed.

glibc serves a block above M_MMAP_THRESHOLD (128 KiB) with its own mmap, but each time
such a block is freed it raises the threshold to that block's size (up to 32 MiB), so
later blocks of that size come from the heap arenas, which keep them once freed. A
server allocating a few MB per request (upsert batches decoded, copied, normalized,
encoded; batch search arrays) on many gRPC threads ends up holding hundreds of MB of
free arena space: 116k x 384 loaded through gRPC, server RSS once loaded 574 MB with
the dynamic threshold, 313 MB with it fixed (peak 651 -> 507 MB). Fixing the threshold
(mallopt) turns the adjustment off.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("vecdb_server.malloc")
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
THRESHOLD = 128 * 1024  # glibc's default starting value


def fix_mmap_threshold() -> bool:
    """Keep large blocks mmapped (freed to the OS). False where the C library is not
    glibc or refuses (nothing changed)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.gnu_get_libc_version  # glibc only (musl has no such call)
    except (OSError, AttributeError, TypeError):
        return False
    ok = bool(libc.mallopt(M_MMAP_THRESHOLD, THRESHOLD))
    if not ok:
        log.info("mallopt(M_MMAP_THRESHOLD) refused; the allocator keeps its defaults")
    return ok
