"""The web dashboard (docs/dashboard.md): a real server with API keys on 127.0.0.1 ephemeral
ports, real HTTP requests to its assets and its JSON API; answers compared with the gRPC
API's on the same data; roles, scopes, bad input, and keys never in the logs."""
from __future__ import annotations

import json
import logging
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import quote
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness import InProcessServer, make_config, rand
from vecdb_server.app import ServerApp
from vecdb_server.config import ConfigError, ServerConfig
from vecdb_server.dashboard import httpd, projection

ADMIN = "dash-adm-4c1f7a9e0b3d5f6a8c2e4b7d9f1a3c5e"
RW = "dash-rw-0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d"
RO = "dash-ro-7e6d5c4b3a29181716151413121110ff"
SCOPED = "dash-sc-1122334455667788990011223344556a"
KEYS = [{"key": ADMIN, "role": "admin"}, {"key": RW, "role": "read-write"},
        {"key": RO, "role": "read-only"},
        {"key": SCOPED, "role": "read-only", "collections": ["vecs"]}]
DIM = 12
N = 240
LANGS = ("en", "de", "fr")
TEXTS = ["The cat sleeps on the warm sofa all afternoon.",
         "Stock markets fell sharply after the interest rate decision.",
         "The football team won the championship final on penalties.",
         "A recipe for fresh pasta with tomatoes and basil.",
         "The new telescope photographed a distant spiral galaxy."]
STATIC = Path(__file__).resolve().parents[2] / "server" / "vecdb_server" / "dashboard" / "static"


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(scope="module")
def logs():
    handler, logger = _Records(), logging.getLogger("vecdb_server")
    old = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old)


@pytest.fixture(scope="module")
def srv(tmp_path_factory, logs):
    s = InProcessServer(tmp_path_factory.mktemp("dash") / "data", api_keys=KEYS,
                        dashboard_port=0)
    with s.client(api_key=ADMIN, timeout=300) as c:  # the first text upsert loads the model
        c.create_collection("vecs", dim=DIM, index="flat")
        c.upsert("vecs", [f"p{i}" for i in range(N)], rand(N, DIM, seed=3),
                 payloads=[{"lang": LANGS[i % 3], "n": i} for i in range(N)])
        c.create_payload_index("vecs", "lang", "keyword", wait=True)
        c.create_alias("vecs_alias", "vecs")
        c.create_collection("other", dim=4, index="flat")
        c.upsert("other", ["o1"], rand(1, 4))
        c.create_collection("docs", encoder="minilm")
        c.upsert("docs", [f"d{i}" for i in range(len(TEXTS))], texts=TEXTS,
                 payloads=[{"i": i} for i in range(len(TEXTS))])
    yield s
    s.stop()


def http(srv, method: str, path: str, body=None, key: str | None = None,
         raw: bytes | None = None, headers: dict | None = None
         ) -> tuple[int, Any, dict | bytes]:
    """(status, headers (names case-insensitive), JSON or bytes)."""
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    if headers is None:
        headers = {"Content-Type": "application/json"} if method == "POST" else {}
    req = urllib.request.Request(f"http://127.0.0.1:{srv.app.dashboard_port}{path}",
                                 data=data, method=method, headers=headers)
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            status, hdrs, payload = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        status, hdrs, payload = err.code, err.headers, err.read()
    if hdrs.get("Content-Type", "").startswith("application/json"):
        return status, hdrs, json.loads(payload)
    return status, hdrs, payload


def ok(srv, method, path, body=None, key=ADMIN):
    status, _, out = http(srv, method, path, body, key)
    assert status == 200, out
    return out


def error(srv, method, path, body=None, key=ADMIN) -> tuple[int, dict]:
    status, _, out = http(srv, method, path, body, key)
    assert status >= 400 and set(out) == {"error"}, out
    assert "Traceback" not in json.dumps(out)
    return status, out["error"]


