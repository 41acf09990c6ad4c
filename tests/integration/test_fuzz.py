"""Fuzz every RPC of both services with random and malformed requests (hypothesis).

Messages are built from the service descriptors (so a new RPC is fuzzed without
edits here): random values for a random subset of fields, edge-case integers,
NaN/inf doubles, vector bytes of the wrong size or full of NaN, nested filters,
and raw random bytes that may not even decode. They go through the raw gRPC
stubs to an in-process server. The server must never answer INTERNAL (or
UNKNOWN, or hang): only OK or a client-error status. Afterwards it still
answers health SERVING and the reference collection, which only read RPCs may
name, is unchanged (count, every point, an exact search). Writes and admin
calls aim at a scratch collection, its alias and made-up names.
"""
from __future__ import annotations

import struct

import grpc
import numpy as np
import pytest

from harness import InProcessServer, rand

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from google.protobuf import message_factory  # noqa: E402
from google.protobuf.descriptor import FieldDescriptor as FD  # noqa: E402

from vecdb_client._proto.vecdb.v1 import analytics_pb2 as apb  # noqa: E402
from vecdb_server.auth import METHOD_ROLES, READ, all_methods  # noqa: E402

DIM = 8
REF, SCRATCH = "ref", "scratch"
EXAMPLES_PER_RPC = 130  # x 24+ RPCs: over 3000 requests
CLIENT_ERRORS = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT,
                 grpc.StatusCode.NOT_FOUND, grpc.StatusCode.ALREADY_EXISTS,
                 grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.RESOURCE_EXHAUSTED,
                 grpc.StatusCode.OUT_OF_RANGE}
INTS = [0, 1, -1, 2, 3, 8, 7, 100, 10_000, 10_001, 2**31 - 1, -2**31, 2**32 - 1, 2**63 - 1,
        -2**63]
PAYLOAD_TEXTS = ["", "[]", "[{}]", "[null]", "{", '[{"a": 1}]', '[{"lang": "en"}, null]',
                 "[1e999]", "[NaN]", '[{"a": [1, {"b": null}]}]', "null", '"x"', "[[]]"]


def _methods() -> dict[str, tuple]:
    """full method name -> (request descriptor, client streaming, server streaming)."""
    import importlib
    import pkgutil

    from vecdb_client._proto.vecdb import v1 as pkg
    out = {}
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.endswith("_pb2"):
            mod = importlib.import_module(f"{pkg.__name__}.{info.name}")
            for svc in mod.DESCRIPTOR.services_by_name.values():
                for m in svc.methods:
                    out[f"/{svc.full_name}/{m.name}"] = (m.input_type, m.client_streaming,
                                                          m.server_streaming)
    return out


METHODS = _methods()
TOTALS: dict[str, int] = {}  # status name -> answers, over every RPC's fuzz run
FUZZED: set[str] = set()


def _names(read_only: bool) -> st.SearchStrategy:
    pool = [SCRATCH, SCRATCH, "scratch_alias", "nope", "", "a" * 65, "ünï", "../etc", "x y",
            "b", "_", "s1", "s2", "a\nb", "\x00", "😀"]
    if read_only:
        pool += [REF, REF, REF, "ref_alias", "r1", "r2"]
    known = st.sampled_from(pool)
    return st.one_of(known, known, known, st.text(max_size=12).filter(lambda s: "ref" not in s))


def _vector_bytes(draw) -> bytes:
    kind = draw(st.sampled_from(["ok", "nan", "inf", "short", "random", "empty"]))
    n = draw(st.integers(0, 3))
    if kind == "ok":
        return rand(max(n, 1), DIM, seed=n).tobytes()
    if kind == "nan":
        return np.full(max(n, 1) * DIM, np.nan, np.float32).tobytes()
    if kind == "inf":
        return np.full(DIM, np.inf, np.float32).tobytes()
    if kind == "short":
        return rand(1, DIM).tobytes()[:draw(st.integers(0, 4 * DIM - 1))]
    if kind == "random":
        return draw(st.binary(max_size=80))
    return b""


def _scalar(draw, field, names: st.SearchStrategy):
    t = field.type
    if t == FD.TYPE_STRING:
        if field.name == "payloads":
            return draw(st.sampled_from(PAYLOAD_TEXTS))
        return draw(names)
    if t == FD.TYPE_BYTES:
        return _vector_bytes(draw)
    if t == FD.TYPE_BOOL:
        return draw(st.booleans())
    if t in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        return draw(st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32),
                              st.sampled_from([0.0, -1.0, 1e308, -0.5, 0.5, 2.0])))
    if t == FD.TYPE_ENUM:
        return draw(st.one_of(st.sampled_from([v.number for v in field.enum_type.values]),
                              st.integers(-3, 50)))
    lo, hi = {FD.TYPE_UINT32: (0, 2**32 - 1), FD.TYPE_UINT64: (0, 2**64 - 1),
              FD.TYPE_INT32: (-2**31, 2**31 - 1), FD.TYPE_SINT32: (-2**31, 2**31 - 1),
              FD.TYPE_FIXED32: (0, 2**32 - 1)}.get(t, (-2**63, 2**63 - 1))
    return draw(st.one_of(st.sampled_from([i for i in INTS if lo <= i <= hi]),
                          st.integers(lo, hi)))


