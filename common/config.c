#include "common/config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ctype.h>

#include "common/error.h"

static const me_cfg_opt_t *find_opt(const me_cfg_opt_t *opts, const char *name, size_t len) {
    for (const me_cfg_opt_t *o = opts; o->name; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0) return o;
    return NULL;
}

int me_parse_size(const char *s, long long *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || v < 0) return ME_EINVAL;
    double mult = 1;
    switch (toupper((unsigned char)*end)) {
    case 'K': mult = 1024.0; end++; break;
    case 'M': mult = 1024.0 * 1024; end++; break;
    case 'G': mult = 1024.0 * 1024 * 1024; end++; break;
    default: break;
    }
    if (toupper((unsigned char)*end) == 'B' || toupper((unsigned char)*end) == 'I') end++;
    if (toupper((unsigned char)*end) == 'B') end++;
    if (*end) return ME_EINVAL;
    v *= mult;
    if (v > 9e18) return ME_EINVAL;
    *out = (long long)v;
    return 0;
}

static int set_opt(const me_cfg_opt_t *o, void *target, const char *value, char *err, size_t errcap) {
    char *field = (char *)target + o->offset;
    switch (o->type) {
    case ME_CFG_STRING:
        if (strlen(value) >= ME_CFG_STR_MAX) {
            snprintf(err, errcap, "--%s: value longer than %d bytes", o->name, ME_CFG_STR_MAX - 1);
            return ME_EINVAL;
        }
        strcpy(field, value);
        return 0;
    case ME_CFG_ENUM: {
        size_t n = strlen(value);
        const char *c = o->choices;
        while (c && *c) {
            const char *bar = strchr(c, '|');
            size_t len = bar ? (size_t)(bar - c) : strlen(c);
            if (len == n && strncmp(c, value, n) == 0) {
                strcpy(field, value);
                return 0;
            }
            c = bar ? bar + 1 : NULL;
        }
        snprintf(err, errcap, "--%s: '%s' is not one of %s", o->name, value, o->choices);
        return ME_EINVAL;
    }
    case ME_CFG_INT:
    case ME_CFG_SIZE: {
        long long v;
        if (o->type == ME_CFG_SIZE) {
            if (me_parse_size(value, &v) != 0) {
                snprintf(err, errcap, "--%s: '%s' is not a size (e.g. 512, 64K, 16M, 1G)", o->name, value);
                return ME_EINVAL;
            }
        } else {
            char *end;
            errno = 0;
            v = strtoll(value, &end, 10);
            if (end == value || *end || errno) {
                snprintf(err, errcap, "--%s: '%s' is not an integer", o->name, value);
                return ME_EINVAL;
            }
        }
        if (v < o->min || v > o->max) {
            snprintf(err, errcap, "--%s: %lld is out of range [%lld, %lld]", o->name, v, o->min, o->max);
            return ME_EINVAL;
        }
        *(long long *)field = v;
        return 0;
    }
    case ME_CFG_BOOL:
        if (!strcmp(value, "1") || !strcasecmp(value, "true") || !strcasecmp(value, "yes") || !strcasecmp(value, "on"))
            *(int *)field = 1;
        else if (!strcmp(value, "0") || !strcasecmp(value, "false") || !strcasecmp(value, "no") || !strcasecmp(value, "off"))
            *(int *)field = 0;
        else {
            snprintf(err, errcap, "--%s: '%s' is not a boolean (true/false)", o->name, value);
            return ME_EINVAL;
        }
        return 0;
    }
    return ME_EINVAL;
}

int me_config_defaults(const me_cfg_opt_t *opts, void *target, char *err, size_t errcap) {
    for (const me_cfg_opt_t *o = opts; o->name; o++) {
        /* A number without a default (a required one) starts at 0, and
         * --help shows no "[default: 0]" for it. */
        const char *def = o->def && *o->def ? o->def
                          : o->type == ME_CFG_INT || o->type == ME_CFG_SIZE ? "0" : "";
        int rc = set_opt(o, target, def, err, errcap);
        if (rc) return rc;
    }
    return 0;
}

int me_config_set(const me_cfg_opt_t *opts, void *target, const char *name,
                  const char *value, char *err, size_t errcap) {
    const me_cfg_opt_t *o = find_opt(opts, name, strlen(name));
    if (!o) {
        snprintf(err, errcap, "unknown option '%s' (see --help)", name);
        return ME_EINVAL;
    }
    return set_opt(o, target, value, err, errcap);
}

