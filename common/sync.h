/* Write versions and the anti-entropy digest, shared by shards (which keep
 * them) and the coordinator (which stamps writes and repairs replicas).
 *
 * A version orders writes to one id across replicas: a replica keeps the
 * highest version it has seen of an id, a delete included (a tombstone), so
 * writes can arrive in any order, twice, or late from a repair and every
 * replica still ends with the same state (last writer wins by version).
 * Versions are microseconds since the epoch times 16, made strictly
 * increasing within a process, so a coordinator's writes are ordered as it
 * stamped them and writes from different processes by their clocks.
 *
 * The digest: a collection's ids are cut into ME_SYNC_BUCKETS buckets by id
 * hash; a bucket's digest is the XOR of me_sync_entry_hash over its ids,
 * so it is kept up to date in O(1) a write, and two replicas with equal
 * digests hold the same versions (with probability 1 - 2^-64 a bucket). */
#ifndef ME_SYNC_H
#define ME_SYNC_H

#include <stddef.h>
#include <stdint.h>

#define ME_SYNC_BUCKETS 256

/* The next write version of this process (thread-safe). */
uint64_t me_version_next(void);

unsigned me_sync_bucket(const char *id, size_t len);
uint64_t me_sync_entry_hash(const char *id, size_t len, uint64_t version, int deleted);

#endif
