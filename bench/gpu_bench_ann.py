"""GPU ANN paths for bench/gpu_bench.py: IVF-Flat, IVF-PQ and CAGRA (HNSW collections)
through the server, against FAISS GPU doing the same work in this process (the fair
ceiling for the server's overhead), and what served each figure.

Not a test. The same CPU index the server builds (``vecdb.index.build_ann`` from the
loading database) is copied to the GPU with the server's own cloner options
(``GpuContext.faiss_clone``); CAGRA is built from the same vectors with the same graph
degree. Both sides search the same queries with the same k' (IVF-PQ: k x refine
candidates; the server then re-ranks them exactly on the CPU, which the ceiling does
not) and nprobe / itopk.
"""
from __future__ import annotations

import time

import numpy as np

from vecdb import Database, DatabaseOptions
from vecdb.types import IndexSpec

K = 10
# index params of each ANN collection (CAGRA graph degree = 2 x M) and its search params
ANN = {
    "ivf_flat": ({"nlist": 1024, "nprobe": 32}, {"nprobe": 32}),
    "ivf_pq": ({"nlist": 1024, "nprobe": 32, "refine": 4}, {"nprobe": 32}),
    "hnsw": ({"M": 32, "ef_construction": 100, "ef_search": 64}, {"ef_search": 64}),
}
GPU_KIND = {"ivf_flat": "ivf_flat", "ivf_pq": "ivf_pq", "hnsw": "cagra"}


def load(data_dir, data: np.ndarray, kinds: list[str]) -> dict:
    """Create one collection per ANN kind (named after it), fill and build it on the CPU
    (checkpointed, so the GPU server opens it built); returns the built CPU indexes."""
    db = Database.open(str(data_dir), DatabaseOptions(background=False, device="cpu",
                                                      durability="async"))
    built = {}
    try:
        for kind in kinds:
            params = {**ANN[kind][0], "build_threshold": min(len(data), 10_000)}
            db.create_collection(kind, dim=data.shape[1], index=kind, index_params=params)
            for s in range(0, len(data), 20_000):
                db.upsert(kind, [f"p{i}" for i in range(s, min(s + 20_000, len(data)))],
                          data[s:s + 20_000])
            t0 = time.perf_counter()
            db.maintain()
            built[kind] = db.collections[kind].shards[0].ann
            print(f"  {kind}: built over {len(data)} in {time.perf_counter() - t0:.1f}s", flush=True)
    finally:
        db.close()
    return built


def ceiling(kind: str, ann, data: np.ndarray, queries: np.ndarray, gt: np.ndarray,
            rate, seconds: float, batches, ctx=None) -> dict:
    """Queries/s and recall@10 of FAISS GPU searching the same index in this process
    (``ctx``: the GpuContext whose factories make the GPU indexes)."""
    import faiss
    from vecdb.gpu import GpuContext
    ctx = ctx or GpuContext("gpu")
    spec = IndexSpec(kind, ANN[kind][0])
    with ctx.gpu_lock(0):
        if kind == "hnsw":
            degree = 2 * spec.param("M")
            host = ctx.cagra_build(0, data.shape[1], faiss.METRIC_INNER_PRODUCT, data, degree)
            index = ctx.cagra_load(0, host)
            del host
        else:
            index = ctx.faiss_clone(0, ann.index, kind)
    kk = K * spec.param("refine") if kind == "ivf_pq" else K
    if kind == "hnsw":
        params = ctx.cagra_params(kk, spec.param("ef_search"))
    else:
        params = faiss.SearchParametersIVF(nprobe=spec.param("nprobe"))

    def search(q: np.ndarray):
        with ctx.gpu_lock(0):
            return index.search(q, kk, params=params)
    out = {"batch": {b: rate(search, queries, b, seconds) for b in batches}}
    _, got = search(queries[:len(gt)])
    if kind == "hnsw":  # rows by position; the CPU data has label i + 1 at row i
        got = got + 1
    else:
        got = got.copy()
    out["recall"] = recall_at_k(gt, got[:, :K] if kind != "ivf_pq" else _rerank(data, queries[:len(gt)], got))
    with ctx.gpu_lock(0):
        del index  # freed under the lock
    return out


