/* common/validate.c: UTF-8, the string walk over packed messages, names,
 * ids, tensor shapes (overflow), values, and id de-duplication. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/validate.h"
#include "tests/harness.h"

#define U(s) ((const uint8_t *)(s)), (sizeof(s) - 1)

TEST(validate_utf8_accepts_unicode_and_refuses_the_rest) {
    ASSERT_TRUE(me_utf8_valid(U("")));
    ASSERT_TRUE(me_utf8_valid(U("plain ascii")));
    ASSERT_TRUE(me_utf8_valid(U("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80")));  /* é € 😀 */
    ASSERT_TRUE(me_utf8_valid(U("\xf4\x8f\xbf\xbf")));                        /* U+10FFFF */
    ASSERT_TRUE(!me_utf8_valid(U("\xff")));
    ASSERT_TRUE(!me_utf8_valid(U("caf\xe9")));             /* Latin-1 */
    ASSERT_TRUE(!me_utf8_valid(U("\xc0\xaf")));            /* overlong '/' */
    ASSERT_TRUE(!me_utf8_valid(U("\xe0\x80\xaf")));        /* overlong, 3 bytes */
    ASSERT_TRUE(!me_utf8_valid(U("\xed\xa0\x80")));        /* surrogate U+D800 */
    ASSERT_TRUE(!me_utf8_valid(U("\xf4\x90\x80\x80")));    /* past U+10FFFF */
    ASSERT_TRUE(!me_utf8_valid(U("\xe2\x82")));            /* cut short */
    ASSERT_TRUE(!me_utf8_valid(U("\x80")));                /* lone continuation */
    char msg[16] = "abc\xe2\x82";                          /* snprintf cut a '€' */
    me_utf8_clip(msg);
    ASSERT_STREQ(msg, "abc");
}

static size_t pack_get(const char *coll, const char *id, uint8_t *out) {
    char *ids[1] = { (char *)id };
    Metaembed__GetRequest g = METAEMBED__GET_REQUEST__INIT;
    g.collection = (char *)coll;
    g.ids = ids;
    g.n_ids = 1;
    return metaembed__get_request__pack(&g, out);
}

TEST(validate_strings_are_checked_on_the_packed_bytes_at_any_depth) {
    uint8_t buf[256];
    char err[256];
    size_t n = pack_get("c", "doc~1", buf);
    ASSERT_OK(me_check_strings(&metaembed__get_request__descriptor, buf, n, err, sizeof err));
    /* A NUL put into the packed id: protobuf-c would unpack "doc". */
    uint8_t *t = memchr(buf, '~', n);
    *t = 0;
    ASSERT_EQ(me_check_strings(&metaembed__get_request__descriptor, buf, n, err, sizeof err), ME_EINVAL);
    ASSERT_TRUE(strstr(err, "GetRequest.ids holds a NUL byte (at byte 3)") != NULL);
    *t = 0xff;
    ASSERT_EQ(me_check_strings(&metaembed__get_request__descriptor, buf, n, err, sizeof err), ME_EINVAL);
    ASSERT_TRUE(strstr(err, "not valid UTF-8") != NULL);
    ASSERT_TRUE(me_utf8_valid((const uint8_t *)err, strlen(err)));  /* never echoes the bytes */
    /* Inside a nested message: Upsert → Document → id. */
    Metaembed__Document d = METAEMBED__DOCUMENT__INIT, *dp = &d;
    d.id = "x\xc0\xaf";
    d.metadata.data = (uint8_t *)"\xff\x00\xfe";  /* bytes: anything goes */
    d.metadata.len = 3;
    Metaembed__UpsertRequest u = METAEMBED__UPSERT_REQUEST__INIT;
    u.collection = "c";
    u.documents = &dp;
    u.n_documents = 1;
    n = metaembed__upsert_request__pack(&u, buf);
    ASSERT_EQ(me_check_strings(&metaembed__upsert_request__descriptor, buf, n, err, sizeof err), ME_EINVAL);
    ASSERT_TRUE(strstr(err, "Document.id") != NULL);
    d.id = "fine";
    n = metaembed__upsert_request__pack(&u, buf);
    ASSERT_OK(me_check_strings(&metaembed__upsert_request__descriptor, buf, n, err, sizeof err));
    /* Truncated or nonsense bytes are malformed, not a crash. */
    ASSERT_EQ(me_check_strings(&metaembed__upsert_request__descriptor, buf, n - 1, err, sizeof err), ME_EPROTO);
    static const uint8_t junk[] = { 0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f };  /* length past the end */
    ASSERT_EQ(me_check_strings(&metaembed__upsert_request__descriptor, junk, sizeof junk, err, sizeof err), ME_EPROTO);
    static const uint8_t group[] = { 0x0b };  /* wire type 3 */
    ASSERT_EQ(me_check_strings(&metaembed__upsert_request__descriptor, group, 1, err, sizeof err), ME_EPROTO);
}

