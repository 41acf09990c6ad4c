"""Markdown section, plot and metadata for bench/compare.py (not a test)."""
from __future__ import annotations

import platform
import re
import subprocess
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

BEGIN = "<!-- bench/compare.py: begin (generated; edit the script, not this section) -->"
END = "<!-- bench/compare.py: end -->"
PACKAGES = ("vecdb", "faiss-cpu", "numpy", "grpcio", "protobuf", "rocksdict", "chromadb",
            "pymilvus", "milvus-lite", "lancedb", "pyarrow", "torch", "sentence-transformers")
ORDER = ("faiss", "vecdb", "vecdb-grpc", "vecdb-embedded", "chroma", "milvus", "lance")


def _cmd(args: list[str]) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def metadata(a, prep_s: float, total_s: float) -> dict:
    lscpu = _cmd(["lscpu"])
    model = re.search(r"Model name:\s*(.+)", lscpu)
    mem = re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text())
    root = Path(__file__).resolve().parent.parent
    rev = _cmd(["git", "-C", str(root), "rev-parse", "--short", "HEAD"])
    dirty = bool(_cmd(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"]))
    versions = {}
    for p in PACKAGES:
        try:
            versions[p] = version(p)
        except PackageNotFoundError:
            pass
    return {"date": time.strftime("%Y-%m-%d %H:%M"), "cpu": model.group(1) if model else "?",
            "cores": _cmd(["nproc"]), "mem_gib": round(int(mem.group(1)) / 2**20, 1) if mem else 0,
            "python": platform.python_version(), "machine": platform.machine(),
            "git": rev + (" + uncommitted changes" if dirty else ""), "versions": versions,
            "quick": a.quick, "prep_s": prep_s, "total_s": total_s,
            "argv": " ".join(_argv(a))}


def _argv(a) -> list[str]:
    out = ["--quick"] if a.quick else []
    return out + [f"--base-size {a.base_size}", f"--scale-n {a.scale_n}",
                  f"--ef-sweep {a.ef_sweep}", f"--nprobe-sweep {a.nprobe_sweep}",
                  f"--clients {a.clients}", f"--client-procs {a.client_procs}",
                  f"--seconds {a.seconds:g}"]


# ------------------------------------------------------------------ numbers
def conc(r: dict, clients: int) -> dict | None:
    return next((c for c in r.get("concurrency", []) if c["clients"] == clients), None)


def _f(x, fmt="{:,.0f}") -> str:
    return "n/a" if x is None else fmt.format(x)


def _get(results: dict, name: str, *path):
    cur = results.get(name)
    for key in path:
        if cur is None:
            return None
        cur = conc(cur, key) if isinstance(key, int) else cur.get(key)
    return cur


def _restart_s(r: dict) -> float | None:
    rs = r.get("restart") or {}
    return (rs.get("sigterm") or {}).get("first_search_s")


def targets(results: dict) -> list[tuple]:
    """(what, ours, theirs, ratio, goal text, met) per issue-11 target."""
    g = lambda *p: _get(results, *p)  # noqa: E731
    rows = []

    def add(what, ours, theirs, goal, op, limit):
        ratio = ours / theirs if ours is not None and theirs else None
        met = None if ratio is None else (ratio >= limit if op == ">=" else ratio <= limit)
        rows.append((what, ours, theirs, ratio, f"{op} {limit:g}x", met))

    add("1 client, 1 query/call: vecdb gRPC vs Chroma (q/s)",
        g("vecdb-grpc", 1, "qps"), g("chroma", 1, "qps"), "", ">=", 10)
    add("1 client, 1 query/call: vecdb gRPC vs raw FAISS (q/s)",
        g("vecdb-grpc", 1, "qps"), g("faiss", 1, "qps"), "", ">=", 0.35)
    add("32 clients, 1 query/call: vecdb gRPC vs Chroma batch (q/s)",
        g("vecdb-grpc", 32, "qps"), g("chroma", "op", "batch_qps"), "", ">=", 2)
    add("batch search: vecdb gRPC vs raw FAISS (q/s)",
        g("vecdb-grpc", "op", "batch_qps"), g("faiss", "op", "batch_qps"), "", ">=", 0.9)
    add("1 client, 1 query/call: vecdb embedded (vecdb.connect) vs Chroma (q/s)",
        g("vecdb-embedded", 1, "qps"), g("chroma", 1, "qps"), "", ">=", 3)
    add("time to searchable: vecdb gRPC vs Chroma (s)",
        g("vecdb-grpc", "load", "searchable_s"), g("chroma", "load", "searchable_s"), "", "<=", 0.5)
    add("time to searchable: vecdb gRPC vs Milvus Lite (s)",
        g("vecdb-grpc", "load", "searchable_s"), g("milvus", "load", "searchable_s"), "", "<=", 0.5)
    add("server peak RSS: vecdb vs Chroma (MB)",
        g("vecdb-grpc", "memory", "peak_mb"), g("chroma", "memory", "peak_mb"), "", "<=", 1.2)
    add("server RSS after restart (steady): vecdb vs Chroma (MB)",
        g("vecdb-grpc", "restart", "rss_after_restart_mb"), g("chroma", "restart", "rss_after_restart_mb"),
        "", "<=", 1.0)
    mb = lambda name: (g(name, "disk", "after_restart_bytes") or 0) / 1e6 or None  # noqa: E731
    add("bytes on disk after restart: vecdb vs Chroma (MB)", mb("vecdb-grpc"), mb("chroma"), "", "<=", 1.3)
    return rows


# ------------------------------------------------------------------ markdown
def markdown(results: dict, meta: dict, a, plot_path: Path) -> str:
    names = [n for n in ORDER if n in results]
    n = next((r.get("n") for k, r in results.items() if k != "vecdb-scale" and r.get("n")), 0)
    v = meta["versions"]
    L = [BEGIN, "", "## Peers side by side — `make bench` (bench/compare.py)", ""]
    L += [f"Run {meta['date']}{' (--quick)' if meta['quick'] else ''}: {meta['cpu']}, "
          f"{meta['cores']} cores, {meta['mem_gib']} GiB RAM, {meta['machine']}, Python "
          f"{meta['python']}; vecdb {meta['git']}. Versions: "
          + ", ".join(f"{p} {v[p]}" for p in v) + ".",
          f"Whole run {meta['total_s'] / 60:.1f} min (data set ready in {meta['prep_s']:.0f} s; "
          f"arguments `{meta['argv']}`). Systems ran one after another on the same "
          "otherwise shared 2-core VM: compare ratios, not absolute numbers.", ""]
    L += [f"Data: {n:,} WordNet glosses (Debian `wordnet-base`) embedded with vecdb's built-in "
          "`minilm` encoder (384-d, cosine), 1,000 held-out glosses as queries, k=10, recall@10 "
          "against the exact top-10 (faiss IndexFlatIP). Points carry ids only (no payloads). "
          "HNSW everywhere it exists, with the same graph (M, ef_construction); LanceDB "
          "IVF_FLAT. Operating point: the smallest ef_search / nprobe of the sweep with recall@10 "
          f">= {a.target_recall} (else the best recall). Clients: one query per call, each "
          "client with its own connection; server systems (vecdb gRPC, Chroma) are driven from "
          f"up to {a.client_procs} client processes (threads inside) so the client's GIL does "
          "not cap them; in-process systems from threads. Time to searchable: first write until "
          "every write is acknowledged, the index is built (vecdb: describe says `built`; "
          "Milvus: index created and collection loaded; LanceDB: index created) and a search "
          "for the last point finds it. Peak RSS: VmHWM of the server process (vecdb, Chroma), "
          "or of the bench process minus its RSS before the system existed (in-process "
          "systems; Milvus Lite runs its engine in-process). Restart: SIGTERM, wait for exit, "
          "start, until health/heartbeat answers and a first search returns.", ""]
    L += ["| system | index | searchable s | op. point | recall@10 | batch q/s | 1 client q/s "
          "| p50 / p99 ms | 8 clients q/s | 32 clients q/s | p99 ms @32 | peak RSS MB | restart s |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in names:
        r = results[name]
        op, c1, c8, c32 = r.get("op") or {}, conc(r, 1), conc(r, 8), conc(r, 32)
        err = " (FAILED: partial)" if "error" in r else ""
        L.append(f"| {r.get('name', name)}{err} | {r.get('index', '?')} | "
                 f"{_f(_get(results, name, 'load', 'searchable_s'), '{:.1f}')} | "
                 f"{r.get('param_name', '')}={op.get('param', '?')} | "
                 f"{_f(op.get('recall'), '{:.3f}')} | {_f(op.get('batch_qps'))} | "
                 f"{_f(c1 and c1['qps'])} | "
                 f"{_f(c1 and c1['p50_ms'], '{:.2f}')} / {_f(c1 and c1['p99_ms'], '{:.2f}')} | "
                 f"{_f(c8 and c8['qps'])} | {_f(c32 and c32['qps'])} | "
                 f"{_f(c32 and c32['p99_ms'], '{:.1f}')} | "
                 f"{_f(_get(results, name, 'memory', 'peak_mb'))} | {_f(_restart_s(r), '{:.1f}')} |")
    L += ["", "Targets of issue 11 (ratios within this run):", "",
          "| target | vecdb | peer | ratio | goal | met |", "|---|---|---|---|---|---|"]
    for what, ours, theirs, ratio, goal, met in targets(results):
        fmt = "{:,.1f}" if "(s)" in what else "{:,.0f}"
        L.append(f"| {what} | {_f(ours, fmt)} | {_f(theirs, fmt)} | {_f(ratio, '{:.2f}x')} | "
                 f"{goal} | {'n/a' if met is None else ('yes' if met else '**no**')} |")
    sc = results.get("vecdb-scale")
    if sc:
        rs = sc.get("restart") or {}
        term, kill = rs.get("sigterm") or {}, rs.get("sigkill") or {}
        ok = term.get("first_search_s")
        L.append(f"| restart to SERVING + first search, {sc.get('n', 0):,} vectors (s) | "
                 f"{_f(ok, '{:.1f}')} | | | <= 30 s | "
                 f"{'n/a' if ok is None else ('yes' if ok <= 30 else '**no**')} |")
        ld, s = sc.get("load") or {}, sc.get("search") or {}
        what = ("embedding-like synthetic (tests/quant_data.py)" if sc.get("data") == "embeddings"
                else "clustered synthetic (1,024-center Gaussian mixture, normalized)")
        L += ["", f"Scale: vecdb server, {sc.get('n', 0):,} x {sc.get('dim', 384)} {what}, "
              f"{sc.get('index', '?')}, "
              "cosine, ingest through the SDK (streamed upsert, durability sync). "
              f"Writes acknowledged after {_f(ld.get('ingest_s'), '{:.1f}')} s "
              f"({_f(ld.get('ingest_s') and sc['n'] / ld['ingest_s'])} points/s), searchable with "
              f"the index built after {_f(ld.get('searchable_s'), '{:.1f}')} s; recall@10 "
              f"{_f(s.get('recall'), '{:.3f}')} at nprobe {s.get('param', '?')}, batch "
              f"{_f(s.get('batch_qps'))} q/s; server peak RSS "
              f"{_f(_get(results, 'vecdb-scale', 'memory', 'peak_mb'))} MB. Restart after "
              f"SIGTERM: stop {_f(term.get('stop_s'), '{:.1f}')} s, SERVING after "
              f"{_f(term.get('serving_s'), '{:.1f}')} s, first search after "
              f"{_f(term.get('first_search_s'), '{:.1f}')} s; after SIGKILL (crash recovery): "
              f"SERVING after {_f(kill.get('serving_s'), '{:.1f}')} s, first search after "
              f"{_f(kill.get('first_search_s'), '{:.1f}')} s; RSS once restarted "
              f"{_f(rs.get('rss_after_restart_mb'))} MB."
              + (" (FAILED: partial)" if "error" in sc else "")]
    L += ["", "Server restarts on the WordNet set (to first search answered), and RSS once "
          "restarted (steady state, without the ingest/build peak): " + "; ".join(
              f"{results[nm].get('name', nm)}: after SIGTERM "
              f"{_f(_get(results, nm, 'restart', 'sigterm', 'first_search_s'), '{:.1f}')} s, "
              f"after SIGKILL {_f(_get(results, nm, 'restart', 'sigkill', 'first_search_s'), '{:.1f}')}"
              f" s, RSS {_f(_get(results, nm, 'restart', 'rss_after_restart_mb'))} MB"
              for nm in names if results[nm].get("restart")) + ".", ""]
    L += [f"![recall@10 against QPS]({plot_path.name})", "",
          f"Sweep (batch: {a.batch} queries per call; single: one query per call, one client, "
          f"up to {a.single_seconds:g} s per point):", "",
          "| system | setting | recall@10 | batch q/s | single q/s | single p50 ms |",
          "|---|---|---|---|---|---|"]
    for name in names:
        r = results[name]
        for s in r.get("sweep") or []:
            L.append(f"| {r.get('name', name)} | {r['param_name']}={s['param']} | "
                     f"{s['recall']:.3f} | {s['batch_qps']:,.0f} | {s['single_qps']:,.0f} | "
                     f"{s['single_p50_ms']:.2f} |")
    L.append("")
    errs = [(nm, r["error"]) for nm, r in results.items() if "error" in r]
    for nm, e in errs:
        L += [f"{nm} failed: `{e.strip().splitlines()[-1][:200]}`", ""]
    walls = ", ".join(f"{nm} {r.get('wall_s', 0):.0f} s" for nm, r in results.items())
    L += [f"Wall time per system: {walls}.", "", END]
    return "\n".join(L) + "\n"


def write_section(path: Path, section: str) -> None:
    """Replace the generated section in ``path`` (append it when absent)."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + section.rstrip("\n") + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# ------------------------------------------------------------------ plot
def plot(results: dict, path: Path, meta: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for name in ORDER:
        r = results.get(name)
        if not r or not r.get("sweep"):
            continue
        rec = [s["recall"] for s in r["sweep"]]
        for ax, key in zip(axes, ("batch_qps", "single_qps")):
            ax.plot(rec, [s[key] for s in r["sweep"]], marker="o", label=r.get("name", name))
    for ax, title in zip(axes, ("batch search (1,000 queries per call)",
                                "single query per call, 1 client")):
        ax.set_yscale("log")
        ax.set_xlabel("recall@10")
        ax.set_ylabel("queries / s")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.axvline(0.95, color="grey", linestyle=":", linewidth=1)
    axes[0].legend(fontsize=8)
    n = next((r.get("n") for k, r in results.items() if k != "vecdb-scale" and r.get("n")), 0)
    fig.suptitle(f"WordNet glosses {n:,} x 384 (MiniLM), k=10 — {meta['cpu']}, "
                 f"{meta['cores']} cores, {meta['date']}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
