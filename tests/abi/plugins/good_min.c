/* A plugin compiled against the 1.0 header, before status_json existed:
 * its descriptor ends after on_log. The loader must accept it and read
 * status_json (and any later hook) as NULL, without reading past the
 * object (ASan's redzones would catch that).
 *
 * struct sluice_plugin_1_0 is the 1.0 layout as such a plugin saw it. */
#include <stddef.h>

#include <sluice/host.h>
#include <sluice/plugin.h>

struct sluice_plugin_1_0 {
    uint32_t abi_major, abi_minor, struct_size;
    const char *name;
    const char *version;
    const char *summary;
    const struct sluice_cfg_field *config;
    size_t config_size;
    size_t req_state_size;
    int (*create)(const struct sluice_host *host, const void *config,
                  struct sluice_str raw_json, void **self,
                  struct sluice_error *err);
    void (*destroy)(void *self);
    int (*thread_init)(void *self, unsigned worker);
    void (*thread_fini)(void *self, unsigned worker);
    enum sluice_action (*on_request)(void *self, struct sluice_req *r,
                                     void *state);
    enum sluice_action (*on_upstream_response)(void *self, struct sluice_req *r,
                                               void *state);
    void (*on_response)(void *self, struct sluice_req *r, void *state);
    void (*on_log)(void *self, struct sluice_req *r, void *state);
};

_Static_assert(sizeof(struct sluice_plugin_1_0) ==
                   offsetof(struct sluice_plugin, status_json),
               "the 1.0 layout is a prefix of the current descriptor");

static enum sluice_action good_on_request(void *self, struct sluice_req *r,
                                          void *state)
{
    (void)self, (void)r, (void)state;
    return SLUICE_CONTINUE;
}

static const struct sluice_plugin_1_0 good_min = {
    .abi_major = 1,
    .abi_minor = 0,
    .struct_size = sizeof(struct sluice_plugin_1_0),
    .name = "good_min",
    .version = "1.0.0",
    .on_request = good_on_request,
};

__attribute__((visibility("default"))) const struct sluice_plugin *
sluice_plugin_v1(void)
{
    return (const struct sluice_plugin *)(const void *)&good_min;
}
