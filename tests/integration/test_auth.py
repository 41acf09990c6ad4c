"""API keys through the SDK: every rule of roles, scoping and the open probes; key
parsing; keys never logged; the no-keys exposure rule at start-up."""
from __future__ import annotations

import grpc
import numpy as np
import pytest

from harness import InProcessServer, rand
from vecdb_client import (Client, PermissionDeniedError, UnauthenticatedError,
                          VecdbClientError)
from vecdb_client._proto.vecdb.v1 import collections_pb2 as cpb
from vecdb_client._proto.vecdb.v1 import collections_pb2_grpc as cgrpc
from vecdb_server.auth import METHOD_ROLES, KeyStore, all_methods, parse_api_keys
from vecdb_server.config import ConfigError, ServerConfig, describe, load_config
from vecdb_server.guard import NO_KEYS_WARNING

ADMIN = "adm-7f3c9e1a2b4d6f80a1c3e5b7d9f1a3c5"
RW = "rw-1b2c3d4e5f60718293a4b5c6d7e8f901"
RO = "ro-9a8b7c6d5e4f30211f2e3d4c5b6a7980"
SCOPED = "sc-5e6f708192a3b4c5d6e7f8091a2b3c4d"
KEYS = [{"key": ADMIN, "role": "admin"}, {"key": RW, "role": "read-write"},
        {"key": RO, "role": "read-only"},
        {"key": SCOPED, "role": "read-write", "collections": ["mine"]}]
DIM = 8


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    srv = InProcessServer(tmp_path_factory.mktemp("auth") / "data", api_keys=KEYS)
    with srv.client(api_key=ADMIN) as c:
        for name in ("mine", "other"):
            c.create_collection(name, dim=DIM, index="flat")
            c.upsert(name, [f"{name}{i}" for i in range(10)], rand(10, DIM, seed=len(name)))
        c.create_alias("mine_alias", "mine")
        c.create_alias("other_alias", "other")
    yield srv
    srv.stop()


def test_every_rpc_has_a_role():
    methods = all_methods()
    assert len(methods) >= 20
    missing = sorted(set(methods) - set(METHOD_ROLES))
    assert not missing, f"RPCs without a role in vecdb_server.auth.METHOD_ROLES: {missing}"
    assert not set(METHOD_ROLES) - set(methods), "METHOD_ROLES names RPCs that do not exist"


def test_no_key_and_wrong_key_are_unauthenticated(keyed):
    for api_key in (None, "wrong-key", ADMIN + "x", ADMIN[:-1]):
        with keyed.client(api_key=api_key) as c:
            with pytest.raises(UnauthenticatedError):
                c.list_collections()
            with pytest.raises(UnauthenticatedError):
                c.search("mine", vector=rand(1, DIM)[0], k=3)
            with pytest.raises(UnauthenticatedError):
                c.upsert("mine", ["x"], rand(1, DIM))
    with keyed.client(api_key=ADMIN) as c:
        assert c.count("mine") == 10


def test_health_is_open_without_a_key(keyed):
    with keyed.client() as c:
        assert c.health() == "SERVING"


def test_x_api_key_header_and_bearer_header_both_work(keyed):
    with grpc.insecure_channel(keyed.target) as ch:
        stub = cgrpc.CollectionServiceStub(ch)
        req = cpb.ListCollectionsRequest()
        assert len(stub.ListCollections(req, metadata=(("x-api-key", RO),)).collections) == 2
        assert len(stub.ListCollections(
            req, metadata=(("authorization", f"bearer {RO}"),)).collections) == 2
        with pytest.raises(grpc.RpcError) as ei:
            stub.ListCollections(req, metadata=(("authorization", f"Basic {RO}"),))
        assert ei.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_read_only_key_reads_but_cannot_write(keyed):
    with keyed.client(api_key=RO) as c:
        assert c.count("mine") == 10 and len(c.get("mine", ["mine1"])) == 1
        assert len(c.search("mine", vector=rand(1, DIM)[0], k=3)) == 3
        assert c.scroll("mine", limit=5).points and c.describe_collection("mine").points == 10
        assert {x.name for x in c.list_collections()} == {"mine", "other"}
        for call in (lambda: c.upsert("mine", ["x"], rand(1, DIM)),
                     lambda: c.delete("mine", ["mine1"]),
                     lambda: c.update_payload("mine", ids=["mine1"], set={"a": 1}),
                     lambda: c.update_vectors("mine", ["mine1"], rand(1, DIM)),
                     lambda: c.create_collection("ro_new", dim=DIM),
                     lambda: c.drop_collection("mine")):
            with pytest.raises(PermissionDeniedError) as ei:
                call()
            assert "read-only" in ei.value.message
    with keyed.client(api_key=ADMIN) as c:
        assert c.count("mine") == 10


