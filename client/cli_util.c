/* metaembed CLI: argument parsing, errors, connection, JSON and tables. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "client/cli.h"

const me_cfg_opt_t cli_global_opts[] = {
    { "addr", ME_CFG_STRING, offsetof(cli_global_t, addr), "", 0, 0, NULL,
      "coordinator or shard to talk to (else $METAEMBED_ADDR, else " CLI_DEFAULT_ADDR ")" },
    { "json", ME_CFG_BOOL, offsetof(cli_global_t, json), "false", 0, 1, NULL,
      "print one JSON object on stdout instead of text" },
    { "timeout", ME_CFG_INT, offsetof(cli_global_t, timeout), "30000", 1, 3600000, NULL,
      "per-request timeout in milliseconds" },
    { NULL, 0, 0, NULL, 0, 0, NULL, NULL },
};

/* ---- parsing ---- */

static const me_cfg_opt_t *find_opt(const me_cfg_opt_t *opts, const char *name, size_t len) {
    for (const me_cfg_opt_t *o = opts; o && o->name; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0) return o;
    return NULL;
}

static const char *metavar(const me_cfg_opt_t *o) {
    static const struct { const char *name, *var; } vars[] = {
        { "addr", "tcp://HOST:PORT" }, { "timeout", "MS" }, { "collection", "NAME" },
        { "vectors", "FILE.npy" }, { "ids", "FILE" }, { "meta", "FILE.jsonl" }, { "budget", "RQ,RC" },
        { "dim", "D" }, { "row", "I" },
    };
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (!strcmp(o->name, vars[i].name)) return vars[i].var;
    switch (o->type) {
    case ME_CFG_BOOL: return "";
    case ME_CFG_ENUM: return o->choices;
    case ME_CFG_STRING: return "VALUE";
    default: return "N";
    }
}

static void print_opts(FILE *out, const me_cfg_opt_t *opts) {
    for (const me_cfg_opt_t *o = opts; o && o->name; o++) {
        char left[96];
        const char *var = metavar(o);
        snprintf(left, sizeof left, "%s%s%s%s", strlen(o->name) == 1 ? "-" : "--", o->name, *var ? " " : "", var);
        fprintf(out, "  %-28s %s", left, o->help);
        if (o->def && *o->def && strcmp(o->def, "false") && strcmp(o->def, "-1"))
            fprintf(out, " [default: %s]", o->def);
        fputc('\n', out);
    }
}

void cli_usage(FILE *out, const cli_cmd_t *cmd) {
    fprintf(out, "usage: metaembed [--addr tcp://HOST:PORT] [--json] %s %s\n\n%s\n", cmd->name, cmd->args,
            cmd->summary);
    if (cmd->opts && cmd->opts->name) {
        fprintf(out, "\noptions:\n");
        print_opts(out, cmd->opts);
    }
    fprintf(out, "\nglobal options (accepted before or after the command):\n");
    print_opts(out, cli_global_opts);
    fprintf(out, "  %-28s %s\n", "-h, --help", "show this help and exit");
}

int cli_parse(cli_t *c, const cli_cmd_t *cmd, void *target, int argc, char **argv, char **pos, int *npos) {
    int only_pos = 0, n = 0;
    char err[600];
    if (npos) *npos = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && !strcmp(a, "--")) { only_pos = 1; continue; }
        if (!only_pos && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
            cli_usage(stdout, cmd);
            return -1;
        }
        if (only_pos || a[0] != '-' || a[1] == 0) {
            if (!pos || n >= cmd->max_pos) return cli_usage_error(c, "unexpected argument '%s'", a);
            pos[n++] = argv[i];
            if (npos) *npos = n;
            continue;
        }
        const char *name, *eq = NULL;
        size_t len;
        if (a[1] == '-') {
            name = a + 2;
            eq = strchr(name, '=');
            len = eq ? (size_t)(eq - name) : strlen(name);
        } else {
            name = a + 1;   /* short options are one letter: -k */
            len = strlen(name);
            if (len != 1) return cli_usage_error(c, "unknown option '%s'", a);
        }
        const me_cfg_opt_t *table = cli_global_opts, *o = find_opt(table, name, len);
        void *tgt = &c->g;
        if (!o) { table = cmd->opts; o = find_opt(table, name, len); tgt = target; }
        if (!o && !eq && len > 3 && !strncmp(name, "no-", 3)) {
            table = cli_global_opts, o = find_opt(table, name + 3, len - 3), tgt = &c->g;
            if (!o) { table = cmd->opts; o = find_opt(table, name + 3, len - 3); tgt = target; }
            if (o && o->type == ME_CFG_BOOL) { *(int *)((char *)tgt + o->offset) = 0; continue; }
            o = NULL;
        }
        if (!o) return cli_usage_error(c, "unknown option '%.*s'", (int)(name - a + len), a);
        const char *value;
        if (eq) value = eq + 1;
        else if (o->type == ME_CFG_BOOL) value = "true";
        else if (i + 1 < argc) value = argv[++i];
        else return cli_usage_error(c, "%s%s needs a value", strlen(o->name) == 1 ? "-" : "--", o->name);
        if (me_config_set(table, tgt, o->name, value, err, sizeof err) != 0) {
            /* config.c names every option "--x"; short ones are typed "-k". */
            const char *msg = strlen(o->name) == 1 && !strncmp(err, "--", 2) ? err + 1 : err;
            return cli_usage_error(c, "%s", msg);
        }
    }
    return CLI_OK;
}

