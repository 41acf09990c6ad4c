"""glibc's allocator: at most two heap arenas, so freed request buffers get reused.

glibc gives each thread that allocates its own arena (up to 8 per core), and above
M_MMAP_THRESHOLD raises the threshold to the size of each large block freed (up to
32 MiB), so later multi-MB blocks come from the arenas, which keep them once freed. A
server allocating a few MB per request (upsert batches decoded, copied, normalized,
encoded; batch search arrays) on 16 gRPC threads spreads that free space over as many
arenas. Capping the arenas at two (mallopt M_ARENA_MAX) lets one thread's freed block
serve the next request on another, with no cost per request. (Fixing the mmap threshold
at 128 KiB instead gave back more memory but made 5 MiB upserts 1.2-2x slower and batch
searches up to 1.4x: every large block was a fresh mmap with page faults; see
bench/malloc_bench.py and bench/RESULTS.md.)
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("vecdb_server.malloc")
M_ARENA_MAX = -8  # glibc's mallopt parameter number
ARENAS = 2


def limit_arenas() -> bool:
    """Cap glibc's heap arenas at ARENAS (call before the server's threads start). False
    where the C library is not glibc or refuses (nothing changed)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.gnu_get_libc_version  # glibc only (musl has no such call)
    except (OSError, AttributeError, TypeError):
        return False
    ok = bool(libc.mallopt(M_ARENA_MAX, ARENAS))
    if not ok:
        log.info("mallopt(M_ARENA_MAX) refused; the allocator keeps its defaults")
    return ok