def _rerank(data: np.ndarray, q: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Exact top-K of the IVF-PQ candidates (labels are row + 1), as the server does."""
    rows = np.maximum(labels - 1, 0)
    scores = np.einsum("qkd,qd->qk", data[rows], q)
    scores[labels < 1] = -np.inf
    order = np.argsort(-scores, axis=1)[:, :K]
    return np.take_along_axis(labels, order, 1)


def recall_at_k(gt: np.ndarray, got: np.ndarray) -> float:
    return float(np.mean([len(set(g[:K]) & set(r[:K])) / K for g, r in zip(gt, got)]))


def ground_truth(data: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Exact top-K labels (row + 1) by inner product (the vectors are unit norm)."""
    import faiss
    index = faiss.IndexFlatIP(data.shape[1])
    index.add(data)
    return index.search(queries, K)[1] + 1


def served_counts(client, names) -> dict:
    """backend -> searches served, summed over the shards of ``names`` (fallbacks as
    ``fallback:<backend>``), read from describe."""
    out: dict = {}
    for name in names:
        for s in client.describe_collection(name).shards:
            for b, n in s.gpu_served.items():
                out[b] = out.get(b, 0) + n
            for b, n in s.gpu_fallbacks.items():
                out[f"fallback:{b}"] = out.get(f"fallback:{b}", 0) + n
    return out


def delta(before: dict, after: dict) -> dict:
    return {b: n - before.get(b, 0) for b, n in after.items() if n - before.get(b, 0)}


def through_server(client, kinds, queries: np.ndarray, gt: np.ndarray, rate, seconds: float,
                   batches, device: str) -> dict:
    """Per ANN collection: queries/s per batch, recall@10, what served it, placement."""
    out = {}
    for kind in kinds:
        sp = ANN[kind][1]
        st = client.describe_collection(kind).shards[0]

        def search(q: np.ndarray, kind=kind, sp=sp):
            return client.search(kind, vectors=q, k=K, with_payload=False, **sp)
        before = served_counts(client, [kind])
        res = {"batch": {b: rate(search, queries, b, seconds) for b in batches}}
        hits = search(queries[:len(gt)])
        got = np.array([[int(h.id[1:]) + 1 for h in row] + [0] * (K - len(row)) for row in hits])
        res["recall"] = recall_at_k(gt, got)
        res["served"] = delta(before, served_counts(client, [kind]))
        res["gpu_ann"], res["gpu_error"] = st.gpu_ann, st.gpu_error
        res["expected"] = GPU_KIND[kind] if device == "gpu" else None
        out[kind] = res
    return out


def problems(res: dict) -> list[str]:
    """Why a GPU figure does not measure the GPU path: a fallback, a CPU answer, the copy
    not placed."""
    bad = []
    for name, r in res.items():
        exp = r.get("expected")
        if exp is None:
            continue
        other = {b: n for b, n in r["served"].items() if b != exp}
        if other or not r["served"].get(exp):
            bad.append(f"{name}: expected every search on {exp}, served {r['served']}"
                       + (f" ({r['gpu_error']})" if r.get("gpu_error") else ""))
    return bad


def table(res: dict, ceil: dict, cpu: dict, batches) -> list[str]:
    lines = ["| index (GPU kind) | batch | server q/s | FAISS GPU in-process q/s | server/FAISS | "
             "CPU server q/s | recall@10 server / FAISS / CPU | served by |", "|---|---|---|---|---|---|---|---|"]
    for kind, r in res.items():
        c, p = ceil.get(kind), cpu.get(kind)
        for b in batches:
            s = r["batch"][b]
            cq = c["batch"][b] if c else float("nan")
            pq = p["batch"][b] if p else float("nan")
            rec = f"{r['recall']:.3f} / {c['recall'] if c else float('nan'):.3f} / " \
                  f"{p['recall'] if p else float('nan'):.3f}"
            lines.append(f"| {kind} ({GPU_KIND[kind]}) | {b} | {s:,.0f} | {cq:,.0f} | {s / cq:.2f}x | "
                         f"{pq:,.0f} | {rec} | {r['served']} |")
    return lines
