"""The GPU mirrors, run on CPU: TorchFlat on torch's "cpu" device, FaissFlatMirror and
AnnMirror over CPU FAISS indexes, each checked against FAISS IndexFlat (brute force)
through the same adds, deletes and replacements."""
from __future__ import annotations

import faiss
import numpy as np
import pytest

from vecdb.gpu_mirrors import GPU_MAX_K, AnnMirror, FaissFlatMirror, Rows
from vecdb.index import faiss_metric, new_exact, prepare, snapshot
from vecdb.torch_flat import TorchFlat, capacity_for

DIM = 24
METRICS = ("ip", "cosine", "l2")


def data(n, seed=0, dim=DIM):
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


class Pair:
    """A mirror and the FAISS reference (IndexIDMap2 over IndexFlat) fed the same ops."""

    def __init__(self, mirror, metric):
        self.mirror, self.metric = mirror, metric
        self.ref = new_exact(DIM, metric)
        self.next = 1

    def add(self, vecs):
        labels = np.arange(self.next, self.next + len(vecs), dtype=np.int64)
        self.next += len(vecs)
        self.apply(np.zeros(0, np.int64), labels, vecs)
        return labels

    def apply(self, removed, added, vecs):
        vecs = prepare(vecs, self.metric)
        if len(removed):
            self.ref.remove_ids(removed)
        if len(added):
            self.ref.add_with_ids(vecs, added)
        self.mirror.apply(removed, added, vecs)

    def replace(self, old, vecs):
        added = np.arange(self.next, self.next + len(vecs), dtype=np.int64)
        self.next += len(vecs)
        self.apply(old, added, vecs)
        return added

    def check(self, queries, k, atol=1e-4):
        q = prepare(queries, self.metric)
        kk = min(k, self.ref.ntotal)
        if kk == 0:
            s, lab = self.mirror.search(q, k)
            assert (lab == -1).all() and lab.shape == (len(q), k)
            return
        ref_s, ref_l = self.ref.search(q, kk)
        got = self.mirror.search(q, kk)
        if got is None:  # past the GPU top-k limit: the shard searches on the CPU
            assert isinstance(self.mirror, FaissFlatMirror)
            assert kk + self.mirror.dead > GPU_MAX_K
            return
        got_s, got_l = got
        assert got_s.shape == ref_s.shape == got_l.shape
        assert got_s.dtype == np.float32 and got_l.dtype == np.int64
        np.testing.assert_allclose(got_s, ref_s, rtol=1e-4, atol=atol)
        # ids equal wherever the reference score is not tied with a neighbour
        gap = np.abs(np.diff(ref_s, axis=1))
        untied = np.ones_like(ref_l, bool)
        untied[:, 1:] &= gap > 10 * atol
        untied[:, :-1] &= gap > 10 * atol
        assert (got_l[untied] == ref_l[untied]).all()
        live = set(self.ref_labels())
        assert set(got_l[got_l >= 0].ravel().tolist()) <= live

    def ref_labels(self):
        return snapshot(self.ref)[0].tolist()


def torch_mirror(metric, **kw):
    return TorchFlat(DIM, metric, "cpu", **kw)


def faiss_mirror(metric):
    return FaissFlatMirror(lambda: faiss.IndexFlat(DIM, faiss_metric(metric)), DIM, metric, False)


def make(kind, metric, **kw):
    if kind == "torch":
        return Pair(torch_mirror(metric, **kw), metric)
    return Pair(faiss_mirror(metric), metric)


def merge_now(p):
    """The background merge of a FAISS flat mirror, in one go (snapshot = the reference)."""
    m = p.mirror
    m.pending = []
    labels, vecs = snapshot(p.ref)
    order = np.argsort(labels)
    p.mirror = m.merged(m.new_base(labels[order], vecs[order]))
    m.close()


