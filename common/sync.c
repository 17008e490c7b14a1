#include "common/sync.h"

#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "common/hash.h"

static _Atomic uint64_t last_version;

/* Wall-clock time: versions are compared across processes and restarts. */
uint64_t me_version_next(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now = ((uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u) * 16u, prev = atomic_load(&last_version), next;
    do next = now > prev ? now : prev + 1;
    while (!atomic_compare_exchange_weak(&last_version, &prev, next));
    return next;
}

unsigned me_sync_bucket(const char *id, size_t len) {
    return (unsigned)(me_hash64(id, len) >> 40) % ME_SYNC_BUCKETS;
}

uint64_t me_sync_entry_hash(const char *id, size_t len, uint64_t version, int deleted) {
    return me_splitmix64_mix(me_hash64(id, len) ^ me_splitmix64_mix(version * 2u + (deleted ? 1u : 0u)));
}
