#!/usr/bin/env python3
"""GPU search through the server vs in-process ceilings vs the CPU path.

Not a test. One command on a GPU machine (docs/gpu.md "Benchmark"):

    python bench/gpu_bench.py                          # 1M x 384, fp16, appends to bench/RESULTS.md
    python bench/gpu_bench.py --fp32                   # vectors resident in fp32
    python bench/gpu_bench.py --quick --device cpu     # smoke run without a GPU (no append)

What it does, in order:
1. ``--n`` x ``--dim`` clustered float32 vectors (cosine), loaded into a flat
   collection through the engine (then checkpointed).
2. Ceiling: in this process, the same vectors resident on the device, timed
   ``torch.topk(q @ X.T, k)`` (queries copied in, results copied out) at batch
   1, 16, 128 and 1024.
3. ``python -m vecdb_server --device <device>`` on that data directory:
   exact search through the SDK at batch 1, 16, 128 and 1024 (queries/s),
   then ``--clients`` concurrent single-query clients (spread over
   ``--client-procs`` processes) for QPS and p50/p99 latency.
4. ANN (``--ann-n`` vectors, 0 = skip; bench/gpu_bench_ann.py): IVF-Flat, IVF-PQ
   and HNSW collections (CAGRA on the GPU) built on the CPU, searched through the same
   server at each batch size, against FAISS GPU searching the same index in this
   process (the ceiling for the server's overhead), with recall@10 of both.
5. The same through a ``--device cpu`` server (FAISS on all cores).
6. Encoder throughput: the ``minilm`` model on the device (fp16 on CUDA),
   texts/s at batch 1..512 (needs ``vecdb[encoders]``; skipped otherwise).
7. The GPU tests: ``pytest tests/unit/test_gpu_*.py`` with VECDB_TEST_GPU=1.
8. A table with the targets (server >= 0.8x ceiling at batch >= 128, GPU >= 10x
   CPU), printed and appended to ``--results`` with the date and the machine.

Every figure of a ``--device gpu`` server says what served it (describe's
``gpu_served`` per backend, read before and after). A figure served by anything but
the GPU path it measures (a fallback, a search on the CPU, an ANN copy not placed)
makes the run fail: the table marks it, a ``GPU BENCH FAILED`` line lists why, and the
exit status is 2.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
for sub in ("", "server", "client"):  # run from a checkout without installing
    if str(ROOT / sub) not in sys.path:
        sys.path.insert(0, str(ROOT / sub))

import gpu_bench_ann as ann_bench  # noqa: E402
from vecdb import Database, DatabaseOptions  # noqa: E402
from vecdb_client import Client  # noqa: E402

BATCHES = (1, 16, 128, 1024)
K = 10


def clustered(n: int, dim: int, seed: int, chunk: int = 200_000) -> np.ndarray:
    """Unit-norm Gaussian mixture (256 centers), generated in chunks."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((256, dim)).astype(np.float32)
    out = np.empty((n, dim), np.float32)
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        x = centers[rng.integers(0, 256, m)] + 0.4 * rng.standard_normal((m, dim), dtype=np.float32)
        out[s:s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.+)", f.read())
            cpu = m.group(1).strip() if m else cpu
    except OSError:
        pass
    gpu = "no GPU"
    try:
        import torch
        if torch.cuda.is_available():
            gpu = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        tv = f"torch {torch.__version__}"
    except ImportError:
        tv = "no torch"
    import faiss
    fv = f"faiss {faiss.__version__}{' (GPU)' if hasattr(faiss, 'StandardGpuResources') else ''}"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}; {tv}, {fv}"


# ------------------------------------------------------------------ 1. data
def load(data_dir: Path, data: np.ndarray, shards: int) -> None:
    db = Database.open(str(data_dir), DatabaseOptions(background=False, device="cpu",
                                                      durability="async"))
    try:
        db.create_collection("bench", dim=data.shape[1], index="flat", shards=shards)
        t0 = time.perf_counter()
        step = 20_000
        for s in range(0, len(data), step):
            db.upsert("bench", [f"p{i}" for i in range(s, min(s + step, len(data)))], data[s:s + step])
        print(f"  loaded {len(data)} x {data.shape[1]} in {time.perf_counter() - t0:.1f}s", flush=True)
    finally:
        db.close()


