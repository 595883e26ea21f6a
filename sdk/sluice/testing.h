/* sluice plugin SDK: a fake host for unit tests.
 *
 * Link a plugin's .c file with libsluice_testing and drive its hooks
 * directly, without the server or dlopen. The clock is fake (starts at 1 s
 * and only moves with sluice_test_clock_advance_*), the random source is
 * seeded, and everything the plugin does to a request is captured. Host
 * calls get the core's answers (the same checks, phase rules and error
 * bodies: core/host_rules.c, core/http/openai_error.c).
 *
 *     struct sluice_test_host *t = sluice_test_host_new();
 *     void *self = sluice_test_open(t, &plugin, "{\"rpm\": 2}");
 *     struct sluice_req *r = sluice_test_req_new(t, "{\"model\":\"m\"}");
 *     void *st = calloc(1, plugin.req_state_size);
 *     plugin.on_request(self, r, st);
 *     assert(sluice_test_reject_status(r) == 429);
 *     sluice_test_req_free(r);
 *     sluice_test_host_free(t); // destroys the instance
 *
 * Not thread-safe except for metric updates (atomic) and wake(), which
 * only counts calls per request (see sluice_test_wakes()).
 */
#ifndef SLUICE_TESTING_H
#define SLUICE_TESTING_H

#include "host.h"

