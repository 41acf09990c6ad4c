"""Named vectors (vecdb/named_vectors.py) on the engine: per-field exact recall against
numpy, partial vector sets, replacing and updating fields, deletes removing every field,
range search and recommend by field, reopening (WAL replay, checkpoints, a lost field
checkpoint), ANN per field, and bad input named by field with nothing written."""
import shutil

import faiss
import numpy as np
import pytest

from vecdb import Database, DatabaseOptions
from vecdb.errors import FailedPrecondition, InvalidArgument

N = 240
FIELDS = [{"name": "image", "dim": 6, "metric": "ip", "index": "flat"},
          {"name": "body", "dim": 5, "metric": "l2", "index": "flat"}]


def opts():
    return DatabaseOptions(background=False, search_batch_max=0)


def data(seed=0, n=N):
    rng = np.random.default_rng(seed)
    title = rng.normal(size=(n, 8)).astype("f4")
    image = rng.normal(size=(n, 6)).astype("f4")
    body = rng.normal(size=(n, 5)).astype("f4")
    has_image = [i % 2 == 0 for i in range(n)]  # half carry image, a third body
    has_body = [i % 3 == 0 for i in range(n)]
    return title, image, body, has_image, has_body


def make(db, shards=2, fields=FIELDS, seed=0):
    db.create_collection("c", dim=8, metric="cosine", index="flat", shards=shards,
                         vector_name="title", vectors=fields)
    title, image, body, hi, hb = data(seed)
    ids = [f"p{i}" for i in range(N)]
    named = {"image": [v if h else None for v, h in zip(image, hi)],
             "body": [v if h else None for v, h in zip(body, hb)]}
    db.upsert("c", ids, title, payloads=[{"i": i, "even": i % 4 == 0} for i in range(N)],
              named={f["name"]: named[f["name"]] for f in fields})
    return ids, title, image, body, hi, hb


def reference(vecs, present, q, k, metric, allowed=None):
    rows = [i for i in range(len(vecs)) if present[i] and (allowed is None or allowed(i))]
    m = vecs[rows]
    if metric == "l2":
        s = ((m - q) ** 2).sum(1)
        order = np.argsort(s, kind="stable")
    else:
        s = m @ q
        order = np.argsort(-s, kind="stable")
    return [f"p{rows[j]}" for j in order[:k]], s[order[:k]]


@pytest.mark.parametrize("shards", [1, 3])
def test_flat_recall_per_field_is_exact(tmp_path, shards):
    with Database.open(str(tmp_path), opts()) as db:
        _, _title, image, body, hi, hb = make(db, shards)
        qs = np.random.default_rng(9).normal(size=(6, 11)).astype("f4")
        for q in qs:
            for name, vecs, present, metric in (("image", image, hi, "ip"), ("body", body, hb, "l2")):
                dim = vecs.shape[1]
                got = db.search("c", q[:dim], k=10, using=name)[0]
                want, scores = reference(vecs, present, q[:dim], 10, metric)
                assert got.ids == want  # recall@10 = 1.0
                np.testing.assert_allclose(got.scores, scores, rtol=1e-4, atol=1e-4)
                flt = db.search("c", q[:dim], k=10, using=name, filter={"key": "even", "match": True})[0]
                assert flt.ids == reference(vecs, present, q[:dim], 10, metric,
                                            lambda i: i % 4 == 0)[0]
            # the primary answers as before, under None, "" and its own name
            prim = [db.search("c", q[:8], k=5, using=u)[0].ids for u in (None, "", "title")]
            assert prim[0] == prim[1] == prim[2] and len(prim[0]) == 5


def test_hits_carry_the_fields_vector_and_get_returns_each_field(tmp_path):
    with Database.open(str(tmp_path), opts()) as db:
        _, title, image, body, _hi, _hb = make(db)
        hit = db.search("c", image[0], k=1, using="image", with_vector=True)[0]
        assert hit.ids == ["p0"] or hit.scores[0] >= float(image[0] @ image[0]) - 1e-4
        np.testing.assert_array_equal(hit.vectors[0], image[int(hit.ids[0][1:])])
        p0, p1, p3 = db.get("c", ["p0", "p1", "p3"], with_vector=True)
        assert set(p0.vectors) == {"image", "body"} and set(p1.vectors) == set()
        assert set(p3.vectors) == {"body"}
        np.testing.assert_array_equal(p3.vectors["body"], body[3])
        np.testing.assert_array_equal(p0.vector, title[0])


