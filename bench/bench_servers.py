"""Server systems for bench/compare.py (not a test): a ``vecdb-server`` subprocess
reached with vecdb_client, and a ``chroma run`` subprocess reached with HttpClient.
Both report the server process's memory from /proc and measure restarts.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench_measure import tree_memory_mb
from bench_peers import COLLECTION, Faiss, Lance, MilvusLite, System, VecdbLocal, free_port, rows


class ServerSystem(System):
    """A server subprocess (``self.proc``, log ``self._log``) started by ``_start()``
    (returns seconds until it serves): memory from /proc, stop, restart, close."""

    server = True

    def thread_searcher(self):
        return remote_searcher(self.remote())

    def memory(self, baseline_mb):
        """Peak over the server's whole life (also across the restarts done so far)."""
        m = tree_memory_mb(self.proc.pid)
        return {"rss_mb": m["rss_mb"], "peak_mb": max(m["peak_mb"], getattr(self, "_peak", 0.0)),
                "what": "server process"}

    def disk_bytes(self) -> int:
        """Bytes of the server's data directory (``self.data_dir``) on disk."""
        return sum(f.stat().st_size for f in Path(self.data_dir).rglob("*") if f.is_file())

    def _stop(self, sig: int) -> float:
        """Signal the server, wait for it; returns the seconds it took to exit."""
        self._peak = max(getattr(self, "_peak", 0.0), tree_memory_mb(self.proc.pid)["peak_mb"])
        t0 = time.perf_counter()
        self.proc.send_signal(sig)
        self.proc.wait(300)
        self._log.close()
        return time.perf_counter() - t0

    def _reconnect(self) -> None:
        """After a restart, before the first search (e.g. re-fetch a collection handle)."""

    def restart(self, probe):
        out = {}
        for label, sig in (("sigterm", signal.SIGTERM), ("sigkill", signal.SIGKILL)):
            stop_s = self._stop(sig)
            t0 = time.perf_counter()
            serving = self._start()
            self._reconnect()
            self.search_one(probe)
            out[label] = {"stop_s": stop_s, "serving_s": serving,
                          "first_search_s": time.perf_counter() - t0}
        out["rss_after_restart_mb"] = tree_memory_mb(self.proc.pid)["rss_mb"]
        return out

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self._stop(signal.SIGTERM)


# ------------------------------------------------------------------ vecdb server
class VecdbServer(ServerSystem):
    """``python -m vecdb_server`` subprocess on 127.0.0.1, reached with vecdb_client."""

    name = "vecdb (gRPC server)"

    def __init__(self, opts, workdir):
        super().__init__(opts, workdir)
        self.param_name = opts.get("vecdb_param", "ef_search")
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.data_dir = workdir / "vecdb-server"
        self.proc = None
        self._start()

    def _start(self) -> float:
        """Start the server; returns seconds until health is SERVING."""
        from vecdb_client import Client
        cmd = [sys.executable, "-m", "vecdb_server", "--host", "127.0.0.1",
               "--port", str(self.port), "--data-dir", str(self.data_dir),
               "--metrics-port", "-1", "--recall-sample-rate", "0", "--log-level", "WARNING",
               *self.opts["vecdb_server_args"].split()]
        self._log = open(self.workdir / "vecdb-server.log", "a")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)
        probe = Client(self.target, timeout=10)
        try:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"vecdb-server exited {self.proc.returncode}; "
                                       f"see {self.workdir / 'vecdb-server.log'}")
                try:
                    if probe.health(timeout=1) == "SERVING":
                        break
                except Exception:  # not listening yet
                    pass
                time.sleep(0.02)
        finally:
            probe.close()
        serving = time.perf_counter() - t0
        self.client = Client(self.target, timeout=300)
        return serving

    def load(self, base):
        c = self.client
        c.create_collection(COLLECTION, dim=base.shape[1], metric="cosine", index=self.opts["vecdb_index"],
                            shards=self.opts["vecdb_shards"], **self.opts.get("vecdb_create", {}),
                            **self.opts["vecdb_index_params"])
        self.index = self.opts["vecdb_index_desc"]
        ids = [str(i) for i in range(len(base))]
        t0 = time.perf_counter()
        c.upsert(COLLECTION, ids, base)
        ingest = time.perf_counter() - t0
        while c.describe_collection(COLLECTION).index_state != "built":
            time.sleep(0.1)
        self.set_param(self.opts["ef_default" if self.param_name == "ef_search" else "nprobe_default"])
        self._wait_found(base[-1], len(base) - 1, t0, limit=3600)
        return {"ingest_s": ingest, "searchable_s": time.perf_counter() - t0}

    def _kw(self) -> dict:
        return {self.param_name: self.param}

    def search_batch(self, queries):
        res = self.client.search(COLLECTION, vectors=queries, k=self.k, with_payload=False,
                                 **self._kw())
        return np.stack([rows([h.id for h in hits], self.k) for hits in res])

    def search_one(self, q):
        hits = self.client.search(COLLECTION, vector=q, k=self.k, with_payload=False, **self._kw())
        return rows([h.id for h in hits], self.k)

    def remote(self):
        return {"kind": "vecdb", "target": self.target, "k": self.k, "kw": self._kw()}

    def _stop(self, sig: int) -> float:
        self.client.close()
        return super()._stop(sig)