def test_read_write_key_writes_points_but_cannot_manage_collections(keyed):
    with keyed.client(api_key=RW) as c:
        assert c.upsert("other", ["rw1"], rand(1, DIM)).count == 1
        assert c.delete("other", ["rw1"]).count == 1
        for call in (lambda: c.create_collection("rw_new", dim=DIM),
                     lambda: c.drop_collection("other"),
                     lambda: c.create_alias("rw_alias", "other"),
                     lambda: c.set_alias("other_alias", "mine"),
                     lambda: c.delete_alias("other_alias"),
                     lambda: c.create_payload_index("other", "lang", "keyword"),
                     lambda: c.drop_payload_index("other", "lang")):
            with pytest.raises(PermissionDeniedError):
                call()
        assert "rw_new" not in {x.name for x in c.list_collections()}


def test_admin_key_can_do_everything(keyed):
    with keyed.client(api_key=ADMIN) as c:
        c.create_collection("adm", dim=DIM)
        c.create_payload_index("adm", "lang", "keyword")
        c.drop_payload_index("adm", "lang")
        c.create_alias("adm_alias", "adm")
        c.set_alias("adm_alias", "adm")
        c.upsert("adm_alias", ["a"], rand(1, DIM))
        assert c.count("adm") == 1
        c.delete_alias("adm_alias")
        c.drop_collection("adm")
        assert "adm" not in {x.name for x in c.list_collections()}


def test_scoped_key_sees_and_touches_only_its_collections(keyed):
    with keyed.client(api_key=SCOPED, chunk_points=3) as c:
        assert [x.name for x in c.list_collections()] == ["mine"]
        assert c.list_aliases() == {"mine_alias": "mine"}
        assert c.count("mine") == 10 and c.count("mine_alias") == 10
        assert c.server_info()["ready"]  # version and uptime concern no collection
        # several chunks: UpsertStream, every message checked
        assert c.upsert("mine_alias", ["s1", "s2", "s3", "s4"], rand(4, DIM)).count == 4
        assert c.delete("mine", ["s1", "s2", "s3", "s4"]).count == 4
        for call in (lambda: c.count("other"), lambda: c.count("other_alias"),
                     lambda: c.get("other", ["other1"]),
                     lambda: c.search("other", vector=rand(1, DIM)[0], k=1),
                     lambda: c.describe_collection("other"),
                     lambda: c.list_aliases("other"),
                     lambda: c.upsert("other", ["x"], rand(1, DIM)),
                     lambda: c.upsert("other", [f"y{i}" for i in range(7)], rand(7, DIM)),
                     lambda: c.delete("other_alias", ["other1"])):
            with pytest.raises(PermissionDeniedError):
                call()
    with keyed.client(api_key=ADMIN) as c:
        assert c.count("other") == 10 and c.count("mine") == 10


def test_scoped_admin_key_cannot_repoint_foreign_aliases(tmp_path):
    keys = [{"key": ADMIN, "role": "admin"},
            {"key": SCOPED, "role": "admin", "collections": ["a"]}]
    srv = InProcessServer(tmp_path / "data", api_keys=keys)
    try:
        with srv.client(api_key=ADMIN) as c:
            c.create_collection("b", dim=DIM)
            c.create_alias("b_alias", "b")
        with srv.client(api_key=SCOPED) as c:
            c.create_collection("a", dim=DIM)
            c.create_alias("a_alias", "a")
            for call in (lambda: c.set_alias("b_alias", "a"), lambda: c.delete_alias("b_alias"),
                         lambda: c.create_alias("x", "b"), lambda: c.drop_collection("b"),
                         lambda: c.create_collection("c", dim=DIM)):
                with pytest.raises(PermissionDeniedError):
                    call()
            assert c.list_aliases() == {"a_alias": "a"}
            c.drop_collection("a")
        with srv.client(api_key=ADMIN) as c:
            assert c.list_aliases() == {"b_alias": "b"}
    finally:
        srv.stop()


