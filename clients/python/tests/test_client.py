"""The Python client against a real cluster: collections, upsert (f32 and
f16), get, delete, search at budgets equal to a NumPy MaxSim computed here,
typed errors for bad input, the API key, and text ingest and search
through an encoder."""
import numpy as np
import pytest

import metaembed
from metaembed import MetaembedError

D, R, N = 16, 6, 60


def maxsim(q, docs, r_q, r_c):
    """s(q, c) = sum over the first r_q query vectors of the max over the
    first r_c document vectors of the dot product (the paper's formula)."""
    return np.array([(q[:r_q] @ d[:r_c].T).max(axis=1).sum() for d in docs])


@pytest.fixture()
def client(cluster):
    return metaembed.Client(cluster.url, timeout=10)


@pytest.fixture()
def coll(client, request):
    name = "py_" + request.node.name[:40].replace("[", "_").replace("]", "")
    c = client.create_collection(name, dim=D, r_c=R, r_q=4, dtype="f32")
    yield c
    try:
        c.drop()
    except MetaembedError:
        pass


def unit_rows(rng, *shape):
    v = rng.standard_normal(shape).astype(np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_health_status_and_openapi(client):
    h = client.health()
    assert h["serving"] and h["ready"]
    s = client.status()
    assert s["role"] == "coordinator" and len(s["groups"]) == 2
    doc = client.openapi()
    assert doc["openapi"].startswith("3.") and "/v1/collections/{name}/search" in doc["paths"]
    assert {"/v1/collections/{name}/count", "/v1/collections/{name}/fields"} <= set(doc["paths"])


def test_collections_create_list_stats_drop(client):
    c = client.create_collection("py_coll", dim=8)
    assert c.info.dim == 8 and c.info.r_c == 64 and c.info.r_q == 16 and c.info.dtype == "f16"
    assert "py_coll" in [i.name for i in client.list_collections()]
    with pytest.raises(MetaembedError) as e:
        client.create_collection("py_coll", dim=8)
    assert e.value.code == "ALREADY_EXISTS" and e.value.status == 409
    assert client.collection_stats("py_coll").documents == 0
    client.drop_collection("py_coll")
    with pytest.raises(MetaembedError) as e:
        client.collection("py_coll").stats()
    assert e.value.code == "NOT_FOUND" and e.value.status == 404
    assert "py_coll" not in [i.name for i in client.list_collections()]


def test_upsert_get_delete(coll):
    rng = np.random.default_rng(1)
    vecs = unit_rows(rng, N, R, D)
    ids = [f"d{i}" for i in range(N)]
    meta = [{"n": i, "tags": ["x", "y"], "nested": {"ok": True}} for i in range(N)]
    assert coll.upsert(ids, vecs, meta) == N
    assert coll.stats().documents == N
    got = coll.get(["d3", "missing", "d7"], with_vectors=True)
    assert [r.id for r in got] == ["d3", "d7"]
    assert got[0].metadata == meta[3]
    np.testing.assert_array_equal(got[1].vectors, vecs[7])  # f32 collection: exact
    assert coll.get(["d3"])[0].vectors is None
    assert coll.delete(["d3", "d4", "never"]) == 2
    assert [r.id for r in coll.get(["d3", "d5"])] == ["d5"]


def test_upsert_float16_and_variable_rows(coll):
    rng = np.random.default_rng(2)
    docs = [unit_rows(rng, r, D).astype(np.float16) for r in (1, 3, R)]
    assert coll.upsert(["a", "b", "c"], docs) == 3
    back = coll.get(["b"], with_vectors=True)[0].vectors
    assert back.shape == (3, D)
    np.testing.assert_array_equal(back, docs[1].astype(np.float32))


def test_upsert_in_several_requests(client, coll):
    small = metaembed.Client(client.url, batch_size=7)
    rng = np.random.default_rng(3)
    assert small.collection(coll.name).upsert([f"x{i}" for i in range(50)], unit_rows(rng, 50, R, D)) == 50
    assert coll.stats().documents == 50


@pytest.mark.parametrize("budget", [(1, 1), (2, 4), (4, 6)])
def test_exact_search_equals_numpy_maxsim(coll, budget):
    rng = np.random.default_rng(4)
    vecs = unit_rows(rng, N, R, D)
    coll.upsert([f"d{i}" for i in range(N)], vecs, [{"i": i} for i in range(N)])
    q = unit_rows(rng, 4, D)
    res = coll.search(vectors=q, budget=budget, k=10, exact=True)
    assert (res.r_q, res.r_c) == budget and not res.partial and res.documents == N
    scores = maxsim(q, vecs, *budget)
    want = np.argsort(-scores, kind="stable")[:10]
    assert res.ids == [f"d{i}" for i in want]
    np.testing.assert_allclose([h.score for h in res], scores[want], rtol=1e-5, atol=1e-5)
    assert all(isinstance(h, metaembed.Hit) for h in res)
    assert res[0].metadata == {"i": int(want[0])}
    # The cascade at the full budget finds the same best document here.
    assert coll.search(vectors=q, budget=budget, k=1).ids[0] == res.ids[0]


def test_search_offset_pages_through_one_ranking(coll):
    rng = np.random.default_rng(6)
    coll.upsert([f"d{i}" for i in range(N)], unit_rows(rng, N, R, D))
    q = unit_rows(rng, 4, D)
    for exact in (True, False):
        first = coll.search(vectors=q, budget=(4, R), k=20, exact=exact)
        page = coll.search(vectors=q, budget=(4, R), k=10, offset=10, exact=exact)
        assert page.ids == first.ids[10:20]
        assert [h.score for h in page] == [h.score for h in first][10:20]
    assert coll.search(vectors=q, budget=(4, R), k=10, offset=N).ids == []


def test_lexical_and_hybrid_search(coll):
    rng = np.random.default_rng(8)
    texts = ["zebra crossing", "zebra zebra", "a text editor", "", "the quick brown fox"]
    coll.upsert([f"t{i}" for i in range(5)], unit_rows(rng, 5, R, D), [{"text": t} for t in texts])
    lex = coll.search(mode="lexical", lexical_text="zebra", budget=None)
    assert sorted(lex.ids) == ["t0", "t1"] and all(h.lexical_score > 0 for h in lex)
    assert lex[0].score == lex[0].lexical_score
    q = unit_rows(rng, 4, D)
    hyb = coll.search(vectors=q, mode="hybrid", lexical_text="zebra", alpha=0.5, budget=(4, R), k=5)
    assert len(hyb.ids) == 5 and all(h.dense_score is not None for h in hyb)
    with pytest.raises(metaembed.MetaembedError) as e:
        coll.search(vectors=q, mode="hybrid", lexical_text="zebra", alpha=2, budget=(4, R))
    assert "alpha" in str(e.value)
    with pytest.raises(metaembed.MetaembedError):
        coll.search(mode="lexical", lexical_text="", budget=None)


def test_ids_pages_and_iterates_in_byte_order(client, coll):
    rng = np.random.default_rng(7)
    ids = [f"id-{i:03d}" for i in range(53)] + ["Z", "a b", "\u00e9t\u00e9"]
    coll.upsert(ids, unit_rows(rng, len(ids), R, D))
    want = sorted(ids, key=lambda s: s.encode("utf-8"))
    got, after = [], None
    while True:
        page = coll.ids(after=after, limit=7)
        assert isinstance(page, metaembed.IdsPage) and len(page) <= 7
        got += page.ids
        if page.next_after is None:
            break
        assert page.next_after == page.ids[-1]
        after = page.next_after
    assert got == want
    assert list(coll.iter_ids(page_size=5)) == want
    assert list(coll.iter_ids(after=want[-3])) == want[-2:]
    assert coll.ids(after=want[-1]).ids == [] and coll.ids(after=want[-1]).next_after is None
    for fn, code, status in [
        (lambda: coll.ids(limit=0), "INVALID_ARGUMENT", 400),
        (lambda: coll.ids(limit=10001), "INVALID_ARGUMENT", 400),
        (lambda: coll.ids(after="a\x00b"), "INVALID_ARGUMENT", 400),
        (lambda: client.collection("nope").ids(), "NOT_FOUND", 404),
    ]:
        with pytest.raises(MetaembedError) as e:
            fn()
        assert (e.value.code, e.value.status) == (code, status), e.value
        assert e.value.message


def test_bad_requests_raise_typed_errors(client, coll):
    rng = np.random.default_rng(5)
    coll.upsert(["a"], unit_rows(rng, 1, R, D))
    cases = [
        (lambda: coll.search(vectors=unit_rows(rng, 2, D + 1)), "INVALID_ARGUMENT", 400),  # wrong dim
        (lambda: coll.search(vectors=unit_rows(rng, 2, D), k=0), "INVALID_ARGUMENT", 400),
        (lambda: coll.search(vectors=unit_rows(rng, 2, D), k=10**6), "INVALID_ARGUMENT", 400),
        (lambda: coll.search(vectors=np.full((1, D), np.inf, np.float32)), "INVALID_ARGUMENT", 400),
        (lambda: coll.search(vectors=np.full((1, D), np.nan, np.float32)), "INVALID_ARGUMENT", 400),
        (lambda: coll.upsert(["a\x00b"], unit_rows(rng, 1, R, D)), "INVALID_ARGUMENT", 400),
        (lambda: coll.upsert(["b"], unit_rows(rng, 1, R + 1, D)), "INVALID_ARGUMENT", 400),  # rows > R_c
        (lambda: coll.search(text="hello"), "FAILED_PRECONDITION", 400),  # no encoders here
        (lambda: client.collection("nope").search(vectors=unit_rows(rng, 1, D)), "NOT_FOUND", 404),
        (lambda: client.create_collection("bad name", dim=4), "INVALID_ARGUMENT", 400),
    ]
    for fn, code, status in cases:
        with pytest.raises(MetaembedError) as e:
            fn()
        assert (e.value.code, e.value.status) == (code, status), e.value
        assert e.value.message
    assert coll.stats().documents == 1


def test_unreachable_server_is_unavailable():
    c = metaembed.Client("http://127.0.0.1:1", timeout=2)
    with pytest.raises(MetaembedError) as e:
        c.health()
    assert e.value.code == "UNAVAILABLE" and e.value.status == 0


def test_api_key(keyed_cluster):
    anon = metaembed.Client(keyed_cluster.url)
    assert anon.health()["serving"]
    with pytest.raises(MetaembedError) as e:
        anon.list_collections()
    assert (e.value.code, e.value.status) == ("UNAUTHENTICATED", 401)
    with pytest.raises(MetaembedError) as e:
        metaembed.Client(keyed_cluster.url, api_key="wrong").create_collection("k", dim=4)
    assert e.value.code == "UNAUTHENTICATED"
    good = metaembed.Client(keyed_cluster.url, api_key="py-test-key")
    good.create_collection("k", dim=4)
    assert [c.name for c in good.list_collections()] == ["k"]
    assert "py-test-key" not in keyed_cluster.log("coordinator")


def test_text_ingest_and_search(text_cluster):
    client = metaembed.Client(text_cluster.url, timeout=30)
    coll = client.create_collection("texts")  # the encoder's shape
    assert coll.info.dim > 0 and coll.info.r_c > 0
    texts = ["grinning cat face", "red racing car", "dog face", "rain cloud"]
    ids = ["cat", "car", "dog", "cloud"]
    assert coll.ingest(ids, texts=texts, metadata=[None, {"kind": "vehicle"}, None, None]) == 4
    res = coll.search(text="cat", k=4, budget=(4, 8))
    assert sorted(res.ids) == sorted(ids)
    by_id = {h.id: h for h in res}
    assert by_id["cat"].metadata == {"text": "grinning cat face"}
    assert by_id["car"].metadata == {"kind": "vehicle"}
    assert [s["stage"] for s in res.stages][0] == "encode"
    with pytest.raises(MetaembedError) as e:
        coll.ingest(["bad"], images=[b"not an image"])
    assert e.value.code == "INVALID_ARGUMENT"
    with pytest.raises(MetaembedError) as e:
        coll.search(image=b"not an image")
    assert e.value.code == "INVALID_ARGUMENT"


def test_budget_auto_with_a_latency_target(coll):
    """target_ms: the coordinator picks a trained budget and says why; a
    min_budget floor holds; bad combinations are 400s."""
    q = np.random.default_rng(3).standard_normal((4, D)).astype(np.float32)
    r = coll.search(vectors=q, target_ms=500, k=3)
    assert r.budget_reason and r.predicted_ms is not None
    assert not r.degraded
    r = coll.search(vectors=q, target_ms=500, min_budget=(2, 4), k=3)
    assert r.r_q >= 2 and r.budget_reason
    with pytest.raises(MetaembedError) as e:
        coll.search(vectors=q, target_ms=500, budget=(1, 1), min_budget=(4, 8))
    assert e.value.status == 400 and "above the ceiling" in e.value.message


def test_ivf_coarse_index_options(client, coll):
    """coarse_index "ivf" with its lists and probe round-trips through create,
    stats and the listing; a search takes probe; bad values are 400s."""
    assert (coll.info.coarse_index, coll.stats().coarse_index) == ("flat", "flat")  # the default
    rng = np.random.default_rng(9)
    ivf = client.create_collection("py_ivf", dim=D, r_c=R, r_q=4, dtype="f32", coarse_index="ivf", ivf_probe=2)
    try:
        assert (ivf.info.coarse_index, ivf.info.ivf_lists, ivf.info.ivf_probe) == ("ivf", 0, 2)
        vecs = unit_rows(rng, 20, R, D)
        assert ivf.upsert([f"v{i}" for i in range(20)], vecs) == 20
        info = client.collection_stats("py_ivf")
        assert (info.coarse_index, info.ivf_lists, info.ivf_probe, info.documents) == ("ivf", 0, 2, 20)
        assert [(i.coarse_index, i.ivf_probe) for i in client.list_collections() if i.name == "py_ivf"] == [("ivf", 2)]
        # Below 2,048 documents no shard has trained its index: the flat scan
        # answers, so a document's own vectors find it first.
        res = ivf.search(vectors=vecs[7][:4], budget=(4, R), k=3, probe=1)
        assert res.ids[0] == "v7" and not res.partial
        assert ivf.search(vectors=vecs[7][:4], budget=(4, R), k=3, probe=1, exact=True).ids[0] == "v7"
        with pytest.raises(MetaembedError) as e:
            ivf.search(vectors=vecs[7][:4], budget=(4, R), probe=70000)
        assert (e.value.code, e.value.status) == ("INVALID_ARGUMENT", 400) and "probe" in e.value.message
    finally:
        ivf.drop()
    with pytest.raises(MetaembedError) as e:
        client.create_collection("py_hnsw", dim=D, coarse_index="hnsw")
    assert (e.value.code, e.value.status) == ("INVALID_ARGUMENT", 400)
    assert "coarse_index 'hnsw' is not one of flat|ivf" in e.value.message
    with pytest.raises(MetaembedError) as e:
        client.create_collection("py_hnsw", dim=D, ivf_lists=8)  # lists without ivf
    assert (e.value.code, e.value.status) == ("INVALID_ARGUMENT", 400) and "coarse_index ivf" in e.value.message
    assert "py_hnsw" not in [i.name for i in client.list_collections()]


def test_binary_coarse_option(client, coll):
    """binary_coarse round-trips through create, stats and the listing; its
    sign-bit stage 1 still lets a document's own vectors find it first (the
    stages after it rescore with the stored vectors); it needs
    coarse_vectors 1, and a non-bool is a 400."""
    assert (coll.info.binary_coarse, coll.stats().binary_coarse) == (False, False)  # the default
    rng = np.random.default_rng(11)
    bits = client.create_collection("py_bits", dim=D, r_c=R, r_q=4, dtype="f32", binary_coarse=True)
    try:
        assert (bits.info.binary_coarse, bits.info.coarse_index, bits.info.coarse_vectors) == (True, "flat", 1)
        vecs = unit_rows(rng, 20, R, D)
        assert bits.upsert([f"b{i}" for i in range(20)], vecs) == 20
        info = client.collection_stats("py_bits")
        assert (info.binary_coarse, info.documents) == (True, 20)
        assert [i.binary_coarse for i in client.list_collections() if i.name == "py_bits"] == [True]
        assert [i.binary_coarse for i in client.list_collections() if i.name == coll.name] == [False]
        for budget in [(4, R), (1, 1)]:  # the cascade, and bits then the stored first vectors alone
            res = bits.search(vectors=vecs[7][:4], budget=budget, k=3)
            assert res.ids[0] == "b7" and not res.partial, budget
        assert bits.search(vectors=vecs[7][:4], budget=(4, R), k=3, exact=True).ids[0] == "b7"
    finally:
        bits.drop()
    with pytest.raises(MetaembedError) as e:
        client.create_collection("py_bits2", dim=D, r_c=R, coarse_vectors=2, binary_coarse=True)
    assert (e.value.code, e.value.status) == ("INVALID_ARGUMENT", 400)
    assert "binary_coarse needs coarse_vectors 1" in e.value.message
    with pytest.raises(MetaembedError) as e:
        client._request("POST", "/v1/collections", {"name": "py_bits2", "dim": D, "binary_coarse": "yes"})
    assert e.value.status == 400 and '"binary_coarse" must be true or false' in e.value.message
    assert "py_bits2" not in [i.name for i in client.list_collections()]