/* ---- errors and connection ---- */

static void vreport(const cli_t *c, const char *fmt, va_list ap) {
    fprintf(stderr, "metaembed: ");
    if (c && c->cmd) fprintf(stderr, "%s: ", c->cmd);
    vfprintf(stderr, fmt, ap);
}

int cli_error(const cli_t *c, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vreport(c, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

int cli_usage_error(const cli_t *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vreport(c, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see 'metaembed %s%s--help')\n", c && c->cmd ? c->cmd : "", c && c->cmd ? " " : "");
    return CLI_USAGE;
}

int cli_status_error(const cli_t *c, const me_status_t *st, const char *what) {
    const char *hint = "";
    /* Replies from the server start with the code's name; the library's own
     * transport failures do not, and only those mean the server is absent. */
    size_t nl = strlen(me_code_name(st->code));
    int from_server = !strncmp(st->message, me_code_name(st->code), nl) && st->message[nl] == ':';
    if (st->code == ME_CODE_UNAVAILABLE && !from_server)
        hint = "; is a metaembed coordinator or shard running there?";
    else if (st->code == ME_CODE_DEADLINE_EXCEEDED) hint = "; the server may be overloaded (raise --timeout MS)";
    else if (st->code == ME_CODE_RESOURCE_EXHAUSTED) hint = "; send less per request (e.g. a smaller --batch)";
    return cli_error(c, CLI_FAIL, "%s: %s%s", what, st->message, hint);
}

me_client_t *cli_connect(cli_t *c) {
    if (!c->g.addr[0]) {
        const char *env = getenv("METAEMBED_ADDR");
        snprintf(c->g.addr, sizeof c->g.addr, "%s", env && *env ? env : CLI_DEFAULT_ADDR);
    }
    me_status_t st;
    /* Health answers at once from a live server: do not wait 30 s for a dead one. */
    int connect_ms = c->g.timeout < 5000 ? (int)c->g.timeout : 5000;
    c->client = me_client_connect(c->g.addr, connect_ms, &st);
    if (!c->client) {
        if (st.code == ME_CODE_INVALID_ARGUMENT)
            cli_error(c, CLI_FAIL, "%s (set --addr or METAEMBED_ADDR)", st.message);
        else
            cli_error(c, CLI_FAIL, "cannot reach %s: %s; is a metaembed coordinator or shard running there? "
                      "(set --addr or METAEMBED_ADDR)", c->g.addr, st.message);
        return NULL;
    }
    me_client_set_timeout(c->client, (int)c->g.timeout);
    return c->client;
}

int cli_find_collection(cli_t *c, const char *name, me_collection_info_t *out) {
    me_collection_info_t *list = NULL;
    size_t n = 0;
    me_status_t st;
    if (me_client_list_collections(c->client, &list, &n, &st) != 0)
        return cli_status_error(c, &st, "cannot list collections");
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(list[i].name, name)) {
            *out = list[i];
            free(list);
            return CLI_OK;
        }
    }
    free(list);
    return cli_error(c, CLI_FAIL, "collection '%s' does not exist at %s (see 'metaembed collection list'; "
                     "create it with 'metaembed collection create %s --dim D')", name, c->g.addr, name);
}

/* ---- JSON ---- */

/* Length of the valid UTF-8 sequence at p (1..4), or 0. */
static size_t utf8_len(const unsigned char *p, const unsigned char *e) {
    unsigned char b = p[0];
    size_t n;
    unsigned min;
    if (b < 0x80) return 1;
    if (b >= 0xc2 && b <= 0xdf) { n = 2; min = 0x80; }
    else if (b >= 0xe0 && b <= 0xef) { n = 3; min = 0x800; }
    else if (b >= 0xf0 && b <= 0xf4) { n = 4; min = 0x10000; }
    else return 0;
    if ((size_t)(e - p) < n) return 0;
    unsigned cp = b & (0x7f >> n);
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return n;
}

