/* Shared by the policy unit tests: fakes of what the gateway gives a
 * policy (a request whose fields the test sets, gateway health and a
 * clock the test controls) and loading a script from text. */
#ifndef SLUICE_TEST_POLICY_FAKES_H
#define SLUICE_TEST_POLICY_FAKES_H

#include "policy/policy.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fake_req {
    const char *model, *endpoint, *tenant, *user, *tier, *priority, *body;
    const char *headers[8][2];
    const char *vars[4][2];
    bool stream;
    uint64_t message_count, message_bytes, input_tokens, max_tokens;
    int body_reads;
};

/* A view of r; body reads are counted in r->body_reads. */
struct policy_req_view view_of(struct fake_req *r);

struct fake_env {
    const char *names[8];
    double values[8];
    double now;
};

/* test_env reads test_env_state. */
extern struct fake_env test_env_state;
extern const struct policy_env test_env;

/* Generous limits: tests that want tighter ones copy and change these. */
extern const struct policy_limits test_limits;

/* Writes text to a fresh temp file; returns its path (caller frees and
 * unlinks). Aborts when it cannot. */
char *write_temp(const void *text, size_t len);

/* Loads a script from text under test_limits and test_env; NULL with err
 * set when the load fails. path_out (may be NULL) gets the temp file's
 * path, which is gone by then: for checking error messages. */
struct policy *load_text(const char *text, char *err, size_t errlen,
                         char *path_out, size_t path_len);

#endif
