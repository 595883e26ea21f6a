/* retry.on_status: see config_retry.h. */
#include "config_retry.h"

#include <jansson.h>
#include <string.h>

#include "config_internal.h"

static void add(struct retry_config *rc, int status)
{
    rc->on_status[status / 64] |= 1ull << (status % 64);
}

void config_retry_default_statuses(struct retry_config *rc)
{
    static const int statuses[] = {408, 409, 429, 500, 502, 503, 504};
    memset(rc->on_status, 0, sizeof rc->on_status);
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
        add(rc, statuses[i]);
}

bool config_retry_status(const struct retry_config *rc, int status)
{
    return status >= 100 && status <= 599 &&
           (rc->on_status[status / 64] >> (status % 64) & 1);
}

/* "5xx" → 5, else 0. */
static int status_class(const char *s)
{
    if (strlen(s) == 3 && s[0] >= '4' && s[0] <= '5' &&
        (s[1] == 'x' || s[1] == 'X') && (s[2] == 'x' || s[2] == 'X'))
        return s[0] - '0';
    return 0;
}

void cfg_parse_retry_statuses(struct parse_ctx *ctx, struct json_t *retry,
                              struct retry_config *rc)
{
    json_t *list = cfg_get_array(ctx, retry, "retry", "on_status");
    if (!list)
        return;
    memset(rc->on_status, 0, sizeof rc->on_status); /* [] = retry none */
    size_t i;
    json_t *item;
    json_array_foreach(list, i, item)
    {
        char p[CFG_PATH_MAX];
        cfg_path_index(p, sizeof p, "retry.on_status", i);
        if (json_is_integer(item) && json_integer_value(item) >= 400 &&
            json_integer_value(item) <= 599) {
            add(rc, (int)json_integer_value(item));
            continue;
        }
        int cls =
            json_is_string(item) ? status_class(json_string_value(item)) : 0;
        if (!cls) {
            cfg_error(ctx, p,
                      "must be a status from 400 to 599 or \"4xx\" / "
                      "\"5xx\"");
            continue;
        }
        for (int s = cls * 100; s < cls * 100 + 100; s++)
            add(rc, s);
    }
}