TEST(validate_collection_names_and_ids) {
    char err[256];
    ASSERT_OK(me_check_collection_name("docs_v1.2-x", err, sizeof err));
    char name[ME_COLL_NAME_MAX + 2];
    memset(name, 'n', sizeof name);
    name[ME_COLL_NAME_MAX] = 0;
    ASSERT_OK(me_check_collection_name(name, err, sizeof err));
    name[ME_COLL_NAME_MAX] = 'n';
    name[ME_COLL_NAME_MAX + 1] = 0;
    ASSERT_EQ(me_check_collection_name(name, err, sizeof err), ME_EINVAL);
    ASSERT_TRUE(strstr(err, "got 65 bytes") != NULL);
    ASSERT_EQ(me_check_collection_name(".", err, sizeof err), ME_EINVAL);
    ASSERT_EQ(me_check_collection_name("..", err, sizeof err), ME_EINVAL);
    ASSERT_OK(me_check_collection_name("...", err, sizeof err));
    ASSERT_EQ(me_check_collection_name("a/b", err, sizeof err), ME_EINVAL);
    ASSERT_EQ(me_check_collection_name("", err, sizeof err), ME_EINVAL);
    ASSERT_EQ(me_check_id("", 3, err, sizeof err), ME_EINVAL);
    ASSERT_STREQ(err, "document 3: empty id");
    char id[ME_DOC_ID_MAX + 2];
    memset(id, 'i', sizeof id);
    id[ME_DOC_ID_MAX] = 0;
    ASSERT_OK(me_check_id(id, 0, err, sizeof err));
    id[ME_DOC_ID_MAX] = 'i';
    id[ME_DOC_ID_MAX + 1] = 0;
    ASSERT_EQ(me_check_id(id, 0, err, sizeof err), ME_EINVAL);
}

TEST(validate_tensor_shapes_never_overflow) {
    char err[256];
    me_tensor_view_t v;
    uint32_t shape[2] = { 1u << 31, 1u << 31 };
    Metaembed__Tensor t = METAEMBED__TENSOR__INIT;
    t.dtype = METAEMBED__DTYPE__DTYPE_F32;
    t.shape = shape;
    t.n_shape = 2;
    /* The coordinator's crash: rows × dim × 4 wrapped to 0 == no data. */
    ASSERT_EQ(me_tensor_view(&t, "doc", ME_ROWS_MAX, 0, &v, err, sizeof err), ME_EINVAL);
    ASSERT_TRUE(strstr(err, "dim 2147483648, must be 1..4096") != NULL);
    shape[1] = 4;
    ASSERT_EQ(me_tensor_view(&t, "doc", ME_ROWS_MAX, 4, &v, err, sizeof err), ME_EINVAL);
    ASSERT_TRUE(strstr(err, "2147483648 vectors") != NULL);
    shape[0] = 2;
    float data[8] = { 1, 0, 0, 0, 0, 1, 0, 0 };
    t.data.data = (uint8_t *)data;
    t.data.len = sizeof data - 4;
    ASSERT_EQ(me_tensor_view(&t, "doc", 8, 4, &v, err, sizeof err), ME_EINVAL);
    ASSERT_TRUE(strstr(err, "28 data bytes do not match shape [2, 4]") != NULL);
    t.data.len = sizeof data;
    ASSERT_OK(me_tensor_view(&t, "doc", 8, 4, &v, err, sizeof err));
    ASSERT_EQ(v.rows, 2);
    ASSERT_EQ(v.dim, 4);
    ASSERT_OK(me_tensor_convert(&v, 2, ME_DTYPE_F16, NULL, NULL, "doc", err, sizeof err));
    data[5] = 1e6f;  /* fine in f32, Inf in f16 */
    ASSERT_OK(me_tensor_convert(&v, 2, ME_DTYPE_F32, NULL, NULL, "doc", err, sizeof err));
    ASSERT_EQ(me_tensor_convert(&v, 2, ME_DTYPE_F16, NULL, NULL, "doc", err, sizeof err), ME_EINVAL);
    ASSERT_TRUE(strstr(err, "doc: vector 1 holds NaN or Inf") != NULL);
    data[5] = 0;
    ASSERT_EQ(me_tensor_convert(&v, 2, ME_DTYPE_F32, NULL, NULL, "doc", err, sizeof err), ME_EINVAL);
    ASSERT_TRUE(strstr(err, "vector 1 has zero norm") != NULL);
}

