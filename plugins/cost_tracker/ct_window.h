/* Budget windows on the UTC calendar: a day, a month, or all time. */
#ifndef CT_WINDOW_H
#define CT_WINDOW_H

#include <stddef.h>
#include <stdint.h>

enum ct_period { CT_DAILY = 0, CT_MONTHLY = 1, CT_TOTAL = 2 };

/* Window id containing wall_ms: days since the epoch, year*12+month, or 0. */
int64_t ct_window_of(enum ct_period p, int64_t wall_ms);
/* Wall ms at which the window of wall_ms ends (0 for CT_TOTAL). */
int64_t ct_window_end_ms(enum ct_period p, int64_t wall_ms);
/* Wall ms at which the window of wall_ms began (0 for CT_TOTAL). */
int64_t ct_window_start_ms(enum ct_period p, int64_t wall_ms);
/* "2026-12-07", "2026-12" or "total". */
void ct_window_name(enum ct_period p, int64_t wall_ms, char *buf, size_t cap);

#endif
