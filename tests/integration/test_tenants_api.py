"""Tenants over gRPC (docs/tenants.md): the SDK's tenant= calls (Client and AsyncClient),
the TenantService, errors naming the field, the isolation matrix of tenant-scoped keys
(every RPC x a cross-tenant attempt -> PERMISSION_DENIED or invisible), and a drop of
one tenant under concurrent writes of others. A real server on 127.0.0.1:0."""
from __future__ import annotations

import asyncio
import importlib
import re
import threading

import grpc
import numpy as np
import pytest
from harness import InProcessServer, rand
from vecdb_client import (
    AsyncClient,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    TenantInfo,
)
from vecdb_client._proto.vecdb import v1 as pkg
from vecdb_server.auth import all_methods

ADMIN = "adm-0a1b2c3d4e5f60718293a4b5c6d7e8f9"
KEY_A = "ta-1f2e3d4c5b6a79808f7e6d5c4b3a2910"      # read-write in tenant "a" of "t"
KEY_A_ADM = "tx-9e8d7c6b5a4f30211f2e3d4c5b6a7980"  # admin in tenant "a" (may drop it)
KEYS = [{"key": ADMIN, "role": "admin"},
        {"key": KEY_A, "role": "read-write", "collections": ["t"], "tenant": "a"},
        {"key": KEY_A_ADM, "role": "admin", "tenant": "a"}]
DIM = 8


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = InProcessServer(tmp_path_factory.mktemp("tenants") / "data", api_keys=KEYS,
                          dashboard_port=0)
    with srv.client(api_key=ADMIN) as c:
        c.create_collection("t", dim=DIM, metric="l2", index="flat", shards=2,
                            tenant_field="customer")
        c.create_collection("plain", dim=DIM, index="flat")
        for t, n, seed in (("a", 20, 1), ("b", 30, 2)):
            c.upsert("t", [f"{t}{i}" for i in range(n)], rand(n, DIM, seed),
                     [{"i": i} for i in range(n)], tenant=t)
    yield srv
    srv.stop()


def test_sdk_calls_in_a_tenant(server):
    with server.client(api_key=ADMIN) as c:
        assert c.describe_collection("t").config.tenant_field == "customer"
        q = rand(1, DIM, 9)[0]
        hits = c.search("t", vector=q, k=5, tenant="b")
        b = rand(30, DIM, 2)
        want = [f"b{j}" for j in np.argsort(((b - q) ** 2).sum(axis=1))[:5]]
        assert [h.id for h in hits] == want
        assert c.count("t", tenant="a") == 20
        assert [p.id for p in c.get("t", ["a1", "b1"], tenant="a")] == ["a1"]
        assert len(list(c.iter_points("t", batch_size=7, tenant="b"))) == 30
        assert c.range_search("t", vector=q, threshold=1e9, limit=100, tenant="a")[0].payload[
            "customer"] == "a"
        with pytest.raises(InvalidArgumentError) as ei:
            c.search("t", vector=q, k=5)
        assert ei.value.field == "tenant"
        assert c.count("t", tenant="zz") == 0  # a tenant without points reads as empty
        assert c.search("t", vector=q, k=5, tenant="zz") == []
        with pytest.raises(InvalidArgumentError) as ei:
            c.upsert("t", ["n1", "n2"], rand(2, DIM), [{"customer": "a"}, {"customer": 1.5}])
        assert ei.value.field == "payloads[1].customer"
        with pytest.raises(InvalidArgumentError) as ei:
            c.count("plain", tenant="a")
        assert ei.value.field == "tenant"
        assert c.count("t", tenant="a") == 20  # nothing written by the bad batch
        with pytest.raises(FailedPreconditionError):
            c.list_tenants("plain")


