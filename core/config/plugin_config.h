/* Validates a plugin instance's JSON config against the plugin's declared
 * key table and fills its config struct. Shared by the core's loader and
 * the SDK's fake host, so unit tests see exactly the production rules. */
#ifndef SLUICE_PLUGIN_CONFIG_H
#define SLUICE_PLUGIN_CONFIG_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#include "sluice/plugin.h"

/* Memory behind ARRAY, MAP and JSON_TEXT values; lives as long as the
 * plugin instance. */
struct plugin_config_mem;

/* cfg: the instance's "config" object (pass an empty object when absent).
 * Defaults are added to cfg and STRING fields point into it, so keep a
 * reference to cfg for the instance's lifetime. `path` prefixes errors:
 * "pipeline[2].config" gives "pipeline[2].config.rpm: must be > 0" and
 * "pipeline[2].config.upstream_limits.openai.max_queue: must be <= 1000".
 * Returns 0 with *mem set (free it with plugin_config_mem_free after the
 * instance is destroyed), or -1 with nothing to free. */
int plugin_config_fill(const struct sluice_plugin *p, json_t *cfg,
                       const char *path, void *out,
                       struct plugin_config_mem **mem, char *err,
                       size_t errlen);
void plugin_config_mem_free(struct plugin_config_mem *mem);

/* Writes the plugin's key table as human-readable text (plugin-help). */
void plugin_config_describe(const struct sluice_plugin *p, FILE *out);

/* Load-time check of p's key table (types, flags, offsets inside
 * config_size, defaults, nested tables). Returns 0, or -1 with a message
 * such as "config key 'rpm': default is out of bounds". */
int plugin_config_check(const struct sluice_plugin *p, char *msg,
                        size_t msglen);

/* The stride of p's key table: 1.0 plugins predate cfg_field_size. */
size_t plugin_config_field_size(const struct sluice_plugin *p);

#endif
