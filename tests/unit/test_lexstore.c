/* The lex column family at start-up: documents stored before the BM25
 * index existed (no lex record) get their terms from the metadata's "text"
 * when the catalog loads, in RAM and written back; a document whose text
 * was replaced by none keeps an empty record and no postings. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "shard/catalog.h"
#include "shard/record.h"
#include "shard/shard.h"
#include "tests/harness.h"

static me_shard_t *open_shard(const char *dir) {
    me_storage_opts_t so = { 0 };
    char err[256];
    me_shard_t *s = calloc(1, sizeof *s);
    ASSERT_TRUE(s != NULL);
    s->storage = me_storage_open(dir, &so, err, sizeof err);
    ASSERT_TRUE(s->storage != NULL);
    return s;
}

static void close_shard(me_shard_t *s) {
    for (size_t i = 0; i < s->ncolls; i++) me_coll_free(s->colls[i]);
    free(s->colls);
    me_storage_close(s->storage);
    free(s);
}

/* Slot score of id for query q, through the collection's BM25 index. */
static float score_of(me_coll_t *c, const char *id, const char *q) {
    float scores[8] = { 0 };
    me_bm25_index_score(c->lex, q, strlen(q), scores);
    long slot = me_coll_find(c, id, strlen(id));
    ASSERT_TRUE(slot >= 0);
    return scores[slot];
}

TEST(catalog_fills_in_terms_of_documents_stored_before_bm25) {
    char *dir = me_test_tmpdir("lexstore");
    char err[256];
    me_shard_t *s = open_shard(dir);
    me_coll_config_t cfg = { .dim = 4, .max_doc_vectors = 2, .dtype = ME_DTYPE_F32 };
    strcpy(cfg.name, "t");
    ASSERT_OK(me_coll_config_check(&cfg, err, sizeof err));
    ASSERT_OK(me_catalog_create(s, &cfg, err, sizeof err));
    me_coll_t *c = s->colls[0];
    float v[8] = { 1, 0, 0, 0, 0, 1, 0, 0 };
    uint8_t *rec = malloc(me_record_size(ME_DTYPE_F32, 4, 2));
    const char *meta_a = "{\"text\": \"Zebra crossing\"}", *meta_b = "{\"tag\": 1}";
    me_wbatch_t *b = me_wbatch_new(s->storage);
    me_record_put_doc(b, c, "a", 2, (const uint8_t *)v, NULL, meta_a, strlen(meta_a), NULL, 0, NULL, 0, rec);
    me_record_put_doc(b, c, "b", 2, (const uint8_t *)v, NULL, meta_b, strlen(meta_b), NULL, 0, NULL, 0, rec);
    me_record_put_doc(b, c, "c", 2, (const uint8_t *)v, NULL, meta_a, strlen(meta_a), NULL, 0, NULL, 0, rec);
    /* "a" and "b" as an older shard wrote them: no lex record; "c" has the
     * empty one (its text replaced by none), so it keeps no postings. */
    char key[ME_DOC_KEY_MAX];
    me_wbatch_delete(b, ME_CF_LEX, key, me_doc_key(key, c->id, "a", 1));
    me_wbatch_delete(b, ME_CF_LEX, key, me_doc_key(key, c->id, "b", 1));
    ASSERT_OK(me_storage_write(s->storage, b, err, sizeof err));
    me_wbatch_free(b);
    close_shard(s);

    for (int round = 0; round < 2; round++) {  /* the second start reads what the first wrote back */
        s = open_shard(dir);
        ASSERT_OK(me_catalog_load(s, err, sizeof err));
        ASSERT_EQ(s->ncolls, 1);
        c = s->colls[0];
        ASSERT_EQ(c->n, 3);
        ASSERT_EQ(me_bm25_index_docs(c->lex), 3);
        ASSERT_TRUE(score_of(c, "a", "zebra") > 0);
        ASSERT_TRUE(score_of(c, "b", "zebra") == 0);
        ASSERT_TRUE(score_of(c, "c", "zebra") == 0);
        char *val;
        size_t len;
        ASSERT_OK(me_storage_get(s->storage, ME_CF_LEX, key, me_doc_key(key, c->id, "a", 1), &val, &len));
        ASSERT_TRUE(len > 4);
        me_storage_free(val);
        ASSERT_OK(me_storage_get(s->storage, ME_CF_LEX, key, me_doc_key(key, c->id, "b", 1), &val, &len));
        ASSERT_EQ(len, 4);
        me_storage_free(val);
        close_shard(s);
    }
    free(rec);
    me_test_rmdir(dir);
    free(dir);
}
