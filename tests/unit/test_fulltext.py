"""Full-text BM25 (vecdb/fulltext.py) and hybrid search (vecdb/hybrid.py, vecdb/fusion.py)
on the engine: scores against a reference BM25 written here from the documented formula,
the index following upserts, deletes, TTL expiry and reopening, and fusion."""
import math
import re
import time
from collections import Counter

import numpy as np
import pytest

from vecdb import Database, DatabaseOptions
from vecdb.errors import InvalidArgument
from vecdb.fusion import rrf

pytest.importorskip("tantivy")

K1, B = 1.2, 0.75


def tokens(text: str) -> list[str]:
    """The documented plain tokenizer: runs of letters/digits, lower-cased."""
    return [t.lower() for t in re.findall(r"[^\W_]+", text)]


def reference_bm25(docs: dict[str, str], query: str) -> dict[str, float]:
    toks = {pid: tokens(t) for pid, t in docs.items()}
    n = len(toks)
    avgdl = sum(map(len, toks.values())) / n
    df = Counter(t for ts in toks.values() for t in set(ts))
    out = {}
    for pid, ts in toks.items():
        tf, score = Counter(ts), 0.0
        for term in dict.fromkeys(tokens(query)):
            if tf[term]:
                idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
                score += idf * tf[term] * (K1 + 1) / (tf[term] + K1 * (1 - B + B * len(ts) / avgdl))
        if score > 0:
            out[pid] = score
    return out


def corpus(n: int, seed: int = 0) -> dict[str, str]:
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(60)] + ["Alpha", "beta", "GAMMA", "delta-x"]
    weights = 1.0 / np.arange(1, len(vocab) + 1)  # Zipf-like: common and rare terms
    weights /= weights.sum()
    out = {}
    for i in range(n):
        words = rng.choice(vocab, size=int(rng.integers(3, 30)), p=weights)
        out[f"d{i}"] = " ".join(words) + rng.choice(["", ".", "!", ", and"])
    return out


def make(db, name, texts: dict[str, str], full_text="plain", shards=1, dim=8, payloads=None):
    db.create_collection(name, dim=dim, full_text=full_text, shards=shards)
    rng = np.random.default_rng(1)
    ids = list(texts)
    db.upsert(name, ids, rng.standard_normal((len(ids), dim)).astype(np.float32),
              texts=[texts[i] for i in ids], payloads=payloads)
    return ids


def test_bm25_scores_equal_reference(db):
    docs = corpus(300)
    make(db, "c", docs)
    for query in ["w0", "Alpha beta", "gamma w3 w17", "delta X", "w59 w1 w1"]:
        ref = reference_bm25(docs, query)
        got = db.search("c", keywords=query, k=len(docs))[0]
        assert set(got.ids) == set(ref), query
        np.testing.assert_allclose(got.scores, [ref[i] for i in got.ids], rtol=1e-4)
        assert list(got.scores) == sorted(got.scores, reverse=True)
        top = db.search("c", keywords=query, k=5)[0]
        assert sorted(ref.values(), reverse=True)[:5] == pytest.approx(list(top.scores), rel=1e-4)


def test_bm25_scores_equal_bm25s(db):
    """An independent implementation: bm25s's Lucene variant (same idf, k1, b; fed the
    documented tokens) scores without BM25's constant (k1 + 1) factor, which Lucene
    dropped and tantivy keeps: ours = (k1 + 1) x bm25s, and the same hits."""
    bm25s = pytest.importorskip("bm25s")
    from bm25s.tokenization import Tokenized
    docs = corpus(400, seed=21)
    make(db, "c", docs)
    ids = list(docs)
    toks = [tokens(docs[i]) for i in ids]
    vocab = {w: n for n, w in enumerate(sorted({t for ts in toks for t in ts}))}
    ref = bm25s.BM25(method="lucene", k1=K1, b=B)
    ref.index(Tokenized(ids=[[vocab[t] for t in ts] for ts in toks], vocab=vocab),
              show_progress=False)
    for query in ["w0", "Alpha beta", "gamma w3 w17 w40", "delta X w1"]:
        want = ref.get_scores([t for t in dict.fromkeys(tokens(query)) if t in vocab])
        want = {ids[i]: (K1 + 1) * float(want[i]) for i in np.flatnonzero(want > 0)}
        got = db.search("c", keywords=query, k=len(docs))[0]
        assert set(got.ids) == set(want) and got.ids, query
        np.testing.assert_allclose(got.scores, [want[i] for i in got.ids], rtol=1e-4)


