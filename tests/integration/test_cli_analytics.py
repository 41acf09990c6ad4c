"""vecdbctl kmeans / outliers / duplicates / map --kmeans through the real entry point
(``python -m vecdb_client.cli``) against a real server subprocess; JSON output checked
against faiss and numpy references, tables and errors checked as a user sees them."""
from __future__ import annotations

import json

import faiss
import numpy as np
import pytest

from harness import ServerProcess
from test_cli import PNG_SIGNATURE, cli, one_line_error
from vecdb.topk import shard_of

DIM = 8


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    p = ServerProcess(tmp_path_factory.mktemp("cli_an") / "data")
    with p.client() as c:
        rng = np.random.default_rng(3)
        centers = rng.standard_normal((4, DIM)).astype(np.float32) * 4
        vecs = (centers[np.arange(200) % 4] + rng.standard_normal((200, DIM))).astype(np.float32)
        vecs[7] += 40  # far from everything
        ids = [f"v{i:03d}" for i in range(200)]
        c.create_collection("an", DIM, metric="l2", index="flat", shards=2)
        c.upsert("an", ids, vecs, payloads=[{"lang": "en" if i % 2 else "de"} for i in range(200)],
                 texts=[f"sentence number {i}" for i in range(200)])
        c.upsert("an", ["dup-a", "dup-b"], np.stack([vecs[3] + 0.01, vecs[3] + 0.02]),
                 payloads=[{"lang": "en"}] * 2)
    p.ids, p.vecs = ids + ["dup-a", "dup-b"], np.concatenate([vecs, np.stack([vecs[3] + 0.01,
                                                                               vecs[3] + 0.02])])
    yield p
    p.close()


def run(srv, *args):
    out = cli(*args, "-o", "json", host=srv.target)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_kmeans_json_matches_faiss_and_writes_the_label(srv):
    res = run(srv, "kmeans", "an", "-k", "4", "--seed", "9", "--iterations", "10",
              "--write-label", "topic", "--typical", "2")
    rows = sorted(range(len(srv.ids)), key=lambda i: (shard_of(srv.ids[i], 2), i))
    x = srv.vecs[rows]
    ref = faiss.Kmeans(DIM, 4, niter=10, seed=9,
                       init_method=faiss.ClusteringInitMethod_KMEANS_PLUS_PLUS)  # the default
    ref.train(x)
    _, want = ref.assign(x)
    assert res["sizes"] == np.bincount(want, minlength=4).tolist()
    assert res["labelled"] == len(srv.ids) and res["points"] == len(srv.ids)
    assert [len(t) for t in res["typical"]] == [min(2, n) for n in res["sizes"]]
    assert all(t[0]["text"] for t in res["typical"] if t[0]["id"].startswith("v"))
    with srv.client() as c:
        got = {p.id: p.payload["topic"] for p in c.get("an", srv.ids)}
    assert [got[srv.ids[i]] for i in rows] == want.tolist()
    # the table: one row per cluster with its size and most typical member
    table = cli("kmeans", "an", "-k", "4", "--seed", "9", "--iterations", "10", host=srv.target)
    assert table.returncode == 0, table.stderr
    assert "4 clusters" in table.stdout and "most typical" in table.stdout
    assert "sentence number" in table.stdout
    # the label drives filters
    cnt = cli("points", "count", "an", "--filter", '{"key": "topic", "match": 0}', "-o", "json",
              host=srv.target)
    assert json.loads(cnt.stdout)["count"] == res["sizes"][0]


def test_kmeans_bad_input_is_one_line(srv):
    one_line_error(cli("kmeans", "an", "-k", "500", host=srv.target), "INVALID_ARGUMENT", "k=500")
    one_line_error(cli("kmeans", "nope", "-k", "2", host=srv.target), "NOT_FOUND")
    one_line_error(cli("kmeans", "an", "-k", "2", "--filter", '{"key": "lang", "match": "fr"}',
                       host=srv.target), "FAILED_PRECONDITION")
    bad = cli("kmeans", "an", host=srv.target)
    assert bad.returncode == 2 and "-k" in bad.stderr


def test_outliers_and_duplicates(srv):
    res = run(srv, "outliers", "an", "-n", "3", "--k", "4")
    x = srv.vecs.astype(np.float64)
    sq = (x * x).sum(1)
    d = sq[:, None] + sq[None, :] - 2 * x @ x.T
    np.fill_diagonal(d, np.inf)
    ref = np.sort(d, axis=1)[:, :4].mean(1)
    want = np.argsort(-ref)[:3]
    assert [o["id"] for o in res["outliers"]] == [srv.ids[j] for j in want]
    assert res["outliers"][0]["id"] == "v007"
    np.testing.assert_allclose([o["score"] for o in res["outliers"]], ref[want], rtol=1e-4)
    en = run(srv, "outliers", "an", "-n", "2", "--filter", '{"key": "lang", "match": "en"}')
    assert en["population"] == 102 and all(int(o["id"][1:]) % 2 for o in en["outliers"]
                                           if o["id"].startswith("v"))
    cen = run(srv, "outliers", "an", "-n", "3", "--method", "centroid", "--clusters", "4")
    rows = sorted(range(len(srv.ids)), key=lambda i: (shard_of(srv.ids[i], 2), i))
    km = faiss.Kmeans(DIM, 4, niter=20, seed=1234,  # what the command runs first
                      init_method=faiss.ClusteringInitMethod_KMEANS_PLUS_PLUS)
    km.train(srv.vecs[rows])
    dist, _ = faiss.knn(srv.vecs, km.centroids, 1)
    want = np.argsort(-dist[:, 0], kind="stable")[:3]
    assert [o["id"] for o in cen["outliers"]] == [srv.ids[j] for j in want]
    np.testing.assert_allclose([o["score"] for o in cen["outliers"]], dist[want, 0], rtol=1e-4)
    dup = run(srv, "duplicates", "an", "0.01")
    pairs = {tuple(sorted((p["a"], p["b"]))) for p in dup["pairs"]}
    a, b = np.nonzero(np.triu(d < 0.01, 1))
    assert pairs == {tuple(sorted((srv.ids[i], srv.ids[j]))) for i, j in zip(a, b)}
    assert {"dup-a", "dup-b", "v003"} == set(dup["groups"][0])
    groups = cli("duplicates", "an", "0.01", "--groups", host=srv.target)
    assert groups.returncode == 0 and "dup-a, dup-b, v003" in groups.stdout
    neg = cli("duplicates", "an", "0", host=srv.target)
    one_line_error(neg, "INVALID_ARGUMENT", "threshold")


def test_map_colours_by_kmeans(srv, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "m.png"
    res = run(srv, "map", "an", "--out", str(out), "--kmeans", "4", "--sample", "150")
    assert res["points"] == 150 and res["color_by"] == "k-means cluster (k=4)"
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    both = cli("map", "an", "--out", str(out), "--kmeans", "4", "--color-by", "lang",
               host=srv.target)
    assert both.returncode == 2 and "not both" in both.stderr
