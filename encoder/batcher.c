#include "encoder/batcher.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

typedef struct job {
    me_side_t side;
    const char *const *texts;
    int n;
    float *out;
    int rc, done;
    pthread_cond_t cv;        /* its owner waits here: woken when done, or to lead */
    struct job *next;
} job_t;

struct me_batcher {
    pthread_mutex_t mu;
    job_t *head;              /* FIFO of jobs waiting for a lane */
    int lanes, busy, max_texts;
    me_batcher_stats_t st;
};

me_batcher_t *me_batcher_new(int lanes, int max_texts) {
    me_batcher_t *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    pthread_mutex_init(&b->mu, NULL);
    b->lanes = lanes > 0 ? lanes : 1;
    b->max_texts = max_texts > 0 ? max_texts : 1;
    return b;
}

void me_batcher_free(me_batcher_t *b) {
    if (!b) return;
    pthread_mutex_destroy(&b->mu);
    free(b);
}

/* Unlinks the oldest job and every later one of its side while the batch
 * stays within max_texts (the oldest always goes, whatever its size).
 * Called with the lock held; returns the batch as a list. */
static job_t *take_batch(me_batcher_t *b, int *ntexts) {
    job_t *first = b->head, *batch = first, *tail = first;
    b->head = first->next;
    first->next = NULL;
    int total = first->n;
    for (job_t **pp = &b->head; *pp;) {
        job_t *j = *pp;
        if (j->side == first->side && total + j->n <= b->max_texts) {
            *pp = j->next;
            j->next = NULL;
            tail->next = j;
            tail = j;
            total += j->n;
        } else {
            pp = &j->next;
        }
    }
    *ntexts = total;
    return batch;
}

/* Runs one combined pass outside the lock; sets every job's rc. */
static void run_batch(me_embedder_t *w, job_t *batch, int ntexts) {
    if (!batch->next) {  /* alone: straight into its own output */
        batch->rc = me_embedder_encode(w, batch->side, batch->texts, NULL, batch->n, batch->out);
        return;
    }
    size_t per = (size_t)me_embedder_rows(w, batch->side) * me_embedder_config(w)->dim;
    const char **texts = malloc((size_t)ntexts * sizeof *texts);
    float *out = malloc((size_t)ntexts * per * sizeof *out);
    int rc = texts && out ? 0 : ME_ENOMEM;
    if (rc == 0) {
        int at = 0;
        for (job_t *j = batch; j; j = j->next) {
            memcpy(texts + at, j->texts, (size_t)j->n * sizeof *texts);
            at += j->n;
        }
        rc = me_embedder_encode(w, batch->side, texts, NULL, ntexts, out);
    }
    size_t at = 0;
    for (job_t *j = batch; j; j = j->next) {
        if (rc == 0) memcpy(j->out, out + at * per, (size_t)j->n * per * sizeof *out);
        at += (size_t)j->n;
        j->rc = rc;
    }
    free(texts);
    free(out);
}

int me_batcher_encode(me_batcher_t *b, me_embedder_t *w, me_side_t side, const char *const *texts, int n,
                      float *out) {
    job_t me = { side, texts, n, out, 0, 0, PTHREAD_COND_INITIALIZER, NULL };
    pthread_mutex_lock(&b->mu);
    job_t **tail = &b->head;
    while (*tail) tail = &(*tail)->next;
    *tail = &me;
    b->st.queued++;
    while (!me.done) {
        if (b->busy < b->lanes && b->head) {
            int ntexts, njobs = 0;
            job_t *batch = take_batch(b, &ntexts);
            for (job_t *j = batch; j; j = j->next) njobs++;
            b->busy++;
            b->st.queued -= (uint64_t)njobs;
            b->st.running++;
            /* Jobs of the other side left behind may take a free lane now. */
            if (b->head && b->busy < b->lanes) pthread_cond_signal(&b->head->cv);
            pthread_mutex_unlock(&b->mu);
            run_batch(w, batch, ntexts);
            pthread_mutex_lock(&b->mu);
            b->busy--;
            b->st.running--;
            b->st.batches++;
            b->st.requests += (uint64_t)njobs;
            b->st.texts += (uint64_t)ntexts;
            /* Wake exactly the owners of this batch (read next first: a
             * woken owner returns and its job, on its stack, is gone), and
             * the oldest waiting job to lead the next batch on this lane. */
            for (job_t *j = batch, *next; j; j = next) {
                next = j->next;
                j->done = 1;
                if (j != &me) pthread_cond_signal(&j->cv);
            }
            if (b->head && b->head != &me) pthread_cond_signal(&b->head->cv);
        } else {
            pthread_cond_wait(&me.cv, &b->mu);
        }
    }
    pthread_mutex_unlock(&b->mu);
    pthread_cond_destroy(&me.cv);
    return me.rc;
}

void me_batcher_stats(me_batcher_t *b, me_batcher_stats_t *out) {
    pthread_mutex_lock(&b->mu);
    *out = b->st;
    pthread_mutex_unlock(&b->mu);
}
