#!/usr/bin/env python3
"""Benchmark data sets (not a test): WordNet glosses embedded with MiniLM, and a
clustered synthetic set for scale.

WordNet (real text)
    Source: the Debian package ``wordnet-base`` (``apt-get install -y wordnet-base``):
    /usr/share/wordnet/data.{noun,verb,adj,adv}; the gloss of a synset is the text
    after ``| ``. Glosses are de-duplicated (117,033 unique of 117,659) and sorted.
    A fixed permutation (seed 0) takes 1,000 of them as held-out queries; the rest
    (116,033) is the base set, or the first ``base_size`` of it.
    Embeddings: the built-in ``minilm`` encoder (vecdb.encoders, all-MiniLM-L6-v2,
    384-d, unit norm), "document" kind for the base set, "query" kind for the
    queries; texts are encoded longest-last in batches of 32 (little padding).
    Measured on the 2-core VM (CPU torch, shared cores): 40-80 texts/s, so the whole
    set takes 25-45 min. That cost is paid once: vectors are cached under
    bench/.cache/wordnet/ in a resumable memmap (emb.npy + done.npy; an interrupted
    run picks up where it stopped), and the benchmark's 30-minute budget assumes a
    filled cache (`make bench-data` fills it). ``--base-size N`` (also a flag of
    compare.py) embeds and uses only the first N base glosses of the fixed
    permutation, e.g. 20000 (~5 min) where the full set is too slow. Ground truth: exact top-100 by inner product (= cosine) with
    faiss.IndexFlatIP, cached per base size.

Synthetic (scale)
    ``clustered(n, dim)``: a Gaussian mixture (1,024 centers, unit-normalized
    rows), generated in chunks from a seed; nothing cached (1M x 384 takes ~10 s).

    python bench/bench_data.py                     # embed everything missing, print rates
    python bench/bench_data.py --base-size 20000   # only what a 20k subset needs
    python bench/bench_data.py --info              # what the cache holds
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"
WORDNET_DIR = Path("/usr/share/wordnet")
POS = ("noun", "verb", "adj", "adv")
N_QUERIES = 1000
GT_K = 100
DIM = 384
ENCODE_BATCH = 32  # measured on 2 cores: 32 ~1.8x faster than 128 (less padding)
CHUNK = 2048  # texts per resumable step


@dataclass
class Dataset:
    name: str
    base: np.ndarray  # (n, dim) float32, unit norm
    queries: np.ndarray  # (q, dim) float32, unit norm
    gt: np.ndarray  # (q, GT_K) int64: row numbers into base, best first
    ids: list[str]  # string id per base row
    texts: list[str] | None = None  # base texts (payloads), when real text

    @property
    def dim(self) -> int:
        return self.base.shape[1]


# ------------------------------------------------------------------ WordNet
def wordnet_glosses(path: Path = WORDNET_DIR) -> list[str]:
    """Unique glosses, sorted (so row numbers are stable across machines)."""
    files = [path / f"data.{p}" for p in POS]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: run `apt-get install -y wordnet-base`")
    out: set[str] = set()
    for f in files:
        with open(f, encoding="latin-1") as fh:
            for line in fh:
                if line.startswith("  ") or "| " not in line:  # license header
                    continue
                gloss = line.split("| ", 1)[1].strip()
                if gloss:
                    out.add(gloss)
    return sorted(out)


def split(n_texts: int, base_size: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(query rows, base rows) into the sorted gloss list; fixed seed."""
    perm = np.random.default_rng(0).permutation(n_texts)
    queries, base = perm[:N_QUERIES], perm[N_QUERIES:]
    if base_size:
        base = base[:base_size]
    return queries, np.sort(base)


