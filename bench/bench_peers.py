"""The systems bench/compare.py measures, behind one small interface (not a test).

A ``System`` loads a data set (timing it until every point is searchable with its ANN
index built), searches with one tunable (``param``: ef_search or nprobe), and reports
its memory; server systems also restart. Row ids are the base row numbers (as strings
or ints), so results compare directly with the ground truth.

vecdb is reached only through its public surfaces: ``vecdb.Database`` in-process, and
the ``vecdb-server`` command (flags only) through the ``vecdb_client`` SDK. This module:
the interface and the in-process systems; bench_servers.py: the server systems.
"""
from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np

from bench_measure import self_memory_mb

COLLECTION = "bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rows(ids, k: int) -> np.ndarray:
    out = np.full(k, -1, np.int64)
    got = [int(i) for i in ids][:k]
    out[:len(got)] = got
    return out


class System:
    name = "?"
    index = "?"
    param_name = "ef_search"
    server = False  # a separate server process (RSS from /proc, restart measured)

    def __init__(self, opts: dict, workdir: Path):
        self.opts, self.workdir, self.k = opts, workdir, opts["k"]
        self.param = None

    # --- lifecycle
    def load(self, base: np.ndarray) -> dict:
        """Write every point and build the index; returns ingest_s (writes
        acknowledged) and searchable_s (index built, last point found by a search)."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    # --- search
    def set_param(self, value: int) -> None:
        self.param = value

    def search_batch(self, queries: np.ndarray) -> np.ndarray:
        return np.stack([self.search_one(q) for q in queries])

    def search_one(self, q: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def thread_searcher(self):
        """A callable for one client thread (its own connection where there is one)."""
        return self.search_one

    def remote(self) -> dict | None:
        """Connection dict for client processes (servers only); None = use threads."""
        return None

    # --- resources
    def memory(self, baseline_mb: float) -> dict:
        """In-process systems: the bench process's peak minus its RSS before the system
        existed (the data set itself is excluded)."""
        m = self_memory_mb()
        return {"rss_mb": m["rss_mb"] - baseline_mb, "peak_mb": m["peak_mb"] - baseline_mb,
                "what": "bench process, minus the data set"}

    def restart(self, probe: np.ndarray) -> dict | None:
        return None

    def versions(self) -> dict:
        return {}

    def _wait_found(self, probe: np.ndarray, want: int, t0: float, limit: float = 900) -> None:
        """Poll until a search for ``probe`` (row ``want``'s own vector) finds row ``want``."""
        while want not in self.search_one(probe):
            if time.perf_counter() - t0 > limit:
                raise TimeoutError(f"{self.name}: row {want} not searchable after {limit} s")
            time.sleep(0.05)


# ------------------------------------------------------------------ raw FAISS
class Faiss(System):
    name = "faiss (in-process)"

    def load(self, base):
        import faiss
        self.faiss = faiss
        self.index_ = faiss.IndexHNSWFlat(base.shape[1], self.opts["M"], faiss.METRIC_INNER_PRODUCT)
        self.index_.hnsw.efConstruction = self.opts["ef_construction"]
        self.index = f"HNSW M={self.opts['M']} efC={self.opts['ef_construction']}"
        t0 = time.perf_counter()
        self.index_.add(base)
        t = time.perf_counter() - t0
        return {"ingest_s": t, "searchable_s": t}

    def set_param(self, value):
        self.param = value
        self.index_.hnsw.efSearch = value

    def search_batch(self, queries):
        return self.index_.search(queries, self.k)[1]

    def search_one(self, q):
        return self.index_.search(q[None, :], self.k)[1][0]

    def versions(self):
        return {"faiss-cpu": self.faiss.__version__}


# ------------------------------------------------------------------ vecdb
def _vecdb_index_params(opts: dict) -> dict:
    return {"M": opts["M"], "ef_construction": opts["ef_construction"]}


class VecdbLocal(System):
    name = "vecdb (in-process)"

    def load(self, base):
        from vecdb import Database, SearchParams
        self._params = SearchParams
        self.db = Database.open(str(self.workdir / "vecdb"))
        self.db.create_collection(COLLECTION, base.shape[1], metric="cosine", index="hnsw",
                                  index_params=_vecdb_index_params(self.opts),
                                  shards=self.opts["vecdb_shards"])
        self.index = f"HNSW M={self.opts['M']} efC={self.opts['ef_construction']}"
        ids = [str(i) for i in range(len(base))]
        t0 = time.perf_counter()
        for lo in range(0, len(base), 10_000):
            self.db.upsert(COLLECTION, ids[lo:lo + 10_000], base[lo:lo + 10_000])
        ingest = time.perf_counter() - t0
        while self.db.describe_collection(COLLECTION).index_state != "built":
            time.sleep(0.05)
        self.set_param(self.opts["ef_default"])
        self._wait_found(base[-1], len(base) - 1, t0)
        return {"ingest_s": ingest, "searchable_s": time.perf_counter() - t0}

    def search_batch(self, queries):
        res = self.db.search(COLLECTION, queries, k=self.k, with_payload=False,
                             params=self._params(ef_search=self.param))
        return np.stack([rows(r.ids, self.k) for r in res])

    def search_one(self, q):
        res = self.db.search(COLLECTION, q[None, :], k=self.k, with_payload=False,
                             params=self._params(ef_search=self.param))
        return rows(res[0].ids, self.k)

    def close(self):
        if hasattr(self, "db"):
            self.db.close()


# ------------------------------------------------------------------ Milvus Lite
class MilvusLite(System):
    """pymilvus MilvusClient on a local .db: milvus-lite 3.x runs its engine (FAISS HNSW
    per segment) and a gRPC endpoint inside this process."""

    name = "Milvus Lite"

    def load(self, base):
        from pymilvus import DataType, MilvusClient
        self.c = c = MilvusClient(str(self.workdir / "milvus.db"))
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=base.shape[1])
        c.create_collection(COLLECTION, schema=schema)
        self.index = f"HNSW M={self.opts['M']} efC={self.opts['ef_construction']}"
        t0 = time.perf_counter()
        for lo in range(0, len(base), 5000):
            c.insert(COLLECTION, [{"id": i, "vec": base[i]} for i in range(lo, min(len(base), lo + 5000))])
        c.flush(COLLECTION)
        ingest = time.perf_counter() - t0
        idx = c.prepare_index_params()
        idx.add_index(field_name="vec", index_type="HNSW", metric_type="COSINE",
                      params={"M": self.opts["M"], "efConstruction": self.opts["ef_construction"]})
        c.create_index(COLLECTION, idx)
        c.load_collection(COLLECTION)
        self.param = self.opts["ef_default"]
        self._wait_found(base[-1], len(base) - 1, t0)
        return {"ingest_s": ingest, "searchable_s": time.perf_counter() - t0}

    def _search(self, data):
        return self.c.search(COLLECTION, data=data, limit=self.k, output_fields=[],
                             search_params={"params": {"ef": int(self.param)}})

    def search_batch(self, queries):
        res = self._search([q for q in queries])
        return np.stack([rows([h["id"] for h in hits], self.k) for hits in res])

    def search_one(self, q):
        return rows([h["id"] for h in self._search([q])[0]], self.k)

    def close(self):
        if hasattr(self, "c"):
            self.c.close()

    def versions(self):
        from importlib.metadata import version
        return {"pymilvus": version("pymilvus"), "milvus-lite": version("milvus-lite")}


