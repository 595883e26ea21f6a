/* Loads plugin shared objects and checks their ABI before trusting them:
 *   1. dlopen(RTLD_NOW|RTLD_LOCAL), dlsym("sluice_plugin_v1"); when missing,
 *      probe "sluice_plugin_v0" and say "built for ABI 0";
 *   2. abi_major == SLUICE_ABI_MAJOR, abi_minor <= SLUICE_ABI_MINOR
 *      ("needs core >= 1.N");
 *   3. struct_size covers the 1.0 fields; the descriptor is copied into a
 *      zeroed struct so hooks unknown to the plugin read as NULL;
 *   4. a name that is empty or not [a-z0-9_] is refused; two different files
 *      claiming the same plugin name are refused.
 * Every error names the file. */
#ifndef SLUICE_PLUGIN_LOADER_H
#define SLUICE_PLUGIN_LOADER_H

#include <stddef.h>

#include "sluice/plugin.h"

struct loaded_plugin {
    char path[512];
    void *dl;                  /* dlopen handle */
    struct sluice_plugin desc; /* zero-extended copy */
};

struct plugin_set; /* the plugins of one config generation, by name */

struct plugin_set *plugin_set_new(void);
/* Loads `path` (or returns the already loaded plugin of that path). */
const struct loaded_plugin *plugin_set_load(struct plugin_set *set,
                                            const char *path, char *err,
                                            size_t errlen);
void plugin_set_free(struct plugin_set *set); /* dlclose all */

/* Standalone check used by plugin_set_load and the ABI tests: validates a
 * descriptor returned by the entry symbol. Returns 0 or -1 with err. */
int plugin_check_descriptor(const char *path, const struct sluice_plugin *d,
                            struct sluice_plugin *out, char *err,
                            size_t errlen);

#endif