# ------------------------------------------------------------------ 2. the ceiling
def ceiling(data: np.ndarray, queries: np.ndarray, device: str, fp16: bool,
            seconds: float) -> dict[int, float]:
    """Queries/s of a bare torch matmul + top-k over resident vectors."""
    import torch
    dev = torch.device("cuda" if device == "gpu" else "cpu")
    dtype = torch.float16 if fp16 and dev.type == "cuda" else torch.float32
    x = torch.from_numpy(data).to(dev, dtype)

    def run(q: np.ndarray) -> None:
        qt = torch.from_numpy(q).to(dev, dtype)
        v, i = torch.topk(qt @ x.T, K, dim=1)
        v.float().cpu(), i.cpu()

    out = {b: rate(run, queries, b, seconds) for b in BATCHES}
    x = None  # noqa: F841 - frees the device copy (run() holds the cell) before the servers start
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return out


def rate(search, queries: np.ndarray, batch: int, seconds: float) -> float:
    search(queries[:batch])  # warm up this shape
    done, i, t0 = 0, 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or done == 0:
        if i + batch > len(queries):
            i = 0
        search(queries[i:i + batch])
        done += batch
        i += batch
    return done / (time.perf_counter() - t0)


# ------------------------------------------------------------------ 3/4. the server
class Server:
    def __init__(self, data_dir: Path, device: str, fp16: bool, log: Path):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / s) for s in ("", "server", "client"))}
        self._fh = open(log, "w")
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vecdb_server", "--port", "0", "--data-dir", str(data_dir),
             "--device", device, "--gpu-fp16", str(fp16).lower(), "--background", "false",
             "--metrics-port", "-1", "--recall-sample-rate", "0", "--max-workers", "96"],
            stdout=self._fh, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            m = re.search(r"listening on [\d.]+:(\d+)", log.read_text())
            if m:
                self.target = f"127.0.0.1:{m.group(1)}"
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{log.read_text()}")
            time.sleep(0.1)
        else:
            raise RuntimeError(f"server did not start:\n{log.read_text()}")
        with Client(self.target) as c:
            c.wait_ready(600)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(120)
        self._fh.close()


def _client_proc(target: str, queries: np.ndarray, threads: int, seconds: float,
                 start_at: float) -> list[float]:
    """One client process: ``threads`` threads, one Client each, single queries in a loop."""
    lat: list[list[float]] = [[] for _ in range(threads)]

    def worker(t: int) -> None:
        with Client(target, timeout=120) as c:
            c.search("bench", queries[t], k=K, with_payload=False)  # connect, warm up
            while time.time() < start_at:
                time.sleep(0.001)
            j = t
            while time.time() < start_at + seconds:
                t0 = time.perf_counter()
                c.search("bench", queries[j % len(queries)], k=K, with_payload=False)
                lat[t].append(time.perf_counter() - t0)
                j += threads
    ts = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return [x for per in lat for x in per]


def concurrent(target: str, queries: np.ndarray, clients: int, procs: int, seconds: float) -> dict:
    procs = max(1, min(procs, clients))
    per = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    start_at = time.time() + 3.0 + 0.05 * clients  # every client connected first
    with mp.get_context("spawn").Pool(procs) as pool:
        parts = pool.starmap(_client_proc, [(target, queries[i::procs], per[i], seconds, start_at)
                                            for i in range(procs)])
    lat = np.array([x for p in parts for x in p])
    return {"qps": len(lat) / seconds, "p50_ms": float(np.percentile(lat, 50) * 1e3),
            "p99_ms": float(np.percentile(lat, 99) * 1e3)}


def through_server(data_dir: Path, device: str, fp16: bool, queries: np.ndarray,
                   a: argparse.Namespace, ann_gt: np.ndarray | None) -> dict:
    srv = Server(data_dir, device, fp16, data_dir.parent / f"server-{device}.log")
    try:
        with Client(srv.target, timeout=600) as c:
            info = c.describe_collection("bench")
            shards = [(s.device, s.gpu_memory_bytes) for s in info.shards]
            print(f"  {device} server: shards on {shards}", flush=True)

            def search(q: np.ndarray) -> None:
                c.search("bench", vectors=q, k=K, exact=True, with_payload=False)
            before = ann_bench.served_counts(c, ["bench"])
            out: dict = {"batch": {b: rate(search, queries, b, a.seconds) for b in BATCHES}}
            out["gpu_memory_bytes"] = info.gpu_memory_bytes
            out["devices"] = sorted({d for d, _ in shards})
            out["concurrent"] = concurrent(srv.target, queries, a.clients, a.client_procs, a.seconds)
            out["served"] = ann_bench.delta(before, ann_bench.served_counts(c, ["bench"]))
            exact = "faiss_flat" if faiss_has_gpu() else "torch"
            out["expected"] = exact if device == "gpu" else None
            out["ann"] = {} if ann_gt is None else ann_bench.through_server(
                c, a.ann, queries, ann_gt, rate, a.seconds, BATCHES, device)
        return out
    finally:
        srv.stop()


