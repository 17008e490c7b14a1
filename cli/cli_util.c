/* metaembed CLI: argument parsing, errors, connection, JSON and tables. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/error.h"
#include "common/validate.h"

const me_cfg_opt_t cli_global_opts[] = {
    { "addr", ME_CFG_STRING, offsetof(cli_global_t, addr), "", 0, 0, NULL,
      "coordinator or shard to talk to (else $METAEMBED_ADDR, else " CLI_DEFAULT_ADDR ")" },
    { "json", ME_CFG_BOOL, offsetof(cli_global_t, json), "false", 0, 1, NULL,
      "print one JSON object on stdout instead of text" },
    { "timeout", ME_CFG_INT, offsetof(cli_global_t, timeout), "30000", 1, 3600000, NULL,
      "per-request timeout in milliseconds" },
    { "curve-dir", ME_CFG_STRING, offsetof(cli_global_t, curve_dir), "", 0, 0, NULL,
      "CurveZMQ key directory of the cluster (else $METAEMBED_CURVE_DIR; empty = plain)" },
    { "curve-key", ME_CFG_STRING, offsetof(cli_global_t, curve_key), "client", 0, 0, NULL,
      "with --curve-dir: this client's key pair, NAME.key in that directory" },
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
        { "curve-dir", "DIR" }, { "curve-key", "NAME" },
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
        me_config_help_left(out, left, 28);
        fputs(o->help, out);
        if (o->def && *o->def && strcmp(o->def, "false") && strcmp(o->def, "-1"))
            fprintf(out, " [default: %s]", o->def);
        fputc('\n', out);
    }
}

void cli_usage(FILE *out, const cli_cmd_t *cmd) {
    fprintf(out, "usage: metaembed %s[--json] %s %s\n\n%s\n", cmd->local ? "" : "[--addr tcp://HOST:PORT] ",
            cmd->name, cmd->args, cmd->summary);
    if (cmd->opts && cmd->opts->name) {
        fprintf(out, "\noptions:\n");
        print_opts(out, cmd->opts);
    }
    fprintf(out, "\nglobal options (accepted before or after the command):\n");
    if (cmd->local) {
        /* No server: of the global options only --json applies. */
        for (const me_cfg_opt_t *o = cli_global_opts; o->name; o++)
            if (!strcmp(o->name, "json")) {
                me_cfg_opt_t one[2] = { *o, { NULL, 0, 0, NULL, 0, 0, NULL, NULL } };
                print_opts(out, one);
            }
    } else {
        print_opts(out, cli_global_opts);
    }
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

/* The message on stderr; with --json also one object on stdout, so a
 * script reading stdout sees the failure too:
 *   {"error": {"command": "search", "message": "...", "exit": 1}} */
static int report(const cli_t *c, int code, const char *suffix, const char *fmt, va_list ap) {
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    fprintf(stderr, "metaembed: %s%s%s%s\n", c && c->cmd ? c->cmd : "", c && c->cmd ? ": " : "", msg, suffix);
    if (c && c->g.json) {
        me_json_writer_t j;
        cli_json_begin(&j, stdout);
        me_json_obj_begin(&j, "error");
        me_json_put_str(&j, "command", c->cmd ? c->cmd : "");
        me_json_put_str(&j, "message", msg);
        me_json_put_int(&j, "exit", code);
        me_json_obj_end(&j);
        cli_json_end(&j);
    }
    return code;
}

int cli_error(const cli_t *c, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    report(c, code, "", fmt, ap);
    va_end(ap);
    return code;
}

int cli_usage_error(const cli_t *c, const char *fmt, ...) {
    char see[300];
    snprintf(see, sizeof see, " (see 'metaembed %s%s--help')", c && c->cmd ? c->cmd : "", c && c->cmd ? " " : "");
    va_list ap;
    va_start(ap, fmt);
    report(c, CLI_USAGE, see, fmt, ap);
    va_end(ap);
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

const char *cli_curve_dir(cli_t *c) {
    if (!c->g.curve_dir[0]) {
        const char *env = getenv("METAEMBED_CURVE_DIR");
        if (env && *env) snprintf(c->g.curve_dir, sizeof c->g.curve_dir, "%s", env);
    }
    return c->g.curve_dir;
}

me_client_t *cli_connect(cli_t *c) {
    if (!c->g.addr[0]) {
        const char *env = getenv("METAEMBED_ADDR");
        snprintf(c->g.addr, sizeof c->g.addr, "%s", env && *env ? env : CLI_DEFAULT_ADDR);
    }
    if (!strstr(c->g.addr, "://")) {
        /* "127.0.0.1:7700" is what people type: the transport is tcp. */
        char with[sizeof c->g.addr];
        snprintf(with, sizeof with, "tcp://%.*s", (int)sizeof with - 7, c->g.addr);
        memcpy(c->g.addr, with, sizeof with);
    }
    me_status_t st;
    /* Health answers at once from a live server: do not wait 30 s for a dead one. */
    int connect_ms = c->g.timeout < 5000 ? (int)c->g.timeout : 5000;
    c->client = me_client_connect_secure(c->g.addr, connect_ms, cli_curve_dir(c), c->g.curve_key, &st);
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
    return cli_error(c, CLI_FAIL, ME_NO_COLLECTION " at %s (see 'metaembed collection list'; "
                     "create it with 'metaembed collection create %s --dim D')", name, c->g.addr, name);
}

/* ---- JSON ---- */

int cli_filter_arg(const cli_t *c, const char *arg, char **text) {
    *text = NULL;
    if (!arg[0]) return CLI_OK;
    if (arg[0] != '@') {
        if (!(*text = strdup(arg))) return cli_error(c, CLI_FAIL, "out of memory");
        return CLI_OK;
    }
    FILE *f = fopen(arg + 1, "rb");
    if (!f) return cli_error(c, CLI_FAIL, "--filter %s: cannot read %s: %s", arg, arg + 1, strerror(errno));
    char *buf = malloc(ME_FILTER_TEXT_MAX + 2);
    size_t n = buf ? fread(buf, 1, ME_FILTER_TEXT_MAX + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (!buf) return cli_error(c, CLI_FAIL, "out of memory");
    if (bad || n > ME_FILTER_TEXT_MAX) {
        free(buf);
        return bad ? cli_error(c, CLI_FAIL, "--filter %s: cannot read %s", arg, arg + 1)
                   : cli_error(c, CLI_FAIL, "--filter %s: longer than %d bytes", arg, ME_FILTER_TEXT_MAX);
    }
    buf[n] = 0;
    if (strlen(buf) != n) { free(buf); return cli_error(c, CLI_FAIL, "--filter %s: the file holds a NUL byte", arg); }
    *text = buf;
    return CLI_OK;
}

void cli_json_begin(me_json_writer_t *j, FILE *f) {
    me_json_writer_init_file(j, f);
    me_json_obj_begin(j, NULL);
}

void cli_json_end(me_json_writer_t *j) {
    me_json_obj_end(j);
    me_json_write_bytes(j, "\n", 1);
    fflush(j->f);
}

void cli_json_meta(me_json_writer_t *j, const char *key, const void *data, size_t n) {
    if (!data || !n) { me_json_put_null(j, key); return; }
    /* Raw only when it cannot break the one-line output. */
    if (!memchr(data, '\n', n) && !memchr(data, '\r', n) && me_json_valid(data, n))
        me_json_put_raw(j, key, data, n);
    else
        me_json_put_strn(j, key, data, n);
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
