/* `sluice plugin-help NAME`: the plugin's key table as text, nested keys
 * (objects, maps and lists of objects) on rows of their own. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "plugin_config.h"

#define FIELD_SIZE_1_1                                                         \
    (offsetof(struct sluice_cfg_field, max_items) + sizeof(size_t))

struct help {
    FILE *out;     /* NULL: only measure */
    size_t stride; /* bytes between table rows */
    int width;     /* of the key column */
    bool units;    /* some key is a duration or a size */
};

static bool has_v11(const struct help *H)
{
    return H->stride >= FIELD_SIZE_1_1;
}

static const char *scalar_name(enum sluice_cfg_type t)
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
    case SLUICE_CFG_DURATION:
        return "duration";
    case SLUICE_CFG_SIZE:
        return "size";
    case SLUICE_CFG_OBJECT:
        return "object";
    case SLUICE_CFG_JSON_TEXT:
        return "JSON";
    case SLUICE_CFG_ARRAY:
        return "list";
    case SLUICE_CFG_MAP:
        return "map";
    }
    return "?";
}

/* "integer", "one of a|b", "list of string", "map of object", ... */
static void type_text(const struct help *H, const struct sluice_cfg_field *f,
                      char *buf, size_t cap)
{
    const struct sluice_cfg_field *e = NULL;
    int n;

    if (has_v11(H) &&
        (f->type == SLUICE_CFG_ARRAY || f->type == SLUICE_CFG_MAP) && f->elem)
        e = f->elem;
    if (e)
        n = (f->flags & SLUICE_CFG_ONE_OR_MANY)
                ? snprintf(buf, cap, "%s or list", scalar_name(e->type))
                : snprintf(buf, cap, "%s of %s", scalar_name(f->type),
                           scalar_name(e->type));
    else
        n = snprintf(buf, cap, "%s", scalar_name(f->type));
    const struct sluice_cfg_field *c = e ? e : f;
    if (c->type == SLUICE_CFG_ENUM && c->choices) {
        size_t len = (size_t)n;
        for (int i = 0; c->choices[i] && len < cap - 2; i++)
            len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? "|" : " ",
                                    c->choices[i]);
    }
}

static void bounds_text(const struct help *H, const struct sluice_cfg_field *f,
                        char *buf, size_t cap)
{
    const struct sluice_cfg_field *b = f;
    size_t n = 0;

    buf[0] = '\0';
    if (has_v11(H) &&
        (f->type == SLUICE_CFG_ARRAY || f->type == SLUICE_CFG_MAP) && f->elem)
        b = f->elem; /* each element's bounds */
    const char *unit = b->type == SLUICE_CFG_DURATION ? "s"
                       : b->type == SLUICE_CFG_SIZE   ? " B"
                                                      : "";
    if (b->flags & SLUICE_CFG_HAS_MIN)
        n += (size_t)snprintf(
            buf + n, cap - n, "%s %.15g%s",
            (b->flags & SLUICE_CFG_MIN_EXCLUSIVE) ? ">" : ">=", b->min, unit);
    if ((b->flags & SLUICE_CFG_HAS_MAX) && n < cap)
        n += (size_t)snprintf(buf + n, cap - n, "%s<= %.15g%s", n ? ", " : "",
                              b->max, unit);
    if (has_v11(H) && f->max_items && n < cap)
        snprintf(buf + n, cap - n, "%s<= %zu items", n ? ", " : "",
                 f->max_items);
}

static void rows(struct help *H, const struct sluice_cfg_field *table,
                 const char *prefix);

static void row(struct help *H, const struct sluice_cfg_field *f,
                const char *prefix)
{
    char key[256], type[128], bounds[96];

    snprintf(key, sizeof key, "%s%s", prefix, f->name);
    if (!H->out) {
        const struct sluice_cfg_field *e = has_v11(H) ? f->elem : NULL;
        for (int i = 0; i < 2; i++) {
            const struct sluice_cfg_field *t = i ? e : f;
            if (t &&
                (t->type == SLUICE_CFG_DURATION || t->type == SLUICE_CFG_SIZE))
                H->units = true;
        }
        if ((int)strlen(key) > H->width)
            H->width = (int)strlen(key);
    } else {
        type_text(H, f, type, sizeof type);
        bounds_text(H, f, bounds, sizeof bounds);
        fprintf(H->out, "%-*s %-16s %-14s %-22s %s\n", H->width, key, type,
                f->default_value
                    ? f->default_value
                    : ((f->flags & SLUICE_CFG_REQUIRED) ? "(required)" : "-"),
                bounds[0] ? bounds : "-", f->help ? f->help : "");
    }
    if (!has_v11(H))
        return;
    /* Keys of nested objects: name.key, name.<name>.key, name[].key. */
    const struct sluice_cfg_field *obj = f;
    const char *step = ".";
    if ((f->type == SLUICE_CFG_ARRAY || f->type == SLUICE_CFG_MAP) && f->elem) {
        obj = f->elem;
        step = f->type == SLUICE_CFG_MAP ? ".<name>." : "[].";
    }
    if (obj->type == SLUICE_CFG_OBJECT && obj->fields) {
        char sub[300];
        snprintf(sub, sizeof sub, "%s%s", key, step);
        rows(H, obj->fields, sub);
    }
}

static void rows(struct help *H, const struct sluice_cfg_field *table,
                 const char *prefix)
{
    for (const struct sluice_cfg_field *f = table; f && f->name;
         f = (const struct sluice_cfg_field *)((const char *)f + H->stride))
        row(H, f, prefix);
}

void plugin_config_describe(const struct sluice_plugin *p, FILE *out)
{
    struct help H = {NULL, plugin_config_field_size(p), 22, false};

    rows(&H, p->config, ""); /* measures the key column */
    H.out = out;
    fprintf(out, "%s %s: %s\n\n", p->name, p->version ? p->version : "",
            p->summary ? p->summary : "");
    fprintf(out, "%-*s %-16s %-14s %-22s %s\n", H.width, "key", "type",
            "default", "bounds", "description");
    rows(&H, p->config, "");
    if (H.units)
        fprintf(out, "\nduration: \"250ms\", \"30s\", \"1h30m\" (a number: "
                     "seconds); size: \"64MiB\", \"10KB\" (a number: bytes)\n");
}
