/* Snapshots through the coordinator: a create goes to every replica of
 * every group under one id (named here when the client gives none), and
 * succeeds only when every replica made it; list merges the replicas'
 * lists; delete goes everywhere (a replica without it is done). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/log.h"
#include "coordinator/handlers.h"

typedef struct {
    char *id;
    uint64_t created_ms, bytes;
    uint32_t replicas;
    uint64_t *docs;  /* per group: the most a replica holds */
} merged_t;

static merged_t *find_or_add(merged_t **m, size_t *n, size_t *cap, const char *id, int ng) {
    for (size_t i = 0; i < *n; i++)
        if (!strcmp((*m)[i].id, id)) return &(*m)[i];
    if (*n == *cap) {
        size_t nc = *cap ? 2 * *cap : 8;
        merged_t *nm = realloc(*m, nc * sizeof *nm);
        if (!nm) return NULL;
        *m = nm;
        *cap = nc;
    }
    merged_t *e = &(*m)[*n];
    memset(e, 0, sizeof *e);
    e->id = strdup(id);
    e->docs = calloc((size_t)ng, sizeof *e->docs);
    if (!e->id || !e->docs) { free(e->id); free(e->docs); return NULL; }
    (*n)++;
    return e;
}

static int cmp_merged(const void *a, const void *b) { return strcmp(((const merged_t *)a)->id, ((const merged_t *)b)->id); }

/* The replicas' answers as one list (only `only` when given). */
static int reply_merged(req_t *r, me_call_t *calls, int ncalls, const char *only) {
    int ng = me_coord_span_groups(r), rc = 0;
    merged_t *m = NULL;
    size_t n = 0, cap = 0;
    for (int i = 0; i < ncalls && rc == 0; i++) {
        if (!me_coord_group_ok(&calls[i])) continue;
        Metaembed__SnapshotReply *sr =
            metaembed__snapshot_reply__unpack(NULL, calls[i].reply.payload_len, calls[i].reply.payload);
        for (size_t k = 0; sr && k < sr->n_snapshots && rc == 0; k++) {
            const Metaembed__SnapshotInfo *si = sr->snapshots[k];
            if (only && strcmp(si->id, only) != 0) continue;
            merged_t *e = find_or_add(&m, &n, &cap, si->id, ng);
            if (!e) { rc = OOM(r); break; }
            e->replicas++;
            e->bytes += si->bytes;
            if (!e->created_ms || si->created_ms < e->created_ms) e->created_ms = si->created_ms;
            if (si->documents > e->docs[calls[i].group]) e->docs[calls[i].group] = si->documents;
        }
        if (sr) metaembed__snapshot_reply__free_unpacked(sr, NULL);
    }
    Metaembed__SnapshotInfo *ps = rc ? NULL : calloc(n ? n : 1, sizeof *ps);
    Metaembed__SnapshotInfo **pp = rc ? NULL : calloc(n ? n : 1, sizeof *pp);
    if (!rc && (!ps || !pp)) rc = OOM(r);
    if (!rc) {
        if (n) qsort(m, n, sizeof *m, cmp_merged);
        for (size_t i = 0; i < n; i++) {
            metaembed__snapshot_info__init(&ps[i]);
            ps[i].id = m[i].id;
            ps[i].created_ms = m[i].created_ms;
            ps[i].bytes = m[i].bytes;
            ps[i].replicas = m[i].replicas;
            for (int g = 0; g < ng; g++) ps[i].documents += m[i].docs[g];
            pp[i] = &ps[i];
        }
        Metaembed__SnapshotReply rep = METAEMBED__SNAPSHOT_REPLY__INIT;
        rep.snapshots = pp;
        rep.n_snapshots = n;
        rc = me_reply_ok(r->reply, &rep.base);
    }
    for (size_t i = 0; i < n; i++) { free(m[i].id); free(m[i].docs); }
    free(m);
    free(ps);
    free(pp);
    return rc;
}

