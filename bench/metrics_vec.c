/* Cost of one update of a labelled series (metric_vec_with + add) against
 * a plain counter, single thread, known series (the hot path). Not built
 * by CMake; run:
 *   gcc -O2 -std=c11 -D_GNU_SOURCE -Icore bench/metrics_vec.c core/metrics.c \
 *       core/metrics_vec.c core/log.c -lpthread -lm -o /tmp/metrics_vec && \
 *   /tmp/metrics_vec
 */
#include <stdio.h>
#include <time.h>

#include "metrics.h"

static double ns_per(struct timespec t0, struct timespec t1, int n)
{
    return ((double)(t1.tv_sec - t0.tv_sec) * 1e9 +
            (double)(t1.tv_nsec - t0.tv_nsec)) /
           n;
}

int main(void)
{
    struct metrics_registry *reg = metrics_registry_new();
    static const struct metric_label req[] = {
        {"code", 48}, {"endpoint", 5}, {"upstream", 33}};
    static const struct metric_label up[] = {{"upstream", 32}};
    struct metric_vec *v =
        metrics_counter_vec(reg, "r_total", "R.", NULL, req, 3);
    struct metric_vec *a =
        metrics_counter_vec(reg, "a_total", "A.", NULL, up, 1);
    struct metric *plain = metrics_counter(reg, "p_total", "P.", NULL);
    const char *codes[] = {"200", "429", "502", "400"};
    const char *ups[] = {"openai", "anthropic", "mock"};
    enum { N = 10000000 };
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < N; i++) {
        const char *vals[] = {codes[i & 3], "/v1/chat/completions", ups[i % 3]};
        metric_add(metric_vec_with(v, vals), 1);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("requests_total{code,endpoint,upstream}: %.1f ns/update\n",
           ns_per(t0, t1, N));
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < N; i++) {
        const char *vals[] = {ups[i % 3]};
        metric_add(metric_vec_with(a, vals), 1);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("attempts_total{upstream}: %.1f ns/update\n", ns_per(t0, t1, N));
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < N; i++)
        metric_add(plain, 1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("plain counter: %.1f ns/update\n", ns_per(t0, t1, N));
    metrics_registry_free(reg);
}