@pytest.mark.parametrize("kind", ["torch", "faiss"])
@pytest.mark.parametrize("metric", METRICS)
def test_mirror_equals_faiss_flat_through_adds_deletes_replacements(kind, metric):
    p = make(kind, metric)
    q = data(7, seed=99)
    p.check(q, 10)  # empty
    labels = p.add(data(3000, seed=1))
    p.check(q, 10)
    p.check(q, 3000)  # k = everything
    p.apply(labels[:500:3], np.zeros(0, np.int64), np.zeros((0, DIM), np.float32))  # deletes
    p.check(q, 25)
    new = p.replace(labels[1000:1400], data(400, seed=2))  # replacements: new labels, old gone
    p.check(q, 25)
    p.add(data(1500, seed=3))
    p.apply(new[:300], np.zeros(0, np.int64), np.zeros((0, DIM), np.float32))
    p.check(q, 50)
    # delete most of it: compaction kicks in and results stay exact
    p.apply(np.array(p.ref_labels()[:-40], np.int64), np.zeros(0, np.int64),
            np.zeros((0, DIM), np.float32))
    if kind == "torch":
        assert p.mirror.rows.dead < p.mirror.rows.n or p.mirror.rows.n == 40
    else:  # masked until the background merge: past the GPU's k limit it is the CPU's turn
        assert p.mirror.needs_merge() and p.mirror.search(prepare(q, metric), 10) is None
        merge_now(p)
        assert p.mirror.rows == 40 and p.mirror.dead == 0
    p.check(q, 10)
    p.check(q, 100)  # more than are left: -1 padded like FAISS
    got_s, got_l = p.mirror.search(prepare(q, metric), 100)
    assert (got_l[:, 40:] == -1).all() and np.isnan(got_s[:, 40:]).all()


@pytest.mark.parametrize("metric", METRICS)
def test_torch_chunked_search_equals_one_block(metric):
    p = Pair(torch_mirror(metric, max_score_elems=3 * 257), metric)  # ~257 rows a chunk
    p.add(data(2000, seed=4))
    p.apply(np.arange(1, 2001, 7, dtype=np.int64), np.zeros(0, np.int64), np.zeros((0, DIM), np.float32))
    p.check(data(3, seed=5), 20)
    p.check(data(3, seed=5), 1)


@pytest.mark.parametrize("metric", METRICS)
def test_torch_fp16_recall_at_10(metric):
    rng = np.random.default_rng(6)
    centers = rng.standard_normal((32, 64)).astype(np.float32)
    base = centers[rng.integers(0, 32, 20000)] + 0.35 * rng.standard_normal((20000, 64)).astype(np.float32)
    queries = prepare(base[:200] + 0.1 * rng.standard_normal((200, 64)).astype(np.float32), metric)
    base = prepare(base, metric)
    mirror = TorchFlat(64, metric, "cpu", fp16=True)
    labels = np.arange(1, 20001, dtype=np.int64)
    mirror.apply(np.zeros(0, np.int64), labels, base)
    assert mirror.data.dtype.itemsize == 2
    ref = faiss.IndexFlat(64, faiss_metric(metric))
    ref.add(base)
    _, ref_rows = ref.search(queries, 10)
    got_s, got_l = mirror.search(queries, 10)
    recall = np.mean([len(set(ref_rows[i] + 1) & set(got_l[i])) / 10 for i in range(len(queries))])
    assert recall >= 0.99, recall
    ref_s, _ = ref.search(queries, 10)
    np.testing.assert_allclose(got_s, ref_s, rtol=2e-2, atol=2e-2)


def test_torch_planned_bytes_predict_the_allocation():
    m = torch_mirror("l2")
    plans = []
    rng = np.random.default_rng(7)
    next_label = 1
    for step in range(40):
        live = m.rows.labels[:m.rows.n][m.rows.alive[:m.rows.n]]
        removed = rng.choice(live, min(len(live), int(rng.integers(0, 400))), replace=False) \
            if len(live) else np.zeros(0, np.int64)
        removed = np.sort(removed).astype(np.int64)
        n_add = int(rng.integers(0, 900))
        added = np.arange(next_label, next_label + n_add, dtype=np.int64)
        next_label += n_add
        planned = m.planned_bytes(len(removed), n_add)
        m.apply(removed, added, data(n_add, seed=step))
        assert m.nbytes == planned
        assert m.data.shape[0] == m.cap and m.cap >= m.rows.n
        plans.append(planned)
    assert max(plans) > min(plans)
    assert capacity_for(0) == 1024 and capacity_for(10_000) == 12_500


