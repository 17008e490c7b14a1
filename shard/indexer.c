#include "shard/indexer.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/log.h"
#include "common/wire.h"

/* Idle wait between looks for work. */
#define IDLE_MS 100

enum { WORK_NONE, WORK_TRAIN, WORK_FILL };

static int lists_for(const me_coll_t *c) {
    int l = c->cfg.ivf_lists ? c->cfg.ivf_lists : me_ivf_auto_lists(c->n);
    return (size_t)l > c->n ? (int)c->n : l;
}

/* What c needs. Caller holds c->lock (read). */
static int work_of(const me_coll_t *c) {
    if (c->cfg.coarse_index != 1) return WORK_NONE;
    if (c->ivf_next) return WORK_FILL;
    if (!c->ivf) return c->n >= ME_IVF_MIN_DOCS ? WORK_TRAIN : WORK_NONE;
    return c->n >= ME_IVF_RETRAIN_GROWTH * c->ivf->trained_n ? WORK_TRAIN : WORK_NONE;
}

/* A sample of c's first vectors, spread evenly over the slots, as f32 into
 * a malloc'd [*n, dim]. Caller holds c->lock (read). */
static float *copy_sample(const me_coll_t *c, int nlist, size_t *n) {
    size_t want = (size_t)nlist * ME_IVF_SAMPLE_PER_LIST;
    if (want > c->n) want = c->n;
    float *x = malloc((want ? want : 1) * (size_t)c->cfg.dim * sizeof *x);
    if (!x) return NULL;
    for (size_t i = 0; i < want; i++)
        me_coll_first_vector(c, (size_t)((double)i * (double)c->n / (double)want), x + i * (size_t)c->cfg.dim);
    *n = want;
    return x;
}

static me_ivf_t *train(int dim, const float *x, size_t n, int nlist, size_t n_at, uint64_t seed) {
    uint64_t t0 = me_now_us();
    me_ivf_t *ix = me_ivf_train(x, n, dim, nlist, n_at, seed);
    if (ix) {
        ix->trained_n = n_at;
        ix->train_seconds = (double)(me_now_us() - t0) / 1e6;
    }
    return ix;
}

/* Puts up to `most` slots that have no list yet (from the cursor on) into
 * their nearest lists; swaps the index in once every slot has one.
 * Returns 0 while there is more to do, 1 once swapped in, -1 when the
 * build was given up (out of memory). Caller holds c->lock (write). */
static int fill_some(me_coll_t *c, size_t most, float *buf, uint32_t *slots, int32_t *lists) {
    me_coll_ivf_flush(c);
    me_ivf_t *ix = c->ivf_next;
    if (!ix) return -1;  /* the flush dropped it (out of memory) */
    size_t m = 0, dim = (size_t)c->cfg.dim;
    while (ix->cursor < c->n && m < most) {
        size_t s = ix->cursor++;
        if (s < ix->slot_cap && ix->list_of[s] >= 0) continue;
        me_coll_first_vector(c, s, buf + m * dim);
        slots[m++] = (uint32_t)s;
    }
    int oom = m && me_ivf_nearest_n(ix, buf, m, lists) != 0;
    for (size_t i = 0; i < m && !oom; i++) oom = me_ivf_set(ix, slots[i], lists[i]) != 0;
    if (oom) {
        /* Give this build up: searches keep the old index or the flat scan. */
        me_ivf_free(ix);
        c->ivf_next = NULL;
        return -1;
    }
    if (ix->cursor < c->n) return 0;
    if (ix->assigned < c->n) {
        /* A delete moved an unlisted slot below the cursor: look again. */
        ix->cursor = 0;
        return 0;
    }
    me_ivf_free(c->ivf);
    c->ivf = ix;
    c->ivf_next = NULL;
    c->ivf_builds++;
    return 1;
}

int me_indexer_fill(me_coll_t *c, size_t most) {
    float *buf = malloc((most ? most : 1) * (size_t)c->cfg.dim * sizeof *buf);
    uint32_t *slots = malloc((most ? most : 1) * sizeof *slots);
    int32_t *lists = malloc((most ? most : 1) * sizeof *lists);
    int done = buf && slots && lists ? fill_some(c, most, buf, slots, lists) : 0;
    free(buf);
    free(slots);
    free(lists);
    return done;
}

