/* Exports the right symbol, but the entry point returns no descriptor. */
#include <stddef.h>

#include <sluice/plugin.h>

__attribute__((visibility("default"))) const struct sluice_plugin *
sluice_plugin_v1(void)
{
    return NULL;
}
