/* JSON lines, plain or gzip-compressed (zlib reads both), one object per
 * line; blank lines are skipped. Each me_jsonl_next parses one line and
 * hands out its object until the next call. */
#ifndef ME_JSONL_H
#define ME_JSONL_H

#include <stddef.h>

#include "common/json.h"

typedef struct me_jsonl me_jsonl_t;

int me_jsonl_open(const char *path, me_jsonl_t **out, char *err, size_t errcap);
/* 1 and the line's object (and its 1-based line number), 0 at the end, or a
 * negative ME_E* code with "path:LINE: problem" in err for a line that is
 * not a JSON object. The reader stays usable after a bad line. */
int me_jsonl_next(me_jsonl_t *r, const me_json_t **obj, long *line, char *err, size_t errcap);
void me_jsonl_close(me_jsonl_t *r);

#endif
