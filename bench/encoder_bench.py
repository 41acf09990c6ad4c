#!/usr/bin/env python3
"""Text encoder throughput: the model alone, then end to end through the server.

Not a test. Needs ``pip install 'vecdb[encoders]'``.

* model: texts/s of the ``minilm`` encoder for batch sizes 1, 8, 32, 128, 512
  (one encode call per batch, on the CPU; the same on the GPU when torch sees one,
  in fp32 and fp16)
* server: a ``vecdb_server`` subprocess with a ``minilm`` collection:
  text upsert (points/s, --upsert-batch texts per call) and text search
  (queries/s with 1 and 8 concurrent clients, one text per call, k=10)

    python bench/encoder_bench.py                  # prints a table with machine and date
    python bench/encoder_bench.py --seconds 1 --json out.json
    python bench/encoder_bench.py --device cuda    # server and model on the GPU
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for sub in ("", "server", "client"):  # run from a checkout without installing
    if str(ROOT / sub) not in sys.path:
        sys.path.insert(0, str(ROOT / sub))

from vecdb.encoders import EncoderOptions  # noqa: E402
from vecdb.encoders.st import SentenceTransformerEncoder, minilm_path  # noqa: E402
from vecdb.encoders.st import _import as st_import  # noqa: E402
from vecdb_client import Client  # noqa: E402

BATCHES = (1, 8, 32, 128, 512)
WORDS = ("the a cat dog market rates bank river music team city rain night coffee book "
         "engine garden school doctor storm train movie bread ocean mountain letter").split()


def sentences(n: int, seed: int = 0) -> list[str]:
    """Varied 8-20 word sentences (about the length of a search query or a short passage)."""
    import random
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 20))) for _ in range(n)]


# ------------------------------------------------------------------ the model alone
def model_rates(device: str, fp16: bool, seconds: float) -> dict[int, float]:
    enc = SentenceTransformerEncoder("minilm", minilm_path(),
                                     EncoderOptions(device=device, fp16=fp16, batch_size=512))
    texts = sentences(4096, 1)
    out = {}
    for b in BATCHES:
        enc.encode(texts[:b])  # warm up this shape
        done, i, t0 = 0, 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds or done < b:
            enc.encode(texts[i:i + b] if i + b <= len(texts) else texts[:b])
            done += b
            i = (i + b) % len(texts)
        out[b] = done / (time.perf_counter() - t0)
    return out


# ------------------------------------------------------------------ through the server
class Server:
    def __init__(self, data_dir: Path, device: str, log: Path):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            str(ROOT / s) for s in ("", "server", "client"))}
        self._log = open(log, "w")
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vecdb_server", "--port", "0", "--data-dir", str(data_dir),
             "--metrics-port", "-1", "--encoder-device", device, "--encoder-warmup", "minilm",
             "--max-workers", "32"],
            stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            m = re.search(r"listening on ([\d.]+):(\d+)", log.read_text())
            if m:
                self.target = f"127.0.0.1:{m.group(2)}"
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{log.read_text()}")
            time.sleep(0.1)
        with Client(self.target) as c:
            c.wait_ready(180)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)
        self._log.close()


def server_rates(device: str, a: argparse.Namespace) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="encbench-"))
    srv = Server(tmp / "data", device, tmp / "server.log")
    try:
        with Client(srv.target, timeout=600) as c:
            c.create_collection("bench", encoder="minilm")
            texts = sentences(a.upsert_points, 2)
            t0 = time.perf_counter()
            for i in range(0, len(texts), a.upsert_batch):
                chunk = texts[i:i + a.upsert_batch]
                c.upsert("bench", [f"p{i + j}" for j in range(len(chunk))], texts=chunk)
            out = {"upsert_points_per_s": len(texts) / (time.perf_counter() - t0)}
        queries = sentences(2000, 3)
        for conc in (1, 8):
            out[f"search_qps_c{conc}"] = concurrent_search(srv.target, queries, conc, a.seconds)
        return out
    finally:
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def concurrent_search(target: str, queries: list[str], conc: int, seconds: float) -> float:
    counts = [0] * conc
    stop = time.perf_counter() + seconds

    def worker(t: int) -> None:
        with Client(target, timeout=60) as c:
            c.search("bench", text=queries[t], k=10)  # warm the channel
            i = t
            while time.perf_counter() < stop:
                c.search("bench", text=queries[i % len(queries)], k=10)
                counts[t] += 1
                i += conc
    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(t,)) for t in range(conc)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return sum(counts) / (time.perf_counter() - t0)


# ------------------------------------------------------------------ report
def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores, {gpu}; torch {torch.__version__} "
            f"({torch.get_num_threads()} threads); {time.strftime('%Y-%m-%d %H:%M %Z')}")


def table(res: dict) -> str:
    lines = [f"machine: {res['machine']}", "",
             "| encoder minilm, texts/s | " + " | ".join(f"batch {b}" for b in BATCHES) + " |",
             "|---|" + "---:|" * len(BATCHES)]
    for name, rates in res["model"].items():
        lines.append(f"| {name} | " + " | ".join(f"{rates[b]:,.0f}" for b in BATCHES) + " |")
    lines += ["", "| through the server | text upsert points/s | text search QPS, 1 client | "
              "text search QPS, 8 clients |", "|---|---:|---:|---:|"]
    for name, r in res["server"].items():
        lines.append(f"| {name} | {r['upsert_points_per_s']:,.0f} | {r['search_qps_c1']:,.1f} | "
                     f"{r['search_qps_c8']:,.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    ap.add_argument("--upsert-points", type=int, default=2048)
    ap.add_argument("--upsert-batch", type=int, default=128)
    ap.add_argument("--skip-server", action="store_true")
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args(argv)
    torch, _ = st_import("minilm")  # as the server does: sets torch's OpenMP wait policy first
    devices = [("cpu", "cpu", False)]
    if torch.cuda.is_available():
        devices += [("cuda", "cuda", False), ("cuda fp16", "cuda", True)]
    res = {"machine": machine(), "model": {}, "server": {}}
    for name, device, fp16 in devices:
        res["model"][name] = model_rates(device, fp16, a.seconds)
        print(f"model {name}: " + ", ".join(f"b{b} {r:,.0f}/s" for b, r in res["model"][name].items()),
              flush=True)
    if not a.skip_server:
        for name, device, fp16 in devices:
            if fp16:
                continue
            res["server"][name] = server_rates(device, a)
            print(f"server {name}: {res['server'][name]}", flush=True)
    print()
    print(table(res))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