class VecdbEmbedded(VecdbServer):
    """``vecdb.connect(dir)``: the SDK's face over the engine in this process (embedded
    mode), driven with the same SDK calls as the server; clients are threads."""

    name = "vecdb (embedded, vecdb.connect)"
    server = False

    def __init__(self, opts, workdir):
        System.__init__(self, opts, workdir)
        import vecdb
        self.param_name = opts.get("vecdb_param", "ef_search")
        self.proc = None
        self.client = vecdb.connect(str(workdir / "vecdb-embedded"))

    memory = System.memory
    thread_searcher = System.thread_searcher

    def remote(self):
        return None

    def close(self):
        self.client.close()


# ------------------------------------------------------------------ Chroma (server)
class ChromaServer(ServerSystem):
    name = "Chroma (server)"

    def __init__(self, opts, workdir):
        super().__init__(opts, workdir)
        self.port = free_port()
        self.path = self.data_dir = workdir / "chroma"
        self.proc = None
        self._start()

    def _start(self) -> float:
        import chromadb
        from chromadb.config import Settings
        exe = Path(sys.executable).with_name("chroma")
        self._log = open(self.workdir / "chroma.log", "a")
        env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
        t0 = time.perf_counter()
        self.proc = subprocess.Popen([str(exe), "run", "--path", str(self.path), "--host",
                                      "127.0.0.1", "--port", str(self.port)],
                                     stdout=self._log, stderr=subprocess.STDOUT, env=env)
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chroma exited {self.proc.returncode}")
            try:
                self.client = chromadb.HttpClient(host="127.0.0.1", port=self.port,
                                                  settings=Settings(anonymized_telemetry=False))
                self.client.heartbeat()
                break
            except Exception:
                time.sleep(0.02)
        return time.perf_counter() - t0

    def load(self, base):
        cfg = {"space": "cosine", "max_neighbors": self.opts["M"],
               "ef_construction": self.opts["ef_construction"], "ef_search": self.opts["ef_default"]}
        self.col = self.client.create_collection(COLLECTION, configuration={"hnsw": cfg},
                                                 embedding_function=None)
        self.index = f"HNSW M={self.opts['M']} efC={self.opts['ef_construction']}"
        step = self.client.get_max_batch_size()
        t0 = time.perf_counter()
        for lo in range(0, len(base), step):
            hi = min(len(base), lo + step)
            self.col.add(ids=[str(i) for i in range(lo, hi)], embeddings=base[lo:hi])
        ingest = time.perf_counter() - t0
        self.param = self.opts["ef_default"]
        self._wait_found(base[-1], len(base) - 1, t0)
        assert self.col.count() == len(base)
        return {"ingest_s": ingest, "searchable_s": time.perf_counter() - t0}

    def set_param(self, value):
        """Chroma applies a modified ef_search only when it loads the index, so the
        server is restarted (SIGTERM, start) after the change (measured: a modify alone
        leaves the loaded index searching with the old ef)."""
        if value != self.param:
            self.col.modify(configuration={"hnsw": {"ef_search": int(value)}})
            self._stop(signal.SIGTERM)
            self._start()
            self._reconnect()
        self.param = value

    def search_batch(self, queries):
        res = self.col.query(query_embeddings=queries, n_results=self.k, include=[])
        return np.stack([rows(ids, self.k) for ids in res["ids"]])

    def search_one(self, q):
        return rows(self.col.query(query_embeddings=q[None, :], n_results=self.k,
                                   include=[])["ids"][0], self.k)

    def remote(self):
        return {"kind": "chroma", "port": self.port, "k": self.k}

    def _reconnect(self) -> None:
        self.col = self.client.get_collection(COLLECTION)

    def versions(self):
        import chromadb
        return {"chromadb": chromadb.__version__}


# ------------------------------------------------------------------ client processes
def remote_searcher(conn: dict):
    """A one-query searcher on its own connection (built inside a client thread or process)."""
    k = conn["k"]
    if conn["kind"] == "vecdb":
        from vecdb_client import Client
        c, kw = Client(conn["target"], timeout=60), conn["kw"]
        return lambda q: rows([h.id for h in c.search(COLLECTION, vector=q, k=k,
                                                       with_payload=False, **kw)], k)
    if conn["kind"] == "chroma":
        import chromadb
        from chromadb.config import Settings
        col = chromadb.HttpClient(host="127.0.0.1", port=conn["port"], settings=Settings(
            anonymized_telemetry=False)).get_collection(COLLECTION)
        return lambda q: rows(col.query(query_embeddings=q[None, :], n_results=k,
                                        include=[])["ids"][0], k)
    raise ValueError(conn["kind"])


SYSTEMS = {"faiss": Faiss, "vecdb": VecdbLocal, "vecdb-grpc": VecdbServer, "vecdb-embedded": VecdbEmbedded,
           "milvus": MilvusLite, "chroma": ChromaServer, "lance": Lance}
