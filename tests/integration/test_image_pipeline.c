/* Images in, images out: a real cluster (coordinator, 2 shards, 2 encoders
 * running the shipped emoji model) ingests 300 emoji images from JSON
 * lines through `metaembed ingest`, stores a thumbnail with each, answers
 * text → image searches exactly as the offline evaluation of the same
 * subset does, and image queries find their concept's other styles above
 * chance; the page's search API answers the same; hostile images are
 * refused by the encoder with their reasons; bad
 * image lines are reported by line number and lose nothing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/dtype.h"
#include "common/image.h"
#include "common/json.h"
#include "common/wire.h"
#include "encoder/embedder.h"
#include "encoder/eval.h"
#include "encoder/imageset.h"
#include "tests/cluster.h"
#include "tests/harness.h"

#define MODEL "models/metaembed-emoji.safetensors"
#define DATA "../shared/data/emoji"
enum { NCONCEPTS = 100, NQ = 12 };

#define run_cli me_test_run_capture

/* An Encode at an encoder with these images (and texts, when given):
 * the reply status, its message in st. */
static int encode_images(me_client_t *c, ProtobufCBinaryData *images, size_t n, char **texts, size_t nt,
                         me_status_t *st) {
    Metaembed__EncodeRequest e = METAEMBED__ENCODE_REQUEST__INIT;
    e.images = images;
    e.n_images = n;
    e.texts = texts;
    e.n_texts = nt;
    size_t len;
    uint8_t *buf = me_wire_pack(&e.base, &len);
    void *rep = NULL;
    size_t rlen = 0;
    int code = me_client_call(c, METAEMBED__METHOD__METHOD_ENCODE, buf, len, &rep, &rlen, st);
    free(buf);
    free(rep);
    return code;
}

/* The ids of a --json search's hits, in rank order. */
static int hit_ids(const char *out, char ids[][64], int max, char *thumb_ok) {
    me_json_doc_t *doc;
    if (me_json_parse(out, strlen(out), &doc, NULL) != 0) return -1;
    const me_json_t *hits = me_json_get(me_json_at(me_json_get(me_json_root(doc), "queries"), 0), "hits");
    int n = 0;
    for (size_t i = 0; i < me_json_len(hits) && n < max; i++, n++) {
        const me_json_t *h = me_json_at(hits, i);
        snprintf(ids[n], 64, "%s", me_json_str(me_json_get(h, "id")) ? me_json_str(me_json_get(h, "id")) : "");
        const char *th = me_json_str(me_json_get(me_json_get(h, "metadata"), "thumbnail"));
        if (thumb_ok && (!th || strncmp(th, "data:image/png;base64,", 22) != 0)) *thumb_ok = 0;
    }
    me_json_free(doc);
    return n;
}

/* The path of the set's first image. */
static const char *qpath_first(const me_imageset_t *s, const char *cwd) {
    static char p[2300];
    snprintf(p, sizeof p, "%s/%s/%s", cwd, DATA, s->img_path[0]);
    return p;
}

