"""Run a benchmark's measuring script over one source tree in a child process (so each
tree's own code is measured): its last stdout line, a JSON object, parsed."""
from __future__ import annotations

import json
import subprocess
import sys


def run_in_tree(code: str, tree: str, *args: object) -> tuple[dict | None, str]:
    """(the result, "") or (None, the end of what the child wrote) when it printed none."""
    out = subprocess.run([sys.executable, "-c", code, tree, *map(str, args)],
                         capture_output=True, text=True, cwd=tree)
    try:
        return json.loads(out.stdout.strip().splitlines()[-1]), ""
    except (IndexError, ValueError):
        return None, (out.stdout + out.stderr)[-2000:]
