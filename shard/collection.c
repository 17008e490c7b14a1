#include "shard/collection.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/hash.h"


int me_coll_config_check(me_coll_config_t *c, char *err, size_t errcap) {
    if (c->durability < 0 || c->durability > 3) {
        snprintf(err, errcap, "durability %d is not one of default (0), none (1), group (2), every_write (3)",
                 c->durability);
        return ME_EINVAL;
    }
    if (me_check_collection_name(c->name, err, errcap) != 0) return ME_EINVAL;
    if (c->dim < 1 || c->dim > ME_DIM_MAX) {
        snprintf(err, errcap, "dim must be in [1, %d], got %d", ME_DIM_MAX, c->dim);
        return ME_EINVAL;
    }
    if (c->max_doc_vectors == 0) c->max_doc_vectors = 64;
    if (c->max_query_vectors == 0) c->max_query_vectors = 16;
    if ((int)c->dtype == 0) c->dtype = ME_DTYPE_F16;
    if (c->max_doc_vectors < 1 || c->max_doc_vectors > ME_ROWS_MAX) {
        snprintf(err, errcap, "max_doc_vectors must be in [1, %d], got %d", ME_ROWS_MAX, c->max_doc_vectors);
        return ME_EINVAL;
    }
    if (c->max_query_vectors < 1 || c->max_query_vectors > ME_ROWS_MAX) {
        snprintf(err, errcap, "max_query_vectors must be in [1, %d], got %d", ME_ROWS_MAX, c->max_query_vectors);
        return ME_EINVAL;
    }
    if (c->dtype != ME_DTYPE_F32 && c->dtype != ME_DTYPE_F16 && c->dtype != ME_DTYPE_INT8) {
        snprintf(err, errcap, "dtype must be f32, f16 or int8");
        return ME_EINVAL;
    }
    if (c->ram_vectors == 0) c->ram_vectors = c->max_doc_vectors;
    if (c->ram_vectors < 1 || c->ram_vectors > c->max_doc_vectors) {
        snprintf(err, errcap, "ram_vectors must be in [1, max_doc_vectors=%d], got %d",
                 c->max_doc_vectors, c->ram_vectors);
        return ME_EINVAL;
    }
    if (c->coarse_vectors == 0) c->coarse_vectors = 1;
    if (c->coarse_vectors < 1 || c->coarse_vectors > c->ram_vectors) {
        snprintf(err, errcap, "coarse_vectors must be in [1, ram_vectors=%d], got %d",
                 c->ram_vectors, c->coarse_vectors);
        return ME_EINVAL;
    }
    if (c->coarse_index < 0 || c->coarse_index > 1) {
        snprintf(err, errcap, "coarse_index %d is not one of flat (0), ivf (1)", c->coarse_index);
        return ME_EINVAL;
    }
    if (c->ivf_lists < 0 || c->ivf_lists > ME_IVF_MAX_LISTS || c->ivf_probe < 0 || c->ivf_probe > ME_IVF_MAX_LISTS) {
        snprintf(err, errcap, "ivf_lists and ivf_probe must be in [0, %d], got %d and %d", ME_IVF_MAX_LISTS,
                 c->ivf_lists, c->ivf_probe);
        return ME_EINVAL;
    }
    if (c->binary_coarse && c->coarse_vectors != 1) {
        snprintf(err, errcap, "binary_coarse needs coarse_vectors 1 (its bits are the first vector's), got %d",
                 c->coarse_vectors);
        return ME_EINVAL;
    }
    if (c->coarse_index == 0 && (c->ivf_lists || c->ivf_probe)) {
        snprintf(err, errcap, "ivf_lists and ivf_probe need coarse_index ivf");
        return ME_EINVAL;
    }
    return me_field_specs_check(c->fields, c->nfields, err, errcap);
}

size_t me_coll_row_bytes(const me_coll_t *c) { return (size_t)c->cfg.dim * me_dtype_size(c->cfg.dtype); }

