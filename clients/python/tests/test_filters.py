"""Payload fields and filters through the Python client against a real
cluster: a collection with indexed fields and 200 documents whose metadata
is made here, then count, ids, get, search and delete by filter (as an
expression and as a dict) checked against the same filter evaluated in
Python over the same metadata; index_fields on a collection already
holding documents; and 400 INVALID_ARGUMENT for bad filters and for
metadata that gives an indexed field a value of another type."""
import numpy as np
import pytest

import metaembed
from metaembed import MetaembedError

D, R, N = 16, 4, 200
FIELDS = {"section": "keyword", "year": "integer", "tags": "keyword", "price": "float", "free": "bool",
          "info.lang": "keyword"}
SECTIONS = ["games", "news", "sport", "tech"]
TAGS = ["new", "hot", "old", "sale", "a b"]


def make_docs(seed=11):
    """N documents: ids, unit vectors [N, R, D] and metadata with every kind
    of value (a keyword or a keyword array, null, absent members, a float
    field given integers, a nested member, members that are not indexed)."""
    rng = np.random.default_rng(seed)
    ids = [f"doc{i:03d}" for i in range(N)]
    vecs = rng.standard_normal((N, R, D)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=-1, keepdims=True)
    meta = []
    for i in range(N):
        m = {"n": i}
        if i % 17:
            m["section"] = SECTIONS[int(rng.integers(len(SECTIONS)))]
        m["year"] = None if i % 13 == 0 else int(rng.integers(1995, 2026))
        if i % 11:
            picked = [TAGS[j] for j in rng.choice(len(TAGS), size=int(rng.integers(1, 4)), replace=False)]
            m["tags"] = picked[0] if i % 5 == 0 else picked
        if i % 7:
            m["price"] = int(rng.integers(0, 100)) if i % 9 == 0 else round(float(rng.uniform(0, 100)), 2)
        if i % 19:
            m["free"] = bool(rng.integers(2))
        if i % 4:
            m["info"] = {"lang": ["en", "fr", "de"][i % 3], "words": i * 10}
        if i % 3:
            m["rating"] = int(rng.integers(1, 6))  # not indexed at first (index_fields)
        m["note"] = f"note {i}" if i % 2 else i  # mixed types: never indexable as one type
        meta.append(m)
    return ids, vecs, meta


def value(meta, name):
    """The value metadata gives field `name` ("a.b": member b of object a);
    None when absent or null."""
    v = meta
    for part in name.split("."):
        if not isinstance(v, dict) or part not in v:
            return None
        v = v[part]
    return v


def cond_holds(meta, c, fields):
    if "exists" in c:
        return value(meta, c["exists"]) is not None
    if "field" not in c:
        return matches(meta, c, fields)
    v, ty = value(meta, c["field"]), fields[c["field"]]
    if v is None:
        return False
    if "range" in c:
        x = float(v)
        ops = {"gt": x.__gt__, "gte": x.__ge__, "lt": x.__lt__, "lte": x.__le__}
        return all(ops[op](float(b)) for op, b in c["range"].items())
    wanted = [c["match"]] if "match" in c else c["any"]
    if ty == "keyword":
        have = [v] if isinstance(v, str) else list(v)
        return any(str(w) in have for w in wanted)
    if ty == "integer":
        return any(v == w and not isinstance(w, bool) for w in wanted)
    if ty == "bool":
        return any(v is w for w in wanted)
    raise AssertionError(f"a match on a {ty} field")


def matches(meta, f, fields=FIELDS):
    """The filter semantics of docs/protocol.md: must all hold, should at
    least one (when any), must_not none; a single condition stands alone."""
    if "field" in f or "exists" in f:
        return cond_holds(meta, f, fields)
    return (all(cond_holds(meta, c, fields) for c in f.get("must", [])) and
            (not f.get("should") or any(cond_holds(meta, c, fields) for c in f["should"])) and
            not any(cond_holds(meta, c, fields) for c in f.get("must_not", [])))