TEST(validate_documents_cap_metadata) {
    char err[512], what[ME_WHAT_MAX];
    me_tensor_view_t v;
    float data[4] = { 1, 2, 3, 4 };
    uint32_t shape[2] = { 1, 4 };
    Metaembed__Tensor t = METAEMBED__TENSOR__INIT;
    t.dtype = METAEMBED__DTYPE__DTYPE_F32;
    t.shape = shape;
    t.n_shape = 2;
    t.data.data = (uint8_t *)data;
    t.data.len = sizeof data;
    Metaembed__Document d = METAEMBED__DOCUMENT__INIT;
    d.id = "a";
    d.vectors = &t;
    d.metadata.len = ME_METADATA_MAX;
    d.metadata.data = calloc(1, ME_METADATA_MAX + 1);
    ASSERT_OK(me_document_check(&d, 0, 4, 4, &v, what, err, sizeof err));
    ASSERT_STREQ(what, "document 0 ('a')");
    d.metadata.len = ME_METADATA_MAX + 1;
    ASSERT_EQ(me_document_check(&d, 0, 4, 4, &v, what, err, sizeof err), ME_ETOOBIG);
    ASSERT_TRUE(strstr(err, "65537 metadata bytes exceed the limit of 65536") != NULL);
    free(d.metadata.data);
}

TEST(validate_dedupe_keeps_first_occurrences_in_order) {
    char *ids[] = { "b", "a", "b", "c", "a", "a", "d", "b" };
    ASSERT_EQ(me_ids_dedupe(ids, 8), 4);
    ASSERT_STREQ(ids[0], "b");
    ASSERT_STREQ(ids[1], "a");
    ASSERT_STREQ(ids[2], "c");
    ASSERT_STREQ(ids[3], "d");
    char **many = malloc(4096 * sizeof *many);
    for (int i = 0; i < 4096; i++) many[i] = "same";
    ASSERT_EQ(me_ids_dedupe(many, 4096), 1);
    free(many);
    ASSERT_EQ(me_ids_dedupe(ids, 0), 0);
}

