"""The README's two commands: scripts/serve.sh and scripts/test.sh (through _venv.sh).

The scripts run for real, in a copy of the repository's packaging files, with a
recording stand-in for the venv's pip and server binaries (pip itself is not what is
tested: when and with what the scripts call it is). The packaging files configure
without setuptools warnings."""
from __future__ import annotations

import os
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RECORDER = '#!/bin/sh\necho "$(basename "$0") $*" >> "$(dirname "$0")/../calls.log"\n'


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """scripts/, pyproject.toml and client/pyproject.toml beside a .venv whose python,
    pip and vecdb-server only record their arguments."""
    shutil.copytree(REPO / "scripts", tmp_path / "scripts")
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    (tmp_path / "client").mkdir()
    shutil.copy(REPO / "client" / "pyproject.toml", tmp_path / "client")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("python", "pip", "vecdb-server"):
        (bin_dir / name).write_text(RECORDER)
        (bin_dir / name).chmod(0o755)
    return tmp_path


def _run(tree: Path, script: str, *args: str, **env: str) -> list[str]:
    log = tree / ".venv" / "calls.log"
    log.unlink(missing_ok=True)
    subprocess.run(["bash", str(tree / "scripts" / script), *args], check=True, timeout=60,
                   env={**os.environ, **env}, capture_output=True)
    return log.read_text().splitlines() if log.exists() else []


def _installs(calls: list[str]) -> list[str]:
    return [c for c in calls if c.startswith("pip install") and "--upgrade pip" not in c]


def test_serve_installs_the_encoders_once_then_starts_straight_away(tree):
    first = _run(tree, "serve.sh", "--port", "6000")
    assert _installs(first) == ["pip install -q -e .[encoders,dashboard] torch==2.13.0"]
    assert first[-1] == "vecdb-server --port 6000"
    again = _run(tree, "serve.sh")
    assert again == ["vecdb-server "], "a second start must not run pip"


def test_serve_reinstalls_when_packaging_changes(tree):
    _run(tree, "serve.sh")
    with open(tree / "pyproject.toml", "a") as f:
        f.write("\n# a new dependency\n")
    assert _installs(_run(tree, "serve.sh")) == ["pip install -q -e .[encoders,dashboard] torch==2.13.0"]
    assert _installs(_run(tree, "serve.sh")) == []


def test_slim_serve_has_no_encoders_and_its_own_stamp(tree):
    _run(tree, "serve.sh")
    slim = _run(tree, "serve.sh", VECDB_SLIM="1")
    assert _installs(slim) == ["pip install -q -e ."]
    assert _installs(_run(tree, "serve.sh", VECDB_SLIM="1")) == []
    assert _installs(_run(tree, "serve.sh")) == []  # the full install is still recorded


def test_test_script_installs_dev_once(tree):
    first = _run(tree, "test.sh", "-x")
    assert _installs(first) == ["pip install -q -e .[dev]"]
    assert first[-1] == "python -m pytest -x"
    assert _installs(_run(tree, "test.sh")) == []


def test_a_failed_install_is_retried_on_the_next_start(tree):
    pip = tree / ".venv" / "bin" / "pip"
    pip.write_text(RECORDER + 'case "$*" in *-e*) exit 1;; esac\n')
    with pytest.raises(subprocess.CalledProcessError):
        _run(tree, "serve.sh")
    pip.write_text(RECORDER)
    assert _installs(_run(tree, "serve.sh")) == ["pip install -q -e .[encoders,dashboard] torch==2.13.0"]


@pytest.mark.parametrize("pyproject", ["pyproject.toml", "client/pyproject.toml"])
def test_packaging_files_configure_without_setuptools_warnings(pyproject):
    from setuptools.config.pyprojecttoml import read_configuration
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config = read_configuration(REPO / pyproject)
    assert config["project"]["license"] == "Apache-2.0"
