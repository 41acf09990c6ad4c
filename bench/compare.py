#!/usr/bin/env python3
"""vecdb against its peers, side by side in one run (not a test).

    make bench                        # = bench/setup_peers.sh && .venv-bench/bin/python bench/compare.py
    .venv-bench/bin/python bench/compare.py --quick      # 10k subset, short windows (~4 min; full ~12 min)
    .venv-bench/bin/python bench/compare.py --systems faiss,vecdb-grpc --scale-n 0

Data: WordNet glosses embedded with MiniLM (bench/bench_data.py; cached), 1,000 held-out
queries, exact top-100 ground truth; a clustered synthetic set (--scale-n, default 1M)
for the vecdb server's scale and restart numbers.

Systems (--systems): faiss (raw FAISS HNSW in-process: the ceiling), vecdb (vecdb.Database
in-process), vecdb-grpc (a vecdb-server subprocess through vecdb_client), vecdb-embedded
(vecdb.connect: the SDK's calls over the engine in-process, no server), chroma (`chroma
run` subprocess through HttpClient), milvus (Milvus Lite), lance (LanceDB, IVF_FLAT).
Each runs in its own child process, one after another, under a time limit (--timeout),
and reports: time until every point is searchable with the index built; recall@10
against batch and single-query QPS over an ef_search / nprobe sweep; at the operating
point (the smallest setting with recall@10 >= --target-recall) single-query QPS and
p50/p99 latency with 1, 8 and 32 concurrent clients; peak RSS; restart-to-serving.

Writes a section of bench/RESULTS.md (replacing its previous version), the plot
bench/recall_qps.png, and the raw numbers (--json). --quick writes under bench/.cache/.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path


HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (HERE, ROOT, ROOT / "server", ROOT / "client"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import bench_data  # noqa: E402
import bench_measure as measure  # noqa: E402
import numpy as np  # noqa: E402

ALL = "faiss,vecdb,vecdb-grpc,vecdb-embedded,chroma,milvus,lance"


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small subset, short windows")
    ap.add_argument("--systems", default=ALL)
    ap.add_argument("--base-size", type=int, help="WordNet base points (0 = all 116,033; quick 10,000)")
    ap.add_argument("--data", choices=("wordnet", "embeddings"), default="wordnet",
                    help="wordnet: MiniLM-embedded glosses (embedding them is a one-time 25-45 min); "
                    "embeddings: tests/quant_data.py's embedding-like synthetic set of --base-size "
                    "points (default 116,033), nothing to embed")
    ap.add_argument("--scale-n", type=int, help="synthetic points for the scale/restart run "
                    "(default 1,000,000; quick 100,000; 0 = skip)")
    ap.add_argument("--scale-nlist", type=int, default=1024, help="IVF lists of the scale run")
    ap.add_argument("--scale-on-disk", action="store_true",
                    help="the scale run's collection on_disk (lists memory-mapped; README "
                         "'On-disk collections')")
    ap.add_argument("--scale-data", choices=("blobs", "embeddings"), default="blobs",
                    help="the scale run's set: blobs (1,024 Gaussian centers in all 384 "
                         "dimensions: neighbours inside a blob are near random, a set no "
                         "quantizer can order) or embeddings (tests/quant_data.py, as --data)")
    ap.add_argument("--scale-quantization", choices=("sq8", "rabitq", "binary"),
                    help="the scale run's collection quantized: codes in RAM, vectors in a file "
                         "re-scoring the top candidates (README 'Quantization')")
    ap.add_argument("--scale-rescore", type=int, help="oversampling of the quantized scale run "
                    "(default: the collection's, per mode)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--M", type=int, default=32, help="HNSW degree (faiss, vecdb, Chroma, Milvus)")
    ap.add_argument("--ef-construction", type=int, default=100)
    ap.add_argument("--ef-sweep", help="ef_search values (default 10,16,32,64,128,256)")
    ap.add_argument("--nprobe-sweep", help="nprobe values for IVF (default 5,10,20,40,80)")
    ap.add_argument("--target-recall", type=float, default=0.95)
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--client-procs", type=int, default=4,
                    help="client processes for server systems (threads inside); 0 = threads only")
    ap.add_argument("--seconds", type=float, help="window per concurrency level (default 5)")
    ap.add_argument("--single-seconds", type=float, help="single-query window per sweep point")
    ap.add_argument("--batch-seconds", type=float, help="batch window per sweep point")
    ap.add_argument("--batch", type=int, default=1000, help="queries per batch call")
    ap.add_argument("--timeout", type=float, help="seconds per system (default 600)")
    ap.add_argument("--vecdb-shards", type=int, default=1)
    ap.add_argument("--vecdb-server-args", default="", help="extra vecdb-server flags")
    ap.add_argument("--lance-partitions", type=int, default=0, help="IVF partitions of LanceDB (0 = sqrt(n))")
    ap.add_argument("--workdir", type=Path, default=HERE / ".cache" / "compare")
    ap.add_argument("--out", type=Path, help="results markdown (default bench/RESULTS.md)")
    ap.add_argument("--plot", type=Path, help="default bench/recall_qps.png")
    ap.add_argument("--json", type=Path, help="default <workdir>/compare.json")
    ap.add_argument("--from-json", type=Path,
                    help="only re-render the markdown and plot from a saved --json file")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--opts-file", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    q = a.quick
    defaults = {"base_size": 10_000 if q else 0, "scale_n": 100_000 if q else 1_000_000,
                "ef_sweep": "16,64,128" if q else "10,16,32,64,128,256",
                "nprobe_sweep": "10,40" if q else "5,10,20,40,80",
                "seconds": 1.5 if q else 5.0, "single_seconds": 0.5 if q else 2.0,
                "batch_seconds": 0.2 if q else 1.0, "timeout": 300 if q else 600,
                "out": HERE / ".cache" / "RESULTS.quick.md" if q else HERE / "RESULTS.md",
                "plot": HERE / ".cache" / "recall_qps.quick.png" if q else HERE / "recall_qps.png",
                "json": a.workdir / ("compare.quick.json" if q else "compare.json")}
    for key, val in defaults.items():
        if getattr(a, key) is None:
            setattr(a, key, val)
    return a


def child_opts(a: argparse.Namespace) -> dict:
    ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
    ef_default = 128
    return {"data": a.data, "base_size": a.base_size, "k": a.k, "M": a.M, "ef_construction": a.ef_construction,
            "ef_sweep": ints(a.ef_sweep), "nprobe_sweep": ints(a.nprobe_sweep),
            "ef_default": ef_default, "nprobe_default": 32, "target_recall": a.target_recall,
            "clients": ints(a.clients), "client_procs": a.client_procs, "seconds": a.seconds,
            "single_seconds": a.single_seconds, "batch_seconds": a.batch_seconds,
            "batch": a.batch, "vecdb_shards": a.vecdb_shards,
            "vecdb_server_args": a.vecdb_server_args, "lance_partitions": a.lance_partitions,
            "vecdb_index": "hnsw",
            "vecdb_index_params": {"M": a.M, "ef_construction": a.ef_construction,
                                   "ef_search": ef_default},
            "vecdb_index_desc": f"HNSW M={a.M} efC={a.ef_construction}",
            "scale_n": a.scale_n, "scale_nlist": a.scale_nlist, "scale_on_disk": a.scale_on_disk,
            "scale_quantization": a.scale_quantization, "scale_rescore": a.scale_rescore,
            "scale_data": a.scale_data,
            "workdir": str(a.workdir)}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------ one system (child)
def pick_operating_point(sweep: list[dict], target: float) -> dict:
    ok = [s for s in sweep if s["recall"] >= target]
    return min(ok, key=lambda s: s["param"]) if ok else max(sweep, key=lambda s: s["recall"])


def load_data(opts: dict, log=log) -> "bench_data.Dataset":
    """The base/query set of the peer runs (see --data)."""
    if opts["data"] == "wordnet":
        return bench_data.wordnet(opts["base_size"], log=log, embed=opts.get("embed", False))
    from tests.quant_data import embeddings
    n = opts["base_size"] or 116_033
    cache = Path(opts["workdir"]) / f"embeddings-{n}.npz"
    if not cache.exists():
        base, queries = embeddings(n, seed=0), embeddings(bench_data.N_QUERIES, seed=1)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, base=base, queries=queries, gt=bench_data.ground_truth(base, queries))
    z = np.load(cache)
    return bench_data.Dataset(f"embeddings-{n}", z["base"], z["queries"], z["gt"],
                              [f"e{i}" for i in range(n)])


def run_child(name: str, opts: dict, result_path: Path) -> int:
    import bench_servers as systems
    res: dict = {"system": name}

    def save() -> None:
        result_path.write_text(json.dumps(res, indent=1))

    workdir = Path(opts["workdir"]) / name
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    if name == "vecdb-scale":
        return run_scale(opts, workdir, res, save)
    ds = load_data(opts)
    baseline = measure.self_memory_mb()["rss_mb"]
    sysm = systems.SYSTEMS[name](opts, workdir)
    res.update(name=sysm.name, n=len(ds.base), dim=ds.dim)
    with _running(sysm, workdir, res, save):
        log(f"{sysm.name}: loading {len(ds.base):,} x {ds.dim}")
        res["load"] = sysm.load(ds.base)
        res.update(index=sysm.index, param_name=sysm.param_name)
        if sysm.server:
            res["disk"] = {"after_load_bytes": sysm.disk_bytes()}
        save()
        log(f"{sysm.name}: searchable after {res['load']['searchable_s']:.1f}s "
            f"(writes acknowledged after {res['load']['ingest_s']:.1f}s)")
        values = opts["ef_sweep"] if sysm.param_name == "ef_search" else opts["nprobe_sweep"]
        res["sweep"] = []
        for v in values:
            sysm.set_param(v)
            bq, found = measure.batch_run(sysm.search_batch, ds.queries, opts["batch_seconds"],
                                          opts["batch"])
            single = measure.single_run(sysm.search_one, ds.queries, opts["single_seconds"])
            res["sweep"].append({"param": v, "recall": measure.recall_at(found, ds.gt, opts["k"]),
                                 "batch_qps": bq, "single_qps": single["qps"],
                                 "single_p50_ms": single["p50_ms"]})
            save()
            s = res["sweep"][-1]
            log(f"{sysm.name}: {sysm.param_name}={v}: recall@10 {s['recall']:.3f}, batch "
                f"{bq:,.0f} q/s, single {single['qps']:,.0f} q/s")
        op = pick_operating_point(res["sweep"], opts["target_recall"])
        res["op"] = op
        sysm.set_param(op["param"])
        res["concurrency"] = []
        for c in opts["clients"]:
            remote = sysm.remote()
            if remote is not None and opts["client_procs"] > 0:
                r = measure.concurrent_procs(remote, ds.queries, c, opts["seconds"],
                                             opts["client_procs"], workdir)
            else:
                r = measure.concurrent_threads(sysm.thread_searcher, ds.queries, c, opts["seconds"])
            res["concurrency"].append(r)
            save()
            log(f"{sysm.name}: {c} clients ({r['mode']}): {r['qps']:,.0f} q/s, p50 "
                f"{r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms")
        res["memory"] = sysm.memory(baseline)
        save()
        if sysm.server:
            res["restart"] = sysm.restart(ds.queries[0])
            res["disk"]["after_restart_bytes"] = sysm.disk_bytes()
            log(f"{sysm.name}: restart {json.dumps(res['restart'])}, disk {json.dumps(res['disk'])}")
        res["versions"] = sysm.versions()
        save()
        return 0


@contextlib.contextmanager
def _running(sysm, workdir: Path, res: dict, save):
    """Around one system's measurements: a failure's traceback goes into its result;
    the system is always stopped and its work directory removed."""
    try:
        yield
    except Exception:
        res["error"] = traceback.format_exc()
        save()
        raise
    finally:
        sysm.close()
        shutil.rmtree(workdir, ignore_errors=True)


def run_scale(opts: dict, workdir: Path, res: dict, save) -> int:
    """vecdb server on the clustered synthetic set: ingest, index build, restart."""
    import faiss
    import bench_servers as systems
    n = opts["scale_n"]
    blobs = opts.get("scale_data", "blobs") == "blobs"
    log(f"scale: generating {n:,} x {bench_data.DIM} {'clustered' if blobs else 'embedding-like'} vectors")
    if blobs:
        base, queries = bench_data.clustered(n, seed=0), bench_data.clustered(1000, seed=1)
    else:
        from tests.quant_data import embeddings
        base, queries = embeddings(n, seed=0), embeddings(1000, seed=1)
    create = {"on_disk": True} if opts.get("scale_on_disk") else {}
    desc = ", on_disk" if opts.get("scale_on_disk") else ""
    if opts.get("scale_quantization"):
        create["quantization"] = opts["scale_quantization"]
        desc += f", quantization {opts['scale_quantization']}"
        if opts.get("scale_rescore"):
            create["rescore"] = opts["scale_rescore"]
            desc += f" (rescore {opts['scale_rescore']})"
    sopts = {**opts, "vecdb_index": "ivf_flat", "vecdb_param": "nprobe",
             # trained once a tenth of the set is in (ingest goes on meanwhile), not on
             # the first 10k points (the default threshold) where nlist lists would be thin
             "vecdb_index_params": {"nlist": opts["scale_nlist"],
                                    "build_threshold": max(10_000, n // 10)},
             "vecdb_index_desc": f"IVF_FLAT nlist={opts['scale_nlist']}{desc}",
             "vecdb_create": create}
    sysm = systems.VecdbServer(sopts, workdir)
    res.update(name="vecdb (gRPC server), synthetic", n=n, dim=bench_data.DIM,
               index=sopts["vecdb_index_desc"], data="blobs" if blobs else "embeddings")
    with _running(sysm, workdir, res, save):
        res["load"] = sysm.load(base)
        res["index"] = sysm.index
        save()
        log(f"scale: ingest {res['load']['ingest_s']:.1f}s "
            f"({n / res['load']['ingest_s']:,.0f} points/s), searchable after "
            f"{res['load']['searchable_s']:.1f}s")
        gt = faiss.knn(queries, base, opts["k"], metric=faiss.METRIC_INNER_PRODUCT)[1]
        bq, found = measure.batch_run(sysm.search_batch, queries, 1.0, opts["batch"])
        res["search"] = {"param": sysm.param, "recall": measure.recall_at(found, gt, opts["k"]),
                         "batch_qps": bq}
        res["memory"] = sysm.memory(0)
        save()
        del base
        res["restart"] = sysm.restart(queries[0])
        log(f"scale: restart {json.dumps(res['restart'])}")
        save()
        return 0


# ------------------------------------------------------------------ orchestration
def run_all(a: argparse.Namespace) -> dict:
    a.workdir.mkdir(parents=True, exist_ok=True)
    opts = child_opts(a)
    opts_file = a.workdir / "opts.json"
    opts_file.write_text(json.dumps(opts))
    names = [s for s in a.systems.split(",") if s] + (["vecdb-scale"] if a.scale_n else [])
    results = {}
    for name in names:
        out = a.workdir / f"result-{name}.json"
        out.unlink(missing_ok=True)
        log(f"=== {name} (limit {a.timeout:.0f}s)")
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, __file__, "--child", name, "--opts-file",
                                 str(opts_file), "--result-file", str(out)],
                                start_new_session=True)
        try:
            rc = proc.wait(a.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = "timeout"
        res = json.loads(out.read_text()) if out.exists() else {"system": name}
        res["wall_s"] = time.perf_counter() - t0
        if rc != 0:
            res.setdefault("error", f"exit {rc}")
            log(f"{name}: FAILED ({rc}); partial results kept")
        results[name] = res
    return results


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.child:
        return run_child(a.child, json.loads(a.opts_file.read_text()), a.result_file)
    import bench_report as report
    if a.from_json:
        saved = json.loads(a.from_json.read_text())
        report.plot(saved["results"], a.plot, saved["meta"])
        report.write_section(a.out, report.markdown(saved["results"], saved["meta"], a, a.plot))
        log(f"re-rendered {a.out} and {a.plot} from {a.from_json}")
        return 0
    t0 = time.perf_counter()
    log(f"compare: {'quick' if a.quick else 'full'} run, systems {a.systems}")
    ds = load_data({**child_opts(a), "embed": True})  # embeds what the cache lacks (one-time)
    log(f"data: {ds.name} {len(ds.base):,} x {ds.dim}, {len(ds.queries)} queries")
    prep_s = time.perf_counter() - t0
    results = run_all(a)
    meta = report.metadata(a, prep_s, time.perf_counter() - t0)
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    report.plot(results, a.plot, meta)
    report.write_section(a.out, report.markdown(results, meta, a, a.plot))
    log(f"wrote {a.out}, {a.plot}, {a.json} ({meta['total_s'] / 60:.1f} min in all)")
    failed = [n for n, r in results.items() if "error" in r]
    if failed:
        log(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
