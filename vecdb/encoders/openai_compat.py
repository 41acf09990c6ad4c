"""``openai:<model>``: any OpenAI-compatible ``POST <base>/embeddings`` endpoint
(OpenAI, vLLM, TEI, Ollama, LiteLLM...). Standard library only (urllib).

Config (DatabaseOptions, i.e. server flags / VECDB_* env / YAML keys):
``openai_base_url`` (else $OPENAI_BASE_URL, else https://api.openai.com/v1; the
URL includes the ``/v1`` part), the API key from $OPENAI_API_KEY or the first line of the file
``openai_api_key_file`` (the file wins; sent as ``Authorization: Bearer``; none
= no header, fine for local servers), ``openai_timeout_s``
per HTTP request, ``openai_max_retries`` extra attempts on 429, 5xx, timeouts and
connection errors (exponential backoff from 0.25 s, doubled each try, capped at
8 s; a ``Retry-After`` header of at most 30 s is honoured), ``openai_batch_size``
texts per HTTP request, ``openai_max_chars`` (0 = off) cuts each text to that
many characters before sending (the server's own token limit applies after).

Errors: 400/413/422 -> InvalidArgument (the endpoint refused the input);
401/403/404 -> FailedPrecondition (key, model or URL is wrong); retries
exhausted -> Unavailable. The API key never appears in messages or logs.
The dimension is learned from one probe request when the encoder loads.
"""
from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request

import numpy as np

from ..errors import FailedPrecondition, InvalidArgument, Unavailable
from .base import EncoderOptions

log = logging.getLogger("vecdb.encoders")
DEFAULT_BASE_URL = "https://api.openai.com/v1"
_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class OpenAICompatEncoder:
    def __init__(self, model: str, options: EncoderOptions, probe: bool = True):
        self.name = f"openai:{model}"
        self.model = model
        self.base_url = (options.openai_base_url or os.environ.get("OPENAI_BASE_URL")
                         or DEFAULT_BASE_URL).rstrip("/")
        self._key = _api_key(options.openai_api_key_file)
        self.timeout_s = options.openai_timeout_s or 30.0
        self.max_retries = options.openai_max_retries
        self.batch_size = max(1, options.openai_batch_size)
        self.max_input_length = options.openai_max_chars
        self.requests = 0  # HTTP requests sent (tests read it)
        self.dimension = 0
        if probe:
            self.dimension = int(self._post(["dimension probe"]).shape[1])

    def encode(self, texts: list[str], kind: str = "document") -> np.ndarray:
        if self.max_input_length:
            texts = [t[:self.max_input_length] for t in texts]
        parts = [self._post(texts[i:i + self.batch_size])
                 for i in range(0, len(texts), self.batch_size)]
        out = np.concatenate(parts) if parts else np.zeros((0, self.dimension), np.float32)
        if self.dimension and out.shape[1] != self.dimension:
            raise Unavailable(f"encoder {self.name!r}: the endpoint returned {out.shape[1]}-d "
                              f"vectors, expected {self.dimension}", "encoder")
        return out

    # ---- HTTP ---------------------------------------------------------------------
    def _post(self, texts: list[str]) -> np.ndarray:
        body = json.dumps({"model": self.model, "input": texts,
                           "encoding_format": "float"}).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   "User-Agent": "vecdb-encoder"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        url = self.base_url + "/embeddings"
        last, delay = "", 0.25
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(delay)
            delay = min(8.0, 0.25 * 2 ** attempt)
            self.requests += 1
            try:
                req = urllib.request.Request(url, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    return self._parse(resp.read(), len(texts))
            except urllib.error.HTTPError as exc:
                detail = _detail(exc)
                if exc.code in _RETRY_STATUS:
                    last = f"HTTP {exc.code}: {detail}"
                    retry_after = _retry_after(exc)
                    if retry_after is not None:
                        delay = retry_after
                    log.warning("encoder %s: %s (attempt %d of %d)", self.name, last, attempt + 1,
                                self.max_retries + 1)
                    continue
                if exc.code in (400, 413, 422):
                    raise InvalidArgument(f"encoder {self.name!r}: the endpoint refused the input: "
                                          f"HTTP {exc.code}: {detail}", "texts") from None
                raise FailedPrecondition(f"encoder {self.name!r}: {url} answered HTTP {exc.code}: "
                                         f"{detail}", "encoder") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                last = f"{type(reason).__name__}: {reason}"
                log.warning("encoder %s: %s (attempt %d of %d)", self.name, last, attempt + 1,
                            self.max_retries + 1)
        raise Unavailable(f"encoder {self.name!r}: {url} failed after {self.max_retries + 1} "
                          f"attempts; last error: {last}", "encoder")

    def _parse(self, raw: bytes, n: int) -> np.ndarray:
        try:
            data = json.loads(raw)["data"]
            rows = sorted(data, key=lambda d: d.get("index", 0))
            out = np.asarray([r["embedding"] for r in rows], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as exc:
            raise Unavailable(f"encoder {self.name!r}: malformed embeddings response ({exc})",
                              "encoder") from None
        if out.ndim != 2 or out.shape[0] != n:
            raise Unavailable(f"encoder {self.name!r}: asked for {n} embeddings, got "
                              f"{out.shape[0] if out.ndim else 0}", "encoder")
        return out


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        text = exc.read(2000).decode("utf-8", "replace")
    except Exception:  # noqa: BLE001
        text = ""
    try:
        err = json.loads(text).get("error")
        text = err.get("message", text) if isinstance(err, dict) else (err or text)
    except (ValueError, AttributeError):
        pass
    return str(text).strip()[:300] or exc.reason or ""


def _retry_after(exc: urllib.error.HTTPError) -> float | None:
    try:
        value = float(exc.headers.get("Retry-After", ""))
    except (TypeError, ValueError):
        return None
    return value if 0 <= value <= 30 else None


def _api_key(path: str) -> str:
    if path:
        try:
            with open(path, encoding="utf-8") as fh:
                return fh.readline().strip()
        except OSError as exc:
            raise FailedPrecondition(f"openai_api_key_file {path!r} cannot be read: "
                                     f"{exc.strerror}", "openai_api_key_file") from None
    return os.environ.get("OPENAI_API_KEY", "").strip()


def load(arg: str, options: EncoderOptions) -> OpenAICompatEncoder:
    return OpenAICompatEncoder(arg, options)
