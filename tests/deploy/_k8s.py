"""Shared by tests/deploy: the documented kustomize combinations, rendered with the
real ``kubectl kustomize``, and small accessors for the rendered documents."""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUSTOMIZE = DEPLOY / "kustomize"

# Every combination docs/deploy.md documents: an overlay plus optional components
# (added in the user's own kustomization). test_docs_list_every_combination keeps
# the two in sync.
OVERLAYS = ("cpu", "gpu", "single-node-dev", "cluster")
OPTIONAL_COMPONENTS = ((), ("monitoring",), ("external-api-keys",),
                       ("monitoring", "external-api-keys"))
# the cluster overlay's own: an etcd of yours instead of the overlay's StatefulSet
CLUSTER_COMPONENTS = (("external-etcd",), ("monitoring", "external-api-keys", "external-etcd"))
COMBOS = tuple((o, c) for o in OVERLAYS for c in OPTIONAL_COMPONENTS) \
    + tuple(("cluster", c) for c in CLUSTER_COMPONENTS)


def combo_id(combo: tuple[str, tuple[str, ...]]) -> str:
    overlay, comps = combo
    return "+".join((overlay, *comps))


def kubectl() -> str:
    exe = shutil.which("kubectl")
    assert exe, "kubectl (with built-in kustomize) is required by tests/deploy"
    return exe


def _kustomize(directory: Path) -> str:
    proc = subprocess.run([kubectl(), "kustomize", str(directory)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, f"kubectl kustomize {directory} failed:\n{proc.stderr}"
    return proc.stdout


@functools.lru_cache(maxsize=None)
def render(overlay: str, components: tuple[str, ...] = ()) -> str:
    """``kubectl kustomize`` of an overlay, with components added the way docs/deploy.md
    says: a kustomization of your own listing the overlay and the components."""
    if not components:
        return _kustomize(KUSTOMIZE / "overlays" / overlay)
    with tempfile.TemporaryDirectory(prefix="vecdb-kustomize-") as tmp:
        # kustomize refuses absolute resource paths: refer to the repo relatively.
        rel = Path(os.path.relpath(KUSTOMIZE, tmp))
        (Path(tmp) / "kustomization.yaml").write_text(yaml.safe_dump({
            "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
            "resources": [str(rel / "overlays" / overlay)],
            "components": [str(rel / "components" / c) for c in components]}))
        return _kustomize(Path(tmp))


def documents(overlay: str, components: tuple[str, ...] = ()) -> list[dict]:
    return [d for d in yaml.safe_load_all(render(overlay, components)) if d]


def one(docs: list[dict], kind: str, name: str | None = None) -> dict:
    found = [d for d in docs if d["kind"] == kind
             and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
    return found[0]


def server_container(docs: list[dict]) -> dict:
    sts = one(docs, "StatefulSet", "vecdb")
    (container,) = [c for c in sts["spec"]["template"]["spec"]["containers"]
                    if c["name"] == "vecdb"]
    return container


def env_of(container: dict) -> dict[str, str]:
    """name -> value of a container's env; a value from a Secret or ConfigMap reads
    "<from NAME/KEY>", one from the downward API "<field PATH>"."""
    out = {}
    for e in container.get("env", ()):
        src = e.get("valueFrom", {})
        ref = src.get("secretKeyRef") or src.get("configMapKeyRef")
        out[e["name"]] = e["value"] if "value" in e else (
            f"<from {ref['name']}/{ref['key']}>" if ref
            else f"<field {src['fieldRef']['fieldPath']}>")
    return out


def server_config_text(docs: list[dict]) -> str:
    cm = one(docs, "ConfigMap")
    return cm["data"]["vecdb.yaml"]