class EmbeddingCache:
    """emb.npy (n_texts x dim float32 memmap) + done.npy (bool per text)."""

    def __init__(self, texts: list[str], folder: Path = CACHE / "wordnet"):
        self.texts, self.folder = texts, folder
        folder.mkdir(parents=True, exist_ok=True)
        meta = folder / "meta.json"
        want = {"n_texts": len(texts), "dim": DIM, "encoder": "minilm",
                "first": texts[0], "last": texts[-1]}
        if not meta.exists() or json.loads(meta.read_text()) != want:
            for f in ("emb.npy", "done.npy"):
                (folder / f).unlink(missing_ok=True)
            meta.write_text(json.dumps(want))
        emb_path, done_path = folder / "emb.npy", folder / "done.npy"
        if not emb_path.exists():
            np.lib.format.open_memmap(emb_path, "w+", np.float32, (len(texts), DIM)).flush()
            np.save(done_path, np.zeros(len(texts), bool))
        self.emb = np.lib.format.open_memmap(emb_path, "r+")
        self.done = np.load(done_path)
        self._done_path = done_path

    def missing(self, rows: np.ndarray) -> np.ndarray:
        return rows[~self.done[rows]]

    def fill(self, rows: np.ndarray, kind_of=lambda row: "document", log=print) -> float:
        """Embed the rows not cached yet; returns texts/s (0 when nothing was missing)."""
        todo = self.missing(rows)
        if not len(todo):
            return 0.0
        import torch
        from vecdb.encoders import EncoderOptions, get_encoder
        torch.set_num_threads(os.cpu_count() or 1)
        enc = get_encoder("minilm", EncoderOptions(device="cpu", batch_size=ENCODE_BATCH))
        enc.encode(["warm-up"])
        kinds = np.array([kind_of(r) for r in todo])
        t0, done = time.perf_counter(), 0
        for kind in ("query", "document"):
            sel = todo[kinds == kind]
            sel = sel[np.argsort([len(self.texts[r]) for r in sel], kind="stable")]
            for lo in range(0, len(sel), CHUNK):
                part = sel[lo:lo + CHUNK]
                self.emb[part] = enc.encode([self.texts[r] for r in part], kind)
                self.emb.flush()
                self.done[part] = True
                np.save(self._done_path, self.done)
                done += len(part)
                rate = done / (time.perf_counter() - t0)
                log(f"  embedded {done:,}/{len(todo):,} texts ({rate:.0f}/s, "
                    f"~{(len(todo) - done) / rate / 60:.1f} min left)")
        return done / (time.perf_counter() - t0)


def ground_truth(base: np.ndarray, queries: np.ndarray, k: int = GT_K) -> np.ndarray:
    import faiss
    index = faiss.IndexFlatIP(base.shape[1])
    index.add(base)
    return index.search(queries, k)[1].astype(np.int64)


def wordnet(base_size: int = 0, log=print, embed: bool = True) -> Dataset:
    """The WordNet set (embedding what the cache lacks when ``embed``)."""
    texts = wordnet_glosses()
    qrows, brows = split(len(texts), base_size)
    cache = EmbeddingCache(texts)
    missing = len(cache.missing(qrows)) + len(cache.missing(brows))
    if missing:
        if not embed:
            raise SystemExit(f"{missing} WordNet embeddings not cached: run "
                             f"`python bench/bench_data.py --base-size {base_size}` first")
        log(f"embedding {missing:,} WordNet glosses with minilm (cached in {cache.folder}) ...")
        qset = set(qrows.tolist())
        cache.fill(np.concatenate([qrows, brows]),
                   kind_of=lambda r: "query" if r in qset else "document", log=log)
    base = np.ascontiguousarray(cache.emb[brows])
    queries = np.ascontiguousarray(cache.emb[qrows])
    gt_path = cache.folder / f"gt_{len(brows)}.npy"
    if gt_path.exists():
        gt = np.load(gt_path)
    else:
        t0 = time.perf_counter()
        gt = ground_truth(base, queries)
        np.save(gt_path, gt)
        log(f"ground truth top-{GT_K} for {len(queries)} queries in {time.perf_counter() - t0:.1f}s")
    return Dataset("wordnet", base, queries, gt, [f"wn{r}" for r in brows],
                   [texts[r] for r in brows])


# ------------------------------------------------------------------ synthetic
def clustered(n: int, dim: int = DIM, clusters: int = 1024, seed: int = 0,
              spread: float = 0.6) -> np.ndarray:
    """Gaussian mixture, rows normalized to unit length (cosine = inner product)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, dim)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    out = np.empty((n, dim), np.float32)
    step = 100_000
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        noise = rng.standard_normal((hi - lo, dim), dtype=np.float32) * (spread / np.sqrt(dim))
        block = centers[rng.integers(0, clusters, hi - lo)] + noise
        out[lo:hi] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def synthetic(n: int, n_queries: int = N_QUERIES, dim: int = DIM, gt: bool = False) -> Dataset:
    base = clustered(n, dim, seed=0)
    queries = clustered(n_queries, dim, seed=1)
    truth = ground_truth(base, queries, 10) if gt else np.zeros((n_queries, 0), np.int64)
    return Dataset(f"synthetic-{n}", base, queries, truth, [f"s{i}" for i in range(n)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-size", type=int, default=0, help="0 = every gloss but the queries")
    ap.add_argument("--info", action="store_true", help="only report the cache state")
    a = ap.parse_args(argv)
    for sub in ("", "server", "client"):
        sys.path.insert(0, str(ROOT / sub))
    texts = wordnet_glosses()
    qrows, brows = split(len(texts), a.base_size)
    print(f"WordNet: {len(texts):,} unique glosses -> {len(brows):,} base + {len(qrows):,} queries")
    if a.info:
        cache = EmbeddingCache(texts)
        print(f"cached: {int(cache.done.sum()):,} of {len(texts):,} embeddings")
        return 0
    t0 = time.perf_counter()
    ds = wordnet(a.base_size)
    print(f"ready in {time.perf_counter() - t0:.1f}s: base {ds.base.shape}, queries "
          f"{ds.queries.shape}, gt {ds.gt.shape}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
