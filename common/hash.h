/* Stable hashes: the same bytes give the same value on every machine and
 * every release, because document placement and on-disk tables depend on
 * them. */
#ifndef ME_HASH_H
#define ME_HASH_H

#include <stddef.h>
#include <stdint.h>

/* FNV-1a 64 followed by me_fmix64 for better low bits. */
uint64_t me_hash64(const void *data, size_t len);
/* MurmurHash3's 64-bit finaliser: a bijective mix of all bits. */
uint64_t me_fmix64(uint64_t h);
/* splitmix64's output mix (Stafford's variant 13), and the generator that
 * steps a state by the golden ratio and mixes it: model init, shuffles and
 * tests draw from it, so results do not depend on the C library. */
uint64_t me_splitmix64_mix(uint64_t z);
static inline uint64_t me_splitmix64(uint64_t *state) { return me_splitmix64_mix(*state += 0x9e3779b97f4a7c15ULL); }

#endif
