"""Device settings: validation, resolution (this machine has no GPU), the probe never
importing torch needlessly, shard spread, catalogs written before `device` existed."""
from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap

import pytest

from gpu_standin import StandIn
from vecdb import Database, DatabaseOptions, FailedPrecondition, InvalidArgument
from vecdb.gpu import GpuContext, Gpus, probe, torch_cuda_build
from vecdb.types import CollectionConfig, IndexSpec
from vecdb_server.config import ConfigError, load_config

NO_GPU = probe().backend is None


def opts(**kw):
    return DatabaseOptions(background=False, **kw)


@pytest.mark.skipif(not NO_GPU, reason="checks the behaviour of a machine without a GPU")
def test_gpu_without_a_gpu_is_failed_precondition_naming_device(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="vecdb.gpu")
    with Database.open(str(tmp_path / "a"), opts()) as db:  # auto: falls back, logged once
        with pytest.raises(FailedPrecondition) as ei:
            db.create_collection("g", 8, device="gpu")
        assert ei.value.field == "device" and "no usable GPU" in ei.value.message
        assert "g" not in [c.name for c in db.list_collections()]
        d = db.create_collection("c", 8, device="cpu")
        assert d.config.device == "cpu" and d.shards[0].device == "cpu"
        d = db.create_collection("a", 8)
        assert d.config.device == "auto" and d.shards[0].device == "cpu" and d.gpu_memory_bytes == 0
    assert caplog.text.count("no usable GPU") == 1  # the auto fallback: one log line
    with pytest.raises(FailedPrecondition) as ei:
        Database.open(str(tmp_path / "a"), opts(device="gpu"))
    assert ei.value.field == "device"
    Database.open(str(tmp_path / "a"), opts()).close()  # the directory lock was released


def test_resolution_rules():
    none = Gpus(0, 0, "faiss: no GPU support (faiss-cpu); torch: torch is a CPU build")
    torch2, faiss4 = Gpus(0, 2), Gpus(4, 1)
    cases = [  # (server, collection, gpus, backend or the error)
        ("auto", "auto", none, "cpu"), ("auto", "cpu", torch2, "cpu"),
        ("auto", "auto", torch2, "torch"), ("auto", "gpu", faiss4, "faiss"),
        ("cpu", "auto", faiss4, "cpu"), ("cpu", "gpu", faiss4, "device=cpu"),
        ("gpu", "auto", torch2, "torch"), ("gpu", "auto", none, "no usable GPU"),
        ("auto", "gpu", none, "no usable GPU"), ("gpu", "cpu", none, "cpu"),
    ]
    for server, coll, gpus, want in cases:
        ctx = GpuContext(server, gpus=gpus)
        if want in ("cpu", "torch", "faiss"):
            assert ctx.resolve(coll, strict=True) == want, (server, coll, gpus)
        else:
            with pytest.raises(FailedPrecondition) as ei:
                ctx.resolve(coll, strict=True)
            assert want in ei.value.message and ei.value.field == "device"
            assert ctx.resolve(coll, strict=False, name="x") == "cpu"  # reopen: CPU, warned
    with pytest.raises(InvalidArgument):
        GpuContext("auto", gpus=none).resolve("cuda", strict=True)
    ctx = GpuContext("auto", gpus=Gpus(0, 3))
    assert [ctx.gpu_of("torch", i) for i in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    assert GpuContext("auto", gpus=Gpus(2, 3)).gpu_of("faiss", 5) == 1


def test_options_and_server_flags():
    with pytest.raises(InvalidArgument) as ei:
        DatabaseOptions(device="cuda")
    assert ei.value.field == "device"
    with pytest.raises(InvalidArgument):
        DatabaseOptions(gpu_memory_budget_mb=-1)
    cfg = load_config(["--device", "cpu", "--gpu-memory-budget-mb", "4096", "--gpu-fp16", "true"],
                      environ={})
    assert (cfg.engine.device, cfg.engine.gpu_memory_budget_mb, cfg.engine.gpu_fp16) == ("cpu", 4096, True)
    assert load_config([], environ={"VECDB_DEVICE": "gpu"}).engine.device == "gpu"
    with pytest.raises(ConfigError, match="device"):
        load_config(["--device", "tpu"], environ={})


def test_device_cpu_and_auto_without_cuda_torch_never_import_torch(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        from vecdb import Database, DatabaseOptions
        for i, dev in enumerate(("cpu", "auto")):
            with Database.open({str(tmp_path)!r} + str(i), DatabaseOptions(background=False, device=dev)) as db:
                db.create_collection("c", 4)
                db.upsert("c", ["a"], [[1, 2, 3, 4]])
                db.search("c", [[1, 2, 3, 4]], k=1)
        print("torch" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    cuda_torch, _ = torch_cuda_build()
    if not cuda_torch:  # this machine: CPU torch, read from torch/version.py unimported
        assert out.stdout.strip() == "False"


def test_catalog_written_before_device_existed_reads_as_auto(tmp_path):
    with Database.open(str(tmp_path / "d"), opts()) as db:
        db.create_collection("old", 4, index="hnsw", shards=2)
        db.upsert("old", ["a", "b"], [[1, 0, 0, 0], [0, 1, 0, 0]])
        raw = json.loads(db.store.get(b"Cold"))
        assert raw["device"] == "auto"
        del raw["device"]  # what versions before the GPU work stored
        wb = db.store.batch()
        wb.put(b"Cold", json.dumps(raw).encode())
        db.store.write(wb, sync=True)
    with Database.open(str(tmp_path / "d"), opts()) as db:
        cfg = db.describe_collection("old").config
        assert cfg.device == "auto" and cfg.shards == 2 and db.count("old") == 2
    old = {"name": "x", "dim": 3, "metric": "l2", "index": {"type": "flat", "params": {}},
           "shards": 1, "encoder": None, "uid": 7}  # the oldest layout: no payload_indexes either
    assert CollectionConfig.from_dict(old) == CollectionConfig("x", 3, "l2", IndexSpec("flat", {}), 1,
                                                               None, 7)
    assert CollectionConfig.from_dict(CollectionConfig("y", 2, device="gpu").to_dict()).device == "gpu"


def test_stored_gpu_collection_opens_on_a_cpu_machine(tmp_path, caplog):
    with Database.open(str(tmp_path / "d"), opts(), gpu=StandIn("torch", n=1)) as db:
        db.create_collection("g", 4, device="gpu")
        db.upsert("g", ["a"], [[1, 2, 3, 4]])
        assert db.describe_collection("g").shards[0].device == "cuda:0"
    with Database.open(str(tmp_path / "d"), opts(), gpu=GpuContext("auto", gpus=Gpus(0, 0, "none"))) as db:
        d = db.describe_collection("g")
        assert d.config.device == "gpu" and d.shards[0].device == "cpu"
        assert db.search("g", [[1, 2, 3, 4]], k=1)[0].ids == ["a"]
    assert "has device=gpu but no usable GPU" in caplog.text


def test_probe_survives_a_hidden_or_broken_torch(monkeypatch):
    import importlib.util

    def hidden(name, *a):
        raise ImportError(f"No module named {name!r} (hidden)")
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", hidden)
    assert torch_cuda_build() == (False, "torch is not installed")
    assert probe().torch == 0
