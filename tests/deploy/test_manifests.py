"""Every documented kustomize combination renders, validates against the Kubernetes
OpenAPI schemas (kubernetes-validate, pinned) and has the properties the
deployment relies on. Real ``kubectl kustomize``; nothing is mocked."""
from __future__ import annotations

import base64
import dataclasses
import importlib.util
import re
from pathlib import Path

import kubernetes_validate
from kubernetes_validate.utils import all_versions
import pytest
import yaml

from vecdb_server.auth import load_key_file, parse_api_keys
from vecdb_server.cluster.prestop import TIMEOUT_S as PRESTOP_TIMEOUT_S
from vecdb_server.cluster.readiness import IN_SYNC
from vecdb_server.config import ConfigError, load_config
from vecdb_server.guard import startup_check

from . import _dockerfile
from ._k8s import (COMBOS, DEPLOY, OVERLAYS, ROOT, combo_id, documents, env_of, one,
                   server_config_text, server_container)

# The schemas come from the kubernetes-validate release pinned in pyproject's dev
# extra (1.37.0 ships v1.25..v1.37). Validate against the newest it ships and the
# oldest release we claim to support (native gRPC probes are GA since 1.27,
# PVC retention policy enabled by default since 1.27).
K8S_VERSIONS = ("1.30.0", "1.37.0")
# Kinds with no schema in kubernetes-validate (CRDs). Checked structurally below
# (test_monitoring_component) instead.
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}
# The server checkpoints after the grace period; what we allow that to take
# before the kubelet's SIGKILL (acknowledged writes survive a kill anyway).
CHECKPOINT_ALLOWANCE_S = 30
STARTUP_BUDGET_S = 30 * 60  # docs/deploy.md: "30 minutes"
UID = 10001

combos = pytest.mark.parametrize("combo", COMBOS, ids=[combo_id(c) for c in COMBOS])


def test_pinned_schema_versions_are_shipped():
    shipped = all_versions()
    for v in K8S_VERSIONS:
        assert v in shipped, f"kubernetes-validate has no {v} schemas (has {shipped})"


@combos
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_document_validates_against_the_openapi_schema(combo, version):
    docs = documents(*combo)
    assert docs
    for doc in docs:
        key = (doc["apiVersion"], doc["kind"])
        if key in CRD_KINDS:
            with pytest.raises(kubernetes_validate.SchemaNotFoundError):
                kubernetes_validate.validate(doc, version, strict=True)
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} invalid for {version}: "
                        f"{exc.message} at {list(exc.path)}")


@combos
def test_expected_objects_and_namespace(combo):
    docs = documents(*combo)
    kinds = sorted(d["kind"] for d in docs)
    expected = ["ConfigMap", "NetworkPolicy", "Service", "Service", "StatefulSet"]
    if "external-api-keys" not in combo[1]:
        expected.append("Secret")  # the placeholder; else the user's own Secret
    if combo[0] != "single-node-dev":
        expected.append("PodDisruptionBudget")
    if "monitoring" in combo[1]:
        expected.append("ServiceMonitor")
    if combo[0] == "cluster" and "external-etcd" not in combo[1]:  # etcd.yaml
        expected += ["StatefulSet", "Service", "Service", "PodDisruptionBudget", "NetworkPolicy"]
    assert kinds == sorted(expected)
    for d in docs:
        assert d["metadata"].get("namespace") == "vecdb", d["metadata"]["name"]