me_coll_t *me_coll_new(const me_coll_config_t *cfg, uint32_t id) {
    me_coll_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->cfg = *cfg;
    c->id = id;
    pthread_rwlock_init(&c->lock, NULL);
    c->table_cap = 16;
    c->table = calloc(c->table_cap, sizeof *c->table);
    c->lex = me_bm25_index_new(ME_BM25_K1, ME_BM25_B);
    c->fields = me_fields_new();
    int ok = c->table && c->lex && c->fields;
    for (int f = 0; ok && f < cfg->nfields; f++) ok = me_fields_add_field(c->fields, &cfg->fields[f]) == 0;
    if (!ok) {
        free(c->table);
        me_bm25_index_free(c->lex);
        me_fields_free(c->fields);
        free(c);
        return NULL;
    }
    return c;
}

void me_coll_free(me_coll_t *c) {
    if (!c) return;
    for (size_t i = 0; i < c->n; i++) free(c->ids[i]);
    free(c->ids);
    free(c->digest);
    free(c->rows);
    free(c->head);
    free(c->head_scales);
    free(c->coarse);
    free(c->coarse_scales);
    free(c->bits);
    free(c->idkey);
    free(c->table);
    me_bm25_index_free(c->lex);
    me_fields_free(c->fields);
    me_ivf_free(c->ivf);
    me_ivf_free(c->ivf_next);
    free(c->ivf_pending);
    pthread_rwlock_destroy(&c->lock);
    free(c);
}

/* ---- id → slot table (linear probing, backward-shift deletion) ---- */

static size_t probe_start(const me_coll_t *c, const char *id, size_t idlen) {
    return (size_t)me_hash64(id, idlen) & (c->table_cap - 1);
}

long me_coll_find(const me_coll_t *c, const char *id, size_t idlen) {
    size_t mask = c->table_cap - 1;
    for (size_t i = probe_start(c, id, idlen);; i = (i + 1) & mask) {
        uint32_t v = c->table[i];
        if (v == 0) return -1;
        const char *s = c->ids[v - 1];
        if (strlen(s) == idlen && memcmp(s, id, idlen) == 0) return (long)(v - 1);
    }
}

/* Table position holding slot, or (size_t)-1. */
static size_t table_pos_of_slot(const me_coll_t *c, size_t slot) {
    const char *id = c->ids[slot];
    size_t mask = c->table_cap - 1;
    for (size_t i = probe_start(c, id, strlen(id));; i = (i + 1) & mask) {
        if (c->table[i] == 0) return (size_t)-1;
        if (c->table[i] == slot + 1) return i;
    }
}

static void table_insert(me_coll_t *c, size_t slot) {
    const char *id = c->ids[slot];
    size_t mask = c->table_cap - 1;
    size_t i = probe_start(c, id, strlen(id));
    while (c->table[i] != 0) i = (i + 1) & mask;
    c->table[i] = (uint32_t)(slot + 1);
}

static void table_delete_at(me_coll_t *c, size_t i) {
    size_t mask = c->table_cap - 1;
    c->table[i] = 0;
    /* Shift back later entries of the cluster whose home is not in (i, j]. */
    for (size_t j = (i + 1) & mask; c->table[j] != 0; j = (j + 1) & mask) {
        const char *id = c->ids[c->table[j] - 1];
        size_t home = probe_start(c, id, strlen(id));
        int in_range = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            c->table[i] = c->table[j];
            c->table[j] = 0;
            i = j;
        }
    }
}

static int table_grow(me_coll_t *c) {
    size_t ncap = c->table_cap * 2;
    uint32_t *nt = calloc(ncap, sizeof *nt);
    if (!nt) return ME_ENOMEM;
    free(c->table);
    c->table = nt;
    c->table_cap = ncap;
    for (size_t s = 0; s < c->n; s++) table_insert(c, s);
    return 0;
}

/* ---- slots ---- */

