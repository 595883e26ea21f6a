/* Load-time checks of a plugin's config key table: a broken table (bad
 * offsets, a default the key itself would refuse, an unterminated table)
 * is refused with the plugin file, not found by the first instance. */
#include <jansson.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cfg_units.h"
#include "plugin_config.h"

#define CONFIG_KEYS_MAX 256 /* also stops an unterminated table */
#define NESTING_MAX 8       /* also stops a table that contains itself */
#define FIELD_SIZE_1_1                                                         \
    (offsetof(struct sluice_cfg_field, max_items) + sizeof(size_t))

/* Bytes and alignment each type occupies in the config struct; JSON
 * values are not stored there (size 0), OBJECT takes its `size`. */
static const struct {
    size_t size, align;
} layouts[] = {
    [SLUICE_CFG_INT] = {sizeof(int64_t), alignof(int64_t)},
    [SLUICE_CFG_DOUBLE] = {sizeof(double), alignof(double)},
    [SLUICE_CFG_BOOL] = {sizeof(bool), alignof(bool)},
    [SLUICE_CFG_STRING] = {sizeof(const char *), alignof(const char *)},
    [SLUICE_CFG_ENUM] = {sizeof(int), alignof(int)},
    [SLUICE_CFG_JSON] = {0, 1},
    [SLUICE_CFG_DURATION] = {sizeof(int64_t), alignof(int64_t)},
    [SLUICE_CFG_SIZE] = {sizeof(int64_t), alignof(int64_t)},
    [SLUICE_CFG_ARRAY] = {sizeof(struct sluice_cfg_list),
                          alignof(struct sluice_cfg_list)},
    [SLUICE_CFG_MAP] = {sizeof(struct sluice_cfg_map),
                        alignof(struct sluice_cfg_map)},
    [SLUICE_CFG_OBJECT] = {0, 1},
    [SLUICE_CFG_JSON_TEXT] = {sizeof(const char *), alignof(const char *)},
};

struct checker {
    size_t stride;
    bool v11; /* the table rows carry the 1.1 members */
    char *buf;
    size_t buflen;
};

static bool known_type(const struct checker *C, enum sluice_cfg_type type)
{
    unsigned max = C->v11 ? SLUICE_CFG_JSON_TEXT : SLUICE_CFG_JSON;
    return type >= SLUICE_CFG_INT && (unsigned)type <= max;
}

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_';
}

/* Config keys may use capitals: they are JSON keys, not symbols. */
static bool valid_key_name(const char *name)
{
    if (!name[0])
        return false;
    for (const char *p = name; *p; p++)
        if (!is_name_char(*p))
            return false;
    return true;
}

static bool in_bounds(const struct sluice_cfg_field *f, double v)
{
    if (f->flags & SLUICE_CFG_HAS_MIN) {
        bool exclusive = f->flags & SLUICE_CFG_MIN_EXCLUSIVE;
        if (exclusive ? !(v > f->min) : !(v >= f->min))
            return false;
    }
    return !(f->flags & SLUICE_CFG_HAS_MAX) || v <= f->max;
}

static bool is_choice(const struct sluice_cfg_field *f, const char *s)
{
    for (size_t i = 0; f->choices[i]; i++)
        if (strcmp(f->choices[i], s) == 0)
            return true;
    return false;
}

/* A default must be JSON of the key's type and within its bounds; a bad one
 * would otherwise fail every instance that leaves the key out. Lists, maps
 * and objects are checked for their shape here and in full by the first
 * instance that uses the default. */
