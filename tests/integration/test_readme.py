"""The README's client example runs as written against a real server subprocess."""
from __future__ import annotations

import re
import subprocess
import sys

from harness import ROOT


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Client in ten lines", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_client_example_runs_as_written(spawn):
    code = readme_example()
    assert len(code.strip().splitlines()) <= 12 and "127.0.0.1:50051" in code
    srv = spawn()
    code = code.replace("127.0.0.1:50051", srv.target)  # the only change: the test's ephemeral port
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 5 and lines[0].split()[0] == "doc0" and lines[0].split()[1] == "1.0", out.stdout
    with srv.client() as c:
        assert c.count("quickstart") == 1000


def readme_integration_examples() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Integrations", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_readme_integration_examples_run_as_written(server):
    """The LangChain and LlamaIndex examples, each in a fresh interpreter, against a
    real server (in-process: the minilm model is loaded once per test process)."""
    langchain_code, llama_code = readme_integration_examples()
    outputs = []
    for code in (langchain_code, llama_code):
        assert "127.0.0.1:50051" in code
        code = code.replace("127.0.0.1:50051", server.target)  # the only change
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=180)
        assert out.returncode == 0, out.stderr
        outputs.append(out.stdout.splitlines())
    lc, li = outputs
    assert lc[0] == "d1 a cat naps on the couch {'topic': 'pets'}", lc
    assert sorted(lc[1].strip("[]").split(", ")) == ["'d1'", "'d2'"], lc  # MMR retriever, k=2
    assert li == ["['n1'] error budgets"], li
    with server.client() as c:
        assert c.count("lc_docs") == 2 and c.count("li_nodes") == 1