static int grow_slots(me_coll_t *c) {
    size_t ncap = c->cap ? c->cap * 2 : 64;
    size_t rb = me_coll_row_bytes(c);
    int int8 = c->cfg.dtype == ME_DTYPE_INT8;
    char **ids = realloc(c->ids, ncap * sizeof *ids);
    if (!ids) return ME_ENOMEM;
    c->ids = ids;
    uint16_t *rows = realloc(c->rows, ncap * sizeof *rows);
    if (!rows) return ME_ENOMEM;
    c->rows = rows;
    uint8_t *head = realloc(c->head, ncap * c->cfg.ram_vectors * rb);
    if (!head) return ME_ENOMEM;
    c->head = head;
    if (c->cfg.binary_coarse) {
        uint64_t *bits = realloc(c->bits, ncap * me_bits_words(c->cfg.dim) * sizeof *bits);
        if (!bits) return ME_ENOMEM;
        c->bits = bits;
        uint32_t *keys = realloc(c->idkey, ncap * sizeof *keys);
        if (!keys) return ME_ENOMEM;
        c->idkey = keys;
    } else {
        uint8_t *coarse = realloc(c->coarse, ncap * c->cfg.coarse_vectors * rb);
        if (!coarse) return ME_ENOMEM;
        c->coarse = coarse;
    }
    if (int8) {
        float *hs = realloc(c->head_scales, ncap * c->cfg.ram_vectors * sizeof *hs);
        if (!hs) return ME_ENOMEM;
        c->head_scales = hs;
        if (!c->cfg.binary_coarse) {
            float *cs = realloc(c->coarse_scales, ncap * c->cfg.coarse_vectors * sizeof *cs);
            if (!cs) return ME_ENOMEM;
            c->coarse_scales = cs;
        }
    }
    c->cap = ncap;
    return 0;
}

/* The sign bits of slot's first vector (binary_coarse). */
static void fill_bits(me_coll_t *c, size_t slot) {
    float v[ME_DIM_MAX];
    me_coll_first_vector(c, slot, v);
    me_bits_from_f32(c->bits + slot * me_bits_words(c->cfg.dim), v, c->cfg.dim);
}

static void fill_slot(me_coll_t *c, size_t slot, int total_rows, const void *head, const float *scales) {
    size_t rb = me_coll_row_bytes(c);
    int ram = c->cfg.ram_vectors, coarse = c->cfg.coarse_vectors, bin = c->cfg.binary_coarse;
    int have = total_rows < ram ? total_rows : ram;
    uint8_t *h = c->head + slot * ram * rb;
    memcpy(h, head, have * rb);
    memset(h + have * rb, 0, (ram - have) * rb);
    int hc = have < coarse ? have : coarse;
    if (!bin) {
        uint8_t *co = c->coarse + slot * coarse * rb;
        memcpy(co, head, hc * rb);
        memset(co + hc * rb, 0, (coarse - hc) * rb);
    }
    if (c->cfg.dtype == ME_DTYPE_INT8) {
        float *hs = c->head_scales + slot * ram;
        for (int r = 0; r < ram; r++) hs[r] = r < have ? scales[r] : 0.0f;
        float *cs = bin ? NULL : c->coarse_scales + slot * coarse;
        for (int r = 0; cs && r < coarse; r++) cs[r] = r < hc ? scales[r] : 0.0f;
    }
    c->rows[slot] = (uint16_t)total_rows;
    if (bin) fill_bits(c, slot);
}

void me_coll_first_vector(const me_coll_t *c, size_t slot, float *out) {
    /* The head arena's first row: every document has one (ram_vectors >= 1). */
    const uint8_t *row = c->head + slot * (size_t)c->cfg.ram_vectors * me_coll_row_bytes(c);
    float scale = c->head_scales ? c->head_scales[slot * (size_t)c->cfg.ram_vectors] : 1.0f;
    me_row_to_f32(out, row, c->cfg.dtype, scale, (size_t)c->cfg.dim);
}

const uint8_t *me_coll_first_rows(const me_coll_t *c, const float **scales, size_t *stride) {
    if (c->cfg.binary_coarse) {
        *scales = c->head_scales;
        *stride = (size_t)c->cfg.ram_vectors * c->cfg.dim;
        return c->head;
    }
    *scales = c->coarse_scales;
    *stride = (size_t)c->cfg.coarse_vectors * c->cfg.dim;
    return c->coarse;
}

int me_coll_use_binary_coarse(me_coll_t *c) {
    if (c->cfg.binary_coarse) return 0;
    if (c->cfg.coarse_vectors != 1) return ME_EINVAL;
    uint64_t *bits = malloc((c->cap ? c->cap : 1) * me_bits_words(c->cfg.dim) * sizeof *bits);
    uint32_t *keys = malloc((c->cap ? c->cap : 1) * sizeof *keys);
    if (!bits || !keys) {
        free(bits);
        free(keys);
        return ME_ENOMEM;
    }
    c->bits = bits;
    c->idkey = keys;
    c->cfg.binary_coarse = 1;
    for (size_t s = 0; s < c->n; s++) {
        fill_bits(c, s);
        c->idkey[s] = (uint32_t)me_hash64(c->ids[s], strlen(c->ids[s]));
    }
    free(c->coarse);
    free(c->coarse_scales);
    c->coarse = NULL;
    c->coarse_scales = NULL;
    return 0;
}

