"""The server without the encoder extra: a subprocess in which ``import torch`` (and
sentence_transformers, transformers) really fails with ImportError, through a
sitecustomize on PYTHONPATH, as on a machine where `vecdb[encoders]` is not installed."""
from __future__ import annotations

import numpy as np
import pytest

from harness import SRC_PATHS
from vecdb_client.errors import FailedPreconditionError, InvalidArgumentError

HIDE = '''
import importlib.abc, sys

class _Hide(importlib.abc.MetaPathFinder):
    BLOCKED = ("torch", "sentence_transformers", "transformers")

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.BLOCKED:
            raise ImportError(f"No module named {name!r} (hidden: vecdb[encoders] not installed)")
        return None

sys.meta_path.insert(0, _Hide())
'''


@pytest.fixture
def no_extra_env(tmp_path):
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(HIDE)
    return {"PYTHONPATH": ":".join([str(shim), *SRC_PATHS])}


def test_server_runs_and_only_encoder_calls_fail(spawn, no_extra_env, tmp_path):
    data = tmp_path / "data"
    pytest.importorskip("sentence_transformers", reason="needs vecdb[encoders] for the setup")
    # an encoder collection made while the extra was installed...
    first = spawn(data_dir=data)
    with first.client(timeout=180) as c:  # the first text upsert loads the model (cold: slow)
        c.create_collection("texts", encoder="minilm")
        c.upsert("texts", ["a", "b"], texts=["a cat naps on the couch", "interest rates rose"])
    first.terminate()
    # ...then the server restarts without it
    srv = spawn(data_dir=data, env=no_extra_env)
    with srv.client() as c:
        assert c.health() == "SERVING"
        assert c.count("texts") == 2
        got = c.get("texts", ["a"], with_vectors=True)[0]  # stored vectors still searchable
        assert c.search("texts", vector=got.vector, k=1)[0].id == "a"
        for call in (lambda: c.search("texts", text="kitten"),
                     lambda: c.upsert("texts", ["c"], texts=["more text"]),
                     lambda: c.create_collection("new_texts", encoder="minilm")):
            with pytest.raises(FailedPreconditionError) as e:
                call()
            assert "pip install 'vecdb[encoders]'" in str(e.value)
        assert "new_texts" not in [cfg.name for cfg in c.list_collections()]
        # vector collections work as always; unknown encoder names are still INVALID_ARGUMENT
        c.create_collection("vecs", dim=3)
        c.upsert("vecs", ["x"], np.ones((1, 3), np.float32), texts=["stored only"])
        assert c.search("vecs", vector=[1, 1, 1], k=1)[0].text == "stored only"
        with pytest.raises(InvalidArgumentError):
            c.create_collection("bad", encoder="word2vec")
    assert "torch" not in srv.log() or "Traceback" not in srv.log()