TEST(validate_search_page_and_list_ids) {
    char err[256];
    ASSERT_OK(me_search_check_page(10, 0, 10000, err, sizeof err));
    ASSERT_OK(me_search_check_page(10, 9990, 10000, err, sizeof err));
    ASSERT_OK(me_search_check_page(10, 4000000000u, 0, err, sizeof err));  /* no --max-k known (coordinator) */
    ASSERT_EQ(me_search_check_page(0, 5, 10000, err, sizeof err), ME_EINVAL);
    ASSERT_TRUE(strstr(err, "k must be at least 1") != NULL);
    ASSERT_EQ(me_search_check_page(10, 9991, 10000, err, sizeof err), ME_EINVAL);
    ASSERT_TRUE(strstr(err, "k=10 + offset=9991 = 10001") && strstr(err, "--max-k"));
    ASSERT_EQ(me_search_check_page(10001, 0, 10000, err, sizeof err), ME_EINVAL);
    ASSERT_TRUE(strstr(err, "k=10001 exceeds the limit of 10000 (the shard's --max-k)") != NULL);
    ASSERT_EQ(me_search_check_page(UINT32_MAX, 1, 0, err, sizeof err), ME_EINVAL);  /* k + offset past uint32 */

    uint32_t limit;
    ASSERT_OK(me_list_ids_check("", 0, &limit, err, sizeof err));
    ASSERT_EQ(limit, ME_LIST_IDS_DEFAULT);
    ASSERT_OK(me_list_ids_check("x", ME_LIST_IDS_MAX, &limit, err, sizeof err));
    ASSERT_EQ(limit, ME_LIST_IDS_MAX);
    ASSERT_EQ(me_list_ids_check(NULL, ME_LIST_IDS_MAX + 1, &limit, err, sizeof err), ME_EINVAL);
    ASSERT_TRUE(strstr(err, "1..10000") != NULL);
    char long_id[ME_DOC_ID_MAX + 2];
    memset(long_id, 'a', ME_DOC_ID_MAX + 1);
    long_id[ME_DOC_ID_MAX + 1] = 0;
    ASSERT_EQ(me_list_ids_check(long_id, 10, &limit, err, sizeof err), ME_EINVAL);
    ASSERT_EQ(me_list_ids_check_limit(0, err, sizeof err), ME_EINVAL);
    ASSERT_EQ(me_list_ids_check_limit(-1, err, sizeof err), ME_EINVAL);
}

TEST(validate_search_modes) {
    char err[256];
    Metaembed__SearchRequest m = METAEMBED__SEARCH_REQUEST__INIT;
    ASSERT_OK(me_search_check_mode(&m, 0, err, sizeof err));                /* dense needs no text */
    m.mode = METAEMBED__SEARCH_MODE__SEARCH_MODE_LEXICAL;
    ASSERT_EQ(me_search_check_mode(&m, 0, err, sizeof err), ME_EINVAL);
    ASSERT_TRUE(strstr(err, "lexical search needs the query's text: lexical_text is empty") != NULL);
    m.text = "zebra";
    ASSERT_EQ(me_search_check_mode(&m, 0, err, sizeof err), ME_EINVAL);    /* a shard does not read text */
    ASSERT_OK(me_search_check_mode(&m, 1, err, sizeof err));                /* a coordinator does */
    m.lexical_text = "?? --";
    ASSERT_EQ(me_search_check_mode(&m, 1, err, sizeof err), ME_EINVAL);
    ASSERT_TRUE(strstr(err, "no word") != NULL);
    m.lexical_text = "zebra";
    m.mode = METAEMBED__SEARCH_MODE__SEARCH_MODE_HYBRID;
    float alpha[2] = { 0.25f, 0.5f };
    m.alpha = alpha;
    m.n_alpha = 1;
    ASSERT_OK(me_search_check_mode(&m, 0, err, sizeof err));
    m.n_alpha = 2;
    ASSERT_EQ(me_search_check_mode(&m, 0, err, sizeof err), ME_EINVAL);
    m.n_alpha = 1;
    float bad[] = { 2.0f, -0.01f, NAN, INFINITY };
    for (int i = 0; i < 4; i++) {
        alpha[0] = bad[i];
        ASSERT_EQ(me_search_check_mode(&m, 0, err, sizeof err), ME_EINVAL);
        ASSERT_TRUE(strstr(err, "alpha=") && strstr(err, "[0, 1]"));
    }
    alpha[0] = 1.0f;
    m.hybrid_candidates = ME_HYBRID_CANDIDATES_MAX + 1;
    ASSERT_EQ(me_search_check_mode(&m, 0, err, sizeof err), ME_EINVAL);
    ASSERT_TRUE(strstr(err, "hybrid_candidates=10001") != NULL);
    m.hybrid_candidates = 0;
    m.mode = (Metaembed__SearchMode)7;
    ASSERT_EQ(me_search_check_mode(&m, 0, err, sizeof err), ME_EINVAL);
    ASSERT_TRUE(strstr(err, "mode 7") != NULL);
    m.mode = METAEMBED__SEARCH_MODE__SEARCH_MODE_HYBRID;
    m.fusion = (Metaembed__Fusion)3;
    ASSERT_EQ(me_search_check_mode(&m, 0, err, sizeof err), ME_EINVAL);
}