# ---------------------------------------------------------------- assets
def test_assets_are_served_from_the_package(srv):
    status, hdrs, page = http(srv, "GET", "/")
    assert status == 200 and hdrs["Content-Type"].startswith("text/html")
    assert b'src="/static/app.js"' in page and b"http://" not in page and b"https://" not in page
    assert "default-src 'self'" in hdrs["Content-Security-Policy"]
    for name, kind in (("app.js", "text/javascript"), ("map.js", "text/javascript"),
                       ("app.css", "text/css"), ("index.html", "text/html")):
        status, hdrs, body = http(srv, "GET", f"/static/{name}")
        assert status == 200 and hdrs["Content-Type"].startswith(kind)
        assert body == (STATIC / name).read_bytes()
    vendored = "vendor/echarts/echarts.common.min.js"  # the plotting library, built file
    status, hdrs, body = http(srv, "GET", f"/static/{vendored}")
    assert status == 200 and hdrs["Content-Type"].startswith("text/javascript")
    assert body == (STATIC / vendored).read_bytes() and f'src="/static/{vendored}"'.encode() \
        in page
    assert "Apache License" in (STATIC / "vendor" / "echarts" / "LICENSE").read_text()
    for path in ("/static/../dashboard/api.py", "/static/nope.js", "/etc/passwd"):
        status, _, out = http(srv, "GET", path)
        assert status == 404 and out["error"]["code"] == "NOT_FOUND"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_javascript_parses():
    for path in STATIC.glob("*.js"):
        proc = subprocess.run(["node", "--check", str(path)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------- auth
def test_no_key_wrong_key_and_key_in_url_are_401(srv):
    status, hdrs, out = http(srv, "GET", "/api/status")
    assert status == 401 and "missing API key" in out["error"]["message"]
    assert hdrs["WWW-Authenticate"].startswith("Bearer")
    status, _, out = http(srv, "GET", "/api/status", key="not-a-key")
    assert status == 401 and out["error"]["message"] == "invalid API key"
    for query in (f"?api_key={ADMIN}", f"?key={ADMIN}", f"?authorization=Bearer%20{ADMIN}"):
        assert http(srv, "GET", "/api/status" + query)[0] == 401  # keys travel in headers only
    status, _, out = http(srv, "GET", "/api/whoami", headers={"X-API-Key": RO})
    assert status == 200 and out["role"] == "read-only"


def test_whoami_names_role_and_scope_never_the_key(srv):
    me = ok(srv, "GET", "/api/whoami", key=SCOPED)
    assert me["auth"] and me["role"] == "read-only" and me["collections"] == ["vecs"]
    assert "pca" in me["map_methods"] and SCOPED not in json.dumps(me)
    assert ok(srv, "GET", "/api/whoami")["role"] == "admin"


def test_read_only_and_read_write_keys_cannot_call_admin_endpoints(srv):
    with srv.client(api_key=ADMIN) as c:
        before = sorted(x.name for x in c.list_collections())
        for key in (RO, RW):
            for method, path, body in (
                    ("POST", "/api/collections", {"name": "forged", "dim": 4}),
                    ("DELETE", "/api/collections/other", None),
                    ("POST", "/api/collections/other/payload-indexes", {"field": "x"}),
                    ("POST", "/api/collections/other/snapshots", {}),
                    ("POST", "/api/snapshots/whatever/restore", {"collection": "forged"})):
                status, err = error(srv, method, path, body, key=key)
                assert status == 403 and err["code"] == "PERMISSION_DENIED", (key, path, err)
                assert "needs admin" in err["message"]
        assert sorted(x.name for x in c.list_collections()) == before
        assert c.describe_collection("other").payload_indexes == {}


def test_scoped_key_sees_only_its_collections(srv):
    status = ok(srv, "GET", "/api/status", key=SCOPED)
    assert [c["name"] for c in status["collections"]] == ["vecs"] and status["points"] == N
    assert status["version"] and status["uptime_s"] > 0  # GetServerInfo is open to scoped keys
    assert [c["name"] for c in ok(srv, "GET", "/api/collections", key=SCOPED)["collections"]] \
        == ["vecs"]
    assert ok(srv, "GET", "/api/collections/vecs_alias", key=SCOPED)["points"] == N
    for method, path, body in (("GET", "/api/collections/other", None),
                               ("POST", "/api/collections/other/points", {}),
                               ("GET", "/api/collections/other/points/o1", None),
                               ("POST", "/api/collections/other/search", {"id": "o1"}),
                               ("POST", "/api/collections/other/map", {})):
        status, err = error(srv, method, path, body, key=SCOPED)
        assert status == 403 and "may not use collection 'other'" in err["message"]


# ---------------------------------------------------------------- views
def test_status_matches_the_server(srv):
    from vecdb import __version__
    s = ok(srv, "GET", "/api/status", key=RO)
    assert s["version"] == __version__ and s["ready"] and s["uptime_s"] > 0
    assert s["memory"]["rss_bytes"] > 10 * 2**20 and s["cluster"] is None
    with srv.client(api_key=ADMIN) as c:
        expect = {x.name: c.count(x.name) for x in c.list_collections()}
    assert {x["name"]: x["points"] for x in s["collections"]} == expect
    assert s["points"] == sum(expect.values())


def test_collection_page(srv):
    with srv.client(api_key=ADMIN) as c:
        info = c.describe_collection("vecs")
        snap = c.create_snapshot("vecs")
    page = ok(srv, "GET", "/api/collections/vecs")
    assert page["config"]["dim"] == DIM and page["points"] == N
    assert page["memory_bytes"] == info.memory_bytes > 0 and page["gpu_memory_bytes"] == 0
    assert page["effective_index_params"] == info.effective_index_params
    assert [s["points"] for s in page["shards"]] == [s.points for s in info.shards]
    assert page["payload_indexes"] == {"lang": {"type": "keyword", "state": "ready"}}
    assert page["aliases"] == ["vecs_alias"]
    assert snap.name in [s["name"] for s in page["snapshots"]]
    ro = ok(srv, "GET", "/api/collections/vecs", key=RO)
    assert ro["snapshots"] is None and "needs admin" in ro["snapshots_error"]


def test_point_browser_filters_and_pages(srv):
    flt = '{"key": "lang", "match": "de"}'
    seen, cursor = [], None
    while True:
        page = ok(srv, "POST", "/api/collections/vecs/points",
                  {"filter": flt, "limit": 25, "cursor": cursor}, key=RO)
        assert page["count"] == N // 3
        seen += page["points"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(p["id"] for p in seen) == sorted(f"p{i}" for i in range(N) if i % 3 == 1)
    assert all(p["payload"]["lang"] == "de" and p["payload"]["n"] == int(p["id"][1:])
               for p in seen)
    point = ok(srv, "GET", "/api/collections/vecs/points/p7", key=RO)
    assert point == {"id": "p7", "payload": {"lang": LANGS[7 % 3], "n": 7}, "text": None}
    odd = "o/2 é?#"  # an id holding a slash and what a URL escapes: one path segment
    with srv.client(api_key=ADMIN) as c:
        c.upsert("other", [odd], rand(1, 4))
    try:
        assert ok(srv, "GET", "/api/collections/other/points/" + quote(odd, safe=""),
                  key=RO)["id"] == odd
    finally:
        with srv.client(api_key=ADMIN) as c:
            c.delete("other", [odd])


def test_search_by_id_matches_the_api_and_text_finds_the_expected_hit(srv):
    with srv.client(api_key=ADMIN) as c:
        expect = c.recommend("vecs", ["p5"], k=7, filter={"key": "lang", "match": "en"})
    got = ok(srv, "POST", "/api/collections/vecs/search",
             {"id": "p5", "k": 7, "filter": {"key": "lang", "match": "en"}}, key=RO)["hits"]
    assert [h["id"] for h in got] == [h.id for h in expect] and "p5" not in [h["id"] for h in got]
    assert np.allclose([h["score"] for h in got], [h.score for h in expect], atol=1e-6)
    hits = ok(srv, "POST", "/api/collections/docs/search",
              {"text": "a kitten napping on the couch", "k": 3, "ef_search": 32}, key=RO)["hits"]
    assert hits[0]["id"] == "d0" and hits[0]["text"] == TEXTS[0]
    assert hits[0]["payload"] == {"i": 0} and hits[0]["score"] > hits[1]["score"]
    more = ok(srv, "POST", "/api/collections/docs/search", {"id": "d0", "k": 2}, key=RO)["hits"]
    assert len(more) == 2 and "d0" not in [h["id"] for h in more]


def test_map_is_the_pca_of_the_sample_and_follows_writes(srv):
    body = {"sample": 150, "color": "lang"}
    m = ok(srv, "POST", "/api/collections/vecs/map", body, key=RO)
    while m["state"] == "running":
        m = ok(srv, "POST", "/api/collections/vecs/map", body, key=RO)
    assert m["state"] == "done" and m["sampled"] == 150 == len(m["ids"]) == len(m["x"])
    assert m["points"] == N and "lang" in m["fields"] and "n" in m["fields"]
    with srv.client(api_key=ADMIN) as c:
        points = c.get("vecs", m["ids"], with_vectors=True)
    assert m["color"] == [p.payload["lang"] for p in points]
    vecs = np.stack([p.vector for p in points]).astype(np.float64)
    centred = vecs - vecs.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    expect = u[:, :2] * s[:2]
    got = np.column_stack([m["x"], m["y"]])
    for axis in range(2):  # equal up to each axis' sign
        sign = np.sign(expect[:, axis] @ got[:, axis])
        assert np.allclose(got[:, axis], sign * expect[:, axis], atol=1e-3)
    again = ok(srv, "POST", "/api/collections/vecs/map", {"sample": 150}, key=RO)
    assert again["ids"] == m["ids"] and again["x"] == m["x"] and again["color"] is None
    with srv.client(api_key=ADMIN) as c:
        c.upsert("vecs", ["p0"], rand(1, DIM, seed=99) * 10, payloads=[{"lang": "en", "n": 0}])
    kept = ok(srv, "POST", "/api/collections/vecs/map", {"sample": 150, "refresh": False},
              key=RO)
    assert kept["x"] == m["x"]  # a page's poll keeps to its map while writes go on
    moved = ok(srv, "POST", "/api/collections/vecs/map", {"sample": 150}, key=RO)
    while moved["state"] == "running":
        moved = ok(srv, "POST", "/api/collections/vecs/map", {"sample": 150}, key=RO)
    assert moved["x"] != m["x"]  # a write made a new version: a fresh map is projected anew


def test_tsne_map_when_scikit_learn_is_installed(srv):
    pytest.importorskip("sklearn")
    assert "tsne" in ok(srv, "GET", "/api/whoami")["map_methods"]
    body = {"sample": 90, "method": "tsne", "filter": '{"key": "lang", "match": "fr"}'}
    m = ok(srv, "POST", "/api/collections/vecs/map", body, key=RO)
    while m["state"] == "running":
        m = ok(srv, "POST", "/api/collections/vecs/map", body, key=RO)
    assert m["state"] == "done" and m["method"] == "tsne" and len(m["x"]) == len(m["y"]) == 80
    assert all(int(i[1:]) % 3 == 2 for i in m["ids"])  # the filter chose the sample
    assert len(set(zip(m["x"], m["y"]))) == 80


def _maps_at_once(srv, bodies: list[dict]) -> list[tuple[int, dict, dict]]:
    """POST the map bodies from one thread each, released together."""
    barrier, out = threading.Barrier(len(bodies)), [None] * len(bodies)

    def one(i: int) -> None:
        barrier.wait()
        out[i] = http(srv, "POST", "/api/collections/vecs/map", bodies[i], RO)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def _until_done(srv, body: dict, coll: str = "vecs") -> dict:
    path = f"/api/collections/{coll}/map"
    m = ok(srv, "POST", path, {**body, "refresh": False}, key=RO)
    while m["state"] == "running":
        m = ok(srv, "POST", path, {**body, "refresh": False}, key=RO)
    assert m["state"] == "done", m
    return m


def test_identical_map_requests_share_one_job(srv):
    """t-SNE takes seconds: four identical requests at once join one job, none is refused
    (without sharing, all but MAX_RUNNING of them would be)."""
    pytest.importorskip("sklearn")
    body = {"sample": 30, "method": "tsne"}
    got = _maps_at_once(srv, [body] * 4)
    assert [g[0] for g in got] == [200] * 4, got
    assert len({g[2]["job"] for g in got}) == 1, got
    if got[0][2]["state"] == "running":  # a write meanwhile: a Draw still joins the job
        with srv.client(api_key=ADMIN) as c:
            c.upsert("vecs", ["p1"], c.get("vecs", ["p1"], with_vectors=True)[0].vector[None],
                     payloads=[{"lang": LANGS[1], "n": 1}])
        again = ok(srv, "POST", "/api/collections/vecs/map", body, key=RO)
        assert again["job"] == got[0][2]["job"]
    done = _until_done(srv, body)
    assert done["job"] == got[0][2]["job"] and len(done["x"]) == 30


def test_distinct_maps_beyond_the_limit_are_429_while_the_first_complete(srv):
    pytest.importorskip("sklearn")
    bodies = [{"sample": 31 + i, "method": "tsne"} for i in range(projection.MAX_RUNNING + 1)]
    got = _maps_at_once(srv, bodies)
    refused = [i for i, g in enumerate(got) if g[0] == 429]
    assert len(refused) == 1, [(g[0], g[2]) for g in got]
    status, hdrs, out = got[refused[0]]
    assert out["error"]["code"] == "RESOURCE_EXHAUSTED" and "limit" in out["error"]["message"]
    assert int(hdrs["Retry-After"]) >= 1
    started = [i for i in range(len(bodies)) if i not in refused]
    assert all(got[i][0] == 200 for i in started)
    assert len({got[i][2]["job"] for i in started}) == len(started)
    for i in started:
        assert len(_until_done(srv, bodies[i])["x"]) == bodies[i]["sample"]
    later = ok(srv, "POST", "/api/collections/vecs/map", bodies[refused[0]], key=RO)
    assert later["state"] in ("running", "done")  # the slots are free again
    assert len(_until_done(srv, bodies[refused[0]])["x"]) == bodies[refused[0]]["sample"]


def test_map_sample_caps_name_the_field(srv):
    caps = projection.MAX_SAMPLE
    for body, words in (({"sample": caps["pca"] + 1}, f"1..{caps['pca']} for pca"),
                        ({"sample": caps["tsne"] + 1, "method": "tsne"},
                         f"1..{caps['tsne']} for tsne")):
        if body.get("method", "pca") not in projection.methods():
            continue
        status, err = error(srv, "POST", "/api/collections/vecs/map", body, key=RO)
        assert status == 400 and err["field"] == "sample" and words in err["message"], err
    dim = 1024
    most = projection.MAX_SAMPLE_BYTES // (dim * 4)
    with srv.client(api_key=ADMIN) as c:
        c.create_collection("wide", dim=dim, index="flat")
        c.upsert("wide", ["w1", "w2"], rand(2, dim))
    try:
        status, err = error(srv, "POST", "/api/collections/wide/map", {"sample": most + 1},
                            key=RO)
        assert status == 400 and err["field"] == "sample", err
        assert f"at most {most} points of dim {dim}" in err["message"], err
        assert _until_done(srv, {"sample": most}, "wide")["ids"] == ["w1", "w2"]
    finally:
        ok(srv, "DELETE", "/api/collections/wide")
    encoded = _until_done(srv, {"sample": 4}, "docs")  # dim from the encoder
    assert encoded["sampled"] == 4 == len(encoded["x"]) and set(encoded["ids"]) < {
        f"d{i}" for i in range(len(TEXTS))}


def test_connections_beyond_the_limit_get_503(srv):
    port = srv.app.dashboard_port
    held = [socket.create_connection(("127.0.0.1", port), timeout=10)
            for _ in range(httpd.MAX_CONNECTIONS)]
    try:
        status, hdrs, out = http(srv, "GET", "/api/whoami", key=RO)
        assert status == 503 and out["error"]["code"] == "UNAVAILABLE", out
        assert hdrs["Retry-After"] == "1" and "connections" in out["error"]["message"]
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 10
    while (status := http(srv, "GET", "/api/whoami", key=RO)[0]) == 503 \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status == 200


def test_pca_of_a_plane_recovers_it():
    rng = np.random.default_rng(0)
    plane = rng.standard_normal((500, 2)) * [5.0, 2.0]
    basis = np.linalg.qr(rng.standard_normal((20, 2)))[0].T
    coords = projection.pca_2d(plane @ basis + 3.0)
    assert np.allclose(np.abs(coords.std(axis=0)), plane.std(axis=0), rtol=1e-3)
    assert projection.pca_2d(np.zeros((0, 4))).shape == (0, 2)
    assert np.allclose(projection.pca_2d(np.ones((3, 4))), 0)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("path,body,status,field,words", [
    ("/api/collections/vecs/points", {"filter": "{bad"}, 400, "filter", "not valid JSON"),
    ("/api/collections/vecs/points", {"filter": {"key": "lang", "matc": "x"}}, 400,
     "filter.must[0].matc", "unknown operator"),
    ("/api/collections/vecs/points", {"filter": {"must": [{"key": "n", "range": {"gt": "a"}}]}},
     400, "filter.must[0].range.gt", "range"),
    ("/api/collections/vecs/points", {"limit": "many"}, 400, "limit", "integer"),
    ("/api/collections/nope/points", {}, 404, "collection", "does not exist"),
    ("/api/collections/vecs/search", {"id": "p1", "k": 0}, 400, "k", "k"),
    ("/api/collections/vecs/search", {"id": "no-such-point"}, 404, None, "no-such-point"),
    ("/api/collections/vecs/search", {"text": "hi"}, 400, "texts", "no encoder"),
    ("/api/collections/vecs/search", {}, 400, "text", "exactly one"),
    ("/api/collections/vecs/map", {"sample": 0}, 400, "sample", "1..50000"),
    ("/api/collections/vecs/map", {"method": "magic"}, 400, "method", "pca"),
    ("/api/collections", {"name": "bad name!", "dim": 4}, 400, "name", "name"),
    ("/api/collections", {"name": "x", "dim": "four"}, 400, "dim", "integer"),
])
def test_bad_input_gets_the_api_error_naming_the_field(srv, path, body, status, field, words):
    got, err = error(srv, "POST", path, body)
    assert got == status, err
    assert words in err["message"], err
    if field is not None:
        assert err.get("field") == field, err


def test_bad_requests_are_json_errors_and_the_server_stays_up(srv):
    for raw in (b"{not json", b"[1, 2]", b"\xff\xfe"):
        status, _, out = http(srv, "POST", "/api/collections/vecs/points", key=ADMIN, raw=raw,
                              headers={"Content-Type": "application/json"})
        assert status == 400 and out["error"]["code"] == "INVALID_ARGUMENT"
    assert error(srv, "GET", "/api/nothing")[0] == 404
    assert error(srv, "POST", "/api/status")[0] == 405
    status, err = error(srv, "PUT", "/api/status")
    assert status == 405 and err["message"] == "PUT /api/status is not supported; use GET"
    assert ok(srv, "GET", "/api/status")["points"] > 0
    with srv.client(api_key=ADMIN) as c:
        assert c.count("vecs") == N


# ---------------------------------------------------------------- admin actions
def test_admin_creates_indexes_snapshots_restores_and_drops(srv):
    info = ok(srv, "POST", "/api/collections", {"name": "made", "dim": 4, "index": "flat"})
    assert info["config"]["name"] == "made" and info["config"]["dim"] == 4
    status, err = error(srv, "POST", "/api/collections", {"name": "made", "dim": 4})
    assert status == 409 and err["code"] == "ALREADY_EXISTS"
    with srv.client(api_key=ADMIN) as c:
        c.upsert("made", ["a", "b"], rand(2, 4), payloads=[{"k": "x"}, {"k": "y"}])
    ok(srv, "POST", "/api/collections/made/payload-indexes", {"field": "k", "type": "keyword"})
    snap = ok(srv, "POST", "/api/collections/made/snapshots", {})
    restored = ok(srv, "POST", f"/api/snapshots/{snap['name']}/restore", {"collection": "made2"})
    assert restored["config"]["name"] == "made2" and restored["points"] == 2
    for name in ("made", "made2"):
        assert ok(srv, "DELETE", f"/api/collections/{name}") == {"dropped": name}
    with srv.client(api_key=ADMIN) as c:
        assert not {"made", "made2"} & {x.name for x in c.list_collections()}
    assert error(srv, "DELETE", "/api/collections/made")[0] == 404


# ---------------------------------------------------------------- keys and logs
def test_no_key_in_logs(srv, logs):
    http(srv, "GET", "/api/status", key="wrong-" + ADMIN)  # a near-miss key is not logged either
    assert logs.lines, "nothing was logged"
    assert any("/api/status" in line for line in logs.lines)  # requests are logged (DEBUG)
    text = "\n".join(logs.lines)
    for key in (ADMIN, RW, RO, SCOPED):
        assert key not in text and key[:16] not in text


# ---------------------------------------------------------------- configuration
def test_dashboard_port_setting():
    assert ServerConfig().dashboard_port == -1
    with pytest.raises(ConfigError, match="dashboard_port"):
        ServerConfig(dashboard_port=-2)


def test_no_keys_on_a_non_loopback_dashboard_host_refuses_to_start(tmp_path):
    app = ServerApp(make_config(tmp_path / "d", dashboard_port=0, dashboard_host="0.0.0.0"))
    with pytest.raises(OSError, match="dashboard_host 0.0.0.0 .* no api_keys"):
        app.start()


def test_aio_server_serves_the_dashboard_and_logs_its_address(spawn):
    proc = spawn("--server-mode", "aio", "--dashboard-port", "0", "--log-level", "DEBUG",
                 env={"VECDB_API_KEYS": f"{RO}:read-only"})
    port = int(re.search(r"dashboard on http://127\.0\.0\.1:(\d+)/", proc.log()).group(1))

    class _Srv:  # what http() needs
        class app:
            dashboard_port = port
    assert http(_Srv, "GET", "/api/status")[0] == 401
    status, _, out = http(_Srv, "GET", "/api/status", key=RO)
    assert status == 200 and out["collections"] == []
    assert http(_Srv, "GET", "/")[0] == 200
    assert RO not in proc.log()


def test_cross_site_requests_are_refused(srv, tmp_path):
    """A form post from another site (text/plain, no preflight) and, without keys, a
    DNS-rebinding name for 127.0.0.1."""
    for ctype in ("text/plain", "application/x-www-form-urlencoded", None):
        status, _, out = http(srv, "POST", "/api/collections", {"name": "csrf", "dim": 4},
                              key=ADMIN, headers={"Content-Type": ctype} if ctype else {})
        assert status == 415 and "application/json" in out["error"]["message"]
    with srv.client(api_key=ADMIN) as c:
        assert "csrf" not in [x.name for x in c.list_collections()]
    open_srv = InProcessServer(tmp_path / "d", dashboard_port=0)  # no keys
    try:
        for host, expect in (("evil.example:80", 403), ("localhost:1", 200),
                             ("127.0.0.1", 200), ("[::1]:8080", 200)):
            status, _, out = http(open_srv, "GET", "/api/status", headers={"Host": host})
            assert status == expect, (host, out)
        status, _, out = http(open_srv, "POST", "/api/collections", {"name": "rb", "dim": 4},
                              headers={"Host": "rebind.example", "Content-Type":
                                       "application/json"})
        assert status == 403 and "Host 'rebind.example' is not allowed" in out["error"]["message"]
        assert http(srv, "GET", "/api/whoami", key=RO, headers={"Host": "vecdb.svc"})[0] == 200
    finally:
        open_srv.stop()


def test_rate_limit_is_429_with_retry_after(tmp_path):
    s = InProcessServer(tmp_path / "d", dashboard_port=0, rate_limit_rps=0.2)
    try:
        assert http(s, "GET", "/api/collections")[0] == 200
        status, hdrs, out = http(s, "GET", "/api/collections")
        assert status == 429 and out["error"]["code"] == "RESOURCE_EXHAUSTED"
        assert int(hdrs["Retry-After"]) >= 1 and "rate limit" in out["error"]["message"]
    finally:
        s.stop()


def test_https_with_the_grpc_certificate_and_client_certificates(tmp_path):
    pytest.importorskip("cryptography")
    import ssl

    from cryptography.hazmat.primitives.asymmetric import ec
    from test_tls import _cert, _name, _write

    ca_key, srv_key, cli_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = _cert("dash CA", ca_key, _name("dash CA"), ca_key, ca=True)
    files = {"ca": _write(tmp_path / "ca.pem", ca),
             "cert": _write(tmp_path / "s.pem", _cert("localhost", srv_key, ca.subject, ca_key,
                                                       server=True)),
             "key": _write(tmp_path / "s.key", key=srv_key),
             "ccert": _write(tmp_path / "c.pem", _cert("client", cli_key, ca.subject, ca_key)),
             "ckey": _write(tmp_path / "c.key", key=cli_key)}
    s = InProcessServer(tmp_path / "d", dashboard_port=0, tls_cert_file=str(files["cert"]),
                        tls_key_file=str(files["key"]), tls_client_ca_file=str(files["ca"]))
    try:
        url = f"https://127.0.0.1:{s.app.dashboard_port}/api/whoami"
        ctx = ssl.create_default_context(cafile=str(files["ca"]))
        ctx.load_cert_chain(str(files["ccert"]), str(files["ckey"]))
        with urllib.request.urlopen(url, context=ctx, timeout=20) as resp:
            assert resp.status == 200 and json.loads(resp.read())["role"] == "admin"
        bare = ssl.create_default_context(cafile=str(files["ca"]))  # no client certificate
        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
            urllib.request.urlopen(url, context=bare, timeout=20).read()
        with pytest.raises((urllib.error.URLError, ConnectionError, http_client_errors())):
            urllib.request.urlopen(url.replace("https", "http"), timeout=20).read()
    finally:
        s.stop()


def http_client_errors() -> type:
    import http.client
    return http.client.HTTPException