def test_rows_refuse_labels_out_of_order():
    r = Rows()
    r.append(np.array([5, 9], np.int64))
    with pytest.raises(ValueError):
        r.append(np.array([7], np.int64))
    with pytest.raises(ValueError):
        r.append(np.array([12, 11], np.int64))
    assert r.find(np.array([9, 5, 6, 100], np.int64)).tolist() == [1, 0]


@pytest.mark.parametrize("metric", METRICS)
def test_ann_mirror_filters_deletes_and_follows_adds(metric):
    vecs = prepare(data(4000, seed=8), metric)
    labels = np.arange(1, 4001, dtype=np.int64)
    quant = faiss.IndexFlat(DIM, faiss_metric(metric))
    ivf = faiss.IndexIVFFlat(quant, DIM, 16, faiss_metric(metric))
    ivf.train(vecs)
    ivf.add_with_ids(vecs, labels)
    mirror = AnnMirror(faiss.clone_index(ivf), "ivf_flat", None, None, DIM * 4 + 8)
    params = faiss.SearchParametersIVF(nprobe=16)  # every list: exact
    q = prepare(data(5, seed=9), metric)
    gone = labels[::5]
    ivf.remove_ids(gone)
    mirror.apply(gone, np.zeros(0, np.int64), np.zeros((0, DIM), np.float32))
    extra = prepare(data(100, seed=10), metric)
    extra_labels = np.arange(5001, 5101, dtype=np.int64)
    ivf.add_with_ids(extra, extra_labels)
    mirror.apply(np.zeros(0, np.int64), extra_labels, extra)
    ref_s, ref_l = ivf.search(q, 10, params=faiss.SearchParametersIVF(nprobe=16))
    got_s, got_l = mirror.search(q, 10, params)
    assert (got_l == ref_l).all()
    np.testing.assert_allclose(got_s, ref_s, rtol=1e-5, atol=1e-5)
    assert not np.isin(got_l, gone).any()
    mirror.apply(labels[1::3][:1100], np.zeros(0, np.int64), np.zeros((0, DIM), np.float32))
    assert mirror.stale and mirror.search(q, 10, params) is None  # too many deletes: re-copy


def test_ann_mirror_by_rows_goes_stale_on_add():
    vecs = data(500, seed=11)
    flat = faiss.IndexFlat(DIM, faiss.METRIC_L2)
    flat.add(vecs)
    labels = np.arange(100, 600, dtype=np.int64)
    mirror = AnnMirror(flat, "cagra", None, labels, DIM * 4)
    s, lab = mirror.search(vecs[:3], 1, None)
    assert lab[:, 0].tolist() == [100, 101, 102]
    mirror.apply(np.array([101], np.int64), np.zeros(0, np.int64), np.zeros((0, DIM), np.float32))
    assert mirror.search(vecs[:3], 1, None)[1][1, 0] != 101
    mirror.apply(np.zeros(0, np.int64), np.array([700], np.int64), data(1, seed=12))
    assert mirror.stale


# ---------------------------------------------------------------- fp16 compute (issue 23)
def _near_ties(n_close=40, n_far=3000, dim=64, seed=13):
    """Unit vectors: one query, n_close points scoring within ~1e-3 of each other near 1
    (fp16 scores there step by ~5e-4, so fp16 alone cannot order them), and far ones."""
    rng = np.random.default_rng(seed)
    q = rng.standard_normal(dim).astype(np.float32)
    q /= np.linalg.norm(q)
    close = q + 0.004 * rng.standard_normal((n_close, dim)).astype(np.float32)
    far = rng.standard_normal((n_far, dim)).astype(np.float32)
    base = prepare(np.concatenate([close, far]), "cosine")
    return base.astype(np.float16).astype(np.float32), q[None, :]  # what fp16 storage holds


