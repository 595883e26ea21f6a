/* cache_snapshot: the exact layer saved to a file and loaded at start.
 *
 * Written to PATH.tmp (mode 0600), fsync'd and renamed over PATH, so a
 * crash leaves either the old snapshot or the new one, never a torn file.
 * Layout (little-endian): "SLUICEC1", the key seed (u64; keys are seeded
 * hashes, so a restored cache must keep hashing the same way), the entry
 * count (u64), then per entry the key (16 bytes), its expiry as wall-clock
 * ms (i64), the body length (u32) and the body; last, the XXH64 of all
 * preceding bytes. A file that fails any check is ignored as a whole. */
#ifndef SLUICE_CACHE_SNAPSHOT_H
#define SLUICE_CACHE_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "cache_store.h"

/* Saves every live entry. 0, or -1 with the reason in err. */
int cache_snapshot_write(struct cache_store *s, const char *path, uint64_t seed,
                         uint64_t now_ns, int64_t wall_ms, char *err,
                         size_t errlen);

/* Loads PATH into an empty store: each entry keeps the time it had left
 * (entries already expired are skipped, none lives longer than max_ttl_ns
 * from now). *seed receives the snapshot's seed. 0 (and *loaded), 1 when
 * there is no file, -1 with the reason in err. */
int cache_snapshot_load(struct cache_store *s, const char *path, uint64_t *seed,
                        uint64_t now_ns, int64_t wall_ms, uint64_t max_ttl_ns,
                        size_t *loaded, char *err, size_t errlen);

#endif