def test_stemming_language_and_plain(db):
    docs = {"a": "She runs every morning", "b": "A quiet library", "c": "Running shoes on sale"}
    make(db, "en", docs, full_text="english")
    make(db, "pl", docs, full_text="plain")
    assert set(db.search("en", keywords="running", k=5)[0].ids) == {"a", "c"}
    assert db.search("pl", keywords="running", k=5)[0].ids == ["c"]
    assert db.search("pl", keywords="RUNS!", k=5)[0].ids == ["a"]
    assert db.search("pl", keywords="zzz", k=5)[0].ids == []


def test_index_follows_writes_and_reopen(tmp_path):
    path = str(tmp_path / "data")
    db = Database.open(path, DatabaseOptions(background=False))
    docs = corpus(200, seed=3)
    ids = make(db, "c", docs, shards=3, payloads=[{"n": i, "m": i} for i in range(200)])
    db.create_payload_index("c", "m", "integer", wait=True)  # "m": answered by the index
    rng = np.random.default_rng(2)
    db.upsert("c", ["d5", "new"], rng.standard_normal((2, 8)).astype(np.float32),
              texts=["zebra zebra w0", "zebra"], payloads=[{"n": 5, "m": 5}, {"n": 1000, "m": 1000}])
    db.delete("c", ["d7", "d8"])
    db.upsert("c", ["d9"], rng.standard_normal((1, 8)).astype(np.float32), texts=["zebra"], ttl=1)
    docs.update({"d5": "zebra zebra w0", "new": "zebra"})
    for gone in ("d7", "d8", "d9"):
        docs.pop(gone)
    time.sleep(1.1)  # d9 expired: never a hit, before and after the expiry pass deletes it

    def check(db):
        assert sorted(db.search("c", keywords="zebra", k=10)[0].ids) == ["d5", "new"]
        w0 = {pid for pid, txt in docs.items() if "w0" in tokens(txt)}
        assert set(db.search("c", keywords="w0", k=500)[0].ids) == w0
        for field in ("n", "m"):  # evaluated on the keyword hits / the index's exact set
            for k in (500, 3):
                got = db.search("c", keywords="w0", k=k, filter={"key": field, "range": {"lt": 50}})[0]
                want = {pid for pid in w0 if pid != "new" and int(pid[1:]) < 50}
                assert len(got.ids) == min(k, len(want)) and set(got.ids) <= want
                assert all(p[field] < 50 for p in got.payloads)
    check(db)
    assert db.expire() == 1
    check(db)
    db.close()
    db = Database.open(path, DatabaseOptions(background=False))  # rebuilt from RocksDB
    try:
        check(db)
        assert db.describe_collection("c").config.full_text == "plain"
    finally:
        db.close()
    assert len(ids) == 200


