"""The server without the ``[dashboard]`` extra: a subprocess in which ``import falcon``
really fails (a module of that name that raises ImportError, first on PYTHONPATH), as on
a machine where `vecdb[dashboard]` is not installed."""
from __future__ import annotations

import os

import numpy as np

from harness import SRC_PATHS


def test_server_runs_without_falcon_until_the_dashboard_is_asked_for(spawn, tmp_path):
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "falcon.py").write_text(
        "raise ImportError(\"No module named 'falcon' (hidden: vecdb[dashboard] not "
        "installed)\", name='falcon')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(shim), *SRC_PATHS])}
    srv = spawn(data_dir=tmp_path / "off", env=env)  # dashboard_port -1: nothing changes
    with srv.client() as c:
        c.create_collection("v", dim=3)
        c.upsert("v", ["a"], np.ones((1, 3), np.float32))
        assert c.search("v", vector=[1, 1, 1], k=1)[0].id == "a"
    assert srv.terminate() == 0
    asked = spawn("--dashboard-port", "0", data_dir=tmp_path / "on", env=env,
                  wait_serving=False)
    assert asked.proc.wait(60) == 1
    log = asked.log()
    assert "dashboard_port is set but the dashboard needs the optional [dashboard] extra" \
        in log and "pip install 'vecdb[dashboard]'" in log, log
    assert "Traceback" not in log
