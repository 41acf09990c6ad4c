"""Keyword (BM25) and hybrid search against dense search on the same data (a benchmark,
not a test).

    python bench/hybrid_bench.py                    # 20k points x 128, 2 shards
    python bench/hybrid_bench.py --size 100000 --queries 500

One in-process Database (background maintenance off): a ``full_text="english"``
collection, clustered vectors, texts of 8-40 words drawn Zipf-like from a 5000-word
vocabulary plus a unique code per point. One query at a time, side by side:

* ``dense``: exact search of the query vector (the reference);
* ``keywords``: BM25 over 3 words drawn like the texts;
* ``keywords (code)``: BM25 of one point's unique code (a rare term);
* ``hybrid rrf`` / ``hybrid weighted``: the dense and keyword retrievers fused;
* ``hybrid + filter``: rrf with a payload filter matching half of the points, evaluated
  on the candidates (no payload index); ``+ indexed filter``: the same on an indexed field.

* ``sparse``: exact dot product of a 20-entry sparse query over sparse vectors of
  ~120 entries (a 30 000-word vocabulary, Zipf-like, SPLADE-shaped); ``hybrid
  dense+sparse``: the two fused (rrf).

Also: ingest time with and without the text index and sparse vectors (the same upserts
into a collection without ``full_text`` and without them); a one-point upsert followed by
a keyword search (the search commits the on-disk text index) beside one followed by a
dense search, and the same on a bare text index on disk and in RAM; and the cost of
opening: the text index from its checkpoint, and rebuilt (its markers removed).
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vecdb import Database, DatabaseOptions  # noqa: E402
from vecdb.fulltext import MARKER, TextIndex  # noqa: E402
from vecdb.types import SearchParams  # noqa: E402


def corpus(n: int, rng) -> list[str]:
    vocab = np.array([f"w{i}" for i in range(5000)])
    p = 1.0 / np.arange(1, len(vocab) + 1)
    p /= p.sum()
    lens = rng.integers(8, 41, n)
    words = rng.choice(vocab, size=int(lens.sum()), p=p)
    out, at = [], 0
    for i, ln in enumerate(lens.tolist()):
        out.append(" ".join(words[at:at + ln]) + f" code{i}x")
        at += ln
    return out


def sparse_vectors(n: int, nnz: int, rng) -> list[tuple[np.ndarray, np.ndarray]]:
    p = 1.0 / np.arange(1, 30_001) ** 0.8
    p /= p.sum()
    out = []
    for _ in range(n):
        idx = np.unique(rng.choice(30_000, size=nnz, p=p))
        out.append((idx, rng.uniform(0.05, 2.0, len(idx))))
    return out


def qps(fn, queries) -> float:
    fn(queries[0])  # warm (the first keyword search commits the index)
    t0 = time.perf_counter()
    for q in queries:
        fn(q)
    return len(queries) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--k", type=int, default=10)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((64, a.dim)).astype(np.float32)
    vecs = centers[rng.integers(0, 64, a.size)] + 0.4 * rng.standard_normal((a.size, a.dim)).astype(np.float32)
    texts = corpus(a.size, rng)
    ids = [f"p{i}" for i in range(a.size)]
    pays = [{"half": i % 2, "h2": i % 2} for i in range(a.size)]
    with tempfile.TemporaryDirectory() as tmp:
        db = Database.open(tmp, DatabaseOptions(background=False))
        ingest = {}
        sps = sparse_vectors(a.size, 150, rng)
        for name, ft in (("plain", None), ("text", "english")):
            db.create_collection(name, dim=a.dim, index="flat", shards=a.shards, full_text=ft,
                                 payload_indexes={"h2": "integer"}, sparse_dim=30_000)
            t0 = time.perf_counter()
            for lo in range(0, a.size, 1000):
                db.upsert(name, ids[lo:lo + 1000], vecs[lo:lo + 1000], pays[lo:lo + 1000],
                          texts[lo:lo + 1000], sparse=sps[lo:lo + 1000] if ft else None)
            ingest[name] = time.perf_counter() - t0
        n = a.queries
        qv = centers[rng.integers(0, 64, n)] + 0.4 * rng.standard_normal((n, a.dim)).astype(np.float32)
        words = [" ".join(t.split()[:3]) for t in rng.choice(texts, n)]
        codes = [f"code{i}x" for i in rng.integers(0, a.size, n)]
        k, ex = a.k, SearchParams(exact=True)
        sq = sparse_vectors(n, 20, rng)
        half, h2 = {"key": "half", "match": 1}, {"key": "h2", "match": 1}
        rows = [
            ("dense", lambda i: db.search("text", qv[i:i + 1], k, ex, with_payload=False)),
            ("keywords", lambda i: db.search("text", k=k, keywords=words[i], with_payload=False)),
            ("keywords (code)", lambda i: db.search("text", k=k, keywords=codes[i], with_payload=False)),
            ("hybrid rrf", lambda i: db.search("text", qv[i:i + 1], k, ex, with_payload=False,
                                               keywords=words[i])),
            ("hybrid weighted", lambda i: db.search("text", qv[i:i + 1], k, ex, with_payload=False,
                                                    keywords=words[i], fusion="weighted")),
            ("dense + filter", lambda i: db.search("text", qv[i:i + 1], k, ex, with_payload=False,
                                                   filter=half)),
            ("hybrid + filter", lambda i: db.search("text", qv[i:i + 1], k, ex, with_payload=False,
                                                    keywords=words[i], filter=half)),
            ("dense + indexed filter", lambda i: db.search("text", qv[i:i + 1], k, ex,
                                                           with_payload=False, filter=h2)),
            ("hybrid + indexed filter", lambda i: db.search("text", qv[i:i + 1], k, ex,
                                                            with_payload=False, keywords=words[i],
                                                            filter=h2)),
            ("sparse", lambda i: db.search("text", k=k, sparse=sq[i], with_payload=False)),
            ("hybrid dense+sparse", lambda i: db.search("text", qv[i:i + 1], k, ex,
                                                        with_payload=False, sparse=sq[i])),
        ]
        base = None
        print(f"{a.size} points x {a.dim}, {a.shards} shards, k={k}, {n} queries one at a time")
        print(f"{'search':<24}{'QPS':>10}{'vs dense':>10}")
        for name, fn in rows:
            r = qps(fn, range(n))
            base = base or r
            print(f"{name:<24}{r:>10.0f}{r / base:>10.2f}")
        print(f"ingest: {ingest['plain']:.2f} s without the text index and sparse vectors, "
              f"{ingest['text']:.2f} s with ({ingest['text'] / ingest['plain']:.2f}x)")
        write_then_search(db, a.dim, rng, tmp)
        db.close()
        for how in ("its checkpoint", "rebuilt, markers removed"):
            if how.startswith("rebuilt"):
                for marker in glob.glob(os.path.join(tmp, "**", MARKER), recursive=True):
                    os.remove(marker)
            t0 = time.perf_counter()
            db = Database.open(tmp, DatabaseOptions(background=False))
            db.search("text", k=1, keywords="w1")
            print(f"open + first keyword search, the text index from {how}: "
                  f"{time.perf_counter() - t0:.2f} s (the sparse index is rebuilt either way)")
            db.close()


def write_then_search(db, dim: int, rng, tmp: str, rounds: int = 50) -> None:
    """Each round: upsert one point with a text, then search (the keyword search commits)."""
    vec = rng.standard_normal((1, dim)).astype(np.float32)
    for kind in ("dense", "keywords"):
        t0 = time.perf_counter()
        for i in range(rounds):
            db.upsert("text", [f"new{kind}{i}"], vec, texts=[f"fresh{i} w1"])
            if kind == "dense":
                db.search("text", vec, k=10, with_payload=False)
            else:
                db.search("text", k=10, keywords=f"fresh{i}", with_payload=False)
        print(f"upsert 1 + {kind} search: {(time.perf_counter() - t0) / rounds * 1e3:.1f} ms a round")
    # a bare text index in RAM and one on disk, rounds interleaved (the VM's disk varies)
    bare = {"in RAM": TextIndex("english"), "on disk": TextIndex("english", os.path.join(tmp, "bare"))}
    took: dict = {name: [] for name in bare}
    for i in range(4 * rounds):
        for name, index in bare.items():
            t0 = time.perf_counter()
            index.apply(np.zeros(0, np.int64), np.array([i], np.int64), [f"fresh{i} w1"], i + 1)
            index.search([f"fresh{i}"], 10, None, np.zeros(0, np.int64))
            took[name].append((time.perf_counter() - t0) * 1e3)
    for name, index in bare.items():
        ms = np.array(took[name])
        print(f"bare text index {name}: apply 1 + search, median {np.median(ms):.1f} ms a round "
              f"(p90 {np.percentile(ms, 90):.1f})")
        index.close()


if __name__ == "__main__":
    main()
