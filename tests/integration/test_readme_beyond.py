"""The README's "Beyond nearest neighbours" examples (recommend, vector arithmetic,
grouped search) run as written, each in a fresh interpreter, against a real server
subprocess."""
from __future__ import annotations

import re
import subprocess
import sys

from harness import ROOT

SECTION = "## Beyond nearest neighbours: recommend, vector arithmetic, grouping"


def examples() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def run(code: str, target: str) -> list[str]:
    assert "127.0.0.1:50051" in code
    code = code.replace("127.0.0.1:50051", target)  # the only change: the test's port
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_readme_beyond_examples_run_as_written(spawn):
    srv = spawn()
    recommend, arithmetic, grouped = examples()
    assert run(recommend, srv.target) == ["[0]", "[0, 0, 0] True"]
    lines = run(arithmetic, srv.target)
    assert lines[0] == "queen", lines
    assert "queen" in lines[1] and "king" not in lines[1], lines
    lines = run(grouped, srv.target)
    assert len(lines) == 3 and lines[0].startswith("u0 ['post0', "), lines
    keys = [line.split()[0] for line in lines]
    assert len(set(keys)) == 3 and all(line.count("'post") == 2 for line in lines), lines
    with srv.client() as c:
        assert c.count("items") == 300 and c.count("words") == 10 and c.count("posts") == 1000