# (expression, the same filter as JSON)
CASES = [
    ("section=games", {"field": "section", "match": "games"}),
    ("year>=2020", {"field": "year", "range": {"gte": 2020}}),
    ("year = 2001", {"must": [{"field": "year", "match": 2001}]}),
    ("section=games AND (year>=2020 OR tags IN (new, hot)) AND NOT free=true",
     {"must": [{"field": "section", "match": "games"},
               {"should": [{"field": "year", "range": {"gte": 2020}}, {"field": "tags", "any": ["new", "hot"]}]}],
      "must_not": [{"field": "free", "match": True}]}),
    ("tags IN ('a b', sale)", {"field": "tags", "any": ["a b", "sale"]}),
    ("price EXISTS", {"exists": "price"}),
    ("NOT price EXISTS", {"must_not": [{"exists": "price"}]}),
    ("price < 25.5 OR price > 90", {"should": [{"field": "price", "range": {"lt": 25.5}},
                                               {"field": "price", "range": {"gt": 90}}]}),
    ("info.lang = fr AND year != 2020", {"must": [{"field": "info.lang", "match": "fr"}],
                                         "must_not": [{"field": "year", "match": 2020}]}),
    ("section NOT IN (news, tech)", {"must_not": [{"field": "section", "any": ["news", "tech"]}]}),
    ("year > 2000 AND year <= 2010", {"field": "year", "range": {"gt": 2000, "lte": 2010}}),
    ("free = false", {"field": "free", "match": False}),
    ("section = games AND year = 1990", {"must": [{"field": "section", "match": "games"},
                                                  {"field": "year", "match": 1990}]}),  # none
]
CASE_IDS = [e for e, _ in CASES]


@pytest.fixture(scope="module")
def client(cluster):
    return metaembed.Client(cluster.url, timeout=20)


@pytest.fixture(scope="module")
def data():
    return make_docs()


def new_collection(client, name, data, fields=FIELDS):
    try:
        client.drop_collection(name)
    except MetaembedError:
        pass
    coll = client.create_collection(name, dim=D, r_c=R, r_q=R, dtype="f32", fields=fields)
    ids, vecs, meta = data
    assert coll.upsert(ids, vecs, meta) == N
    return coll


@pytest.fixture(scope="module")
def coll(client, data):
    c = new_collection(client, "py_filter", data)
    yield c
    try:
        c.drop()
    except MetaembedError:
        pass


def expected(data, f, fields=FIELDS):
    ids, _, meta = data
    return [i for i, m in zip(ids, meta) if matches(m, f, fields)]


def test_filter_fields_in_collection_info(client, coll):
    assert coll.info.fields == FIELDS
    assert coll.stats().fields == FIELDS and coll.info.documents == N
    listed = {c.name: c for c in client.list_collections()}
    assert listed["py_filter"].fields == FIELDS
    plain = client.create_collection("py_filter_plain", dim=D)
    try:
        assert plain.info.fields == {} and plain.stats().fields == {}
    finally:
        plain.drop()


def test_filter_cases_are_not_trivial(data):
    sizes = [len(expected(data, j)) for _, j in CASES]
    assert sizes[-1] == 0 and all(0 < s < N for s in sizes[:-1]), sizes


@pytest.mark.parametrize("expr,jf", CASES, ids=CASE_IDS)
def test_filter_count_and_ids(coll, data, expr, jf):
    want = expected(data, jf)
    assert coll.count(expr) == len(want)
    assert coll.count(jf) == len(want)
    assert list(coll.iter_ids(filter=expr)) == want
    assert list(coll.iter_ids(filter=jf, page_size=7)) == want  # a dict goes as its JSON text
    page = coll.ids(filter=expr, limit=5)
    assert page.ids == want[:5]
    if len(want) > 5:
        assert page.next_after == want[4]
        assert coll.ids(filter=expr, after=page.next_after, limit=3).ids == want[5:8]


def test_filter_count_without_filter(coll):
    assert coll.count() == N and coll.count({}) == N


