/* Built twice, as dup_a.so and dup_b.so: two files claiming one name. */
#include <sluice/plugin.h>

static const struct sluice_plugin dup = {
    SLUICE_PLUGIN_HEADER,
    .name = "dup",
};
SLUICE_PLUGIN_EXPORT(dup)