def test_upsert_replaces_the_vector_set_update_vectors_changes_only_given_fields(tmp_path):
    with Database.open(str(tmp_path), opts()) as db:
        _, title, image, body, hi, _hb = make(db, shards=1)
        # p0 had image and body; an upsert with only body drops its image
        db.upsert("c", ["p0"], title[:1], payloads=[{"i": 0}], named={"body": [body[1]]})
        p0 = db.get("c", ["p0"], with_vector=True)[0]
        assert set(p0.vectors) == {"body"}
        np.testing.assert_array_equal(p0.vectors["body"], body[1])
        assert "p0" not in db.search("c", image[0], k=N, using="image")[0].ids
        # update_vectors sets image on p0, body and the primary stay
        db.update_vectors("c", ["p0"], named={"image": [image[5]]})
        p0 = db.get("c", ["p0"], with_vector=True)[0]
        assert set(p0.vectors) == {"image", "body"} and p0.payload == {"i": 0}
        np.testing.assert_array_equal(p0.vectors["image"], image[5])
        np.testing.assert_array_equal(p0.vector, title[0])
        now = image.copy()
        now[0] = image[5]
        assert db.search("c", image[5], k=3, using="image")[0].ids == reference(now, hi, image[5], 3, "ip")[0]
        # the primary given under its own name is the primary
        db.upsert("c", ["p1"], named={"title": [title[7]], "image": [image[7]]})
        p1 = db.get("c", ["p1"], with_vector=True)[0]
        np.testing.assert_array_equal(p1.vector, title[7])
        assert set(p1.vectors) == {"image"}


def test_delete_removes_every_field(tmp_path):
    with Database.open(str(tmp_path), opts()) as db:
        _ids, _title, image, body, hi, hb = make(db)
        gone = ["p0", "p3", "p6"]
        db.delete("c", gone)
        for name, vecs in (("image", image), ("body", body)):
            res = db.search("c", vecs[0], k=N, using=name)[0]
            assert not set(gone) & set(res.ids)
            assert len(res.ids) == sum(h for i, h in enumerate(hi if name == "image" else hb)
                                       if f"p{i}" not in gone)
        stats = db.describe_collection("c").shards
        assert sum(s.vectors["image"]["points"] for s in stats) == sum(hi) - 2
        # the fields' indexes count in the shards' memory: more than the primary's vectors
        assert sum(s.memory_bytes for s in stats) > (N - 3) * 4 * (8 + 6 * 0.5 + 5 / 3)
    with Database.open(str(tmp_path), opts()) as db:  # and stay gone after a rebuild too
        for s in db._get("c").shards:
            shutil.rmtree(s.dir)
    with Database.open(str(tmp_path), opts()) as db:
        assert not {"p0", "p6"} & set(db.search("c", image[0], k=N, using="image")[0].ids)
        assert len(db.search("c", body[0], k=N, using="body")[0].ids) == sum(hb) - 3


@pytest.mark.parametrize("how", ["replay", "rebuild"])
def test_reopen_replays_or_rebuilds_every_field(tmp_path, how):
    data = tmp_path / "data"
    with Database.open(str(data), opts()) as db:
        _, title, _image, _body, _hi, _hb = make(db)
        q = np.random.default_rng(3).normal(size=6).astype("f4")
        before = db.search("c", q, k=10, using="image")[0].ids
        db.checkpoint()
        coll_dir = db._get("c").dir
        shutil.copytree(coll_dir, tmp_path / "old")  # checkpoints of every field, before:
        db.upsert("c", ["new"], title[:1], named={"image": [q]})
        db.delete("c", [before[0]])
    shutil.rmtree(coll_dir)  # the close checkpointed again: put the older one back
    if how == "replay":       # old checkpoints + the WAL after them
        shutil.copytree(tmp_path / "old", coll_dir)
    with Database.open(str(data), opts()) as db:
        got = db.search("c", q, k=10, using="image")[0].ids
        assert got == ["new"] + before[1:]


def test_a_lost_field_checkpoint_is_rebuilt_from_rocksdb(tmp_path):
    with Database.open(str(tmp_path), opts()) as db:
        _, _title, _image, body, _hi, _hb = make(db, shards=1)
        db.checkpoint()
        want = db.search("c", body[3], k=10, using="body")[0].ids
    for d in tmp_path.glob("**/named-body"):
        shutil.rmtree(d)
    with Database.open(str(tmp_path), opts()) as db:
        assert db.search("c", body[3], k=10, using="body")[0].ids == want