def test_fp16_compute_overfetches_before_the_fp32_rescore():
    base, q = _near_ties()
    labels = np.arange(1, len(base) + 1, dtype=np.int64)
    ref = faiss.IndexFlatIP(base.shape[1])
    ref.add(base)
    ref_s, ref_rows = ref.search(q, 10)
    m = TorchFlat(base.shape[1], "ip", "cpu", fp16=True, fp16_compute=True)
    m.apply(np.zeros(0, np.int64), labels, base)
    assert m.use_half(q)
    got_s, got_l = m.search(q, 10)
    assert got_l[0].tolist() == (ref_rows[0] + 1).tolist()  # exact top-10 despite fp16 scores
    np.testing.assert_allclose(got_s, ref_s, rtol=1e-5, atol=1e-6)
    # the test has teeth: fp16 scores alone (keeping only k) get the boundary wrong
    import torch
    s16 = torch.from_numpy(q).half() @ torch.from_numpy(base).half().T
    naive = set(s16.topk(10, dim=1).indices[0].tolist())
    assert naive != set(ref_rows[0].tolist())


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_fp16_compute_falls_back_to_fp32_where_scores_would_overflow(metric):
    x = data(500, seed=14, dim=32) * 60  # |x| ~ 340: q.x passes 65504 for |q| ~ 340
    q = data(4, seed=15, dim=32) * 60
    m = TorchFlat(32, metric, "cpu", fp16=True, fp16_compute=True)
    m.apply(np.zeros(0, np.int64), np.arange(1, 501, dtype=np.int64), x)
    assert not m.use_half(q) and m.use_half(q / 1000)
    stored = x.astype(np.float16).astype(np.float32)
    ref = faiss.IndexFlat(32, faiss_metric(metric))
    ref.add(stored)
    ref_s, ref_rows = ref.search(q, 5)
    got_s, got_l = m.search(q, 5)
    assert np.isfinite(got_s).all() and (got_l == ref_rows + 1).all()
    np.testing.assert_allclose(got_s, ref_s, rtol=1e-4)
    with pytest.raises(ValueError, match="fp16"):  # fp16 storage cannot hold 1e5
        m.apply(np.zeros(0, np.int64), np.array([900], np.int64), np.full((1, 32), 1e5, np.float32))


@pytest.mark.parametrize("fp16", [False, True])
@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_search_temporaries_stay_within_the_scratch_budget(metric, fp16):
    x, q = data(3000, seed=16), data(300, seed=17)
    labels = np.arange(1, 3001, dtype=np.int64)
    big = TorchFlat(DIM, metric, "cpu", fp16=fp16, fp16_compute=fp16)
    small = TorchFlat(DIM, metric, "cpu", fp16=fp16, fp16_compute=fp16, scratch_bytes=64 << 10)
    for m in (big, small):
        m.apply(np.zeros(0, np.int64), labels, x)
    for nq, k in ((300, 10), (1, 10), (300, 200), (7, 3000)):
        half = small.use_half(q[:nq])
        kf = min(max(2 * k, k + 64), 3000) if half else min(k, 3000)
        qb, chunk = small.plan(nq, kf, half)
        assert qb >= 1 and chunk >= kf
        if small.scratch_of(1, kf, kf, half) <= small.scratch_bytes:  # the minimum fits
            assert small.scratch_of(qb, chunk, kf, half) <= small.scratch_bytes
        assert (qb, chunk) != big.plan(nq, kf, half) or nq == 1
        s1, l1 = big.search(q[:nq], k)
        s2, l2 = small.search(q[:nq], k)
        np.testing.assert_allclose(s1, s2, rtol=1e-5, atol=1e-5)
        differ = l1 != l2  # only where two scores tie to the last bit (summation order)
        assert np.isclose(s1[differ], np.roll(s1, 1, 1)[differ]).__or__(
            np.isclose(s1[differ], np.roll(s1, -1, 1)[differ])).all()
