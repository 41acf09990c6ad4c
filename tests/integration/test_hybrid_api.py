"""Keyword (BM25) and hybrid search through the real servers: the full_text option and
search(keywords=...) over gRPC (sync and aio SDK, threaded and aio server), vecdbctl, bad
input named by field, and SIGKILL of a real server process while it ingests texts (the
full-text index after restart holds exactly the stored texts)."""
from __future__ import annotations

import asyncio
import json
import random
import re
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from vecdb_client._proto.vecdb.v1 import points_pb2 as ppb
from vecdb_client._proto.vecdb.v1 import types_pb2 as tpb

from harness import InProcessServer
from test_cli import cli
from vecdb.fusion import rrf
from vecdb_client import AsyncClient, InvalidArgumentError, UnavailableError

pytest.importorskip("tantivy")

ROOT = Path(__file__).resolve().parents[2]
DIM = 8
WORDS = ["pump", "valve", "engine", "manual", "water", "farm", "spare", "part", "motor", "seal"]


def texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randrange(3, 12))) + f" code{i}x" for i in range(n)]


@pytest.fixture(scope="module")
def hsrv(tmp_path_factory):
    srv = InProcessServer(tmp_path_factory.mktemp("hybrid") / "data")
    with srv.client() as c:
        c.create_collection("h", DIM, full_text="english", shards=2)
        n = 300
        vecs = np.random.default_rng(0).standard_normal((n, DIM)).astype(np.float32)
        c.upsert("h", [f"p{i}" for i in range(n)], vecs, texts=texts(n, 1),
                 payloads=[{"n": i} for i in range(n)])
        c.create_collection("dense", DIM)
    yield srv
    srv.stop()


def test_keyword_and_hybrid_search_over_grpc(hsrv):
    with hsrv.client() as c:
        assert c.describe_collection("h").config.full_text == "english"
        assert c.describe_collection("dense").config.full_text == ""
        hits = c.search("h", keywords="code17x", k=5)
        assert [h.id for h in hits] == ["p17"] and hits[0].payload == {"n": 17}
        # stemming: "pumps" finds texts holding "pump"; scores best first
        hits = c.search("h", keywords="pumps", k=300, with_payload=False)
        want = {f"p{i}" for i, t in enumerate(texts(300, 1)) if "pump" in t.split()}
        assert {h.id for h in hits} == want
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        # the filter applies to the keyword side
        flt = {"key": "n", "range": {"lt": 100}}
        assert {h.id for h in c.search("h", keywords="pumps", k=300, filter=flt)} == \
            {p for p in want if int(p[1:]) < 100}
        # hybrid = a reference RRF over the two lists the server returns separately
        q = np.random.default_rng(5).standard_normal(DIM).astype(np.float32)
        dense = [h.id for h in c.search("h", q, k=100, filter=flt)]
        kw = [h.id for h in c.search("h", keywords="valve seal", k=100, filter=flt)]
        got, plan = c.search("h", q, k=10, keywords="valve seal", filter=flt, explain=True)
        want_rrf = rrf([dense, kw], (1.0, 1.0), 60.0)[:10]
        assert [h.id for h in got] == [pid for pid, _ in want_rrf]
        assert [h.score for h in got] == pytest.approx([s for _, s in want_rrf], rel=1e-6)
        assert "fusion: rrf" in plan and all(h.payload["n"] < 100 for h in got)
        # explain: every hit's place in each list, as the separate searches rank them
        for h in got:
            d = f"#{dense.index(h.id) + 1}" if h.id in dense else "-"
            w = f"#{kw.index(h.id) + 1}" if h.id in kw else "-"
            assert re.search(rf"\b{h.id} \(dense {d}[^,]*, keywords {w}[^)]*\)", plan), (h.id, plan)
        # batches: one keyword query per dense query
        both = c.search("h", vectors=np.stack([q, -q]), k=3, keywords=["code5x", "code6x"],
                        fusion="weighted", weights=[0.2, 1.0])
        assert [r[0].id for r in both] == ["p5", "p6"]


