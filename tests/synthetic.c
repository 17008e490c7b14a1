#include "tests/synthetic.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/dtype.h"
#include "tests/harness.h"

me_synth_t me_synth_default(int dim, int rows, uint64_t seed) {
    me_synth_t p = { .dim = dim, .rows = rows, .topics = 50, .spread = 0.35f, .family = 0, .fspread = 0.15f,
                     .sigma0 = 0.3f, .sigma1 = 1.5f, .qnoise = 0.6f, .seed = seed };
    return p;
}

static void normalise(float *v, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)v[i] * v[i];
    float inv = (float)(1.0 / sqrt(s > 0 ? s : 1));
    for (int i = 0; i < n; i++) v[i] *= inv;
}

/* out = base + scale · g / sqrt(dim) (so noise and base have comparable norms). */
static void add_noise(me_rng_t *r, float *out, const float *base, float scale, int dim) {
    float k = scale / sqrtf((float)dim);
    for (int i = 0; i < dim; i++) out[i] = base[i] + k * (float)me_rng_normal(r);
}

static void topic_centre(const me_synth_t *p, uint64_t topic, float *out) {
    me_rng_t r = { p->seed * 0x9e3779b97f4a7c15ULL ^ (topic + 1) * 0xd1b54a32d192ed03ULL };
    for (int i = 0; i < p->dim; i++) out[i] = (float)me_rng_normal(&r);
    normalise(out, p->dim);
}

static void summary(const me_synth_t *p, uint64_t doc, float *out, float *tmp) {
    uint64_t topic = doc % (uint64_t)p->topics;
    topic_centre(p, topic, tmp);
    if (p->family > 1) {
        uint64_t fam = doc / (uint64_t)p->topics / (uint64_t)p->family;
        me_rng_t rf = { p->seed ^ (topic + 1) * 0x94d049bb133111ebULL ^ (fam + 1) * 0xbf58476d1ce4e5b9ULL };
        add_noise(&rf, out, tmp, p->spread, p->dim);
        normalise(out, p->dim);
        memcpy(tmp, out, (size_t)p->dim * sizeof *tmp);
    }
    me_rng_t r = { p->seed ^ (doc + 1) * 0xa0761d6478bd642fULL };
    add_noise(&r, out, tmp, p->family > 1 ? p->fspread : p->spread, p->dim);
    normalise(out, p->dim);
}

void me_synth_doc(const me_synth_t *p, uint64_t doc, float *out) {
    float *s = malloc(2 * (size_t)p->dim * sizeof *s);
    summary(p, doc, s, s + p->dim);
    me_rng_t r = { p->seed ^ (doc + 1) * 0xe7037ed1a0b428dbULL };
    for (int j = 0; j < p->rows; j++) {
        float t = p->rows > 1 ? (float)j / (float)(p->rows - 1) : 0.0f;
        float sigma = p->sigma0 + (p->sigma1 - p->sigma0) * t;
        add_noise(&r, out + (size_t)j * p->dim, s, sigma, p->dim);
        normalise(out + (size_t)j * p->dim, p->dim);
    }
    free(s);
}

void me_synth_query(const me_synth_t *p, uint64_t doc, uint64_t qseed, int qrows, float *out) {
    float *d = malloc((size_t)p->rows * p->dim * sizeof *d);
    me_synth_doc(p, doc, d);
    me_rng_t r = { p->seed ^ (qseed + 1) * 0x8ebc6af09c88c6e3ULL ^ doc };
    for (int i = 0; i < qrows; i++) {
        int j = qrows > 1 ? (int)((int64_t)i * (p->rows - 1) / (qrows - 1)) : 0;
        add_noise(&r, out + (size_t)i * p->dim, d + (size_t)j * p->dim, p->qnoise, p->dim);
        normalise(out + (size_t)i * p->dim, p->dim);
    }
    free(d);
}

typedef struct {
    const me_synth_t *p;
    uint64_t first;
    size_t from, to;
    uint16_t *out;
} gen_job_t;

static void *gen_main(void *arg) {
    gen_job_t *j = arg;
    size_t per = (size_t)j->p->rows * j->p->dim;
    float *f = malloc(per * sizeof *f);
    for (size_t i = j->from; f && i < j->to; i++) {
        me_synth_doc(j->p, j->first + i, f);
        me_f32_to_f16_n(j->out + i * per, f, per);
    }
    free(f);
    return NULL;
}

void me_synth_docs_f16(const me_synth_t *p, uint64_t first, size_t n, uint16_t *out, int threads) {
    if (threads < 1) threads = 1;
    if (threads > 16) threads = 16;
    pthread_t th[16];
    gen_job_t jobs[16];
    for (int t = 0; t < threads; t++) {
        jobs[t] = (gen_job_t){ p, first, n * (size_t)t / (size_t)threads, n * (size_t)(t + 1) / (size_t)threads, out };
        pthread_create(&th[t], NULL, gen_main, &jobs[t]);
    }
    for (int t = 0; t < threads; t++) pthread_join(th[t], NULL);
}
