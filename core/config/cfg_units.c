#include "cfg_units.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Reads a non-negative decimal number ("12", "1.25") at *p. */
static bool read_number(const char **p, double *out)
{
    const char *q = *p;
    bool digits = false;
    double v = 0, scale = 1;

    while (isdigit((unsigned char)*q)) {
        v = v * 10 + (*q++ - '0');
        digits = true;
    }
    if (*q == '.') {
        q++;
        while (isdigit((unsigned char)*q)) {
            scale /= 10;
            v += (*q++ - '0') * scale;
            digits = true;
        }
    }
    if (!digits)
        return false;
    *out = v;
    *p = q;
    return true;
}

bool cfg_duration_parse(const char *s, int64_t *ns_out)
{
    static const struct {
        const char *name;
        double ns;
    } units[] = {{"ns", 1},   {"us", 1e3},   {"ms", 1e6},   {"s", 1e9},
                 {"m", 60e9}, {"h", 3600e9}, {"d", 86400e9}};
    const char *p = s;
    double total = 0;

    if (!s || !*s)
        return false;
    while (*p) {
        double v;
        if (!read_number(&p, &v))
            return false;
        size_t i, n = 0;
        for (i = 0; i < sizeof units / sizeof units[0]; i++) {
            n = strlen(units[i].name);
            /* "m" must not take the "m" of "ms". */
            if (strncmp(p, units[i].name, n) == 0 &&
                !(n == 1 && p[0] == 'm' && p[1] == 's'))
                break;
        }
        if (i == sizeof units / sizeof units[0])
            return false; /* no unit or an unknown one */
        p += n;
        total += v * units[i].ns;
    }
    if (!(total < 9.2e18))
        return false;
    *ns_out = (int64_t)llround(total);
    return true;
}

bool cfg_size_parse(const char *s, int64_t *bytes_out)
{
    static const struct {
        const char *name;
        double bytes;
    } units[] = {{"b", 1},
                 {"kb", 1e3},
                 {"mb", 1e6},
                 {"gb", 1e9},
                 {"tb", 1e12},
                 {"kib", 1024.0},
                 {"mib", 1024.0 * 1024},
                 {"gib", 1024.0 * 1024 * 1024},
                 {"tib", 1024.0 * 1024 * 1024 * 1024}};
    const char *p = s;
    double v;

    if (!s || !read_number(&p, &v))
        return false;
    if (*p == ' ')
        p++;
    double mult = 1;
    if (*p) {
        size_t i;
        for (i = 0; i < sizeof units / sizeof units[0]; i++)
            if (strcasecmp(p, units[i].name) == 0)
                break;
        if (i == sizeof units / sizeof units[0])
            return false;
        mult = units[i].bytes;
    } else if (strchr(s, '.')) {
        return false; /* "1.5" bytes */
    }
    double bytes = v * mult;
    if (!(bytes < 9.2e18) || bytes != floor(bytes))
        return false;
    *bytes_out = (int64_t)bytes;
    return true;
}