static const char *check_default(const struct sluice_cfg_field *f)
{
    json_t *v = json_loads(f->default_value, JSON_DECODE_ANY, NULL);
    const char *problem = NULL;
    int64_t q;

    if (!v)
        return "default is not valid JSON";
    switch (f->type) {
    case SLUICE_CFG_INT:
        if (!json_is_integer(v))
            problem = "default is not an integer";
        else if (!in_bounds(f, (double)json_integer_value(v)))
            problem = "default is out of bounds";
        break;
    case SLUICE_CFG_DOUBLE:
        if (!json_is_number(v))
            problem = "default is not a number";
        else if (!in_bounds(f, json_number_value(v)))
            problem = "default is out of bounds";
        break;
    case SLUICE_CFG_BOOL:
        if (!json_is_boolean(v))
            problem = "default is not true or false";
        break;
    case SLUICE_CFG_STRING:
        if (!json_is_string(v))
            problem = "default is not a JSON string (quote it: \"\\\"x\\\"\")";
        break;
    case SLUICE_CFG_ENUM:
        if (!json_is_string(v) || !is_choice(f, json_string_value(v)))
            problem = "default is not one of the choices";
        break;
    case SLUICE_CFG_DURATION:
        if (json_is_number(v))
            q = (int64_t)(json_number_value(v) * 1e9);
        else if (!json_is_string(v) ||
                 !cfg_duration_parse(json_string_value(v), &q))
            problem = "default is not a duration";
        if (!problem && !in_bounds(f, (double)q / 1e9))
            problem = "default is out of bounds";
        break;
    case SLUICE_CFG_SIZE:
        if (json_is_integer(v))
            q = (int64_t)json_integer_value(v);
        else if (!json_is_string(v) ||
                 !cfg_size_parse(json_string_value(v), &q))
            problem = "default is not a size";
        if (!problem && !in_bounds(f, (double)q))
            problem = "default is out of bounds";
        break;
    case SLUICE_CFG_ARRAY:
        if (!json_is_array(v) && !(f->flags & SLUICE_CFG_ONE_OR_MANY))
            problem = "default is not an array";
        break;
    case SLUICE_CFG_MAP:
    case SLUICE_CFG_OBJECT:
        if (!json_is_object(v))
            problem = "default is not an object";
        break;
    case SLUICE_CFG_JSON:
    case SLUICE_CFG_JSON_TEXT:
        break;
    }
    json_decref(v);
    return problem;
}

static const char *check_table(struct checker *C,
                               const struct sluice_cfg_field *table,
                               size_t struct_size, const char *prefix,
                               int depth);

/* The checks one key's type and flags need; `in_struct` is false for list
 * and map elements, which have no offset of their own. */
static const char *check_key(struct checker *C,
                             const struct sluice_cfg_field *f,
                             size_t struct_size, bool in_struct,
                             const char *prefix, int depth)
{
    const uint32_t v10_flags = SLUICE_CFG_REQUIRED | SLUICE_CFG_HAS_MIN |
                               SLUICE_CFG_HAS_MAX | SLUICE_CFG_MIN_EXCLUSIVE;
    const uint32_t v11_flags =
        SLUICE_CFG_ONE_OR_MANY | SLUICE_CFG_NUMBER_AS_TEXT |
        SLUICE_CFG_JSON_IN_STRING | SLUICE_CFG_MARK_UNSET;
    const uint32_t known_flags = v10_flags | (C->v11 ? v11_flags : 0);
    const uint32_t bound_flags = SLUICE_CFG_HAS_MIN | SLUICE_CFG_HAS_MAX;

    if (!known_type(C, f->type)) {
        snprintf(C->buf, C->buflen, "unknown type %d", (int)f->type);
        return C->buf;
    }
    size_t size =
        f->type == SLUICE_CFG_OBJECT ? f->size : layouts[f->type].size;
    size_t align = layouts[f->type].align;
    if (f->flags & ~known_flags) {
        snprintf(C->buf, C->buflen, "unknown flags 0x%x",
                 (unsigned)(f->flags & ~known_flags));
        return C->buf;
    }
    if (in_struct && size > 0 &&
        (f->offset > struct_size || size > struct_size - f->offset)) {
        snprintf(C->buf, C->buflen,
                 "offset %zu + size %zu is beyond config_size %zu", f->offset,
                 size, struct_size);
        return C->buf;
    }
    if (in_struct && size > 0 && f->offset % align != 0) {
        snprintf(C->buf, C->buflen, "offset %zu is not aligned to %zu",
                 f->offset, align);
        return C->buf;
    }
    if (f->type == SLUICE_CFG_ENUM && (!f->choices || !f->choices[0]))
        return "enum has no choices";
    if ((f->flags & bound_flags) && f->type != SLUICE_CFG_INT &&
        f->type != SLUICE_CFG_DOUBLE && f->type != SLUICE_CFG_DURATION &&
        f->type != SLUICE_CFG_SIZE)
        return "bounds on a key that is not a number";
    if ((f->flags & SLUICE_CFG_MIN_EXCLUSIVE) &&
        !(f->flags & SLUICE_CFG_HAS_MIN))
        return "MIN_EXCLUSIVE without HAS_MIN";
    if ((f->flags & SLUICE_CFG_HAS_MIN) && (f->flags & SLUICE_CFG_HAS_MAX) &&
        f->min > f->max)
        return "min is greater than max";
    if (depth >= NESTING_MAX &&
        (f->type == SLUICE_CFG_ARRAY || f->type == SLUICE_CFG_MAP ||
         f->type == SLUICE_CFG_OBJECT))
        return "nested too deep (a table that contains itself?)";
    if (f->type == SLUICE_CFG_ARRAY || f->type == SLUICE_CFG_MAP) {
        if (!f->elem)
            return "list or map without an element type (elem)";
        if (f->elem->type == SLUICE_CFG_JSON)
            return "JSON elements are not stored (use JSON_TEXT)";
        char sub[160];
        snprintf(sub, sizeof sub, "%s%s%s", prefix, f->name ? f->name : "",
                 f->type == SLUICE_CFG_MAP ? ".<name>" : "[]");
        const char *problem = check_key(C, f->elem, 0, false, sub, depth + 1);
        if (problem)
            return problem;
    }
    if (f->type == SLUICE_CFG_OBJECT) {
        if (!f->fields || !f->size)
            return "object without fields or size";
        char sub[160];
        snprintf(sub, sizeof sub, "%s%s.", prefix,
                 in_struct && f->name ? f->name : "");
        const char *problem =
            check_table(C, f->fields, f->size, sub, depth + 1);
        if (problem)
            return problem;
    }
    if (in_struct && f->default_value)
        return check_default(f);
    return NULL;
}

