/* The Redis backend of the budgets: shared by every gateway instance on
 * one Redis, one atomic reserve and one atomic settle per request (Lua
 * scripts). A key per budget, scope value and window
 * (PREFIX{cost}:BUDGET:VALUE:WINDOW, all in one Cluster slot) holds the
 * hash {s: spent, r: reserved} in pico-USD and expires a day after its
 * window. The local budget table mirrors the spend for the status, health
 * and downgrade decisions. */
#ifndef CT_REDIS_H
#define CT_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cost_tracker;
struct ct_req;
struct sluice_req;

extern const char *const ct_redis_scripts[2];

/* Starts the reservation of `amount` on st->refs; the request suspends
 * until the reply wakes it (then ct_redis_reserve_result). False: Redis
 * cannot take the call now. */
bool ct_redis_reserve(struct cost_tracker *ct, struct sluice_req *r,
                      struct ct_req *st, uint64_t amount);
/* After the wake: -1 admitted, the index of the refusing budget, or -2
 * when Redis failed (timeout, error). Mirrors the spend it read. */
int ct_redis_reserve_result(struct cost_tracker *ct, struct ct_req *st);
/* Gives the reservation back and charges `actual`; crossings are reported
 * when the reply comes (on this worker). */
void ct_redis_settle(struct cost_tracker *ct, unsigned worker,
                     struct ct_req *st, uint64_t actual);
/* Cancels a reservation call still in flight (request gone). */
void ct_redis_cancel(struct ct_req *st);
/* Per-worker pending settlements, freed when the worker leaves. */
int ct_redis_thread_init(struct cost_tracker *ct, unsigned worker);
void ct_redis_thread_fini(struct cost_tracker *ct, unsigned worker);

#endif
