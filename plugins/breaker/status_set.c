#include "status_set.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void add_range(struct status_set *s, long lo, long hi)
{
    for (long c = lo; c <= hi; c++)
        s->bits[c / 8] |= (uint8_t)(1u << (c % 8));
}

static bool valid_code(long c)
{
    return c >= 100 && c <= 599;
}

/* One token of `len` bytes, already trimmed. */
static int parse_token(struct status_set *s, const char *tok, size_t len,
                       char *err, size_t errlen)
{
    char buf[16];
    char *end;

    if (len == 0 || len >= sizeof buf)
        goto bad;
    memcpy(buf, tok, len);
    buf[len] = '\0';
    if (len == 3 && isdigit((unsigned char)buf[0]) &&
        tolower((unsigned char)buf[1]) == 'x' &&
        tolower((unsigned char)buf[2]) == 'x') {
        long cls = buf[0] - '0';
        if (cls < 1 || cls > 5)
            goto bad;
        add_range(s, cls * 100, cls * 100 + 99);
        return 0;
    }
    long lo = strtol(buf, &end, 10);
    long hi = lo;
    if (*end == '-')
        hi = strtol(end + 1, &end, 10);
    if (*end != '\0' || !valid_code(lo) || !valid_code(hi) || hi < lo)
        goto bad;
    add_range(s, lo, hi);
    return 0;
bad:
    snprintf(err, errlen,
             "failure_statuses: bad token \"%.*s\" (want e.g. \"5xx\", "
             "\"429\" or \"500-504\")",
             (int)(len > 20 ? 20 : len), tok);
    return -1;
}

static int parse_list(struct status_set *s, const char *text, char *err,
                      size_t errlen)
{
    const char *p = text;

    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *start = p;
        while (*p && *p != ',')
            p++;
        const char *end = p;
        while (end > start && end[-1] == ' ')
            end--;
        if (end > start &&
            parse_token(s, start, (size_t)(end - start), err, errlen))
            return -1;
    }
    return 0;
}

int status_set_parse(struct status_set *s, const char *const *tokens, size_t n,
                     char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    for (size_t i = 0; i < n; i++)
        if (parse_list(s, tokens[i], err, errlen))
            return -1;
    return 0;
}

bool status_set_has(const struct status_set *s, int status)
{
    if (status < 0 || status >= 600)
        return false;
    return s->bits[status / 8] & (1u << (status % 8));
}
