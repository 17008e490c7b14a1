/* Replica-to-replica copying by version, shared by the repairer
 * (coordinator/repair.c: replicas of one group converge) and the mover
 * (coordinator/reshard.c: documents change groups). Its own sockets, one
 * per replica, and calls that are not routed (no placement in the
 * envelope: repair and moves work below placement). */
#ifndef ME_COPIER_H
#define ME_COPIER_H

#include <stddef.h>
#include <stdint.h>

#include "common/wire.h"
#include "coordinator/cluster.h"

typedef struct {
    me_cluster_t *cl;
    void *zctx;
    void **socks;         /* per replica, connected on first use */
    uint64_t rid;
    int call_ms;          /* one request's time */
} me_copier_t;

/* An id's version on one of the replicas listed (index k into that list). */
typedef struct {
    char *id;
    uint64_t version;
    int deleted;
    int k;
} me_copy_entry_t;

int me_copier_init(me_copier_t *cp, me_cluster_t *cl, void *zctx, int call_ms);
void me_copier_free(me_copier_t *cp);

/* One request to replica r: 0 with *out its OK reply; ME_ENOTFOUND,
 * ME_ESTALE (FAILED_PRECONDITION), ME_EUNAVAIL for other statuses, or the
 * transport's error (the socket is then replaced: Lazy Pirate). */
int me_copier_call(me_copier_t *cp, int r, int method, const ProtobufCMessage *req, me_reply_t *out);

/* The (id, version, deleted) entries of the listed buckets of collection
 * coll on each of reps[0..nrep), sorted by id, newest first; the caller
 * frees them with me_copy_entries_free. */
int me_copier_list(me_copier_t *cp, const int *reps, int nrep, const char *coll, const uint32_t *buckets,
                   size_t nb, me_copy_entry_t **out, size_t *nout);
void me_copy_entries_free(me_copy_entry_t *e, size_t n);

/* Reads ids[0..n) (with vectors and versions) from replica src and
 * upserts them at their versions on dsts[0..ndst); ok[i] (when given) set
 * for each destination that took them. 0 when every destination did. */
int me_copier_copy(me_copier_t *cp, const char *coll, int src, const int *dsts, int ndst, char **ids, size_t n,
                   int *ok);
/* Announces a placement to replica r: a Health request routed with it (a
 * shard adopts a newer one, never refuses). 0 with *held the placement
 * the replica holds afterwards (equal to `placement` once it took it). */
int me_copier_announce(me_copier_t *cp, int r, uint64_t placement, uint64_t *held);
/* Tombstones of ids[0..n) at `version` on replica dst. */
int me_copier_delete(me_copier_t *cp, const char *coll, int dst, char **ids, size_t n, uint64_t version);

#endif
