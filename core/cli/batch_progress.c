/* Progress output of `sluice batch` (see batch_progress.h). */
#include "cli/batch_progress.h"

#include <stdio.h>
#include <string.h>

int progress_mode_parse(const char *s, enum progress_mode *out)
{
    if (strcmp(s, "bar") == 0)
        *out = PROGRESS_BAR;
    else if (strcmp(s, "plain") == 0)
        *out = PROGRESS_PLAIN;
    else if (strcmp(s, "none") == 0)
        *out = PROGRESS_NONE;
    else if (strcmp(s, "auto") != 0)
        return -1;
    return 0;
}

double progress_interval(enum progress_mode m)
{
    return m == PROGRESS_BAR ? 0.2 : 2.0;
}

static void eta_text(double s, char *buf, size_t cap)
{
    if (s < 0)
        snprintf(buf, cap, "?");
    else if (s < 60)
        snprintf(buf, cap, "%.0fs", s);
    else if (s < 3600)
        snprintf(buf, cap, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else
        snprintf(buf, cap, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
}

void progress_format(const struct progress_view *v, bool bar, char *buf,
                     size_t cap)
{
    double rate = v->elapsed_s > 0 ? (double)v->done_here / v->elapsed_s : 0;
    double pct = v->total ? 100.0 * (double)v->done / (double)v->total : 100;
    char eta[32];
    eta_text(rate > 0 ? (double)(v->total - v->done) / rate : -1, eta,
             sizeof eta);
    char bars[23] = "";
    if (bar) {
        int fill = (int)(pct / 5);
        bars[0] = '[';
        for (int i = 0; i < 20; i++)
            bars[1 + i] = i < fill ? '#' : '.';
        bars[21] = ']';
        bars[22] = '\0';
    }
    snprintf(buf, cap,
             "%s%s%zu/%zu %.1f%% %.1f/s ETA %s in flight %zu failed %zu "
             "spend $%.6f",
             bars, bar ? " " : "progress: ", v->done, v->total, pct, rate, eta,
             v->inflight, v->failed, v->spend_usd);
}

void progress_show(enum progress_mode m, const struct progress_view *v,
                   bool last)
{
    char line[256];
    if (m == PROGRESS_NONE)
        return;
    progress_format(v, m == PROGRESS_BAR, line, sizeof line);
    if (m == PROGRESS_BAR)
        fprintf(stderr, "\r\033[K%s%s", line, last ? "\n" : "");
    else
        fprintf(stderr, "%s\n", line);
    fflush(stderr);
}