@pytest.mark.parametrize("expr,jf", CASES, ids=CASE_IDS)
def test_filter_get(coll, data, expr, jf):
    want = expected(data, jf)
    meta = dict(zip(data[0], data[2]))
    got = coll.get(filter=expr, limit=10000)
    assert [r.id for r in got] == want
    assert all(r.metadata == meta[r.id] and r.vectors is None for r in got)
    assert [r.id for r in coll.get(filter=jf)] == want[:100]  # the server's default limit
    small = coll.get(filter=jf, limit=3, with_vectors=True)
    assert [r.id for r in small] == want[:3]
    vecs = dict(zip(data[0], data[1]))
    for r in small:
        np.testing.assert_array_equal(r.vectors, vecs[r.id])


def maxsim(q, docs):
    return np.array([(q @ d.T).max(axis=1).sum() for d in docs])


@pytest.mark.parametrize("expr,jf", CASES, ids=CASE_IDS)
def test_filter_search(coll, data, expr, jf):
    ids, vecs, meta = data
    want = set(expected(data, jf))
    q = np.random.default_rng(len(expr)).standard_normal((R, D)).astype(np.float32)
    for k in (5, 50):
        for f in (expr, jf):
            res = coll.search(vectors=q, budget=(R, R), k=k, filter=f)
            assert len(res) == min(k, len(want)), (k, f, res.ids)
            assert set(res.ids) <= want
            assert all(matches(h.metadata, jf) for h in res)
            assert len(set(res.ids)) == len(res)
    # Exact: the best k of MaxSim over the matching documents alone.
    pos = [i for i, d in enumerate(ids) if d in want]
    scores = maxsim(q, vecs[pos])
    order = np.argsort(-scores, kind="stable")[:10]
    res = coll.search(vectors=q, budget=(R, R), k=10, exact=True, filter=expr)
    assert res.ids == [ids[pos[i]] for i in order]
    np.testing.assert_allclose([h.score for h in res], scores[order], rtol=1e-5, atol=1e-5)


def test_filter_search_pages_with_offset(coll, data):
    expr = "year>=2010"
    want = expected(data, {"field": "year", "range": {"gte": 2010}})
    q = np.random.default_rng(3).standard_normal((R, D)).astype(np.float32)
    first = coll.search(vectors=q, budget=(R, R), k=20, exact=True, filter=expr)
    page = coll.search(vectors=q, budget=(R, R), k=10, offset=10, exact=True, filter=expr)
    assert len(want) >= 20 and page.ids == first.ids[10:20]
    assert coll.search(vectors=q, budget=(R, R), k=10, offset=len(want), exact=True, filter=expr).ids == []


def assert_bad(fn, what=None):
    with pytest.raises(MetaembedError) as e:
        fn()
    assert (e.value.code, e.value.status) == ("INVALID_ARGUMENT", 400), e.value
    assert e.value.message
    if what:
        assert what in e.value.message, e.value.message
    return e.value


def deep(levels):
    f = {"field": "year", "match": 2001}
    for _ in range(levels):
        f = {"must": [f]}
    return f


BAD_FILTERS = [
    "nope = 1",                                        # no such field
    "rating >= 3",                                     # in the metadata, not indexed
    "section > 3",                                     # a range on a keyword field
    "free < 1",                                        # a range on a bool field
    "year = abc",                                      # a keyword on an integer field
    "free = 3",                                        # an integer on a bool field
    "section = ",                                      # no value
    "section = games AND",                             # a dangling AND
    "(section = games",                                # an open parenthesis
    "year ! 3",
    {"field": "price", "match": 3},                    # a match on a float field
    {"field": "year", "match": "2020"},                # a keyword on an integer field
    {"field": "year", "range": {}},                    # no bound
    {"field": "year", "range": {"gte": 1, "gte ": 2}},  # an unknown bound
    {"field": "section", "any": []},
    {"must": [{"field": "section"}]},                  # a field with nothing to do
    {"bogus": []},
    deep(7),                                           # more than 6 filters deep
]


