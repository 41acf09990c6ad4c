"""Synthetic embeddings with the structure real ones have (shared by tests/unit/test_quantization.py
and bench/quant_bench.py).

Text and image embeddings live near a low-dimensional manifold of their high-dimensional
space, in clusters. ``embeddings`` draws clustered points in a ``latent``-dimensional
space, maps them into ``dim`` dimensions through a fixed random orthonormal basis, adds a
little isotropic noise and normalizes the rows. (Gaussian blobs drawn directly in 384
dimensions have near-random neighbours inside a cluster: there even full-precision HNSW
stays near 0.87 recall@10, which says nothing about quantization.)
"""
from __future__ import annotations

import numpy as np


def embeddings(n: int, dim: int = 384, seed: int = 0, latent: int = 32, clusters: int = 256,
               base_seed: int = 1234) -> np.ndarray:
    """``n`` unit rows; ``seed`` draws the points, ``base_seed`` the space (clusters and
    basis), so two calls with one base_seed (e.g. base and queries) share a distribution."""
    space = np.random.default_rng(base_seed)
    basis = np.linalg.qr(space.standard_normal((dim, latent)))[0].T.astype(np.float32)
    centers = space.standard_normal((clusters, latent)).astype(np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), np.float32)
    step = 100_000
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        z = centers[rng.integers(0, clusters, hi - lo)] + 0.5 * rng.standard_normal((hi - lo, latent), dtype=np.float32)
        block = z @ basis + 0.02 * rng.standard_normal((hi - lo, dim), dtype=np.float32)
        out[lo:hi] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out