def _fill(draw, desc, names: st.SearchStrategy, depth: int):
    msg = message_factory.GetMessageClass(desc)()
    if desc.full_name == "vecdb.v1.Vectors":  # mostly consistent shapes, sometimes not
        if draw(st.booleans()):
            data = _vector_bytes(draw)
            msg.dim = draw(st.sampled_from([DIM, DIM, 0, -1, 3, 2**40]))
            msg.count = len(data) // (4 * DIM) if draw(st.booleans()) else draw(
                st.sampled_from(INTS))
            msg.data = data
            return msg
    fields = [f for f in desc.fields
              if depth > 0 or f.type != FD.TYPE_MESSAGE]
    chosen = draw(st.lists(st.sampled_from(fields), max_size=len(fields), unique=True)) \
        if fields else []
    for f in chosen:
        is_map = f.type == FD.TYPE_MESSAGE and f.message_type.GetOptions().map_entry
        if is_map:
            kf, vf = f.message_type.fields_by_name["key"], f.message_type.fields_by_name["value"]
            target = getattr(msg, f.name)
            for _ in range(draw(st.integers(0, 3))):
                k = _scalar(draw, kf, names)
                if vf.type == FD.TYPE_MESSAGE:
                    target[k].CopyFrom(_fill(draw, vf.message_type, names, depth - 1))
                else:
                    target[k] = _scalar(draw, vf, names)
        elif f.is_repeated:
            n = draw(st.integers(0, 4))
            if f.type == FD.TYPE_MESSAGE:
                for _ in range(n):
                    getattr(msg, f.name).add().CopyFrom(
                        _fill(draw, f.message_type, names, depth - 1))
            else:
                getattr(msg, f.name).extend(_scalar(draw, f, names) for _ in range(n))
        elif f.type == FD.TYPE_MESSAGE:
            getattr(msg, f.name).CopyFrom(_fill(draw, f.message_type, names, depth - 1))
        else:
            setattr(msg, f.name, _scalar(draw, f, names))
    return msg


@st.composite
def request_bytes(draw, method: str) -> bytes:
    desc = METHODS[method][0]
    read_only = METHOD_ROLES.get(method) == READ
    kind = draw(st.sampled_from(["message"] * 6 + ["empty", "random", "mutated"]))
    if kind == "empty":
        return b""
    raw = _fill(draw, desc, _names(read_only), depth=3).SerializeToString()
    if kind == "random":
        raw = draw(st.binary(max_size=120))
    elif kind == "mutated" and raw:  # flip / cut / splice bytes of a valid message
        i = draw(st.integers(0, len(raw) - 1))
        raw = raw[:i] + draw(st.binary(max_size=6)) + raw[i + draw(st.integers(0, 3)):]
    if not read_only:  # never let a write or admin call name the reference collection
        raw = raw.replace(b"ref", b"reg")
    return raw


def _reference_state(c) -> tuple:
    ids = [f"r{i}" for i in range(40)]
    got = c.get(REF, ids, with_vectors=True)
    hits = c.search(REF, vector=rand(1, DIM, seed=99)[0], k=10, exact=True)
    return (c.count(REF), [(p.id, p.payload, p.vector.tobytes()) for p in got],
            [(h.id, round(h.score, 5)) for h in hits], c.list_aliases(REF))


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    srv = InProcessServer(tmp_path_factory.mktemp("fuzz") / "data", max_batch_points=1000)
    with srv.client() as c:
        c.create_collection(REF, dim=DIM, index="flat")
        c.upsert(REF, [f"r{i}" for i in range(40)], rand(40, DIM, seed=7),
                 payloads=[{"i": i, "lang": "en" if i % 2 else "de"} for i in range(40)])
        c.create_alias("ref_alias", REF)
        c.create_collection(SCRATCH, dim=DIM)
        c.upsert(SCRATCH, [f"s{i}" for i in range(20)], rand(20, DIM, seed=8))
        c.create_alias("scratch_alias", SCRATCH)
        before = _reference_state(c)
    channel = grpc.insecure_channel(srv.target)
    yield srv, channel, before
    channel.close()
    with srv.client() as c:
        assert c.health() == "SERVING"
        assert _reference_state(c) == before, "the fuzzer changed the reference collection"
    srv.stop()


