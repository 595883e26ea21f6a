/* sluice plugin SDK: the plugin descriptor and its hooks.
 *
 * A plugin is a shared object that exports exactly one symbol,
 * sluice_plugin_v1(), returning a pointer to a static struct sluice_plugin.
 * The core checks abi_major, abi_minor and struct_size at load time and
 * refuses the file with a message naming it when they do not fit.
 *
 * ABI log (append a line for every change, Varnish-style):
 *   1.0  first stable SDK
 *   1.1  host: call_upstream/call_cancel (plugin-made upstream calls),
 *        timer_start/timer_cancel (per-worker timers outside requests),
 *        health_get, upstream_count/upstream_name/upstream_model;
 *        descriptor: on_cleanup (per-request state, runs once however the
 *        request ended)
 *   1.1  config: DURATION, SIZE, ARRAY, MAP, OBJECT and JSON_TEXT key types,
 *        flags ONE_OR_MANY, NUMBER_AS_TEXT, JSON_IN_STRING, MARK_UNSET;
 *        sluice_cfg_field gains elem, fields, size, max_items; the
 *        descriptor gains cfg_field_size (set by SLUICE_PLUGIN_HEADER)
 *   1.1  host: route_add/req_method/req_query (routes a plugin answers
 *        itself, sluice_route_fn), multipart_parse (sluice_form_part),
 *        self_submit (sluice_self_request/sluice_self_result: requests the
 *        gateway makes to itself through the whole pipeline)
 *   1.1  descriptor: on_attempt (retries and fallbacks pass the pacing and
 *        admission plugins again, for the upstream they go to)
 *   1.1  streams: host resp_whole_body (a streamed answer assembled into
 *        its chat.completion / text_completion); descriptor whole_streams
 *        (asks the core to assemble); respond() with a chat.completion body
 *        answers a `stream: true` request as SSE
 *   1.1  host: counter_vec/gauge_vec/histogram_vec + metric_with (labelled
 *        metric families, at most max_values values per label, then "other")
 *
 * Rules: bump SLUICE_ABI_MINOR when something is appended to a struct or a
 * table; bump SLUICE_ABI_MAJOR when anything is removed or changes meaning.
 * Structs crossing the boundary are append-only.
 */
#ifndef SLUICE_PLUGIN_H
#define SLUICE_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SLUICE_ABI_MAJOR 1
#define SLUICE_ABI_MINOR 1

/* Length-counted string; ptr is not necessarily NUL-terminated. An absent
 * value has ptr == NULL and len == 0. */
struct sluice_str {
    const char *ptr;
    size_t len;
};

enum sluice_status {
    SLUICE_OK = 0,
    SLUICE_ENOMEM = 1,
    SLUICE_EINVAL = 2,
    SLUICE_ENOENT = 3,
    SLUICE_EPHASE = 4, /* call not allowed in this phase */
    SLUICE_ETOOBIG = 5,
};

/* What a request-phase hook tells the core to do next. */
enum sluice_action {
    SLUICE_CONTINUE = 0, /* run the next plugin */
    SLUICE_RESPOND = 1,  /* a response was set with reject() or respond() */
    SLUICE_SUSPEND = 2,  /* the plugin arranged resume_after() or wake(); the
                            core calls the same hook again when that fires */
};

/* Declarative config keys. The core validates the plugin's JSON config
 * against this table, applies defaults, and fills a struct of config_size
 * bytes at the given offsets before create() runs. */
enum sluice_cfg_type {
    SLUICE_CFG_INT = 1,    /* int64_t */
    SLUICE_CFG_DOUBLE = 2, /* double */
    SLUICE_CFG_BOOL = 3,   /* bool */
    SLUICE_CFG_STRING = 4, /* const char *, owned by the core, lives as long
                              as the plugin instance */
    SLUICE_CFG_ENUM = 5,   /* int: index into choices[] */
    SLUICE_CFG_JSON = 6,   /* any JSON value; not copied into the struct, the
                              plugin reads it from raw_json in create()
                              (1.1: prefer ARRAY, MAP, OBJECT, JSON_TEXT) */
    /* 1.1 */
    SLUICE_CFG_DURATION = 7,   /* int64_t nanoseconds from "250ms", "30s",
                                  "1h30m", "2d" (units ns us ms s m h d); a bare
                                  number counts as seconds. min/max: seconds */
    SLUICE_CFG_SIZE = 8,       /* int64_t bytes from "64MiB", "10KB", "512B"
                                  (KB = 1000, KiB = 1024, up to TB/TiB); a bare
                                  integer counts as bytes. min/max: bytes */
    SLUICE_CFG_ARRAY = 9,      /* struct sluice_cfg_list of `elem` values */
    SLUICE_CFG_MAP = 10,       /* struct sluice_cfg_map: a JSON object of
                                  name -> `elem` value, in config order */
    SLUICE_CFG_OBJECT = 11,    /* an object with the keys in `fields`, filled
                                  in place: their offsets are relative to this
                                  field's slot; `size` is sizeof that struct */
    SLUICE_CFG_JSON_TEXT = 12, /* any JSON value as compact JSON text
                                  (const char *, owned by the core) */
};

