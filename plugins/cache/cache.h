/* cache: the plugin instance and per-request state, shared by the glue
 * (cache.c) and the semantic layer (cache_semantic.c). */
#ifndef SLUICE_CACHE_H
#define SLUICE_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "cache_answer.h"
#include "cache_config.h"
#include "cache_key.h"
#include "cache_redis.h"
#include "cache_store.h"
#include "sluice/host.h"

struct cache_sem;

struct cache {
    const struct sluice_host *host;
    int scope;
    uint64_t ttl_ns;
    size_t max_entry_bytes;
    double max_temperature, missing_temperature;
    const char *cache_only_when; /* health name, NULL: never */
    uint64_t cache_only_retry_ms;
    bool streams; /* the host assembles streamed answers */
    struct cache_key_rules rules;
    const char *finish[16];
    struct cache_finish_rules finish_rules;
    struct cache_store store;
    struct cache_sem *sem;    /* NULL: no semantic layer */
    struct rl_backend shared; /* backend "redis": the shared exact layer */
    sluice_timer_t sweep_timer, snapshot_timer;
    const char *snapshot_path; /* NULL: no snapshots */

    struct sluice_metric *m_hit_exact, *m_hit_semantic, *m_miss;
    struct sluice_metric_vec *v_bypass;
    struct sluice_metric *m_stored, *m_not_stored, *m_evicted, *m_expired;
    struct sluice_metric *m_entries, *m_bytes, *m_lookup, *m_hit_shared;
    struct sluice_metric *m_cache_only;
};

enum cache_embed_state {
    EMBED_NONE = 0,
    EMBED_PENDING,
    EMBED_DONE,   /* vec holds the normalised embedding */
    EMBED_FAILED, /* error, timeout, or the request ended */
};

enum cache_shared_state {
    SHARED_NONE = 0,
    SHARED_PENDING, /* a Redis GET is out */
    SHARED_DONE,    /* answered: body (NULL on a miss) */
};

struct cache_req {
    unsigned char key[CACHE_KEY_BYTES];
    bool store; /* store the upstream's answer under key */
    /* the shared (Redis) exact layer */
    enum cache_shared_state shared;
    struct cache_redis_get *get;
    char *shared_body;
    size_t shared_len;
    uint64_t shared_deadline_ns;
    /* semantic layer */
    unsigned char scope[CACHE_KEY_BYTES];
    enum cache_embed_state embed;
    float *vec;
    const char *text; /* the embedded prompt, borrowed from req_json */
    size_t text_len;
    sluice_call_t call;
    sluice_wake_t ticket;
    uint64_t embed_start_ns;
    struct cache *cache; /* for the embedding callback */
};

/* Serves a stored body as this request's answer; `kind` is the header
 * value, similarity < 0 means none. Falls back to SLUICE_CONTINUE when the
 * body cannot be rewritten. */
enum sluice_action cache_serve(struct cache *c, struct sluice_req *r,
                               struct cache_req *st, const char *stored,
                               size_t len, const char *kind, double similarity);
/* Marks r a miss: header and counter, and its answer will be stored. */
enum sluice_action cache_miss(struct cache *c, struct sluice_req *r,
                              struct cache_req *st);

#endif