def faiss_has_gpu() -> bool:
    import faiss
    return hasattr(faiss, "StandardGpuResources")


# ------------------------------------------------------------------ 5/6. encoder, tests
def encoder_rates(device: str, seconds: float) -> dict[int, float] | str:
    try:
        sys.path.insert(0, str(ROOT / "bench"))
        import encoder_bench
    except Exception as exc:  # noqa: BLE001 - the encoders extra is optional
        return f"skipped ({exc.__class__.__name__}: {exc})"
    cuda = device == "gpu"
    return encoder_bench.model_rates("cuda" if cuda else "cpu", cuda, seconds)


def gpu_tests() -> str:
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          *sorted(str(p) for p in (ROOT / "tests" / "unit").glob("test_gpu_*.py"))],
                         cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "VECDB_TEST_GPU": "1"})
    lines = [x for x in out.stdout.splitlines() if re.search(r"\d+ (passed|failed|error)", x)]
    return (lines[-1].strip("= ") if lines else out.stdout[-500:]) + ("" if out.returncode == 0
                                                                      else " (FAILED)")


# ------------------------------------------------------------------ 7. report
def report(res: dict, a: argparse.Namespace) -> str:
    dev, cpu, ceil = res["accel"], res["cpu"], res["ceiling"]
    cmd = " ".join(["python bench/gpu_bench.py", *a.argv])
    bad = problems(res, a)
    lines = [f"### {time.strftime('%Y-%m-%d')} — `{cmd}`",
             "", f"{a.n:,} x {a.dim} float32 (cosine, flat, {a.shards} shard(s)), k={K}, exact "
             f"search; GPU-resident vectors in {'fp16' if a.fp16 else 'fp32'}; server "
             f"device={a.device} (shards on {', '.join(dev['devices'])}, "
             f"{dev['gpu_memory_bytes'] / (1 << 20):.0f} MiB resident). Machine: {res['machine']}.", "",
             "| batch | server q/s | ceiling q/s | server/ceiling | CPU server q/s | vs CPU |",
             "|---|---|---|---|---|---|"]
    for b in BATCHES:
        s, c, p = dev["batch"][b], ceil[b], cpu["batch"][b]
        lines.append(f"| {b} | {s:,.0f} | {c:,.0f} | {s / c:.2f}x | {p:,.0f} | {s / p:.1f}x |")
    lines += ["", f"Exact searches of the {a.device} server served by: {dev['served']}."]
    if dev["ann"]:
        lines += ["", f"ANN, {a.ann_n:,} x {a.dim} (k={K}; IVF nlist 1024 nprobe 32, IVF-PQ "
                  "refine 4, HNSW M 32 / CAGRA degree 64, ef_search 64):", "",
                  *ann_bench.table(dev["ann"], res.get("ann_ceiling", {}), cpu["ann"], BATCHES)]
    dc, cc = dev["concurrent"], cpu["concurrent"]
    lines += ["", f"{a.clients} concurrent single-query clients ({a.client_procs} processes): "
              f"server {dc['qps']:,.0f} q/s (p50 {dc['p50_ms']:.1f} ms, p99 {dc['p99_ms']:.1f} ms); "
              f"CPU server {cc['qps']:,.0f} q/s (p50 {cc['p50_ms']:.1f} ms, p99 {cc['p99_ms']:.1f} ms); "
              f"{dc['qps'] / cc['qps']:.1f}x."]
    enc = res["encoder"]
    if isinstance(enc, dict):
        lines += ["", f"Encoder (minilm, {'cuda fp16' if a.device == 'gpu' else 'cpu fp32'}) texts/s: "
                  + ", ".join(f"batch {b}: {r:,.0f}" for b, r in enc.items()) + "."]
    else:
        lines += ["", f"Encoder: {enc}."]
    lines += ["", f"GPU tests (tests/unit/test_gpu_*.py): {res['tests']}."]
    big = [b for b in BATCHES if b >= 128]
    ok_ceiling = all(dev["batch"][b] >= 0.8 * ceil[b] for b in big)
    ok_cpu = all(dev["batch"][b] >= 10 * cpu["batch"][b] for b in big)
    lines += ["", f"Targets: server >= 0.8x ceiling at batch >= 128: {'met' if ok_ceiling else 'NOT met'}; "
              f">= 10x the CPU path at batch >= 128: {'met' if ok_cpu else 'NOT met'}"
              + (" (smoke run on the CPU: targets do not apply)" if a.device == "cpu" else "") + "."]
    if bad:
        lines += ["", "**GPU BENCH FAILED** (figures not served by the GPU path they measure): "
                  + "; ".join(bad)]
    return "\n".join(lines)