void cli_json_string(FILE *f, const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s, *e = p + n;
    fputc('"', f);
    while (p < e) {
        unsigned char ch = *p;
        if (ch == '"' || ch == '\\') { fputc('\\', f); fputc(ch, f); p++; }
        else if (ch == '\n') { fputs("\\n", f); p++; }
        else if (ch == '\r') { fputs("\\r", f); p++; }
        else if (ch == '\t') { fputs("\\t", f); p++; }
        else if (ch < 0x20) { fprintf(f, "\\u%04x", ch); p++; }
        else {
            size_t len = utf8_len(p, e);
            if (len == 0) { fputs("\\ufffd", f); p++; }  /* not UTF-8: keep the output valid JSON */
            else { fwrite(p, 1, len, f); p += len; }
        }
    }
    fputc('"', f);
}

typedef struct {
    const unsigned char *p, *e;
    int depth;
} jv_t;

static void jv_ws(jv_t *v) {
    while (v->p < v->e && (*v->p == ' ' || *v->p == '\t' || *v->p == '\n' || *v->p == '\r')) v->p++;
}

static int jv_lit(jv_t *v, const char *w) {
    size_t n = strlen(w);
    if ((size_t)(v->e - v->p) < n || memcmp(v->p, w, n) != 0) return 0;
    v->p += n;
    return 1;
}

static int jv_digits(jv_t *v) {
    const unsigned char *s = v->p;
    while (v->p < v->e && *v->p >= '0' && *v->p <= '9') v->p++;
    return v->p > s;
}

static int jv_string(jv_t *v) {
    v->p++;  /* opening quote */
    while (v->p < v->e) {
        unsigned char ch = *v->p;
        if (ch == '"') { v->p++; return 1; }
        if (ch < 0x20) return 0;
        if (ch == '\\') {
            if (++v->p >= v->e) return 0;
            if (*v->p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (v->p + i >= v->e || !strchr("0123456789abcdefABCDEF", v->p[i]) || !v->p[i]) return 0;
                v->p += 5;
            } else if (strchr("\"\\/bfnrt", *v->p) && *v->p) v->p++;
            else return 0;
            continue;
        }
        size_t len = utf8_len(v->p, v->e);
        if (!len) return 0;
        v->p += len;
    }
    return 0;
}

static int jv_value(jv_t *v) {
    jv_ws(v);
    if (v->p >= v->e) return 0;
    switch (*v->p) {
    case '{':
    case '[': {
        char close = *v->p == '{' ? '}' : ']';
        int obj = close == '}';
        if (++v->depth > 128) return 0;
        v->p++;
        jv_ws(v);
        if (v->p < v->e && *v->p == close) { v->p++; v->depth--; return 1; }
        for (;;) {
            if (obj) {
                jv_ws(v);
                if (v->p >= v->e || *v->p != '"' || !jv_string(v)) return 0;
                jv_ws(v);
                if (v->p >= v->e || *v->p++ != ':') return 0;
            }
            if (!jv_value(v)) return 0;
            jv_ws(v);
            if (v->p >= v->e) return 0;
            if (*v->p == ',') { v->p++; continue; }
            if (*v->p == close) { v->p++; v->depth--; return 1; }
            return 0;
        }
    }
    case '"': return jv_string(v);
    case 't': return jv_lit(v, "true");
    case 'f': return jv_lit(v, "false");
    case 'n': return jv_lit(v, "null");
    default:
        if (*v->p == '-') v->p++;
        if (v->p < v->e && *v->p == '0') v->p++;
        else if (!jv_digits(v)) return 0;
        if (v->p < v->e && *v->p == '.') { v->p++; if (!jv_digits(v)) return 0; }
        if (v->p < v->e && (*v->p == 'e' || *v->p == 'E')) {
            v->p++;
            if (v->p < v->e && (*v->p == '+' || *v->p == '-')) v->p++;
            if (!jv_digits(v)) return 0;
        }
        return 1;
    }
}

int cli_json_valid(const char *s, size_t n) {
    jv_t v = { (const unsigned char *)s, (const unsigned char *)s + n, 0 };
    if (!jv_value(&v)) return 0;
    jv_ws(&v);
    return v.p == v.e;
}

static void jw_sep(cli_json_t *j, const char *key) {
    if (!j->first[j->depth]) fputc(',', j->f);
    j->first[j->depth] = 0;
    if (key) {
        cli_json_string(j->f, key, strlen(key));
        fputc(':', j->f);
    }
}

