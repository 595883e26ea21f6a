/* The progress line of `sluice batch`: a bar redrawn in place on a
 * terminal, or a plain line every few seconds otherwise. */
#ifndef SLUICE_CLI_BATCH_PROGRESS_H
#define SLUICE_CLI_BATCH_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum progress_mode { PROGRESS_BAR, PROGRESS_PLAIN, PROGRESS_NONE };

struct progress_view {
    size_t total, done, failed, inflight;
    double elapsed_s;
    uint64_t done_here; /* finished by this run (rate and ETA) */
    double spend_usd;
};

int progress_mode_parse(const char *s, enum progress_mode *out);
/* Seconds between redraws. */
double progress_interval(enum progress_mode m);
/* Renders into buf (no newline): "[####....] 12/100 12.0% 3.1/s ETA 28s
 * failed 1 $0.000120". */
void progress_format(const struct progress_view *v, bool bar, char *buf,
                     size_t cap);
void progress_show(enum progress_mode m, const struct progress_view *v,
                   bool last);

#endif
