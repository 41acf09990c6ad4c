import os

# Tests not about the GPU run on the CPU (on a GPU machine too): GPUs are hidden from CUDA
# (torch, faiss) in this process and in the servers it starts. bench/gpu_check.sh sets
# VECDB_TEST_GPU=1 to run tests/unit/test_gpu_*.py on the GPU.
if os.environ.get("VECDB_TEST_GPU") != "1":
    os.environ["CUDA_VISIBLE_DEVICES"] = ""

import numpy as np
import pytest

from vecdb import Database, DatabaseOptions


def clustered(n: int, dim: int, clusters: int = 32, seed: int = 0, spread: float = 0.35) -> np.ndarray:
    """Gaussian blobs: the shape real embeddings have, unlike uniform noise."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, dim)).astype(np.float32)
    which = rng.integers(0, clusters, n)
    return (centers[which] + spread * rng.standard_normal((n, dim))).astype(np.float32)


@pytest.fixture
def db(tmp_path):
    d = Database.open(str(tmp_path / "data"), DatabaseOptions(background=False))
    yield d
    d.close()


@pytest.fixture
def reopen(tmp_path):
    """Callable that closes a db and opens the same directory again."""
    def _reopen(d: Database, **opts) -> Database:
        d.close()
        return Database.open(str(tmp_path / "data"), DatabaseOptions(background=False, **opts))
    return _reopen
