#!/usr/bin/env python3
"""FAISS's IVF index, timed like bench_scale times ours: one thread, one query
per search call, top-k by inner product, at several nprobe. Prints one JSON
object on stdout.

    faiss_ivf.py BASE.npy QUERIES.npy K NLIST NPROBE[,NPROBE...] [OURS_IDS.npy ...]

BASE is (N, D) float32 (our first vectors), QUERIES (Q, D) float32 (the
queries' first vectors). IndexIVFFlat (inner product, an IndexFlatIP
quantizer, NLIST lists, FAISS's own k-means with its default iterations) is
trained on the same evenly spaced sample of 40 points per list that our
indexer uses. Ground truth is IndexFlatIP's exact top-K; each optional
OURS_IDS file is (Q, K) int32, our top-K under one setting, scored against
the same truth. Run by tests/bench/bench_scale.c.
"""
import json
import sys
import time

import faiss
import numpy as np

from faiss_timing import recall, time_search  # beside this script


def main():
    if len(sys.argv) < 6:
        sys.stderr.write(__doc__)
        return 2
    xb = np.ascontiguousarray(np.load(sys.argv[1], mmap_mode="r"), dtype=np.float32)
    xq = np.ascontiguousarray(np.load(sys.argv[2]), dtype=np.float32)
    k, nlist = int(sys.argv[3]), int(sys.argv[4])
    nprobes = [int(x) for x in sys.argv[5].split(",") if x]
    ours = [np.load(p) for p in sys.argv[6:]]
    faiss.omp_set_num_threads(1)
    n, d = xb.shape

    flat = faiss.IndexFlatIP(d)
    flat.add(xb)
    flat_ms, truth = time_search(flat, xq, k)
    del flat

    want = min(n, 40 * nlist)
    sample = xb[(np.arange(want, dtype=np.float64) * n / want).astype(np.int64)]
    quantizer = faiss.IndexFlatIP(d)
    ivf = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
    t0 = time.perf_counter()
    ivf.train(sample)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ivf.add(xb)
    add_s = time.perf_counter() - t0
    rows = []
    for p in nprobes:
        ivf.nprobe = p
        ms, ids = time_search(ivf, xq, k)
        rows.append({"nprobe": p, "ms": ms, "recall": recall(ids, truth)})
    print(json.dumps({
        "faiss_version": faiss.__version__,
        "threads": 1,
        "docs": int(n),
        "dim": int(d),
        "queries": int(xq.shape[0]),
        "k": k,
        "nlist": nlist,
        "train_s": train_s,
        "add_s": add_s,
        "flat_ms": flat_ms,
        "ivf": rows,
        "ours_recall": [recall(o, truth) for o in ours],
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
