/* Plugin loader: opens a plugin's shared object and refuses it, with a
 * message naming the file, unless its descriptor fits this core's ABI.
 * The checks run in the order listed in plugin_loader.h, so the first
 * message a user sees is the most fundamental problem. Main thread only. */
#include "plugin_loader.h"

#include "config/plugin_config.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PLUGIN_NAME_MAX 63
#define CONFIG_SIZE_MAX (1 << 20) /* a larger value is garbage, not config */
#define DESCRIPTOR_SIZE_MAX 4096  /* many times the 1.x descriptor */
#define REQ_STATE_MAX (1 << 20)   /* per request; bigger needs req_alloc */

/* The 1.0 descriptor: every field up to and including on_log. Hooks
 * appended later (status_json first) are optional and read as NULL when
 * the plugin's struct_size does not cover them. */
#define DESCRIPTOR_1_0_SIZE offsetof(struct sluice_plugin, status_json)

struct plugin_set {
    struct loaded_plugin **items; /* pointers stay valid as the set grows */
    size_t n, cap;
};

typedef const struct sluice_plugin *(*entry_fn)(void);

struct plugin_set *plugin_set_new(void)
{
    return calloc(1, sizeof(struct plugin_set));
}

void plugin_set_free(struct plugin_set *set)
{
    if (!set)
        return;
    /* Reverse load order, like destructors unwinding a stack. */
    for (size_t i = set->n; i-- > 0;) {
        dlclose(set->items[i]->dl);
        free(set->items[i]);
    }
    free(set->items);
    free(set);
}

/* ---- descriptor checks ---- */

