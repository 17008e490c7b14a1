/* metaembed reshard: moves the documents to a new number of shard groups
 * while the cluster serves (the coordinator drives the move; this command
 * starts it and follows it). Phases: common/placement.h; the operator's
 * view: docs/cluster.md, "Resharding". */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "common/placement.h"
#include "common/progress.h"

#define POLL_MS 500
/* Status calls that may fail in a row while following a move (a
 * coordinator busy or restarting) before the command gives up. */
#define MAX_POLL_FAILURES 6

typedef struct {
    long long groups, max_rate;
    int no_wait, status;
} reshard_opts_t;

static const me_cfg_opt_t reshard_table[] = {
    { "groups", ME_CFG_INT, offsetof(reshard_opts_t, groups), "", 0, ME_PLACEMENT_MAX_GROUPS, NULL,
      "shard groups to place the documents on: the first N groups of the cluster map (required unless --status)" },
    { "max-rate", ME_CFG_INT, offsetof(reshard_opts_t, max_rate), "0", 0, 4294967295LL, NULL,
      "copy at most this many documents per second (0: no limit)" },
    { "no-wait", ME_CFG_BOOL, offsetof(reshard_opts_t, no_wait), "false", 0, 1, NULL,
      "start the move and return, without following it" },
    { "status", ME_CFG_BOOL, offsetof(reshard_opts_t, status), "false", 0, 1, NULL,
      "only show where the move stands" },
    { NULL, 0, 0, NULL, 0, 0, NULL, NULL },
};

static const cli_cmd_t reshard_cmd = {
    "reshard", "--groups N [--max-rate DOCS_PER_S] [--no-wait] | --status",
    "Moves the documents to N shard groups while the cluster keeps serving reads and writes: the coordinator\n"
    "copies every document whose group changes (writes go to both placements meanwhile), switches reads to the\n"
    "new placement, then purges the copies the old groups no longer own. To grow, first add the new groups to\n"
    "the cluster map of every coordinator (as standby groups). The command follows the move until it is done;\n"
    "interrupting it (or --no-wait) leaves the move running at the coordinator, and --status shows it. A move\n"
    "that stopped on an error resumes where it stopped when started again with the same --groups.",
    reshard_table, 0, 0,
};

/* "0:42", "1:02:03". */
static const char *fmt_ms(char *buf, size_t cap, uint64_t ms) {
    unsigned long long t = (ms + 500) / 1000;
    if (t >= 3600) snprintf(buf, cap, "%llu:%02llu:%02llu", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, cap, "%llu:%02llu", t / 60, t % 60);
    return buf;
}

static void json_info(const me_reshard_info_t *s) {
    me_json_writer_t j;
    cli_json_begin(&j, stdout);
    me_json_put_str(&j, "phase", s->phase);
    me_json_put_u64(&j, "from_groups", s->from_groups);
    me_json_put_u64(&j, "to_groups", s->to_groups);
    me_json_put_u64(&j, "epoch", s->epoch);
    me_json_put_bool(&j, "running", s->running);
    me_json_put_u64(&j, "moved", s->moved);
    me_json_put_u64(&j, "estimate", s->estimate);
    me_json_put_u64(&j, "purged", s->purged);
    me_json_put_num_prec(&j, "progress", s->progress, 6);
    me_json_put_num_prec(&j, "docs_per_s", s->docs_per_s, 6);
    me_json_put_u64(&j, "eta_ms", s->eta_ms);
    me_json_put_u64(&j, "elapsed_ms", s->elapsed_ms);
    me_json_put_str(&j, "error", s->error);
    me_json_put_str(&j, "waiting", s->waiting);
    cli_json_end(&j);
}

static void print_info(const me_reshard_info_t *s) {
    char d[32];
    printf("phase      %s\n", s->phase);
    if (s->from_groups == s->to_groups) printf("groups     %u\n", s->to_groups);
    else printf("groups     %u -> %u\n", s->from_groups, s->to_groups);
    printf("epoch      %llu\n", (unsigned long long)s->epoch);
    printf("running    %s\n", s->running ? "yes (at this coordinator)" : "no");
    printf("moved      %llu of ~%llu documents (%.1f%%)\n", (unsigned long long)s->moved,
           (unsigned long long)s->estimate, s->progress * 100);
    printf("purged     %llu documents\n", (unsigned long long)s->purged);
    printf("rate       %.0f docs/s\n", s->docs_per_s);
    printf("elapsed    %s\n", fmt_ms(d, sizeof d, s->elapsed_ms));
    if (s->running) printf("eta        %s\n", s->eta_ms ? fmt_ms(d, sizeof d, s->eta_ms) : "--:--");
    if (s->waiting[0]) printf("waiting    %s\n", s->waiting);
    if (s->error[0]) printf("last error %s\n", s->error);
}

static int done(const me_reshard_info_t *s, uint32_t target) {
    return !s->running && !strcmp(s->phase, "stable") && s->to_groups == target;
}

