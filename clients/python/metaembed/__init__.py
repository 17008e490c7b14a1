"""Python client for metaembed's HTTP/JSON API (docs/http-api.md).

    import numpy as np, metaembed
    client = metaembed.Client("http://127.0.0.1:9200")
    docs = client.create_collection("docs", dim=128, r_c=8, r_q=4)
    docs.upsert(["a", "b"], np.random.rand(2, 8, 128).astype(np.float32))
    for hit in docs.search(vectors=np.random.rand(4, 128), budget=(4, 8), k=5):
        print(hit.id, hit.score)

Filters (on the collection's indexed fields) are an expression string,
"section=games AND (year>=2020 OR tags IN (new, hot)) AND NOT free=true",
or a JSON-style dict, {"must": [{"field": "year", "range": {"gte": 2020}}]}.

Only the standard library (urllib) and numpy. Every failure is a
MetaembedError carrying the server's code ("INVALID_ARGUMENT",
"NOT_FOUND", ...), the HTTP status and the server's message.
"""
from __future__ import annotations

import base64
import json
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = ["Client", "Collection", "CollectionInfo", "Hit", "IdsPage", "MetaembedError", "Record", "ReshardStatus",
           "SearchResult", "SnapshotInfo"]
__version__ = "0.1.0"

# The coordinator refuses request bodies over 9 MiB; upserts and ingests
# are split into requests below this (and below batch_size documents).
MAX_BODY = 8 << 20
# Status polls that may fail in a row while reshard() follows a move (as
# `metaembed reshard` allows) before it gives up.
_RESHARD_POLL_FAILURES = 6


class MetaembedError(Exception):
    """An error from the server (or reaching it): .code is the gRPC code's
    name, .status the HTTP status (0 when no answer came), .message why."""

    def __init__(self, code: str, status: int, message: str):
        super().__init__(f"{code} ({status}): {message}" if status else f"{code}: {message}")
        self.code = code
        self.status = status
        self.message = message


@dataclass
class CollectionInfo:
    name: str
    dim: int
    r_c: int
    r_q: int
    dtype: str
    ram_vectors: int = 0
    coarse_vectors: int = 0
    coarse_index: str = "flat"  # the cascade's stage 1: "flat" or "ivf"
    ivf_lists: int = 0          # ivf: lists (0 = 4·√N at each (re)training)
    ivf_probe: int = 0          # ivf: lists a search scans (0 = adaptive)
    binary_coarse: bool = False  # stage 1 scans the first vectors' sign bits (D/8 bytes a document)
    documents: int = 0
    ram_bytes: int = 0
    index_bytes: int = 0
    fields: Dict[str, str] = field(default_factory=dict)  # indexed payload fields: name -> type

    @classmethod
    def _from(cls, d: Dict[str, Any]) -> "CollectionInfo":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        known["fields"] = dict(known.get("fields") or {})
        return cls(**known)


@dataclass
class Hit:
    id: str
    score: float
    metadata: Any = None
    dense_score: Optional[float] = None    # lexical and hybrid modes: MaxSim (0 in lexical mode)
    lexical_score: Optional[float] = None  # lexical and hybrid modes: BM25 (the shard's statistics)


# search()'s budget when none is given: (4, 8), or no ceiling with target_ms.
_DEFAULT_BUDGET = object()


@dataclass
class SearchResult:
    hits: List[Hit]
    r_q: int
    r_c: int
    documents: int
    partial: bool
    missing_groups: List[str] = field(default_factory=list)
    stages: List[Dict[str, Any]] = field(default_factory=list)
    degraded: bool = False            # anytime: an earlier stage's ranking, at (r_q, r_c)
    predicted_ms: Optional[float] = None  # target_ms: the latency predicted for the budget chosen
    budget_reason: Optional[str] = None   # target_ms: why this budget

    def __iter__(self) -> Iterator[Hit]:
        return iter(self.hits)

    def __len__(self) -> int:
        return len(self.hits)

    def __getitem__(self, i: int) -> Hit:
        return self.hits[i]

    @property
    def ids(self) -> List[str]:
        return [h.id for h in self.hits]


