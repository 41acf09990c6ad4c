"""Fixtures: one in-process server per module, subprocess servers on demand (see harness.py)."""
from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from harness import InProcessServer, ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One in-process server per test module."""
    srv = InProcessServer(tmp_path_factory.mktemp("srv") / "data")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server):
    with server.client() as c:
        yield c


@pytest.fixture
def coll_name():
    return "c_" + uuid.uuid4().hex[:10]


@pytest.fixture
def spawn(tmp_path):
    """Factory for subprocess servers; every one is killed at the end of the test."""
    procs: list[ServerProcess] = []

    def _spawn(*args: str, data_dir: Path | None = None, **kw) -> ServerProcess:
        p = ServerProcess(data_dir or tmp_path / "data", *args, **kw)
        procs.append(p)
        return p
    yield _spawn
    for p in procs:
        p.close()