int me_config_load_file(const me_cfg_opt_t *opts, void *target, const char *path,
                        char *err, size_t errcap) {
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errcap, "cannot open config file %s: %s", path, strerror(errno));
        return ME_EIO;
    }
    char line[4096];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *p = line;
        char *hash = strchr(p, '#');
        if (hash) *hash = 0;
        while (isspace((unsigned char)*p)) p++;
        char *e = p + strlen(p);
        while (e > p && isspace((unsigned char)e[-1])) *--e = 0;
        if (!*p) continue;
        char *name = p;
        while (*p && !isspace((unsigned char)*p) && *p != '=') p++;
        char *name_end = p;
        while (isspace((unsigned char)*p) || *p == '=') p++;
        *name_end = 0;
        char sub[512];
        rc = me_config_set(opts, target, name, p, sub, sizeof sub);
        if (rc) {
            snprintf(err, errcap, "%s:%d: %s", path, lineno, sub);
            break;
        }
    }
    fclose(f);
    return rc;
}

void me_config_help_left(FILE *out, const char *left, int col) {
    if ((int)strlen(left) < col) fprintf(out, "  %-*s ", col, left);
    else fprintf(out, "  %s\n  %-*s ", left, col, "");
}

void me_config_usage(FILE *out, const me_cfg_opt_t *opts, const char *prog, const char *summary) {
    fprintf(out, "%s\n\nOptions (also settable as 'name value' lines in --config FILE):\n", summary);
    for (const me_cfg_opt_t *o = opts; o->name; o++) {
        char left[96];
        const char *arg = o->type == ME_CFG_BOOL ? "" : o->type == ME_CFG_ENUM ? o->choices
                        : o->type == ME_CFG_SIZE ? "BYTES" : o->type == ME_CFG_INT ? "N" : "VALUE";
        snprintf(left, sizeof left, "--%s%s%s", o->name, *arg ? " " : "", arg);
        me_config_help_left(out, left, 30);
        fputs(o->help, out);
        if (o->def && *o->def) fprintf(out, " [default: %s]", o->def);
        fputc('\n', out);
    }
    fprintf(out, "  %-30s %s\n", "--config FILE", "read options from FILE first");
    fprintf(out, "  %-30s %s\n", "-h, --help", "show this help and exit");
    fprintf(out, "  %-30s %s\n", "--version", "print the version and exit");
    (void)prog;
}

int me_config_parse(const me_cfg_opt_t *opts, void *target, int argc, char **argv,
                    const char *prog, const char *summary,
                    char **positional, int max_positional, int *npositional,
                    char *err, size_t errcap) {
    if (npositional) *npositional = 0;
    /* --config first, so the command line overrides the file. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            me_config_usage(stdout, opts, prog, summary);
            return 1;
        }
        if (!strcmp(a, "--version")) {
            printf("%s %s\n", prog, ME_VERSION);
            return 1;
        }
        if (!strcmp(a, "--config") || !strncmp(a, "--config=", 9)) {
            const char *path = a[8] == '=' ? a + 9 : (i + 1 < argc ? argv[++i] : NULL);
            if (!path) { snprintf(err, errcap, "--config needs a file path"); return ME_EINVAL; }
            int rc = me_config_load_file(opts, target, path, err, errcap);
            if (rc) return rc;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--config")) { i++; continue; }
        if (!strncmp(a, "--config=", 9)) continue;
        if (strncmp(a, "--", 2) != 0 || a[2] == 0) {
            if (positional && npositional && *npositional < max_positional) {
                positional[(*npositional)++] = argv[i];
                continue;
            }
            snprintf(err, errcap, "unexpected argument '%s' (see %s --help)", a, prog);
            return ME_EINVAL;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const me_cfg_opt_t *o = find_opt(opts, name, len);
        if (!o && !eq && !strncmp(name, "no-", 3)) {
            o = find_opt(opts, name + 3, len - 3);
            if (o && o->type == ME_CFG_BOOL) { *(int *)((char *)target + o->offset) = 0; continue; }
            o = NULL;
        }
        if (!o) {
            snprintf(err, errcap, "unknown option '--%.*s' (see %s --help)", (int)len, name, prog);
            return ME_EINVAL;
        }
        const char *value;
        if (eq) value = eq + 1;
        else if (o->type == ME_CFG_BOOL) value = "true";
        else if (i + 1 < argc) value = argv[++i];
        else {
            snprintf(err, errcap, "--%s needs a value", o->name);
            return ME_EINVAL;
        }
        int rc = set_opt(o, target, value, err, errcap);
        if (rc) return rc;
    }
    return 0;
}