@dataclass
class IdsPage:
    """A page of document ids in ascending byte order; next_after is the
    cursor for the next page (None when this one reached the end)."""
    ids: List[str]
    next_after: Optional[str]

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Record:
    id: str
    metadata: Any = None
    vectors: Optional[np.ndarray] = None  # [R, D] float32 when asked for


@dataclass
class SnapshotInfo:
    """A snapshot: a point-in-time copy of every shard replica, one id
    across the cluster (restore: docs/cluster.md)."""
    id: str
    created_ms: int = 0  # wall clock, ms since the epoch
    bytes: int = 0       # over every replica
    documents: int = 0   # over the groups
    replicas: int = 0    # replicas holding it

    @classmethod
    def _from(cls, d: Dict[str, Any]) -> "SnapshotInfo":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class ReshardStatus:
    """Where a move of the placement stands at the coordinator asked:
    phase "stable", "copy", "switched" or "clean"; running while this
    coordinator drives it; error says why the last run stopped."""
    phase: str
    from_groups: int
    to_groups: int
    epoch: int = 0
    running: bool = False
    moved: int = 0        # documents copied by this run
    estimate: int = 0     # documents the copy moves (an estimate)
    purged: int = 0       # removed from groups that no longer own them
    progress: float = 0.0  # 0..1 of the copy
    docs_per_s: float = 0.0
    eta_ms: int = 0
    elapsed_ms: int = 0
    error: str = ""
    waiting: str = ""     # what the move waits for now (a replica down), if anything

    @classmethod
    def _from(cls, d: Dict[str, Any]) -> "ReshardStatus":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    def done(self, groups: int) -> bool:
        """The documents are placed on `groups` groups and no move runs."""
        return self.phase == "stable" and self.to_groups == groups and not self.running


def _tensor(a: np.ndarray) -> Dict[str, Any]:
    """One document's or query's vectors [R, D] as a base64 tensor (exact:
    the bytes travel as they are, little-endian f32 or f16)."""
    a = np.asarray(a)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise ValueError(f"vectors must be [rows, dim], got shape {a.shape}")
    dt = "f16" if a.dtype == np.float16 else "f32"
    a = np.ascontiguousarray(a, dtype="<f2" if dt == "f16" else "<f4")
    return {"dtype": dt, "shape": list(a.shape), "data": base64.b64encode(a.tobytes()).decode("ascii")}


# A filter: an expression ("section=games AND year>=2020") or a dict
# ({"must": [...], "should": [...], "must_not": [...]} or one condition).
Filter = Union[str, Dict[str, Any]]


def _filter(f: Filter) -> Filter:
    if isinstance(f, (str, dict)):
        return f
    raise TypeError(f"filter must be an expression string or a dict, got {type(f).__name__}")


def _image_bytes(image: Union[bytes, bytearray, str, os.PathLike]) -> str:
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
    else:
        with open(image, "rb") as f:
            data = f.read()
    return base64.b64encode(data).decode("ascii")