static void sleep_ms(int ms) {
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Redraws the bar for s: done = documents copied; the bar's clock is set
 * to the coordinator's, so its rate and ETA are the move's own even when
 * this command joined it late. */
static void draw(me_progress_t *bar, const me_reshard_info_t *s) {
    int copying = !strcmp(s->phase, "copy");
    bar->total = copying && s->estimate > s->moved ? s->estimate : s->moved;
    bar->t0 += me_progress_elapsed(bar) - (double)s->elapsed_ms / 1000.0;
    me_progress_update(bar, s->moved);
}

/* Follows a started move to its end; the exit status. */
static int follow(cli_t *c, uint32_t target, me_reshard_info_t *s) {
    char label[48] = "reshard", phase[sizeof s->phase] = "", waiting[sizeof s->waiting] = "";
    me_progress_t bar;
    me_progress_init(&bar, label, "docs", 0, -1);
    int failures = 0;
    for (;;) {
        if (!c->g.json && (strcmp(phase, s->phase) || (s->waiting[0] && strcmp(waiting, s->waiting)))) {
            me_progress_finish(&bar);
            if (strcmp(phase, s->phase))
                fprintf(stderr, "reshard: phase %s (%u -> %u groups, epoch %llu)\n", s->phase, s->from_groups,
                        s->to_groups, (unsigned long long)s->epoch);
            if (s->waiting[0] && strcmp(waiting, s->waiting)) fprintf(stderr, "reshard: waiting: %s\n", s->waiting);
        }
        snprintf(phase, sizeof phase, "%s", s->phase);
        snprintf(waiting, sizeof waiting, "%s", s->waiting);
        snprintf(label, sizeof label, "reshard %s", s->phase);
        if (done(s, target) || !s->running) break;
        draw(&bar, s);
        sleep_ms(POLL_MS);
        me_reshard_info_t next;
        me_status_t st;
        if (me_client_reshard_status(c->client, &next, &st) != 0) {
            if (++failures < MAX_POLL_FAILURES &&
                (st.code == ME_CODE_UNAVAILABLE || st.code == ME_CODE_DEADLINE_EXCEEDED))
                continue;
            me_progress_finish(&bar);
            fprintf(stderr, "metaembed: reshard: the move goes on at the coordinator; see 'metaembed reshard "
                            "--status'\n");
            return cli_status_error(c, &st, "cannot follow the move");
        }
        *s = next;
        failures = 0;
    }
    me_progress_finish(&bar);
    /* A failure's JSON is the error object alone (cli_error), as for every command. */
    if (done(s, target)) {
        if (c->g.json) json_info(s);
        else
            printf("moved %llu documents to %u groups, purged %llu, in %.1f s (%.0f docs/s)\n",
                   (unsigned long long)s->moved, target, (unsigned long long)s->purged,
                   (double)s->elapsed_ms / 1000.0, s->docs_per_s);
        return CLI_OK;
    }
    if (s->error[0])
        return cli_error(c, CLI_FAIL, "the move to %u groups stopped: %s (phase %s, %llu documents moved); run the "
                         "same command again to resume", target, s->error, s->phase, (unsigned long long)s->moved);
    return cli_error(c, CLI_FAIL, "the move to %u groups is not running at this coordinator (phase %s, %u -> %u "
                     "groups; restarted, or another move took over?); run the same command again to resume",
                     target, s->phase, s->from_groups, s->to_groups);
}

int cli_cmd_reshard(cli_t *c, int argc, char **argv) {
    reshard_opts_t o;
    char err[256];
    me_config_defaults(reshard_table, &o, err, sizeof err);
    int rc = cli_parse(c, &reshard_cmd, &o, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (o.status && o.groups) return cli_usage_error(c, "--status and --groups do not go together");
    if (!o.status && !o.groups) return cli_usage_error(c, "needs --groups N (1..%d) or --status", ME_PLACEMENT_MAX_GROUPS);
    if (!cli_connect(c)) return CLI_FAIL;
    me_reshard_info_t s;
    me_status_t st;
    if (o.status) {
        if (me_client_reshard_status(c->client, &s, &st) != 0) return cli_status_error(c, &st, "cannot get the status");
        if (c->g.json) json_info(&s);
        else print_info(&s);
        return CLI_OK;
    }
    uint32_t target = (uint32_t)o.groups;
    if (me_client_reshard_start(c->client, target, (uint32_t)o.max_rate, &s, &st) != 0)
        return cli_status_error(c, &st, "cannot start the move");
    if (!o.no_wait) return follow(c, target, &s);
    if (c->g.json) json_info(&s);
    else if (done(&s, target)) printf("the documents are placed on %u groups already\n", target);
    else
        printf("moving to %u groups (phase %s, epoch %llu); 'metaembed reshard --status' shows where it stands\n",
               target, s.phase, (unsigned long long)s.epoch);
    return CLI_OK;
}