def test_ann_per_field_and_checkpointed_ann(tmp_path):
    fields = [{"name": "image", "dim": 6, "metric": "ip", "index": "hnsw",
               "index_params": {"build_threshold": 50}}]
    with Database.open(str(tmp_path), opts()) as db:
        _, _title, image, _body, hi, _hb = make(db, shards=1, fields=fields)
        db.maintain()
        st = db.describe_collection("c").shards[0].vectors["image"]
        assert st["index_state"] == "built" and st["index_type"] == "hnsw"
        qs = np.random.default_rng(5).normal(size=(10, 6)).astype("f4")
        hits = sum(len(set(db.search("c", q, k=10, using="image")[0].ids) &
                       set(reference(image, hi, q, 10, "ip")[0])) for q in qs)
        assert hits / 100 >= 0.9
        # replacing and deleting points without the field leaves no tombstones in its graph
        odd = [f"p{i}" for i in range(1, N, 2)]
        db.upsert("c", odd, np.ones((len(odd), 8), "f4"))
        db.delete("c", odd[:20])
        assert db._get("c").shards[0].named.fields["image"].ann.tombstones == set()
        db.checkpoint()
    with Database.open(str(tmp_path), opts()) as db:
        assert db.describe_collection("c").shards[0].vectors["image"]["index_state"] == "built"
        q = qs[0]
        assert len(set(db.search("c", q, k=10, using="image")[0].ids) &
                   set(reference(image, hi, q, 10, "ip")[0])) >= 8


def test_deleting_many_points_removes_only_the_few_that_carry_a_field(tmp_path):
    fields = [{"name": "image", "dim": 6, "metric": "ip", "index": "hnsw",
               "index_params": {"build_threshold": 20}}]
    title, image, *_ = data(1)
    ids = [f"p{i}" for i in range(N)]
    has = [i % 8 == 0 for i in range(N)]  # 30 of the 240 points carry the field
    def survivors(gone):
        return {p for p, h in zip(ids, has) if h and p not in gone}

    def check(db, gone):
        field = db._get("c").shards[0].named.fields["image"]
        assert db.describe_collection("c").shards[0].vectors["image"]["points"] == len(survivors(gone))
        assert set(db.search("c", image[0], k=N, using="image")[0].ids) == survivors(gone)
        held = set(faiss.vector_to_array(field.exact.id_map).tolist())
        probe = np.arange(0, 2 * N + 5, dtype=np.int64)  # labels held, gone and never given
        for ascending in (True, False):  # the binary search and the np.isin look-up agree
            field.ascending = ascending
            assert field._members(probe).tolist() == [x for x in probe.tolist() if x in held]
        field.ascending = None
        return field

    with Database.open(str(tmp_path), opts()) as db:
        db.create_collection("c", dim=8, metric="cosine", index="flat", shards=1,
                             vector_name="title", vectors=fields)
        db.upsert("c", ids, title, named={"image": [v if h else None for v, h in zip(image, has)]})
        db.maintain()
        gone = set(ids[:160])  # 20 of them carry the field
        db.delete("c", sorted(gone))
        assert len(check(db, gone).ann.tombstones) == 20  # none for points without the field
        db.checkpoint()
    with Database.open(str(tmp_path), opts()) as db:  # a loaded store: order checked once
        gone |= set(ids[160:200])
        db.delete("c", ids[160:200])
        check(db, gone)


def test_range_search_and_recommend_by_field(tmp_path):
    with Database.open(str(tmp_path), opts()) as db:
        _, _title, image, body, hi, hb = make(db)
        q = body[0]
        res = db.range_search("c", q, threshold=8.0, using="body")[0]
        d = ((body - q) ** 2).sum(1)
        want = {f"p{i}" for i in range(N) if hb[i] and d[i] < 8.0}
        assert set(res.ids) == want and list(res.scores) == sorted(res.scores)
        rec = db.recommend("c", positive=["p0", "p2"], k=5, using="image")
        mean = (image[0] + image[2]) / 2
        want = [p for p in reference(image, hi, mean, 7, "ip")[0] if p not in ("p0", "p2")][:5]
        assert rec.ids == want
        with pytest.raises(InvalidArgument) as e:
            db.recommend("c", positive=["p0"], strategy="best_score", using="image")
        assert e.value.field == "strategy"


def test_bad_input_names_the_field_and_writes_nothing(tmp_path):
    with Database.open(str(tmp_path), opts()) as db:
        make(db)
        title = np.ones((4, 8), "f4")
        cases = [
            ("vectors.color", {"color": [None] * 4}),
            ("points[2].vectors.image", {"image": [None, None, np.ones(5), None]}),
            ("vectors.image", {"image": np.ones((4, 5), "f4")}),
            ("points[3].vectors.body", {"body": [None, None, None, [1, 2, float("nan"), 4, 5]]}),
            ("vectors.image", {"image": [np.ones(6)] * 3}),
        ]
        for field, named in cases:
            with pytest.raises(InvalidArgument) as e:
                db.upsert("c", ["a", "b", "x", "y"], title, named=named)
            assert e.value.field == field and field in e.value.message
        with pytest.raises(InvalidArgument) as e:  # a point without the primary needs a field
            db.upsert("c", ["a", "b"], named={"title": [np.ones(8), None]})
        assert e.value.field == "points[1].vectors"
        with pytest.raises(InvalidArgument) as e:
            db.search("c", np.ones(6), using="nope")
        assert e.value.field == "using"
        with pytest.raises(InvalidArgument):
            db.search("c", np.ones(8), using="image")  # the image field is 6-d
        assert db.count("c") == N and not db.get("c", ["a", "b", "x", "y"])