@pytest.mark.parametrize("bad", BAD_FILTERS, ids=[str(b)[:40] for b in BAD_FILTERS])
def test_filter_bad_filters_are_400(coll, bad):
    q = np.ones((1, D), np.float32)
    assert_bad(lambda: coll.count(bad))
    assert_bad(lambda: coll.search(vectors=q, filter=bad))
    assert_bad(lambda: coll.get(filter=bad))
    assert_bad(lambda: coll.delete(filter=bad))
    assert_bad(lambda: coll.ids(filter=bad))
    assert coll.count() == N


def test_filter_bad_requests_are_400(client, coll):
    assert_bad(lambda: coll._post("count", {"filter": 3}))
    assert_bad(lambda: coll._post("count", {"filter": ["year>=2020"]}))
    assert_bad(lambda: coll._post("get", {"ids": ["doc001"], "filter": "year>=2020"}))
    assert_bad(lambda: coll._post("delete", {"ids": ["doc001"], "filter": "year>=2020"}))
    assert_bad(lambda: coll.get(filter="year>=2020", limit=0))
    assert_bad(lambda: coll.get(filter="year>=2020", limit=10001))
    assert_bad(lambda: coll._post("count", {"filter": "year>=2020", "limt": 3}))
    assert_bad(lambda: coll.index_fields({}))
    assert_bad(lambda: coll.index_fields({"x": "text"}))
    assert_bad(lambda: client.create_collection("py_filter_bad", dim=D, fields={"x": "string"}))
    assert_bad(lambda: client.create_collection("py_filter_bad", dim=D, fields={"bad name": "keyword"}))
    assert_bad(lambda: client.create_collection("py_filter_bad", dim=D, fields={f"f{i}": "bool" for i in range(33)}))
    assert "py_filter_bad" not in [c.name for c in client.list_collections()]
    with pytest.raises(ValueError):
        coll.get()
    with pytest.raises(ValueError):
        coll.delete(["doc001"], filter="year>=2020")
    with pytest.raises(TypeError):
        coll.count(3)
    assert coll.count() == N


@pytest.mark.parametrize("meta", [
    {"year": "2020"}, {"year": 2020.5}, {"year": True}, {"section": 3}, {"section": ["a", 1]},
    {"tags": {"a": 1}}, {"price": "cheap"}, {"price": False}, {"free": 1}, {"free": "yes"},
    {"info": {"lang": 7}},
], ids=lambda m: str(m))
def test_filter_wrongly_typed_metadata_is_400(coll, meta):
    v = np.ones((1, R, D), np.float32) / np.sqrt(D)
    assert_bad(lambda: coll.upsert(["typed-bad"], v, [meta]))
    # All or nothing: a good document in the same request is not stored either.
    assert_bad(lambda: coll.upsert(["typed-good", "typed-bad"], np.concatenate([v, v]), [{"year": 2000}, meta]))
    assert coll.get(["typed-bad", "typed-good"]) == []
    assert coll.count() == N