def problems(res: dict, a: argparse.Namespace) -> list[str]:
    """Why this run did not measure the GPU paths (empty on the CPU smoke run)."""
    dev = res["accel"]
    bad = ann_bench.problems(dev["ann"])
    exp = dev["expected"]
    if exp and (set(dev["served"]) != {exp}):
        bad.insert(0, f"exact: expected every search on {exp}, served {dev['served']}")
    if "FAILED" in str(res.get("tests", "")):
        bad.append(f"GPU tests: {res['tests']}")
    return bad


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--device", choices=("gpu", "cpu"), default="gpu",
                    help="device of the accelerated server (cpu: a smoke run without a GPU)")
    ap.add_argument("--fp32", dest="fp16", action="store_false", help="vectors resident in fp32")
    ap.add_argument("--seconds", type=float, default=5.0, help="length of each measurement")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--client-procs", type=int, default=8)
    ap.add_argument("--quick", action="store_true",
                    help="small sizes (20k vectors, 1 s measurements, 8 clients), no append")
    ap.add_argument("--ann-n", type=int, default=200_000,
                    help="vectors of the IVF-Flat / IVF-PQ / HNSW collections (0: no ANN part)")
    ap.add_argument("--ann", default="ivf_flat,ivf_pq,hnsw",
                    help="ANN kinds to measure (hnsw = CAGRA on the GPU, needs FAISS with cuVS)")
    ap.add_argument("--no-encoder", action="store_true")
    ap.add_argument("--no-tests", action="store_true")
    ap.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    ap.add_argument("--append", action=argparse.BooleanOptionalAction, default=None,
                    help="append the table to --results (default: yes, except with --quick)")
    ap.add_argument("--workdir", type=Path, default=ROOT / "bench" / ".cache" / "gpu_bench")
    a = ap.parse_args(argv)
    a.argv = argv
    if a.quick:
        a.n, a.seconds, a.clients, a.client_procs = min(a.n, 20_000), min(a.seconds, 1.0), \
            min(a.clients, 8), min(a.client_procs, 2)
        a.ann_n = min(a.ann_n, 20_000)
    a.ann = [k for k in a.ann.split(",") if k] if a.ann_n else []
    unknown = set(a.ann) - set(ann_bench.ANN)
    if unknown:
        ap.error(f"--ann: unknown kinds {sorted(unknown)}; choose from {sorted(ann_bench.ANN)}")
    if a.append is None:
        a.append = not a.quick
    res: dict = {"machine": machine()}
    print(f"gpu_bench: {a.n} x {a.dim}, device={a.device}, {'fp16' if a.fp16 else 'fp32'}; "
          f"{res['machine']}", flush=True)
    shutil.rmtree(a.workdir, ignore_errors=True)
    a.workdir.mkdir(parents=True)
    data = clustered(a.n, a.dim, seed=1)
    queries = clustered(8192, a.dim, seed=2)
    load(a.workdir / "data", data, a.shards)
    print("ceiling (raw torch matmul + topk) ...", flush=True)
    res["ceiling"] = ceiling(data, queries, a.device, a.fp16, a.seconds)
    del data
    gt = None
    if a.ann:
        ann_data = clustered(a.ann_n, a.dim, seed=3)
        print(f"ANN collections {a.ann} ...", flush=True)
        built = ann_bench.load(a.workdir / "data", ann_data, a.ann)
        gt = ann_bench.ground_truth(ann_data, queries[:1000])
        if a.device == "gpu" and faiss_has_gpu():
            print("ANN ceiling (FAISS GPU in-process) ...", flush=True)
            res["ann_ceiling"] = {k: ann_bench.ceiling(k, built[k], ann_data, queries, gt, rate,
                                                       a.seconds, BATCHES) for k in a.ann}
        del ann_data, built
    print(f"through the server, device={a.device} ...", flush=True)
    res["accel"] = through_server(a.workdir / "data", a.device, a.fp16, queries, a, gt)
    print("through the server, device=cpu ...", flush=True)
    res["cpu"] = through_server(a.workdir / "data", "cpu", False, queries, a, gt)
    print("encoder ...", flush=True)
    res["encoder"] = "skipped (--no-encoder)" if a.no_encoder else encoder_rates(
        a.device, min(a.seconds, 3.0))
    print("GPU tests ...", flush=True)
    res["tests"] = "skipped (--no-tests)" if a.no_tests else gpu_tests()
    text = report(res, a)
    print("\n" + text)
    if a.append:
        with open(a.results, "a") as f:
            f.write("\n" + text + "\n")
        print(f"\nappended to {a.results}")
    shutil.rmtree(a.workdir, ignore_errors=True)
    bad = problems(res, a)
    if bad:
        print("\nGPU BENCH FAILED:\n  " + "\n  ".join(bad), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