def test_tenant_service_quota_and_drop(server):
    with server.client(api_key=ADMIN) as c:
        c.upsert("t", ["q0", "q1"], rand(2, DIM), tenant=7)
        infos = {t.tenant: t for t in c.list_tenants("t")}
        assert infos[7].points == 2 and infos["a"].points == 20
        with pytest.raises(InvalidArgumentError) as ei:
            c.set_tenant_quota("t", 7, max_points=1)
        assert ei.value.field == "max_points"
        assert c.set_tenant_quota("t", 7, max_points=3) == TenantInfo(7, 2, infos[7].bytes, 3, 0)
        c.upsert("t", ["q2"], rand(1, DIM), tenant=7)
        with pytest.raises(ResourceExhaustedError) as ei:
            c.upsert("t", ["q3"], rand(1, DIM), tenant=7)
        assert ei.value.field == "tenant"
        assert c.drop_tenant("t", 7) == 3
        assert 7 not in {t.tenant for t in c.list_tenants("t")}


def test_async_client_in_a_tenant(server):
    async def run():
        async with AsyncClient(server.target, api_key=ADMIN) as c:
            await c.upsert("t", ["x0", "x1", "x2"], rand(3, DIM, 5), tenant="async")
            assert await c.count("t", tenant="async") == 3
            hits = await c.search("t", vector=rand(1, DIM, 5)[0], k=2, tenant="async")
            assert hits[0].id == "x0"
            info = await c.get_tenant("t", "async")
            assert info.points == 3
            await c.set_tenant_quota("t", "async", max_bytes=info.bytes + 1)
            assert await c.drop_tenant("t", "async") == 3
    asyncio.run(run())


# ---- the isolation matrix --------------------------------------------------------------
def _methods():
    """(full name, request class, streaming request?, streaming response?) of every RPC."""
    out = []
    for name in all_methods():
        _, service, method = name.split("/")
        for mod in ("collections", "points", "analytics", "cluster", "tenants"):
            module = importlib.import_module(f"{pkg.__name__}.{mod}_pb2")
            svc = module.DESCRIPTOR.services_by_name.get(service.rsplit(".", 1)[-1])
            if svc is not None and svc.full_name == service:
                m = svc.methods_by_name[method]
                from google.protobuf import message_factory
                cls = message_factory.GetMessageClass(m.input_type)
                out.append((name, cls, m.client_streaming, m.server_streaming))
    return out


def _call(channel, name, request, req_stream, resp_stream, key):
    md = (("authorization", f"Bearer {key}"),)
    kind = ("stream" if req_stream else "unary") + "_" + ("stream" if resp_stream else "unary")
    fn = getattr(channel, kind)(name, request_serializer=type(request).SerializeToString,
                                response_deserializer=lambda b: b)
    arg = iter([request]) if req_stream else request
    got = fn(arg, metadata=md, timeout=10)
    return list(got) if resp_stream else got


def test_every_rpc_naming_another_tenant_is_denied(server):
    """Each RPC, with tenant "b" named (or, without a tenant field, at all) by tenant
    "a"'s keys: PERMISSION_DENIED, whatever the role allows."""
    methods = _methods()
    assert len(methods) == len(all_methods())
    with grpc.insecure_channel(server.target) as ch:
        for name, cls, req_stream, resp_stream in methods:
            if name.endswith("/GetServerInfo"):
                continue
            req = cls()
            fields = cls.DESCRIPTOR.fields_by_name
            for f in ("collection", "name"):
                if f in fields and fields[f].type == fields[f].TYPE_STRING \
                        and not fields[f].is_repeated:
                    setattr(req, f, "t")
            if "tenant" in fields:
                req.tenant.text = "b"
            for key in (KEY_A, KEY_A_ADM):
                with pytest.raises(grpc.RpcError) as ei:
                    _call(ch, name, req, req_stream, resp_stream, key)
                assert ei.value.code() == grpc.StatusCode.PERMISSION_DENIED, (name, key)
                assert "'b'" not in (ei.value.details() or "")