@combos
def test_pod_security(combo):
    docs = documents(*combo)  # vecdb's pods, and etcd's in the cluster overlay
    for sts in (d for d in docs if d["kind"] == "StatefulSet"):
        pod = sts["spec"]["template"]["spec"]
        psc = pod["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["runAsUser"] == UID and psc["fsGroup"] == UID
        assert psc["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod["automountServiceAccountToken"] is False
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True and sc["runAsUser"] == UID
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert "add" not in sc["capabilities"]


@combos
def test_writable_paths_are_volumes(combo):
    """readOnlyRootFilesystem: everything the server writes is the PVC or an emptyDir."""
    docs = documents(*combo)
    sts = one(docs, "StatefulSet", "vecdb")
    pod = sts["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    claims = {t["metadata"]["name"]: t for t in sts["spec"]["volumeClaimTemplates"]}
    c = server_container(docs)
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    writable = {p for p, m in mounts.items() if not m.get("readOnly")}
    for path in writable:
        name = mounts[path]["name"]
        assert name in claims or "emptyDir" in volumes[name], f"{path} is writable: {name}"
    for path, m in mounts.items():
        if m["name"] in volumes and ("configMap" in volumes[m["name"]]
                                     or "secret" in volumes[m["name"]]):
            assert m.get("readOnly") is True, path

    data = claims["data"]["spec"]
    assert data["accessModes"] == ["ReadWriteOnce"]
    assert data["resources"]["requests"]["storage"]
    assert mounts["/var/lib/vecdb"]["name"] == "data"
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    cfg = yaml.safe_load(server_config_text(docs))
    assert Path(cfg["data_dir"]).is_relative_to("/var/lib/vecdb")

    env = env_of(c)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    for var in ("HOME", "TMPDIR"):
        assert any(Path(env[var]).is_relative_to(p) for p in writable), var
    # Settings belong in the ConfigMap: a VECDB_<setting> variable would silently
    # win over it (README precedence). The one exception: the monitoring
    # component's VECDB_METRICS_HOST, which takes /metrics off loopback; in the cluster
    # overlay the per-pod node_id, advertise and cluster_secret, and the external-etcd
    # component's cluster_etcd.
    settings = {k.upper() for k in _settings()}
    allowed = {"VECDB_METRICS_HOST"} if "monitoring" in combo[1] else set()
    if combo[0] == "cluster":
        allowed |= {"VECDB_NODE_ID", "VECDB_ADVERTISE", "VECDB_CLUSTER_SECRET"}
    if "external-etcd" in combo[1]:
        allowed.add("VECDB_CLUSTER_ETCD")
    assert not [k for k in env if k.startswith("VECDB_") and k[6:] in settings
                and k not in allowed]


def _settings() -> set[str]:
    from vecdb_server.config import _defaults
    return set(_defaults())


@combos
def test_probes_are_native_grpc_on_the_server_port(combo):
    docs = documents(*combo)
    c = server_container(docs)
    cfg = yaml.safe_load(server_config_text(docs))
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["grpc"] == cfg["port"] == 50051
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        p = c[probe]
        assert p["grpc"]["port"] == ports["grpc"], probe
        # overall server health; a cluster node is ready once its replicas are in sync
        service = IN_SYNC if combo[0] == "cluster" and probe == "readinessProbe" else ""
        assert p["grpc"].get("service", "") == service, probe
        assert set(p) & {"httpGet", "tcpSocket", "exec"} == set(), probe
    s = c["startupProbe"]
    assert s["failureThreshold"] * s["periodSeconds"] == STARTUP_BUDGET_S
    # Liveness/readiness only start once the startup probe passed; liveness must
    # not kill a briefly busy server: >= 60 s of failures before a restart.
    live = c["livenessProbe"]
    assert live["failureThreshold"] * live["periodSeconds"] >= 60


@combos
def test_termination_grace_covers_server_grace_and_checkpoint(combo):
    docs = documents(*combo)
    pod = one(docs, "StatefulSet", "vecdb")["spec"]["template"]["spec"]
    cfg = yaml.safe_load(server_config_text(docs))
    assert cfg["grace_period_s"] == 10
    # the cluster's preStop drain runs first, within the same period
    prestop = PRESTOP_TIMEOUT_S if combo[0] == "cluster" else 0
    assert pod["terminationGracePeriodSeconds"] >= \
        prestop + cfg["grace_period_s"] + CHECKPOINT_ALLOWANCE_S


def _cpu(q: str) -> float:
    return float(q[:-1]) / 1000 if q.endswith("m") else float(q)


def _mem(q: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti)?", q)
    assert m, q
    return int(m.group(1)) * units.get(m.group(2) or "", 1)


@combos
def test_resources_and_thread_settings(combo):
    docs = documents(*combo)
    res = server_container(docs)["resources"]
    for key in ("cpu", "memory"):
        assert key in res["requests"] and key in res["limits"], key
    assert _cpu(res["requests"]["cpu"]) <= _cpu(res["limits"]["cpu"])
    assert _mem(res["requests"]["memory"]) <= _mem(res["limits"]["memory"])
    cfg = yaml.safe_load(server_config_text(docs))
    # FAISS/OpenMP would size itself from the node's CPUs, not the cgroup limit.
    limit = _cpu(res["limits"]["cpu"])
    assert 1 <= cfg["faiss_omp_threads"] <= limit and 1 <= cfg["search_threads"] <= limit
    assert cfg["block_cache_mb"] * 2**20 < _mem(res["limits"]["memory"]) / 2


@combos
def test_gpu_only_in_the_gpu_overlay(combo):
    docs = documents(*combo)
    pod = one(docs, "StatefulSet", "vecdb")["spec"]["template"]["spec"]
    c = server_container(docs)
    if combo[0] == "gpu":
        assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert c["resources"]["requests"]["nvidia.com/gpu"] == 1
        assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert {"key": "nvidia.com/gpu", "operator": "Exists",
                "effect": "NoSchedule"} in pod["tolerations"]
        assert c["image"].startswith("vecdb-cuda:")
    else:
        assert "nvidia.com/gpu" not in str(c["resources"])
        assert "nodeSelector" not in pod and "tolerations" not in pod
        assert c["image"].startswith("vecdb:")


@combos
def test_services_statefulset_and_pdb_fit_together(combo):
    docs = documents(*combo)
    sts = one(docs, "StatefulSet", "vecdb")
    labels = sts["spec"]["template"]["metadata"]["labels"]
    # one pod is one database; the cluster's pods are the nodes of one database
    assert sts["spec"]["replicas"] == (3 if combo[0] == "cluster" else 1)
    assert sts["spec"]["selector"]["matchLabels"].items() <= labels.items()
    headless = one(docs, "Service", "vecdb-headless")
    client = one(docs, "Service", "vecdb")
    assert headless["spec"]["clusterIP"] == "None"
    assert sts["spec"]["serviceName"] == "vecdb-headless"
    assert client["spec"]["type"] == "ClusterIP" and "clusterIP" not in client["spec"]
    container_ports = {p["name"] for p in server_container(docs)["ports"]}
    for svc in (headless, client):
        assert svc["spec"]["selector"].items() <= labels.items()
        for p in svc["spec"]["ports"]:
            assert p["targetPort"] in container_ports
        assert any(p["port"] == 50051 and p["name"] == "grpc" for p in svc["spec"]["ports"])
    pdbs = [d for d in docs if d["kind"] == "PodDisruptionBudget"
            and d["metadata"]["name"] == "vecdb"]
    for pdb in pdbs:
        # maxUnavailable 0 / minAvailable == replicas would block node drains forever.
        assert pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    netpol = one(docs, "NetworkPolicy", "vecdb")
    assert netpol["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    open_ports = {p["port"] for rule in netpol["spec"]["ingress"] for p in rule["ports"]}
    # grpc; the unauthenticated metrics port only with the monitoring component; the
    # node-to-node port in the cluster (test_cluster_overlay checks who may reach it)
    assert open_ports == ({"grpc"} | ({"metrics"} if "monitoring" in combo[1] else set())
                          | ({"internal"} if combo[0] == "cluster" else set()))
    assert open_ports <= container_ports
    assert "Egress" in netpol["spec"]["policyTypes"]
    # a single node calls nobody; cluster nodes call each other and etcd
    assert ("egress" in netpol["spec"]) == (combo[0] == "cluster")


@combos
def test_configmap_and_secret_are_wired(combo, tmp_path):
    docs = documents(*combo)
    pod = one(docs, "StatefulSet", "vecdb")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    cm = one(docs, "ConfigMap")
    assert volumes["config"]["configMap"]["name"] == cm["metadata"]["name"]
    c = server_container(docs)
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    env = env_of(c)
    keys_file = f"{mounts['api-keys']}/api-keys.yaml"
    assert not any(k.startswith("VECDB_API_KEYS") for k in env)
    if "external-api-keys" in combo[1]:
        # The user's `kubectl create secret generic vecdb-api-keys`, unhashed.
        assert volumes["api-keys"]["secret"]["secretName"] == "vecdb-api-keys"
        assert not [d for d in docs if d["kind"] == "Secret"]
    else:
        secret = one(docs, "Secret")
        assert volumes["api-keys"]["secret"]["secretName"] == secret["metadata"]["name"]
        assert set(secret["data"]) == {"api-keys.yaml"}
        placeholder = base64.b64decode(secret["data"]["api-keys.yaml"])
        assert b"kubectl -n vecdb create secret generic vecdb-api-keys" in placeholder
        assert b"--from-file=api-keys.yaml=" in placeholder
        assert b"does NOT enforce" not in placeholder
        # Fails closed: the placeholder parses as "no keys", so the server (host
        # 0.0.0.0) refuses to start; its commented example is the real format.
        (tmp_path / "keys.yaml").write_bytes(placeholder)
        assert load_key_file(str(tmp_path / "keys.yaml")) == ()
        example = "\n".join(line[2:] for line in placeholder.decode().splitlines()
                            if line.startswith("# - ") or line.startswith("#   "))
        example = example[example.index("- key:"):]
        specs = parse_api_keys(yaml.safe_load(example))
        assert [s.role for s in specs] == ["admin", "read-write", "read-only"]
        assert specs[1].collections == {"docs", "docs_v2"}

    # The container's own command line: ENTRYPOINT + (args or CMD).
    image = _dockerfile.parse(DEPLOY / "Dockerfile")[-1]
    assert "command" not in c
    assert c["args"] == image.last_json("CMD") == ["--config", "/etc/vecdb/vecdb.yaml"]
    assert Path(c["args"][1]).parent == Path(mounts["config"])
    path = tmp_path / "vecdb.yaml"
    path.write_text(cm["data"]["vecdb.yaml"])
    cfg = load_config(["--config", str(path)], environ=env)
    assert cfg.host == "0.0.0.0"  # the 127.0.0.1 default would be unreachable
    assert cfg.port == 50051 and cfg.data_dir.startswith("/var/lib/vecdb/")
    assert cfg.grace_period_s == 10.0
    assert cfg.api_keys_file == keys_file and cfg.api_keys == ()
    assert not cfg.allow_insecure_no_auth
    with pytest.raises(ConfigError, match="no api_keys are configured"):
        startup_check(dataclasses.replace(cfg, api_keys_file=""))
    # /metrics (unauthenticated): loopback unless the monitoring component is used.
    assert cfg.metrics_port == 9090
    assert cfg.metrics_host == ("0.0.0.0" if "monitoring" in combo[1] else "127.0.0.1")
    assert cfg.log_format == ("text" if combo[0] == "single-node-dev" else "json")


@combos
def test_monitoring_component(combo):
    """No schema for the ServiceMonitor CRD in kubernetes-validate: check it by hand."""
    docs = documents(*combo)
    c = server_container(docs)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
    assert ports["metrics"] == 9090  # declared always; reachable only with monitoring
    if "monitoring" not in combo[1]:
        assert not monitors
        assert not [p for d in docs if d["kind"] == "Service" for p in d["spec"]["ports"]
                    if p["name"] == "metrics"]
        return
    (sm,) = monitors
    assert set(sm["spec"]) == {"selector", "endpoints"}
    (ep,) = sm["spec"]["endpoints"]
    assert set(ep) <= {"port", "path", "interval", "scheme"}
    assert ep["port"] == "metrics" and ep["path"] == "/metrics" and ep["scheme"] == "http"
    assert re.fullmatch(r"\d+s", ep["interval"])
    selected = [s for s in docs if s["kind"] == "Service"
                and sm["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
    assert [s["metadata"]["name"] for s in selected] == ["vecdb-headless"]
    assert {"name": "metrics", "port": 9090, "targetPort": "metrics",
            "protocol": "TCP"} in selected[0]["spec"]["ports"]


CLUSTER_COMBOS = [c for c in COMBOS if c[0] == "cluster"]


@pytest.mark.parametrize("combo", CLUSTER_COMBOS, ids=[combo_id(c) for c in CLUSTER_COMBOS])
def test_cluster_overlay(combo):
    """The nodes of one database: node id = pod name, advertised by its DNS name in
    the headless Service, spread over machines and zones, ready when in sync, drained
    before a stop; etcd as 3 members (or the user's own)."""
    docs = documents(*combo)
    sts = one(docs, "StatefulSet", "vecdb")
    pod = sts["spec"]["template"]["spec"]
    labels = sts["spec"]["template"]["metadata"]["labels"]
    c = server_container(docs)
    cfg = yaml.safe_load(server_config_text(docs))
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    # node id and address from the downward API, defined before they are used
    names = [e["name"] for e in c["env"]]
    env = env_of(c)
    assert env["POD_NAME"] == "<field metadata.name>"
    assert env["POD_NAMESPACE"] == "<field metadata.namespace>"
    assert env["VECDB_NODE_ID"] == "$(POD_NAME)"
    assert env["VECDB_ADVERTISE"] == \
        f"$(POD_NAME).{sts['spec']['serviceName']}.$(POD_NAMESPACE).svc:{ports['grpc']}"
    for var in ("VECDB_NODE_ID", "VECDB_ADVERTISE"):
        assert names.index("POD_NAME") < names.index(var)
        assert names.index("POD_NAMESPACE") < names.index(var)
    assert env["VECDB_CLUSTER_SECRET"] == "<from vecdb-cluster/cluster-secret>"
    assert one(docs, "Service", sts["spec"]["serviceName"])["spec"]["publishNotReadyAddresses"]
    # no two nodes on one machine; spread over zones
    (anti,) = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti["topologyKey"] == "kubernetes.io/hostname"
    assert anti["labelSelector"]["matchLabels"].items() <= labels.items()
    (spread,) = pod["topologySpreadConstraints"]
    assert spread["topologyKey"] == "topology.kubernetes.io/zone" and spread["maxSkew"] == 1
    assert spread["labelSelector"]["matchLabels"].items() <= labels.items()
    # ready = replicas in sync; with maxUnavailable 1 an eviction waits until every
    # other node is in sync, so a shard of R >= 3 keeps a majority in sync
    assert c["readinessProbe"]["grpc"]["service"] == IN_SYNC
    assert one(docs, "PodDisruptionBudget", "vecdb")["spec"]["maxUnavailable"] == 1
    # preStop: the drain command with the server's own config
    cmd = c["lifecycle"]["preStop"]["exec"]["command"]
    assert cmd == ["python", "-m", "vecdb_server.cluster.prestop", *c["args"]]
    assert importlib.util.find_spec("vecdb_server.cluster.prestop") is not None
    # node-to-node port: declared, configured, open to the vecdb pods only
    assert cfg["cluster_internal_port"] == ports["internal"]
    netpol = one(docs, "NetworkPolicy", "vecdb")
    (internal,) = [r for r in netpol["spec"]["ingress"]
                   if {p["port"] for p in r["ports"]} == {"internal"}]
    assert [f["podSelector"]["matchLabels"] for f in internal["from"]] == [
        anti["labelSelector"]["matchLabels"]]
    egress = {p["port"] for r in netpol["spec"]["egress"] for p in r["ports"]}
    assert {ports["grpc"], ports["internal"], 2379, 53} <= egress
    if "external-etcd" in combo[1]:
        assert env["VECDB_CLUSTER_ETCD"] == "<from vecdb-external-etcd/endpoints>"
        assert not [d for d in docs if d["metadata"]["name"].startswith("etcd")]
        return
    assert "VECDB_CLUSTER_ETCD" not in env
    etcd = one(docs, "StatefulSet", "etcd")
    n = etcd["spec"]["replicas"]
    assert n == 3 and etcd["spec"]["podManagementPolicy"] == "Parallel"
    etcd_labels = etcd["spec"]["template"]["metadata"]["labels"]
    args = dict(a[2:].split("=", 1) for a in etcd["spec"]["template"]["spec"]["containers"][0]["args"])
    headless = etcd["spec"]["serviceName"]
    assert args["initial-cluster"] == ",".join(
        f"etcd-{i}=http://etcd-{i}.{headless}.$(POD_NAMESPACE).svc:2380" for i in range(n))
    assert args["name"] == "$(POD_NAME)" and args["data-dir"].startswith("/var/lib/etcd/")
    assert one(docs, "Service", headless)["spec"]["publishNotReadyAddresses"]
    # vecdb reaches etcd's client Service, which selects the members
    client = one(docs, "Service", "etcd")
    assert cfg["cluster_etcd"] == f"http://etcd:{client['spec']['ports'][0]['port']}"
    assert client["spec"]["selector"].items() <= etcd_labels.items()
    pdb = one(docs, "PodDisruptionBudget", "etcd")["spec"]
    assert n - pdb["maxUnavailable"] >= n // 2 + 1  # evictions keep the quorum
    assert pdb["selector"]["matchLabels"].items() <= etcd_labels.items()
    etcd_np = one(docs, "NetworkPolicy", "etcd")["spec"]
    (to_clients,) = [r for r in etcd_np["ingress"] if r["ports"][0]["port"] == "client"]
    assert {"app.kubernetes.io/component": "server", "app.kubernetes.io/name": "vecdb"} in \
        [f["podSelector"]["matchLabels"] for f in to_clients["from"]]


def test_image_defaults_match_the_base_configmap():
    """The images bake in deploy/kustomize/base/vecdb.yaml, the ConfigMap's source."""
    text = (DEPLOY / "kustomize" / "base" / "vecdb.yaml").read_text()
    assert server_config_text(documents("cpu")) == text
    for dockerfile in ("Dockerfile", "Dockerfile.cuda"):
        runtime = _dockerfile.parse(DEPLOY / dockerfile)[-1]
        assert "deploy/kustomize/base/vecdb.yaml /etc/vecdb/vecdb.yaml" in runtime.all("COPY")


def test_docs_list_every_combination():
    doc = (ROOT / "docs" / "deploy.md").read_text()
    for overlay in OVERLAYS:
        assert f"deploy/kustomize/overlays/{overlay}" in doc
    for overlay, comps in COMBOS:
        assert f"| `{overlay}` | {', '.join(f'`{c}`' for c in comps) or '–'} |" in doc, \
            (overlay, comps)
    assert "30 minutes" in doc and "kubernetes-validate" in doc
    readme = (ROOT / "README.md").read_text()
    assert "## Deploying on Kubernetes" in readme
    assert readme.index("## Deploying on Kubernetes") < readme.index("## Performance")