def test_create_validates_fields_and_refuses_unsupported_combinations(tmp_path):
    with Database.open(str(tmp_path), opts()) as db:
        bad = [
            ([{"name": "a", "dim": 0}], "vectors[0].dim"),
            ([{"name": "a b", "dim": 3}], "vectors[0].name"),
            ([{"name": "a", "dim": 3}, {"name": "a", "dim": 4}], "vectors[1].name"),
            ([{"name": "a", "dim": 3, "metric": "dot"}], "vectors[0].metric"),
            ([{"name": "a", "dim": 3, "size": 1}], "vectors[0]"),
        ]
        for fields, field in bad:
            with pytest.raises(InvalidArgument) as e:
                db.create_collection("x", dim=4, vectors=fields)
            assert e.value.field == field
        with pytest.raises(InvalidArgument) as e:
            db.create_collection("x", dim=4, quantization="sq8", vectors=[{"name": "a", "dim": 3}])
        assert e.value.field == "vectors" and "quantization" in e.value.message
        assert [c.name for c in db.list_collections()] == []
        # single-vector collections keep their catalog entry as it was
        db.create_collection("plain", dim=4)
        assert "vectors" not in db._get("plain").config.to_dict()


def test_snapshot_restore_keeps_every_field_and_reembed_is_refused(tmp_path):
    with Database.open(str(tmp_path), opts()) as db:
        _, _title, image, body, _hi, _hb = make(db)
        want = {f: db.search("c", v[0], k=10, using=f)[0].ids for f, v in (("image", image),
                                                                            ("body", body))}
        db.create_snapshot("c", "s1")
        db.restore_snapshot("s1", "copy")
        assert db._get("copy").config.vectors == db._get("c").config.vectors
        for f, v in (("image", image), ("body", body)):
            assert db.search("copy", v[0], k=10, using=f)[0].ids == want[f]
        with pytest.raises(FailedPrecondition) as e:
            db.reembed("c", "minilm", alias="a")
        assert "named vector fields" in e.value.message


def test_a_field_with_an_encoder_embeds_texts_and_queries(tmp_path):
    pytest.importorskip("sentence_transformers")
    texts = ["slow cooked beef stew with carrots", "how to change a bicycle tyre",
             "python list comprehension examples", None]
    with Database.open(str(tmp_path), opts()) as db:
        with pytest.raises(InvalidArgument) as e:
            db.create_collection("bad", dim=4, vectors=[{"name": "s", "dim": 5, "encoder": "minilm"}])
        assert e.value.field == "vectors[0].dim"
        db.create_collection("t", dim=4, vectors=[{"name": "s", "encoder": "minilm"}])
        assert db._get("t").config.vectors[0].dim == 384
        ids = ["stew", "bike", "code", "none"]
        db.upsert("t", ids, np.ones((4, 4), "f4"), texts=texts)  # no vectors of s: embedded
        got = {p.id: set(p.vectors) for p in db.get("t", ids, with_vector=True)}
        assert got == {"stew": {"s"}, "bike": {"s"}, "code": {"s"}, "none": set()}
        hits = db.search("t", texts="repairing a flat tire", k=3, using="s")[0]
        assert hits.ids[0] == "bike" and set(hits.ids) == {"stew", "bike", "code"}
        rec = db.recommend("t", positive=[{"text": "a hearty casserole"}], k=1, using="s")
        assert rec.ids == ["stew"]
        with pytest.raises(InvalidArgument) as e:  # the primary has no encoder
            db.search("t", texts="stew", k=1)
        assert e.value.field == "texts"


def test_a_gpu_placed_collection_keeps_its_named_fields_on_the_cpu(tmp_path):
    from gpu_standin import StandIn  # CPU stand-ins of the GPU factories (tests/unit)
    ctx = StandIn("faiss", n=1)
    with Database.open(str(tmp_path / "g"), opts(), gpu=ctx) as gdb, \
            Database.open(str(tmp_path / "c"), opts()) as cdb:
        for db in (gdb, cdb):
            make(db, shards=2)
            db.delete("c", ["p0", "p2"])
        assert all(s.gpu is not None for s in gdb._get("c").shards)  # the primary is "on a GPU"
        q = np.random.default_rng(4).normal(size=(3, 6)).astype("f4")
        for a, b in zip(gdb.search("c", q, k=10, using="image"), cdb.search("c", q, k=10, using="image")):
            assert a.ids == b.ids
        qp = np.random.default_rng(5).normal(size=(2, 8)).astype("f4")
        assert [r.ids for r in gdb.search("c", qp, k=5)] == [r.ids for r in cdb.search("c", qp, k=5)]
        assert not ctx.violations
