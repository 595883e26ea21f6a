/* Claims ABI major 2: a plugin built against a future, incompatible SDK. */
#include <sluice/plugin.h>

static const struct sluice_plugin wrong_major = {
    .abi_major = 2,
    .abi_minor = 0,
    .struct_size = sizeof(struct sluice_plugin),
    .name = "wrong_major",
};
SLUICE_PLUGIN_EXPORT(wrong_major)
