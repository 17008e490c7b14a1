/* Image-text sets: the emoji shape and the single-image shape load, with
 * their texts and styles; bad lines and bad images are errors naming the
 * line or the concept; training examples go both ways with same-subgroup
 * hard negatives. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/image.h"
#include "encoder/imageset.h"
#include "encoder/tokenizer.h"
#include "tests/harness.h"

/* A side x side PNG of one colour at dir/name. */
static void write_png(const char *dir, const char *name, uint8_t r, uint8_t g, uint8_t b) {
    uint8_t rgb[8 * 8 * 3];
    for (int i = 0; i < 64; i++) { rgb[i * 3] = r; rgb[i * 3 + 1] = g; rgb[i * 3 + 2] = b; }
    me_image_t im = { 8, 8, rgb };
    uint8_t *png;
    size_t len;
    char err[128], path[600];
    if (me_image_encode_png(&im, &png, &len, err, sizeof err) != 0) abort();
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    fwrite(png, 1, len, f);
    fclose(f);
    free(png);
}

static void write_text(const char *dir, const char *name, const char *text) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

TEST(imageset_loads_both_shapes_and_builds_both_directions) {
    char *dir = me_test_tmpdir("imageset");
    write_png(dir, "a1.png", 255, 0, 0);
    write_png(dir, "a2.png", 250, 10, 0);
    write_png(dir, "b1.png", 0, 0, 255);
    write_png(dir, "c1.png", 0, 255, 0);
    write_text(dir, "emoji.jsonl",
               "{\"id\": \"A\", \"split\": \"train\", \"label\": \"red thing\", \"tags\": [\"hot\", \"stop\"], "
               "\"subgroup\": \"g\", \"images\": {\"x\": \"a1.png\", \"y\": \"a2.png\"}}\n"
               "{\"id\": \"B\", \"split\": \"train\", \"label\": \"blue thing\", \"tags\": [], \"subgroup\": \"g\", "
               "\"images\": {\"x\": \"b1.png\"}}\n"
               "{\"id\": \"C\", \"split\": \"test\", \"text\": \"green thing\", \"image\": \"c1.png\"}\n");
    ASSERT_TRUE(me_imageset_is(dir));
    me_imageset_t *s;
    char err[512];
    ASSERT_OK(me_imageset_load(dir, 4, &s, err, sizeof err));
    ASSERT_EQ(s->n, 3);
    ASSERT_EQ(s->nimages, 4);
    ASSERT_EQ(s->nstyles, 3);  /* x, y, and "image" for the single-image line */
    ASSERT_STREQ(s->c[0].text, "red thing: hot, stop");
    ASSERT_STREQ(s->c[1].text, "blue thing");
    ASSERT_STREQ(s->c[2].label, "green thing");
    ASSERT_EQ(s->n_split[ME_SPLIT_TRAIN], 2);
    ASSERT_EQ(s->n_split[ME_SPLIT_TEST], 1);
    /* Pixels in [-1, 1]: the red image's first pixel is (1, -1, -1). */
    ASSERT_NEAR(s->pixels[0], 1.0, 1e-6);
    ASSERT_NEAR(s->pixels[1], -1.0, 1e-6);
    /* Training: 3 train images, each both ways; hard negatives stay in the
     * direction and the subgroup (A's style-x image ↔ B's). */
    const char *texts[] = { "red thing", "red thing: hot, stop", "blue thing" };
    size_t lens[] = { 9, 20, 10 };
    me_tok_t *tok;
    ASSERT_OK(me_tok_train(texts, lens, 3, 300, &tok, err, sizeof err));
    me_train_data_t d;
    void *bufs[ME_IMAGESET_TRAIN_BUFS];
    ASSERT_OK(me_imageset_train_data(s, tok, 8, 16, 7, &d, bufs));
    /* Per image: label → image, tags → image, image → text, image → the
     * concept's image in the next style. */
    ASSERT_EQ(d.n, 12);
    for (int e = 0; e < d.n; e++) {
        int k = e % 4;
        ASSERT_EQ(d.kind[e], k < 2 ? 0 : k - 1);
        if (k < 2) { ASSERT_TRUE(d.q_img[e] < 0 && d.d_img[e] >= 0 && d.q_len[e] > 0 && d.d_len[e] == 0); }
        else if (k == 2) { ASSERT_TRUE(d.q_img[e] >= 0 && d.d_img[e] < 0 && d.q_len[e] == 0 && d.d_len[e] > 0); }
        else { ASSERT_TRUE(d.q_img[e] >= 0 && d.d_img[e] >= 0 && d.q_len[e] == 0 && d.d_len[e] == 0); }
        if (d.hard[e] >= 0) ASSERT_EQ(d.kind[d.hard[e]], d.kind[e]);
    }
    ASSERT_EQ(d.hard[0], 8);   /* A/x's label → B/x's image */
    ASSERT_EQ(d.hard[1], 8);
    ASSERT_EQ(d.hard[2], 10);  /* A/x's image → B's text */
    ASSERT_EQ(d.hard[8], 0);
    ASSERT_EQ(d.hard[4], -1);  /* A/y: B has no style-y image */
    /* A/x → A/y across styles; B/x, alone in its concept, → itself. */
    ASSERT_EQ(d.d_img[3], s->c[0].img[1]);
    ASSERT_EQ(d.d_img[11], d.q_img[11]);
    /* The tag query differs from the label query (it is "hot stop",
     * "stop hot", "hot" or "stop"). */
    ASSERT_TRUE(d.q_len[1] > 0);
    for (int i = 0; i < ME_IMAGESET_TRAIN_BUFS; i++) free(bufs[i]);
    me_tok_free(tok);
    me_imageset_free(s);
    me_test_rmdir(dir);
    free(dir);
}

