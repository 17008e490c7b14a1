/* Every daemon's HTTP endpoint: /metrics parses as the Prometheus text
 * format and its counters move by exactly the requests sent; /healthz;
 * /readyz follows readiness (the coordinator's follows its shards). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/daemon.h"
#include "tests/harness.h"

/* Checks the exposition format line by line: comments are "# HELP name
 * text" or "# TYPE name counter|gauge|histogram"; samples are
 * name{label="value",...} number, and every sample's family was declared
 * by a TYPE line before it. Returns the number of samples, -1 if malformed. */
static int parse_prometheus(const char *text) {
    char families[256][128];
    int nf = 0, samples = 0;
    const char *p = text;
    while (*p) {
        const char *end = strchr(p, '\n');
        if (!end) return -1;  /* the format ends every line with \n */
        char line[2048];
        size_t len = (size_t)(end - p);
        if (len >= sizeof line) return -1;
        memcpy(line, p, len);
        line[len] = 0;
        p = end + 1;
        if (line[0] == '#') {
            char kind[16], name[128], type[32];
            if (sscanf(line, "# %15s %127s %31s", kind, name, type) < 2) return -1;
            if (!strcmp(kind, "TYPE")) {
                if (strcmp(type, "counter") && strcmp(type, "gauge") && strcmp(type, "histogram")) return -1;
                if (nf < 256) snprintf(families[nf++], sizeof families[0], "%s", name);
            } else if (strcmp(kind, "HELP")) return -1;
            continue;
        }
        char *q = line;
        if (!(isalpha((unsigned char)*q) || *q == '_')) return -1;
        while (isalnum((unsigned char)*q) || *q == '_' || *q == ':') q++;
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)(q - line), line);
        if (*q == '{') {
            q++;
            while (*q != '}') {
                while (isalnum((unsigned char)*q) || *q == '_') q++;
                if (*q++ != '=' || *q++ != '"') return -1;
                while (*q && *q != '"') { if (*q == '\\') q++; q++; }
                if (*q++ != '"') return -1;
                if (*q == ',') q++;
                else if (*q != '}') return -1;
            }
            q++;
        }
        if (*q++ != ' ') return -1;
        char *num_end;
        strtod(q, &num_end);
        if (num_end == q || *num_end) return -1;
        /* Its family: the name less a histogram suffix. */
        int found = 0;
        for (int f = 0; f < nf && !found; f++) {
            size_t fl = strlen(families[f]);
            if (!strncmp(name, families[f], fl) &&
                (!name[fl] || !strcmp(name + fl, "_bucket") || !strcmp(name + fl, "_sum") || !strcmp(name + fl, "_count")))
                found = 1;
        }
        if (!found) return -1;
        samples++;
    }
    return samples;
}

/* The value of the sample whose line starts with `prefix` (0 when absent). */
static double sample(const char *text, const char *prefix) {
    const char *p = strstr(text, prefix);
    if (!p) return 0;
    p = strchr(p + strlen(prefix) - 1, ' ');
    return p ? atof(p + 1) : 0;
}

/* Prometheus's own linter on the text, where Debian's prometheus package
 * is installed (install-deps.sh adds it): 1 when it passes or is absent. */
static int promtool_ok(const char *text) {
    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        printf("    promtool not installed: own parser only\n");
        return 1;
    }
    char *dir = me_test_tmpdir("promtool"), in[600], cmd[1400];
    snprintf(in, sizeof in, "%s/metrics.txt", dir);
    FILE *f = fopen(in, "w");
    if (!f) return 0;
    fputs(text, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "promtool check metrics < '%s' > '%s/out.txt' 2>&1", in, dir);
    int rc = system(cmd);
    if (rc != 0) {
        snprintf(in, sizeof in, "%s/out.txt", dir);
        char *out = me_test_slurp(in);
        fprintf(stderr, "    promtool check metrics:\n%s\n", out ? out : "");
        free(out);
    }
    me_test_rmdir(dir);
    free(dir);
    return rc == 0;
}

static char *scrape(const me_daemon_t *d) {
    char *body;
    int code = me_test_http_get(d->metrics_port, "/metrics", &body);
    if (code != 200) { free(body); return NULL; }
    return body;
}

