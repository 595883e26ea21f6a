/* The "tokens" section of the config (see tokens/tokens_config.h). */
#include "config/config_internal.h"
#include "tokens/tokens_config.h"

void cfg_parse_tokens(struct parse_ctx *ctx, json_t *obj)
{
    char path[96], msg[160];
    if (!tokens_config_parse(obj, &ctx->cfg->tokens, path, sizeof path, msg,
                             sizeof msg))
        cfg_error(ctx, path, "%s", msg);
}