enum sluice_cfg_flags {
    SLUICE_CFG_REQUIRED = 1u << 0,
    SLUICE_CFG_HAS_MIN = 1u << 1,
    SLUICE_CFG_HAS_MAX = 1u << 2,
    SLUICE_CFG_MIN_EXCLUSIVE = 1u << 3, /* value must be > min, not >= */
    /* 1.1 */
    SLUICE_CFG_ONE_OR_MANY = 1u << 4,    /* ARRAY: a lone element stands for a
                                            list of one ("5xx" = ["5xx"]) */
    SLUICE_CFG_NUMBER_AS_TEXT = 1u << 5, /* STRING: an integer is accepted and
                                            stored as its decimal text */
    SLUICE_CFG_JSON_IN_STRING = 1u << 6, /* JSON_TEXT: a string holds the JSON
                                            text itself (must parse; kept as
                                            written) */
    SLUICE_CFG_MARK_UNSET = 1u << 7, /* INT, DURATION, SIZE: absent without a
                                        default stores -1 (DOUBLE: NaN), so 0
                                        stays a value the user can give */
};

/* What ARRAY and MAP keys fill. Elements are laid out like a C array of the
 * element's type (int64_t, double, bool, const char *, int for ENUM, the
 * struct of an OBJECT element, ...). Owned by the core, read-only, valid as
 * long as the plugin instance. A JSON null or an absent key gives count 0. */
struct sluice_cfg_list {
    size_t count;
    const void *items;
};

struct sluice_cfg_map {
    size_t count;
    const char *const *keys; /* NUL-terminated, in config order */
    const void *values;      /* values[i] belongs to keys[i] */
};

/* The i-th element as a `const type *`, e.g.
 * SLUICE_CFG_VALUE(cfg->tiers, struct tier_limits, i)->limit. */
#define SLUICE_CFG_ITEM(list, type, i) ((const type *)(list).items + (i))
#define SLUICE_CFG_VALUE(map, type, i) ((const type *)(map).values + (i))

struct sluice_cfg_field {
    const char *name;
    enum sluice_cfg_type type;
    uint32_t flags;
    const char *default_value;  /* JSON text, e.g. "60", "true", "\"global\"";
                                   NULL: no default (zero) */
    double min, max;            /* used with HAS_MIN / HAS_MAX */
    const char *const *choices; /* ENUM only; NULL-terminated */
    size_t offset;              /* offsetof() into the config struct */
    const char *help;           /* one line, shown by `sluice plugin-help` */
    /* 1.1: read only from plugins whose cfg_field_size covers them. */
    const struct sluice_cfg_field *elem;   /* ARRAY, MAP: one element's type,
                                              flags, bounds, choices (its name,
                                              offset and default unused) */
    const struct sluice_cfg_field *fields; /* OBJECT: its keys, ends with {0} */
    size_t size;      /* OBJECT: sizeof the struct its keys fill */
    size_t max_items; /* ARRAY, MAP: most elements; 0: no limit */
};

/* Errors from create(). The core prefixes the message with the instance's
 * JSON path (e.g. "pipeline[2].config") when it has one. */
struct sluice_error {
    char message[256];
};

struct sluice_host;
struct sluice_req; /* opaque: read and change it only through the host */

struct sluice_plugin {
    uint32_t abi_major, abi_minor, struct_size; /* SLUICE_PLUGIN_HEADER */
    const char *name;    /* what the pipeline config names: "token_bucket" */
    const char *version; /* the plugin's own version */
    const char *summary; /* one line for `sluice plugin-help` */
    const struct sluice_cfg_field *config; /* table, ends with {0} */
    size_t config_size;                    /* bytes of the filled struct */
    size_t req_state_size; /* zeroed bytes per request, owned by the core */

    /* Main thread, before workers start (and on reload). `host` stays valid
     * until destroy(). `config` points at the validated struct; raw_json is
     * the instance's "config" object as JSON text. */
    int (*create)(const struct sluice_host *host, const void *config,
                  struct sluice_str raw_json, void **self,
                  struct sluice_error *err);
    /* Main thread, after no worker can reach the instance any more. */
    void (*destroy)(void *self);
    /* Optional, once on each worker thread after create / before destroy. */
    int (*thread_init)(void *self, unsigned worker);
    void (*thread_fini)(void *self, unsigned worker);

