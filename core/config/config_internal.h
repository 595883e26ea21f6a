/* Private to the config loader (config*.c): the parse context that collects
 * errors, and the small field-table machinery every section is built on.
 * Nothing outside core/config*.c includes this. */
#ifndef SLUICE_CONFIG_INTERNAL_H
#define SLUICE_CONFIG_INTERNAL_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define CFG_PATH_MAX 256
#define CFG_FILE_MAX (16u << 20) /* config and key files: 16 MiB at most */

/* Where a client key came from, so a duplicate can name both places. */
struct key_origin {
    bool from_file;
    uint32_t index;
};

struct parse_ctx {
    struct config *cfg;
    /* absolute; relative paths are resolved against it */
    char base_dir[PATH_MAX];

    /* error sink: "path: message\n" lines, as many as fit */
    char *err;
    size_t errlen;
    size_t used;
    unsigned error_count;
    unsigned dropped;

    /* client keys collected from auth.keys and auth.key_file, sorted at the
     * end of the parse */
    struct key_origin *key_origins;
    size_t key_cap;
    bool keys_overflow; /* "too many keys" reported */
};

void cfg_error(struct parse_ctx *ctx, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "limits" + "max_body_bytes" → "limits.max_body_bytes"; keys that are not
 * plain identifiers are quoted: fallbacks["gpt-4o"]. An empty parent gives
 * the bare key. Keys that look like secrets are redacted. */
void cfg_path_key(char *out, size_t cap, const char *parent, const char *key);
/* "upstreams" + 2 → "upstreams[2]" */
void cfg_path_index(char *out, size_t cap, const char *parent, size_t index);

/* Resolves value against ctx->base_dir into out (absolute, normalised).
 * Reports an error at path and returns false when it does not fit. */
bool cfg_resolve_path(struct parse_ctx *ctx, const char *path,
                      const char *value, char *out, size_t cap);

/* Reads a whole regular file (at most CFG_FILE_MAX bytes), NUL-terminated.
 * On failure returns NULL and describes why in why[]. */
char *cfg_read_file(const char *file, size_t *len, char *why, size_t whylen);

/* True when s could be a credential rather than a name: "sk-..." or long. */
bool cfg_looks_like_secret(const char *s, size_t len);

/* ---- field tables (config_parse.c) ---- */

enum cfg_kind {
    CFG_KIND_UINT,   /* JSON integer in [min, max], times scale */
    CFG_KIND_BOOL,   /* JSON true/false */
    CFG_KIND_STRING, /* JSON string, optional validate() */
    CFG_KIND_ENUM,   /* JSON string, one of choices */
    CFG_KIND_PATH,   /* JSON string resolved against the config dir */
    CFG_KIND_CUSTOM, /* known key, parsed by the section's own code */
};

struct cfg_field {
    const char *key;
    enum cfg_kind kind;
    size_t offset; /* into the struct passed to cfg_apply_fields */
    size_t size;   /* of the destination (integer width or buffer size) */
    uint64_t min, max, scale;
    /* STRING: returns an error message, or NULL when the value is fine.
     * Never echo the value: it may be a secret pasted in the wrong place. */
    const char *(*validate)(const char *value, size_t len);
    const char *const *choices; /* ENUM: NULL-terminated */
};

#define CFG_MEMBER_SIZE(type, member) sizeof(((type *)0)->member)

#define CFG_UINT(k, type, member, lo, hi)                                      \
    {                                                                          \
        .key = (k), .kind = CFG_KIND_UINT, .offset = offsetof(type, member),   \
        .size = CFG_MEMBER_SIZE(type, member), .min = (lo), .max = (hi),       \
        .scale = 1                                                             \
    }
#define CFG_UINT_SCALED(k, type, member, lo, hi, mult)                         \
    {                                                                          \
        .key = (k), .kind = CFG_KIND_UINT, .offset = offsetof(type, member),   \
        .size = CFG_MEMBER_SIZE(type, member), .min = (lo), .max = (hi),       \
        .scale = (mult)                                                        \
    }
#define CFG_BOOL(k, type, member)                                              \
    {                                                                          \
        .key = (k), .kind = CFG_KIND_BOOL, .offset = offsetof(type, member),   \
        .size = CFG_MEMBER_SIZE(type, member)                                  \
    }
#define CFG_STRING(k, type, member, check)                                     \
    {                                                                          \
        .key = (k), .kind = CFG_KIND_STRING, .offset = offsetof(type, member), \
        .size = CFG_MEMBER_SIZE(type, member), .validate = (check)             \
    }
#define CFG_ENUM(k, type, member, list)                                        \
    {                                                                          \
        .key = (k), .kind = CFG_KIND_ENUM, .offset = offsetof(type, member),   \
        .size = CFG_MEMBER_SIZE(type, member), .choices = (list)               \
    }
#define CFG_PATH(k, type, member)                                              \
    {                                                                          \
        .key = (k), .kind = CFG_KIND_PATH, .offset = offsetof(type, member),   \
        .size = CFG_MEMBER_SIZE(type, member)                                  \
    }
#define CFG_CUSTOM(k)                                                          \
    {                                                                          \
        .key = (k), .kind = CFG_KIND_CUSTOM                                    \
    }
#define CFG_END                                                                \
    {                                                                          \
        .key = NULL                                                            \
    }

/* Applies every non-CUSTOM field present in obj to base; reports unknown
 * keys (with a "did you mean" hint) and type/range errors. obj must be an
 * object. */
void cfg_apply_fields(struct parse_ctx *ctx, json_t *obj, const char *path,
                      const struct cfg_field *fields, void *base);

/* Returns obj[key] if it is of the wanted JSON type; NULL if absent (no
 * error) or of another type (error "must be an object" / "an array"). */
json_t *cfg_get_object(struct parse_ctx *ctx, json_t *obj, const char *path,
                       const char *key);
json_t *cfg_get_array(struct parse_ctx *ctx, json_t *obj, const char *path,
                      const char *key);

/* Name syntax for upstreams, plugins and instances: [A-Za-z0-9_.-]{1,63}. */
const char *cfg_check_name(const char *value, size_t len);

/* ---- sections ---- */
void cfg_parse_root(struct parse_ctx *ctx, json_t *root); /* config_parse.c */
void cfg_parse_upstreams(struct parse_ctx *ctx, json_t *root);
void cfg_parse_fallbacks(struct parse_ctx *ctx, json_t *root);
void cfg_parse_pipeline(struct parse_ctx *ctx, json_t *root);
void cfg_parse_auth(struct parse_ctx *ctx, json_t *auth); /* config_keys.c */
/* Sorts the collected keys for bsearch and reports duplicates. */
void cfg_finish_keys(struct parse_ctx *ctx);

#endif