TEST(imageset_bad_lines_and_images_name_themselves) {
    char *dir = me_test_tmpdir("imageset-bad");
    char err[512], path[600];
    me_imageset_t *s;
    snprintf(path, sizeof path, "%s/set.jsonl", dir);
    write_png(dir, "ok.png", 1, 2, 3);
    write_text(dir, "set.jsonl", "{\"id\": \"a\", \"split\": \"train\", \"text\": \"t\", \"image\": \"ok.png\"}\n"
                                 "{\"id\": \"b\", \"split\": \"elsewhere\", \"text\": \"t\", \"image\": \"ok.png\"}\n");
    ASSERT_TRUE(me_imageset_is(path));
    ASSERT_EQ(me_imageset_load(path, 4, &s, err, sizeof err), ME_EINVAL);
    ASSERT_TRUE(strstr(err, "set.jsonl:2:") != NULL);
    write_text(dir, "set.jsonl", "{\"id\": \"a\", \"split\": \"train\", \"image\": \"ok.png\"}\n");
    ASSERT_EQ(me_imageset_load(path, 4, &s, err, sizeof err), ME_EINVAL);
    ASSERT_TRUE(strstr(err, "set.jsonl:1:") != NULL);
    /* A corrupt image and a missing one are errors naming their concept. */
    write_text(dir, "junk.png", "\x89PNG\r\n\x1a\n this is not really a png");
    write_text(dir, "set.jsonl", "{\"id\": \"a\", \"split\": \"train\", \"text\": \"t\", \"image\": \"ok.png\"}\n"
                                 "{\"id\": \"zz\", \"split\": \"train\", \"text\": \"t\", \"image\": \"junk.png\"}\n");
    ASSERT_TRUE(me_imageset_load(path, 4, &s, err, sizeof err) != 0);
    ASSERT_TRUE(strstr(err, "concept zz") != NULL);
    write_text(dir, "set.jsonl", "{\"id\": \"q\", \"split\": \"train\", \"text\": \"t\", \"image\": \"nope.png\"}\n");
    ASSERT_TRUE(me_imageset_load(path, 4, &s, err, sizeof err) != 0);
    ASSERT_TRUE(strstr(err, "nope.png") != NULL);
    /* A text-pair file is not an image set. */
    write_text(dir, "pairs.jsonl", "{\"id\": \"a\", \"query\": \"q\", \"text\": \"t\"}\n");
    snprintf(path, sizeof path, "%s/pairs.jsonl", dir);
    ASSERT_TRUE(!me_imageset_is(path));
    me_test_rmdir(dir);
    free(dir);
}