def test_hybrid_rrf_equals_reference_fusion(db):
    docs = corpus(200, seed=5)
    make(db, "c", docs, shards=2)
    q = np.random.default_rng(9).standard_normal((1, 8)).astype(np.float32)
    n = 100  # hybrid.candidates(10)
    dense = db.search("c", q, k=n)[0].ids
    kw = db.search("c", keywords="Alpha w2", k=n)[0].ids
    want = rrf([dense, kw], (1.0, 1.0), 60.0)[:10]
    got = db.search("c", q, k=10, keywords="Alpha w2")[0]
    assert got.ids == [pid for pid, _ in want]
    np.testing.assert_allclose(got.scores, [s for _, s in want], rtol=1e-6)
    # by hand for the top hit: 1/(60 + rank) summed over the lists holding it
    top = got.ids[0]
    by_hand = sum(1 / (60 + lst.index(top) + 1) for lst in (dense, kw) if top in lst)
    assert got.scores[0] == pytest.approx(by_hand, rel=1e-6)
    # weighted: the keyword side alone (weight 0 on dense) gives the BM25 order
    only_kw = db.search("c", q, k=10, keywords="Alpha w2", fusion="weighted", weights=[0, 1])[0]
    assert only_kw.ids[:5] == kw[:5]


def test_hybrid_finds_rare_names_dense_misses(db):
    """Every document of a topic has nearly the same vector; only its name tells them
    apart. The dense query (the topic) ranks the named document at random among 40;
    hybrid with the name as keywords puts it first (it alone is on the keyword list, so
    under RRF it beats the dense list's best: 1/61 + 1/(60 + r) > 1/61)."""
    rng = np.random.default_rng(4)
    topics = rng.standard_normal((5, 16)).astype(np.float32)
    names = [f"Qx{i}vorn" for i in range(200)]
    vecs = topics[np.arange(200) % 5] + 0.05 * rng.standard_normal((200, 16)).astype(np.float32)
    db.create_collection("c", dim=16, full_text="english")
    db.upsert("c", names, vecs, texts=[f"The {n} pump moves water for farms" for n in names])
    dense_hits = hybrid_hits = 0
    for i in range(0, 200, 7):
        q = topics[i % 5][None]
        dense_hits += db.search("c", q, k=1)[0].ids == [names[i]]
        hybrid_hits += db.search("c", q, k=1, keywords=names[i].lower())[0].ids == [names[i]]
    assert hybrid_hits == len(range(0, 200, 7))
    assert dense_hits < hybrid_hits / 2


def test_bad_keyword_input(db):
    db.create_collection("dense", dim=4)
    make(db, "c", {"a": "x y"}, dim=4)
    q = np.ones((1, 4), np.float32)
    cases = [("dense", dict(keywords="x"), "keywords"),
             ("c", dict(keywords="  "), "keywords"),
             ("c", dict(keywords=[]), "keywords"),
             ("c", dict(keywords=["x", "y"], queries=q), "keywords"),
             ("c", dict(keywords="x", queries=q, fusion="max"), "fusion"),
             ("c", dict(keywords="x", queries=q, weights=[1, float("nan")]), "weights"),
             ("c", dict(keywords="x", queries=q, weights=[-1, 1]), "weights"),
             ("c", dict(keywords="x", queries=q, weights=[1]), "weights"),
             ("c", dict(keywords="x", queries=q, rrf_k=-3), "rrf_k")]
    for coll, kwargs, field in cases:
        with pytest.raises(InvalidArgument) as e:
            db.search(coll, **kwargs)
        assert e.value.field == field, kwargs
    with pytest.raises(InvalidArgument) as e:
        db.create_collection("bad", dim=4, full_text="klingon")
    assert e.value.field == "full_text"
    assert "bad" not in [c.name for c in db.list_collections()]


def test_snapshot_restore_keeps_keyword_search(db):
    """The restored collection's index is built from the snapshot's texts: it scores
    exactly as the reference over the live texts (the source may still count the
    deleted text in its statistics until its index merges it away)."""
    docs = corpus(150, seed=11)
    make(db, "src", docs, full_text="plain")
    db.delete("src", ["d3"])
    del docs["d3"]
    db.create_snapshot("src", "snap")
    db.restore_snapshot("snap", "copy")
    assert db.describe_collection("copy").config.full_text == "plain"
    for query in ("w1 beta", "alpha"):
        ref = reference_bm25(docs, query)
        got = db.search("copy", keywords=query, k=200)[0]
        assert set(got.ids) == set(ref) and got.ids
        np.testing.assert_allclose(got.scores, [ref[i] for i in got.ids], rtol=1e-4)