def test_a_tenant_key_never_sees_another_tenant(server):
    """Calls without a tenant (the guard sets "a") that aim at "b"'s points find nothing,
    change nothing, and no answer or error carries "b"'s data."""
    q = rand(4, DIM, 3)
    with server.client(api_key=ADMIN) as adm:
        b_before = {p.id: p for p in adm.iter_points("t", with_vectors=True, tenant="b")}
    with server.client(api_key=KEY_A) as c:
        for hits in c.search("t", vectors=q, k=50):
            assert hits and all(h.id.startswith("a") for h in hits)
        assert c.search("t", vectors=q, k=50, filter={"key": "customer", "match": "b"}) == \
            [[]] * len(q)
        assert c.count("t") == 20
        assert c.count("t", filter={"key": "customer", "match": "b"}) == 0
        assert c.get("t", list(b_before)) == []
        assert {p.id[0] for p in c.iter_points("t")} == {"a"}
        assert all(h.id.startswith("a") for h in
                   c.range_search("t", vector=q[0], threshold=1e9, limit=1000))
        assert c.delete("t", ["b0", "b1"]).count == 0
        assert c.delete("t", filter={"key": "customer", "match": "b"}).count == 0
        assert c.update_payload("t", ["b2"], set={"x": 1}).count == 0
        assert c.update_vectors("t", ["b3"], rand(1, DIM)).count == 0
        with pytest.raises(InvalidArgumentError):
            c.upsert("t", ["new"], rand(1, DIM), [{"customer": "b"}])
        with pytest.raises(PermissionDeniedError):
            c.count("t", tenant="b")
        with pytest.raises(PermissionDeniedError):
            c.list_tenants("t")
        with pytest.raises(PermissionDeniedError):
            c.create_snapshot("t")
        assert c.describe_collection("t").points == 20  # its tenant's view (below)
        assert c.get_tenant("t").points == 20
        c.upsert("t", ["a-own"], rand(1, DIM))  # lands in "a"
    with server.client(api_key=KEY_A_ADM) as c, pytest.raises(InvalidArgumentError):
        c.count("plain")  # a collection without tenants
    with server.client(api_key=ADMIN) as adm:
        assert adm.get("t", ["a-own"], tenant="a")[0].payload == {"customer": "a"}
        after = {p.id: p for p in adm.iter_points("t", with_vectors=True, tenant="b")}
        assert after.keys() == b_before.keys()
        for pid, p in after.items():
            assert p.payload == b_before[pid].payload
            assert np.array_equal(p.vector, b_before[pid].vector)
        adm.delete("t", ["a-own"], tenant="a")


def _refusal(call) -> tuple[str, str | None]:
    with pytest.raises(NotFoundError) as ei:
        call()
    return re.sub(r" \(request id \w+\)", "", str(ei.value)), ei.value.field


def test_recommend_expression_and_groups_keep_to_the_key_tenant(server):
    """Tenant "a"'s key: examples and expression ids of "b" are not found, exactly as
    absent ids are (same message but for the id, same field); hits and groups are "a"'s
    and equal an admin's call naming "a"."""
    with server.client(api_key=ADMIN) as adm:
        want = adm.recommend("t", ["a1", "a2"], ["a3"], k=50, tenant="a")
        want_groups = adm.search("t", vector=rand(1, DIM, 4)[0], group_by="i", group_size=1,
                                 groups=50, tenant="a")
    with server.client(api_key=KEY_A) as c:
        for strategy in ("average", "best_score"):
            got = c.recommend("t", ["a1", "a2"], ["a3"], k=50, strategy=strategy)
            assert got and all(h.id.startswith("a") for h in got)
        assert [h.id for h in c.recommend("t", ["a1", "a2"], ["a3"], k=50)] == \
            [h.id for h in want]
        for pos, neg in ((["b1"], None), (["a1"], ["b2"]), (["a1", "b0"], None)):
            other = _refusal(lambda: c.recommend("t", pos, neg))
            bad = [p.replace("b", "zz") for p in pos], \
                None if neg is None else [p.replace("b", "zz") for p in neg]
            absent = _refusal(lambda: c.recommend("t", *bad))
            assert other[1] == absent[1] and other[0].replace("'b", "'zz") == absent[0]
        groups = c.search("t", vector=rand(1, DIM, 4)[0], group_by="i", group_size=1, groups=50)
        assert [(g.key, [h.id for h in g.hits]) for g in groups] == \
            [(g.key, [h.id for h in g.hits]) for g in want_groups]
        assert len(groups) == 20  # "a" has 20 points, one value of "i" each
        by_tenant = c.search("t", vector=rand(1, DIM, 4)[0], group_by="customer", groups=5)
        assert [g.key for g in by_tenant] == ["a"]
        hits = c.search("t", expression=[("+", "id:a1"), ("-", "id:a2")], k=50)
        assert hits and all(h.id.startswith("a") for h in hits)
        assert _refusal(lambda: c.search("t", expression=[("+", "id:b1")]))[0].replace(
            "'b1'", "'zz'") == _refusal(lambda: c.search("t", expression=[("+", "id:zz")]))[0]
        with pytest.raises(PermissionDeniedError):
            c.recommend("t", ["a1"], tenant="b")


