/* Validates a plugin instance's JSON config against the plugin's declared
 * key table and fills its config struct. Shared by the core's loader and
 * the SDK's fake host, so unit tests see exactly the production rules. */
#ifndef SLUICE_PLUGIN_CONFIG_H
#define SLUICE_PLUGIN_CONFIG_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#include "sluice/plugin.h"

/* cfg: the instance's "config" object (pass an empty object when absent).
 * Defaults are added to cfg and STRING fields point into it, so keep a
 * reference to cfg for the instance's lifetime. `path` prefixes errors:
 * "pipeline[2].config" gives "pipeline[2].config.rpm: must be > 0".
 * Returns 0 or -1. */
int plugin_config_fill(const struct sluice_plugin *p, json_t *cfg,
                       const char *path, void *out, char *err, size_t errlen);

/* Writes the plugin's key table as human-readable text (plugin-help). */
void plugin_config_describe(const struct sluice_plugin *p, FILE *out);

#endif