def test_keywords_on_a_text_payload_index(db, reopen):
    """keywords_field: BM25 over the strings of a payload field with a text index (a
    list's strings are one text), equal to the reference over those strings; the
    index follows payload-only updates, deletes and reopening (tested in the payload
    index's own rebuild), and fuses like the point texts."""
    docs = corpus(120, seed=7)
    titles = {pid: (txt.split(",")[0] if i % 3 else [txt[:20], "Alpha"]) for i, (pid, txt)
              in enumerate(docs.items())}
    titles["d5"] = None  # no strings: not a hit
    make(db, "c", {pid: "zzz" for pid in docs},
         payloads=[{"meta": {"title": titles[pid]}} for pid in docs])
    db.create_payload_index("c", "meta.title", "text", wait=True)
    flat = {pid: "\n".join([t] if isinstance(t, str) else t) for pid, t in titles.items() if t}

    def check(db):
        for query in ("alpha", "w0 w3", "beta GAMMA"):
            ref = reference_bm25(flat, query)
            got = db.search("c", keywords=query, keywords_field="meta.title", k=200)[0]
            assert set(got.ids) == set(ref) and got.ids, query
            np.testing.assert_allclose(got.scores, [ref[i] for i in got.ids], rtol=1e-4)
            assert db.search("c", keywords=query, k=5)[0].ids == []  # the texts are "zzz"
    check(db)
    db.update_payload("c", ids=["d1"], set={"meta": {"title": "omega omega"}})
    db.delete("c", ["d2"])
    flat["d1"] = "omega omega"
    flat.pop("d2", None)
    assert db.search("c", keywords="omega", keywords_field="meta.title", k=5)[0].ids == ["d1"]
    got = db.search("c", keywords="alpha", keywords_field="meta.title", k=200)[0].ids
    assert set(got) == set(reference_bm25(flat, "alpha"))
    q = np.ones((1, 8), np.float32)
    dense = db.search("c", q, k=100)[0].ids
    kw = db.search("c", keywords="w1", keywords_field="meta.title", k=100)[0].ids
    fused = db.search("c", q, k=10, keywords="w1", keywords_field="meta.title")[0]
    assert fused.ids == [pid for pid, _ in rrf([dense, kw], (1.0, 1.0), 60.0)[:10]]
    db = reopen(db)  # rebuilt with the payload indexes: statistics over the live strings
    try:
        for query in ("alpha", "omega w3"):
            ref = reference_bm25(flat, query)
            got = db.search("c", keywords=query, keywords_field="meta.title", k=200)[0]
            assert set(got.ids) == set(ref), query
            np.testing.assert_allclose(got.scores, [ref[i] for i in got.ids], rtol=1e-4)
    finally:
        db.close()


def test_keywords_field_errors(db):
    make(db, "c", {"a": "x"}, dim=4)
    db.create_payload_index("c", "tag", "keyword", wait=True)
    db.create_collection("dense", dim=4)
    db.create_payload_index("dense", "title", "text", wait=True)
    cases = [("c", dict(keywords="x", keywords_field="tag"), "keywords_field"),
             ("c", dict(keywords="x", keywords_field="nope"), "keywords_field"),
             ("c", dict(keywords_field="tag"), "keywords_field"),
             ("dense", dict(keywords="x", keywords_field="title"), "keywords")]
    for coll, kwargs, field in cases:
        with pytest.raises(InvalidArgument) as e:
            db.search(coll, **kwargs)
        assert e.value.field == field, kwargs
    assert db.search("c", keywords="x", keywords_field="$text", k=1)[0].ids == ["a"]