static int fail(char *err, size_t errlen, const char *path, const char *fmt,
                ...) __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, const char *path, const char *fmt,
                ...)
{
    va_list ap;
    int n = snprintf(err, errlen, "%s: ", path);

    if (n >= 0 && (size_t)n < errlen) {
        va_start(ap, fmt);
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

static bool valid_plugin_name(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > PLUGIN_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_name_char(name[i]))
            return false;
    return true;
}

int plugin_check_descriptor(const char *path, const struct sluice_plugin *d,
                            struct sluice_plugin *out, char *err, size_t errlen)
{
    struct sluice_plugin p;

    if (!d)
        return fail(err, errlen, path, "%s() returned NULL",
                    SLUICE_PLUGIN_ENTRY_NAME);
    if (d->abi_major != SLUICE_ABI_MAJOR)
        return fail(err, errlen, path,
                    "built for ABI major %u, this core is ABI %d.%d",
                    d->abi_major, SLUICE_ABI_MAJOR, SLUICE_ABI_MINOR);
    if (d->abi_minor > SLUICE_ABI_MINOR)
        return fail(
            err, errlen, path, "needs core >= %d.%u (this core is %d.%d)",
            SLUICE_ABI_MAJOR, d->abi_minor, SLUICE_ABI_MAJOR, SLUICE_ABI_MINOR);
    if (d->struct_size < DESCRIPTOR_1_0_SIZE)
        return fail(err, errlen, path,
                    "descriptor too short (%u bytes, ABI 1.0 needs at least "
                    "%zu)",
                    d->struct_size, DESCRIPTOR_1_0_SIZE);

    /* A plugin may append fields this core does not know, but not a size
     * no descriptor could have: that is garbage, not a newer ABI. */
    if (d->struct_size > DESCRIPTOR_SIZE_MAX)
        return fail(err, errlen, path,
                    "descriptor size %u is implausible (at most %d bytes)",
                    d->struct_size, DESCRIPTOR_SIZE_MAX);

    /* Only the bytes the plugin declared: fields it does not know stay
     * zero, so the core sees absent hooks as NULL. */
    memset(&p, 0, sizeof p);
    memcpy(&p, d, d->struct_size < sizeof p ? d->struct_size : sizeof p);

    if (!p.name || !p.name[0])
        return fail(err, errlen, path, "descriptor has no name");
    if (!valid_plugin_name(p.name))
        return fail(err, errlen, path,
                    "plugin name '%.80s' is invalid (use 1 to %d of a-z, 0-9 "
                    "and _)",
                    p.name, PLUGIN_NAME_MAX);
    if (p.config_size > CONFIG_SIZE_MAX)
        return fail(err, errlen, path, "config_size %zu is implausibly large",
                    p.config_size);
    if (p.req_state_size > REQ_STATE_MAX)
        return fail(err, errlen, path,
                    "req_state_size %zu is over %d bytes (use req_alloc for "
                    "large per-request data)",
                    p.req_state_size, REQ_STATE_MAX);
    if (p.config_size > 0 && !p.create)
        return fail(err, errlen, path,
                    "declares a config struct (%zu bytes) but no create() to "
                    "receive it",
                    p.config_size);
    char problem[256];
    if (plugin_config_check(&p, problem, sizeof problem))
        return fail(err, errlen, path, "%s", problem);
    if (out)
        *out = p;
    return 0;
}

/* ---- loading ---- */

static struct loaded_plugin *find_by_path(const struct plugin_set *set,
                                          const char *path)
{
    for (size_t i = 0; i < set->n; i++)
        if (strcmp(set->items[i]->path, path) == 0)
            return set->items[i];
    return NULL;
}

static struct loaded_plugin *find_by_handle(const struct plugin_set *set,
                                            void *dl)
{
    for (size_t i = 0; i < set->n; i++)
        if (set->items[i]->dl == dl)
            return set->items[i];
    return NULL;
}

static struct loaded_plugin *find_by_name(const struct plugin_set *set,
                                          const char *name)
{
    for (size_t i = 0; i < set->n; i++)
        if (strcmp(set->items[i]->desc.name, name) == 0)
            return set->items[i];
    return NULL;
}

static entry_fn lookup_entry(void *dl, const char *symbol)
{
    entry_fn fn;
    void *sym = dlsym(dl, symbol);
    /* ISO C has no object-to-function pointer cast; POSIX guarantees the
     * representation, so copy the bits. */
    memcpy(&fn, &sym, sizeof fn);
    return fn;
}

static int append(struct plugin_set *set, struct loaded_plugin *lp)
{
    if (set->n == set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 8;
        struct loaded_plugin **items = realloc(set->items, cap * sizeof *items);
        if (!items)
            return -1;
        set->items = items;
        set->cap = cap;
    }
    set->items[set->n++] = lp;
    return 0;
}

/* Opens the file, finds the entry point and validates what it returns. */
static void *open_plugin(const char *path, struct sluice_plugin *desc,
                         char *err, size_t errlen)
{
    char local[sizeof((struct loaded_plugin *)0)->path + 2];
    const char *open_path = path;

    /* dlopen searches the system library path for a bare file name; a
     * plugin path is always a file path. */
    if (!strchr(path, '/')) {
        snprintf(local, sizeof local, "./%s", path);
        open_path = local;
    }
    void *dl = dlopen(open_path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        const char *why = dlerror();
        fail(err, errlen, path, "cannot load: %s", why ? why : "unknown");
        return NULL;
    }
    entry_fn entry = lookup_entry(dl, SLUICE_PLUGIN_ENTRY_NAME);
    if (!entry) {
        if (lookup_entry(dl, "sluice_plugin_v0"))
            fail(err, errlen, path, "built for ABI 0; this core needs ABI %d",
                 SLUICE_ABI_MAJOR);
        else
            fail(err, errlen, path, "not a sluice plugin (no %s symbol)",
                 SLUICE_PLUGIN_ENTRY_NAME);
        dlclose(dl);
        return NULL;
    }
    if (plugin_check_descriptor(path, entry(), desc, err, errlen)) {
        dlclose(dl);
        return NULL;
    }
    return dl;
}

const struct loaded_plugin *plugin_set_load(struct plugin_set *set,
                                            const char *path, char *err,
                                            size_t errlen)
{
    struct sluice_plugin desc;
    struct loaded_plugin *lp;

    if (!set || !path || !path[0]) {
        snprintf(err, errlen, "(no path): no plugin file given");
        return NULL;
    }
    if (strlen(path) >= sizeof lp->path) {
        fail(err, errlen, path, "path longer than %zu bytes",
             sizeof lp->path - 1);
        return NULL;
    }
    lp = find_by_path(set, path);
    if (lp)
        return lp;

    void *dl = open_plugin(path, &desc, err, errlen);
    if (!dl)
        return NULL;
    /* The same file under another spelling ("./x.so", a symlink): dlopen
     * hands back the handle it already has. */
    lp = find_by_handle(set, dl);
    if (lp) {
        dlclose(dl); /* drop the extra reference */
        return lp;
    }
    const struct loaded_plugin *other = find_by_name(set, desc.name);
    if (other) {
        fail(err, errlen, path, "plugin name '%s' already loaded from %s",
             desc.name, other->path);
        dlclose(dl);
        return NULL;
    }

    lp = calloc(1, sizeof *lp);
    if (!lp || append(set, lp)) {
        free(lp);
        dlclose(dl);
        fail(err, errlen, path, "out of memory");
        return NULL;
    }
    snprintf(lp->path, sizeof lp->path, "%s", path);
    lp->dl = dl;
    lp->desc = desc;
    return lp;
}
