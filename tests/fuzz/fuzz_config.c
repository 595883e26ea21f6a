/* libFuzzer target: config_parse() on arbitrary bytes must never crash,
 * hang or leak, whatever the input claims to be. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* config_parse takes NUL-terminated text, as config_load hands it. */
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    /* A directory that does not exist: relative key_file paths then fail
     * cleanly instead of reading whatever sits next to the fuzzer. */
    char err[4096];
    struct config *c =
        config_parse(text, "/nonexistent/sluice-fuzz", "fuzz", err, sizeof err);
    if (c) {
        /* Exercise the lookups on whatever was accepted. */
        config_route_model(c, "gpt-4o", 6);
        config_fallbacks(c, "gpt-4o", 6);
        config_find_key(c, "sk-sluice-test-alice", 20);
        config_unref(config_ref(c));
        config_unref(c);
    }
    free(text);
    return 0;
}