#ifdef __cplusplus
extern "C" {
#endif

struct sluice_test_host;

struct sluice_test_host *sluice_test_host_new(void);
void sluice_test_host_free(struct sluice_test_host *t);
const struct sluice_host *sluice_test_host(struct sluice_test_host *t);

/* ---- clock and randomness ---- */
void sluice_test_clock_advance_ms(struct sluice_test_host *t, uint64_t ms);
void sluice_test_clock_advance_ns(struct sluice_test_host *t, uint64_t ns);
void sluice_test_clock_set_wall_ms(struct sluice_test_host *t, int64_t ms);
void sluice_test_seed(struct sluice_test_host *t, uint64_t seed);

/* ---- config: validate and fill a plugin's config struct like the core
 * does. Returns 0, or -1 with the error (JSON path first) in err. Strings,
 * lists and maps it fills stay valid until the process exits; prefer
 * sluice_test_open(), which ties them to the host. ---- */
int sluice_test_config(const struct sluice_plugin *p, const char *json,
                       void *config_out, char *err, size_t errlen);

/* ---- plugin instances ----
 * Opens an instance the way the core does: validates `json` (NULL: {})
 * against p's key table with the core's rules and messages (path
 * "config", e.g. "config.tiers.free.limit: must be > 0"), fills the config
 * struct and calls create() with the effective config (defaults added) as
 * raw_json. Returns the instance's `self` (the config struct when p has no
 * create()), or NULL with the reason in sluice_test_open_error(). The host
 * destroys what is still open, newest first, in sluice_test_host_free(). */
void *sluice_test_open(struct sluice_test_host *t,
                       const struct sluice_plugin *p, const char *json);
const char *sluice_test_open_error(const struct sluice_test_host *t);
/* Destroys one instance early (e.g. to check what destroy() releases). */
void sluice_test_close(struct sluice_test_host *t, void *self);

/* ---- requests ---- */
/* body: JSON text of the request body (copied); decoded like the core does
 * (model, stream, max_tokens, input token estimate). Endpoint defaults to
 * /v1/chat/completions, identity to tenant "default". */
struct sluice_req *sluice_test_req_new(struct sluice_test_host *t,
                                       const char *body);
void sluice_test_req_free(struct sluice_req *r);
void sluice_test_req_set_header(struct sluice_req *r, const char *name,
                                const char *value);
void sluice_test_req_set_identity(struct sluice_req *r, const char *tenant,
                                  const char *user, const char *tier,
                                  const char *key);
void sluice_test_req_set_endpoint(struct sluice_req *r, const char *path);
void sluice_test_req_set_upstream(struct sluice_req *r, const char *name);
void sluice_test_req_set_worker(struct sluice_req *r, unsigned worker);
/* Names set_upstream() accepts (NULL-terminated); default: any name. */
void sluice_test_set_upstreams(struct sluice_test_host *t,
                               const char *const *names);
/* Simulate the upstream's answer before calling on_upstream_response /
 * on_response. */
void sluice_test_req_set_response(struct sluice_req *r, int status,
                                  enum sluice_outcome outcome);
/* Records an upstream attempt (up to 8). Without any, resp_attempt reports
 * one attempt built from sluice_test_req_set_response(). */
void sluice_test_req_add_attempt(struct sluice_req *r, const char *upstream,
                                 const char *model, int status,
                                 enum sluice_outcome outcome);
void sluice_test_req_set_resp_body(struct sluice_req *r, const char *body);
void sluice_test_req_set_resp_header(struct sluice_req *r, const char *name,
                                     const char *value);
void sluice_test_req_set_usage(struct sluice_req *r, uint64_t prompt,
                               uint64_t completion, uint64_t cached);
/* Where the request is, which decides what the host allows (the core's
 * phase rules): routing, priority and resume_after only in REQUEST
 * (SLUICE_EPHASE after), resp_add_header until STREAMING. A request starts
 * in REQUEST; sluice_test_req_set_response() moves it to UPSTREAM. */
enum sluice_test_phase {
    SLUICE_TEST_PHASE_REQUEST = 0,   /* on_request */
    SLUICE_TEST_PHASE_UPSTREAM = 1,  /* the upstream answered, nothing sent */
    SLUICE_TEST_PHASE_STREAMING = 2, /* response headers sent to the client */
    SLUICE_TEST_PHASE_DONE = 3,      /* response finished or client gone */
};
void sluice_test_req_set_phase(struct sluice_req *r,
                               enum sluice_test_phase phase);
/* Marks the request as resumed (what the core does before calling
 * on_request again after a suspension). */
void sluice_test_req_mark_resumed(struct sluice_req *r);

/* ---- what the plugin did ---- */
int sluice_test_reject_status(const struct sluice_req *r); /* 0: none */
uint64_t sluice_test_reject_retry_after_ms(const struct sluice_req *r);
const char *sluice_test_reject_message(const struct sluice_req *r);
const char *sluice_test_reject_type(const struct sluice_req *r);
/* Full error body as the client would see it (JSON), or respond() body. */
const char *sluice_test_response_body(const struct sluice_req *r);
/* Value of a header added with resp_add_header, or a Retry-After added by
 * reject(); NULL when absent. */
const char *sluice_test_resp_added_header(const struct sluice_req *r,
                                          const char *name);
const char *sluice_test_upstream_header(const struct sluice_req *r,
                                        const char *name);
/* What upstream_set_max_tokens() set; 0 when it was not called. */
uint64_t sluice_test_upstream_max_tokens(const struct sluice_req *r);
/* resume_after() delay, or UINT64_MAX when not requested. */
uint64_t sluice_test_resume_after_ms(const struct sluice_req *r);
/* Number of wake() calls with this request's ticket so far. */
unsigned sluice_test_wakes(const struct sluice_req *r);

/* ---- metrics and health ---- */
/* Sum of a counter/gauge by name (last created handle with that name);
 * NaN when no such metric. Histograms report their observation count.
 * A series of a labelled family (counter_vec ...) is named like its
 * sample: "name{label=\"value\",...}", labels in creation order. */
double sluice_test_metric(struct sluice_test_host *t, const char *name);
/* NaN when never set. */
double sluice_test_health(struct sluice_test_host *t, const char *name);
/* Lines logged so far, joined with '\n'. */
const char *sluice_test_log(struct sluice_test_host *t);

/* ---- ABI versions ----
 * Makes the host look like an SDK 1.0 core: abi_minor 0, struct_size of the
 * 1.0 table, every 1.1 member NULL, so a test can check that a plugin using
 * 1.1 members (SLUICE_HOST_HAS) degrades instead of crashing. Call before
 * create(). */
void sluice_test_host_pretend_1_0(struct sluice_test_host *t);

/* ---- 1.1 upstream calls and timers ----
 * call_upstream() only records the call; the test answers it. Pending calls
 * are numbered oldest first; path, upstream and body (NUL-terminated; NULL
 * for a GET) are NULL past the end. sluice_test_call_finish() forgets the
 * call, then runs its callback with the given answer. */
size_t sluice_test_calls_pending(struct sluice_test_host *t);
const char *sluice_test_call_upstream(struct sluice_test_host *t, size_t i);
const char *sluice_test_call_path(struct sluice_test_host *t, size_t i);
const char *sluice_test_call_body(struct sluice_test_host *t, size_t i);
void sluice_test_call_finish(struct sluice_test_host *t, size_t i, int status,
                             enum sluice_outcome outcome, const char *body);
/* Runs, once each, the timers of `worker` due at the fake clock (periodic
 * ones are due again one period later); returns how many ran. The fake
 * host has one worker (0); timer_cancel() cancels on every worker. */
unsigned sluice_test_timers_run(struct sluice_test_host *t, unsigned worker);

#ifdef __cplusplus
}
#endif
#endif
