#include "plugin_config.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg_units.h"

/* A 1.0 plugin's table rows end before the 1.1 members. */
#define FIELD_SIZE_1_0 offsetof(struct sluice_cfg_field, elem)
#define FIELD_SIZE_1_1                                                         \
    (offsetof(struct sluice_cfg_field, max_items) + sizeof(size_t))
#define PATH_MAX_LEN 512

struct plugin_config_mem {
    struct plugin_config_mem *next;
    max_align_t data[];
};

struct filler {
    size_t stride; /* bytes between rows of the plugin's key tables */
    struct plugin_config_mem *mem;
    char *err;
    size_t errlen;
};

size_t plugin_config_field_size(const struct sluice_plugin *p)
{
    size_t end = offsetof(struct sluice_plugin, cfg_field_size) +
                 sizeof p->cfg_field_size;
    if (p->struct_size < end)
        return FIELD_SIZE_1_0; /* built before 1.1 */
    /* Built against 1.1 or later but without SLUICE_PLUGIN_HEADER. */
    return p->cfg_field_size >= FIELD_SIZE_1_0 ? p->cfg_field_size
                                               : FIELD_SIZE_1_1;
}

static const struct sluice_cfg_field *
next_field(const struct sluice_cfg_field *f, size_t stride)
{
    return (const struct sluice_cfg_field *)((const char *)f + stride);
}

#define EACH_FIELD(f, table, stride)                                           \
    for (const struct sluice_cfg_field *f = (table); f && f->name;             \
         f = next_field(f, stride))

void plugin_config_mem_free(struct plugin_config_mem *mem)
{
    while (mem) {
        struct plugin_config_mem *next = mem->next;
        free(mem);
        mem = next;
    }
}

static void *mem_alloc(struct filler *F, size_t size)
{
    struct plugin_config_mem *m = calloc(1, sizeof *m + size);
    if (!m)
        return NULL;
    m->next = F->mem;
    F->mem = m;
    return m->data;
}

static int fail(struct filler *F, const char *path, const char *msg)
{
    snprintf(F->err, F->errlen, "%s: %s", path, msg);
    return -1;
}

/* Bytes one value of type f takes in a struct or an element array. */
static size_t slot_size(const struct sluice_cfg_field *f)
{
    switch (f->type) {
    case SLUICE_CFG_INT:
    case SLUICE_CFG_DURATION:
    case SLUICE_CFG_SIZE:
        return sizeof(int64_t);
    case SLUICE_CFG_DOUBLE:
        return sizeof(double);
    case SLUICE_CFG_BOOL:
        return sizeof(bool);
    case SLUICE_CFG_STRING:
    case SLUICE_CFG_JSON_TEXT:
        return sizeof(const char *);
    case SLUICE_CFG_ENUM:
        return sizeof(int);
    case SLUICE_CFG_OBJECT:
        return f->size;
    case SLUICE_CFG_ARRAY:
        return sizeof(struct sluice_cfg_list);
    case SLUICE_CFG_MAP:
        return sizeof(struct sluice_cfg_map);
    case SLUICE_CFG_JSON:
        return 0;
    }
    return 0;
}

static int check_bounds(struct filler *F, const struct sluice_cfg_field *f,
                        double v, const char *unit, const char *path)
{
    char msg[96];

    if (f->flags & SLUICE_CFG_HAS_MIN) {
        bool excl = f->flags & SLUICE_CFG_MIN_EXCLUSIVE;
        if (excl ? !(v > f->min) : !(v >= f->min)) {
            snprintf(msg, sizeof msg, "must be %s %.15g%s",
                     excl ? ">" : ">=", f->min, unit);
            return fail(F, path, msg);
        }
    }
    if ((f->flags & SLUICE_CFG_HAS_MAX) && !(v <= f->max)) {
        snprintf(msg, sizeof msg, "must be <= %.15g%s", f->max, unit);
        return fail(F, path, msg);
    }
    return 0;
}

static int fill_object(struct filler *F, const struct sluice_cfg_field *table,
                       json_t *obj, void *base, const char *path);
static int store(struct filler *F, const struct sluice_cfg_field *f, json_t *v,
                 void *slot, const char *path);