TEST(metrics_shard_counts_exactly_and_parses) {
    me_daemon_t d = { 0 };
    ASSERT_OK(me_daemon_start(&d, "metaembed-shard", "metrics"));
    char *body;
    ASSERT_EQ(me_test_http_get(d.metrics_port, "/healthz", &body), 200);
    free(body);
    ASSERT_EQ(me_test_http_get(d.metrics_port, "/readyz", &body), 200);
    free(body);
    ASSERT_EQ(me_test_http_get(d.metrics_port, "/nope", &body), 404);
    free(body);
    me_collection_spec_t spec = { .name = "m", .dim = 4, .max_doc_vectors = 2, .max_query_vectors = 2 };
    me_client_t *c = me_daemon_client_with(&d, &spec);
    ASSERT_TRUE(c != NULL);
    me_status_t st;
    float v[2 * 4] = { 1, 0, 0, 0, 0, 1, 0, 0 };
    me_doc_t doc = { .id = "a", .vectors = v, .rows = 2 };
    ASSERT_OK(me_client_upsert(c, "m", &doc, 1, 4, &st));
    char *before = scrape(&d);
    ASSERT_TRUE(before != NULL);
    ASSERT_TRUE(parse_prometheus(before) > 0);
    me_search_opts_t o = { .k = 1 };
    me_results_t res;
    for (int i = 0; i < 7; i++) {
        ASSERT_OK(me_client_search(c, "m", v, 1, 4, &o, &res, &st));
        me_results_free(&res);
    }
    me_search_opts_t bad = { .k = 0 };
    ASSERT_EQ(me_client_search(c, "m", v, 1, 4, &bad, &res, &st), ME_CODE_INVALID_ARGUMENT);
    char *after = scrape(&d);
    ASSERT_TRUE(after != NULL);
    int n = parse_prometheus(after);
    if (n <= 0) fprintf(stderr, "%s\n", after);
    ASSERT_TRUE(n > 0);
    ASSERT_TRUE(promtool_ok(after));
    ASSERT_EQ(sample(after, "metaembed_collection_documents{collection=\"m\"}"), 1);
    /* What the 7 good searches and the bad one added, exactly. Budget (1, 2)
     * is none of the five MMR budgets; each search ran a coarse stage and a
     * rerank. */
    static const struct { const char *key; int by; } grew[] = {
        { "metaembed_requests_total{role=\"shard\",method=\"Search\",code=\"OK\"}", 7 },
        { "metaembed_requests_total{role=\"shard\",method=\"Search\",code=\"INVALID_ARGUMENT\"}", 1 },
        { "metaembed_request_duration_seconds_count{role=\"shard\",method=\"Search\"}", 8 },
        { "metaembed_search_duration_seconds_count{role=\"shard\",budget=\"other\"}", 7 },
        { "metaembed_search_stage_seconds_count{stage=\"coarse\"}", 7 },
        { "metaembed_search_stage_seconds_count{stage=\"rerank\"}", 7 },
    };
    for (size_t i = 0; i < sizeof grew / sizeof grew[0]; i++) {
        long long by = (long long)(sample(after, grew[i].key) - sample(before, grew[i].key));
        if (by != grew[i].by) me_test_fail(__FILE__, __LINE__, "%s grew by %lld, not %d", grew[i].key, by, grew[i].by);
    }
    ASSERT_TRUE(sample(after, "metaembed_process_resident_memory_bytes{role=\"shard\"}") > 1e6);
    ASSERT_TRUE(strstr(after, "\nmetaembed_rocksdb_block_cache_hits_total ") != NULL);
    ASSERT_TRUE(strstr(after, "\nmetaembed_rocksdb_block_cache_misses_total ") != NULL);
    free(before);
    free(after);
    me_client_close(c);
    me_daemon_free(&d);
}

/* The coordinator is ready only while every group has a live replica. */
TEST(metrics_coordinator_readyz_follows_its_shards) {
    char *dir = me_test_tmpdir("ready");
    int shard_port = me_test_free_port();
    char map[600], cluster_arg[700];
    snprintf(map, sizeof map, "%s/cluster.conf", dir);
    FILE *f = fopen(map, "w");
    fprintf(f, "group g0 tcp://127.0.0.1:%d\n", shard_port);
    fclose(f);
    snprintf(cluster_arg, sizeof cluster_arg, "--cluster=%s", map);
    me_daemon_t co = { .no_data_dir = 1, .extra = { cluster_arg, "--heartbeat-ms=100" }, .nextra = 2 };
    ASSERT_OK(me_daemon_start(&co, "metaembed-coordinator", "readyco"));
    int code = 0;
    for (int i = 0; i < 100 && code != 503; i++) {
        char *body;
        code = me_test_http_get(co.metrics_port, "/readyz", &body);
        if (code == 503) ASSERT_TRUE(strstr(body, "g0") != NULL);
        free(body);
        if (code != 503) usleep(50000);
    }
    ASSERT_EQ(code, 503);  /* its only shard is not there */
    me_daemon_t sh = { .port = shard_port, .port_fixed = 1 };
    ASSERT_OK(me_daemon_start(&sh, "metaembed-shard", "readysh"));
    for (int i = 0; i < 100 && code != 200; i++) {
        char *body;
        code = me_test_http_get(co.metrics_port, "/readyz", &body);
        free(body);
        if (code != 200) usleep(50000);
    }
    ASSERT_EQ(code, 200);
    char *m = scrape(&co);
    ASSERT_TRUE(m != NULL);
    ASSERT_TRUE(parse_prometheus(m) > 0);
    char key[200];
    snprintf(key, sizeof key, "metaembed_replica_up{group=\"g0\",endpoint=\"tcp://127.0.0.1:%d\"}", shard_port);
    ASSERT_EQ(sample(m, key), 1);
    free(m);
    /* Searches through the coordinator count by budget, exactly. */
    me_collection_spec_t spec = { .name = "b", .dim = 4, .max_doc_vectors = 64, .max_query_vectors = 16 };
    me_client_t *cli = me_daemon_client_with(&co, &spec);
    ASSERT_TRUE(cli != NULL);
    me_status_t st;
    float v[64 * 4];
    for (int i = 0; i < 64 * 4; i++) v[i] = (float)((i * 7) % 5) + 0.5f;
    me_doc_t d = { .id = "x", .vectors = v, .rows = 64 };
    ASSERT_OK(me_client_upsert(cli, "b", &d, 1, 4, &st));
    for (int i = 0; i < 3; i++) {
        me_search_opts_t o = { .r_q = 16, .r_c = 64, .k = 1 };
        me_results_t res;
        ASSERT_OK(me_client_search(cli, "b", v, 16, 4, &o, &res, &st));
        me_results_free(&res);
    }
    me_client_close(cli);
    m = scrape(&co);
    ASSERT_TRUE(m != NULL && parse_prometheus(m) > 0);
    ASSERT_TRUE(promtool_ok(m));
    ASSERT_EQ(sample(m, "metaembed_search_duration_seconds_count{role=\"coordinator\",budget=\"16x64\"}"), 3);
    free(m);
    me_daemon_free(&sh);
    me_daemon_free(&co);
    me_test_rmdir(dir);
    free(dir);
}
