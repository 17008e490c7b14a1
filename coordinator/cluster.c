#include "coordinator/cluster.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/hash.h"
#include "common/placement.h"
#include "common/log.h"
#include "common/wire.h"

int me_cluster_place(const me_cluster_t *c, const char *id, size_t len) {
    me_placement_t p = me_cluster_placement(c);
    return me_place(id, len, me_placement_read_groups(p));
}

me_placement_t me_cluster_placement(const me_cluster_t *c) {
    me_placement_t p = { 0, ME_PHASE_STABLE, 1, 1 };
    me_placement_unpack(atomic_load(&((me_cluster_t *)c)->placement), &p);
    return p;
}

int me_cluster_adopt_placement(me_cluster_t *c, uint64_t word) {
    me_placement_t p;
    if (word == 0 || me_placement_unpack(word, &p) != 0) return 0;
    uint64_t cur = atomic_load(&c->placement);
    if (me_placement_span(p) > c->n_groups) {
        /* Said once per epoch: every routed request is refused meanwhile. */
        static _Atomic uint32_t warned_epoch;
        if ((uint32_t)(cur >> 32) < p.epoch && atomic_exchange(&warned_epoch, p.epoch) != p.epoch) {
            char buf[96];
            me_error("a shard holds placement %s but this coordinator's map lists %d groups: add the missing "
                     "groups to the map (as standby) and restart this coordinator",
                     me_placement_describe(word, buf, sizeof buf), c->n_groups);
        }
        return 0;
    }
    while ((uint32_t)(cur >> 32) < p.epoch) {
        if (atomic_compare_exchange_weak(&c->placement, &cur, word)) {
            char buf[96];
            me_info("placement is now %s", me_placement_describe(word, buf, sizeof buf));
            return 1;
        }
    }
    return 0;
}

/* Adds one group and its replica endpoints (the rest of the line). */
static int add_group(me_cluster_t *c, const char *name, int shard_group, char **save, const char *path, int lineno,
                     char *err, size_t errcap) {
    for (int g = 0; g < c->n_groups + (c->encoder_group >= 0); g++)
        if (strcmp(c->groups[g].name, name) == 0) {
            snprintf(err, errcap, "%s:%d: group '%s' appears twice", path, lineno, name);
            return ME_EINVAL;
        }
    int idx = c->n_groups + (c->encoder_group >= 0);
    me_group_t *ng = realloc(c->groups, (size_t)(idx + 1) * sizeof *ng);
    if (!ng) return ME_ENOMEM;
    c->groups = ng;
    me_group_t *g = &c->groups[idx];
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "%s", name);
    g->first_replica = c->n_replicas;
    char *ep;
    int first = 1;
    while ((ep = strtok_r(NULL, " \t\r\n", save)) != NULL) {
        if (first && shard_group && !strcmp(ep, "standby")) {
            g->standby = 1;
            first = 0;
            continue;
        }
        first = 0;
        if (strlen(ep) > ME_ENDPOINT_MAX || strstr(ep, "://") == NULL) {
            snprintf(err, errcap, "%s:%d: '%s' is not an endpoint like tcp://host:port", path, lineno, ep);
            return ME_EINVAL;
        }
        me_replica_t *nr = realloc(c->replicas, (size_t)(c->n_replicas + 1) * sizeof *nr);
        if (!nr) return ME_ENOMEM;
        c->replicas = nr;
        me_replica_t *r = &c->replicas[c->n_replicas++];
        memset(r, 0, sizeof *r);
        snprintf(r->endpoint, sizeof r->endpoint, "%s", ep);
        r->group = idx;
        /* Optimistic start: usable until heartbeats say otherwise. */
        atomic_store(&r->up, 1);
        atomic_store(&r->liveness, c->liveness_max);
        g->n_replicas++;
    }
    if (g->n_replicas == 0) {
        snprintf(err, errcap, "%s:%d: '%s' has no endpoints", path, lineno, name);
        return ME_EINVAL;
    }
    return 0;
}

