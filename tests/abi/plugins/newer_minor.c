/* Needs a newer minor version than this core offers. */
#include <sluice/plugin.h>

static const struct sluice_plugin newer_minor = {
    .abi_major = SLUICE_ABI_MAJOR,
    .abi_minor = SLUICE_ABI_MINOR + 1,
    .struct_size = sizeof(struct sluice_plugin),
    .name = "newer_minor",
};
SLUICE_PLUGIN_EXPORT(newer_minor)
