#include "host_rules.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool has_crlf(struct sluice_str v)
{
    return v.ptr && (memchr(v.ptr, '\r', v.len) || memchr(v.ptr, '\n', v.len));
}

int host_rule_routing(bool in_request_phase)
{
    return in_request_phase ? SLUICE_OK : SLUICE_EPHASE;
}

bool host_rule_header_readable(const char *name)
{
    return name && strcasecmp(name, "authorization") != 0;
}

int host_rule_upstream_header(const char *name, struct sluice_str value)
{
    if (!name || !*name || strcasecmp(name, "authorization") == 0 ||
        strpbrk(name, "\r\n") || has_crlf(value))
        return SLUICE_EINVAL;
    return SLUICE_OK;
}

int host_rule_client_header(const char *name, struct sluice_str value)
{
    if (!name || !*name || strpbrk(name, "\r\n:") || has_crlf(value))
        return SLUICE_EINVAL;
    return SLUICE_OK;
}

int host_rule_model(struct sluice_str model)
{
    return model.ptr && model.len > 0 && model.len <= 127 ? SLUICE_OK
                                                          : SLUICE_EINVAL;
}

int host_rule_priority(enum sluice_priority p)
{
    return (unsigned)p <= SLUICE_PRIO_LOW ? SLUICE_OK : SLUICE_EINVAL;
}

int host_rule_var(const char *name, struct sluice_str value)
{
    if (!name || !*name || strlen(name) > 63 || has_crlf(value))
        return SLUICE_EINVAL;
    return SLUICE_OK;
}

int host_rule_reject_status(int status)
{
    return status >= 400 && status <= 599 ? status : 500;
}

size_t host_rule_retry_after(uint64_t retry_after_ms, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%llu",
                     (unsigned long long)((retry_after_ms + 999) / 1000));
    return n > 0 ? (size_t)n : 0;
}
