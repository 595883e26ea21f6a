/* Client keys: the "auth" section, the key file, and the per-request lookup.
 * Only SHA-256 digests are stored; the plaintext key exists in the request
 * and nowhere else. */
#include "config_internal.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* tenant, user and tier end up in metric labels and log lines. */
static const char *check_label(const char *s, size_t len)
{
    static const char *const msg =
        "must be 1 or more characters from [A-Za-z0-9_.@:-]";
    if (len == 0)
        return msg;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
              (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '@' ||
              ch == ':' || ch == '-'))
            return msg;
    }
    return NULL;
}

static const char *const priorities[] = {"critical", "realtime", "standard",
                                         "batch",    "low",      NULL};

static const struct cfg_field key_fields[] = {
    CFG_CUSTOM("sha256"),
    CFG_STRING("tenant", struct client_key, tenant, check_label),
    CFG_STRING("user", struct client_key, user, check_label),
    CFG_STRING("tier", struct client_key, tier, check_label),
    CFG_ENUM("priority", struct client_key, priority, priorities),
    CFG_BOOL("admin", struct client_key, admin),
    CFG_END,
};

static const struct cfg_field auth_fields[] = {
    CFG_BOOL("enabled", struct config, auth_enabled),
    CFG_CUSTOM("keys"),
    CFG_CUSTOM("key_file"),
    CFG_END,
};