class Client:
    """A metaembed coordinator's HTTP API at url (its --metrics-addr, e.g.
    http://127.0.0.1:9200). api_key: sent as 'Authorization: Bearer KEY'.
    timeout: seconds per request, also sent as the request's deadline."""

    def __init__(self, url: str = "http://127.0.0.1:9200", api_key: Optional[str] = None, timeout: float = 30.0,
                 batch_size: int = 512):
        if "://" not in url:
            url = "http://" + url
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.batch_size = batch_size

    # ---- transport ----

    def _request(self, method: str, path: str, body: Optional[Dict[str, Any]] = None) -> Any:
        data = None if body is None else json.dumps(body, allow_nan=False).encode("utf-8")
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.api_key:
            req.add_header("Authorization", "Bearer " + self.api_key)
        # The server gives up at the deadline and says so; the socket waits a
        # little longer so that answer arrives.
        req.add_header("X-Timeout-Ms", str(max(1, int(self.timeout * 1000))))
        try:
            with urllib.request.urlopen(req, timeout=self.timeout + 2) as r:
                payload = r.read()
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                err = json.loads(raw)
                raise MetaembedError(err.get("code", "UNKNOWN"), e.code, err.get("message", "")) from None
            except (ValueError, AttributeError):
                raise MetaembedError("UNKNOWN", e.code, raw.decode("utf-8", "replace").strip()) from None
        except urllib.error.URLError as e:
            if isinstance(e.reason, socket.timeout):
                raise MetaembedError("DEADLINE_EXCEEDED", 0, f"no answer from {self.url} within {self.timeout} s") from None
            raise MetaembedError("UNAVAILABLE", 0, f"cannot reach {self.url}: {e.reason}") from None
        except socket.timeout:
            raise MetaembedError("DEADLINE_EXCEEDED", 0, f"no answer from {self.url} within {self.timeout} s") from None
        return json.loads(payload) if payload else None

    # ---- cluster ----

    def health(self) -> Dict[str, Any]:
        return self._request("GET", "/v1/health")

    def status(self) -> Dict[str, Any]:
        return self._request("GET", "/v1/status")

    def openapi(self) -> Dict[str, Any]:
        return self._request("GET", "/openapi.json")

    # ---- snapshots ----

    def snapshots(self) -> List[SnapshotInfo]:
        """Every snapshot, by id."""
        return [SnapshotInfo._from(x) for x in self._request("GET", "/v1/snapshots")["snapshots"]]

    def snapshot_create(self, id: Optional[str] = None) -> SnapshotInfo:
        """Snapshots every replica of every group under one id (1..64 of
        [A-Za-z0-9_.-]; None: the coordinator names it snap-YYYYMMDD-HHMMSS)."""
        return SnapshotInfo._from(self._request("POST", "/v1/snapshots", {} if id is None else {"id": id})["snapshot"])

    def snapshot_delete(self, id: str) -> None:
        self._request("DELETE", "/v1/snapshots/" + _name(id))

    # ---- resharding ----

    def reshard_status(self) -> ReshardStatus:
        return ReshardStatus._from(self._request("GET", "/v1/reshard"))

    def reshard(self, groups: int, max_rate: int = 0, wait: bool = True, poll: float = 0.5,
                timeout: Optional[float] = None) -> ReshardStatus:
        """Moves the documents to the first `groups` groups of the cluster
        map while the cluster serves (to grow, every coordinator's map lists
        the new groups as standby), copying at most max_rate documents/s
        (0: no limit). Without wait, returns the status right after the
        start (the move runs on at the coordinator). With wait, polls every
        `poll` s until the move is done; a move that stops on an error
        raises MetaembedError (code ABORTED; starting it again resumes it),
        one still going after `timeout` s raises DEADLINE_EXCEEDED."""
        body: Dict[str, Any] = {"groups": int(groups)}
        if max_rate:
            body["max_rate"] = int(max_rate)
        s = ReshardStatus._from(self._request("POST", "/v1/reshard", body))
        if not wait:
            return s
        deadline = None if timeout is None else time.monotonic() + timeout
        failures = 0
        while not s.done(groups):
            if not s.running:
                why = s.error or (f"the move is not running at this coordinator (phase {s.phase}, "
                                  f"{s.from_groups} -> {s.to_groups} groups)")
                raise MetaembedError("ABORTED", 0, f"the move to {groups} groups stopped: {why}; "
                                     f"{s.moved} documents moved; reshard({groups}) again resumes it")
            if deadline is not None and time.monotonic() >= deadline:
                raise MetaembedError("DEADLINE_EXCEEDED", 0, f"the move to {groups} groups is still under way after "
                                     f"{timeout} s (phase {s.phase}, {s.moved} of ~{s.estimate} documents); it goes "
                                     "on at the coordinator: see reshard_status()")
            time.sleep(poll)
            try:
                s = self.reshard_status()
                failures = 0
            except MetaembedError as e:
                # A coordinator busy or restarting: the move goes on; a few misses in a row are no failure.
                failures += 1
                if e.code not in ("UNAVAILABLE", "DEADLINE_EXCEEDED") or failures >= _RESHARD_POLL_FAILURES:
                    raise
        return s

    # ---- collections ----

    def list_collections(self) -> List[CollectionInfo]:
        return [CollectionInfo._from(c) for c in self._request("GET", "/v1/collections")["collections"]]

    def create_collection(self, name: str, dim: Optional[int] = None, r_c: Optional[int] = None,
                          r_q: Optional[int] = None, dtype: Optional[str] = None, ram_vectors: Optional[int] = None,
                          coarse_vectors: Optional[int] = None,
                          fields: Optional[Dict[str, str]] = None, coarse_index: Optional[str] = None,
                          ivf_lists: Optional[int] = None, ivf_probe: Optional[int] = None,
                          binary_coarse: bool = False) -> "Collection":
        """Without dim, a cluster with encoders gives the encoders' shape.
        fields: metadata members to index for filters, name -> "keyword",
        "integer", "float" or "bool" (a keyword field also takes arrays of
        strings), e.g. {"section": "keyword", "year": "integer"}.
        coarse_index: the cascade's first stage, "flat" (the default) or
        "ivf" (k-means lists, trained in the background once a shard holds
        2,048 documents, a flat scan until then; exact search never uses
        it), with ivf_lists (0: 4·√N) and ivf_probe (0: adaptive).
        binary_coarse: the first stage scores the sign bits of the first
        vectors (D/8 bytes a document in RAM instead of the 2·D-byte f16
        copy); the stages after it rescore with the stored vectors. Needs
        coarse_vectors 1 (the default)."""
        body = {"name": name, "dim": dim, "r_c": r_c, "r_q": r_q, "dtype": dtype, "ram_vectors": ram_vectors,
                "coarse_vectors": coarse_vectors, "fields": None if fields is None else dict(fields),
                "coarse_index": coarse_index, "ivf_lists": ivf_lists, "ivf_probe": ivf_probe,
                "binary_coarse": True if binary_coarse else None}
        info = CollectionInfo._from(self._request("POST", "/v1/collections",
                                                  {k: v for k, v in body.items() if v is not None}))
        return Collection(self, name, info)

    def collection(self, name: str) -> "Collection":
        """A handle on an existing collection (asks nothing yet)."""
        return Collection(self, name)

    def collection_stats(self, name: str) -> CollectionInfo:
        return CollectionInfo._from(self._request("GET", "/v1/collections/" + _name(name)))

    def drop_collection(self, name: str) -> None:
        self._request("DELETE", "/v1/collections/" + _name(name))