def test_filter_index_fields_later(client, data):
    coll = new_collection(client, "py_filter_later", data, fields={"section": "keyword"})
    try:
        ids, vecs, meta = data
        with pytest.raises(MetaembedError) as e:
            coll.count("rating >= 3")
        assert e.value.status == 400
        holding = sum(m.get("rating") is not None for m in meta)
        assert coll.index_fields({"rating": "integer"}) == holding
        assert coll.info.fields == {"section": "keyword", "rating": "integer"}
        assert coll.stats().fields == {"section": "keyword", "rating": "integer"}
        fields = {"section": "keyword", "rating": "integer"}
        for expr, jf in [("rating >= 3", {"field": "rating", "range": {"gte": 3}}),
                         ("section = news AND rating IN (1, 5)",
                          {"must": [{"field": "section", "match": "news"}, {"field": "rating", "any": [1, 5]}]}),
                         ("NOT rating EXISTS", {"must_not": [{"exists": "rating"}]})]:
            want = expected(data, jf, fields)
            assert 0 < len(want) < N
            assert coll.count(expr) == len(want)
            assert list(coll.iter_ids(filter=expr)) == want
            res = coll.search(vectors=vecs[0], budget=(R, R), k=10, filter=jf)
            assert len(res) == min(10, len(want)) and set(res.ids) <= set(want)
        # Several at once, a nested member among them.
        n_lang = sum(value(m, "info.lang") is not None for m in meta)
        n_year = sum(m.get("year") is not None for m in meta)
        assert coll.index_fields({"info.lang": "keyword", "year": "integer"}) == len(
            [m for m in meta if value(m, "info.lang") is not None or m.get("year") is not None])
        assert coll.count("info.lang EXISTS") == n_lang and coll.count("year EXISTS") == n_year
        # The same field with the same type again: no change.
        coll.index_fields({"rating": "integer"})
        assert coll.stats().fields == {"section": "keyword", "rating": "integer", "info.lang": "keyword",
                                       "year": "integer"}
        # Refused, nothing changed: a field already indexed with another
        # type, and stored documents holding values of another type.
        assert_bad(lambda: coll.index_fields({"rating": "keyword"}))
        assert_bad(lambda: coll.index_fields({"note": "integer"}))
        assert_bad(lambda: coll.index_fields({"note": "keyword"}))
        assert_bad(lambda: coll.index_fields({"price": "integer"}))  # price holds floats
        assert_bad(lambda: coll.index_fields({"free": "bool", "n": "keyword"}))  # one bad: none indexed
        assert "free" not in coll.stats().fields and "n" not in coll.stats().fields
        assert_bad(lambda: coll.count("note EXISTS"))
        # Upserts now check the new field's type.
        v = vecs[:1]
        assert_bad(lambda: coll.upsert(["late-bad"], v, [{"rating": "five"}]))
        assert coll.upsert(["late-good"], v, [{"rating": 5, "section": "news"}]) == 1
        assert coll.count("rating = 5 AND section = news") == len(
            expected(data, {"must": [{"field": "rating", "match": 5}, {"field": "section", "match": "news"}]},
                     fields)) + 1
    finally:
        coll.drop()


def test_filter_delete(client, data):
    coll = new_collection(client, "py_filter_delete", data)
    try:
        ids, _, meta = data
        left = dict(zip(ids, meta))
        for f, jf in [("section=news", {"field": "section", "match": "news"}),
                      ({"must": [{"field": "year", "range": {"lt": 2000}}]}, None),
                      ("tags IN (hot) AND NOT free EXISTS", {"must": [{"field": "tags", "any": ["hot"]}],
                                                             "must_not": [{"exists": "free"}]})]:
            gone = [i for i, m in left.items() if matches(m, jf or f)]
            assert gone, f
            assert coll.delete(filter=f) == len(gone)
            for i in gone:
                del left[i]
            assert coll.count(f) == 0
            assert coll.count() == len(left) and coll.stats().documents == len(left)
            assert list(coll.iter_ids()) == sorted(left)
            assert coll.delete(filter=f) == 0
        # Every remaining document, by the empty filter.
        assert coll.delete(filter={}) == len(left)
        assert coll.count() == 0 and list(coll.iter_ids()) == []
    finally:
        coll.drop()



def test_filter_ids_query_string_is_url_encoded(client):
    """?filter= carries any expression: & + % = # ? and blanks in quoted
    keywords arrive as written."""
    coll = client.create_collection("py_filter_url", dim=D, r_c=R, r_q=R, fields={"section": "keyword"})
    try:
        names = ["r&d", "c++", "50%", "a=b", "x#y?z", "two words", "plain"]
        v = np.ones((len(names), 1, D), np.float32) / np.sqrt(D)
        ids = [f"u{i}" for i in range(len(names))]
        coll.upsert(ids, v, [{"section": s} for s in names])
        expr = "section IN ('r&d', c++, '50%', 'a=b', 'x#y?z', 'two words')"
        assert list(coll.iter_ids(filter=expr)) == ids[:-1]
        assert coll.ids(filter="section = 'two words'").ids == ["u5"]
        assert coll.ids(filter={"field": "section", "any": ["c++", "plain"]}).ids == ["u1", "u6"]
        assert coll.count(expr) == len(names) - 1
    finally:
        coll.drop()
