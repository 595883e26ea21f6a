/* cache_config: the plugin's config keys (see README.md for each). */
#ifndef SLUICE_CACHE_CONFIG_H
#define SLUICE_CACHE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/rl_backend.h"
#include "sluice/plugin.h"

enum { CACHE_SCOPE_TENANT = 0, CACHE_SCOPE_USER = 1, CACHE_SCOPE_GLOBAL = 2 };

struct cache_semantic_config {
    const char *upstream; /* "" = the semantic layer is off */
    const char *model;
    int64_t dimensions;
    double threshold;
    bool guard;
    int64_t timeout_ns;
    int64_t max_text_bytes;
    int64_t max_entries;
    int64_t ann_threshold;
    int64_t ef_search;
};

struct cache_snapshot_config {
    const char *path; /* "" = no snapshots */
    int64_t interval_ns;
};

struct cache_config {
    int scope;
    int64_t ttl_ns;
    int64_t max_entries;
    int64_t max_bytes;
    int64_t max_entry_bytes;
    double max_temperature;
    double missing_temperature;
    struct sluice_cfg_list ignore_fields;  /* of const char * */
    struct sluice_cfg_list finish_reasons; /* of const char * */
    int64_t sweep_interval_ns;
    const char *cache_only_when;
    int64_t cache_only_retry_after_ns;
    struct cache_semantic_config semantic;
    struct cache_snapshot_config snapshot;
    struct rl_backend_cfg shared; /* backend, redis_url, ... */
};

extern const struct sluice_cfg_field cache_config_fields[];

#endif