def _name(name: str) -> str:
    # Collection names are [A-Za-z0-9_.-]; anything else is the server's to
    # refuse, so it is sent percent-encoded rather than changed.
    return urllib.request.quote(name, safe="")


class Collection:
    """One collection's documents: upsert, ingest, get, delete, search,
    count; index_fields indexes more metadata members for filters."""

    def __init__(self, client: Client, name: str, info: Optional[CollectionInfo] = None):
        self.client = client
        self.name = name
        self.info = info

    def __repr__(self) -> str:
        return f"Collection({self.name!r})"

    def _post(self, action: str, body: Dict[str, Any]) -> Any:
        return self.client._request("POST", f"/v1/collections/{_name(self.name)}/{action}", body)

    def stats(self) -> CollectionInfo:
        self.info = self.client.collection_stats(self.name)
        return self.info

    def drop(self) -> None:
        self.client.drop_collection(self.name)

    def _send_batches(self, action: str, docs: Iterable[Dict[str, Any]]) -> int:
        """Sends docs in requests of at most batch_size documents and about
        MAX_BODY bytes: each request is atomic, the whole is not."""
        total, batch, size = 0, [], 0
        for d in docs:
            n = len(json.dumps(d))
            if batch and (len(batch) >= self.client.batch_size or size + n > MAX_BODY):
                total += self._post(action, {"documents": batch})["upserted"]
                batch, size = [], 0
            batch.append(d)
            size += n
        if batch:
            total += self._post(action, {"documents": batch})["upserted"]
        return total

    def upsert(self, ids: Sequence[str], vectors: Union[np.ndarray, Sequence[np.ndarray]],
               metadata: Optional[Sequence[Optional[Dict[str, Any]]]] = None) -> int:
        """ids[i] gets vectors[i] ([R, D]; an [N, R, D] array, float32 or
        float16, or a list of [R_i, D] arrays) and metadata[i] (a dict).
        Returns the documents stored."""
        if isinstance(vectors, np.ndarray) and vectors.ndim != 3:
            raise ValueError(f"vectors must be [N, R, D], got shape {vectors.shape}")
        if len(vectors) != len(ids) or (metadata is not None and len(metadata) != len(ids)):
            raise ValueError("ids, vectors (and metadata) must have the same length")

        def docs():
            for i, doc_id in enumerate(ids):
                d = {"id": doc_id, "vectors": _tensor(vectors[i])}
                if metadata is not None and metadata[i] is not None:
                    d["metadata"] = metadata[i]
                yield d
        return self._send_batches("upsert", docs())

    def ingest(self, ids: Sequence[str], texts: Optional[Sequence[Optional[str]]] = None,
               images: Optional[Sequence[Any]] = None,
               metadata: Optional[Sequence[Optional[Dict[str, Any]]]] = None) -> int:
        """Documents embedded by the cluster's encoders: texts[i] and/or
        images[i] (bytes or a path to a PNG or JPEG). Returns the documents stored."""
        for name, seq in (("texts", texts), ("images", images), ("metadata", metadata)):
            if seq is not None and len(seq) != len(ids):
                raise ValueError(f"ids and {name} must have the same length")

        def docs():
            for i, doc_id in enumerate(ids):
                d: Dict[str, Any] = {"id": doc_id}
                if texts is not None and texts[i] is not None:
                    d["text"] = texts[i]
                if images is not None and images[i] is not None:
                    d["image"] = _image_bytes(images[i])
                if metadata is not None and metadata[i] is not None:
                    d["metadata"] = metadata[i]
                yield d
        return self._send_batches("ingest", docs())

    def get(self, ids: Optional[Sequence[str]] = None, with_vectors: bool = False, filter: Optional[Filter] = None,
            limit: Optional[int] = None) -> List[Record]:
        """By ids: the documents found, in the order asked (missing ids left
        out). By filter (instead of ids): the first limit (1..10000, the
        server's default 100) matching documents in id (byte) order."""
        if (ids is None) == (filter is None):
            raise ValueError("give ids or filter (not both)")
        body: Dict[str, Any] = {"with_vectors": with_vectors}
        if filter is not None:
            body["filter"] = _filter(filter)
            if limit is not None:
                body["limit"] = int(limit)
        else:
            body["ids"] = list(ids)
        r = self._post("get", body)
        return [Record(d["id"], d.get("metadata"),
                       np.asarray(d["vectors"], dtype=np.float32) if "vectors" in d else None)
                for d in r["documents"]]

    def delete(self, ids: Optional[Sequence[str]] = None, filter: Optional[Filter] = None) -> int:
        """By ids: returns how many of them existed. By filter (instead of
        ids): deletes every matching document, on every group, and returns
        how many."""
        if (ids is None) == (filter is None):
            raise ValueError("give ids or filter (not both)")
        body = {"filter": _filter(filter)} if filter is not None else {"ids": list(ids)}
        return self._post("delete", body)["deleted"]

    def count(self, filter: Optional[Filter] = None) -> int:
        """How many documents the filter matches (None: every document)."""
        return self._post("count", {} if filter is None else {"filter": _filter(filter)})["count"]

    def index_fields(self, fields: Dict[str, str]) -> int:
        """Indexes more metadata members (name -> "keyword", "integer",
        "float" or "bool"), the documents already stored included; refused
        (INVALID_ARGUMENT, nothing changed) when one holds a value of
        another type. Updates self.info's config and returns how many
        documents hold a value of the new fields."""
        r = self._post("fields", {"fields": dict(fields)})
        if self.info is None:
            self.info = CollectionInfo._from(r)
        else:
            self.info.fields = dict(r.get("fields") or {})
        return r["indexed"]

    def ids(self, after: Optional[str] = None, limit: int = 1000, filter: Optional[Filter] = None) -> IdsPage:
        """At most limit (1..10000) ids strictly after `after` (None: from
        the first), in ascending byte order; with filter, only those of the
        documents it matches (sent URL-encoded in the query string; a dict
        as its JSON text)."""
        query = {"limit": str(limit)}
        if after is not None:
            query["after"] = after
        if filter is not None:
            f = _filter(filter)
            query["filter"] = f if isinstance(f, str) else json.dumps(f, allow_nan=False)
        path = f"/v1/collections/{_name(self.name)}/ids?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
        r = self.client._request("GET", path)
        return IdsPage(list(r["ids"]), r.get("next_after"))

    def iter_ids(self, after: Optional[str] = None, page_size: int = 1000,
                 filter: Optional[Filter] = None) -> Iterator[str]:
        """Every id after `after` to the end (of the documents filter
        matches, when given), fetched a page at a time."""
        while True:
            page = self.ids(after=after, limit=page_size, filter=filter)
            yield from page.ids
            if page.next_after is None:
                return
            after = page.next_after

    def search(self, text: Optional[str] = None, image: Any = None, vectors: Optional[np.ndarray] = None,
               budget: Any = _DEFAULT_BUDGET, k: int = 10, exact: bool = False,
               candidates: Optional[Union[int, Sequence[int]]] = None, with_metadata: bool = True,
               all_or_nothing: bool = False, offset: int = 0, mode: str = "dense",
               lexical_text: Optional[str] = None, alpha: Optional[float] = None, fusion: Optional[str] = None,
               hybrid_candidates: Optional[int] = None, filter: Optional[Filter] = None,
               target_ms: Optional[int] = None, min_budget: Optional[Tuple[int, int]] = None,
               anytime: bool = False, probe: Optional[int] = None) -> SearchResult:
        """A text, an image (bytes or a path; with an optional text) or query
        vectors [R, D], at budget (r_q, r_c) (None or 0: all vectors). The
        hits are [offset, offset + k) of the ranking: offset pages through it.
        mode "lexical" ranks by BM25 of lexical_text (default: text) over each
        document's metadata "text"; "hybrid" fuses BM25 and MaxSim, by RRF or,
        with alpha (or fusion="weighted"), alpha·minmax(dense) + (1 − alpha)·minmax(BM25).
        filter (an expression or a dict) scores only the documents it
        matches, at every stage: when k or more match, k come back.
        target_ms picks the budget for a latency target (budget="auto"; a
        given budget is then the ceiling, min_budget the floor): the largest
        trained budget predicted to answer in time, answered anytime (a
        shard that would be late returns its last finished stage, degraded).
        probe: on an ivf collection, the lists the coarse stage scans (None
        or 0: the collection's ivf_probe)."""
        body: Dict[str, Any] = {"k": k, "offset": offset, "exact": exact, "with_metadata": with_metadata,
                                "all_or_nothing": all_or_nothing, "mode": mode}
        if lexical_text is not None:
            body["lexical_text"] = lexical_text
        if alpha is not None:
            body["alpha"] = float(alpha)
            body["fusion"] = fusion or "weighted"
        elif fusion is not None:
            body["fusion"] = fusion
        if hybrid_candidates is not None:
            body["hybrid_candidates"] = int(hybrid_candidates)
        if probe is not None:
            body["probe"] = int(probe)
        if text is not None:
            body["text"] = text
        if image is not None:
            body["image"] = _image_bytes(image)
        if vectors is not None:
            body["vectors"] = _tensor(vectors)
        if budget is _DEFAULT_BUDGET:
            budget = None if target_ms is not None else (4, 8)  # with a target: no ceiling unless given
        if target_ms is not None:
            body["target_ms"] = int(target_ms)
        if min_budget is not None:
            body["min_budget"] = [int(min_budget[0]), int(min_budget[1])]
        if anytime:
            body["anytime"] = True
        if budget is not None and budget != "auto":
            body["budget"] = [int(budget[0]), int(budget[1])]
        if candidates is not None:
            body["candidates"] = candidates if isinstance(candidates, int) else list(candidates)
        if filter is not None:
            body["filter"] = _filter(filter)
        r = self._post("search", body)
        return SearchResult([Hit(h["id"], float(h["score"]), h.get("metadata"), h.get("dense_score"),
                                 h.get("lexical_score")) for h in r["hits"]], r["r_q"], r["r_c"],
                            r["documents"], r["partial"], r.get("missing_groups", []), r.get("stages", []),
                            r.get("degraded", False), r.get("predicted_ms"), r.get("budget_reason"))
