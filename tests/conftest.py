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