# ------------------------------------------------------------------ parsing
def test_key_sources_parse_to_digests_only(tmp_path):
    cfg = load_config([], environ={"VECDB_API_KEYS": f"{ADMIN}:admin;{RO}:ro:a,b"})
    assert [k.role for k in cfg.api_keys] == ["admin", "read-only"]
    assert cfg.api_keys[1].collections == frozenset({"a", "b"})
    text = repr(cfg) + str(describe(cfg))
    assert ADMIN not in text and RO not in text
    path = tmp_path / "keys.yaml"
    path.write_text(f"# mounted secret\n- key: {RW}\n  role: read-write\n"
                    f"  collections: [c]\n")
    cfg = load_config([], environ={"VECDB_API_KEYS_FILE": str(path)})
    store = KeyStore.from_config(cfg)
    assert store.authenticate(RW).collections == frozenset({"c"})
    assert store.authenticate(RO) is None and store.authenticate("") is None
    json_path = tmp_path / "keys.json"
    json_path.write_text(f'{{"api_keys": [{{"key": "{RO}", "role": "read-only"}}]}}')
    assert KeyStore.from_config(ServerConfig(api_keys_file=str(json_path))).authenticate(RO)
    yaml_path = tmp_path / "vecdb.yaml"
    yaml_path.write_text(f"api_keys:\n  - {{key: {ADMIN}, role: admin}}\n")
    assert load_config(["--config", str(yaml_path)], environ={}).api_keys[0].role == "admin"


@pytest.mark.parametrize("value, needle", [
    ("k1:superuser", "role"), ("justakey", "key:role"), ([{"key": "k", "role": "admin",
                                                           "extra": 1}], "mapping"),
    ([{"key": "", "role": "admin"}], "non-empty"), ("k1:admin;k1:ro", "twice"),
])
def test_bad_keys_are_config_errors_without_the_key(value, needle):
    with pytest.raises(ConfigError) as ei:
        ServerConfig(api_keys=value)
    assert needle in str(ei.value) and "k1" not in str(ei.value)


def test_parse_env_form_with_scopes():
    specs = parse_api_keys("a1:rw:x,y; b2:admin")
    assert [(s.role, s.collections) for s in specs] == [("read-write", frozenset("xy")),
                                                         ("admin", None)]


# ------------------------------------------------------------------ processes
def test_keys_never_appear_in_the_server_log(spawn, tmp_path):
    keyfile = tmp_path / "api-keys"
    keyfile.write_text(f"- {{key: {RO}, role: read-only}}\n")
    srv = spawn("--log-level", "DEBUG", "--api-keys-file", str(keyfile),
                env={"VECDB_API_KEYS": f"{ADMIN}:admin;{SCOPED}:rw:mine"})
    with srv.client(api_key=ADMIN) as c:
        c.create_collection("mine", dim=DIM)
        c.create_collection("theirs", dim=DIM)
        c.upsert("mine", ["a"], rand(1, DIM))
    with srv.client(api_key=RO) as c:
        assert c.count("mine") == 1
        with pytest.raises(PermissionDeniedError):
            c.upsert("mine", ["b"], rand(1, DIM))
    with srv.client(api_key=SCOPED) as c:
        with pytest.raises(PermissionDeniedError):
            c.count("theirs")
    for wrong in (ADMIN[:-2] + "zz", "totally-wrong"):
        with srv.client(api_key=wrong) as c, pytest.raises(UnauthenticatedError):
            c.count("mine")
    assert srv.terminate() == 0
    log = srv.log()
    assert "UNAUTHENTICATED" in log and "PERMISSION_DENIED" in log and "key#" in log
    for secret in (ADMIN, RW, RO, SCOPED, ADMIN[:-2] + "zz", "totally-wrong", ADMIN[3:20]):
        assert secret not in log


def test_no_keys_binds_loopback_and_warns(spawn):
    srv = spawn()
    assert NO_KEYS_WARNING in srv.log()
    with srv.client() as c:
        assert c.list_collections() == []


def test_no_keys_on_a_public_host_refuses_to_start(spawn, tmp_path):
    srv = spawn("--host", "0.0.0.0", wait_serving=False)
    assert srv.proc.wait(30) == 2 and srv.port is None
    assert "api_keys" in srv.log() and "allow_insecure_no_auth" in srv.log()
    srv2 = spawn("--host", "0.0.0.0", "--allow-insecure-no-auth", "true",
                 data_dir=tmp_path / "d2", wait_serving=False)
    assert srv2.port and srv2.proc.poll() is None
    assert "allow_insecure_no_auth is set" in srv2.log()