def _call(channel: grpc.Channel, method: str, raw: list[bytes]) -> grpc.StatusCode:
    _, streaming, streamed = METHODS[method]
    try:
        if streaming:
            for _ in channel.stream_stream(method)(iter(raw), timeout=20):
                pass
        elif streamed:  # a unary call would wait for its deadline on a second message
            for _ in channel.unary_stream(method)(raw[0], timeout=20):
                pass
        else:
            channel.unary_unary(method)(raw[0], timeout=20)
        return grpc.StatusCode.OK
    except grpc.RpcError as exc:
        return exc.code()


@pytest.mark.parametrize("method", sorted(METHODS))
def test_fuzz_rpc(fuzz_server, method):
    _, channel, _ = fuzz_server
    seen: dict[str, int] = {}

    @settings(max_examples=EXAMPLES_PER_RPC, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.filter_too_much,
                                     HealthCheck.function_scoped_fixture])
    @given(st.lists(request_bytes(method), min_size=1,
                    max_size=3 if METHODS[method][1] else 1))
    def run(raw: list[bytes]) -> None:
        code = _call(channel, method, raw)
        seen[code.name] = seen.get(code.name, 0) + 1
        assert code in CLIENT_ERRORS, f"{method} answered {code.name} to {raw!r}"

    run()
    assert sum(seen.values()) >= EXAMPLES_PER_RPC // 2, seen
    for code, n in seen.items():
        TOTALS[code] = TOTALS.get(code, 0) + n
    FUZZED.add(method)


def test_hand_picked_malformed_requests(fuzz_server):
    """Cases a random search rarely reaches; the same rule: never INTERNAL."""
    from vecdb_client._proto.vecdb.v1 import points_pb2 as ppb
    from vecdb_client._proto.vecdb.v1 import types_pb2 as tpb
    _, channel, _ = fuzz_server
    nan_vec = struct.pack("<8f", *([float("nan")] * 8))
    cases = [
        ("/vecdb.v1.PointService/Search", ppb.SearchRequest(
            collection=REF, vectors=tpb.Vectors(count=2**62, dim=2**62, data=nan_vec))),
        ("/vecdb.v1.PointService/Search", ppb.SearchRequest(
            collection=REF, k=2**62, vectors=tpb.Vectors(count=1, dim=8, data=nan_vec))),
        ("/vecdb.v1.PointService/Upsert", ppb.UpsertRequest(
            collection=SCRATCH, points=tpb.PointBatch(
                ids=["a"], vectors=tpb.Vectors(count=1, dim=-8, data=nan_vec)))),
        ("/vecdb.v1.PointService/Upsert", ppb.UpsertRequest(
            collection=SCRATCH, points=tpb.PointBatch(
                ids=["a", "b"], vectors=tpb.Vectors(count=2, dim=8, data=nan_vec * 2),
                ttl_seconds=[float("nan"), -1.0]))),
        ("/vecdb.v1.PointService/RangeSearch", ppb.RangeSearchRequest(
            collection=REF, threshold=float("nan"),
            vectors=tpb.Vectors(count=1, dim=8, data=nan_vec))),
    ]
    for method, msg in cases:
        code = _call(channel, method, [msg.SerializeToString()])
        assert code in CLIENT_ERRORS, (method, code, msg)
    code = _call(channel, "/vecdb.v1.PointService/Get", [b"\xff\xff\xff"])
    assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_fuzz_covers_every_rpc_and_the_server_is_still_healthy(fuzz_server):
    """Runs last: every RPC was fuzzed, health is SERVING, the reference is unchanged."""
    srv, _, before = fuzz_server
    assert set(METHODS) == set(all_methods())
    if FUZZED == set(METHODS):  # every per-RPC run came first (not so with -k)
        assert sum(TOTALS.values()) >= 3000, TOTALS
        assert {"OK", "INVALID_ARGUMENT", "NOT_FOUND"} <= set(TOTALS), TOTALS
        print("fuzz answers:", TOTALS)
    with srv.client() as c:
        assert c.health() == "SERVING"
        assert _reference_state(c) == before


# ------------------------------------------------ hostile text in every string field
HOSTILE_TEXTS = ["ü", "ïndex\u202e", "a\nb", "\x00", "\x1b[31m\x7f", "😀" * 3, "%C3%BC", "é" * 70]
_DEFAULT_INTS = {"dim": DIM, "k": 3, "limit": 5, "shards": 1}
_NAME_FIELDS = {"collection", "name"}  # set to a real name so validation goes deeper


