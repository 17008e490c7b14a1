#include "encoder/trainjob.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/progress.h"
#include "encoder/dataset.h"
#include "encoder/embedder.h"
#include "encoder/imageset.h"
#include "encoder/tokenizer.h"
#include "encoder/weights.h"

void me_trainjob_defaults(me_trainjob_t *j) {
    memset(j, 0, sizeof *j);
    j->vocab = ME_TOK_DEFAULT_VOCAB;
    j->checkpoint_every = 500;
    j->model = (me_model_config_t){ .vocab = 0, .max_text = 96, .layers = 3, .width = 192, .heads = 4,
                                    .dim = 128, .meta_q = 16, .meta_c = 64 };
    me_train_defaults(&j->train);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Tokenises every train example (query ≤ ME_QUERY_TEXT_LEN, text ≤
 * max_text tokens) and maps hard negatives from record to example index. */
static int tokenise(const me_dataset_t *ds, const me_tok_t *tok, const int32_t *neg_rec, long max_examples,
                    int max_text, me_train_data_t *d, int32_t **bufs) {
    int Wq = ME_QUERY_TEXT_LEN < max_text ? ME_QUERY_TEXT_LEN : max_text, Wd = max_text;
    size_t n = 0;
    long *ex_of = malloc(ds->n * sizeof *ex_of);
    if (!ex_of) return ME_ENOMEM;
    for (size_t i = 0; i < ds->n; i++) {
        ex_of[i] = -1;
        if (ds->recs[i].split == ME_SPLIT_TRAIN && (!max_examples || (long)n < max_examples)) ex_of[i] = (long)n++;
    }
    int32_t *q = calloc(n * (size_t)Wq, sizeof *q), *dd = calloc(n * (size_t)Wd, sizeof *dd);
    int *ql = malloc(n * sizeof *ql), *dl = malloc(n * sizeof *dl), *hard = malloc(n * sizeof *hard);
    if (!q || !dd || !ql || !dl || !hard) {
        free(ex_of); free(q); free(dd); free(ql); free(dl); free(hard);
        return ME_ENOMEM;
    }
    for (size_t i = 0; i < ds->n; i++) {
        long e = ex_of[i];
        if (e < 0) continue;
        const me_datarec_t *r = &ds->recs[i];
        ql[e] = me_tok_encode(tok, r->query, r->query_len, q + (size_t)e * Wq, Wq);
        dl[e] = me_tok_encode(tok, r->text, r->text_len, dd + (size_t)e * Wd, Wd);
        hard[e] = neg_rec[i] >= 0 ? (int)ex_of[neg_rec[i]] : -1;
    }
    free(ex_of);
    *d = (me_train_data_t){ (int)n, Wq, Wd, q, ql, dd, dl, hard, NULL, NULL, NULL, NULL };
    bufs[0] = q;
    bufs[1] = dd;
    bufs[2] = ql;
    bufs[3] = dl;
    bufs[4] = hard;
    return 0;
}

int me_trainjob_run(const me_trainjob_t *j, char *err, size_t errcap) {
    double t_start = now_s();
    FILE *log = j->log;
    char ckpt[1100];
    snprintf(ckpt, sizeof ckpt, "%s", j->checkpoint[0] ? j->checkpoint : j->out);
    if (!j->checkpoint[0]) strncat(ckpt, ".ckpt", sizeof ckpt - strlen(ckpt) - 1);

    me_dataset_t *ds = NULL;
    me_imageset_t *is = NULL;  /* an image–text set instead of ds */
    me_tok_t *tok = NULL;
    me_model_t *m = NULL;
    me_trainer_t *tr = NULL;
    char *tokstr = NULL;
    int32_t *neg = NULL, *bufs[5] = { 0 };
    void *ibufs[ME_IMAGESET_TRAIN_BUFS] = { 0 };
    int rc;
    if (me_imageset_is(j->data)) {
        if (j->model.image_size <= 0) {
            snprintf(err, errcap, "%s holds images: give the model an image size (--image-size, --patch)", j->data);
            return ME_EINVAL;
        }
        double t0 = now_s();
        if ((rc = me_imageset_load(j->data, j->model.image_size, &is, err, errcap)) != 0) return rc;
        if (log) fprintf(log, "data: %zu concepts (train %zu, dev %zu, test %zu), %zu images in %d styles decoded "
                         "in %.1f s from %s\n", is->n, is->n_split[ME_SPLIT_TRAIN], is->n_split[ME_SPLIT_DEV],
                         is->n_split[ME_SPLIT_TEST], is->nimages, is->nstyles, now_s() - t0, j->data);
    } else {
        if ((rc = me_dataset_load(j->data, 0, &ds, err, errcap)) != 0) return rc;
        if (log) fprintf(log, "data: %zu records (train %zu, dev %zu, test %zu) from %s\n", ds->n,
                         ds->n_split[ME_SPLIT_TRAIN], ds->n_split[ME_SPLIT_DEV], ds->n_split[ME_SPLIT_TEST], j->data);
    }

    long start_step = 0;
    /* Resume: the checkpoint with its optimiser state and step. Init:
     * continued training from a model file, its own tokenizer and shape,
     * a fresh optimiser and schedule. */
    int resuming = j->resume && access(ckpt, R_OK) == 0;
    if (resuming || j->init[0]) {
        const char *from = resuming ? ckpt : j->init, *keys[1] = { "step" };
        char *vals[1] = { NULL }, sub[256];
        if ((rc = me_weights_load(from, resuming, &m, &tokstr, keys, vals, resuming, err, errcap)) != 0) goto out;
        start_step = vals[0] ? atol(vals[0]) : 0;
        free(vals[0]);
        if ((rc = me_tok_load(tokstr, strlen(tokstr), &tok, sub, sizeof sub)) != 0) {
            snprintf(err, errcap, "%s: tokenizer: %s", from, sub);
            goto out;
        }
        if (is && me_model_config(m)->image_size <= 0) {
            snprintf(err, errcap, "%s reads text only, and %s holds images", from, j->data);
            rc = ME_EINVAL;
            goto out;
        }
        if (log && resuming) fprintf(log, "resuming from %s at step %ld\n", ckpt, start_step);
        else if (log) fprintf(log, "starting from %s\n", j->init);
    } else {
        /* The tokenizer learns from the train split only. */
        size_t n = 0, nrec = ds ? ds->n : is->n;
        const char **texts = malloc(2 * nrec * sizeof *texts);
        size_t *lens = malloc(2 * nrec * sizeof *lens);
        if (!texts || !lens) { free(texts); free(lens); rc = ME_ENOMEM; goto out; }
        for (size_t i = 0; ds && i < ds->n; i++) {
            if (ds->recs[i].split != ME_SPLIT_TRAIN) continue;
            texts[n] = ds->recs[i].query; lens[n++] = ds->recs[i].query_len;
            texts[n] = ds->recs[i].text; lens[n++] = ds->recs[i].text_len;
        }
        for (size_t i = 0; is && i < is->n; i++) {
            if (is->c[i].split != ME_SPLIT_TRAIN) continue;
            texts[n] = is->c[i].label; lens[n++] = strlen(is->c[i].label);
            texts[n] = is->c[i].text; lens[n++] = strlen(is->c[i].text);
        }
        double t0 = now_s();
        rc = me_tok_train(texts, lens, n, j->vocab, &tok, err, errcap);
        free(texts);
        free(lens);
        if (rc) goto out;
        if (log) fprintf(log, "tokenizer: %d ids learned from the train split in %.1f s\n", me_tok_vocab_size(tok),
                         now_s() - t0);
        me_model_config_t cfg = j->model;
        cfg.vocab = me_tok_vocab_size(tok);
        if ((rc = me_model_config_check(&cfg, err, errcap)) != 0) goto out;
        m = me_model_new(&cfg);
        if (!m) { rc = ME_ENOMEM; snprintf(err, errcap, "out of memory for the model"); goto out; }
        me_model_init(m, j->train.seed);
    }
    for (int g = 0; g < j->train.ngroups; g++) {
        const me_model_config_t *mc = me_model_config(m);
        if (j->train.groups[g].rq > mc->meta_q || j->train.groups[g].rc > mc->meta_c) {
            snprintf(err, errcap, "MMR group %dx%d exceeds the model's meta tokens (%d query, %d document): "
                     "give --groups within them", j->train.groups[g].rq, j->train.groups[g].rc, mc->meta_q, mc->meta_c);
            rc = ME_EINVAL;
            goto out;
        }
    }
    size_t toklen;
    if (!tokstr && (rc = me_tok_save(tok, &tokstr, &toklen)) != 0) goto out;

    me_train_data_t data;
    if (is) {
        int W = me_model_config(m)->max_text;
        /* Labels are a few words: 16 tokens keep every one whole here and
         * spare the padding's compute (padding is masked, so the width
         * changes no vector). */
        if ((rc = me_imageset_train_data(is, tok, 16 < W ? 16 : W, W, j->train.seed,
                                         &data, ibufs)) != 0)
            goto out;
    } else {
        neg = malloc(ds->n * sizeof *neg);
        if (!neg) { rc = ME_ENOMEM; goto out; }
        double t0 = now_s();
        if (j->bm25_negatives) {
            if ((rc = me_dataset_bm25_negatives(ds, j->train.seed, ME_DATASET_BM25_DEPTH, neg, NULL)) != 0) goto out;
            if (log) fprintf(log, "hard negatives: mined with BM25 (top %d) in %.1f s\n", ME_DATASET_BM25_DEPTH,
                             now_s() - t0);
        } else if ((rc = me_dataset_hard_negatives(ds, j->train.seed, neg, NULL)) != 0) {
            goto out;
        }
        if ((rc = tokenise(ds, tok, neg, j->max_examples, me_model_config(m)->max_text, &data, bufs)) != 0) goto out;
    }
    size_t nparams;
    me_model_param_data(m, &nparams);
    const me_model_config_t *c = me_model_config(m);
    if (log)
        fprintf(log, "model: %d layers, width %d, %d heads, D=%d, R_q=%d, R_c=%d, max_text %d, images %dx%d in %d "
                     "patches, %.2fM parameters; %d examples, batch %d, %ld steps (%.2f epochs)\n",
                c->layers, c->width, c->heads, c->dim, c->meta_q, c->meta_c, c->max_text, c->image_size,
                c->image_size, me_model_patches(c), nparams / 1e6, data.n,
                j->train.batch, j->train.steps, (double)j->train.steps * j->train.batch / data.n);
    tr = me_trainer_new(m, &data, &j->train, err, errcap);
    if (!tr) { rc = ME_EINVAL; goto out; }
    me_trainer_resume_at(tr, start_step);
    me_progress_t bar;
    me_progress_init(&bar, "train", "steps", (uint64_t)j->train.steps, j->progress_bar ? -1 : 0);
    me_progress_update(&bar, (uint64_t)start_step);
    me_train_stats_t st;
    float avg[ME_MMR_MAX_GROUPS] = { 0 };
    int navg = 0;
    for (long s = start_step; s < j->train.steps; s++) {
        if ((rc = me_trainer_step(tr, &st)) != 0) { snprintf(err, errcap, "training step %ld failed", s); goto out; }
        for (int g = 0; g < j->train.ngroups; g++) avg[g] += st.group_loss[g];
        navg++;
        me_progress_update(&bar, (uint64_t)st.step);
        int last = st.step == j->train.steps;
        if (log && (st.step % 50 == 0 || last)) {
            double eta = st.examples_per_s > 0 ? (double)(j->train.steps - st.step) * j->train.batch / st.examples_per_s : 0;
            fprintf(log, "step %ld/%ld lr %.2e |g| %.2f  loss", st.step, j->train.steps, st.lr, st.grad_norm);
            for (int g = 0; g < j->train.ngroups; g++)
                fprintf(log, " (%d,%d) %.3f", j->train.groups[g].rq, j->train.groups[g].rc, avg[g] / navg);
            fprintf(log, "  %.1f ex/s  ETA %.0f min\n", st.examples_per_s, eta / 60);
            fflush(log);
            memset(avg, 0, sizeof avg);
            navg = 0;
        }
        if ((j->checkpoint_every && st.step % j->checkpoint_every == 0) || last) {
            char step[32];
            snprintf(step, sizeof step, "%ld", st.step);
            const char *k[1] = { "step" }, *v[1] = { step };
            if ((rc = me_weights_save(m, ckpt, tokstr, 1, k, v, 1, err, errcap)) != 0) goto out;
        }
    }
    me_progress_finish(&bar);
    {
        char steps[32];
        snprintf(steps, sizeof steps, "%ld", j->train.steps);
        const char *k[1] = { "train_steps" }, *v[1] = { steps };
        if ((rc = me_weights_save(m, j->out, tokstr, 0, k, v, 1, err, errcap)) != 0) goto out;
    }
    if (log) fprintf(log, "wrote %s (%.1f min in all)\n", j->out, (now_s() - t_start) / 60);
out:
    me_trainer_free(tr);
    for (int i = 0; i < 5; i++) free(bufs[i]);
    for (int i = 0; i < ME_IMAGESET_TRAIN_BUFS; i++) free(ibufs[i]);
    me_imageset_free(is);
    free(neg);
    free(tokstr);
    me_model_free(m);
    me_tok_free(tok);
    me_dataset_free(ds);
    return rc;
}
