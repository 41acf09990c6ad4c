"""A full disk during an on-disk merge or retrain is an OSError (the server stays up, the
partial files are removed), not SIGBUS from FAISS writing through a sparse mapping; a
retrain needs the room of one copy of its lists. Runs
in a child process on a 2 MiB tmpfs (needs root to mount one; skipped otherwise)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent("""
    import os, sys
    import faiss
    import numpy as np
    from vecdb import ondisk
    from vecdb.types import IndexSpec
    shard = sys.argv[1]
    x = np.random.default_rng(0).random((20000, 32), np.float32)  # 3.4 MB of lists
    chunks = lambda: ((np.arange(i, i + 4000, dtype=np.int64), x[i:i + 4000])
                      for i in range(0, 20000, 4000))
    spec = IndexSpec("ivf_flat", {"nlist": 16})
    try:
        ondisk.stream(shard, spec, "l2", 32, 20000, chunks)
    except OSError as e:  # refused up front: the free space is short
        print("OSError", e.errno, sorted(os.listdir(shard)))
    # a retrain needs room for one copy of its lists (+ 1 MiB): 6,000 x 32 (0.8 MB)
    small = lambda: ((np.arange(i, i + 3000, dtype=np.int64), x[i:i + 3000])
                     for i in range(0, 6000, 3000))
    ann = ondisk.stream(shard, spec, "l2", 32, 6000, small)
    print("built", ann.base.ntotal, len(os.listdir(shard)))
    del ann
    ondisk.remove_gens(shard, -1)
    # a generation written from lists in RAM, the free-space check passed over: its blocks
    # are allocated before FAISS writes through the mapping
    quantizer = faiss.IndexFlatL2(32)
    ivf = faiss.IndexIVFFlat(quantizer, 32, 16)
    ivf.train(x[:2000])
    ivf.add_with_ids(x, np.arange(20000, dtype=np.int64))
    ondisk.ensure_space = lambda directory, nbytes: None
    try:
        ondisk._write_gen(shard, 1, ivf, [ivf.invlists], set(), 20000, 19999)
    except OSError as e:
        print("OSError", e.errno, sorted(os.listdir(shard)))
    # and so are a retrain's (the free-space check passed over too)
    try:
        ondisk.stream(shard, spec, "l2", 32, 20000, chunks)
    except OSError as e:
        print("OSError", e.errno, sorted(os.listdir(shard)))
""")


@pytest.fixture
def tiny_fs(tmp_path):
    mnt = tmp_path / "fs"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs",
                                            str(mnt)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root")
    yield str(mnt)
    subprocess.run(["umount", str(mnt)], check=True)


def test_stream_on_a_full_disk_is_an_oserror(tiny_fs):
    run = subprocess.run([sys.executable, "-c", CHILD, os.path.join(tiny_fs, "shard")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = [ln for ln in run.stdout.splitlines() if ln.startswith("OSError")]
    assert lines == ["OSError 28 []", "OSError 28 []", "OSError 28 []"]
    assert "built 6000 2" in run.stdout.splitlines()