@pytest.mark.parametrize("kwargs,field", [
    ({"collection": "dense", "keywords": "pump"}, "keywords"),
    ({"keywords": "   "}, "keywords"),
    ({"keywords": ["a", "b"], "vector": [1.0] * DIM}, "keywords"),
    ({"keywords": "pump", "vector": [1.0] * DIM, "fusion": "max"}, "fusion"),
    ({"keywords": "pump", "vector": [1.0] * DIM, "weights": [1, float("nan")]}, "weights"),
    ({"keywords": "pump", "vector": [1.0] * DIM, "weights": [-1, 1]}, "weights"),
    ({"keywords": "pump", "vector": [1.0] * DIM, "rrf_k": -1}, "rrf_k"),
    ({"keywords": "pump", "group_by": "n"}, "keywords"),
])
def test_bad_keyword_input_is_invalid_argument(hsrv, kwargs, field):
    with hsrv.client() as c:
        coll = kwargs.pop("collection", "h")
        with pytest.raises(InvalidArgumentError) as ei:
            c.search(coll, **kwargs)
        assert ei.value.field == field and "Traceback" not in str(ei.value)
        with pytest.raises(InvalidArgumentError) as ei:
            c.create_collection("bad", DIM, full_text="klingon")
        assert ei.value.field == "full_text"
        assert "bad" not in [x.name for x in c.list_collections()]
        assert c.search("h", keywords="code3x", k=1)[0].id == "p3"  # still serving


def test_vecdbctl_full_text_and_keywords(hsrv):
    out = cli("collections", "create", "ck", "--dim", "4", "--full-text", "plain", "-o", "json",
              host=hsrv.target)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["full_text"] == "plain"
    out = cli("search", "h", "--keywords", "code42x", "--k", "3", "-o", "json", host=hsrv.target)
    assert out.returncode == 0, out.stderr
    assert [h["id"] for h in json.loads(out.stdout)["results"][0]] == ["p42"]
    out = cli("search", "h", "--vector", json.dumps([0.5] * DIM), "--keywords", "code42x",
              "--fusion", "weighted", "--weights", "0,1", "--explain", "-o", "json",
              host=hsrv.target)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["results"][0][0]["id"] == "p42" and "fusion: weighted" in got["plan"]
    bad = cli("search", "dense", "--keywords", "pump", host=hsrv.target)
    assert bad.returncode != 0 and "keywords" in bad.stderr and "Traceback" not in bad.stderr


def test_async_client_on_aio_server(spawn):
    srv = spawn("--server-mode", "aio")

    async def run():
        async with AsyncClient(srv.target) as c:
            await c.create_collection("a", DIM, full_text="plain")
            await c.upsert("a", ["x", "y"], np.eye(2, DIM, dtype=np.float32),
                           texts=["alpha beta", "gamma"])
            kw = await c.search("a", keywords="gamma")
            hy = await c.search("a", [1.0] + [0.0] * (DIM - 1), keywords="gamma", k=2)
            return [h.id for h in kw], [h.id for h in hy]
    assert asyncio.run(run()) == (["y"], ["y", "x"])