def test_keyword_and_hybrid_search_keep_to_the_key_tenant(server):
    """A full_text tenant collection: tenant "a"'s (admin) key finds the hits a standalone
    collection of "a"'s points finds (scores: the shard's BM25 statistics), never "b"'s."""
    words = ["red fox", "blue dog", "red dog", "green cat", "fox cat"]
    with server.client(api_key=ADMIN) as adm:
        adm.create_collection("kt", dim=DIM, metric="l2", index="flat", shards=2,
                              tenant_field="customer", full_text="plain")
        adm.create_collection("ks", dim=DIM, metric="l2", index="flat", full_text="plain")
        for t, seed in (("a", 1), ("b", 2)):
            ids = [f"{t}{i}" for i in range(10)]
            texts = [words[i % 5] for i in range(10)]
            adm.upsert("kt", ids, rand(10, DIM, seed), texts=texts, tenant=t)
            if t == "a":
                adm.upsert("ks", ids, rand(10, DIM, seed), [{"customer": "a"}] * 10, texts=texts)
        want = {q: {h.id for h in adm.search("ks", keywords=q, k=50)} for q in ("fox", "red dog")}
    try:
        with server.client(api_key=KEY_A_ADM) as c:
            for q, ids in want.items():
                assert {h.id for h in c.search("kt", keywords=q, k=50)} == ids and ids
                hybrid = c.search("kt", vector=rand(1, DIM, 8)[0], keywords=q, k=50)
                assert {h.id for h in hybrid} == {f"a{i}" for i in range(10)}
            assert c.search("kt", keywords="fox", k=50,
                            filter={"key": "customer", "match": "b"}) == []
    finally:
        with server.client(api_key=ADMIN) as adm:
            adm.drop_collection("kt")
            adm.drop_collection("ks")


def test_describe_collection_shows_a_tenant_key_its_tenant_only(server):
    with server.client(api_key=ADMIN) as adm:
        full = adm.describe_collection("t")
        mine = adm.describe_collection("t", tenant="a")
        with pytest.raises(InvalidArgumentError) as ei:
            adm.describe_collection("plain", tenant="a")
        assert ei.value.field == "tenant"
    assert full.points == 50 and full.shards and full.bytes_on_disk > 0
    with server.client(api_key=KEY_A) as c:
        info = c.describe_collection("t")
    assert info == mine
    assert info.points == 20 and info.config == full.config
    assert not info.shards and info.bytes_on_disk == info.memory_bytes == 0
    assert info.reembed is None and info.clustering is None


