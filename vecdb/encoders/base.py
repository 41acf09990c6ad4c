"""The encoder protocol, the registry and the per-process cache.

An encoder turns texts into float32 vectors. A collection names one by its
*spec* (``CollectionConfig.encoder``): ``minilm``, ``sentence-transformers:<dir>``
or ``openai:<model>``. ``get_encoder(spec, options)`` returns ONE shared
:class:`EncoderHandle` per (spec, options) per process: the model is loaded
lazily on first use (thread-safe: concurrent first calls load it once), and
every call goes through the handle's micro-batcher (batcher.py), so concurrent
requests share model calls.

Observers: ``observers`` is a module-level list of callables
``fn(spec, kind, texts, seconds)`` run after every model call (``texts`` = how
many texts the merged call encoded, ``seconds`` = wall time of the call). The
server's metrics append one to feed ``vecdb_encoder_seconds``; an observer must
be fast and must not raise (exceptions are logged and swallowed).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Protocol, runtime_checkable

import numpy as np

from ..errors import FailedPrecondition, InvalidArgument
from .batcher import MicroBatcher

log = logging.getLogger("vecdb.encoders")

KINDS = ("document", "query")
INSTALL_HINT = "pip install 'vecdb[encoders]'"
DEFAULT_ENCODER = "minilm"

# fn(spec, kind, texts, seconds) after every model call (see the module doc).
observers: list[Callable[[str, str, int, float], None]] = []


@runtime_checkable
class Encoder(Protocol):
    """What a built-in (or registered) encoder provides."""

    name: str              # the spec it was created from
    dimension: int         # length of every vector it returns
    max_input_length: int  # tokens (sentence-transformers) or characters (openai cap); 0 = none

    def encode(self, texts: list[str], kind: str = "document") -> np.ndarray:
        """(len(texts), dimension) float32. ``kind``: "document" (upsert) or "query" (search)."""
        ...


@dataclass(frozen=True)
class EncoderOptions:
    """The encoder settings of DatabaseOptions (vecdb/config.py documents each)."""

    device: str = "auto"         # auto | cpu | cuda
    fp16: bool = False           # half precision, only on cuda
    batch_size: int = 64         # most texts per model call
    batch_wait_ms: float = 2.0   # how long a call waits for others to merge with
    openai_base_url: str = ""    # "" = $OPENAI_BASE_URL or https://api.openai.com/v1
    openai_api_key_file: str = ""  # "" = $OPENAI_API_KEY (may stay empty for local servers)
    openai_timeout_s: float = 30.0
    openai_max_retries: int = 3
    openai_batch_size: int = 256
    openai_max_chars: int = 0    # 0 = send texts whole

    @classmethod
    def from_database_options(cls, opts) -> "EncoderOptions":
        return cls(device=opts.encoder_device, fp16=opts.encoder_fp16,
                   batch_size=opts.encoder_batch_size, batch_wait_ms=opts.encoder_batch_wait_ms,
                   openai_base_url=opts.openai_base_url,
                   openai_api_key_file=opts.openai_api_key_file,
                   openai_timeout_s=opts.openai_timeout_s,
                   openai_max_retries=opts.openai_max_retries,
                   openai_batch_size=opts.openai_batch_size,
                   openai_max_chars=opts.openai_max_chars)


Factory = Callable[[str, EncoderOptions], Encoder]
# (arg, options) -> the dimension without loading the model, or None when unknown
Probe = Callable[[str, EncoderOptions], "int | None"]
_FACTORIES: dict[str, tuple[Factory, bool]] = {}  # kind -> (factory, takes an argument)
_PROBES: dict[str, Probe] = {}


def register(kind: str, factory: Factory, takes_argument: bool,
             probe: Probe | None = None) -> None:
    """Add an encoder kind: ``kind`` alone (takes_argument False) or ``kind:<arg>``.
    ``probe`` tells the dimension cheaply (e.g. from config files) so that creating a
    collection does not wait for a model load; it raises what loading would raise
    for a missing dependency."""
    _FACTORIES[kind] = (factory, takes_argument)
    if probe is not None:
        _PROBES[kind] = probe


def parse_spec(spec: str) -> tuple[str, str]:
    """``"openai:text-embedding-3-small"`` -> ("openai", "text-embedding-3-small").
    InvalidArgument (field ``encoder``) for an unknown kind or a missing argument."""
    _builtins()
    kind, sep, arg = spec.partition(":")
    if kind not in _FACTORIES:
        known = ", ".join(k + ("" if not a else ":<arg>") for k, (_, a) in sorted(_FACTORIES.items()))
        raise InvalidArgument(f"unknown encoder {spec!r}; known: {known}", "encoder")
    takes = _FACTORIES[kind][1]
    if takes and not arg.strip():
        raise InvalidArgument(f"encoder {kind!r} needs an argument: {kind}:<...>", "encoder")
    if not takes and sep:
        raise InvalidArgument(f"encoder {kind!r} takes no argument, got {spec!r}", "encoder")
    return kind, arg.strip()


def missing_extra(spec: str, exc: BaseException) -> FailedPrecondition:
    return FailedPrecondition(
        f"encoder {spec!r} needs the optional encoder dependencies (torch, sentence-transformers), "
        f"which are not installed here ({exc}); install them with: {INSTALL_HINT}", "encoder")


class EncoderHandle:
    """The shared front of one encoder: lazy thread-safe load, micro-batching, timing."""

    def __init__(self, spec: str, options: EncoderOptions):
        self.spec, self.options = spec, options
        self._kind, self._arg = parse_spec(spec)
        self._lock = threading.Lock()
        self._model: Encoder | None = None
        self._batcher: MicroBatcher | None = None
        self._stats_lock = threading.Lock()
        self._window = [time.monotonic(), 0, 0, 0.0]  # start, calls, texts, seconds

    # ---- loading --------------------------------------------------------------
    def load(self) -> Encoder:
        """Load the model once (the first caller loads, the others wait for it)."""
        model = self._model
        if model is not None:
            return model
        with self._lock:
            if self._model is None:
                t0 = time.monotonic()
                self._model = _FACTORIES[self._kind][0](self._arg, self.options)
                self._batcher = MicroBatcher(self._call, self.options.batch_size,
                                             self.options.batch_wait_ms / 1000.0,
                                             name=f"vecdb-encoder-{self._kind}")
                log.info("encoder %s loaded in %.2fs (dim=%d, max input %d)", self.spec,
                         time.monotonic() - t0, self._model.dimension,
                         self._model.max_input_length)
            return self._model

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def dimension(self) -> int:
        """The vector length; from the kind's probe (config files, no model load) when
        the model is not loaded yet and the probe knows it, else loads the model."""
        model = self._model
        if model is None and self._kind in _PROBES:
            dim = _PROBES[self._kind](self._arg, self.options)
            if dim:
                return int(dim)
        return self.load().dimension

    @property
    def max_input_length(self) -> int:
        return self.load().max_input_length

    # ---- encoding ---------------------------------------------------------------
    def encode(self, texts: list[str], kind: str = "document") -> np.ndarray:
        """(len(texts), dim) float32; merged with concurrent calls of the same kind."""
        if kind not in KINDS:
            raise InvalidArgument(f"kind must be one of {', '.join(KINDS)}, got {kind!r}", "kind")
        self.load()
        if not texts:
            return np.zeros((0, self.dimension), np.float32)
        return self._batcher.submit(list(texts), kind)

    def _call(self, texts: list[str], kind: str) -> np.ndarray:
        t0 = time.perf_counter()
        out = np.ascontiguousarray(self._model.encode(texts, kind), dtype=np.float32)
        dt = time.perf_counter() - t0
        log.debug("encoder %s: %d %s texts in %.1f ms", self.spec, len(texts), kind, dt * 1000)
        for fn in list(observers):
            try:
                fn(self.spec, kind, len(texts), dt)
            except Exception:  # noqa: BLE001 - an observer never breaks encoding
                log.exception("encoder observer failed")
        self._account(len(texts), dt)
        return out

    def _account(self, n: int, dt: float) -> None:
        """One INFO line per encoder per minute at most: texts, calls, encoding time."""
        with self._stats_lock:
            w = self._window
            w[1] += 1
            w[2] += n
            w[3] += dt
            now = time.monotonic()
            if now - w[0] < 60.0:
                return
            start, calls, texts, secs = w
            self._window = [now, 0, 0, 0.0]
        log.info("encoder %s: %d texts in %d model calls, %.2fs encoding over the last %.0fs",
                 self.spec, texts, calls, secs, now - start)

    def close(self) -> None:
        if self._batcher is not None:
            self._batcher.close()


_CACHE: dict[tuple[str, EncoderOptions], EncoderHandle] = {}
_CACHE_LOCK = threading.Lock()


def get_encoder(spec: str, options: EncoderOptions | None = None) -> EncoderHandle:
    """The process-wide handle for ``spec`` (created on first call; the model itself
    loads on first use or ``handle.load()``). InvalidArgument for an unknown spec."""
    options = options or EncoderOptions()
    key = (spec, options)
    with _CACHE_LOCK:
        handle = _CACHE.get(key)
        if handle is None:
            handle = _CACHE[key] = EncoderHandle(spec, options)
        return handle


def loaded_encoders() -> list[str]:
    """Specs whose model is loaded in this process."""
    with _CACHE_LOCK:
        return sorted({spec for (spec, _), h in _CACHE.items() if h.loaded})


_BUILTINS_DONE = False


def _builtins() -> None:
    """Register the built-in kinds (imports are cheap: torch loads only with a model)."""
    global _BUILTINS_DONE
    if _BUILTINS_DONE:
        return
    from . import openai_compat, st
    register("minilm", st.load_minilm, takes_argument=False, probe=st.probe_minilm)
    register("sentence-transformers", st.load_local, takes_argument=True, probe=st.probe_local)
    register("openai", openai_compat.load, takes_argument=True)
    _BUILTINS_DONE = True  # last: a concurrent caller at worst registers them twice