def test_sigkill_during_ingest_restores_the_text_index(spawn):
    """Text batches are acknowledged one by one, deletes interleaved; the server is
    SIGKILLed at a random moment. After a restart the keyword index holds exactly the
    stored points' texts: every stored point is found by its unique code, deleted ones
    by none, and a common word finds exactly the stored texts holding it."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    srv = spawn("--checkpoint-interval-s", "0.5", "--checkpoint-every-ops", "5")
    n, batch = 6000, 200
    corpus = texts(n, 9)
    vecs = np.random.default_rng(3).standard_normal((n, DIM)).astype(np.float32)
    acked: list[int] = []
    with srv.client(max_retries=0) as c:
        c.create_collection("crash", DIM, full_text="english")

        def ingest():
            try:
                for lo in range(0, n, batch):
                    ids = [f"k{i}" for i in range(lo, lo + batch)]
                    c.upsert("crash", ids, vecs[lo:lo + batch], texts=corpus[lo:lo + batch])
                    c.delete("crash", ids[:10])
                    acked.append(lo + batch)
            except UnavailableError:
                pass
        t = threading.Thread(target=ingest)
        t.start()
        while len(acked) < 3 + rng.randrange(15):
            assert t.is_alive() or len(acked) * batch >= n, srv.log()
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.2))
        srv.kill()
        t.join()
    durable = acked[-1]
    again = spawn(data_dir=srv.data_dir)
    with again.client() as c:
        assert c.describe_collection("crash").config.full_text == "english"
        stored = {p.id for p in c.get("crash", [f"k{i}" for i in range(n)])}
        acked_live = {f"k{i}" for i in range(durable) if i % batch >= 10}
        assert acked_live <= stored, f"seed={seed}"
        deleted = {f"k{i}" for i in range(durable) if i % batch < 10}  # acked deletes
        assert not deleted & stored, f"seed={seed}"
        for pid in sorted(stored)[::23]:
            assert [h.id for h in c.search("crash", keywords=f"code{pid[1:]}x", k=3)] == [pid]
        for pid in [f"k{i}" for i in range(0, durable, batch)]:  # deleted: no hit
            assert c.search("crash", keywords=f"code{pid[1:]}x", k=3) == []
        want = {p for p in stored if "motor" in corpus[int(p[1:])].split()}
        got = c.search("crash", keywords="motors", k=10_000, with_payload=False)
        assert {h.id for h in got} == want, f"seed={seed}"


def test_minilm_hybrid_finds_catalogue_codes_dense_misses(hsrv):
    """The shipped MiniLM texts (tests/data/topics.jsonl), each given a random catalogue
    code. Asked for "catalogue number <code>", dense search alone ranks many of the
    coded documents below 10 (MiniLM has no meaning for the code); hybrid search, the
    same text embedded and used as keywords, puts every one in the top 10."""
    pytest.importorskip("sentence_transformers", reason="needs vecdb[encoders]")
    docs = [json.loads(line) for line in (ROOT / "tests" / "data" / "topics.jsonl").open()]
    rng = random.Random(1)
    letters = "BCDFGHJKLMNPQRSTVWXZ"
    codes = [f"{rng.choice(letters)}{rng.choice(letters)}{rng.randrange(1000, 9999)}" for _ in docs]
    with hsrv.client() as c:
        c.create_collection("kb", encoder="minilm", full_text="plain")
        c.upsert("kb", [d["id"] for d in docs],
                 texts=[f"{d['text']} Catalogue number {code}." for d, code in zip(docs, codes)])
        dense_missed = 0
        for i in range(0, len(docs), 10):
            q, want = f"catalogue number {codes[i]}", docs[i]["id"]
            dense = [h.id for h in c.search("kb", text=q, k=10, with_payload=False)]
            dense_missed += want not in dense
            hybrid = c.search("kb", text=q, keywords=q, fusion="weighted", k=10, with_payload=False)
            assert want in [h.id for h in hybrid], q
            # the code alone as keywords: it is the whole keyword list, so RRF keeps it
            # within the top 2 (tied with the dense list's best, which goes first)
            rrf_hits = c.search("kb", text=q, keywords=codes[i], k=2, with_payload=False)
            assert want in [h.id for h in rrf_hits], q
        assert dense_missed >= 5


def test_minilm_hybrid_finds_rare_proper_names_dense_misses(hsrv):
    """The shipped MiniLM texts, each signed by a made-up proper name ("Written by
    Velthamir."). Asked for "the article by <name>", dense search alone ranks the signed
    text below 10 for about half the names (MiniLM knows nothing of them); hybrid search,
    the query embedded and the name as keywords (RRF), puts every one in the top 10."""
    pytest.importorskip("sentence_transformers", reason="needs vecdb[encoders]")
    docs = [json.loads(line) for line in (ROOT / "tests" / "data" / "topics.jsonl").open()]
    rng = random.Random(7)
    syllables = ["ka", "vel", "dor", "mir", "tha", "zun", "rel", "quo", "bris", "an", "ox", "yl"]
    names = ["".join(rng.choice(syllables) for _ in range(3)).capitalize() for _ in docs]
    with hsrv.client() as c:
        c.create_collection("kbn", encoder="minilm", full_text="english")
        c.upsert("kbn", [d["id"] for d in docs],
                 texts=[f"{d['text']} Written by {name}." for d, name in zip(docs, names)])
        dense_missed = 0
        for i in range(0, len(docs), 5):
            q, want = f"the article by {names[i]}", docs[i]["id"]
            dense_missed += want not in [h.id for h in c.search("kbn", text=q, k=10,
                                                                 with_payload=False)]
            hybrid = c.search("kbn", text=q, keywords=names[i], k=10, with_payload=False)
            assert want in [h.id for h in hybrid], q
        assert dense_missed >= 10


def test_sparse_vectors_over_grpc(hsrv):
    """Upserts carrying sparse vectors (streamed in several batches), exact dot-product
    search equal to a numpy reference, fused with keywords, and bad input by field."""
    rng = np.random.default_rng(12)
    n, sdim = 2500, 5000
    sp = []
    for _ in range(n):
        idx = np.sort(rng.choice(300, size=8, replace=False))
        sp.append((idx.tolist(), rng.uniform(0.1, 1.0, 8).tolist()))
    dense_sp = np.zeros((n, sdim), np.float32)
    for i, (idx, vals) in enumerate(sp):
        dense_sp[i, idx] = vals
    with hsrv.client(chunk_points=1000) as c:
        info = c.create_collection("sp", DIM, sparse_dim=sdim, full_text="plain")
        assert info.config.sparse_dim == sdim
        c.upsert("sp", [f"s{i}" for i in range(n)],
                 rng.standard_normal((n, DIM)).astype(np.float32),
                 texts=[f"item code{i}x" for i in range(n)], sparse=sp)
        for qi in (3, 77, 1999):
            q_idx, q_vals = sp[qi][0][:4], [1.0, 0.5, 0.25, 2.0]
            want = dense_sp[:, q_idx] @ np.array(q_vals, np.float32)
            hits = c.search("sp", sparse=(q_idx, q_vals), k=10, with_payload=False)
            order = np.lexsort((np.arange(n), -want))[:10]
            assert [h.score for h in hits] == pytest.approx(want[order].tolist(), rel=1e-5)
            assert hits[0].score == pytest.approx(float(want.max()), rel=1e-5)
        both = c.search("sp", keywords="code5x", sparse={"indices": sp[5][0], "values": sp[5][1]},
                        k=1)
        assert both[0].id == "s5"
        for kwargs, field in [(dict(sparse=([9, 2], [1.0, 1.0])), "sparse[0].indices"),
                              (dict(sparse=([sdim], [1.0])), "sparse[0].indices"),
                              (dict(sparse=([1], [float("inf")])), "sparse[0].values")]:
            with pytest.raises(InvalidArgumentError) as ei:
                c.search("sp", **kwargs)
            assert ei.value.field == field
        with pytest.raises(InvalidArgumentError) as ei:
            c.upsert("sp", ["bad1", "bad2"], np.ones((2, DIM), np.float32),
                     sparse=[([1], [1.0]), ([4, 4], [1.0, 1.0])])
        assert ei.value.field == "sparse[1].indices"
        assert c.get("sp", ["bad1", "bad2"]) == []
    out = cli("search", "sp", "--sparse", json.dumps({"indices": sp[8][0], "values": sp[8][1]}),
              "--k", "1", "-o", "json", host=hsrv.target)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["results"][0][0]["id"] == "s8"
    out = cli("collections", "create", "sp2", "--dim", "4", "--sparse-dim", "10", "-o", "json",
              host=hsrv.target)
    assert out.returncode == 0 and json.loads(out.stdout)["sparse_dim"] == 10, out.stderr


def test_keywords_on_a_payload_text_index_over_grpc(hsrv):
    """keywords_field: the keywords score a payload field with a text index (here the
    titles hold the codes, the texts do not), alone and fused; bad fields by name."""
    with hsrv.client() as c:
        c.create_collection("titled", DIM, full_text="english")
        n = 50
        c.upsert("titled", [f"t{i}" for i in range(n)],
                 np.random.default_rng(6).standard_normal((n, DIM)).astype(np.float32),
                 texts=["a plain manual"] * n,
                 payloads=[{"title": f"Pump {i} model tcode{i}x"} for i in range(n)])
        c.create_payload_index("titled", "title", "text", wait=True)
        hits = c.search("titled", keywords="tcode7x", keywords_field="title", k=3)
        assert [h.id for h in hits] == ["t7"]
        assert c.search("titled", keywords="tcode7x", k=3) == []  # not in the texts
        assert len(c.search("titled", keywords="pumps", keywords_field="title", k=100)) == n
        fused = c.search("titled", [1.0] * DIM, keywords="tcode9x", keywords_field="title",
                         fusion="weighted", weights=[0, 1], k=1)
        assert [h.id for h in fused] == ["t9"]
        for kwargs in (dict(keywords="x", keywords_field="nope"), dict(keywords_field="title")):
            with pytest.raises(InvalidArgumentError) as ei:
                c.search("titled", **kwargs)
            assert ei.value.field == "keywords_field"
        raw = ppb.SearchRequest(collection="titled", keywords_field="title", k=3,
                                vectors=tpb.Vectors(count=1, dim=DIM,
                                                    data=np.ones(DIM, np.float32).tobytes()))
        with pytest.raises(grpc.RpcError) as ei:  # a raw request: not ignored either
            c._points.Search(raw)
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "keywords_field" in ei.value.details()
    out = cli("search", "titled", "--keywords", "tcode3x", "--keywords-field", "title", "-o", "json",
              host=hsrv.target)
    assert out.returncode == 0, out.stderr
    assert [h["id"] for h in json.loads(out.stdout)["results"][0]] == ["t3"]