static int hex_value(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

static bool decode_sha256(const char *hex, size_t len, unsigned char out[32])
{
    if (len != 64)
        return false;
    for (size_t i = 0; i < 32; i++) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return true;
}

/* Appends a slot to cfg->keys (and its origin); NULL when full. */
static struct client_key *add_key(struct parse_ctx *ctx,
                                  struct key_origin origin)
{
    struct config *c = ctx->cfg;
    if (c->key_count == CONFIG_MAX_KEYS) {
        if (!ctx->keys_overflow)
            cfg_error(ctx, "auth", "at most %d client keys", CONFIG_MAX_KEYS);
        ctx->keys_overflow = true;
        return NULL;
    }
    if (c->key_count == ctx->key_cap) {
        size_t cap = ctx->key_cap ? ctx->key_cap * 2 : 16;
        struct client_key *keys = realloc(c->keys, cap * sizeof *keys);
        if (keys)
            c->keys = keys;
        struct key_origin *o =
            realloc(ctx->key_origins, cap * sizeof *ctx->key_origins);
        if (o)
            ctx->key_origins = o;
        if (!keys || !o) {
            cfg_error(ctx, "auth", "out of memory");
            return NULL;
        }
        ctx->key_cap = cap;
    }
    ctx->key_origins[c->key_count] = origin;
    struct client_key *k = &c->keys[c->key_count];
    memset(k, 0, sizeof *k);
    return k;
}

static void parse_key(struct parse_ctx *ctx, json_t *obj, const char *path,
                      struct key_origin origin)
{
    if (!json_is_object(obj)) {
        cfg_error(ctx, path, "must be an object");
        return;
    }
    struct client_key *k = add_key(ctx, origin);
    if (!k)
        return;
    snprintf(k->tenant, sizeof k->tenant, "default");
    snprintf(k->tier, sizeof k->tier, "default");
    unsigned errors_before = ctx->error_count;
    cfg_apply_fields(ctx, obj, path, key_fields, k);

    char p[CFG_PATH_MAX];
    cfg_path_key(p, sizeof p, path, "sha256");
    json_t *sha = json_object_get(obj, "sha256");
    if (!sha) {
        cfg_error(ctx, p, "required (hex SHA-256 of the client key)");
    } else if (!json_is_string(sha) ||
               !decode_sha256(json_string_value(sha), json_string_length(sha),
                              k->sha256)) {
        /* Never echo: a plaintext key pasted here must not reach a log. */
        cfg_error(ctx, p,
                  "must be 64 hex characters: the SHA-256 of the "
                  "key, never the key itself");
    }
    if (ctx->error_count == errors_before)
        ctx->cfg->key_count++;
}

static void parse_key_array(struct parse_ctx *ctx, json_t *arr,
                            const char *path, bool from_file)
{
    size_t i;
    json_t *item;
    json_array_foreach(arr, i, item)
    {
        char p[CFG_PATH_MAX];
        cfg_path_index(p, sizeof p, path, i);
        parse_key(
            ctx, item, p,
            (struct key_origin){.from_file = from_file, .index = (uint32_t)i});
    }
}

static void load_key_file(struct parse_ctx *ctx, json_t *val)
{
    static const char *const path = "auth.key_file";
    if (!json_is_string(val) || json_string_length(val) == 0) {
        cfg_error(ctx, path, "must be a non-empty string (a file path)");
        return;
    }
    char file[512];
    if (!cfg_resolve_path(ctx, path, json_string_value(val), file, sizeof file))
        return;
    char why[160];
    size_t len = 0;
    char *text = cfg_read_file(file, &len, why, sizeof why);
    if (!text) {
        cfg_error(ctx, path, "%s: %s", file, why);
        return;
    }
    json_error_t jerr;
    json_t *arr = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (!arr) {
        cfg_error(ctx, path, "%s:%d:%d: %s", file, jerr.line, jerr.column,
                  jerr.text);
        return;
    }
    if (json_is_array(arr))
        parse_key_array(ctx, arr, path, true);
    else
        cfg_error(ctx, path, "%s: must hold a JSON array of key objects", file);
    json_decref(arr);
}

void cfg_parse_auth(struct parse_ctx *ctx, json_t *auth)
{
    cfg_apply_fields(ctx, auth, "auth", auth_fields, ctx->cfg);
    size_t entries = 0;
    json_t *keys = cfg_get_array(ctx, auth, "auth", "keys");
    if (keys) {
        entries += json_array_size(keys);
        parse_key_array(ctx, keys, "auth.keys", false);
    }
    json_t *file = json_object_get(auth, "key_file");
    if (file) {
        entries++;
        load_key_file(ctx, file);
    }
    if (ctx->cfg->auth_enabled && entries == 0)
        cfg_error(ctx, "auth.enabled",
                  "no client keys configured (add auth.keys or "
                  "auth.key_file)");
}

/* ---- sorting ---- */

static int compare_keys(const void *a, const void *b, void *keys)
{
    const struct client_key *k = keys;
    return memcmp(k[*(const size_t *)a].sha256, k[*(const size_t *)b].sha256,
                  sizeof k->sha256);
}

static void origin_path(const struct key_origin *o, char *out, size_t cap)
{
    cfg_path_index(out, cap, o->from_file ? "auth.key_file" : "auth.keys",
                   o->index);
}

void cfg_finish_keys(struct parse_ctx *ctx)
{
    struct config *c = ctx->cfg;
    if (c->key_count < 2)
        return;
    size_t *order = malloc(c->key_count * sizeof *order);
    struct client_key *sorted = malloc(c->key_count * sizeof *sorted);
    if (!order || !sorted) {
        cfg_error(ctx, "auth", "out of memory");
        free(order);
        free(sorted);
        return;
    }
    for (size_t i = 0; i < c->key_count; i++)
        order[i] = i;
    qsort_r(order, c->key_count, sizeof *order, compare_keys, c->keys);

    for (size_t i = 0; i < c->key_count; i++) {
        sorted[i] = c->keys[order[i]];
        if (i > 0 && compare_keys(&order[i - 1], &order[i], c->keys) == 0) {
            /* qsort is not stable: name the later one as the duplicate. */
            size_t a = order[i - 1], b = order[i];
            const struct key_origin *first = &ctx->key_origins[a < b ? a : b];
            const struct key_origin *second = &ctx->key_origins[a < b ? b : a];
            char p1[CFG_PATH_MAX], p2[CFG_PATH_MAX];
            origin_path(first, p1, sizeof p1);
            origin_path(second, p2, sizeof p2);
            cfg_error(ctx, p2, "duplicate key (same sha256 as %s)", p1);
        }
    }
    free(c->keys);
    c->keys = sorted;
    free(order);
}

/* ---- lookup (request path) ---- */

const struct client_key *config_find_key(const struct config *c,
                                         const char *token, size_t len)
{
    if (c->key_count == 0 || len == 0)
        return NULL;
    unsigned char digest[32];
    unsigned int dlen = 0;
    if (EVP_Digest(token, len, digest, &dlen, EVP_sha256(), NULL) != 1 ||
        dlen != sizeof digest)
        return NULL;

    /* Lower-bound binary search. The ordering comparisons only reveal how
     * the token's digest sorts, which says nothing usable about any stored
     * key (finding a preimage is the hard part); the final equality check
     * is constant-time anyway. */
    size_t lo = 0, hi = c->key_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (memcmp(c->keys[mid].sha256, digest, sizeof digest) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < c->key_count &&
        CRYPTO_memcmp(c->keys[lo].sha256, digest, sizeof digest) == 0)
        return &c->keys[lo];
    return NULL;
}
