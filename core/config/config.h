/* The gateway's configuration: one JSON file, validated as a whole before
 * anything uses it. Every error names its JSON path, e.g.
 * "upstreams[1].base_url: must start with http:// or https://".
 *
 * A loaded config is immutable and reference-counted: workers hold the
 * generation they started a request with, so SIGHUP can swap in a new one
 * without disturbing requests in flight.
 */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokens/tokens_config.h"

#define CONFIG_MAX_UPSTREAMS 32
#define CONFIG_MAX_MODELS 64
#define CONFIG_MAX_FALLBACKS 8
#define CONFIG_MAX_PIPELINE 32
#define CONFIG_MAX_KEYS 4096

struct upstream_config {
    char name[64];
    char base_url[512]; /* without trailing slash, e.g. http://127.0.0.1:9099/v1
                         */
    char api_key_env[128]; /* NAME of the env var holding the key; "" = none */
    bool require_key; /* disabled (skipped by routing) when the env var is unset
                       */
    size_t model_count;
    char models[CONFIG_MAX_MODELS][128]; /* "*" = any model */
    uint32_t max_connections;
    uint32_t connect_timeout_ms;
    uint32_t first_byte_timeout_ms;
    uint32_t idle_timeout_ms;
    /* http_client: false = "native" (sluice's HTTP/1.1 client for http://),
     * true = "curl". https:// always goes through libcurl. */
    bool use_curl;
};

/* One step of a fallback chain: another upstream and/or another model. */
struct fallback_step {
    char upstream[64]; /* "" = keep the upstream that serves `model` */
    char model[128];   /* "" = keep the model */
};

struct fallback_chain {
    char model[128]; /* the model (or alias) this chain applies to; "*" = all */
    size_t step_count;
    struct fallback_step steps[CONFIG_MAX_FALLBACKS];
};

struct retry_config {
    uint32_t max_attempts; /* total attempts incl. the first; 1 = no retry */
    uint32_t
        base_delay_ms; /* full jitter: sleep = rand(0, min(cap, base*2^n)) */
    uint32_t max_delay_ms;
    uint32_t deadline_ms;   /* total time budget for all attempts */
    bool on_other_upstream; /* retry on the next step of the fallback chain */
    uint64_t on_status[10]; /* retried statuses, bit s%64 of word s/64 */
};

struct client_key {
    unsigned char sha256[32];
    char tenant[64];
    char user[64];
    char tier[32];
    char priority[16]; /* default priority for this key, "" = standard */
    bool admin;        /* may read /metrics and /admin/status (main listener) */
};

struct pipeline_entry {
    char plugin[64]; /* plugin name, resolved to <plugin_dir>/<plugin>.so */
    char name[64];   /* instance name (defaults to plugin name, then _2, _3) */
    char path[256];  /* explicit .so path, "" = from plugin_dir */
    json_t *config;  /* the "config" object (owned; never NULL) */
};

struct policy_config {
    char script[512]; /* "" = no policy */
    bool fail_open;   /* on a policy error: true = continue, false = 500 */
    uint64_t instruction_budget;
    size_t memory_limit_bytes;
    size_t max_pattern_work;
    bool watch; /* reload when the file's mtime changes */
};

struct config {
    atomic_int refs;
    char source_path[512];

    char listen[128];
    char admin_listen[128]; /* "" = admin endpoints on the main listener */
    unsigned workers;       /* 0 = number of cores */

    /* connection handling */
    uint32_t max_connections;
    size_t max_body_bytes;
    size_t max_header_bytes;
    size_t max_headers;
    uint32_t header_timeout_ms;
    uint32_t body_timeout_ms;
    uint32_t idle_timeout_ms;
    uint32_t send_timeout_ms;
    uint32_t drain_timeout_ms;
    size_t
        stream_high_water; /* pause the upstream above this many queued bytes */
    size_t max_response_bytes;          /* one buffered upstream answer */
    size_t max_buffered_response_bytes; /* all of them together (0: no cap) */

    /* identity */
    bool auth_enabled;
    size_t key_count;
    struct client_key *keys; /* sorted by sha256 for bsearch */

    size_t upstream_count;
    struct upstream_config upstreams[CONFIG_MAX_UPSTREAMS];
    size_t fallback_count;
    struct fallback_chain fallbacks[CONFIG_MAX_UPSTREAMS];
    struct retry_config retry;

    struct policy_config policy;

    char plugin_dir[512];
    size_t pipeline_count;
    struct pipeline_entry pipeline[CONFIG_MAX_PIPELINE];

    char log_level[16];   /* error | warn | info | debug */
    char access_log[512]; /* "" = off, "-" = stderr, else a file path */

    struct tokens_config tokens; /* token counting: byte cap, model table */
};

/* Parses and validates the file. On failure returns NULL and writes one
 * error per line into err ("path: message\n"), as many as fit. Plugin
 * configs are checked later by the loader (they need the plugin's table).
 * Relative paths (policy script, plugin_dir, key_file) are resolved against
 * the config file's directory. */
struct config *config_load(const char *path, char *err, size_t errlen);
/* Same, from JSON text; base_dir resolves relative paths. */
struct config *config_parse(const char *json_text, const char *base_dir,
                            const char *source_name, char *err, size_t errlen);

struct config *config_ref(struct config *c);
void config_unref(struct config *c);

/* The first enabled upstream serving `model` (exact name, or "*"), or NULL. */
const struct upstream_config *
config_route_model(const struct config *c, const char *model, size_t model_len);
const struct upstream_config *
config_upstream(const struct config *c, const char *name, size_t name_len);
/* False when require_key is set and the key env var is empty. */
bool config_upstream_enabled(const struct upstream_config *u);
const struct fallback_chain *
config_fallbacks(const struct config *c, const char *model, size_t model_len);
/* Looks up a client key (raw bearer token) by its SHA-256. */
const struct client_key *config_find_key(const struct config *c,
                                         const char *token, size_t len);

/* The path of the bundled default config (installed or in the source tree). */
const char *config_default_path(void);

#endif