/* Assigns slots[0..n) to their nearest lists in each index, in one
 * sgemm per index. */
static void ivf_assign(me_coll_t *c, const uint32_t *slots, size_t n) {
    size_t dim = (size_t)c->cfg.dim;
    float *v = malloc((n ? n : 1) * dim * sizeof *v);
    int32_t *near = malloc((n ? n : 1) * sizeof *near);
    me_ivf_t **ixs[2] = { &c->ivf, &c->ivf_next };
    for (size_t i = 0; v && i < n; i++) me_coll_first_vector(c, slots[i], v + i * dim);
    for (int k = 0; k < 2; k++) {
        if (!*ixs[k]) continue;
        int ok = v && near && me_ivf_nearest_n(*ixs[k], v, n, near) == 0;
        for (size_t i = 0; ok && i < n; i++) ok = me_ivf_set(*ixs[k], slots[i], near[i]) == 0;
        if (!ok) {
            me_ivf_free(*ixs[k]);
            *ixs[k] = NULL;
        }
    }
    free(v);
    free(near);
}

void me_coll_ivf_flush(me_coll_t *c) {
    if (!c->npending) return;
    if (c->ivf || c->ivf_next) ivf_assign(c, c->ivf_pending, c->npending);
    c->npending = 0;
}

void me_coll_ivf_index_slot(me_coll_t *c, size_t slot) {
    if (!c->ivf && !c->ivf_next) return;
    if (c->npending == c->cap_pending) {
        size_t ncap = c->cap_pending ? c->cap_pending * 2 : 256;
        uint32_t *np = realloc(c->ivf_pending, ncap * sizeof *np);
        if (!np) {  /* no room to queue it: assign it now */
            uint32_t one = (uint32_t)slot;
            ivf_assign(c, &one, 1);
            return;
        }
        c->ivf_pending = np;
        c->cap_pending = ncap;
    }
    c->ivf_pending[c->npending++] = (uint32_t)slot;
    if (c->npending >= ME_COLL_IVF_BATCH) me_coll_ivf_flush(c);
}

long me_coll_put(me_coll_t *c, const char *id, size_t idlen, int total_rows,
                 const void *head, const float *head_scales) {
    long slot = me_coll_find(c, id, idlen);
    if (slot >= 0) {
        c->stored_rows -= c->rows[slot];
        fill_slot(c, (size_t)slot, total_rows, head, head_scales);
        c->stored_rows += total_rows;
        me_coll_ivf_index_slot(c, (size_t)slot);
        return slot;
    }
    if (c->n == c->cap && grow_slots(c) != 0) return ME_ENOMEM;
    if ((c->n + 1) * 4 > c->table_cap * 3 && table_grow(c) != 0) return ME_ENOMEM;
    char *copy = malloc(idlen + 1);
    if (!copy) return ME_ENOMEM;
    /* The lexical slot is added last of what can fail, so both stay in step. */
    if (me_fields_append(c->fields) != 0) { free(copy); return ME_ENOMEM; }
    if (me_bm25_index_add(c->lex) != 0) { me_fields_remove(c->fields, c->n); free(copy); return ME_ENOMEM; }
    memcpy(copy, id, idlen);
    copy[idlen] = 0;
    size_t s = c->n++;
    c->ids[s] = copy;
    if (c->idkey) c->idkey[s] = (uint32_t)me_hash64(copy, idlen);
    fill_slot(c, s, total_rows, head, head_scales);
    c->stored_rows += total_rows;
    table_insert(c, s);
    me_coll_ivf_index_slot(c, s);
    return (long)s;
}