int me_coord_snapshot(req_t *r) {
    /* A copy: the id may be one named here, and the request's strings
     * belong to the unpacked message. */
    Metaembed__SnapshotRequest req = *(const Metaembed__SnapshotRequest *)(const void *)r->msg, *m = &req;
    int ng = me_coord_span_groups(r), ncalls = 0, rc;
    char id[65], err[256];
    if (m->op == METAEMBED__SNAPSHOT_OP__SNAPSHOT_CREATE && !m->id[0]) {
        time_t now = time(NULL);
        struct tm tmv;
        gmtime_r(&now, &tmv);
        strftime(id, sizeof id, "snap-%Y%m%d-%H%M%S", &tmv);
        m->id = id;
    }
    if (m->op != METAEMBED__SNAPSHOT_OP__SNAPSHOT_LIST && me_check_snapshot_id(m->id, err, sizeof err) != 0)
        return BAD(r, "%s", err);
    if ((int)m->op < 0 || m->op > METAEMBED__SNAPSHOT_OP__SNAPSHOT_DELETE) return BAD(r, "unknown snapshot op %d", (int)m->op);
    size_t plen;
    uint8_t *packed = me_wire_pack(&m->base, &plen);
    uint8_t **payloads = calloc((size_t)ng, sizeof *payloads);
    size_t *lens = calloc((size_t)ng, sizeof *lens);
    if (!packed || !payloads || !lens) { free(packed); free(payloads); free(lens); return OOM(r); }
    for (int g = 0; g < ng; g++) { payloads[g] = packed; lens[g] = plen; }
    /* Every replica (the DDL path: all of them are waited for). */
    int cut = m->op == METAEMBED__SNAPSHOT_OP__SNAPSHOT_CREATE;
    if (cut) pthread_rwlock_wrlock(&COORD(r)->write_gate);
    me_call_t *calls = me_coord_write_calls(r, payloads, lens, NULL, &ncalls);
    if (cut) pthread_rwlock_unlock(&COORD(r)->write_gate);
    free(payloads);
    free(lens);
    if (!calls) { free(packed); return OOM(r); }
    char missing[512] = "";
    int done = 0;
    rc = 0;
    for (int i = 0; i < ncalls && rc == 0; i++) {
        int benign = m->op == METAEMBED__SNAPSHOT_OP__SNAPSHOT_DELETE && calls[i].answered &&
                     calls[i].reply.status == ME_CODE_NOT_FOUND;
        if (me_coord_group_ok(&calls[i]) || benign) done++;
        else if (calls[i].answered && !me_fanout_retryable(calls[i].reply.status))
            rc = me_reply_error(r->reply, calls[i].reply.status, "%s", calls[i].reply.message);
        else
            snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s%s", missing[0] ? ", " : "",
                     COORD(r)->cluster.replicas[calls[i].replica].endpoint);
    }
    if (rc == 0 && done < ncalls) {
        rc = me_reply_error(r->reply, ME_CODE_UNAVAILABLE,
                            m->op == METAEMBED__SNAPSHOT_OP__SNAPSHOT_CREATE
                                ? "snapshot '%s' made on %d of %d replicas (unreachable: %s): not a whole snapshot; "
                                  "delete it and create it again when they are back"
                                : "snapshot '%s' done on %d of %d replicas (unreachable: %s); repeat when they are back",
                            m->id, done, ncalls, missing);
    }
    if (rc == 0) {
        if (m->op == METAEMBED__SNAPSHOT_OP__SNAPSHOT_DELETE) {
            Metaembed__SnapshotReply rep = METAEMBED__SNAPSHOT_REPLY__INIT;
            rc = me_reply_ok(r->reply, &rep.base);
        } else rc = reply_merged(r, calls, ncalls, m->op == METAEMBED__SNAPSHOT_OP__SNAPSHOT_CREATE ? m->id : NULL);
        if (m->op == METAEMBED__SNAPSHOT_OP__SNAPSHOT_CREATE) me_info("snapshot %s made on %d replicas", m->id, ncalls);
    }
    me_calls_clear(calls, ncalls);
    free(calls);
    free(packed);
    return rc;
}
