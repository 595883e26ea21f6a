/* Declares a descriptor of 16 bytes: shorter than any 1.x descriptor. */
#include <sluice/plugin.h>

static const struct sluice_plugin short_struct = {
    .abi_major = SLUICE_ABI_MAJOR,
    .abi_minor = SLUICE_ABI_MINOR,
    .struct_size = 16,
    .name = "short_struct",
};
SLUICE_PLUGIN_EXPORT(short_struct)
