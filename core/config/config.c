/* Config entry points: load/parse, defaults, reference counting, and the
 * helpers every section shares (error sink, JSON paths, file paths).
 * The sections themselves live in config_parse.c (top level, limits,
 * retry, policy, log, pipeline), config_route.c (upstreams, fallbacks) and
 * config_keys.c (client keys). */
#include "config_internal.h"
#include "config_retry.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define INSTALLED_CONFIG "/usr/local/etc/sluice/sluice.json"

static void set_defaults(struct config *c)
{
    snprintf(c->listen, sizeof c->listen, "127.0.0.1:8080");
    c->workers = 0;

    c->max_connections = 10000;
    c->max_body_bytes = 4u << 20;
    c->max_response_bytes = 64u << 20;
    c->max_buffered_response_bytes = 512u << 20;
    c->max_header_bytes = 32u << 10;
    c->max_headers = 100;
    c->header_timeout_ms = 10000;
    c->body_timeout_ms = 30000;
    c->idle_timeout_ms = 60000;
    c->send_timeout_ms = 60000;
    c->drain_timeout_ms = 30000;
    c->stream_high_water = 256u << 10;

    c->retry = (struct retry_config){.max_attempts = 3,
                                     .base_delay_ms = 100,
                                     .max_delay_ms = 2000,
                                     .deadline_ms = 10000,
                                     .on_other_upstream = true};
    config_retry_default_statuses(&c->retry);

    c->policy.fail_open = true;
    tokens_config_defaults(&c->tokens);
    c->policy.instruction_budget = 100000;
    c->policy.memory_limit_bytes = 8192u << 10;
    c->policy.max_pattern_work = 100000;

#ifdef SLUICE_BUILD_DIR
    /* Where this build put its plugins (matches `sluice plugin-help`). */
    snprintf(c->plugin_dir, sizeof c->plugin_dir, "%s",
             SLUICE_BUILD_DIR "/plugins");
#endif

    snprintf(c->log_level, sizeof c->log_level, "info");
    snprintf(c->access_log, sizeof c->access_log, "-");
}

/* ---- error sink ---- */

/* Room kept back for the "... and N more errors" trailer. */
#define TRAILER_RESERVE 48

void cfg_error(struct parse_ctx *ctx, const char *path, const char *fmt, ...)
{
    char line[768];
    int n = snprintf(line, sizeof line, "%s: ", path);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < sizeof line)
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);

    ctx->error_count++;
    size_t len = strlen(line);
    size_t reserve = ctx->errlen > 2 * TRAILER_RESERVE ? TRAILER_RESERVE : 0;
    if (!ctx->err || ctx->used + len + 2 + reserve > ctx->errlen) {
        ctx->dropped++;
        return;
    }
    memcpy(ctx->err + ctx->used, line, len);
    ctx->used += len;
    ctx->err[ctx->used++] = '\n';
    ctx->err[ctx->used] = '\0';
}

static void finish_errors(struct parse_ctx *ctx)
{
    if (ctx->dropped == 0 || !ctx->err || ctx->errlen == 0)
        return;
    snprintf(ctx->err + ctx->used, ctx->errlen - ctx->used,
             "... and %u more errors\n", ctx->dropped);
}

/* ---- JSON paths ---- */

