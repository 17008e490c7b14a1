/* Configuration as one declarative table (name, type, bounds, default,
 * field, help) that drives the command line, the config file and --help.
 *
 * Command line: --name=value or --name value; booleans also as --name /
 * --no-name. `--config FILE` reads "name value" or "name = value" lines
 * (# comments); later sources win: defaults < file < command line.
 * Sizes accept K/M/G suffixes (powers of 1024). */
#ifndef ME_CONFIG_H
#define ME_CONFIG_H

#include <stddef.h>
#include <stdio.h>

typedef enum {
    ME_CFG_STRING,  /* char[ME_CFG_STR_MAX] */
    ME_CFG_INT,     /* long long, within [min, max] */
    ME_CFG_SIZE,    /* long long bytes, K/M/G suffixes, within [min, max] */
    ME_CFG_BOOL,    /* int 0/1 */
    ME_CFG_ENUM,    /* char[ME_CFG_STR_MAX], one of `choices` ("a|b|c") */
} me_cfg_type_t;

#define ME_CFG_STR_MAX 512

typedef struct {
    const char *name;
    me_cfg_type_t type;
    size_t offset;        /* offsetof(your struct, field) */
    const char *def;      /* default, as text */
    long long min, max;   /* INT/SIZE bounds */
    const char *choices;  /* ENUM */
    const char *help;
} me_cfg_opt_t;

/* The flags every daemon has, with one rule each (type: the daemon's
 * options struct, with fields log_level, default_deadline_ms, max_message). */
#define ME_CFG_LOG_LEVEL_OPTION(type) \
    { "log-level", ME_CFG_ENUM, offsetof(type, log_level), "info", 0, 0, "debug|info|warn|error", "log verbosity" }
#define ME_CFG_DEADLINE_OPTION(type, def)                                                     \
    { "deadline-ms", ME_CFG_INT, offsetof(type, default_deadline_ms), def, 1, 3600000, NULL, \
      "deadline for requests that carry none" }
/* Admission (common/server.c): requests that may wait per lane. */
#define ME_CFG_MAX_QUEUE_OPTION(type)                                                        \
    { "max-queue", ME_CFG_INT, offsetof(type, max_queue), "0", 0, 1000000, NULL,            \
      "requests that may wait for a worker per lane (health, lookups, searches and writes) before more " \
      "are refused with RESOURCE_EXHAUSTED; 0 = 64 per worker" }
#define ME_CFG_MAX_MESSAGE_OPTION(type, def)                                            \
    { "max-message", ME_CFG_SIZE, offsetof(type, max_message), def, 1024, 1LL << 31, NULL, \
      "largest request accepted; larger ones get RESOURCE_EXHAUSTED" }

/* k: the shard's --max-k (default 10000) bounds a search; no setting may
 * go above the ceiling, which is also all the client side accepts (the
 * shard's refusal names its own limit). */
#define ME_CFG_MAX_K_CEILING 10000000
#define ME_CFG_MAX_K_OPTION(type)                                                                   \
    { "max-k", ME_CFG_INT, offsetof(type, max_k), "10000", 1, ME_CFG_MAX_K_CEILING, NULL,           \
      "largest k a search may ask for" }

/* Sets every default. */
int me_config_defaults(const me_cfg_opt_t *opts, void *target, char *err, size_t errcap);
/* Parses argv (skipping argv[0]). Returns 0, ME_EINVAL with a message in
 * err, or 1 when --help was asked (usage already printed to stdout).
 * Non-option arguments are an error unless positional != NULL, in which
 * case they are collected there (up to max_positional). */
int me_config_parse(const me_cfg_opt_t *opts, void *target, int argc, char **argv,
                    const char *prog, const char *summary,
                    char **positional, int max_positional, int *npositional,
                    char *err, size_t errcap);
int me_config_load_file(const me_cfg_opt_t *opts, void *target, const char *path,
                        char *err, size_t errcap);
int me_config_set(const me_cfg_opt_t *opts, void *target, const char *name,
                  const char *value, char *err, size_t errcap);
void me_config_usage(FILE *out, const me_cfg_opt_t *opts, const char *prog, const char *summary);
/* The start of one help line: "  LEFT" padded to column `col`, or, when
 * LEFT is wider, LEFT alone on its line and the text starting below at
 * that column, so descriptions stay aligned. The caller prints the text. */
void me_config_help_left(FILE *out, const char *left, int col);
/* "123", "64K", "1.5G" → bytes. */
int me_parse_size(const char *s, long long *out);

#endif
