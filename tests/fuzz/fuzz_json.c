/* libFuzzer: the JSON parser (each line, as JSON lines are read) and the
 * writer's round trip of whatever parsed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"

static void rewrite(me_json_writer_t *w, const me_json_t *v, const char *key, int depth) {
    if (depth > 300) return;
    switch (v->type) {
    case ME_JSON_NULL: me_json_put_null(w, key); break;
    case ME_JSON_TRUE: me_json_put_bool(w, key, 1); break;
    case ME_JSON_FALSE: me_json_put_bool(w, key, 0); break;
    case ME_JSON_NUMBER: me_json_put_raw(w, key, v->u.str, v->len); break;
    case ME_JSON_STRING: me_json_put_strn(w, key, v->u.str, v->len); break;
    case ME_JSON_ARRAY:
        me_json_arr_begin(w, key);
        for (size_t i = 0; i < v->len; i++) rewrite(w, &v->u.items[i], NULL, depth + 1);
        me_json_arr_end(w);
        break;
    case ME_JSON_OBJECT:
        me_json_obj_begin(w, key);
        for (size_t i = 0; i < v->len; i++) rewrite(w, &v->u.members[i].value, v->u.members[i].key, depth + 1);
        me_json_obj_end(w);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        me_json_doc_t *doc;
        if (me_json_parse(p, len, &doc, NULL) == 0) {
            me_json_writer_t w;
            me_json_writer_init_buf(&w);
            rewrite(&w, me_json_root(doc), NULL, 0);
            size_t n;
            char *out = me_json_writer_take(&w, &n);
            me_json_writer_free(&w);
            /* What the writer wrote must parse again. */
            if (out) {
                me_json_doc_t *again;
                if (me_json_parse(out, n, &again, NULL) != 0) abort();
                me_json_free(again);
            }
            free(out);
            me_json_free(doc);
        }
        p += len + 1;
    }
    return 0;
}
