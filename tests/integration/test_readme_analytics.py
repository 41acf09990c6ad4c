"""The README's analytics examples (clustering, outliers, near-duplicates) run as
written, each in a fresh interpreter, against a real server subprocess."""
from __future__ import annotations

import re
import subprocess
import sys

from harness import ROOT


def analytics_examples() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Analytics: clusters, outliers, near-duplicates", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def run(code: str, target: str) -> list[str]:
    assert "127.0.0.1:50051" in code
    code = code.replace("127.0.0.1:50051", target)  # the only change: the test's port
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_readme_analytics_examples_run_as_written(spawn):
    srv = spawn()
    clustering, outliers, duplicates = analytics_examples()
    assert run(clustering, srv.target) == ["[100, 100, 100] done", "True", "[2, 2, 2]"]
    assert run(outliers, srv.target) == ["n42 500", "100"]
    lines = run(duplicates, srv.target)
    assert lines[0] == "[['copy0', 'd0'], ['copy1', 'd1']] [['copy0', 'd0'], ['copy1', 'd1']]", lines
    assert lines[-1] == "0 True" and sum(int(x.split()[0]) for x in lines[1:]) == 2, lines
    with srv.client() as c:
        assert c.count("blobs", filter={"key": "cluster", "match": 1}) == 100
