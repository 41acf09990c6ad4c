"""vecdbctl as a subprocess against a real server subprocess, output parsed as JSON.

One server serves the module (starting one per test would dominate the run time);
the README test, which needs a clean server, gets its own through ``spawn``."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from harness import ROOT, SRC_PATHS, ServerProcess, rand
from vecdb_client.cli.completion import walk
from vecdb_client.cli.parser import build_parser

BIN = str(Path(sys.executable).parent)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The CLI starts ~100 times here: let those runs share compiled bytecode (~20% of a
# start) even where PYTHONDONTWRITEBYTECODE is set, kept outside the checkout.
PYCACHE = os.path.join(tempfile.gettempdir(), f"vecdbctl-test-pycache-{os.getuid()}")


def cli_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(SRC_PATHS),
           "PYTHONPYCACHEPREFIX": PYCACHE, **extra}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _cli_cmd(args: tuple[str, ...], host: str | None) -> tuple[list[str], dict[str, str]]:
    env = cli_env()
    env.pop("VECDB_HOST", None)
    prefix = ["--host", host] if host else []
    return [sys.executable, "-m", "vecdb_client.cli", *prefix, *args], env


def cli(*args: str, host: str | None = None, cwd: Path | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess:
    cmd, env = _cli_cmd(args, host)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=timeout)


def cli_many(calls: list[tuple[str, ...]], host: str) -> list[subprocess.CompletedProcess]:
    """Several independent CLI runs at once (each mostly waits on its imports)."""
    procs = []
    for args in calls:
        cmd, env = _cli_cmd(args, host)
        procs.append((cmd, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                            text=True, env=env)))
    done = []
    for cmd, p in procs:
        out, err = p.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(cmd, p.returncode, out, err))
    return done


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    p = ServerProcess(tmp_path_factory.mktemp("cli") / "data")
    yield p
    p.close()


@pytest.fixture
def run(srv):
    """run(*args) -> parsed JSON stdout of a successful `vecdbctl -o json ...`."""
    def _run(*args: str, **kw):
        out = cli(*args, "-o", "json", host=srv.target, **kw)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)
    return _run


def fail(out: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    assert out.returncode == code, (out.returncode, out.stdout, out.stderr)
    for needle in needles:
        assert needle in out.stderr, out.stderr
    return out.stderr


def one_line_error(out: subprocess.CompletedProcess, *needles: str) -> str:
    err = fail(out, 1, *needles)
    assert len(err.strip().splitlines()) == 1 and err.startswith("vecdbctl: error: "), err
    assert "Traceback" not in err and out.stdout == ""
    return err


def write_jsonl(path: Path, n: int, dim: int, prefix: str = "p") -> np.ndarray:
    vecs = rand(n, dim, seed=3)
    with open(path, "w") as f:
        for i in range(n):
            row = {"id": f"{prefix}{i}", "vector": vecs[i].tolist(),
                   "payload": {"group": f"g{i % 3}", "n": i, "meta": {"even": i % 2 == 0}}}
            if i % 2:
                row["text"] = f"text {i}"
            f.write(json.dumps(row) + "\n")
    return vecs


def create(srv: ServerProcess, name: str, dim: int, **kw) -> None:
    """Set-up through the SDK where the CLI command is not what the test is about."""
    with srv.client() as c:
        c.create_collection(name, dim, **kw)


def count(srv: ServerProcess, name: str) -> int:
    with srv.client() as c:
        return c.count(name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- collections, alias, status
def test_collections_alias_and_status(run, srv):
    created = run("collections", "create", "cli_a", "--dim", "8", "--metric", "l2",
                  "--index", "hnsw", "--shards", "2", "--param", "M=16")
    assert (created["name"], created["dim"], created["metric"], created["index"],
            created["shards"], created["points"]) == ("cli_a", 8, "l2", "hnsw", 2, 0)
    assert created["index_params"]["M"] == 16 and len(created["shard_stats"]) == 2
    one_line_error(cli("collections", "create", "cli_a", "--dim", "8", host=srv.target),
                   "ALREADY_EXISTS")
    assert run("collections", "create", "cli_a", "--dim", "8", "--exist-ok")["name"] == "cli_a"
    assert "cli_a" in [c["name"] for c in run("collections", "list")]
    assert run("alias", "set", "cli_alias", "cli_a") == {"alias": "cli_alias",
                                                         "collection": "cli_a"}
    assert run("alias", "list")["cli_alias"] == "cli_a"
    assert run("alias", "list", "--collection", "cli_a") == {"cli_alias": "cli_a"}
    described = run("collections", "describe", "cli_alias")  # aliases resolve
    assert described["name"] == "cli_a" and described["aliases"] == ["cli_alias"]

    status = run("status")
    from vecdb import __version__ as server_version
    assert status["health"] == "SERVING" and status["server_version"] == server_version
    assert status["uptime_s"] >= 0
    assert status["client_version"] and status["target"] == srv.target
    assert any(c["name"] == "cli_a" and c["index_state"] for c in status["collection_stats"])
    assert status["collections"] == len(status["collection_stats"])
    human = cli("status", host=srv.target)
    assert f"server version  {server_version}" in human.stdout, human.stdout

    assert run("alias", "delete", "cli_alias") == {"alias": "cli_alias", "deleted": True}
    assert run("collections", "drop", "cli_a", "--yes") == {"name": "cli_a", "dropped": True}
    one_line_error(cli("collections", "describe", "cli_a", host=srv.target), "NOT_FOUND")
    assert run("collections", "drop", "cli_a", "--yes", "--missing-ok")["dropped"] is False


def test_snapshots(run, srv):
    create(srv, "cli_snap", 4, metric="l2")
    with srv.client() as c:
        c.upsert("cli_snap", ["a", "b", "c"], np.eye(3, 4, dtype=np.float32), [{"n": i} for i in range(3)])
    made = run("snapshot", "create", "cli_snap", "--name", "cli-snap-1", "--tar")
    assert (made["name"], made["collection"], made["points"]) == ("cli-snap-1", "cli_snap", 3)
    assert made["path"].endswith("cli-snap-1.tar")
    assert "cli-snap-1" in [s["name"] for s in run("snapshot", "list")]
    restored = run("snapshot", "restore", "cli-snap-1", "--collection", "cli_snap_copy")
    assert restored["name"] == "cli_snap_copy" and restored["points"] == 3
    one_line_error(cli("snapshot", "restore", "cli-snap-1", host=srv.target), "ALREADY_EXISTS")
    assert run("snapshot", "delete", "cli-snap-1") == {"name": "cli-snap-1", "deleted": True}
    one_line_error(cli("snapshot", "delete", "cli-snap-1", host=srv.target), "NOT_FOUND")


# ---------------------------------------------------------------- points and search
def test_points_and_search(run, srv, tmp_path):
    vecs = write_jsonl(tmp_path / "p.jsonl", 50, 8)
    run("collections", "create", "cli_p", "--dim", "8")
    assert run("import", "cli_p", str(tmp_path / "p.jsonl"))["imported"] == 50
    assert run("points", "count", "cli_p") == {"collection": "cli_p", "count": 50}

    got = run("points", "get", "cli_p", "p1", "p2", "nope", "--with-vectors")
    assert [p["id"] for p in got["points"]] == ["p1", "p2"] and got["missing"] == ["nope"]
    assert got["points"][0]["payload"]["n"] == 1 and got["points"][0]["text"] == "text 1"
    np.testing.assert_array_equal(np.float32(got["points"][1]["vector"]), vecs[2])

    first = run("points", "scroll", "cli_p", "--limit", "30")
    rest = run("points", "scroll", "cli_p", "--limit", "30", "--cursor", first["next_cursor"])
    ids = [p["id"] for p in first["points"] + rest["points"]]
    assert rest["next_cursor"] is None and sorted(ids) == sorted(f"p{i}" for i in range(50))

    hits = run("search", "cli_p", "--vector", json.dumps(vecs[7].tolist()), "--k", "3")
    assert hits["queries"] == 1 and hits["results"][0][0]["id"] == "p7"
    assert hits["results"][0][0]["payload"]["n"] == 7 and len(hits["results"][0]) == 3
    np.save(tmp_path / "q.npy", vecs[[4, 9]])
    batch = run("search", "cli_p", "--vector-file", str(tmp_path / "q.npy"), "--k", "2",
                "--exact", "--with-vectors", "--no-payload")
    assert [r[0]["id"] for r in batch["results"]] == ["p4", "p9"]
    assert "vector" in batch["results"][0][0] and batch["results"][0][0]["payload"] is None

    text = cli("search", "cli_p", "--text", "hello", host=srv.target)
    one_line_error(text, "INVALID_ARGUMENT", "has no encoder")

    assert run("points", "delete", "cli_p", "p1", "p2", "nope") == {"requested": 3,
                                                                    "deleted": 2}
    (tmp_path / "ids.txt").write_text("p3\np4\n")
    assert run("points", "delete", "cli_p", "--ids-file", str(tmp_path / "ids.txt"))[
        "deleted"] == 2
    assert count(srv, "cli_p") == 46


# ---------------------------------------------------------------- filters, updates, indexes, TTL
G1 = '{"key": "group", "match": "g1"}'


def ok_json(out: subprocess.CompletedProcess) -> dict:
    assert out.returncode == 0, (out.args, out.stderr)
    return json.loads(out.stdout)


def test_filters_updates_range_search_indexes_and_ttl(run, srv, tmp_path):
    n, v = 60, rand(60, 8, seed=7)
    group = {f"f{i}": f"g{i % 3}" for i in range(n)}
    with_group = lambda g: {pid for pid, x in group.items() if x == g}  # noqa: E731
    create(srv, "cli_f", 8)
    create(srv, "cli_ttl", 8)
    with srv.client() as c:
        c.upsert("cli_f", list(group), v, payloads=[{"group": f"g{i % 3}", "n": i}
                                                    for i in range(n)])
    write_jsonl(tmp_path / "ttl.jsonl", 20, 8, prefix="t")
    (tmp_path / "g2.json").write_text('{"must": [{"key": "group", "match": "g2"}]}')
    # range search: a threshold half-way between two g1 scores, so the expected set is clear
    unit = v / np.linalg.norm(v, axis=1, keepdims=True)
    sims = {pid: float(unit[i] @ unit[0]) for i, pid in enumerate(group)}
    g1_sims = sorted((sims[p] for p in with_group("g1")), reverse=True)
    threshold = (g1_sims[4] + g1_sims[5]) / 2
    q0 = json.dumps(v[0].tolist())

    search, cnt, scroll, export, rng, bad, ttl_import, index, created = cli_many([
        ("search", "cli_f", "--vector", q0, "--k", "100", "--filter", G1, "--explain",
         "-o", "json"),
        ("points", "count", "cli_f", "-o", "json",
         "--filter", '{"key": "n", "range": {"gte": 10, "lt": 30}}'),
        ("points", "scroll", "cli_f", "--filter-file", str(tmp_path / "g2.json"),
         "--limit", "100", "-o", "json"),
        ("export", "cli_f", str(tmp_path / "g1.jsonl"), "--filter", G1, "--no-vectors",
         "-o", "json"),
        ("range-search", "cli_f", "--vector", q0, "--threshold", str(threshold),
         "--filter", G1, "-o", "json"),
        ("search", "cli_f", "--vector", q0, "--filter",
         '{"must": [{"key": "n", "range": {"gte": "2024-13-45"}}]}'),
        ("import", "cli_ttl", str(tmp_path / "ttl.jsonl"), "--ttl", "1", "-o", "json"),
        ("payload-index", "create", "cli_f", "group", "keyword", "--wait", "-o", "json"),
        ("collections", "create", "cli_pi", "--dim", "4", "--payload-index", "lang=keyword",
         "--payload-index", "year=integer", "-o", "json"),
    ], host=srv.target)
    imported_at = time.monotonic()
    data = ok_json(search)
    assert {h["id"] for h in data["results"][0]} == with_group("g1")  # k > matches: all of them
    assert isinstance(data["plan"], str) and "shard 0:" in data["plan"], data
    assert ok_json(cnt)["count"] == 20
    page = ok_json(scroll)
    assert {p["id"] for p in page["points"]} == with_group("g2") and page["next_cursor"] is None
    assert ok_json(export)["exported"] == 20
    rows = [json.loads(line) for line in (tmp_path / "g1.jsonl").read_text().splitlines()]
    assert {r["id"] for r in rows} == with_group("g1") and "vector" not in rows[0]
    hits = ok_json(rng)["results"][0]
    assert {h["id"] for h in hits} == {p for p in with_group("g1") if sims[p] > threshold}
    assert len(hits) == 5 and all(h["score"] > threshold for h in hits)
    err = one_line_error(bad, "INVALID_ARGUMENT", "filter.must[0].range.gte")
    assert "2024-13-45" in err
    assert (ok_json(ttl_import)["imported"], ok_json(ttl_import)["ttl"]) == (20, 1.0)
    assert ok_json(index) == {"collection": "cli_f", "field": "group", "type": "keyword",
                              "state": "ready"}
    assert ok_json(created)["payload_indexes"] == {  # create shows what describe shows
        "lang": {"type": "keyword", "state": "ready"},
        "year": {"type": "integer", "state": "ready"}}

    by_ids, by_filter, deleted, listed = cli_many([
        ("points", "update", "cli_f", "--ids", "f0", "f1", "nope", "--set", '{"seen": true}',
         "-o", "json"),
        ("points", "update", "cli_f", "--filter",
         '{"must": [{"key": "group", "match": "g2"}, {"key": "n", "range": {"lt": 30}}]}',
         "--set", '{"flag": 1}', "--delete-keys", "n,absent", "-o", "json"),
        ("points", "delete", "cli_f", "--filter", '{"key": "n", "range": {"gte": 55}}',
         "-o", "json"),
        ("payload-index", "list", "cli_f", "-o", "json"),
    ], host=srv.target)
    assert ok_json(by_ids) == {"requested": 3, "updated": 2}
    assert ok_json(by_filter) == {"requested": None, "updated": 10}
    assert ok_json(deleted) == {"requested": None, "deleted": 5}
    assert ok_json(listed) == {"group": {"type": "keyword", "state": "ready"}}

    time.sleep(max(0.0, imported_at + 1.5 - time.monotonic()))  # the TTL points expire
    got, ttl_count, dropped = cli_many([
        ("points", "get", "cli_f", "f0", "f2", "f3", "f29", "f32", "-o", "json"),
        ("points", "count", "cli_ttl", "-o", "json"),
        ("payload-index", "drop", "cli_f", "group", "-o", "json"),
    ], host=srv.target)
    payloads = {p["id"]: p["payload"] for p in ok_json(got)["points"]}
    assert payloads == {"f0": {"group": "g0", "n": 0, "seen": True},
                        "f2": {"group": "g2", "flag": 1}, "f3": {"group": "g0", "n": 3},
                        "f29": {"group": "g2", "flag": 1}, "f32": {"group": "g2", "n": 32}}
    assert ok_json(ttl_count)["count"] == 0
    assert ok_json(dropped) == {"collection": "cli_f", "field": "group", "dropped": True}
    with srv.client() as c:
        info = c.describe_collection("cli_f")
        assert info.payload_indexes == {} and info.points == n - 5


# ---------------------------------------------------------------- import / export
def test_import_100k_npy_with_progress_then_resume(run, srv, tmp_path):
    n = 100_000
    np.save(tmp_path / "big.npy", rand(n, 16, seed=1))
    create(srv, "cli_big", 16)
    out = cli("import", "cli_big", str(tmp_path / "big.npy"), "--id-prefix", "v",
              "-o", "json", host=srv.target, timeout=240)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["imported"] == n and summary["skipped"] == 0 and summary["seconds"] > 0
    progress = re.findall(r"^imported (\d+)/100000 \((\d+)/s, ETA \w+\)$", out.stderr, re.M)
    assert len(progress) >= 5 and progress[-1][0] == "100000", out.stderr
    print(f"\n100k x 16 import: {summary['rate_per_s']}/s, {summary['seconds']} s")
    assert count(srv, "cli_big") == n

    # An interrupted import is resumed: lose some points, re-run with --skip-existing.
    (tmp_path / "lost.txt").write_text("".join(f"v{i}\n" for i in range(0, n, 200)))
    assert run("points", "delete", "cli_big", "--ids-file", str(tmp_path / "lost.txt"))[
        "deleted"] == 500
    resumed = run("import", "cli_big", str(tmp_path / "big.npy"), "--id-prefix", "v",
                  "--skip-existing", "--batch", "5000", timeout=240)
    assert (resumed["imported"], resumed["skipped"]) == (500, n - 500)
    assert count(srv, "cli_big") == n


def test_jsonl_and_parquet_round_trip(run, srv, tmp_path):
    write_jsonl(tmp_path / "src.jsonl", 300, 8, prefix="r")
    create(srv, "cli_src", 8)
    assert run("import", "cli_src", str(tmp_path / "src.jsonl"), "--batch", "64")[
        "imported"] == 300
    ids = [f"r{i}" for i in range(300)]
    with srv.client() as c:
        expected = c.get("cli_src", ids, with_vectors=True)
        for fmt in ("jsonl", "parquet"):
            dump = tmp_path / f"dump.{fmt}"
            assert run("export", "cli_src", str(dump), "--batch", "70")["exported"] == 300
            assert dump.exists() and not Path(str(dump) + ".part").exists()
            create(srv, f"cli_{fmt}", 8)
            assert run("import", f"cli_{fmt}", str(dump))["imported"] == 300
            got = c.get(f"cli_{fmt}", ids, with_vectors=True)
            assert [(p.id, p.payload, p.text) for p in got] == \
                [(p.id, p.payload, p.text) for p in expected]
            np.testing.assert_array_equal(np.stack([p.vector for p in got]),
                                          np.stack([p.vector for p in expected]))
    no_vec = tmp_path / "ids_only.jsonl"
    run("export", "cli_src", str(no_vec), "--no-vectors")
    first = json.loads(no_vec.read_text().splitlines()[0])
    assert "vector" not in first and first["payload"]["group"] == "g0"


def test_fvecs_with_ids_file(run, srv, tmp_path):
    vecs = rand(40, 4, seed=5)
    rows = np.hstack([np.full((40, 1), 4, np.int32), vecs.view(np.int32)])
    rows.astype("<i4").tofile(tmp_path / "base.fvecs")
    (tmp_path / "ids.txt").write_text("".join(f"f{i}\n" for i in range(40)))
    create(srv, "cli_fvecs", 4, metric="l2")
    assert run("import", "cli_fvecs", str(tmp_path / "base.fvecs"), "--ids",
               str(tmp_path / "ids.txt"))["imported"] == 40
    hits = run("search", "cli_fvecs", "--vector-file", str(tmp_path / "base.fvecs"), "--k", "1")
    assert [r[0]["id"] for r in hits["results"]] == [f"f{i}" for i in range(40)]


# ---------------------------------------------------------------- errors and exit codes
BAD_ARGUMENTS = [
    ((), "required: COMMAND"),
    (("frobnicate",), "invalid choice: 'frobnicate'"),
    (("collections", "create", "x"), "--dim is required without --encoder"),
    (("collections", "create", "x", "--dim", "0"), "expected a positive integer"),
    (("search", "c", "--vector", "[1, 2]", "--k", "zero"), "expected a positive integer"),
    (("search", "c", "--vector", "not json"), "--vector: expected a JSON list"),
    (("search", "c"), "exactly one of --vector, --vector-file, --text"),
    (("-o", "xml", "status"), "invalid choice: 'xml'"),
    (("completion", "fish"), "invalid choice: 'fish'"),
    # filters, selections and updates are checked before connecting
    (("search", "c", "--vector", "[1]", "--filter", "{oops"), "--filter is not valid JSON"),
    (("points", "count", "c", "--filter", "[1]"), "--filter must be a JSON object"),
    (("points", "delete", "c"), "give either ids (ID arguments or --ids-file) or a non-empty"),
    (("points", "delete", "c", "a", "--filter", '{"has_id": ["a"]}'), "not both or neither"),
    (("points", "update", "c", "--ids", "a"), "at least one of --set, --overwrite"),
    (("collections", "create", "x", "--dim", "4", "--payload-index", "lang"),
     "--payload-index expects FIELD=TYPE"),
]


def test_bad_arguments_exit_2():
    results = cli_many([args for args, _ in BAD_ARGUMENTS], host="127.0.0.1:1")
    for (args, message), out in zip(BAD_ARGUMENTS, results):
        err = fail(out, 2, "usage: vecdbctl", message)
        assert "Traceback" not in err and out.stdout == "", args


def test_usage_errors_found_after_parsing_exit_2(run, srv, tmp_path):
    np.save(tmp_path / "v.npy", rand(3, 8))
    create(srv, "cli_usage", 8)
    fail(cli("import", "cli_usage", str(tmp_path / "v.npy"), host=srv.target), 2,
         "usage: vecdbctl import", "--ids FILE")
    fail(cli("import", "cli_usage", str(tmp_path / "v.csv"), host=srv.target), 2,
         "cannot tell the format")
    fail(cli("collections", "create", "y", "--dim", "4", "--param", "nlist", host=srv.target),
         2, "--param expects KEY=INTEGER")


def test_data_errors_exit_1_one_line(run, srv, tmp_path):
    create(srv, "cli_data", 8)
    np.save(tmp_path / "wrong.npy", rand(5, 6))
    one_line_error(cli("import", "cli_data", str(tmp_path / "wrong.npy"), "--id-prefix", "x",
                       host=srv.target), "6-dimensional vectors", "dim 8")
    one_line_error(cli("import", "cli_data", str(tmp_path / "missing.jsonl"), host=srv.target),
                   "no such file")
    (tmp_path / "bad.jsonl").write_text('{"id": "a", "vector": [1,2,3,4,5,6,7,8]}\n{oops\n')
    one_line_error(cli("import", "cli_data", str(tmp_path / "bad.jsonl"), host=srv.target),
                   "bad.jsonl line 2: invalid JSON")
    (tmp_path / "ids.txt").write_text("a\nb\n")
    np.save(tmp_path / "ok.npy", rand(5, 8))
    one_line_error(cli("import", "cli_data", str(tmp_path / "ok.npy"), "--ids",
                       str(tmp_path / "ids.txt"), host=srv.target), "has 2 ids but")
    one_line_error(cli("search", "cli_data", "--vector", "[1, 2]", host=srv.target),
                   "INVALID_ARGUMENT", "dimension 8")
    debug = cli("--debug", "points", "count", "nope", host=srv.target)
    assert debug.returncode == 1 and "Traceback" in debug.stderr  # only with --debug


def test_server_down_exit_1_one_line():
    target = f"127.0.0.1:{free_port()}"
    calls = [("status",), ("collections", "list", "-o", "json"), ("points", "count", "x"),
             ("import", "x", __file__, "--format", "jsonl")]
    for out in cli_many([(*args, "--connect-timeout", "2") for args in calls], host=target):
        err = one_line_error(out)
        assert err.strip() == f"vecdbctl: error: cannot reach {target} (UNAVAILABLE)"


# ---------------------------------------------------------------- map, completion, help
def test_map_writes_png(run, srv, tmp_path):
    mpimg = pytest.importorskip("matplotlib.image")
    create(srv, "cli_map", 8)
    with srv.client() as c:
        c.upsert("cli_map", [f"m{i}" for i in range(400)], rand(400, 8, seed=4),
                 payloads=[{"n": i, "meta": {"even": i % 2 == 0}} for i in range(400)])
    for field, size in (("meta.even", (640, 480)), ("n", (500, 400))):  # legend, colorbar
        out = tmp_path / f"map_{field}.png"
        res = run("map", "cli_map", "--out", str(out), "--color-by", field,
                  "--size", f"{size[0]}x{size[1]}", "--sample", "300")
        assert res["points"] == 300 and res["method"] == "pca"
        assert out.read_bytes()[:8] == PNG_SIGNATURE
        assert mpimg.imread(str(out)).shape[:2] == (size[1], size[0])


def test_completion_scripts(tmp_path):
    out = cli("completion", "bash")
    assert out.returncode == 0 and "complete -o filenames -F _vecdbctl vecdbctl" in out.stdout
    script = tmp_path / "c.sh"
    script.write_text(out.stdout)

    def complete(*words: str) -> list[str]:
        line = " ".join(f"'{w}'" for w in ("vecdbctl",) + words)
        cmd = (f"source {script}; COMP_WORDS=({line}); COMP_CWORD={len(words)}; _vecdbctl; "
               'printf "%s\\n" "${COMPREPLY[@]}"')
        return subprocess.run(["bash", "-c", cmd], capture_output=True, text=True,
                              check=True).stdout.split()
    assert complete("coll") == ["collections"]
    assert complete("collections", "") == ["create", "describe", "drop", "list", "reshard"]
    assert "--skip-existing" in complete("import", "--s")
    assert complete("--host", "x", "points", "sc") == ["scroll"]
    assert complete("points", "delete", "--fi") == ["--filter", "--filter-file"]
    assert complete("payload-index", "") == ["create", "drop", "list"]
    assert "--threshold" in complete("range-search", "docs", "--t")
    zsh = cli("completion", "zsh", "-o", "json")
    assert "bashcompinit" in json.loads(zsh.stdout)["script"]


def test_every_command_has_help_with_examples():
    tree = walk(build_parser())
    commands = [path for path, (subs, _) in tree.items() if path]
    assert {"collections create", "alias set", "points scroll", "search", "import", "export",
            "status", "map", "completion", "points update", "range-search",
            "payload-index create", "payload-index drop", "payload-index list"} <= set(commands)
    for path in commands:
        p = build_parser()
        for word in path.split():
            p = next(a for a in p._actions if a.__class__.__name__ == "_SubParsersAction"
                     ).choices[word]
        assert "examples:\n  vecdbctl" in p.format_help() or "examples:\n  eval" in \
            p.format_help(), path
    out = cli("import", "--help")
    assert out.returncode == 0 and "examples:" in out.stdout and "--skip-existing" in out.stdout


# ---------------------------------------------------------------- README
def readme_bash_block(heading: str) -> str:
    """The first ```bash block of the README section ``## heading``."""
    section = (ROOT / "README.md").read_text().split(f"## {heading}", 1)[1]
    section = section.split("\n## ", 1)[0]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


def readme_cli_examples() -> str:
    return readme_bash_block("Admin CLI (vecdbctl)")


def test_readme_cli_examples_run_as_written(spawn, tmp_path):
    script = readme_cli_examples()
    assert "vecdbctl import" in script and "vecdbctl map" in script
    assert "vecdbctl payload-index create" in script and "--filter" in script
    srv = spawn(data_dir=tmp_path / "readme-data")
    work = tmp_path / "work"
    work.mkdir()
    env = cli_env(VECDB_HOST=srv.target, PATH=BIN + os.pathsep + os.environ["PATH"])
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=work, env=env,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (work / "map.png").read_bytes()[:8] == PNG_SIGNATURE
    assert (work / "demo.parquet").stat().st_size > 0
    assert "doc0" in out.stdout and '"count": 21000' in out.stdout
    assert '"count": 250' in out.stdout and "plan: shard 0:" in out.stdout  # the filter lines
