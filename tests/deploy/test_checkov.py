"""checkov (the policy scanner) over every rendered combination. Any failed check
must be in ALLOWLIST below, with the reason. checkov is installed automatically
into its own venv under .venv-tools/ (it pins packaging 23.x and ~100 other
packages; keeping it out of .venv keeps our pins intact). First run: ~1.5 min."""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ._k8s import COMBOS, ROOT, combo_id, render

CHECKOV_VERSION = "3.3.30"
TOOLS = Path(os.environ.get("VECDB_TOOLS_DIR", ROOT / ".venv-tools"))

# (check id, combination or None for all) -> why it is accepted.
# checkov without a Prisma Cloud key reports no severities, so every failed
# check counts: nothing passes unexplained.
ALLOWLIST = {
    ("CKV_K8S_43", None):
        "Image should use digest: the images are built by the user (deploy/Dockerfile), "
        "so no digest exists to pin here; docs/deploy.md tells production overlays to "
        "set one (kustomize edit set image vecdb=REGISTRY/vecdb@sha256:...).",
    ("CKV_K8S_15", "single-node-dev"):
        "imagePullPolicy IfNotPresent: the dev overlay runs an image loaded into the "
        "node (kind load docker-image), which Always would try to pull and fail. "
        "The production overlays keep Always.",
    ("CKV_K8S_15", "single-node-dev+monitoring"): "same as single-node-dev",
    ("CKV_K8S_15", "single-node-dev+external-api-keys"): "same as single-node-dev",
    ("CKV_K8S_15", "single-node-dev+monitoring+external-api-keys"): "same as single-node-dev",
}
# The cluster overlay passes the cluster secret as VECDB_CLUSTER_SECRET from the Secret
# vecdb-cluster (secretKeyRef): the server reads cluster_secret from its settings (no
# file setting), and the env keeps it out of the ConfigMap and the command line.
ALLOWLIST.update({("CKV_K8S_35", combo_id(c)): "cluster secret as an env variable (see above)"
                  for c in COMBOS if c[0] == "cluster"})


def _checkov() -> Path:
    venv = TOOLS / f"checkov-{CHECKOV_VERSION}"
    exe = venv / "bin" / "checkov"
    TOOLS.mkdir(parents=True, exist_ok=True)
    with open(TOOLS / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not exe.exists():
            base = getattr(sys, "_base_executable", sys.executable)
            subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True)
            subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                            "--disable-pip-version-check", f"checkov=={CHECKOV_VERSION}"],
                           check=True, timeout=900)
    return exe


@pytest.fixture(scope="module")
def checkov_report(tmp_path_factory) -> dict[str, list[dict]]:
    exe = _checkov()
    out = tmp_path_factory.mktemp("checkov")
    for combo in COMBOS:
        (out / f"{combo_id(combo)}.yaml").write_text(render(*combo))
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    proc = subprocess.run([str(exe), "-d", str(out), "--framework", "kubernetes", "-o", "json",
                           "--quiet", "--compact", "--skip-download"],
                          capture_output=True, text=True, env=env, timeout=300)
    # Exit status 1 just means failed checks; anything else is checkov failing.
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    data = json.loads(proc.stdout)
    reports = data if isinstance(data, list) else [data]
    by_combo: dict[str, list[dict]] = {combo_id(c): [] for c in COMBOS}
    for report in reports:
        assert report["summary"]["parsing_errors"] == 0, report["summary"]
        for check in report["results"]["failed_checks"]:
            by_combo[Path(check["file_path"]).stem].append(check)
    assert sum(r["summary"]["passed"] for r in reports) > 100  # it really scanned
    return by_combo


@pytest.mark.parametrize("combo", COMBOS, ids=[combo_id(c) for c in COMBOS])
def test_no_unexplained_checkov_findings(checkov_report, combo):
    name = combo_id(combo)
    unexplained = [f"{c['check_id']} {c['check_name']} ({c['resource']})"
                   for c in checkov_report[name]
                   if (c["check_id"], None) not in ALLOWLIST
                   and (c["check_id"], name) not in ALLOWLIST]
    assert not unexplained, "checkov findings not in the allowlist:\n" + "\n".join(unexplained)


def test_allowlist_has_no_stale_entries(checkov_report):
    seen = {(c["check_id"], name) for name, checks in checkov_report.items() for c in checks}
    seen |= {(check_id, None) for check_id, _ in seen}
    stale = [key for key in ALLOWLIST if key not in seen]
    assert not stale, f"allowlisted checks that no longer fail: {stale}"
