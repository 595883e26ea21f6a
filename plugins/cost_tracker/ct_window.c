/* UTC calendar windows (timegm/gmtime_r: no local time zone involved). */
#include "ct_window.h"

#include <stdio.h>
#include <time.h>

#define DAY_MS 86400000ll

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static struct tm utc(int64_t wall_ms)
{
    time_t s = (time_t)floor_div(wall_ms, 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    return tm;
}

static int64_t month_start_ms(int year, int mon)
{
    struct tm tm = {
        .tm_year = year - 1900 + mon / 12, .tm_mon = mon % 12, .tm_mday = 1};
    return (int64_t)timegm(&tm) * 1000;
}

int64_t ct_window_of(enum ct_period p, int64_t wall_ms)
{
    if (p == CT_DAILY)
        return floor_div(wall_ms, DAY_MS);
    if (p == CT_MONTHLY) {
        struct tm tm = utc(wall_ms);
        return (int64_t)(tm.tm_year + 1900) * 12 + tm.tm_mon;
    }
    return 0;
}

int64_t ct_window_start_ms(enum ct_period p, int64_t wall_ms)
{
    if (p == CT_DAILY)
        return floor_div(wall_ms, DAY_MS) * DAY_MS;
    if (p == CT_MONTHLY) {
        struct tm tm = utc(wall_ms);
        return month_start_ms(tm.tm_year + 1900, tm.tm_mon);
    }
    return 0;
}

int64_t ct_window_end_ms(enum ct_period p, int64_t wall_ms)
{
    if (p == CT_DAILY)
        return (floor_div(wall_ms, DAY_MS) + 1) * DAY_MS;
    if (p == CT_MONTHLY) {
        struct tm tm = utc(wall_ms);
        return month_start_ms(tm.tm_year + 1900, tm.tm_mon + 1);
    }
    return 0;
}

void ct_window_name(enum ct_period p, int64_t wall_ms, char *buf, size_t cap)
{
    struct tm tm = utc(wall_ms);
    if (p == CT_DAILY)
        snprintf(buf, cap, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday);
    else if (p == CT_MONTHLY)
        snprintf(buf, cap, "%04d-%02d", tm.tm_year + 1900, tm.tm_mon + 1);
    else
        snprintf(buf, cap, "total");
}
