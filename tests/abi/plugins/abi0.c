/* An old plugin from before ABI 1: it exports sluice_plugin_v0. The loader
 * must say so instead of "not a sluice plugin". */
#include <stdint.h>

struct old_plugin {
    uint32_t abi_major;
    const char *name;
};

static const struct old_plugin abi0 = {.abi_major = 0, .name = "abi0"};

__attribute__((visibility("default"))) const struct old_plugin *
sluice_plugin_v0(void)
{
    return &abi0;
}
