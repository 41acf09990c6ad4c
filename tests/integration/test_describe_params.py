"""describe_collection shows the index parameters a collection really runs with:
every parameter of its index type (defaults filled in and marked as defaults), and per
shard what the built index chose automatically (nlist, m). Through the SDK and the CLI."""
from __future__ import annotations

import json
import time

import pytest

from harness import rand
from test_cli import cli
from vecdb.index import auto_nlist, auto_pq_m
from vecdb.types import INDEX_PARAM_DEFAULTS


def wait_built(client, name: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = client.describe_collection(name)
        if info.index_state == "built":
            return info
        time.sleep(0.1)
    raise AssertionError(f"{name} not built: {info}")


@pytest.mark.parametrize("index,params", [
    ("hnsw", {"M": 16}), ("ivf_flat", {"nprobe": 8}), ("ivf_pq", {}), ("auto", {}),
    ("flat", {})])
def test_effective_params_fill_defaults_and_mark_them(client, coll_name, index, params):
    info = client.create_collection(coll_name, dim=16, index=index, **params)
    expected = {**INDEX_PARAM_DEFAULTS[index], **params}
    assert info.effective_index_params == expected
    assert set(info.default_index_params) == set(INDEX_PARAM_DEFAULTS[index]) - set(params)
    assert info.config.index_params == params  # the config still says what was set
    assert all(s.built_params == {} for s in info.shards)  # nothing built yet


def test_built_params_show_what_the_build_chose(client, coll_name):
    n, dim = 600, 32
    client.create_collection(coll_name, dim=dim, index="ivf_pq", build_threshold=500, nbits=6)
    client.upsert(coll_name, [f"p{i}" for i in range(n)], rand(n, dim, seed=4))
    info = wait_built(client, coll_name)
    built = info.shards[0].built_params
    assert built == {"nlist": min(auto_nlist(n), n // 4), "m": auto_pq_m(dim), "nbits": 6}
    assert info.effective_index_params["nlist"] == 0 and "nlist" in info.default_index_params


def test_hnsw_built_params(client, coll_name):
    client.create_collection(coll_name, dim=8, index="hnsw", M=12, build_threshold=50)
    client.upsert(coll_name, [f"p{i}" for i in range(80)], rand(80, 8, seed=5))
    built = wait_built(client, coll_name).shards[0].built_params
    assert built == {"M": 12, "ef_construction": INDEX_PARAM_DEFAULTS["hnsw"]["ef_construction"]}


def test_cli_describe_marks_defaults(server, client, coll_name):
    client.create_collection(coll_name, dim=8, index="hnsw", ef_search=64)
    out = cli("collections", "describe", coll_name, "-o", "json", host=server.target)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["effective_index_params"] == {**INDEX_PARAM_DEFAULTS["hnsw"], "ef_search": 64}
    assert "ef_search" not in d["default_index_params"] and "M" in d["default_index_params"]
    table = cli("collections", "describe", coll_name, host=server.target).stdout
    rows = {line.split()[0]: line.split()[1:] for line in table.splitlines()
            if line.split() and line.split()[0] in INDEX_PARAM_DEFAULTS["hnsw"]}
    assert rows["ef_search"] == ["64", "set"] and rows["M"] == ["32", "default"], table