static const struct sluice_cfg_field *
row(const struct checker *C, const struct sluice_cfg_field *table, size_t i)
{
    return (const struct sluice_cfg_field *)((const char *)table +
                                             i * C->stride);
}

static const char *check_table(struct checker *C,
                               const struct sluice_cfg_field *table,
                               size_t struct_size, const char *prefix,
                               int depth)
{
    char inner[128];

    for (size_t i = 0; table; i++) {
        const struct sluice_cfg_field *f = row(C, table, i);
        if (!f->name && f->type == 0)
            return NULL; /* the {0} terminator */
        if (i == CONFIG_KEYS_MAX) {
            snprintf(C->buf, C->buflen,
                     "config table has more than %d keys (missing the {0} "
                     "terminator?)",
                     CONFIG_KEYS_MAX);
            return C->buf;
        }
        if (!f->name) {
            snprintf(C->buf, C->buflen, "config key #%zu has no name", i);
            return C->buf;
        }
        const char *problem = NULL;
        char *saved = C->buf;
        size_t saved_len = C->buflen;
        if (!valid_key_name(f->name)) {
            problem = "invalid key name (use letters, digits and _)";
        } else {
            /* Nested keys report their own full name: use a scratch buffer
             * for the problem text. */
            C->buf = inner;
            C->buflen = sizeof inner;
            problem = check_key(C, f, struct_size, true, prefix, depth);
            C->buf = saved;
            C->buflen = saved_len;
        }
        if (problem) {
            if (strncmp(problem, "config key ", 11) == 0) {
                if (problem != C->buf)
                    snprintf(C->buf, C->buflen, "%s", problem);
            } else {
                char msg[160];
                snprintf(msg, sizeof msg, "%s", problem);
                snprintf(C->buf, C->buflen, "config key '%s%s': %s", prefix,
                         f->name, msg);
            }
            return C->buf;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(row(C, table, j)->name, f->name) == 0) {
                snprintf(C->buf, C->buflen, "config key '%s%s': declared twice",
                         prefix, f->name);
                return C->buf;
            }
        }
    }
    return NULL;
}

int plugin_config_check(const struct sluice_plugin *p, char *msg, size_t msglen)
{
    struct checker C = {plugin_config_field_size(p), false, msg, msglen};

    C.v11 = C.stride >= FIELD_SIZE_1_1;
    return check_table(&C, p->config, p->config_size, "", 0) ? -1 : 0;
}