    /* Per request, on the request's worker thread; NULL = not interested.
     * on_request runs in config order, before the upstream call. */
    enum sluice_action (*on_request)(void *self, struct sluice_req *r,
                                     void *state);
    /* Once per upstream attempt (retries make several): when its status
     * and headers are known, or when it failed without a response
     * (resp_status 0, resp_outcome says why). No body byte has reached the
     * client yet. May RESPOND to replace the upstream answer. */
    enum sluice_action (*on_upstream_response)(void *self, struct sluice_req *r,
                                               void *state);
    /* The upstream exchange is over (complete, failed or cut); usage is
     * known when the provider reported it. Runs in reverse config order.
     * On a relayed stream it runs before the client sees [DONE] and the
     * end of the body: a client that acts on [DONE] at once finds what
     * this hook recorded (a cached answer, the spend). */
    void (*on_response)(void *self, struct sluice_req *r, void *state);
    /* Exactly once per request that reached this plugin's on_request,
     * however it ended. Runs in reverse config order. */
    void (*on_log)(void *self, struct sluice_req *r, void *state);

    /* Optional: live state for the admin endpoint, as one JSON value.
     * snprintf semantics: write at most cap bytes, return the full length;
     * the core calls again with a larger buffer when needed. Any thread. */
    size_t (*status_json)(void *self, char *buf, size_t cap);

    /* 1.x hooks are appended here; the core reads one only if struct_size
     * covers it. */

    /* ---- 1.1: per-request cleanup ----
     * Optional. Request thread, exactly once per request that reached this
     * plugin's on_request (the same requests as on_log), however it ended:
     * answered, rejected, failed, or the client gone while suspended. Runs
     * after on_log, after every upstream call the request still had in
     * flight was cancelled (their callbacks ran with
     * SLUICE_OUTCOME_CLIENT_GONE), in reverse config order, before `state`
     * and req_alloc() memory are freed. Release what `state` points to
     * (malloc'd buffers, references into shared tables). Only req_id,
     * var_get and the read-only request members may be called here. */
    void (*on_cleanup)(void *self, struct sluice_req *r, void *state);

    /* ---- 1.1: sizeof(struct sluice_cfg_field) the config table was built
     * with (SLUICE_PLUGIN_HEADER sets it); the core walks the table, and
     * reads a field's 1.1 members, by this size. ---- */
    size_t cfg_field_size;

    /* ---- 1.1: every attempt paced ----
     * Optional. Before each retry or fallback attempt (the second attempt
     * of a request on; the first one is covered by on_request), on the
     * request's thread, in config order, for every plugin whose on_request
     * ran. The attempt that failed is still readable (resp_status,
     * resp_header, resp_outcome, resp_attempt_count() = attempts made so
     * far) and req_upstream() names where the next one goes. Same contract
     * as on_request: CONTINUE lets the attempt go, SUSPEND waits
     * (resume_after/wake_token; the hook is called again), RESPOND answers
     * the client instead (reject()). Limiters and admission settle the
     * failed attempt here and take a token or a slot of the next one's
     * upstream, so retries cannot flood a rate-limited provider. A wait
     * ends at the retry deadline at the latest: the hook is then not
     * called again, the client gets the failed attempt's answer, and
     * on_log (run as always) gives back what the waiting attempt held. A
     * plugin without it (1.0) sees one on_request per request. */
    enum sluice_action (*on_attempt)(void *self, struct sluice_req *r,
                                     void *state);

    /* ---- 1.1: whole streamed answers ----
     * true: this plugin reads streamed answers whole through
     * host->resp_whole_body(). The core assembles the streams of chat and
     * completions requests only on pipelines where some plugin sets it, so
     * other pipelines keep relaying streams without buffering them. */
    bool whole_streams;
};

#define SLUICE_PLUGIN_HEADER                                                   \
    .abi_major = SLUICE_ABI_MAJOR, .abi_minor = SLUICE_ABI_MINOR,              \
    .struct_size = sizeof(struct sluice_plugin),                               \
    .cfg_field_size = sizeof(struct sluice_cfg_field)

/* The one exported symbol; the major version is part of its name. */
#define SLUICE_PLUGIN_ENTRY sluice_plugin_v1
#define SLUICE_PLUGIN_ENTRY_NAME "sluice_plugin_v1"
#define SLUICE_PLUGIN_EXPORT(desc)                                             \
    __attribute__((visibility("default"))) const struct sluice_plugin *        \
    SLUICE_PLUGIN_ENTRY(void)                                                  \
    {                                                                          \
        return &(desc);                                                        \
    }

#ifdef __cplusplus
}
#endif
#endif