int me_indexer_build_now(me_coll_t *c, uint64_t seed) {
    size_t n;
    int nlist = lists_for(c);
    if (nlist < 1) return 0;
    float *x = copy_sample(c, nlist, &n);
    if (!x) return ME_ENOMEM;
    me_ivf_t *ix = train(c->cfg.dim, x, n, nlist, c->n, seed);
    free(x);
    if (!ix) return ME_ENOMEM;
    me_ivf_free(c->ivf_next);
    c->ivf_next = ix;
    float *buf = malloc((size_t)ME_INDEXER_FILL_BLOCK * c->cfg.dim * sizeof *buf);
    uint32_t *slots = malloc(ME_INDEXER_FILL_BLOCK * sizeof *slots);
    int32_t *lists = malloc(ME_INDEXER_FILL_BLOCK * sizeof *lists);
    int rc = buf && slots && lists ? 0 : ME_ENOMEM, done = 0;
    while (rc == 0 && done == 0) done = fill_some(c, ME_INDEXER_FILL_BLOCK, buf, slots, lists);
    if (rc == 0 && done < 0) rc = ME_ENOMEM;
    free(buf);
    free(slots);
    free(lists);
    return rc;
}

/* The collection with this id, or NULL (dropped). Caller holds s->lock. */
static me_coll_t *find_by_id(me_shard_t *s, uint32_t id) {
    for (size_t i = 0; i < s->ncolls; i++)
        if (s->colls[i]->id == id) return s->colls[i];
    return NULL;
}

/* One unit of work on some collection; 0 when there was none. */
static int step(me_shard_t *s) {
    uint32_t id = 0;
    int work = WORK_NONE;
    pthread_rwlock_rdlock(&s->lock);
    for (size_t i = 0; i < s->ncolls && work == WORK_NONE; i++) {
        me_coll_t *c = s->colls[i];
        pthread_rwlock_rdlock(&c->lock);
        work = work_of(c);
        id = c->id;
        pthread_rwlock_unlock(&c->lock);
    }
    pthread_rwlock_unlock(&s->lock);
    if (work == WORK_NONE) return 0;

    if (work == WORK_TRAIN) {
        float *x = NULL;
        size_t n = 0, n_at = 0;
        int nlist = 0, dim = 0;
        char name[ME_COLL_NAME_MAX + 1] = "";
        pthread_rwlock_rdlock(&s->lock);
        me_coll_t *c = find_by_id(s, id);
        if (c) {
            pthread_rwlock_rdlock(&c->lock);
            nlist = lists_for(c);
            n_at = c->n;
            dim = c->cfg.dim;
            snprintf(name, sizeof name, "%s", c->cfg.name);
            x = copy_sample(c, nlist, &n);
            pthread_rwlock_unlock(&c->lock);
        }
        pthread_rwlock_unlock(&s->lock);
        if (!c) return 1;
        me_ivf_t *ix = x ? train(dim, x, n, nlist, n_at, id) : NULL;
        free(x);
        if (!ix) {
            me_warn("collection %s: could not train its IVF index (out of memory); the flat scan answers", name);
            return 0;  /* idle a while before trying again */
        }
        pthread_rwlock_rdlock(&s->lock);
        c = find_by_id(s, id);
        if (c) {
            pthread_rwlock_wrlock(&c->lock);
            if (!c->ivf_next && work_of(c) == WORK_TRAIN) {
                c->ivf_next = ix;
                ix = NULL;
            }
            pthread_rwlock_unlock(&c->lock);
        }
        pthread_rwlock_unlock(&s->lock);
        me_ivf_free(ix);
        return 1;
    }

    pthread_rwlock_rdlock(&s->lock);
    me_coll_t *c = find_by_id(s, id);
    if (c) {
        pthread_rwlock_wrlock(&c->lock);
        if (c->ivf_next && me_indexer_fill(c, ME_INDEXER_FILL_BLOCK) > 0)
            me_info("collection %s: IVF index of %d lists over %zu documents ready (k-means %.1f s)", c->cfg.name,
                    c->ivf->nlist, c->n, c->ivf->train_seconds);
        pthread_rwlock_unlock(&c->lock);
    }
    pthread_rwlock_unlock(&s->lock);
    return 1;
}

static void *indexer_main(void *arg) {
    me_shard_t *s = arg;
    openblas_set_num_threads(1);
    while (!atomic_load(&s->indexer_stop)) {
        if (step(s)) continue;
        for (int i = 0; i < IDLE_MS / 10 && !atomic_load(&s->indexer_stop); i++) {
            struct timespec ts = { 0, 10 * 1000 * 1000 };
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

int me_indexer_start(me_shard_t *s) {
    atomic_store(&s->indexer_stop, 0);
    if (pthread_create(&s->indexer_thread, NULL, indexer_main, s) != 0) return ME_ENOMEM;
    s->indexer_started = 1;
    return 0;
}

void me_indexer_stop(me_shard_t *s) {
    if (!s->indexer_started) return;
    atomic_store(&s->indexer_stop, 1);
    pthread_join(s->indexer_thread, NULL);
    s->indexer_started = 0;
}