int me_cluster_load(me_cluster_t *c, const char *path, int liveness_max, char *err, size_t errcap) {
    memset(c, 0, sizeof *c);
    c->encoder_group = -1;
    c->liveness_max = liveness_max > 0 ? liveness_max : 3;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errcap, "cannot open cluster map %s: %s", path, strerror(errno));
        return ME_EIO;
    }
    char line[4096];
    int rc = 0;
    /* Two passes: shard groups first, so the encoders' group (and its
     * replicas) come after them in the arrays. */
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        rewind(f);
        int lineno = 0;
        while (rc == 0 && fgets(line, sizeof line, f)) {
            lineno++;
            char *hash = strchr(line, '#');
            if (hash) *hash = 0;
            char *save = NULL, *tok = strtok_r(line, " \t\r\n", &save);
            if (!tok) continue;
            if (!strcmp(tok, "group")) {
                if (pass) continue;
                char *name = strtok_r(NULL, " \t\r\n", &save);
                if (!name || strlen(name) > ME_GROUP_NAME_MAX) {
                    snprintf(err, errcap, "%s:%d: group needs a name of 1..%d characters", path, lineno, ME_GROUP_NAME_MAX);
                    rc = ME_EINVAL;
                } else if ((rc = add_group(c, name, 1, &save, path, lineno, err, errcap)) == 0) {
                    if (!c->groups[c->n_groups].standby && c->n_groups > c->n_placed) {
                        snprintf(err, errcap, "%s:%d: group '%s' follows a standby group: standby groups come last "
                                 "(placement uses the first groups of the map)", path, lineno, name);
                        rc = ME_EINVAL;
                    }
                    if (!c->groups[c->n_groups].standby) c->n_placed++;
                    c->n_groups++;
                }
            } else if (!strcmp(tok, "encoders")) {
                if (!pass) continue;
                if (c->encoder_group >= 0) {
                    snprintf(err, errcap, "%s:%d: only one 'encoders' line", path, lineno);
                    rc = ME_EINVAL;
                } else if ((rc = add_group(c, "encoders", 0, &save, path, lineno, err, errcap)) == 0)
                    c->encoder_group = c->n_groups;
            } else {
                snprintf(err, errcap, "%s:%d: expected 'group NAME [standby] ENDPOINT...' or 'encoders ENDPOINT...', got '%s'",
                         path, lineno, tok);
                rc = ME_EINVAL;
            }
        }
    }
    fclose(f);
    if (rc == 0 && c->n_groups == 0) {
        snprintf(err, errcap, "%s: no groups (expected lines like 'group g0 tcp://127.0.0.1:7600')", path);
        rc = ME_EINVAL;
    }
    if (rc == 0 && c->n_placed == 0) {
        snprintf(err, errcap, "%s: every group is standby; at least the first holds documents", path);
        rc = ME_EINVAL;
    }
    if (rc == 0 && c->n_groups > ME_PLACEMENT_MAX_GROUPS) {
        snprintf(err, errcap, "%s: %d groups; at most %d", path, c->n_groups, ME_PLACEMENT_MAX_GROUPS);
        rc = ME_EINVAL;
    }
    /* Until a shard says otherwise: epoch 0, the map's non-standby groups. */
    if (rc == 0) atomic_store(&c->placement, me_placement_pack((me_placement_t){ 0, ME_PHASE_STABLE, c->n_placed, c->n_placed }));
    if (rc) me_cluster_free(c);
    return rc;
}

void me_cluster_free(me_cluster_t *c) {
    free(c->groups);
    free(c->replicas);
    memset(c, 0, sizeof *c);
    c->encoder_group = -1;
}

