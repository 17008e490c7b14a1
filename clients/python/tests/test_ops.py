"""Snapshots and online resharding through the Python client: a snapshot's
create, list and delete round trip, the reshard status of a stable
cluster, refused group counts and bodies, and a real grow from 2 groups to
3 (a standby group in the map) with documents, counts and searches checked
before and after."""
import numpy as np
import pytest

import metaembed
from conftest import Cluster
from metaembed import MetaembedError

D, R = 16, 4


@pytest.fixture()
def client(cluster):
    return metaembed.Client(cluster.url, timeout=10)


@pytest.fixture(scope="module")
def growing():
    """Two groups in the placement and a third, standby, outside it."""
    c = Cluster(shards=2, standby=1)
    yield c
    c.stop()


def unit_rows(rng, *shape):
    v = rng.standard_normal(shape).astype(np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def bad(call, *args, code="INVALID_ARGUMENT", status=400, **kw):
    with pytest.raises(MetaembedError) as e:
        call(*args, **kw)
    assert e.value.code == code and e.value.status == status, str(e.value)
    return e.value.message


def test_snapshot_create_list_delete(client):
    coll = client.create_collection("py_snap", dim=D, r_c=R, r_q=2, dtype="f32")
    try:
        rng = np.random.default_rng(1)
        coll.upsert([f"d{i}" for i in range(20)], unit_rows(rng, 20, R, D))
        s = client.snapshot_create("py-snap.1")
        assert isinstance(s, metaembed.SnapshotInfo)
        assert s.id == "py-snap.1" and s.replicas == 2 and s.documents == 20 and s.bytes > 0 and s.created_ms > 0
        bad(client.snapshot_create, "py-snap.1", code="ALREADY_EXISTS", status=409)
        named = client.snapshot_create()
        assert named.id.startswith("snap-") and named.id != s.id
        listed = {x.id: x for x in client.snapshots()}
        assert {"py-snap.1", named.id} <= set(listed)
        assert listed["py-snap.1"].documents == 20 and listed["py-snap.1"].replicas == 2
        assert client._request("DELETE", "/v1/snapshots/py-snap.1") == {"deleted": "py-snap.1"}
        client.snapshot_delete(named.id)
        assert not {"py-snap.1", named.id} & {x.id for x in client.snapshots()}
    finally:
        coll.drop()


def test_snapshot_bad_ids_and_bodies(client):
    assert "snapshot id" in bad(client.snapshot_create, "no/slash")
    bad(client.snapshot_create, "x" * 65)
    bad(client.snapshot_delete, "no space")
    assert "NUL" in bad(client._request, "POST", "/v1/snapshots", {"id": "a\u0000b"})
    assert "string" in bad(client._request, "POST", "/v1/snapshots", {"id": 7})
    assert "'name'" in bad(client._request, "POST", "/v1/snapshots", {"name": "x"})
    bad(client._request, "PUT", "/v1/snapshots", {}, status=405)


def test_reshard_status_of_a_stable_cluster(client):
    s = client.reshard_status()
    assert isinstance(s, metaembed.ReshardStatus)
    assert s.phase == "stable" and s.from_groups == 2 and s.to_groups == 2 and not s.running
    assert s.done(2) and not s.done(3)
    assert {"/v1/snapshots", "/v1/snapshots/{id}", "/v1/reshard"} <= set(client.openapi()["paths"])
    raw = client._request("GET", "/v1/reshard")
    assert set(raw) == {"phase", "from_groups", "to_groups", "epoch", "running", "moved", "estimate", "purged",
                        "progress", "docs_per_s", "eta_ms", "elapsed_ms", "error", "waiting"}


def test_reshard_refuses_bad_group_counts_and_bodies(client):
    # The map has 2 groups and no standby: nothing to grow onto.
    assert "standby" in bad(client.reshard, 3)
    bad(client.reshard, 0)
    for body, says in (({}, "groups"), ({"groups": -1}, "groups"), ({"groups": 2 ** 40}, "groups"),
                       ({"groups": "2"}, "groups"), ({"groups": 2.5}, "groups"),
                       ({"groups": 2, "max_rate": -5}, "max_rate"), ({"groups": 2, "rate": 5}, "'rate'")):
        assert says in bad(client._request, "POST", "/v1/reshard", body), body
    assert client.reshard_status().done(2)


def test_reshard_grows_onto_a_standby_group(growing):
    client = metaembed.Client(growing.url, timeout=20)
    assert client.reshard_status().done(2)
    coll = client.create_collection("py_grow", dim=D, r_c=R, r_q=2, dtype="f32",
                                    fields={"n": "integer"})
    rng = np.random.default_rng(7)
    n = 300
    vecs = unit_rows(rng, n, R, D)
    ids = [f"doc{i:04d}" for i in range(n)]
    coll.upsert(ids, vecs, [{"n": i} for i in range(n)])
    q = vecs[123][:2]
    before = coll.search(vectors=q, budget=(2, R), k=10, exact=True)
    assert before.ids[0] == "doc0123" and before.documents == n
    assert coll.count() == n and coll.count("n<100") == 100
    assert [g["name"] for g in client.status()["groups"]][:3] == ["g0", "g1", "g2"]

    # Right after the start the placement is still the old one; the mover runs.
    started = client.reshard(3, wait=False)
    assert started.running or started.done(3)
    # Starting the same move again while it runs is no error: it joins it.
    done = client.reshard(3, poll=0.1, timeout=120)
    assert done.done(3) and done.from_groups == 3 and not done.error
    assert client.reshard_status().done(3)

    assert coll.count() == n and coll.count("n<100") == 100
    after = coll.search(vectors=q, budget=(2, R), k=10, exact=True)
    assert after.documents == n and not after.partial
    assert after.ids == before.ids
    np.testing.assert_allclose([h.score for h in after], [h.score for h in before], rtol=1e-6)
    assert sorted(coll.iter_ids(page_size=64)) == ids
    got = coll.get(["doc0000", "doc0299"], with_vectors=True)
    assert [r.id for r in got] == ["doc0000", "doc0299"]
    np.testing.assert_array_equal(got[1].vectors, vecs[299])
    # The new group holds its share (about a third) of the documents.
    new_group = [g for g in client.status()["groups"] if g["name"] == "g2"][0]
    assert 0 < new_group["replicas"][0]["documents"] < n
    # A move to another count while stable again is fine; past the map it is not.
    assert "standby" in bad(client.reshard, 4)
