#include "tokens/request_tokens.h"

#include <pthread.h>
#include <string.h>

#include "config/config.h"
#include "log.h"
#include "metrics.h"
#include "request.h"
#include "runtime.h"
#include "tokens/model_encoding.h"
#include "tokens/request_count.h"

enum { M_EXACT, M_ESTIMATE, M_EXTRAPOLATED, M_COUNT };
static struct metric *metrics[M_COUNT];
static pthread_once_t metrics_once = PTHREAD_ONCE_INIT;

static void register_metrics(void)
{
    static const char *const labels[M_COUNT] = {
        "method=\"exact\"", "method=\"estimate\"", "method=\"extrapolated\""};
    for (int i = 0; i < M_COUNT; i++)
        metrics[i] = metrics_counter(
            g_runtime.metrics, "sluice_input_token_counts_total",
            "Requests whose input tokens were counted, by method: exact "
            "(tokenizer), extrapolated (past tokens.max_bytes), estimate "
            "(model without a known encoding).",
            labels[i]);
}

/* Models already logged as unknown: each is reported once per process
 * (up to a bound, then silently: the metric still counts them). */
#define UNKNOWN_LOGGED_MAX 64
static pthread_mutex_t unknown_lock = PTHREAD_MUTEX_INITIALIZER;
static char unknown_logged[UNKNOWN_LOGGED_MAX][64];
static size_t unknown_count;

static void log_unknown_once(const char *model, size_t len)
{
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)(len < 63 ? len : 63), model);
    pthread_mutex_lock(&unknown_lock);
    bool seen = unknown_count == UNKNOWN_LOGGED_MAX;
    for (size_t i = 0; i < unknown_count && !seen; i++)
        seen = strcmp(unknown_logged[i], name) == 0;
    if (!seen)
        memcpy(unknown_logged[unknown_count++], name, sizeof name);
    pthread_mutex_unlock(&unknown_lock);
    if (!seen)
        log_msg(LOG_WARN, "tokens",
                "model \"%s\" has no known encoding: its input tokens are "
                "estimated from bytes (add it to tokens.models)",
                name);
}

uint64_t request_input_tokens(struct sluice_req *r)
{
    if (r->tokens.done)
        return r->api.input_tokens;
    r->tokens.done = true;
    pthread_once(&metrics_once, register_metrics);
    const struct tokens_config *tc = &r->gen->cfg->tokens;
    size_t mlen;
    const char *model = request_target_model(r, &mlen);
    enum tok_encoding_id id;
    const struct tok_encoding *e = NULL;
    if (model && tok_model_encoding(&tc->models, model, mlen, &id))
        e = tok_encoding_get(id);
    if (!e) {
        if (model)
            log_unknown_once(model, mlen);
        metric_add(metrics[M_ESTIMATE], 1);
        return r->api.input_tokens;
    }
    struct tok_request_count c;
    if (!tok_count_request(r->kind, r->body, r->body_len, e, tc->max_bytes,
                           &c)) {
        metric_add(metrics[M_ESTIMATE], 1); /* out of memory: keep it */
        return r->api.input_tokens;
    }
    r->api.input_tokens = c.tokens;
    r->tokens.exact = true;
    r->tokens.extrapolated = c.extrapolated;
    r->tokens.media_estimated = c.media_estimated;
    metric_add(metrics[c.extrapolated ? M_EXTRAPOLATED : M_EXACT], 1);
    return c.tokens;
}
