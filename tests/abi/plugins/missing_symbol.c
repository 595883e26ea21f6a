/* A shared object that is not a sluice plugin: its entry point has the
 * wrong name, so the loader finds no sluice_plugin_v1. */
#include <sluice/plugin.h>

static const struct sluice_plugin missing_symbol = {
    SLUICE_PLUGIN_HEADER,
    .name = "missing_symbol",
};

__attribute__((visibility("default"))) const struct sluice_plugin *
sluice_plugin(void)
{
    return &missing_symbol;
}
