"""Embedded mode (vecdb.connect): the SDK's tests run again against the in-process face,
so the two faces cannot drift; plus what only embedded mode has (the same data directory
served later by vecdb-server, the directory lock, errors equal to the server's)."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

import vecdb
from harness import InProcessServer, rand
from vecdb_client import DeadlineExceededError, VecdbClientError

import test_analytics_api
import test_async_api
import test_filters_api
import test_recommend_api
import test_sync_api

# Every SDK test of these modules that needs only a client (not the server's address or
# raw channel) runs here too, with `client` below = the embedded face.
_SOURCE: dict[str, str] = {}
for _mod in (test_sync_api, test_filters_api, test_recommend_api, test_analytics_api,
             test_async_api):
    for _name, _obj in vars(_mod).items():
        if _name in ("client", "server", "open_async") or _obj is None:
            continue
        fixture = hasattr(_obj, "_fixture_function_marker") or \
            hasattr(_obj, "_pytestfixturefunction")
        test = _name.startswith("test_") and callable(_obj) and not fixture \
            and "server" not in inspect.signature(_obj).parameters \
            and "spawn" not in inspect.signature(_obj).parameters
        if fixture or test:  # fixtures: the module's own (coll, ds, ...)
            assert _SOURCE.setdefault(_name, _mod.__name__) == _mod.__name__ or \
                globals().get(_name) is _obj, f"{_name} in two shared modules"
            globals()[_name] = _obj


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with vecdb.connect(tmp_path_factory.mktemp("embedded") / "data", timeout=60) as db:
        yield db


@pytest.fixture
def open_async(tmp_path):
    """The AsyncClient tests of test_async_api.py, over vecdb.connect_async."""
    return lambda **kw: vecdb.connect_async(tmp_path / "async-data", **kw)


def test_shared_suite_is_not_empty():
    shared = [n for n in globals() if n.startswith("test_") and n != "test_shared_suite_is_not_empty"]
    assert len(shared) > 30, shared
    assert {"test_every_rpc_async", "test_async_streaming_upsert_and_concurrency",
            "test_collection_lifecycle", "test_range_search"} <= set(shared)


def test_streamed_upsert_in_chunks(tmp_path):
    calls = []
    with vecdb.connect(f"file:{tmp_path / 'data'}", chunk_bytes=8 * 1024) as db:
        db.create_collection("s", dim=8)
        res = db.upsert("s", [f"b{i}" for i in range(1500)], rand(1500, 8, seed=4),
                        payloads=[{"i": i} for i in range(1500)],
                        progress=lambda done, total: calls.append((done, total)))
        assert res.count == 1500 and db.count("s") == 1500
    assert len(calls) > 3 and calls[-1] == (1500, 1500)


def test_the_same_directory_is_served_by_the_server_and_back(tmp_path, spawn):
    data = tmp_path / "data"
    vecs = rand(300, 16, seed=9)
    with vecdb.connect(data) as db:
        db.create_collection("moved", dim=16, index="hnsw", build_threshold=100)
        db.upsert("moved", [f"m{i}" for i in range(300)], vecs,
                  payloads=[{"i": i} for i in range(300)], texts=[f"t{i}" for i in range(300)])
        before = db.search("moved", vectors=vecs[:5], k=5, exact=True)
    server = spawn(data_dir=data)
    with server.client() as c:
        assert c.count("moved") == 300
        assert c.search("moved", vectors=vecs[:5], k=5, exact=True) == before
        c.upsert("moved", ["late"], vecs[:1], payloads=[{"late": True}])
    server.close()
    with vecdb.connect(data) as db:
        assert db.count("moved") == 301 and db.get("moved", ["late"])[0].payload == {"late": True}


def test_directory_is_locked_while_open(tmp_path):
    from vecdb_client import FailedPreconditionError
    with vecdb.connect(tmp_path / "data"):
        with pytest.raises(FailedPreconditionError) as err:  # the SDK's own exception
            vecdb.connect(tmp_path / "data")
        assert "already open" in err.value.message
    db = vecdb.connect(tmp_path / "data")  # released on close
    db.close()
    db.close()  # idempotent
    with pytest.raises(FailedPreconditionError) as err:
        db.count("x")
    assert "closed" in err.value.message


def test_close_ends_open_streams_without_waiting(tmp_path):
    import time as _time
    db = vecdb.connect(tmp_path / "data")
    db.create_collection("d", dim=4, index="flat")
    v = rand(200, 4)
    db.upsert("d", [f"a{i}" for i in range(200)] + [f"b{i}" for i in range(200)],
              np.concatenate([v, v]))
    stream = db.duplicates_stream("d", 0.999, batch=16)
    next(iter(stream))  # a result stream left half-read holds an engine session
    t0 = _time.monotonic()
    db.close()
    assert _time.monotonic() - t0 < 5  # not the engine's 10 s wait for the session


def test_deadline_overrun_while_running(client, coll_name):
    """A call that returns past its deadline raises, though it was not interrupted."""
    client.create_collection(coll_name, dim=64)
    client.upsert(coll_name, [f"d{i}" for i in range(40_000)],
                  np.random.default_rng(0).random((40_000, 64), dtype=np.float32))
    with pytest.raises(DeadlineExceededError):
        client.search(coll_name, vectors=rand(2000, 64, seed=3), k=50, exact=True, timeout=0.05)


def _failure(fn) -> tuple:
    with pytest.raises(VecdbClientError) as err:
        fn()
    e = err.value
    return type(e).__name__, e.code, e.message, e.field


def test_errors_equal_the_servers(tmp_path):
    """The same bad calls, against a server and embedded: same class, code, message, field."""
    server = InProcessServer(tmp_path / "srv")
    try:
        with server.client() as remote, vecdb.connect(tmp_path / "emb") as local:
            for db in (remote, local):
                db.create_collection("e", dim=4)
                db.upsert("e", ["a"], rand(1, 4))
            cases = [
                lambda db: db.describe_collection("missing"),
                lambda db: db.create_collection("e", dim=4),
                lambda db: db.create_collection("bad name!", dim=4),
                lambda db: db.create_collection("p", dim=4, index="hnsw", **{"ü": 1}),
                lambda db: db.upsert("e", ["x"], rand(1, 5)),
                lambda db: db.search("e", vector=np.full(4, np.nan, np.float32)),
                lambda db: db.search("e", text="no encoder here"),
                lambda db: db.count("e", filter={"key": "", "match": 1}),
                lambda db: db.recommend("e", positive=["nope"]),
            ]
            for case in cases:
                assert _failure(lambda: case(remote)) == _failure(lambda: case(local))
            kinds = {_failure(lambda: c(local))[0] for c in cases}
            assert {"NotFoundError", "AlreadyExistsError", "InvalidArgumentError"} <= kinds
    finally:
        server.stop()


def test_deadline_like_grpc(client, coll_name):
    client.create_collection(coll_name, dim=8)
    client.upsert(coll_name, [f"d{i}" for i in range(20_000)], rand(20_000, 8))
    with pytest.raises(DeadlineExceededError):
        client.search(coll_name, vectors=rand(500, 8, seed=1), k=100, exact=True, timeout=1e-6)
    assert client.count(coll_name) == 20_000



def test_the_shared_tests_get_the_embedded_face(client):
    from vecdb_server.embedded import EmbeddedClient
    assert isinstance(client, EmbeddedClient) and client._channel is None


def test_readme_embedded_example_runs_as_written(tmp_path):
    import re
    import subprocess
    import sys

    from harness import ROOT, SRC_PATHS
    section = (ROOT / "README.md").read_text().split("## Embedded mode", 1)[1]
    code = re.search(r"```python\n(.*?)```", section.split("\n## ", 1)[0], re.S).group(1)
    env = {"PYTHONPATH": ":".join(SRC_PATHS), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["p7"]
    with vecdb.connect(tmp_path / "embedded-data") as db:  # the directory it left
        assert db.count("local") == 100