def _string_paths(desc, depth: int = 3, prefix: tuple = ()) -> list[tuple]:
    """Every path to a string in ``desc``: (field, ...) for strings and repeated strings,
    (map field, "key") / (map field, "value") for map entries, through nested messages."""
    out = []
    for f in desc.fields:
        path = prefix + (f.name,)
        if f.type == FD.TYPE_STRING:
            out.append(path)
        elif f.type == FD.TYPE_MESSAGE and f.message_type.GetOptions().map_entry:
            kf, vf = f.message_type.fields_by_name["key"], f.message_type.fields_by_name["value"]
            if kf.type == FD.TYPE_STRING:
                out.append(path + ("key",))
            if vf.type == FD.TYPE_STRING:
                out.append(path + ("value",))
        elif f.type == FD.TYPE_MESSAGE and depth > 0:
            out += _string_paths(f.message_type, depth - 1, path)
    return out


def _hostile_request(desc, path: tuple, text: str, name: str):
    """A request with plausible values in its top-level fields (collection names, dim, k)
    and ``text`` at ``path``."""
    msg = message_factory.GetMessageClass(desc)()
    for f in desc.fields:
        if f.type == FD.TYPE_STRING and f.name in _NAME_FIELDS and not f.is_repeated:
            setattr(msg, f.name, name)
        elif f.name in _DEFAULT_INTS and f.type in (FD.TYPE_INT64, FD.TYPE_INT32) \
                and not f.is_repeated:
            setattr(msg, f.name, _DEFAULT_INTS[f.name])
    target = msg
    for i, part in enumerate(path):
        field = target.DESCRIPTOR.fields_by_name[part]
        last = i == len(path) - 1
        if field.type == FD.TYPE_MESSAGE and field.message_type.GetOptions().map_entry:
            entries, vf = getattr(target, part), field.message_type.fields_by_name["value"]
            plain = {FD.TYPE_STRING: "keyword", FD.TYPE_BOOL: True}.get(vf.type, 1)
            if path[i + 1] == "key":
                if vf.type == FD.TYPE_MESSAGE:
                    entries[text].SetInParent()
                else:
                    entries[text] = plain
            else:
                entries["f"] = text
            break
        if last:
            if field.is_repeated:
                getattr(target, part).extend([text, "ok"])
            else:
                setattr(target, part, text)
        else:
            target = getattr(target, part).add() if field.is_repeated else getattr(target, part)
    return msg


@pytest.mark.parametrize("method", sorted(METHODS))
def test_hostile_text_in_every_string_field(fuzz_server, method):
    """Non-ASCII, control characters, bidi overrides, emoji and percent signs in every
    string field of the request (map keys and values included): a client error or OK,
    never INTERNAL/UNKNOWN (user text must never reach response metadata raw)."""
    _, channel, _ = fuzz_server
    desc = METHODS[method][0]
    read_only = METHOD_ROLES.get(method) == READ
    paths = _string_paths(desc)
    for n, path in enumerate(paths):
        for text in HOSTILE_TEXTS:
            name = REF if read_only else f"hostile{n}"
            raw = _hostile_request(desc, path, text, name).SerializeToString()
            code = _call(channel, method, [raw])
            assert code in CLIENT_ERRORS, f"{method} {'.'.join(path)}={text!r}: {code.name}"


def test_field_with_non_ascii_travels_back_to_the_sdk(fuzz_server):
    """The offending field is named even when it is user text that metadata cannot hold
    raw: percent-encoded on the wire, decoded by the SDK."""
    from vecdb_client import InvalidArgumentError
    srv, _, _ = fuzz_server
    with srv.client() as c:
        for key in ("ü", "a\nb", "100%"):
            with pytest.raises(InvalidArgumentError) as err:
                c.create_collection("hostile_params", dim=DIM, index="hnsw", **{key: 1})
            assert err.value.field == f"index_params.{key}"
            assert repr(key)[1:-1] in err.value.message or key in err.value.message


def test_a_streamed_answer_of_several_messages_is_read_as_a_stream(fuzz_server):
    """The fuzzer's own call: Duplicates over 20 points at a threshold that finds pairs
    answers a pairs chunk and the end (two messages); read as a unary call,
    it waited for its deadline (DEADLINE_EXCEEDED)."""
    srv, channel, _ = fuzz_server
    with srv.client() as c:  # its own collection: the fuzzers may have dropped the scratch one
        c.create_collection("streamed", dim=DIM)
        c.upsert("streamed", [f"s{i}" for i in range(20)], rand(20, DIM, seed=8))
    raw = apb.DuplicatesRequest(collection="streamed", threshold=0.5).SerializeToString()
    assert _call(channel, "/vecdb.v1.AnalyticsService/Duplicates", [raw]) == grpc.StatusCode.OK