static int store_int(struct filler *F, const struct sluice_cfg_field *f,
                     json_t *v, void *slot, const char *path)
{
    double d;
    if (json_is_integer(v))
        d = (double)json_integer_value(v);
    else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)))
        d = json_real_value(v);
    else
        return fail(F, path, "must be an integer");
    if (check_bounds(F, f, d, "", path))
        return -1;
    int64_t iv =
        json_is_integer(v) ? (int64_t)json_integer_value(v) : (int64_t)d;
    memcpy(slot, &iv, sizeof iv);
    return 0;
}

static int store_enum(struct filler *F, const struct sluice_cfg_field *f,
                      json_t *v, void *slot, const char *path)
{
    if (!json_is_string(v))
        return fail(F, path, "must be a string");
    for (int i = 0; f->choices && f->choices[i]; i++) {
        if (strcmp(f->choices[i], json_string_value(v)) == 0) {
            memcpy(slot, &i, sizeof i);
            return 0;
        }
    }
    char msg[200];
    int n = snprintf(msg, sizeof msg, "must be one of");
    for (int i = 0; f->choices && f->choices[i] && n < (int)sizeof msg; i++)
        n += snprintf(msg + n, sizeof msg - (size_t)n, "%s \"%s\"",
                      i ? "," : "", f->choices[i]);
    return fail(F, path, msg);
}