def test_keys_on_a_public_host_start(spawn):
    srv = spawn("--host", "0.0.0.0", env={"VECDB_API_KEYS": f"{ADMIN}:admin"},
                wait_serving=False)
    with Client(f"127.0.0.1:{srv.port}", api_key=ADMIN) as c:
        c.wait_ready(30)
        assert c.list_collections() == []
    with Client(f"127.0.0.1:{srv.port}") as c, pytest.raises(UnauthenticatedError):
        c.list_collections()


def test_bad_key_file_exits_2(spawn, tmp_path):
    bad = tmp_path / "keys"
    bad.write_text("- {key: qq-secret-qq, role: god}\n")
    srv = spawn("--api-keys-file", str(bad), wait_serving=False)
    assert srv.proc.wait(30) == 2 and "role" in srv.log() and "qq-secret" not in srv.log()


def test_sdk_errors_are_typed(keyed):
    with keyed.client(api_key=RO) as c:
        with pytest.raises(VecdbClientError) as ei:
            c.upsert("mine", ["x"], np.zeros((1, DIM), np.float32))
        assert ei.value.code == grpc.StatusCode.PERMISSION_DENIED and ei.value.request_id


def test_aio_server_enforces_the_same_rules(spawn):
    srv = spawn("--server-mode", "aio", "--rate-limit-rps", "1000", env={
        "VECDB_API_KEYS": f"{ADMIN}:admin;{RO}:read-only;{SCOPED}:read-write:mine"})
    with srv.client(api_key=ADMIN) as c:
        c.create_collection("mine", dim=DIM)
        c.create_collection("other", dim=DIM)
    with srv.client() as c:
        assert c.health() == "SERVING"
        with pytest.raises(UnauthenticatedError):
            c.list_collections()
    with srv.client(api_key=RO) as c, pytest.raises(PermissionDeniedError):
        c.upsert("mine", ["a"], rand(1, DIM))
    with srv.client(api_key=SCOPED, chunk_points=2) as c:
        assert [x.name for x in c.list_collections()] == ["mine"]
        assert c.upsert("mine", ["a", "b", "c"], rand(3, DIM)).count == 3  # UpsertStream
        with pytest.raises(PermissionDeniedError):
            c.upsert("other", ["a", "b", "c"], rand(3, DIM))
        with pytest.raises(PermissionDeniedError):
            c.count("other")
    with srv.client(api_key=ADMIN) as c:
        assert c.count("other") == 0 and c.count("mine") == 3


def test_reflection_is_open_without_a_key(keyed):
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase)
    with grpc.insecure_channel(keyed.target) as ch:
        services = ProtoReflectionDescriptorDatabase(ch).get_services()
    assert "vecdb.v1.PointService" in services and "grpc.health.v1.Health" in services


def test_key_file_is_reloaded_when_it_changes(tmp_path):
    path, now = tmp_path / "api-keys", [0.0]
    path.write_text(f"- {{key: {RO}, role: read-only}}\n")
    store = KeyStore(parse_api_keys(f"{ADMIN}:admin"), str(path), clock=lambda: now[0])
    assert store.authenticate(RO).role == "read-only" and store.authenticate(RW) is None
    path.write_text(f"- {{key: {RW}, role: read-write}}\n")
    assert store.authenticate(RW) is None  # not re-checked yet
    now[0] += KeyStore.RELOAD_EVERY_S
    assert store.authenticate(RW).role == "read-write" and store.authenticate(RO) is None
    path.write_text("- {key: x, role: god}\n")  # unusable -> the previous keys stay
    now[0] += KeyStore.RELOAD_EVERY_S
    assert store.authenticate(RW) is not None and store.authenticate(ADMIN) is not None
    path.write_text("")  # file keys revoked; the configured key remains
    now[0] += KeyStore.RELOAD_EVERY_S
    assert store.authenticate(RW) is None and store.authenticate(ADMIN) is not None
    only_file = KeyStore((), str(path), clock=lambda: now[0])
    path.write_text("# no keys yet\n")
    now[0] += KeyStore.RELOAD_EVERY_S
    assert not only_file.enabled
    path.write_text(f"- {{key: {RO}, role: ro}}\n")
    now[0] += KeyStore.RELOAD_EVERY_S
    assert only_file.enabled and only_file.authenticate(RO).role == "read-only"
    path.write_text("")  # would remove every key: ignored
    now[0] += KeyStore.RELOAD_EVERY_S
    assert only_file.enabled
