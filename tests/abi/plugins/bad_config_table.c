/* A config key whose offset lies beyond config_size: filling it would
 * write past the struct the core allocates. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <sluice/plugin.h>

struct bad_config {
    int64_t rpm;
};

static const struct sluice_cfg_field bad_keys[] = {
    {.name = "rpm",
     .type = SLUICE_CFG_INT,
     .offset = offsetof(struct bad_config, rpm)},
    {.name = "burst", .type = SLUICE_CFG_INT, .offset = 64},
    {0},
};

static int bad_create(const struct sluice_host *h, const void *config,
                      struct sluice_str raw, void **self,
                      struct sluice_error *err)
{
    (void)h, (void)config, (void)raw, (void)err;
    *self = NULL;
    return 0;
}

static void bad_destroy(void *self)
{
    free(self);
}

static const struct sluice_plugin bad_config_table = {
    SLUICE_PLUGIN_HEADER, .name = "bad_config_table",
    .config = bad_keys,   .config_size = sizeof(struct bad_config),
    .create = bad_create, .destroy = bad_destroy,
};
SLUICE_PLUGIN_EXPORT(bad_config_table)