int me_coll_remove(me_coll_t *c, const char *id, size_t idlen) {
    me_coll_ivf_flush(c);  /* the queue names slots the move below would change */
    long slot = me_coll_find(c, id, idlen);
    if (slot < 0) return 0;
    size_t s = (size_t)slot, last = c->n - 1;
    table_delete_at(c, table_pos_of_slot(c, s));
    c->stored_rows -= c->rows[s];
    free(c->ids[s]);
    if (s != last) {
        /* Move the last document into the hole and repoint its table entry. */
        size_t pos = table_pos_of_slot(c, last);
        size_t rb = me_coll_row_bytes(c);
        int ram = c->cfg.ram_vectors, coarse = c->cfg.coarse_vectors;
        c->ids[s] = c->ids[last];
        c->rows[s] = c->rows[last];
        memcpy(c->head + s * ram * rb, c->head + last * ram * rb, ram * rb);
        if (c->coarse) memcpy(c->coarse + s * coarse * rb, c->coarse + last * coarse * rb, coarse * rb);
        if (c->bits) {
            size_t w = me_bits_words(c->cfg.dim);
            memcpy(c->bits + s * w, c->bits + last * w, w * sizeof *c->bits);
            c->idkey[s] = c->idkey[last];
        }
        if (c->cfg.dtype == ME_DTYPE_INT8) {
            memcpy(c->head_scales + s * ram, c->head_scales + last * ram, ram * sizeof(float));
            if (c->coarse_scales)
                memcpy(c->coarse_scales + s * coarse, c->coarse_scales + last * coarse, coarse * sizeof(float));
        }
        c->table[pos] = (uint32_t)(s + 1);
    }
    me_bm25_index_remove(c->lex, (uint32_t)s);  /* moves the same last slot */
    me_fields_remove(c->fields, s);
    if (c->ivf) me_ivf_remove_slot(c->ivf, (uint32_t)s, (uint32_t)last);
    if (c->ivf_next) me_ivf_remove_slot(c->ivf_next, (uint32_t)s, (uint32_t)last);
    c->n--;
    return 1;
}

int me_coll_set_terms(me_coll_t *c, size_t slot, const uint8_t *bag, size_t len) {
    return me_bm25_index_set(c->lex, (uint32_t)slot, bag, len);
}

int me_coll_set_fields(me_coll_t *c, size_t slot, const uint8_t *rec, size_t len) {
    return me_fields_set(c->fields, slot, rec, len);
}

int me_coll_add_fields(me_coll_t *c, const me_field_spec_t *f, int n) {
    if (c->cfg.nfields + n > ME_FIELDS_MAX) return ME_EINVAL;
    for (int i = 0; i < n; i++) {
        int rc = me_fields_add_field(c->fields, &f[i]);
        if (rc) return rc;
        c->cfg.fields[c->cfg.nfields++] = f[i];
    }
    return 0;
}

/* The first `per` vectors of a slot in one of the RAM tiers (data, scales). */
static me_docref_t tier_ref(const me_coll_t *c, size_t slot, const uint8_t *data, const float *scales, int per) {
    me_docref_t d;
    d.data = data + slot * per * me_coll_row_bytes(c);
    d.scales = scales ? scales + slot * per : NULL;
    d.rows = c->rows[slot] < per ? c->rows[slot] : per;
    return d;
}

me_docref_t me_coll_head_ref(const me_coll_t *c, size_t slot) {
    return tier_ref(c, slot, c->head, c->head_scales, c->cfg.ram_vectors);
}

me_docref_t me_coll_coarse_ref(const me_coll_t *c, size_t slot) {
    if (c->cfg.binary_coarse) {
        /* No dense copy: the head arena's first row (coarse_vectors is 1). */
        me_docref_t d = me_coll_head_ref(c, slot);
        if (d.rows > 1) d.rows = 1;
        return d;
    }
    return tier_ref(c, slot, c->coarse, c->coarse_scales, c->cfg.coarse_vectors);
}

uint64_t me_coll_ram_bytes(const me_coll_t *c) {
    int dense = c->cfg.ram_vectors + (c->cfg.binary_coarse ? 0 : c->cfg.coarse_vectors);
    size_t per = (size_t)dense * me_coll_row_bytes(c);
    if (c->cfg.dtype == ME_DTYPE_INT8) per += (size_t)dense * sizeof(float);
    if (c->cfg.binary_coarse) per += me_bits_words(c->cfg.dim) * sizeof(uint64_t) + sizeof(uint32_t);
    return (uint64_t)c->n * per;
}

uint64_t me_coll_index_bytes(const me_coll_t *c) {
    size_t per_row = me_coll_row_bytes(c) + (c->cfg.dtype == ME_DTYPE_INT8 ? sizeof(float) : 0);
    return c->stored_rows * per_row;
}