void jw_begin(cli_json_t *j, FILE *f) {
    memset(j, 0, sizeof *j);
    j->f = f;
    j->first[0] = 1;
    fputc('{', f);
}

void jw_end(cli_json_t *j) {
    fputs("}\n", j->f);
    fflush(j->f);
}

static void jw_open(cli_json_t *j, const char *key, char ch) {
    jw_sep(j, key);
    fputc(ch, j->f);
    if (j->depth + 1 < (int)sizeof j->first) j->depth++;
    j->first[j->depth] = 1;
}

void jw_obj(cli_json_t *j, const char *key) { jw_open(j, key, '{'); }
void jw_arr(cli_json_t *j, const char *key) { jw_open(j, key, '['); }
void jw_obj_end(cli_json_t *j) { fputc('}', j->f); if (j->depth) j->depth--; }
void jw_arr_end(cli_json_t *j) { fputc(']', j->f); if (j->depth) j->depth--; }

void jw_str(cli_json_t *j, const char *key, const char *s) { jw_strn(j, key, s, strlen(s)); }

void jw_strn(cli_json_t *j, const char *key, const char *s, size_t n) {
    jw_sep(j, key);
    cli_json_string(j->f, s, n);
}

void jw_int(cli_json_t *j, const char *key, long long v) { jw_sep(j, key); fprintf(j->f, "%lld", v); }
void jw_u64(cli_json_t *j, const char *key, uint64_t v) { jw_sep(j, key); fprintf(j->f, "%llu", (unsigned long long)v); }
void jw_bool(cli_json_t *j, const char *key, int v) { jw_sep(j, key); fputs(v ? "true" : "false", j->f); }
void jw_null(cli_json_t *j, const char *key) { jw_sep(j, key); fputs("null", j->f); }

void jw_num(cli_json_t *j, const char *key, double v) {
    jw_sep(j, key);
    if (isfinite(v)) fprintf(j->f, "%.9g", v);
    else fputs("null", j->f);
}

void jw_meta(cli_json_t *j, const char *key, const void *data, size_t n) {
    if (!data || !n) { jw_null(j, key); return; }
    /* Raw only when it cannot break the one-line output. */
    if (!memchr(data, '\n', n) && !memchr(data, '\r', n) && cli_json_valid(data, n)) {
        jw_sep(j, key);
        fwrite(data, 1, n, j->f);
    } else {
        jw_strn(j, key, data, n);
    }
}

/* ---- tables ---- */

void tbl_init(cli_table_t *t, int ncols, const char *const *header, unsigned right) {
    memset(t, 0, sizeof *t);
    t->ncols = ncols;
    t->right = right;
    tbl_row(t, header);
}

void tbl_row(cli_table_t *t, const char *const *cells) {
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        char **nc = realloc(t->cells, cap * (size_t)t->ncols * sizeof *nc);
        if (!nc) return;
        t->cells = nc;
        t->cap = cap;
    }
    for (int i = 0; i < t->ncols; i++) t->cells[t->nrows * (size_t)t->ncols + (size_t)i] = strdup(cells[i] ? cells[i] : "");
    t->nrows++;
}

void tbl_print(const cli_table_t *t, FILE *out, const char *indent) {
    size_t w[32] = { 0 };
    int nc = t->ncols < 32 ? t->ncols : 32;
    for (size_t r = 0; r < t->nrows; r++)
        for (int i = 0; i < nc; i++) {
            const char *s = t->cells[r * (size_t)t->ncols + (size_t)i];
            size_t len = s ? strlen(s) : 0;
            if (len > w[i]) w[i] = len;
        }
    for (size_t r = 0; r < t->nrows; r++) {
        fputs(indent ? indent : "", out);
        for (int i = 0; i < nc; i++) {
            const char *s = t->cells[r * (size_t)t->ncols + (size_t)i];
            if (!s) s = "";
            int last = i == nc - 1;
            if (t->right >> i & 1) fprintf(out, "%*s", (int)w[i], s);
            else if (last) fputs(s, out);
            else fprintf(out, "%-*s", (int)w[i], s);
            if (!last) fputs("  ", out);
        }
        fputc('\n', out);
    }
}

void tbl_free(cli_table_t *t) {
    for (size_t i = 0; i < t->nrows * (size_t)t->ncols; i++) free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof *t);
}

const char *cli_bytes(char *buf, size_t cap, uint64_t n) {
    static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    double v = (double)n;
    int u = 0;
    while (v >= 1024 && u < 4) { v /= 1024; u++; }
    if (u == 0) snprintf(buf, cap, "%llu B", (unsigned long long)n);
    else snprintf(buf, cap, "%.1f %s", v, units[u]);
    return buf;
}
