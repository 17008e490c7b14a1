/* Internals of the `metaembed` command-line tool, shared by client/cli*.c:
 * argument parsing over common/config.h option tables, error reporting,
 * JSON output over common/json.h and aligned text tables. */
#ifndef ME_CLIENT_CLI_H
#define ME_CLIENT_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "include/metaembed.h"
#include "common/config.h"
#include "common/json.h"

#define CLI_DEFAULT_ADDR "tcp://127.0.0.1:7700"

/* Exit codes. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

typedef struct {
    char addr[ME_CFG_STR_MAX];
    int json;
    long long timeout;      /* ms, per request */
    char curve_dir[ME_CFG_STR_MAX];  /* CurveZMQ keys; "" = $METAEMBED_CURVE_DIR or plain */
    char curve_key[ME_CFG_STR_MAX];  /* this client's key pair name in curve_dir */
} cli_global_t;

typedef struct {
    cli_global_t g;
    const char *cmd;        /* "search", "collection create", ... for messages */
    me_client_t *client;
} cli_t;

/* One command's description: drives parsing and --help. */
typedef struct {
    const char *name;       /* "collection create" */
    const char *args;       /* "NAME --dim D [options]" */
    const char *summary;    /* one paragraph */
    const me_cfg_opt_t *opts;  /* may be NULL */
    int max_pos;            /* positional arguments accepted */
    int local;              /* runs here only: --help leaves out the server options */
} cli_cmd_t;

extern const me_cfg_opt_t cli_global_opts[];

/* Parses argv[0..argc) (the words after the command name) into target
 * (options of cmd) and c->g (global options, accepted anywhere).
 * Returns CLI_OK, CLI_USAGE (message printed), or -1 when --help was
 * printed (the command should exit 0). */
int cli_parse(cli_t *c, const cli_cmd_t *cmd, void *target, int argc, char **argv, char **pos, int *npos);
void cli_usage(FILE *out, const cli_cmd_t *cmd);

/* "metaembed: <cmd>: <message>" on stderr; returns code. */
int cli_error(const cli_t *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A usage error: the message and a pointer to --help; returns CLI_USAGE. */
int cli_usage_error(const cli_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Reports a failed call with a hint for the common codes; returns CLI_FAIL. */
int cli_status_error(const cli_t *c, const me_status_t *st, const char *what);
/* --curve-dir, else $METAEMBED_CURVE_DIR, else "" (plain). */
const char *cli_curve_dir(cli_t *c);
/* Connects to c->g.addr (after --addr / METAEMBED_ADDR / default) or
 * reports why not; NULL on failure. */
me_client_t *cli_connect(cli_t *c);
/* The collection's info, or reports (NOT_FOUND with a hint) and fails. */
int cli_find_collection(cli_t *c, const char *name, me_collection_info_t *out);

/* A --filter value: the expression or JSON itself, or @FILE for one read
 * from a file. *text: the filter (malloc'd; NULL when arg is empty), or
 * an error reported. */
int cli_filter_arg(const cli_t *c, const char *arg, char **text);
#define CLI_FILTER_HELP "only documents it matches: 'section=games AND year>=2020', JSON, or @FILE"

/* ---- JSON output (common/json.h) ---- */
/* Starts the one JSON object a --json command prints on f. */
void cli_json_begin(me_json_writer_t *j, FILE *f);
/* Closes it with '}' and a newline, and flushes. */
void cli_json_end(me_json_writer_t *j);
/* Metadata bytes: embedded as JSON when they are valid JSON on one line,
 * else as a string. */
void cli_json_meta(me_json_writer_t *j, const char *key, const void *data, size_t n);

/* ---- text tables, columns aligned ---- */
typedef struct {
    int ncols;
    char **cells;           /* rows × ncols, row 0 the header */
    size_t nrows, cap;
    unsigned right;         /* bit i: right-align column i */
} cli_table_t;

void tbl_init(cli_table_t *t, int ncols, const char *const *header, unsigned right);
/* One row of ncols cells, each formatted by the caller. */
void tbl_row(cli_table_t *t, const char *const *cells);
void tbl_print(const cli_table_t *t, FILE *out, const char *indent);
void tbl_free(cli_table_t *t);
/* "12.3 MiB" style sizes. */
const char *cli_bytes(char *buf, size_t cap, uint64_t n);

/* Commands. */
int cli_cmd_collection(cli_t *c, int argc, char **argv);
int cli_cmd_ingest(cli_t *c, int argc, char **argv);
int cli_cmd_search(cli_t *c, int argc, char **argv);
int cli_cmd_ids(cli_t *c, int argc, char **argv);
int cli_cmd_train(cli_t *c, int argc, char **argv);
/* Text ingest through the encoders' stream (cli/cli_ingest_text.c). */
typedef struct {
    const char *stream;   /* endpoint bound for the encoders' --ingest-from */
    int batch;            /* documents per stream batch */
    int resend_s;         /* a batch unacknowledged this long goes out again */
    int wait_s;           /* give up when no encoder connects, or none acknowledges, this long */
    int force;            /* re-encode ids already stored */
    int strict;           /* a malformed line stops the run before anything is sent */
} cli_ingest_text_opts_t;
/* Exit status of an ingest that stored every good line but skipped malformed ones. */
#define CLI_PARTIAL 3
int cli_ingest_text(cli_t *c, const char *collection, const char *path, const cli_ingest_text_opts_t *o);
int cli_cmd_encode(cli_t *c, int argc, char **argv);
int cli_cmd_eval(cli_t *c, int argc, char **argv);
int cli_cmd_keygen(cli_t *c, int argc, char **argv);
int cli_cmd_get(cli_t *c, int argc, char **argv);
int cli_cmd_delete(cli_t *c, int argc, char **argv);
int cli_cmd_status(cli_t *c, int argc, char **argv);
int cli_cmd_count(cli_t *c, int argc, char **argv);
int cli_cmd_snapshot(cli_t *c, int argc, char **argv);
int cli_cmd_reshard(cli_t *c, int argc, char **argv);

#endif
