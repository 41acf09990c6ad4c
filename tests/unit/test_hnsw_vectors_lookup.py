"""vecdb.index.HnswVectors' label -> storage row look-up: the graph's id_map searched in
place while it is ascending (nothing beside it counted in memory_bytes), a sort order
kept once it is not, and either way the right vectors after later adds and deletes."""
import numpy as np
import pytest

from vecdb.index import HnswVectors, build_ann
from vecdb.types import IndexSpec

D = 8
SPEC = IndexSpec("hnsw", {"M": 8, "ef_construction": 16})


def _add(ann, model: dict[int, np.ndarray], labels: range, seed: int) -> None:
    vecs = np.random.default_rng(seed).standard_normal((len(labels), D)).astype(np.float32)
    ann.add(np.array(labels, np.int64), vecs)
    model.update(zip(labels, vecs))


def _face(labels: range, metric: str) -> tuple:
    """An HNSW index built over ``labels``, its HnswVectors and {label: vector}."""
    vecs = np.random.default_rng(labels.start).standard_normal((len(labels), D)).astype(np.float32)
    ann = build_ann(SPEC, metric, np.array(labels, np.int64), vecs)
    return ann, HnswVectors(ann), dict(zip(labels, vecs))


def _check(face: HnswVectors, model: dict[int, np.ndarray]) -> None:
    labels = np.array(sorted(model)[::-1], np.int64)  # any order in, the same order out
    np.testing.assert_array_equal(face.reconstruct_batch(labels), np.stack([model[x] for x in labels]))


def test_an_ascending_id_map_is_searched_in_place_and_stays_so_as_labels_grow():
    ann, face, model = _face(range(1, 301), "l2")
    _check(face, model)
    assert face.memory_bytes() == 0  # the id_map is the graph's, counted with it
    _add(ann, model, range(301, 351), 2)  # a later write: larger labels
    _check(face, model)
    assert face.memory_bytes() == 0
    ann.remove(np.array([5, 320], np.int64))  # tombstoned: still in the id_map, not readable
    with pytest.raises(KeyError):
        face.reconstruct_batch(np.array([320], np.int64))
    del model[5], model[320]
    _check(face, model)


def test_an_id_map_out_of_order_keeps_a_sort_order_and_counts_it():
    ann, face, model = _face(range(100, 300), "ip")
    _check(face, model)
    _add(ann, model, range(20, 40), 4)  # smaller than every label before
    _check(face, model)
    assert face.memory_bytes() == 2 * 8 * len(model)  # the sort order and the sorted labels
    _add(ann, model, range(300, 310), 5)
    _check(face, model)
