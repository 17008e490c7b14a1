"""What the FAISS side scripts (faiss_flat.py, faiss_ivf.py) share: timing
one query per search call, and recall of one top-k against another."""
import time

import numpy as np


def time_search(index, xq, k):
    """Median ms per query and the (Q, k) ids, one query per call."""
    index.search(xq[:1], k)  # warm-up: pages, scratch
    ms, ids = [], []
    for i in range(xq.shape[0]):
        t0 = time.perf_counter()
        _, I = index.search(xq[i:i + 1], k)
        ms.append((time.perf_counter() - t0) * 1e3)
        ids.append(I[0])
    return float(np.median(ms)), np.stack(ids)


def recall(a, truth):
    """Mean over rows of |a_i ∩ truth_i| / k."""
    k = truth.shape[1]
    return float(np.mean([len(np.intersect1d(x, y)) / k for x, y in zip(a, truth)]))