# ------------------------------------------------------------------ LanceDB
class Lance(System):
    name = "LanceDB (in-process)"
    param_name = "nprobe"

    def load(self, base):
        import lancedb
        import pyarrow as pa
        from lancedb.index import IvfFlat
        self.db = lancedb.connect(str(self.workdir / "lance"))
        n, d = base.shape
        t0 = time.perf_counter()
        data = pa.table({"id": pa.array(np.arange(n), pa.int64()),
                         "vector": pa.FixedSizeListArray.from_arrays(pa.array(base.ravel()), d)})
        self.tbl = self.db.create_table(COLLECTION, data=data)
        ingest = time.perf_counter() - t0
        parts = self.opts["lance_partitions"] or max(1, int(np.sqrt(n)))
        self.tbl.create_index("vector", config=IvfFlat(distance_type="cosine", num_partitions=parts))
        self.index = f"IVF_FLAT partitions={parts}"
        self.param = self.opts["nprobe_default"]
        self._wait_found(base[-1], n - 1, t0)
        return {"ingest_s": ingest, "searchable_s": time.perf_counter() - t0}

    def _query(self, q):
        return (self.tbl.search(q).distance_type("cosine").nprobes(int(self.param))
                .limit(self.k).select(["id"]))

    def search_batch(self, queries):
        t = self._query([q for q in queries]).to_arrow()
        qi, ids = t["query_index"].to_numpy(), t["id"].to_numpy()
        out = np.full((len(queries), self.k), -1, np.int64)
        for i in range(len(queries)):
            got = ids[qi == i][:self.k]
            out[i, :len(got)] = got
        return out

    def search_one(self, q):
        return rows(self._query(q).to_arrow()["id"].to_numpy(), self.k)

    def versions(self):
        import lancedb
        import pyarrow
        return {"lancedb": lancedb.__version__, "pyarrow": pyarrow.__version__}
