#!/usr/bin/env python3
"""FAISS's flat scan, timed like bench_flat times ours: one thread, one query
per search call, top-k by inner product. Prints one JSON object on stdout.

    faiss_flat.py BASE.npy QUERIES.npy K [OURS_F32_IDS.npy [OURS_F16_IDS.npy]]

BASE is (N, D) float32, QUERIES (Q, D) float32; the optional id files are
(Q, K) int32, our top-k per query, scored here against FAISS IndexFlatIP's
(recall = |ours ∩ faiss| / K, mean over queries). Run by tests/bench/bench_flat.c.
"""
import json
import sys

import faiss
import numpy as np

from faiss_timing import recall, time_search  # beside this script


def main():
    if len(sys.argv) < 4:
        sys.stderr.write(__doc__)
        return 2
    xb = np.ascontiguousarray(np.load(sys.argv[1], mmap_mode="r"), dtype=np.float32)
    xq = np.ascontiguousarray(np.load(sys.argv[2]), dtype=np.float32)
    k = int(sys.argv[3])
    ours = [np.load(p) for p in sys.argv[4:6]]
    faiss.omp_set_num_threads(1)
    d = xb.shape[1]

    flat = faiss.IndexFlatIP(d)
    flat.add(xb)
    flat_ms, flat_ids = time_search(flat, xq, k)
    del flat

    sq = faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    sq.train(xb[:1])  # fp16 needs no training; the call only marks it trained
    sq.add(xb)
    sq_ms, sq_ids = time_search(sq, xq, k)
    del sq

    out = {
        "faiss_version": faiss.__version__,
        "threads": 1,
        "docs": int(xb.shape[0]),
        "dim": int(d),
        "queries": int(xq.shape[0]),
        "k": k,
        "flat_f32_ms": flat_ms,
        "sq_fp16_ms": sq_ms,
        "recall_sq_fp16": recall(sq_ids, flat_ids),
    }
    names = ["recall_ours_f32", "recall_ours_f16"]
    for name, ids in zip(names, ours):
        out[name] = recall(ids, flat_ids)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
