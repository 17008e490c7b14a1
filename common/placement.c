/* Placement words and jump hashing (see placement.h). */
#include "common/placement.h"

#include <stdio.h>

#include "common/error.h"
#include "common/hash.h"

uint64_t me_placement_pack(me_placement_t p) {
    return (uint64_t)p.epoch << 32 | (uint64_t)(p.phase & 0xff) << 24 | (uint64_t)(p.from & 0xff) << 16 |
           (uint64_t)(p.to & 0xff) << 8;
}

int me_placement_unpack(uint64_t word, me_placement_t *out) {
    me_placement_t p = { (uint32_t)(word >> 32), (int)(word >> 24 & 0xff), (int)(word >> 16 & 0xff),
                         (int)(word >> 8 & 0xff) };
    if ((word & 0xff) || p.phase > ME_PHASE_CLEAN || p.from < 1 || p.to < 1) return ME_EINVAL;
    if (p.phase == ME_PHASE_STABLE && p.from != p.to) return ME_EINVAL;
    if (p.phase != ME_PHASE_STABLE && p.from == p.to) return ME_EINVAL;
    *out = p;
    return 0;
}

const char *me_placement_phase_name(int phase) {
    static const char *const names[] = { "stable", "copy", "switched", "clean" };
    return phase >= 0 && phase <= ME_PHASE_CLEAN ? names[phase] : "?";
}

const char *me_placement_describe(uint64_t word, char *buf, size_t cap) {
    me_placement_t p;
    if (word == 0) snprintf(buf, cap, "none");
    else if (me_placement_unpack(word, &p) != 0) snprintf(buf, cap, "invalid (0x%016llx)", (unsigned long long)word);
    else if (p.phase == ME_PHASE_STABLE) snprintf(buf, cap, "epoch %u, stable at %d groups", p.epoch, p.to);
    else snprintf(buf, cap, "epoch %u, %s %d -> %d groups", p.epoch, me_placement_phase_name(p.phase), p.from, p.to);
    return buf;
}

int me_jump_hash(uint64_t key, int buckets) {
    int64_t b = -1, j = 0;
    while (j < buckets) {
        b = j;
        key = key * 2862933555777941757ULL + 1;
        j = (int64_t)((double)(b + 1) * ((double)(1LL << 31) / (double)((key >> 33) + 1)));
    }
    return (int)b;
}

int me_place(const char *id, size_t len, int n) { return me_jump_hash(me_hash64(id, len), n); }

int me_placement_read_groups(me_placement_t p) { return p.phase == ME_PHASE_COPY ? p.from : p.to; }

int me_placement_span(me_placement_t p) { return p.from > p.to ? p.from : p.to; }

int me_placement_write_targets(me_placement_t p, const char *id, size_t len, int out[2]) {
    uint64_t h = me_hash64(id, len);
    out[0] = me_jump_hash(h, p.phase == ME_PHASE_CLEAN ? p.to : p.from);
    if (p.phase != ME_PHASE_COPY && p.phase != ME_PHASE_SWITCHED) return 1;
    out[1] = me_jump_hash(h, p.to);
    return out[1] == out[0] ? 1 : 2;
}

int me_placement_owns(me_placement_t p, int g, const char *id, size_t len) {
    if (p.phase == ME_PHASE_STABLE) return 1;
    return me_place(id, len, me_placement_read_groups(p)) == g;
}