def test_dashboard_collection_page_for_a_tenant_key(server):
    import json
    import urllib.error
    import urllib.request

    def http(method: str, path: str, body=None) -> tuple[int, dict]:
        req = urllib.request.Request(
            f"http://127.0.0.1:{server.app.dashboard_port}{path}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {KEY_A}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    status, page = http("GET", "/api/collections/t")
    assert status == 200 and page["points"] == 20 and page["shards"] == []
    assert page["bytes_on_disk"] == 0 and page["snapshots"] is None
    status, pts = http("POST", "/api/collections/t/points", {"limit": 100})
    assert status == 200 and pts["count"] == 20
    assert {p["id"][0] for p in pts["points"]} == {"a"}
    status, hits = http("POST", "/api/collections/t/search", {"id": "a1", "k": 50})
    assert status == 200 and hits["hits"] and all(h["id"][0] == "a" for h in hits["hits"])
    status, err = http("POST", "/api/collections/t/search", {"id": "b1", "k": 5})
    assert status == 404 and "b1" in err["error"]["message"]
    status, err = http("POST", "/api/collections/t/map", {"sample": 10})
    assert status == 403


def test_analytics_and_search_across_stay_refused_in_a_tenant(server):
    with server.client(api_key=ADMIN) as c:
        with pytest.raises(FailedPreconditionError) as ei:
            c.outliers("t", n=3)
        assert ei.value.field == "collection"


def test_named_vector_updates_stay_in_the_key_tenant(server):
    """update_vectors with named= (the primary under its vector_name) by tenant "a"'s key
    changes nothing of "b"; on a named-field collection without tenants it is refused."""
    with server.client(api_key=ADMIN) as adm:
        adm.create_collection("tv", dim=DIM, metric="l2", index="flat", shards=2,
                              tenant_field="customer", vector_name="emb")
        adm.upsert("tv", ["a0"], rand(1, DIM, 1), tenant="a")
        adm.upsert("tv", ["b0", "b1"], rand(2, DIM, 2), tenant="b")
        adm.create_collection("nv", dim=DIM, index="flat", vectors=[{"name": "f", "dim": 4}])
        adm.upsert("nv", ["n0"], rand(1, DIM, 3), named={"f": rand(1, 4, 4)})
        b_before = adm.get("tv", ["b0", "b1"], with_vectors=True, tenant="b")
        n_before = adm.get("nv", ["n0"], with_vectors=True)[0]
    with server.client(api_key=KEY_A_ADM) as c:
        zeros = np.zeros((3, DIM), np.float32)
        assert c.update_vectors("tv", ["b0", "b1", "nope"], named={"emb": zeros}).count == 0
        assert c.update_vectors("tv", ["a0", "b0"], named={"emb": zeros[:2]}).count == 1
        with pytest.raises(InvalidArgumentError) as ei:
            c.update_vectors("nv", ["n0"], named={"f": np.ones((1, 4), np.float32)})
        assert ei.value.field == "tenant"
    with server.client(api_key=ADMIN) as adm:
        for before, after in zip(b_before, adm.get("tv", ["b0", "b1"], with_vectors=True,
                                                   tenant="b")):
            assert np.array_equal(before.vector, after.vector)
        assert not adm.get("tv", ["a0"], with_vectors=True, tenant="a")[0].vector.any()
        n_after = adm.get("nv", ["n0"], with_vectors=True)[0]
        assert np.array_equal(n_after.vectors["f"], n_before.vectors["f"])
        adm.drop_collection("tv")
        adm.drop_collection("nv")


def test_a_key_tenant_without_points_reads_as_empty(server):
    with server.client(api_key=ADMIN) as adm:
        adm.create_collection("fresh", dim=DIM, index="flat", tenant_field="customer")
        adm.upsert("fresh", ["b0"], rand(1, DIM), tenant="b")
    with server.client(api_key=KEY_A_ADM) as c:
        assert c.count("fresh") == 0
        assert c.search("fresh", vector=rand(1, DIM)[0], k=3) == []
        assert list(c.iter_points("fresh")) == []
        assert c.get_tenant("fresh").points == 0
        c.upsert("fresh", ["a0"], rand(1, DIM))
        assert c.drop_tenant("fresh") == 1
        assert c.count("fresh") == 0  # just dropped: still empty, not unknown
    with server.client(api_key=ADMIN) as adm:
        assert adm.count("fresh", tenant="b") == 1
        adm.drop_collection("fresh")


def test_drop_tenant_under_concurrent_writes_loses_nothing_of_others(server):
    with server.client(api_key=ADMIN) as c:
        c.create_collection("d", dim=DIM, index="flat", shards=3, tenant_field="customer")
        c.upsert("d", [f"x{i}" for i in range(3000)], rand(3000, DIM), tenant="x")
    acked: dict[str, list[str]] = {"y": [], "z": [], "x": []}
    stop, errors = threading.Event(), []

    def writer(tenant: str) -> None:
        with server.client(api_key=ADMIN) as w:
            i = 0
            while not stop.is_set() or i < 30:
                ids = [f"{tenant}{i}-{j}" for j in range(20)]
                try:
                    w.upsert("d", ids, rand(20, DIM, i), tenant=tenant)
                except Exception as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)
                    return
                acked[tenant] += ids
                i += 1

    threads = [threading.Thread(target=writer, args=(t,)) for t in ("y", "z", "x")]
    for t in threads:
        t.start()
    with server.client(api_key=KEY_A_ADM) as scoped, pytest.raises(PermissionDeniedError):
        scoped.drop_tenant("d", "x")  # another tenant: refused
    with server.client(api_key=ADMIN) as c:
        dropped = c.drop_tenant("d", "x")
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    assert dropped >= 3000
    with server.client(api_key=ADMIN) as c:
        for tenant in ("y", "z"):
            assert c.count("d", tenant=tenant) == len(acked[tenant])
            got = {p.id for p in c.iter_points("d", batch_size=1000, with_payload=False,
                                               tenant=tenant)}
            assert got == set(acked[tenant])
        left = {p.id for p in c.iter_points("d", batch_size=1000, with_payload=False,
                                            tenant="x")}
        assert not any(pid.startswith("x") and "-" not in pid for pid in left)  # the 3000
        assert left <= set(acked["x"])
        c.drop_collection("d")


