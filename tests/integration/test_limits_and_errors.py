"""Message size limits, the INTERNAL path of the error interceptor, NOT_SERVING before
recovery, and retries on UNAVAILABLE."""
from __future__ import annotations

import logging
import threading
from concurrent import futures

import grpc
import numpy as np
import pytest

from harness import InProcessServer, make_config, rand
from vecdb_client import Client, InternalError, ResourceExhaustedError, UnavailableError
from vecdb_server.app import ServerApp
from vecdb_server.interceptors import ErrorInterceptor, ErrorMapper

LIMIT = 256 * 1024


@pytest.fixture(scope="module")
def small_server(tmp_path_factory):
    srv = InProcessServer(tmp_path_factory.mktemp("small") / "data", max_message_bytes=LIMIT)
    yield srv
    srv.stop()


def test_too_large_request_is_resource_exhausted_and_chunking_avoids_it(small_server):
    vecs = rand(2000, 64)  # 512 KiB of vectors > 256 KiB limit
    ids = [f"p{i}" for i in range(2000)]
    with small_server.client(chunk_bytes=10 * LIMIT) as c:  # one oversized message
        c.create_collection("big", dim=64)
        with pytest.raises(ResourceExhaustedError) as ei:
            c.upsert("big", ids, vecs)
        assert "larger than max" in ei.value.message or "size" in ei.value.message
        assert c.count("big") == 0 and c.health() == "SERVING"
    with small_server.client(chunk_bytes=64 * 1024) as c:  # the SDK default splits it
        assert c.upsert("big", ids, vecs).count == 2000
        assert c.count("big") == 2000


def test_too_large_response_is_resource_exhausted(small_server):
    with small_server.client(chunk_bytes=64 * 1024) as c:
        c.create_collection("wide", dim=512)
        c.upsert("wide", [f"w{i}" for i in range(200)], rand(200, 512))  # 400 KiB of vectors
        with pytest.raises(ResourceExhaustedError):
            c.get("wide", [f"w{i}" for i in range(200)], with_vectors=True)
        assert len(c.get("wide", [f"w{i}" for i in range(50)], with_vectors=True)) == 50


def test_unexpected_error_is_internal_with_request_id_logged(caplog):
    """A real server with the real interceptor and a method that hits a bug."""
    def boom(request, context):
        raise KeyError("secret internal detail /etc/passwd")

    handler = grpc.method_handlers_generic_handler("vecdb.v1.Test", {
        "Boom": grpc.unary_unary_rpc_method_handler(boom)})
    server = grpc.server(futures.ThreadPoolExecutor(2),
                         interceptors=[ErrorInterceptor(ErrorMapper())])
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with caplog.at_level(logging.ERROR, logger="vecdb_server.errors"):
            with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
                call = ch.unary_unary("/vecdb.v1.Test/Boom")
                with pytest.raises(grpc.RpcError) as ei:
                    call(b"", timeout=5)
        from vecdb_client.errors import from_rpc_error
        err = from_rpc_error(ei.value)
        assert isinstance(err, InternalError)
        assert "secret" not in err.message and "Traceback" not in err.message
        assert err.request_id and err.request_id in err.message
        record = next(r for r in caplog.records if err.request_id in r.getMessage())
        assert record.exc_info and "secret internal detail" in str(record.exc_info[1])
    finally:
        server.stop(0)


def test_not_serving_and_unavailable_until_recovery_finishes(tmp_path):
    app = ServerApp(make_config(tmp_path / "data"))
    port = app.start()  # serving gRPC, database not opened yet
    try:
        with Client(f"127.0.0.1:{port}", timeout=5, max_retries=0) as c:
            assert c.health() == "NOT_SERVING"
            with pytest.raises(UnavailableError) as ei:
                c.list_collections()
            assert "recovering" in ei.value.message
            app.open_in_background()
            c.wait_ready(30)
            assert c.health() == "SERVING" and c.list_collections() == []
    finally:
        app.stop(grace=1)


def test_idempotent_calls_retry_on_unavailable(tmp_path):
    """The SDK retries a read while the server is still recovering, then succeeds."""
    app = ServerApp(make_config(tmp_path / "data"))
    port = app.start()
    try:
        timer = threading.Timer(0.3, app.open_in_background)
        timer.start()
        with Client(f"127.0.0.1:{port}", timeout=5, max_retries=8, retry_backoff=0.1) as c:
            assert c.list_collections() == []  # retried through UNAVAILABLE
        with Client(f"127.0.0.1:{port}", timeout=5, max_retries=8) as c:
            c.create_collection("x", dim=2)
            assert c.count("x") == 0
        timer.join()
    finally:
        app.stop(grace=1)


def test_non_idempotent_calls_do_not_retry(tmp_path):
    app = ServerApp(make_config(tmp_path / "data"))
    port = app.start()
    try:
        with Client(f"127.0.0.1:{port}", timeout=5, max_retries=50, retry_backoff=0.5) as c:
            with pytest.raises(UnavailableError):
                c.create_collection("x", dim=2)  # fails fast: no 50 retries
    finally:
        app.open_in_background()
        app.stop(grace=1)


def test_vectors_accept_any_float_dtype(server):
    with server.client() as c:
        c.create_collection("dtypes", dim=3, metric="l2")
        c.upsert("dtypes", ["a", "b"], np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float64))
        c.upsert("dtypes", ["c"], np.array([[7, 8, 9]], dtype=">f4"))  # big-endian input
        got = c.get("dtypes", ["c"], with_vectors=True)[0].vector
        np.testing.assert_array_equal(got, [7, 8, 9])
        assert c.search("dtypes", vector=np.array([1, 2, 3], np.int32), k=1)[0].id == "a"