static bool is_identifier(const char *key)
{
    if (!(*key == '_' || (*key >= 'A' && *key <= 'Z') ||
          (*key >= 'a' && *key <= 'z')))
        return false;
    for (const char *p = key; *p; p++)
        if (!(*p == '_' || (*p >= '0' && *p <= '9') ||
              (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')))
            return false;
    return true;
}

bool cfg_looks_like_secret(const char *s, size_t len)
{
    return len > 64 || (len >= 3 && (strncmp(s, "sk-", 3) == 0 ||
                                     strncmp(s, "sk_", 3) == 0));
}

void cfg_path_key(char *out, size_t cap, const char *parent, const char *key)
{
    size_t n = (size_t)snprintf(out, cap, "%s", parent);
    if (n >= cap)
        return;
    if (is_identifier(key)) {
        snprintf(out + n, cap - n, "%s%s", *parent ? "." : "", key);
        return;
    }
    if (cfg_looks_like_secret(key, strlen(key))) {
        snprintf(out + n, cap - n, "[<redacted>]");
        return;
    }
    /* Quote anything else, escaping what would break the line. */
    char quoted[CFG_PATH_MAX];
    size_t q = 0;
    for (const unsigned char *p = (const unsigned char *)key;
         *p && q + 5 < sizeof quoted; p++) {
        if (*p == '"' || *p == '\\') {
            quoted[q++] = '\\';
            quoted[q++] = (char)*p;
        } else if (*p < 0x20 || *p == 0x7f) {
            q += (size_t)snprintf(quoted + q, sizeof quoted - q, "\\x%02x", *p);
        } else {
            quoted[q++] = (char)*p;
        }
    }
    quoted[q] = '\0';
    snprintf(out + n, cap - n, "[\"%s\"]", quoted);
}

void cfg_path_index(char *out, size_t cap, const char *parent, size_t index)
{
    snprintf(out, cap, "%s[%zu]", parent, index);
}

/* ---- file paths ---- */

/* Removes "." and ".." segments and doubled slashes from an absolute path,
 * in place. Lexical: used only when realpath() cannot be (missing file). */
static void normalize_path(char *p)
{
    char *out = p;
    const char *in = p;
    while (*in) {
        while (*in == '/')
            in++;
        const char *seg = in;
        while (*in && *in != '/')
            in++;
        size_t len = (size_t)(in - seg);
        if (len == 0 || (len == 1 && seg[0] == '.'))
            continue;
        if (len == 2 && seg[0] == '.' && seg[1] == '.') {
            while (out > p && *--out != '/')
                ;
            continue;
        }
        *out++ = '/';
        memmove(out, seg, len);
        out += len;
    }
    if (out == p)
        *out++ = '/';
    *out = '\0';
}

bool cfg_resolve_path(struct parse_ctx *ctx, const char *path,
                      const char *value, char *out, size_t cap)
{
    char joined[PATH_MAX];
    int n = value[0] == '/' ? snprintf(joined, sizeof joined, "%s", value)
                            : snprintf(joined, sizeof joined, "%s/%s",
                                       ctx->base_dir, value);
    if (n < 0 || (size_t)n >= sizeof joined) {
        cfg_error(ctx, path, "path is too long");
        return false;
    }
    char real[PATH_MAX];
    if (realpath(joined, real)) {
        snprintf(joined, sizeof joined, "%s", real);
    } else {
        normalize_path(joined);
    }
    if (strlen(joined) >= cap) {
        cfg_error(ctx, path, "resolved path is too long (at most %zu bytes)",
                  cap - 1);
        return false;
    }
    memcpy(out, joined, strlen(joined) + 1);
    return true;
}

char *cfg_read_file(const char *file, size_t *len, char *why, size_t whylen)
{
    /* O_NONBLOCK: opening a FIFO must not hang the loader. */
    int fd = open(file, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        snprintf(why, whylen, "cannot open: %s", strerror(errno));
        return NULL;
    }
    struct stat st;
    char *buf = NULL;
    if (fstat(fd, &st) != 0) {
        snprintf(why, whylen, "cannot stat: %s", strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        snprintf(why, whylen, "not a regular file");
    } else if ((uint64_t)st.st_size > CFG_FILE_MAX) {
        snprintf(why, whylen, "file is larger than %u bytes", CFG_FILE_MAX);
    } else if (!(buf = malloc((size_t)st.st_size + 1))) {
        snprintf(why, whylen, "out of memory");
    } else {
        size_t got = 0;
        while (got < (size_t)st.st_size) {
            ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                snprintf(why, whylen, "read failed: %s",
                         r < 0 ? strerror(errno) : "file shrank");
                free(buf);
                buf = NULL;
                break;
            }
            got += (size_t)r;
        }
        if (buf) {
            buf[got] = '\0';
            *len = got;
        }
    }
    close(fd);
    return buf;
}

/* ---- entry points ---- */

static struct config *parse_with_dir(const char *json_text,
                                     const char *base_dir,
                                     const char *source_name, char *err,
                                     size_t errlen)
{
    struct parse_ctx ctx = {.err = err, .errlen = errlen};
    if (err && errlen)
        err[0] = '\0';
    if (!source_name)
        source_name = "<config>";

    int n;
    if (base_dir && base_dir[0] == '/') {
        n = snprintf(ctx.base_dir, sizeof ctx.base_dir, "%s", base_dir);
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd))
            snprintf(cwd, sizeof cwd, "/");
        n = snprintf(ctx.base_dir, sizeof ctx.base_dir, "%s/%s", cwd,
                     base_dir ? base_dir : "");
    }
    if (n < 0 || (size_t)n >= sizeof ctx.base_dir) {
        if (err && errlen)
            snprintf(err, errlen, "%s: directory path is too long\n",
                     source_name);
        return NULL;
    }

    json_error_t jerr;
    json_t *root = json_loads(json_text, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (err && errlen)
            snprintf(err, errlen, "%s:%d:%d: %s\n", source_name, jerr.line,
                     jerr.column, jerr.text);
        return NULL;
    }

    ctx.cfg = calloc(1, sizeof *ctx.cfg);
    if (!ctx.cfg) {
        json_decref(root);
        if (err && errlen)
            snprintf(err, errlen, "%s: out of memory\n", source_name);
        return NULL;
    }
    atomic_init(&ctx.cfg->refs, 1);
    snprintf(ctx.cfg->source_path, sizeof ctx.cfg->source_path, "%s",
             source_name);
    set_defaults(ctx.cfg);

    cfg_parse_root(&ctx, root);
    json_decref(root);
    cfg_finish_keys(&ctx);
    free(ctx.key_origins);

    if (ctx.error_count > 0) {
        finish_errors(&ctx);
        config_unref(ctx.cfg);
        return NULL;
    }
    return ctx.cfg;
}

struct config *config_parse(const char *json_text, const char *base_dir,
                            const char *source_name, char *err, size_t errlen)
{
    return parse_with_dir(json_text, base_dir, source_name, err, errlen);
}

struct config *config_load(const char *path, char *err, size_t errlen)
{
    char real[PATH_MAX];
    char why[160];
    size_t len = 0;
    char *text = NULL;

    if (!realpath(path, real)) {
        snprintf(why, sizeof why, "cannot open: %s", strerror(errno));
    } else {
        text = cfg_read_file(real, &len, why, sizeof why);
    }
    if (!text) {
        if (err && errlen)
            snprintf(err, errlen, "%s: %s\n", path, why);
        return NULL;
    }
    if (strlen(text) != len) {
        free(text);
        if (err && errlen)
            snprintf(err, errlen, "%s: contains a NUL byte\n", path);
        return NULL;
    }

    if (strlen(real) >= sizeof((struct config *)0)->source_path) {
        free(text);
        if (err && errlen)
            snprintf(err, errlen, "%s: path is too long\n", path);
        return NULL;
    }
    char dir[PATH_MAX];
    memcpy(dir, real, strlen(real) + 1);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0'; /* file in "/" */
    else if (slash)
        *slash = '\0';

    struct config *c = parse_with_dir(text, dir, path, err, errlen);
    free(text);
    if (c) /* absolute, so a reload finds the file whatever the cwd */
        memcpy(c->source_path, real, strlen(real) + 1);
    return c;
}

struct config *config_ref(struct config *c)
{
    if (c)
        atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

void config_unref(struct config *c)
{
    if (!c)
        return;
    /* acq_rel: the last owner must see every other owner's reads done. */
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < c->pipeline_count; i++)
        json_decref(c->pipeline[i].config);
    free(c->keys);
    free(c);
}

const char *config_default_path(void)
{
    if (access(INSTALLED_CONFIG, R_OK) == 0)
        return INSTALLED_CONFIG;
    return SLUICE_SOURCE_DIR "/config/sluice.json";
}
