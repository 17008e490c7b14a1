/* Snapshots of a shard: RocksDB checkpoints of the whole store under
 * <data-dir>.snapshots/<id>/ (a sibling of the data directory, so a restore
 * can put a snapshot in the data directory's place), each with a small
 * manifest (creation time, documents). Restore happens at start-up
 * (--restore-snapshot ID): the current data directory is kept aside as
 * <data-dir>.before-<id>-<time>, never deleted, and the snapshot's files
 * become the data directory. */
#ifndef ME_SHARD_SNAPSHOT_H
#define ME_SHARD_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "shard/shard.h"

typedef struct {
    char id[65];
    uint64_t created_ms, bytes, documents;
} me_shard_snapshot_t;

/* Caller holds no lock; the checkpoint is consistent by itself. */
int me_snapshot_create(me_shard_t *s, const char *id, me_shard_snapshot_t *out, char *err, size_t errcap);
/* *out malloc'd (free()), sorted by id. */
int me_snapshot_list(const char *data_dir, me_shard_snapshot_t **out, size_t *n, char *err, size_t errcap);
int me_snapshot_delete(const char *data_dir, const char *id, char *err, size_t errcap);
/* Before storage opens: the snapshot becomes the data directory. */
int me_snapshot_restore(const char *data_dir, const char *id, char *err, size_t errcap);

/* Off-site copies: snapshot id as one tar archive (libarchive) whose last
 * member, ID/CHECKSUMS, lists every file's size and CRC-32; import checks
 * every byte against it before the snapshot appears in
 * DATA-DIR.snapshots (a flipped byte anywhere: refused, nothing kept).
 * *id_out (import) gets the snapshot's id. */
int me_snapshot_export(const char *data_dir, const char *id, const char *archive, char *err, size_t errcap);
int me_snapshot_import(const char *data_dir, const char *archive, char *id_out, size_t id_cap, char *err,
                       size_t errcap);

#endif
