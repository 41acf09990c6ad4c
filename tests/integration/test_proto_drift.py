"""The committed stubs must be exactly what scripts/gen_proto.py makes from proto/."""
from __future__ import annotations

import subprocess
import sys

from harness import ROOT

COMMITTED = ROOT / "client" / "vecdb_client" / "_proto"


def _files(base):
    return {p.relative_to(base): p.read_bytes() for p in sorted(base.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


def test_stubs_match_proto_files(tmp_path):
    out = tmp_path / "gen"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_proto.py"), "--out", str(out)],
                   check=True, capture_output=True)
    fresh, committed = _files(out), _files(COMMITTED)
    assert sorted(fresh) == sorted(committed), "stub file set differs; run scripts/gen_proto.py"
    stale = [str(name) for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"stubs drifted from proto/ ({stale}); run: python scripts/gen_proto.py"


def test_stubs_never_import_the_engine_namespace():
    for path in COMMITTED.rglob("*_pb2*.py"):
        assert "from vecdb.v1" not in path.read_text(), path
