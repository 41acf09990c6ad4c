"""Text end to end through the real `vecdbctl` console script against a real server
subprocess with the built-in MiniLM encoder: create without --dim, import text-only
.txt/.jsonl/.parquet files, search by text, and the README's "Semantic search in one
minute" block run as written."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from harness import ROOT, ServerProcess, rand
from test_cli import BIN, cli_env, readme_bash_block

pytest.importorskip("sentence_transformers", reason="needs vecdb[encoders]")
VECDBCTL = str(Path(BIN) / "vecdbctl")
TOPICS = [json.loads(line) for line in (ROOT / "tests/data/topics.jsonl").read_text().splitlines()
          if line.strip()]


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    p = ServerProcess(tmp_path_factory.mktemp("cli-text") / "data")
    yield p
    p.close()


def vecdbctl(srv: ServerProcess, *args: str, cwd: Path | None = None,
             json_out: bool = True) -> subprocess.CompletedProcess:
    env = cli_env(VECDB_HOST=srv.target, VECDB_TIMEOUT="180")
    cmd = [VECDBCTL, *args, *(["-o", "json"] if json_out else [])]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def ok(out: subprocess.CompletedProcess) -> dict:
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def error(out: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    assert out.returncode == code, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    for needle in needles:
        assert needle in out.stderr, out.stderr
    return out.stderr


def test_create_with_encoder_takes_the_dimension_from_it(srv):
    info = ok(vecdbctl(srv, "collections", "create", "enc_nodim", "--encoder", "minilm"))
    assert info["dim"] == 384 and info["encoder"] == "minilm"
    same = ok(vecdbctl(srv, "collections", "create", "enc_dim", "--encoder", "minilm",
                       "--dim", "384"))
    assert same["dim"] == 384
    err = error(vecdbctl(srv, "collections", "create", "enc_bad", "--encoder", "minilm",
                         "--dim", "128"), 2, "--dim 128 does not match encoder 'minilm'")
    assert "usage:" in err
    error(vecdbctl(srv, "collections", "create", "plain_nodim"), 2,
          "--dim is required without --encoder")
    names = {c["name"] for c in ok(vecdbctl(srv, "collections", "list"))}
    assert {"enc_nodim", "enc_dim"} <= names and not {"enc_bad", "plain_nodim"} & names


def test_import_txt_jsonl_and_parquet_text_only(srv, tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    ok(vecdbctl(srv, "collections", "create", "topics", "--encoder", "minilm"))
    rows = TOPICS[:60]
    txt = tmp_path / "sentences.txt"
    txt.write_text("\n".join(r["text"] for r in rows[:20]) + "\n\n")  # a blank line: skipped
    out = vecdbctl(srv, "import", "topics", str(txt), "--batch", "8")
    done = ok(out)
    assert done["imported"] == 20 and done["format"] == "txt"
    assert "imported 20/20" in out.stderr, out.stderr  # the progress line
    with open(tmp_path / "rows.jsonl", "w") as f:
        for r in rows[20:40]:
            f.write(json.dumps({"id": r["id"], "text": r["text"],
                                "payload": {"topic": r["topic"]}}) + "\n")
    assert ok(vecdbctl(srv, "import", "topics", str(tmp_path / "rows.jsonl")))["imported"] == 20
    table = pa.table({"id": [r["id"] for r in rows[40:]], "text": [r["text"] for r in rows[40:]]})
    pq.write_table(table, tmp_path / "rows.parquet")
    assert ok(vecdbctl(srv, "import", "topics", str(tmp_path / "rows.parquet")))["imported"] == 20
    assert ok(vecdbctl(srv, "points", "count", "topics"))["count"] == 60

    # default .txt ids are FILESTEM-ROW; the stored text is the line
    got = ok(vecdbctl(srv, "points", "get", "topics", "sentences-0", "sentences-19"))
    assert [p["text"] for p in got["points"]] == [rows[0]["text"], rows[19]["text"]]
    # importing the same file again replaces, never duplicates
    ok(vecdbctl(srv, "import", "topics", str(txt)))
    assert ok(vecdbctl(srv, "points", "count", "topics"))["count"] == 60

    # every imported text is found by searching for itself (it was really embedded)
    for r in (rows[5], rows[25], rows[45]):
        hits = ok(vecdbctl(srv, "search", "topics", "--text", r["text"], "-k", "1"))
        assert hits["results"][0][0]["text"] == r["text"]


def test_text_import_errors_name_the_problem_and_write_nothing(srv, tmp_path):
    with srv.client() as c:
        c.create_collection("vectors_only", dim=8)
    txt = tmp_path / "t.txt"
    txt.write_text("one text\nanother\n")
    error(vecdbctl(srv, "import", "vectors_only", str(txt)), 1,
          "collection vectors_only has no encoder", "--encoder")
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(json.dumps({"id": "a", "vector": rand(1, 8)[0].tolist()}) + "\n"
                     + json.dumps({"id": "b", "text": "no vector"}) + "\n")
    error(vecdbctl(srv, "import", "vectors_only", str(mixed)), 1, "'b' has no 'vector'")
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"id": "c"}) + "\n")
    error(vecdbctl(srv, "import", "vectors_only", str(empty)), 1, "line 1",
          "no 'vector' and no 'text'")
    mixed_late = tmp_path / "mixed_late.jsonl"  # the kinds change at a chunk border
    mixed_late.write_text("".join(json.dumps({"id": f"v{i}", "vector": rand(1, 8, seed=i)[0]
                                              .tolist()}) + "\n" for i in range(3))
                          + "".join(json.dumps({"id": f"t{i}", "text": "x"}) + "\n"
                                    for i in range(3)))
    error(vecdbctl(srv, "import", "vectors_only", str(mixed_late), "--batch", "3"), 1,
          "'t0' has no 'vector' but earlier points have one")
    with srv.client() as c:
        c.delete("vectors_only", ["v0", "v1", "v2"])  # the first chunk went in: idempotent
        assert c.count("vectors_only") == 0


def test_txt_line_ends_and_ids_files_agree(srv, tmp_path):
    """\r line ends, a BOM and Unicode blank lines are read the same way when counting
    and when importing; an ids file that runs short is a clear error, not a hang."""
    ok(vecdbctl(srv, "collections", "create", "crlf", "--encoder", "minilm"))
    txt = tmp_path / "cr.txt"
    txt.write_bytes("\ufeffthe first text\rthe second text\r\u00a0\rthe third text\r"
                    .encode())
    done = ok(vecdbctl(srv, "import", "crlf", str(txt)))
    assert done["imported"] == 3
    got = ok(vecdbctl(srv, "points", "get", "crlf", "cr-0"))["points"]
    assert got[0]["text"] == "the first text"  # no BOM kept
    (tmp_path / "ids.txt").write_text("a\nb\nc\n")
    assert ok(vecdbctl(srv, "import", "crlf", str(txt), "--ids",
                       str(tmp_path / "ids.txt")))["imported"] == 3
    (tmp_path / "short.txt").write_text("a\n")
    error(vecdbctl(srv, "import", "crlf", str(txt), "--ids", str(tmp_path / "short.txt")),
          1, "has 1 ids but")


def test_readme_semantic_search_in_one_minute(spawn, tmp_path):
    script = readme_bash_block("Semantic search in one minute")
    assert "--encoder minilm" in script and "vecdbctl import" in script
    server = spawn(data_dir=tmp_path / "data")
    work = tmp_path / "work"
    work.mkdir()
    (work / ".venv").symlink_to(Path(BIN).parent)  # the block's PATH="$PWD/.venv/bin:..."
    env = cli_env(VECDB_HOST=server.target)  # the newcomer's default timeouts
    env.pop("VECDB_TIMEOUT", None)
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=work, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    hits = [line for line in out.stdout.splitlines() if "notes-" in line]
    assert hits and "notes-0" in hits[0], out.stdout  # the cat sentence comes first
    with server.client() as c:
        assert c.count("notes") == 4