void me_cluster_read_latency(me_cluster_t *c, int r, uint64_t us) {
    me_replica_t *rep = &c->replicas[r];
    unsigned at = atomic_fetch_add(&rep->read_at, 1);
    atomic_store_explicit(&rep->read_us[at % 32], (uint32_t)(us > UINT32_MAX ? UINT32_MAX : us), memory_order_relaxed);
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

uint64_t me_cluster_read_p95_us(const me_cluster_t *c, int r) {
    const me_replica_t *rep = &c->replicas[r];
    unsigned n = atomic_load(&rep->read_at);
    if (n < 8) return 0;
    if (n > 32) n = 32;
    uint32_t v[32];
    for (unsigned i = 0; i < n; i++) v[i] = atomic_load_explicit(&rep->read_us[i], memory_order_relaxed);
    qsort(v, n, sizeof *v, cmp_u32);
    return v[(n * 95) / 100 < n ? (n * 95) / 100 : n - 1];
}

void me_cluster_mark_stale(me_cluster_t *c, int r) {
    me_replica_t *rep = &c->replicas[r];
    if (rep->group >= c->n_groups || c->groups[rep->group].n_replicas < 2) return;  /* nothing to repair from */
    atomic_fetch_add(&rep->stale_gen, 1);
    if (!atomic_exchange(&rep->stale, 1)) me_info("replica %s may be missing writes: reads go to its siblings until it is repaired", rep->endpoint);
    atomic_store(&c->repair_wanted, 1);
}

void me_cluster_ok(me_cluster_t *c, int r, uint64_t latency_us) {
    me_replica_t *rep = &c->replicas[r];
    /* Stale before up, so no read sees it up and fresh in between. */
    if (!atomic_load(&rep->up)) me_cluster_mark_stale(c, r);
    if (!atomic_exchange(&rep->up, 1)) me_info("replica %s is up", rep->endpoint);
    atomic_store(&rep->liveness, c->liveness_max);
    atomic_store(&rep->latency_us, latency_us);
}

void me_cluster_miss(me_cluster_t *c, int r) {
    me_replica_t *rep = &c->replicas[r];
    int left = atomic_load(&rep->liveness);
    if (left > 0) left = atomic_fetch_sub(&rep->liveness, 1) - 1;
    if (left <= 0 && atomic_exchange(&rep->up, 0)) me_warn("replica %s is down", rep->endpoint);
}

/* ---- heartbeats ---- */

typedef struct {
    void *sock;
    uint64_t rid;          /* in flight, 0 = none */
    uint64_t sent_us;
    uint64_t next_us;      /* when to send the next one */
    int backoff_ms;
} hb_t;

void *me_cluster_connect(const me_cluster_t *c, void *zctx, int r) {
    return me_wire_connect(zctx, c->replicas[r].endpoint, c->curve);
}

/* Heartbeats are Health requests: a shard answers them from counters,
 * without taking any collection lock, so a busy shard is not slowed by them
 * (the documents figure comes with the answer), and with its placement. */
void me_cluster_heartbeat(me_cluster_t *c, void *zctx, int interval_ms, int max_backoff_ms,
                          const atomic_int *stop) {
    hb_t *hb = calloc((size_t)c->n_replicas, sizeof *hb);
    void **socks = calloc((size_t)c->n_replicas, sizeof *socks);
    int *ready = calloc((size_t)c->n_replicas, sizeof *ready);
    if (!hb || !socks || !ready) { free(hb); free(socks); free(ready); return; }
    for (int r = 0; r < c->n_replicas; r++) {
        hb[r].sock = me_cluster_connect(c, zctx, r);
        hb[r].backoff_ms = interval_ms;
    }
    uint64_t rid = 0;
    uint64_t timeout_us = (uint64_t)interval_ms * 1000u;
    while (!atomic_load(stop)) {
        uint64_t now = me_now_us();
        for (int r = 0; r < c->n_replicas; r++) {
            hb_t *h = &hb[r];
            if (h->rid && now - h->sent_us > timeout_us) {
                /* Missed: count it, drop the socket so a late reply or a queued
                 * request cannot surface later, and back off if it is down. */
                me_cluster_miss(c, r);
                me_wire_close(h->sock);
                h->sock = me_cluster_connect(c, zctx, r);
                h->rid = 0;
                if (!atomic_load(&c->replicas[r].up)) {
                    h->backoff_ms = h->backoff_ms * 2 > max_backoff_ms ? max_backoff_ms : h->backoff_ms * 2;
                    h->next_us = now + (uint64_t)h->backoff_ms * 1000u;
                } else h->next_us = now;
            }
            if (!h->rid && now >= h->next_us) {
                /* An empty HealthRequest packs to no bytes. */
                /* It carries the placement both ways: a shard adopts a newer
                 * one from it, and its reply says the shard's. */
                int g = c->replicas[r].group;
                if (me_wire_send_routed(h->sock, ++rid, METAEMBED__METHOD__METHOD_HEALTH, (uint32_t)interval_ms, NULL,
                                        0, 1, g < c->n_groups ? atomic_load(&c->placement) : 0, g) == 0) {
                    h->rid = rid;
                    h->sent_us = now;
                } else h->next_us = now + timeout_us;
            }
            socks[r] = h->sock;
        }
        if (me_wire_wait(socks, c->n_replicas, 50, ready) < 0) continue;
        now = me_now_us();
        for (int r = 0; r < c->n_replicas; r++) {
            if (!ready[r]) continue;
            me_reply_t rep;  /* a stale message is taken off and dropped (rid 0 matches nothing) */
            me_reply_init(&rep);
            if (me_wire_take_reply(hb[r].sock, hb[r].rid, &rep) != 1) continue;
            me_cluster_ok(c, r, now - hb[r].sent_us);
            me_cluster_adopt_placement(c, rep.placement);
            Metaembed__HealthReply *hr = metaembed__health_reply__unpack(NULL, rep.payload_len, rep.payload);
            if (hr) {
                atomic_store(&c->replicas[r].documents, hr->documents);
                metaembed__health_reply__free_unpacked(hr, NULL);
            }
            me_reply_clear(&rep);
            hb[r].rid = 0;
            hb[r].backoff_ms = interval_ms;
            hb[r].next_us = hb[r].sent_us + timeout_us;
        }
    }
    for (int r = 0; r < c->n_replicas; r++) me_wire_close(hb[r].sock);
    free(hb);
    free(socks);
    free(ready);
}
