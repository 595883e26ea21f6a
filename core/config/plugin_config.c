#include "plugin_config.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const char *type_name(enum sluice_cfg_type t)
{
    switch (t) {
    case SLUICE_CFG_INT:
        return "integer";
    case SLUICE_CFG_DOUBLE:
        return "number";
    case SLUICE_CFG_BOOL:
        return "boolean";
    case SLUICE_CFG_STRING:
        return "string";
    case SLUICE_CFG_ENUM:
        return "one of";
    case SLUICE_CFG_JSON:
        return "any JSON";
    }
    return "?";
}

static const struct sluice_cfg_field *find_field(const struct sluice_plugin *p,
                                                 const char *key)
{
    for (const struct sluice_cfg_field *f = p->config; f && f->name; f++)
        if (strcmp(f->name, key) == 0)
            return f;
    return NULL;
}

static int fail(char *err, size_t errlen, const char *path, const char *key,
                const char *msg)
{
    snprintf(err, errlen, "%s.%s: %s", path, key, msg);
    return -1;
}

static int check_bounds(const struct sluice_cfg_field *f, double v,
                        const char *path, char *err, size_t errlen)
{
    char msg[96];

    if (f->flags & SLUICE_CFG_HAS_MIN) {
        bool excl = f->flags & SLUICE_CFG_MIN_EXCLUSIVE;
        if (excl ? !(v > f->min) : !(v >= f->min)) {
            snprintf(msg, sizeof msg, "must be %s %g",
                     excl ? ">" : ">=", f->min);
            return fail(err, errlen, path, f->name, msg);
        }
    }
    if ((f->flags & SLUICE_CFG_HAS_MAX) && !(v <= f->max)) {
        snprintf(msg, sizeof msg, "must be <= %g", f->max);
        return fail(err, errlen, path, f->name, msg);
    }
    return 0;
}

/* Stores one value; `v` has already been type-checked loosely here. */
static int store(const struct sluice_cfg_field *f, json_t *v, void *out,
                 const char *path, char *err, size_t errlen)
{
    char *slot = (char *)out + f->offset;

    switch (f->type) {
    case SLUICE_CFG_INT: {
        double d;
        if (json_is_integer(v))
            d = (double)json_integer_value(v);
        else if (json_is_real(v) &&
                 json_real_value(v) == floor(json_real_value(v)))
            d = json_real_value(v);
        else
            return fail(err, errlen, path, f->name, "must be an integer");
        if (check_bounds(f, d, path, err, errlen))
            return -1;
        int64_t iv =
            json_is_integer(v) ? (int64_t)json_integer_value(v) : (int64_t)d;
        memcpy(slot, &iv, sizeof iv);
        return 0;
    }
    case SLUICE_CFG_DOUBLE: {
        if (!json_is_number(v))
            return fail(err, errlen, path, f->name, "must be a number");
        double d = json_number_value(v);
        if (check_bounds(f, d, path, err, errlen))
            return -1;
        memcpy(slot, &d, sizeof d);
        return 0;
    }
    case SLUICE_CFG_BOOL: {
        if (!json_is_boolean(v))
            return fail(err, errlen, path, f->name, "must be true or false");
        bool b = json_is_true(v);
        memcpy(slot, &b, sizeof b);
        return 0;
    }
    case SLUICE_CFG_STRING: {
        if (!json_is_string(v))
            return fail(err, errlen, path, f->name, "must be a string");
        const char *s = json_string_value(v);
        memcpy(slot, &s, sizeof s);
        return 0;
    }
    case SLUICE_CFG_ENUM: {
        if (!json_is_string(v))
            return fail(err, errlen, path, f->name, "must be a string");
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
        return fail(err, errlen, path, f->name, msg);
    }
    case SLUICE_CFG_JSON:
        return 0;
    }
    return fail(err, errlen, path, f->name, "unsupported field type");
}

int plugin_config_fill(const struct sluice_plugin *p, json_t *cfg,
                       const char *path, void *out, char *err, size_t errlen)
{
    const char *key;
    json_t *v;

    if (!json_is_object(cfg)) {
        snprintf(err, errlen, "%s: must be an object", path);
        return -1;
    }
    if (p->config_size)
        memset(out, 0, p->config_size);
    json_object_foreach(cfg, key, v)
    {
        if (!find_field(p, key))
            return fail(err, errlen, path, key,
                        "unknown key (see `sluice plugin-help`)");
    }
    for (const struct sluice_cfg_field *f = p->config; f && f->name; f++) {
        json_t *given = json_object_get(cfg, f->name);
        if (!given && (f->flags & SLUICE_CFG_REQUIRED))
            return fail(err, errlen, path, f->name, "is required");
        if (!given && f->default_value) {
            /* Defaults are written into cfg, so the effective config is
             * visible to the plugin's raw_json and string values live as
             * long as cfg does. */
            json_error_t jerr;
            json_t *def = json_loads(f->default_value, JSON_DECODE_ANY, &jerr);
            if (!def)
                return fail(err, errlen, path, f->name,
                            "plugin bug: default is not valid JSON");
            json_object_set_new(cfg, f->name, def);
            given = def;
        }
        if (given && store(f, given, out, path, err, errlen))
            return -1;
    }
    return 0;
}

void plugin_config_describe(const struct sluice_plugin *p, FILE *out)
{
    fprintf(out, "%s %s: %s\n\n", p->name, p->version ? p->version : "",
            p->summary ? p->summary : "");
    fprintf(out, "%-22s %-10s %-14s %-22s %s\n", "key", "type", "default",
            "bounds", "description");
    for (const struct sluice_cfg_field *f = p->config; f && f->name; f++) {
        char bounds[64] = "";
        char type[96];
        int n = 0;
        if (f->flags & SLUICE_CFG_HAS_MIN)
            n += snprintf(
                bounds + n, sizeof bounds - (size_t)n, "%s %g",
                (f->flags & SLUICE_CFG_MIN_EXCLUSIVE) ? ">" : ">=", f->min);
        if (f->flags & SLUICE_CFG_HAS_MAX)
            snprintf(bounds + n, sizeof bounds - (size_t)n, "%s<= %g",
                     n ? ", " : "", f->max);
        snprintf(type, sizeof type, "%s", type_name(f->type));
        if (f->type == SLUICE_CFG_ENUM && f->choices) {
            size_t len = strlen(type);
            for (int i = 0; f->choices[i] && len < sizeof type - 2; i++) {
                len += (size_t)snprintf(type + len, sizeof type - len, "%s%s",
                                        i ? "|" : " ", f->choices[i]);
            }
        }
        fprintf(out, "%-22s %-10s %-14s %-22s %s%s\n", f->name, type,
                f->default_value
                    ? f->default_value
                    : ((f->flags & SLUICE_CFG_REQUIRED) ? "(required)" : "-"),
                bounds[0] ? bounds : "-", f->help ? f->help : "", "");
    }
}
