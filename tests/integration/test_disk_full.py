"""Disk full, for real: the data directory lives on a small tmpfs (needs mount rights).

Writes fail with RESOURCE_EXHAUSTED "disk full: ...", reads keep working, every
acknowledged point survives (also across kill -9 and restart), and writes resume
by themselves once space is freed (the server reopens RocksDB in the background).
The test skips ONLY when a tmpfs cannot be mounted here, and says why."""
from __future__ import annotations

import os
import re
import subprocess
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness import rand
from vecdb_client import ResourceExhaustedError

DIM = 256
BATCH = 40


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "data"  # the data dir itself; the server log stays outside it
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("disk-full test needs root to mount a small tmpfs (not root here)")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"disk-full test cannot mount a tmpfs here: {res.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def free_bytes(path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def disk_full_gauge(log: str) -> float:
    port = int(re.search(r"metrics on 127\.0\.0\.1:(\d+)", log).group(1))
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return next(s.value for f in text_string_to_metric_families(text)
                for s in f.samples if s.name == "vecdb_disk_full")


def test_disk_full_refuses_writes_keeps_reads_and_recovers(spawn, small_fs):
    data = small_fs
    srv = spawn(data_dir=data, env={"VECDB_BLOCK_CACHE_MB": "8"})
    filler = small_fs / "filler"  # a stray file in the data dir is ignored by the server
    with srv.client(max_retries=0) as c:
        c.create_collection("full", dim=DIM, index="flat")
        # leave ~4 MiB: RocksDB's WAL fills it within a few dozen batches
        subprocess.run(["fallocate", "-l", str(free_bytes(small_fs) - (4 << 20)), str(filler)],
                       check=True)
        acked: list[str] = []
        err = None
        for b in range(500):
            ids = [f"p{b:03d}_{j:02d}" for j in range(BATCH)]
            try:
                c.upsert("full", ids, rand(BATCH, DIM, seed=b), payloads=[{"b": b}] * BATCH)
            except ResourceExhaustedError as e:
                err = e
                break
            acked += ids
        assert err is not None, "the filesystem never filled up"
        assert "disk full" in str(err), str(err)
        assert acked, "not a single batch fit"

        # still full: writes keep failing with the same clear error; reads all work
        with pytest.raises(ResourceExhaustedError, match="disk full"):
            c.upsert("full", ["extra"], rand(1, DIM, seed=999))
        assert disk_full_gauge(srv.log()) == 1
        assert c.count("full") == len(acked)
        got = c.get("full", acked[:5] + acked[-5:], with_vectors=True)
        assert [p.id for p in got] == acked[:5] + acked[-5:]
        hits = c.search("full", vector=rand(BATCH, DIM, seed=0)[3], k=1)
        assert hits[0].id == acked[3]
        assert [p.id for p in c.iter_points("full", batch_size=500)] == sorted(acked)

        # free the space: writes resume on their own (background reopen of RocksDB)
        filler.unlink()
        deadline = time.monotonic() + 30
        while True:
            try:
                c.upsert("full", ["after0", "after1"], rand(2, DIM, seed=1000))
                break
            except ResourceExhaustedError:
                assert time.monotonic() < deadline, "writes did not resume after freeing space"
                time.sleep(0.5)
        assert c.count("full") == len(acked) + 2
        assert disk_full_gauge(srv.log()) == 0
        c.delete("full", ["after1"])
    assert "writes accepted again" in srv.log()

    # nothing acknowledged is lost, the refused batch never appears, even after kill -9
    srv.kill()
    again = spawn(data_dir=data)
    with again.client() as c:
        stored = sorted(p.id for p in c.iter_points("full", batch_size=1000))
        assert stored == sorted(acked + ["after0"])
        c.upsert("full", ["after2"], rand(1, DIM, seed=1001))
        assert c.count("full") == len(acked) + 2
    assert again.terminate() == 0
