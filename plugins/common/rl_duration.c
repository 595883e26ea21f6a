#include "rl_duration.h"

#include <string.h>
#include <time.h>

#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull

bool rl_parse_u64(struct sluice_str s, uint64_t *out)
{
    uint64_t v = 0;
    if (!s.ptr || s.len == 0 || s.len > 19)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s.ptr[i] - '0');
    }
    *out = v;
    return true;
}

/* Reads "123" or "1.25" at *p as a value scaled by `unit` ns; fraction
 * digits beyond ns precision are ignored. */
static bool read_number(const char **p, const char *end, uint64_t unit,
                        uint64_t *ns)
{
    const char *q = *p;
    uint64_t whole = 0, frac = 0, scale = 1;
    bool digits = false;

    while (q < end && *q >= '0' && *q <= '9') {
        if (whole > UINT64_MAX / 10 - 10)
            return false;
        whole = whole * 10 + (uint64_t)(*q++ - '0');
        digits = true;
    }
    if (q < end && *q == '.') {
        q++;
        while (q < end && *q >= '0' && *q <= '9') {
            if (scale < NS_PER_S) {
                frac = frac * 10 + (uint64_t)(*q - '0');
                scale *= 10;
            }
            q++;
            digits = true;
        }
    }
    if (!digits || (unit && whole > UINT64_MAX / unit))
        return false;
    *ns = whole * unit + frac * unit / scale;
    *p = q;
    return true;
}

static uint64_t unit_of(const char **p, const char *end)
{
    static const struct {
        const char *name;
        uint64_t ns;
    } units[] = {{"ns", 1},
                 {"us", 1000},
                 {"\xc2\xb5s", 1000},
                 {"ms", NS_PER_MS},
                 {"s", NS_PER_S},
                 {"m", 60 * NS_PER_S},
                 {"h", 3600 * NS_PER_S}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        size_t n = strlen(units[i].name);
        if ((size_t)(end - *p) >= n && memcmp(*p, units[i].name, n) == 0) {
            /* "m" must not eat the "m" of "ms". */
            if (n == 1 && units[i].name[0] == 'm' && end - *p > 1 &&
                (*p)[1] == 's')
                continue;
            *p += n;
            return units[i].ns;
        }
    }
    return 0;
}

bool rl_duration_parse(struct sluice_str s, uint64_t *ns_out)
{
    const char *p = s.ptr, *end = s.ptr + s.len;
    uint64_t total = 0;

    if (!p || s.len == 0)
        return false;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (p == end)
        return false;
    const char *begin = p;
    while (p < end) {
        const char *start = p, *after = p;
        uint64_t v, unit;
        /* Scan the number once to find its unit, then scale it by that. */
        if (!read_number(&after, end, 1, &v))
            return false;
        p = after;
        if (p == end && start == begin) {
            unit = NS_PER_S; /* a bare number: seconds */
        } else if (p == end || !(unit = unit_of(&p, end))) {
            return false; /* "1m30" or an unknown unit */
        }
        if (!read_number(&start, end, unit, &v) || total > UINT64_MAX - v)
            return false;
        total += v;
    }
    *ns_out = total;
    return true;
}

bool rl_retry_after_parse(struct sluice_str s, int64_t wall_ms,
                          uint64_t *ns_out)
{
    if (!s.ptr || s.len == 0)
        return false;
    if (s.ptr[0] >= '0' && s.ptr[0] <= '9') {
        const char *p = s.ptr, *end = s.ptr + s.len;
        uint64_t ns;
        if (!read_number(&p, end, NS_PER_S, &ns) || p != end)
            return false;
        *ns_out = ns;
        return true;
    }
    char buf[64];
    struct tm tm;
    if (s.len >= sizeof buf)
        return false;
    memcpy(buf, s.ptr, s.len);
    buf[s.len] = '\0';
    memset(&tm, 0, sizeof tm);
    const char *rest = strptime(buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!rest || *rest)
        return false;
    int64_t at_ms = (int64_t)timegm(&tm) * 1000;
    *ns_out = at_ms > wall_ms ? (uint64_t)(at_ms - wall_ms) * NS_PER_MS : 0;
    return true;
}

size_t rl_format_u64(uint64_t v, char *buf)
{
    char tmp[20];
    size_t n = 0, k = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        buf[k++] = tmp[--n];
    buf[k] = '\0';
    return k;
}

/* Hot path (a header on every response): no printf. */
size_t rl_duration_format(uint64_t ns, char *buf, size_t cap)
{
    uint64_t ms = ns / NS_PER_MS + (ns % NS_PER_MS != 0);
    char *p = buf;

    if (cap < 32)
        return 0;
    if (ms == 0) {
        memcpy(buf, "0s", 3);
        return 2;
    }
    if (ms < 1000) {
        p += rl_format_u64(ms, p);
        memcpy(p, "ms", 3);
        return (size_t)(p - buf) + 2;
    }
    uint64_t h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60;
    unsigned frac = (unsigned)(ms % 1000);
    if (h) {
        p += rl_format_u64(h, p);
        *p++ = 'h';
    }
    if (h || m) {
        p += rl_format_u64(m, p);
        *p++ = 'm';
    }
    p += rl_format_u64(s, p);
    if (frac) {
        char digits[3] = {(char)('0' + frac / 100),
                          (char)('0' + frac / 10 % 10),
                          (char)('0' + frac % 10)};
        int keep = digits[2] != '0' ? 3 : digits[1] != '0' ? 2 : 1;
        *p++ = '.';
        memcpy(p, digits, (size_t)keep);
        p += keep;
    }
    *p++ = 's';
    *p = '\0';
    return (size_t)(p - buf);
}