TEST(image_pipeline_ingest_search_text_and_image_queries) {
    if (access(MODEL, R_OK) != 0 || access(DATA "/emoji.jsonl", R_OK) != 0) {
        fprintf(stderr, "    %s or %s not found: skipped\n", MODEL, DATA);
        return;
    }
    char err[512], cwd[1024];
    ASSERT_TRUE(getcwd(cwd, sizeof cwd) != NULL);
    me_imageset_t *s;
    ASSERT_OK(me_imageset_load(DATA, 0, &s, err, sizeof err));
    char *dir = me_test_tmpdir("imagepipe");
    char items[600], bad[600], junk[600], bin[512];
    snprintf(items, sizeof items, "%s/items.jsonl", dir);
    snprintf(bad, sizeof bad, "%s/bad.jsonl", dir);
    snprintf(junk, sizeof junk, "%s/junk.png", dir);
    /* The subset: every image of the first NCONCEPTS concepts (all splits,
     * as the protocol's corpus holds every image). */
    FILE *f = fopen(items, "w");
    me_json_writer_t w;
    me_json_writer_init_file(&w, f);
    size_t nimg = 0;
    for (size_t i = 0; i < s->nimages; i++) {
        if (s->img_concept[i] >= NCONCEPTS) continue;
        char id[128], path[2200];
        snprintf(id, sizeof id, "%s-%s", s->c[s->img_concept[i]].id, s->styles[s->img_style[i]]);
        snprintf(path, sizeof path, "%s/%s/%s", cwd, DATA, s->img_path[i]);
        me_json_obj_begin(&w, NULL);
        me_json_put_str(&w, "id", id);
        me_json_put_str(&w, "image", path);
        me_json_put_str(&w, "label", s->c[s->img_concept[i]].label);
        me_json_obj_end(&w);
        me_json_write_bytes(&w, "\n", 1);
        nimg++;
    }
    me_json_writer_free(&w);
    fclose(f);
    ASSERT_EQ(nimg, 3 * NCONCEPTS);
    /* bad.jsonl: a corrupt image, a missing one, a line with neither text
     * nor image; then one good line. */
    f = fopen(junk, "w");
    fputs("\x89PNG\r\n\x1a\n but then nothing of a PNG", f);
    fclose(f);
    f = fopen(bad, "w");
    fprintf(f, "{\"id\": \"junk\", \"image\": \"junk.png\"}\n{\"id\": \"gone\", \"image\": \"gone.png\"}\n"
               "{\"id\": \"empty\"}\n{\"id\": \"extra\", \"text\": \"a plain text document\"}\n");
    fclose(f);

    char model[1200], stream[CLUSTER_STREAM_MAX];
    snprintf(model, sizeof model, "%s/%s", cwd, MODEL);
    cluster_t c = { 0 };
    me_daemon_t enc[2] = { 0 };
    ASSERT_OK(cluster_start_pipeline(&c, 2, model, enc, stream));
    me_test_bin("metaembed", bin, sizeof bin);
    char *out, *errs;
    char *create[] = { bin, "--addr", c.coord.endpoint, "collection", "create", "emoji", "--dim", "64",
                       "--max-doc-vectors", "64", "--max-query-vectors", "16", NULL };
    ASSERT_EQ(run_cli(create, dir, "create", &out, &errs), 0);
    free(out);
    free(errs);
    char *ingest[] = { bin, "--addr", c.coord.endpoint, "--json", "ingest", items, "--collection", "emoji",
                       "--stream", stream, NULL };
    ASSERT_EQ(run_cli(ingest, dir, "ingest", &out, &errs), 0);
    free(out);
    free(errs);
    me_client_t *cli = me_daemon_client(&c.coord);
    ASSERT_TRUE(cli != NULL);
    me_stats_t stats;
    me_status_t st;
    ASSERT_OK(me_client_stats(cli, "emoji", &stats, &st));
    ASSERT_EQ(stats.collections[0].documents, nimg);
    me_stats_free(&stats);

    /* Offline: the same model embeds the same images and labels; exact
     * MaxSim at (16,64) gives the reference MRR@10 over NQ label queries
     * (the subset's first NQ concepts). */
    me_embedder_t *e;
    ASSERT_OK(me_embedder_load(model, &e, err, sizeof err));
    int S = me_embedder_image_size(e), Rq = 16, Rc = 64, D = 64;
    ASSERT_TRUE(S > 0);
    me_imageset_free(s);
    ASSERT_OK(me_imageset_load(DATA, S, &s, err, sizeof err));
    float *docs = malloc(nimg * (size_t)Rc * D * sizeof *docs);
    uint16_t *d16 = malloc(nimg * (size_t)Rc * D * sizeof *d16);
    float *q = malloc(NQ * (size_t)Rq * D * sizeof *q);
    size_t *dgroup = malloc(nimg * sizeof *dgroup), qgroup[NQ];
    const float **imgs = malloc(nimg * sizeof *imgs);
    char (*doc_id)[64] = malloc(nimg * sizeof *doc_id);
    size_t k = 0;
    for (size_t i = 0; i < s->nimages; i++) {
        if (s->img_concept[i] >= NCONCEPTS) continue;
        imgs[k] = s->pixels + i * (size_t)S * S * 3;
        dgroup[k] = (size_t)s->img_concept[i];
        snprintf(doc_id[k], 64, "%s-%s", s->c[s->img_concept[i]].id, s->styles[s->img_style[i]]);
        k++;
    }
    ASSERT_OK(me_embedder_encode_items(e, ME_SIDE_DOC, imgs, NULL, (int)nimg, docs));
    me_f32_to_f16_n(d16, docs, nimg * (size_t)Rc * D);
    const char *labels[NQ];
    for (int i = 0; i < NQ; i++) {
        labels[i] = s->c[i].label;
        qgroup[i] = (size_t)i;
    }
    ASSERT_OK(me_embedder_encode(e, ME_SIDE_QUERY, labels, NULL, NQ, q));
    me_eval_opts_t eo;
    me_eval_defaults(&eo);
    eo.nbudgets = 1;
    eo.budgets[0] = (me_mmr_group_t){ 16, 64, 1 };
    me_eval_result_t offline;
    ASSERT_OK(me_eval_score(d16, dgroup, nimg, q, qgroup, NQ, Rq, Rc, D, &eo, &offline));

    /* Through the cluster: exact text searches of the same labels. */
    double mrr = 0;
    char thumbs_ok = 1;
    for (int i = 0; i < NQ; i++) {
        char *search[] = { bin, "--addr", c.coord.endpoint, "--json", "search", "--collection", "emoji", "--exact",
                           "-k", "10", (char *)labels[i], NULL };
        ASSERT_EQ(run_cli(search, dir, "search", &out, &errs), 0);
        char ids[10][64];
        int n = hit_ids(out, ids, 10, &thumbs_ok);
        ASSERT_EQ(n, 10);
        for (int r = 0; r < n; r++)
            if (!strncmp(ids[r], s->c[i].id, strlen(s->c[i].id)) && ids[r][strlen(s->c[i].id)] == '-') {
                mrr += 1.0 / (r + 1);
                break;
            }
        free(out);
        free(errs);
    }
    mrr /= NQ;
    fprintf(stderr, "    text -> image MRR@10 over %d labels: cluster %.4f, offline %.4f (chance %.4f)\n", NQ, mrr,
            offline.rows[0].mrr10, 3 * 2.93 / (double)nimg);
    /* Ties may break differently (by id vs by position): allow one query. */
    ASSERT_NEAR(mrr, offline.rows[0].mrr10, 1.0 / NQ + 1e-9);
    ASSERT_TRUE(thumbs_ok);

    /* The page's API on the coordinator's HTTP port: the same searches. */
    char *resp = NULL, url[600];
    ASSERT_EQ(me_test_http_get(c.coord.metrics_port, "/api/collections", &resp), 200);
    ASSERT_TRUE(strstr(resp, "\"name\":\"emoji\"") != NULL);
    free(resp);
    snprintf(url, sizeof url, "/api/search?collection=emoji&q=%s&budget=16x64&k=10", "grinning+face");
    ASSERT_EQ(me_test_http_get(c.coord.metrics_port, url, &resp), 200);
    me_json_doc_t *api;
    ASSERT_OK(me_json_parse(resp, strlen(resp), &api, NULL));
    const me_json_t *ah = me_json_get(me_json_root(api), "hits");
    ASSERT_EQ(me_json_len(ah), 10);
    ASSERT_TRUE(strncmp(me_json_str(me_json_get(me_json_get(me_json_at(ah, 0), "metadata"), "thumbnail")),
                        "data:image/png;base64,", 22) == 0);
    me_json_free(api);
    free(resp);
    uint8_t *qimg;
    size_t qlen;
    char qpath[2200];
    snprintf(qpath, sizeof qpath, "%s/%s/%s", cwd, DATA, s->img_path[0]);
    ASSERT_OK(me_image_read_file(qpath, &qimg, &qlen, err, sizeof err));
    ASSERT_EQ(me_test_http(c.coord.metrics_port, "POST", "/api/search?collection=emoji&budget=4x8&k=5", qimg, qlen,
                           "image/png", &resp), 200);
    ASSERT_TRUE(strstr(resp, "\"r_q\":4") != NULL && strstr(resp, "\"hits\":[") != NULL);
    free(resp);
    free(qimg);
    ASSERT_EQ(me_test_http(c.coord.metrics_port, "POST", "/api/search?collection=emoji", "not an image", 12,
                           "image/png", &resp), 400);
    ASSERT_TRUE(strstr(resp, "not a PNG or JPEG") != NULL);
    free(resp);
    ASSERT_EQ(me_test_http_get(c.coord.metrics_port, "/api/search?collection=nope&q=cat", &resp), 404);
    free(resp);
    ASSERT_EQ(me_test_http_get(c.coord.metrics_port, "/api/search?collection=emoji", &resp), 400);
    free(resp);
    ASSERT_EQ(me_test_http(c.coord.metrics_port, "POST", "/metrics", "x", 1, "text/plain", &resp), 405);
    free(resp);

    /* Image queries: each concept's first-style image finds its other
     * styles among the top 10 of 300 far above chance (2 of 300 per 10). */
    int found = 0, asked = 0;
    for (size_t i = 0; i < s->nimages && asked < NQ; i++) {
        if (s->img_concept[i] >= NQ || s->img_style[i] != 0) continue;
        char path[2200];
        snprintf(path, sizeof path, "%s/%s/%s", cwd, DATA, s->img_path[i]);
        char *search[] = { bin, "--addr", c.coord.endpoint, "--json", "search", "--collection", "emoji", "--exact",
                           "-k", "10", "--image", path, NULL };
        ASSERT_EQ(run_cli(search, dir, "isearch", &out, &errs), 0);
        char ids[10][64];
        int n = hit_ids(out, ids, 10, NULL);
        const char *cid = s->c[s->img_concept[i]].id;
        for (int r = 0; r < n; r++)
            if (!strncmp(ids[r], cid, strlen(cid)) && ids[r][strlen(cid)] == '-' &&
                strcmp(ids[r] + strlen(cid) + 1, s->styles[0]) != 0)
                found++;
        asked++;
        free(out);
        free(errs);
    }
    fprintf(stderr, "    image queries: %d of %d other-style images in their top 10 (chance %.2f)\n", found, 2 * asked,
            2.0 * asked * 10 / (double)nimg);
    /* The shipped model finds 3 of 24 (chance 0.8): weak, and held to at
     * least twice chance here (docs/model.md has its figures). */
    ASSERT_TRUE(found >= 2 * (2.0 * asked * 10 / (double)nimg));

    /* Bad lines: each reported by its number, the good one stored, nothing
     * lost; exit status 3 says some lines were skipped. */
    char *badi[] = { bin, "--addr", c.coord.endpoint, "ingest", bad, "--collection", "emoji", "--stream", stream, NULL };
    ASSERT_EQ(run_cli(badi, dir, "bad", &out, &errs), 3);
    ASSERT_TRUE(strstr(errs, "bad.jsonl:1:") != NULL && strstr(errs, "PNG") != NULL);
    ASSERT_TRUE(strstr(errs, "bad.jsonl:2:") != NULL && strstr(errs, "gone.png") != NULL);
    ASSERT_TRUE(strstr(errs, "bad.jsonl:3:") != NULL);
    ASSERT_TRUE(strstr(errs, "bad.jsonl:4:") == NULL);
    free(out);
    free(errs);
    ASSERT_OK(me_client_stats(cli, "emoji", &stats, &st));
    ASSERT_EQ(stats.collections[0].documents, nimg + 1);
    me_stats_free(&stats);

    /* Hostile Encodes at an encoder: each refused with its reason, and the
     * encoder still answers a good one. */
    me_client_t *ec = me_daemon_client(&enc[0]);
    ASSERT_TRUE(ec != NULL);
    static const uint8_t bomb[] = {  /* a PNG header declaring 60000 x 60000 */
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00,
        0xea, 0x60, 0x00, 0x00, 0xea, 0x60, 0x08, 0x06, 0x00, 0x00, 0x00, 0x80, 0xd2, 0x75, 0x42, 0x00, 0x00, 0x00,
        0x0b, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x60, 0x80, 0x01, 0x00, 0x00, 0x0a, 0x00, 0x01, 0x7f, 0x80,
        0x74, 0x5e, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82 };
    uint8_t *good;
    size_t good_len;
    ASSERT_OK(me_image_read_file(qpath_first(s, cwd), &good, &good_len, err, sizeof err));
    ProtobufCBinaryData one[2] = { { good_len, good }, { 11, (uint8_t *)"not a photo" } };
    ASSERT_EQ(encode_images(ec, one, 2, NULL, 0, &st), ME_CODE_INVALID_ARGUMENT);
    ASSERT_TRUE(strstr(st.message, "image 1") != NULL);
    ProtobufCBinaryData b1 = { sizeof bomb, (uint8_t *)bomb };
    ASSERT_EQ(encode_images(ec, &b1, 1, NULL, 0, &st), ME_CODE_RESOURCE_EXHAUSTED);
    ASSERT_TRUE(strstr(st.message, "60000 x 60000") != NULL);
    ProtobufCBinaryData trunc = { good_len / 2, good };
    ASSERT_EQ(encode_images(ec, &trunc, 1, NULL, 0, &st), ME_CODE_INVALID_ARGUMENT);
    char *two[2] = { "a", "b" };
    ASSERT_EQ(encode_images(ec, one, 1, two, 2, &st), ME_CODE_INVALID_ARGUMENT);
    ProtobufCBinaryData ok1 = { good_len, good };
    char *cap[1] = { "with a caption" };
    ASSERT_EQ(encode_images(ec, &ok1, 1, cap, 1, &st), ME_CODE_OK);
    free(good);
    me_client_close(ec);

    /* A corrupt image query is refused with the reason. */
    char *isbad[] = { bin, "--addr", c.coord.endpoint, "search", "--collection", "emoji", "--image", junk, NULL };
    ASSERT_EQ(run_cli(isbad, dir, "isbad", &out, &errs), 1);
    ASSERT_TRUE(strstr(errs, "PNG") != NULL);
    free(out);
    free(errs);

    free(docs); free(d16); free(q); free(dgroup); free(imgs); free(doc_id);
    me_embedder_free(e);
    me_imageset_free(s);
    me_client_close(cli);
    cluster_stop(&c);
    me_daemon_free(&enc[0]);
    me_daemon_free(&enc[1]);
    me_test_rmdir(dir);
    free(dir);
}