static int store_string(struct filler *F, const struct sluice_cfg_field *f,
                        json_t *v, void *slot, const char *path)
{
    const char *s;
    if (json_is_string(v)) {
        s = json_string_value(v);
    } else if ((f->flags & SLUICE_CFG_NUMBER_AS_TEXT) && json_is_integer(v)) {
        char *t = mem_alloc(F, 24);
        if (!t)
            return fail(F, path, "out of memory");
        snprintf(t, 24, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        s = t;
    } else {
        return fail(F, path, "must be a string");
    }
    memcpy(slot, &s, sizeof s);
    return 0;
}

/* DURATION and SIZE: a number (seconds / bytes) or a string with a unit. */
static int store_quantity(struct filler *F, const struct sluice_cfg_field *f,
                          json_t *v, void *slot, const char *path)
{
    bool duration = f->type == SLUICE_CFG_DURATION;
    int64_t q = 0;
    bool ok;

    if (duration && json_is_number(v)) {
        double s = json_number_value(v);
        ok = s >= 0 && s < 9.2e9;
        q = ok ? (int64_t)llround(s * 1e9) : 0;
    } else if (!duration && json_is_integer(v)) {
        q = (int64_t)json_integer_value(v);
        ok = q >= 0;
    } else if (json_is_string(v)) {
        ok = duration ? cfg_duration_parse(json_string_value(v), &q)
                      : cfg_size_parse(json_string_value(v), &q);
    } else {
        ok = false;
    }
    if (!ok)
        return fail(F, path,
                    duration ? "must be a duration such as \"250ms\", "
                               "\"30s\" or \"1h\" (a number: seconds)"
                             : "must be a size such as \"512KiB\", \"64MiB\" "
                               "or \"10KB\" (a number: bytes)");
    if (check_bounds(F, f, duration ? (double)q / 1e9 : (double)q,
                     duration ? "s" : " bytes", path))
        return -1;
    memcpy(slot, &q, sizeof q);
    return 0;
}

static int store_json_text(struct filler *F, const struct sluice_cfg_field *f,
                           json_t *v, void *slot, const char *path)
{
    const char *s;
    if ((f->flags & SLUICE_CFG_JSON_IN_STRING) && json_is_string(v)) {
        json_error_t jerr;
        json_t *parsed = json_loads(json_string_value(v), 0, &jerr);
        if (!parsed) {
            char msg[200];
            snprintf(msg, sizeof msg, "not valid JSON: %s", jerr.text);
            return fail(F, path, msg);
        }
        json_decref(parsed);
        s = json_string_value(v);
    } else {
        char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        size_t len = text ? strlen(text) : 0;
        char *copy = text ? mem_alloc(F, len + 1) : NULL;
        if (copy)
            memcpy(copy, text, len + 1);
        free(text);
        if (!copy)
            return fail(F, path, "out of memory");
        s = copy;
    }
    memcpy(slot, &s, sizeof s);
    return 0;
}

static const struct sluice_cfg_field *
element_of(struct filler *F, const struct sluice_cfg_field *f, size_t *size,
           const char *path)
{
    const struct sluice_cfg_field *e = f->elem;
    *size = e ? slot_size(e) : 0;
    if (!*size) {
        fail(F, path, "plugin bug: list or map without a usable element type");
        return NULL;
    }
    return e;
}

static int store_array(struct filler *F, const struct sluice_cfg_field *f,
                       json_t *v, void *slot, const char *path)
{
    size_t es;
    const struct sluice_cfg_field *e = element_of(F, f, &es, path);
    bool lone = !json_is_array(v);
    char msg[96], sub[PATH_MAX_LEN];

    if (!e)
        return -1;
    if (lone && !(f->flags & SLUICE_CFG_ONE_OR_MANY))
        return fail(F, path, "must be an array");
    size_t n = lone ? 1 : json_array_size(v);
    if (f->max_items && n > f->max_items) {
        snprintf(msg, sizeof msg, "must have at most %zu elements",
                 f->max_items);
        return fail(F, path, msg);
    }
    char *items = n ? mem_alloc(F, n * es) : NULL;
    if (n && !items)
        return fail(F, path, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (lone)
            snprintf(sub, sizeof sub, "%s", path);
        else
            snprintf(sub, sizeof sub, "%s[%zu]", path, i);
        if (store(F, e, lone ? v : json_array_get(v, i), items + i * es, sub))
            return -1;
    }
    struct sluice_cfg_list l = {n, items};
    memcpy(slot, &l, sizeof l);
    return 0;
}

static int store_map(struct filler *F, const struct sluice_cfg_field *f,
                     json_t *v, void *slot, const char *path)
{
    size_t es, i = 0;
    const struct sluice_cfg_field *e = element_of(F, f, &es, path);
    char msg[96], sub[PATH_MAX_LEN];
    const char *key;
    json_t *item;

    if (!e)
        return -1;
    if (!json_is_object(v))
        return fail(F, path, "must be an object");
    size_t n = json_object_size(v);
    if (f->max_items && n > f->max_items) {
        snprintf(msg, sizeof msg, "must have at most %zu entries",
                 f->max_items);
        return fail(F, path, msg);
    }
    const char **keys = n ? mem_alloc(F, n * sizeof *keys) : NULL;
    char *values = n ? mem_alloc(F, n * es) : NULL;
    if (n && (!keys || !values))
        return fail(F, path, "out of memory");
    json_object_foreach(v, key, item)
    {
        size_t len = strlen(key);
        char *k = mem_alloc(F, len + 1);
        if (!k)
            return fail(F, path, "out of memory");
        memcpy(k, key, len + 1);
        keys[i] = k;
        snprintf(sub, sizeof sub, "%s.%s", path, key);
        if (store(F, e, item, values + i * es, sub))
            return -1;
        i++;
    }
    struct sluice_cfg_map m = {n, keys, values};
    memcpy(slot, &m, sizeof m);
    return 0;
}

/* Stores one value of field f at slot; path names it in errors. */
static int store(struct filler *F, const struct sluice_cfg_field *f, json_t *v,
                 void *slot, const char *path)
{
    if (f->type >= SLUICE_CFG_DURATION && F->stride < FIELD_SIZE_1_1)
        return fail(F, path, "plugin bug: 1.1 key type in a 1.0 table");
    switch (f->type) {
    case SLUICE_CFG_INT:
        return store_int(F, f, v, slot, path);
    case SLUICE_CFG_DOUBLE: {
        if (!json_is_number(v))
            return fail(F, path, "must be a number");
        double d = json_number_value(v);
        if (check_bounds(F, f, d, "", path))
            return -1;
        memcpy(slot, &d, sizeof d);
        return 0;
    }
    case SLUICE_CFG_BOOL: {
        if (!json_is_boolean(v))
            return fail(F, path, "must be true or false");
        bool b = json_is_true(v);
        memcpy(slot, &b, sizeof b);
        return 0;
    }
    case SLUICE_CFG_STRING:
        return store_string(F, f, v, slot, path);
    case SLUICE_CFG_ENUM:
        return store_enum(F, f, v, slot, path);
    case SLUICE_CFG_JSON:
        return 0;
    case SLUICE_CFG_DURATION:
    case SLUICE_CFG_SIZE:
        return store_quantity(F, f, v, slot, path);
    case SLUICE_CFG_JSON_TEXT:
        return store_json_text(F, f, v, slot, path);
    case SLUICE_CFG_ARRAY:
        return store_array(F, f, v, slot, path);
    case SLUICE_CFG_MAP:
        return store_map(F, f, v, slot, path);
    case SLUICE_CFG_OBJECT:
        if (!f->fields)
            return fail(F, path, "plugin bug: OBJECT key without fields");
        if (!json_is_object(v))
            return fail(F, path, "must be an object");
        return fill_object(F, f->fields, v, slot, path);
    }
    return fail(F, path, "unsupported field type");
}

static bool null_is_absent(enum sluice_cfg_type t)
{
    return t == SLUICE_CFG_ARRAY || t == SLUICE_CFG_MAP ||
           t == SLUICE_CFG_OBJECT || t == SLUICE_CFG_JSON_TEXT;
}

static void mark_unset(const struct sluice_cfg_field *f, void *slot)
{
    if (f->type == SLUICE_CFG_DOUBLE) {
        double nan = NAN;
        memcpy(slot, &nan, sizeof nan);
    } else if (f->type == SLUICE_CFG_INT || f->type == SLUICE_CFG_DURATION ||
               f->type == SLUICE_CFG_SIZE) {
        int64_t unset = -1;
        memcpy(slot, &unset, sizeof unset);
    }
}

static int fill_object(struct filler *F, const struct sluice_cfg_field *table,
                       json_t *obj, void *base, const char *path)
{
    char sub[PATH_MAX_LEN];
    const char *key;
    json_t *v;

    json_object_foreach(obj, key, v)
    {
        bool known = false;
        EACH_FIELD(f, table, F->stride)
        {
            if (strcmp(f->name, key) == 0) {
                known = true;
                break;
            }
        }
        if (!known) {
            snprintf(sub, sizeof sub, "%s.%s", path, key);
            return fail(F, sub, "unknown key (see `sluice plugin-help`)");
        }
    }
    EACH_FIELD(f, table, F->stride)
    {
        json_t *given = json_object_get(obj, f->name);
        void *slot = (char *)base + f->offset;

        snprintf(sub, sizeof sub, "%s.%s", path, f->name);
        if (given && json_is_null(given) && null_is_absent(f->type))
            given = NULL;
        if (!given && (f->flags & SLUICE_CFG_REQUIRED))
            return fail(F, sub, "is required");
        if (!given && f->default_value) {
            /* Defaults are written into the config, so the effective config
             * is visible to the plugin's raw_json and string values live as
             * long as it does. */
            json_error_t jerr;
            json_t *def = json_loads(f->default_value, JSON_DECODE_ANY, &jerr);
            if (!def)
                return fail(F, sub, "plugin bug: default is not valid JSON");
            json_object_set_new(obj, f->name, def);
            given = def;
        }
        if (given) {
            if (store(F, f, given, slot, sub))
                return -1;
        } else if (f->flags & SLUICE_CFG_MARK_UNSET) {
            mark_unset(f, slot);
        }
    }
    return 0;
}

int plugin_config_fill(const struct sluice_plugin *p, json_t *cfg,
                       const char *path, void *out,
                       struct plugin_config_mem **mem, char *err, size_t errlen)
{
    struct filler F = {plugin_config_field_size(p), NULL, err, errlen};

    *mem = NULL;
    if (!json_is_object(cfg)) {
        snprintf(err, errlen, "%s: must be an object", path);
        return -1;
    }
    if (p->config_size)
        memset(out, 0, p->config_size);
    if (fill_object(&F, p->config, cfg, out, path)) {
        plugin_config_mem_free(F.mem);
        return -1;
    }
    *mem = F.mem;
    return 0;
}