def _vecdbctl(server, *args: str) -> dict | list:
    import json
    import os
    import subprocess
    import sys

    from harness import SRC_PATHS
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(SRC_PATHS)}
    env.pop("VECDB_TENANT", None)
    got = subprocess.run([sys.executable, "-m", "vecdb_client.cli", "--host", server.target,
                          "--api-key", ADMIN, "-o", "json", *args],
                         capture_output=True, text=True, env=env, timeout=60, check=False)
    assert got.returncode == 0, got.stderr
    return json.loads(got.stdout)


def test_vecdbctl_tenants(server):
    assert _vecdbctl(server, "collections", "create", "tc", "--dim", str(DIM),
                     "--tenant-field", "org")["tenant_field"] == "org"
    with server.client(api_key=ADMIN) as c:
        c.upsert("tc", ["p0", "p1", "p2"], rand(3, DIM), tenant="acme")
        c.upsert("tc", ["q0"], rand(1, DIM), tenant=7)
    assert _vecdbctl(server, "--tenant", "acme", "points", "count", "tc")["count"] == 3
    assert _vecdbctl(server, "points", "count", "tc", "--tenant", "int:7")["count"] == 1
    assert {t["tenant"]: t["points"] for t in _vecdbctl(server, "tenants", "list", "tc")} == \
        {"acme": 3, 7: 1}
    assert _vecdbctl(server, "tenants", "quota", "tc", "acme", "--max-points", "5")[
        "max_points"] == 5
    assert _vecdbctl(server, "tenants", "drop", "tc", "int:7")["deleted"] == 1
    assert _vecdbctl(server, "--tenant", "acme", "tenants", "get", "tc")["points"] == 3


def test_embedded_client_in_a_tenant(tmp_path):
    from vecdb_server import embedded
    with embedded.connect(tmp_path / "emb", tenant="acme") as c:
        c.create_collection("e", dim=DIM, index="flat", tenant_field="org")
        c.upsert("e", ["e0", "e1"], rand(2, DIM))  # the client's default tenant
        c.upsert("e", ["f0"], rand(1, DIM), tenant="other")
        assert c.count("e") == 2 and c.count("e", tenant="other") == 1
        assert [t.tenant for t in c.list_tenants("e")] == ["acme", "other"]
        assert c.drop_tenant("e") == 2
