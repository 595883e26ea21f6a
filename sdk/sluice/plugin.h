/* sluice plugin SDK: the plugin descriptor and its hooks.
 *
 * A plugin is a shared object that exports exactly one symbol,
 * sluice_plugin_v1(), returning a pointer to a static struct sluice_plugin.
 * The core checks abi_major, abi_minor and struct_size at load time and
 * refuses the file with a message naming it when they do not fit.
 *
 * ABI log (append a line for every change, Varnish-style):
 *   1.0  first stable SDK
 *   1.1  host: route_add/req_method/req_query (routes a plugin answers
 *        itself, sluice_route_fn), multipart_parse (sluice_form_part),
 *        self_submit (sluice_self_request/sluice_self_result: requests the
 *        gateway makes to itself through the whole pipeline)
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
#define SLUICE_ABI_MINOR 0

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
                              plugin reads it from raw_json in create() */
};

enum sluice_cfg_flags {
    SLUICE_CFG_REQUIRED = 1u << 0,
    SLUICE_CFG_HAS_MIN = 1u << 1,
    SLUICE_CFG_HAS_MAX = 1u << 2,
    SLUICE_CFG_MIN_EXCLUSIVE = 1u << 3, /* value must be > min, not >= */
};

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
     * known when the provider reported it. Runs in reverse config order. */
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
};

#define SLUICE_PLUGIN_HEADER                                                   \
    .abi_major = SLUICE_ABI_MAJOR, .abi_minor = SLUICE_ABI_MINOR,              \
    .struct_size = sizeof(struct sluice_plugin)

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
