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

#endif
