"""The encoder dimension is read from a sentence-transformers model's config files,
so creating a collection does not wait for the model to load."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("sentence_transformers", reason="needs vecdb[encoders]")

from vecdb import Database, DatabaseOptions  # noqa: E402
from vecdb.encoders.st import dimension_from_files, minilm_path  # noqa: E402


def _model_dir(tmp_path, modules, configs):
    (tmp_path / "modules.json").write_text(json.dumps(
        [{"idx": i, "name": str(i), "path": p, "type": t} for i, (p, t) in enumerate(modules)]))
    for sub, cfg in configs.items():
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "config.json").write_text(json.dumps(cfg))
    return str(tmp_path)


def test_minilm_dimension_from_files_matches_the_loaded_model(tmp_path):
    assert dimension_from_files(minilm_path()) == 384
    # a fresh handle (its own options): create_collection takes dim without loading it
    opts = DatabaseOptions(background=False, encoder_batch_size=7)
    with Database.open(str(tmp_path / "db"), opts) as db:
        info = db.create_collection("t", encoder="minilm")
        handle = db.encoder("minilm")
        assert info.config.dim == 384 and not handle.loaded
        db.upsert("t", ["a"], texts=["a cat"])  # the first encode loads it
        assert handle.loaded and handle.load().dimension == 384


def test_pooling_modes_and_dense_layers(tmp_path):
    st = "sentence_transformers.models."
    (tmp_path / "a").mkdir()
    pooled = _model_dir(tmp_path / "a",
                        [("", st + "Transformer"), ("1_Pooling", st + "Pooling")],
                        {"1_Pooling": {"word_embedding_dimension": 256,
                                       "pooling_mode_mean_tokens": True,
                                       "pooling_mode_max_tokens": True}})
    assert dimension_from_files(pooled) == 512  # two pooling modes concatenated
    (tmp_path / "b").mkdir()
    dense = _model_dir(tmp_path / "b",
                       [("", st + "Transformer"), ("1_Pooling", st + "Pooling"),
                        ("2_Dense", st + "Dense"), ("3_Normalize", st + "Normalize")],
                       {"1_Pooling": {"word_embedding_dimension": 768,
                                      "pooling_mode_cls_token": True},
                        "2_Dense": {"in_features": 768, "out_features": 128}})
    assert dimension_from_files(dense) == 128
    (tmp_path / "c").mkdir()
    custom = _model_dir(tmp_path / "c", [("", st + "Transformer"), ("1_X", "my.Custom")],
                        {"1_X": {}})
    assert dimension_from_files(custom) is None  # unknown module: the model is loaded
    assert dimension_from_files(str(tmp_path / "missing")) is None
