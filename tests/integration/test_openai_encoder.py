"""The ``openai:<model>`` encoder against a real local HTTP server that speaks the
OpenAI embeddings API (POST /v1/embeddings), serving real all-MiniLM-L6-v2
embeddings. The test starts it on 127.0.0.1; nothing is mocked."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

pytest.importorskip("sentence_transformers", reason="needs vecdb[encoders]")

from harness import InProcessServer  # noqa: E402
from vecdb import DatabaseOptions  # noqa: E402
from vecdb.encoders import EncoderOptions  # noqa: E402
from vecdb.encoders.openai_compat import OpenAICompatEncoder  # noqa: E402
from vecdb.encoders.st import minilm_path  # noqa: E402
from vecdb.errors import FailedPrecondition, Unavailable  # noqa: E402

KEY = "sk-test-123"


class EmbeddingsServer:
    """OpenAI-compatible embeddings endpoint with knobs: ``fail`` = statuses to answer the
    next requests with (e.g. [503]), ``delay_s`` before answering; ``log`` = requests seen."""

    def __init__(self, model, key: str):
        self.model, self.key = model, key
        self.fail: list[int] = []
        self.delay_s = 0.0
        self.log: list[dict] = []
        self.busy = 0  # handlers running (a delayed one must finish before knobs change)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.log.append({"path": self.path, "auth": self.headers.get("Authorization"),
                                  "n": len(body["input"]), "model": body["model"]})
                outer.busy += 1
                try:
                    self._answer(body)
                finally:
                    outer.busy -= 1

            def _answer(self, body):
                if outer.delay_s:
                    time.sleep(outer.delay_s)
                if self.path != "/v1/embeddings":
                    return self._send(404, {"error": {"message": "not found"}})
                if self.headers.get("Authorization") != f"Bearer {outer.key}":
                    return self._send(401, {"error": {"message": "invalid api key"}})
                if outer.fail:
                    code = outer.fail.pop(0)
                    return self._send(code, {"error": {"message": "overloaded"}},
                                      {"Retry-After": "0"} if code == 429 else {})
                vecs = outer.model.encode(body["input"])
                data = [{"object": "embedding", "index": i, "embedding": v.tolist()}
                        for i, v in enumerate(vecs)]
                data.reverse()  # clients must order by "index"
                self._send(200, {"object": "list", "data": data, "model": body["model"],
                                 "usage": {"prompt_tokens": 0, "total_tokens": 0}})

            def _send(self, code, obj, headers=None):
                raw = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def st_model():
    from sentence_transformers import SentenceTransformer
    return SentenceTransformer(minilm_path(), device="cpu")


@pytest.fixture(scope="module")
def api(st_model):
    srv = EmbeddingsServer(st_model, KEY)
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def key_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("secret") / "openai_key"
    path.write_text(KEY + "\n")
    return str(path)


@pytest.fixture(scope="module")
def vdb(api, key_file, tmp_path_factory):
    engine = DatabaseOptions(openai_base_url=api.url, openai_api_key_file=key_file,
                             openai_batch_size=4, openai_max_retries=2, openai_timeout_s=10)
    srv = InProcessServer(tmp_path_factory.mktemp("oai") / "data", engine=engine)
    yield srv
    srv.stop()


DOCS = ["a cat naps on the couch", "interest rates rose again", "the striker scored twice",
        "a recipe for tomato soup", "the central bank cut rates", "my dog chases its tail",
        "heavy rain flooded the streets", "the orchestra played Mozart", "a kitten on a mat",
        "bond yields climbed"]


def test_through_the_server(vdb, api, st_model):
    with vdb.client() as c:
        info = c.create_collection("oai_docs", encoder="openai:all-minilm-l6-v2")
        assert info.config.dim == 384  # learned from a probe request
        n0 = len(api.log)
        c.upsert("oai_docs", [f"d{i}" for i in range(len(DOCS))], texts=DOCS)
        sent = api.log[n0:]
        assert [r["n"] for r in sent] == [4, 4, 2]  # openai_batch_size texts per request
        assert all(r["auth"] == f"Bearer {KEY}" and r["model"] == "all-minilm-l6-v2" for r in sent)
        got = c.get("oai_docs", [f"d{i}" for i in range(len(DOCS))], with_vectors=True)
        np.testing.assert_allclose(np.stack([p.vector for p in got]), st_model.encode(DOCS),
                                   atol=1e-5)
        hits = c.search("oai_docs", text="a kitten sleeps on the sofa", k=3)
        assert {h.text for h in hits[:2]} == {"a cat naps on the couch", "a kitten on a mat"}
        by = {h.text: h.score for h in c.search("oai_docs", text="a kitten sleeps on the sofa",
                                                k=len(DOCS))}
        assert by["a cat naps on the couch"] > by["interest rates rose again"]


def test_retries_a_503_and_a_429(vdb, api):
    with vdb.client() as c:
        for code in (503, 429):
            api.fail = [code]
            n0 = len(api.log)
            hits = c.search("oai_docs", text="monetary policy", k=2)
            assert {h.text for h in hits} <= {"interest rates rose again", "the central bank cut rates",
                                              "bond yields climbed"}
            assert len(api.log) - n0 == 2  # the failed attempt and the retry


def test_errors(api, key_file):
    opts = EncoderOptions(openai_base_url=api.url, openai_api_key_file=key_file,
                          openai_timeout_s=0.3, openai_max_retries=1)
    enc = OpenAICompatEncoder("m", opts)
    # a timeout on every attempt -> Unavailable after 1 + max_retries tries
    api.delay_s = 1.0
    try:
        t0, n0 = time.monotonic(), len(api.log)
        with pytest.raises(Unavailable) as e:
            enc.encode(["slow"])
        assert time.monotonic() - t0 < 3.0 and len(api.log) - n0 == 2
        assert "after 2 attempts" in e.value.message
    finally:
        api.delay_s = 0.0
        deadline = time.monotonic() + 10  # the slow handlers finish before the next knob is set
        while api.busy and time.monotonic() < deadline:
            time.sleep(0.05)
    # retries exhausted on 5xx
    api.fail = [502, 502]
    with pytest.raises(Unavailable):
        enc.encode(["x"])
    # a wrong key is not retried and does not leak into the message
    bad = EncoderOptions(openai_base_url=api.url, openai_max_retries=3)
    n0 = len(api.log)
    with pytest.raises(FailedPrecondition) as e:
        OpenAICompatEncoder("m", bad)
    assert "401" in e.value.message and len(api.log) - n0 == 1
    # the character cap cuts texts before they are sent
    capped = OpenAICompatEncoder("m", EncoderOptions(openai_base_url=api.url,
                                                     openai_api_key_file=key_file,
                                                     openai_max_chars=5))
    a, b = capped.encode(["hello world", "hello there"])
    np.testing.assert_allclose(a, b, atol=1e-6)
    # nothing listening -> Unavailable (connection refused), not a crash
    gone = EncoderOptions(openai_base_url="http://127.0.0.1:9/v1", openai_max_retries=0,
                          openai_timeout_s=1)
    with pytest.raises(Unavailable):
        OpenAICompatEncoder("m", gone)
